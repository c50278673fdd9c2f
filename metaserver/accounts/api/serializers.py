"""Serializers of accounts: the caller, organizations, users, teams, tokens.

Input serializers (`*CreateSerializer`, `*UpdateSerializer`) refuse unknown keys, so
a misspelled or read-only field is an error rather than silently ignored. Output
never contains a password or its hash.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from metaserver.accounts.actions import TEAM_NAME_MAX_LENGTH, clean_team_name
from metaserver.accounts.models import (
    Membership,
    Organization,
    Role,
    Team,
    TeamMembership,
    User,
    name_validator,
)
from metaserver.api_fields import StrictCharField

MAX_TEAMS_PER_REQUEST = 1000
MAX_MEMBERS_PER_REQUEST = 10_000
_UNKNOWN_KEY_CHARS = 100
ROLE_ERRORS = {
    "invalid_choice": "unknown role {input!r}; use one of " + ", ".join(Role.values)
}


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


class StrictInputSerializer(serializers.Serializer):
    """A request body that must be an object with only the fields declared."""

    def to_internal_value(self, data: Any) -> Any:
        if isinstance(data, Mapping):
            unknown = sorted(set(data) - set(self.fields))
            if unknown:
                raise serializers.ValidationError(
                    {key[:_UNKNOWN_KEY_CHARS]: ["unknown field"] for key in unknown}
                )
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """true or false, not "yes", 1 or "on"."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=str(data)[:50])
        return data


@extend_schema_field({"oneOf": [{"type": "integer"}, {"type": "string"}]})
class TeamReferenceField(serializers.Field):
    """A team by id (a number) or by name (a string)."""

    default_error_messages = {
        "invalid": "a team id (number) or name (string)",
    }

    def to_internal_value(self, data: Any) -> int | str:
        if isinstance(data, bool) or not isinstance(data, (int, str)):
            self.fail("invalid")
        if isinstance(data, str) and not 1 <= len(data) <= TEAM_NAME_MAX_LENGTH:
            self.fail("invalid")
        return data

    def to_representation(self, value: Any) -> Any:
        return value


def _team_references(**kwargs: Any) -> serializers.ListField:
    return serializers.ListField(
        child=TeamReferenceField(), max_length=MAX_TEAMS_PER_REQUEST, **kwargs
    )


class OrganizationSerializer(serializers.ModelSerializer):
    """An organization and the caller's role in it (None: a superuser outside it)."""

    role = serializers.ChoiceField(
        source="caller_role", choices=Role.choices, allow_null=True, read_only=True
    )

    class Meta:
        model = Organization
        fields = ("name", "display_name", "role", "created")
        read_only_fields = fields


class OrganizationCreateSerializer(StrictInputSerializer):
    name = StrictCharField(max_length=128, validators=[name_validator])
    display_name = StrictCharField(
        max_length=255, required=False, allow_blank=True, default=""
    )


class OrganizationUpdateSerializer(StrictInputSerializer):
    display_name = StrictCharField(max_length=255, allow_blank=True)


class TeamRefSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class UserOrganizationSerializer(serializers.Serializer):
    """A user's role and teams in one organization."""

    name = serializers.CharField()
    role = serializers.ChoiceField(choices=Role.choices)
    teams = TeamRefSerializer(many=True)
    managed_teams = TeamRefSerializer(many=True)


class UserSerializer(serializers.ModelSerializer):
    """A user as an admin sees them: their organizations that the caller sees.

    Expects the prefetches of `UserViewSet.get_queryset` (`visible_memberships`,
    `visible_team_memberships`).
    """

    organizations = serializers.SerializerMethodField()

    class Meta:
        model = User
        fields = (
            "id",
            "username",
            "email",
            "first_name",
            "last_name",
            "is_active",
            "is_superuser",
            "date_joined",
            "last_login",
            "organizations",
        )
        read_only_fields = fields

    @extend_schema_field(UserOrganizationSerializer(many=True))
    def get_organizations(self, user: User) -> list[dict[str, Any]]:
        by_organization: dict[int, dict[str, Any]] = {}
        for membership in user.visible_memberships:
            by_organization[membership.organization_id] = {
                "name": membership.organization.name,
                "role": membership.role,
                "teams": [],
                "managed_teams": [],
            }
        for team_membership in user.visible_team_memberships:
            entry = by_organization.get(team_membership.team.organization_id)
            if entry is None:
                continue
            team = {"id": team_membership.team_id, "name": team_membership.team.name}
            entry["teams"].append(team)
            if team_membership.is_manager:
                entry["managed_teams"].append(team)
        return list(by_organization.values())


def _check_password(attrs: dict[str, Any]) -> None:
    if attrs.get("password") is None:
        return
    candidate = User(
        username=attrs.get("username", ""),
        email=attrs.get("email", ""),
        first_name=attrs.get("first_name", ""),
        last_name=attrs.get("last_name", ""),
    )
    try:
        validate_password(attrs["password"], candidate)
    except DjangoValidationError as e:
        raise serializers.ValidationError({"password": e.messages}) from None


class UserCreateSerializer(StrictInputSerializer):
    """A new user in one organization; no password makes an invitation (token-only
    until a password is set)."""

    username = StrictCharField(max_length=150, validators=[UnicodeUsernameValidator()])
    password = StrictCharField(
        required=False,
        allow_null=True,
        default=None,
        max_length=4096,
        trim_whitespace=False,
        write_only=True,
    )
    email = serializers.EmailField(
        required=False, allow_blank=True, max_length=254, default=""
    )
    first_name = StrictCharField(
        required=False, allow_blank=True, max_length=150, default=""
    )
    last_name = StrictCharField(
        required=False, allow_blank=True, max_length=150, default=""
    )
    organization = StrictCharField(max_length=128, validators=[name_validator])
    role = serializers.ChoiceField(
        choices=Role.choices, default=Role.MEMBER, error_messages=ROLE_ERRORS
    )
    teams = _team_references(required=False, default=list)
    managed_teams = _team_references(required=False, default=list)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        _check_password(attrs)
        return attrs


class UserUpdateSerializer(StrictInputSerializer):
    """Account fields, and role and teams in `organization`: only what is sent."""

    email = serializers.EmailField(required=False, allow_blank=True, max_length=254)
    first_name = StrictCharField(required=False, allow_blank=True, max_length=150)
    last_name = StrictCharField(required=False, allow_blank=True, max_length=150)
    is_active = StrictBooleanField(required=False)
    organization = StrictCharField(
        required=False, max_length=128, validators=[name_validator]
    )
    role = serializers.ChoiceField(
        choices=Role.choices, required=False, error_messages=ROLE_ERRORS
    )
    teams = _team_references(required=False)
    managed_teams = _team_references(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        scoped = {"role", "teams", "managed_teams"} & set(attrs)
        if scoped and "organization" not in attrs:
            raise serializers.ValidationError(
                {"organization": [f"needed to change {', '.join(sorted(scoped))}"]}
            )
        return attrs


class MemberRemovalQuerySerializer(serializers.Serializer):
    organization = StrictCharField(max_length=128, validators=[name_validator])


class OrganizationFilterSerializer(serializers.Serializer):
    """`?organization=` of the user and team lists."""

    organization = StrictCharField(
        required=False, max_length=128, validators=[name_validator]
    )


class TeamMemberSerializer(StrictInputSerializer):
    username = StrictCharField(max_length=150)
    is_manager = StrictBooleanField(required=False, default=False)


class TeamMembershipOutSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username")

    class Meta:
        model = TeamMembership
        fields = ("username", "is_manager")
        read_only_fields = fields


class TeamSerializer(serializers.ModelSerializer):
    """A team with its members (expects `memberships` prefetched with users)."""

    organization = serializers.CharField(source="organization.name", read_only=True)
    members = TeamMembershipOutSerializer(
        source="memberships", many=True, read_only=True
    )

    class Meta:
        model = Team
        fields = ("id", "name", "organization", "members", "created")
        read_only_fields = fields


def _team_name(value: str) -> str:
    try:
        return clean_team_name(value)
    except DjangoValidationError as e:
        raise serializers.ValidationError(e.messages) from None


class TeamCreateSerializer(StrictInputSerializer):
    name = StrictCharField(max_length=TEAM_NAME_MAX_LENGTH)
    organization = StrictCharField(max_length=128, validators=[name_validator])

    def validate_name(self, value: str) -> str:
        return _team_name(value)


class TeamUpdateSerializer(StrictInputSerializer):
    """A new name, and/or the complete list of members replacing the current one."""

    name = StrictCharField(required=False, max_length=TEAM_NAME_MAX_LENGTH)
    members = serializers.ListField(
        child=TeamMemberSerializer(), required=False, max_length=MAX_MEMBERS_PER_REQUEST
    )

    def validate_name(self, value: str) -> str:
        return _team_name(value)

    def validate_members(self, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        counts = Counter(member["username"] for member in value)
        twice = sorted(name for name, count in counts.items() if count > 1)
        if twice:
            raise serializers.ValidationError(f"listed twice: {', '.join(twice)}")
        return value
