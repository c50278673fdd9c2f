"""Serializers of the caller's own account and of token requests."""

from __future__ import annotations

from rest_framework import serializers

from metaserver.accounts.models import Membership, TeamMembership, User
from metaserver.api_fields import StrictCharField


class TokenRequestSerializer(serializers.Serializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=4096, trim_whitespace=False)
    name = StrictCharField(max_length=100, required=False, default="api")


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class MembershipSerializer(serializers.ModelSerializer):
    name = serializers.CharField(source="organization.name")
    display_name = serializers.CharField(source="organization.display_name")

    class Meta:
        model = Membership
        fields = ("name", "display_name", "role")


class TeamMembershipSerializer(serializers.ModelSerializer):
    id = serializers.IntegerField(source="team.id")
    name = serializers.CharField(source="team.name")
    organization = serializers.CharField(source="team.organization.name")

    class Meta:
        model = TeamMembership
        fields = ("id", "name", "organization", "is_manager")


class CurrentUserSerializer(serializers.ModelSerializer):
    """The caller: who they are, their organizations and roles, their teams."""

    organizations = MembershipSerializer(source="memberships", many=True)
    teams = TeamMembershipSerializer(source="team_memberships", many=True)

    class Meta:
        model = User
        fields = (
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_superuser",
            "organizations",
            "teams",
        )
        read_only_fields = fields
