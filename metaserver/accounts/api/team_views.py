"""`/api/teams/`: teams of the caller's organizations and their members."""

from __future__ import annotations

from typing import Any

from django.db.models import Prefetch, QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, mixins, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from metaserver.accounts.access import (
    get_organization_for_user,
    get_team_for_user,
    members_of_organization,
    teams_visible_to,
    user_can_administrate_organization,
)
from metaserver.accounts.actions import do_create_team
from metaserver.accounts.api.errors import action_errors
from metaserver.accounts.api.serializers import (
    OrganizationFilterSerializer,
    TeamCreateSerializer,
    TeamSerializer,
    TeamUpdateSerializer,
)
from metaserver.accounts.models import Team, TeamMembership, User
from metaserver.accounts.team_actions import do_delete_team, do_update_team
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import AccessMode

TEAM_ID_PARAMETER = OpenApiParameter(
    "id", OpenApiTypes.INT, OpenApiParameter.PATH, description="the team's id"
)


class TeamViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Members of an organization see its teams; admins create, rename and delete
    them and set their members; team managers add and remove members."""

    serializer_class = TeamSerializer
    pagination_class = StrictPageNumberPagination

    def get_queryset(self) -> QuerySet[Team]:
        teams = teams_visible_to(self.request.user)
        if self.action == "list":
            query = OrganizationFilterSerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            organization = query.validated_data.get("organization")
            if organization:
                teams = teams.filter(organization__name=organization)
        return _with_members(teams).order_by("organization__name", "name")

    def get_object(self) -> Team:
        mode = AccessMode.ADMINISTRATE if self.action == "destroy" else AccessMode.READ
        return get_team_for_user(self.request.user, int(self.kwargs["id"]), mode)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "organization", OpenApiTypes.STR, description="an organization's name"
            )
        ]
    )
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=TeamCreateSerializer, responses={201: TeamSerializer})
    def create(self, request: Request) -> Response:
        body = TeamCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        organization = get_organization_for_user(
            request.user, body.validated_data["organization"], AccessMode.ADMINISTRATE
        )
        with action_errors("name"):
            team = do_create_team(organization, body.validated_data["name"])
        answer = TeamSerializer(_reloaded(team)).data
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(parameters=[TEAM_ID_PARAMETER], responses=TeamSerializer)
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(TeamSerializer(_reloaded(self.get_object())).data)

    @extend_schema(
        parameters=[TEAM_ID_PARAMETER],
        request=TeamUpdateSerializer,
        responses=TeamSerializer,
    )
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        """`members` is the complete new list; team managers may add and remove
        members but not managers, and not rename the team."""
        caller = request.user
        team = self.get_object()
        body = TeamUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        is_admin = user_can_administrate_organization(caller, team.organization)
        if "name" in data and not is_admin:
            raise exceptions.PermissionDenied(
                f"only admins of {team.organization} can rename teams"
            )
        members: list[tuple[User, bool]] | None = None
        if "members" in data:
            get_team_for_user(caller, team.pk, AccessMode.WRITE)
            members = _members(team, data["members"])
        with action_errors("name"):
            do_update_team(
                team,
                name=data.get("name"),
                members=members,
                may_change_managers=is_admin,
            )
        return Response(TeamSerializer(_reloaded(team)).data)

    @extend_schema(parameters=[TEAM_ID_PARAMETER], responses={204: None})
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        do_delete_team(self.get_object())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _with_members(teams: QuerySet[Team]) -> QuerySet[Team]:
    # One query for all members of all listed teams.
    return teams.select_related("organization").prefetch_related(
        Prefetch(
            "memberships",
            TeamMembership.objects.select_related("user").order_by("user__username"),
        )
    )


def _reloaded(team: Team) -> Team:
    return _with_members(Team.objects.filter(pk=team.pk)).get()


def _members(team: Team, listed: list[dict[str, Any]]) -> list[tuple[User, bool]]:
    users = members_of_organization(team.organization, [m["username"] for m in listed])
    outside = [m["username"] for m in listed if m["username"] not in users]
    if outside:
        raise exceptions.ValidationError(
            {
                "members": [
                    f"not members of {team.organization}: {', '.join(outside[:20])}"
                ]
            }
        )
    return [(users[m["username"]], m["is_manager"]) for m in listed]
