"""`/api/users/`: the users of an admin's organizations, their roles and teams."""

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
    get_user_for_user,
    memberships_visible_to,
    role_in,
    team_memberships_visible_to,
    teams_of_organization,
    user_can_edit_account,
    users_visible_to,
)
from metaserver.accounts.actions import (
    do_create_user,
    do_remove_membership,
    do_update_user,
)
from metaserver.accounts.api.errors import action_errors
from metaserver.accounts.api.serializers import (
    MemberRemovalQuerySerializer,
    OrganizationFilterSerializer,
    UserCreateSerializer,
    UserSerializer,
    UserUpdateSerializer,
)
from metaserver.accounts.models import Organization, Team, User
from metaserver.pagination import StrictPageNumberPagination
from shared.protocol import AccessMode

ORGANIZATION_PARAMETER = OpenApiParameter(
    "organization", OpenApiTypes.STR, description="an organization's name"
)
ACCOUNT_FIELDS = ("email", "first_name", "last_name")


class UserViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, viewsets.GenericViewSet
):
    """Admins manage the users of their organizations; dataset managers look;
    members see themselves and edit their own email and names."""

    serializer_class = UserSerializer
    pagination_class = StrictPageNumberPagination
    lookup_field = "username"

    def get_queryset(self) -> QuerySet[User]:
        caller = self.request.user
        users = users_visible_to(caller)
        if self.action == "list":
            query = OrganizationFilterSerializer(data=self.request.query_params)
            query.is_valid(raise_exception=True)
            organization = query.validated_data.get("organization")
            if organization:
                visible = memberships_visible_to(caller)
                users = users.filter(
                    pk__in=visible.filter(organization__name=organization).values(
                        "user_id"
                    )
                )
        # Two prefetch queries whatever the number of users.
        return users.order_by("username").prefetch_related(
            Prefetch(
                "memberships",
                memberships_visible_to(caller)
                .select_related("organization")
                .order_by("organization__name"),
                to_attr="visible_memberships",
            ),
            Prefetch(
                "team_memberships",
                team_memberships_visible_to(caller)
                .select_related("team")
                .order_by("team__name"),
                to_attr="visible_team_memberships",
            ),
        )

    def get_object(self) -> User:
        found = get_user_for_user(self.request.user, self.kwargs["username"])
        return self.get_queryset().get(pk=found.pk)

    @extend_schema(parameters=[ORGANIZATION_PARAMETER])
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().list(request, *args, **kwargs)

    @extend_schema(request=UserCreateSerializer, responses={201: UserSerializer})
    def create(self, request: Request) -> Response:
        body = UserCreateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        organization = get_organization_for_user(
            request.user, data["organization"], AccessMode.ADMINISTRATE
        )
        teams = _teams(organization, data["teams"], "teams")
        managed_teams = _teams(organization, data["managed_teams"], "managed_teams")
        with action_errors():
            user = do_create_user(
                data["username"],
                data["password"],
                organization=organization,
                role=data["role"],
                email=data["email"],
                first_name=data["first_name"],
                last_name=data["last_name"],
                teams=teams,
                managed_teams=managed_teams,
            )
        answer = UserSerializer(self.get_queryset().get(pk=user.pk)).data
        return Response(answer, status=status.HTTP_201_CREATED)

    @extend_schema(request=UserUpdateSerializer, responses=UserSerializer)
    def partial_update(self, request: Request, username: str) -> Response:
        caller = request.user
        user = get_user_for_user(caller, username)
        body = UserUpdateSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        data = body.validated_data
        changes: dict[str, Any] = {k: data[k] for k in ACCOUNT_FIELDS if k in data}
        if changes and not user_can_edit_account(caller, user):
            raise exceptions.PermissionDenied(
                f"only {username}, a superuser or the admins of all of "
                f"{username}'s organizations can change {', '.join(changes)}"
            )
        if "is_active" in data:
            if user.pk == caller.pk:
                raise exceptions.PermissionDenied("you cannot deactivate yourself")
            if not user_can_edit_account(caller, user):
                raise exceptions.PermissionDenied(
                    "only a superuser or the admins of all of "
                    f"{username}'s organizations can change is_active"
                )
            changes["is_active"] = data["is_active"]
        if "organization" in data:
            organization = get_organization_for_user(
                caller, data["organization"], AccessMode.ADMINISTRATE
            )
            is_member = role_in(user, organization) is not None
            # Superusers may add an existing account to an organization by a role.
            if not is_member and not (caller.is_superuser and "role" in data):
                raise exceptions.ValidationError(
                    {"organization": [f"{username} is not a member of {organization}"]}
                )
            changes["organization"] = organization
            changes["role"] = data.get("role")
            for field in ("teams", "managed_teams"):
                if field in data:
                    changes[field] = _teams(organization, data[field], field)
        with action_errors():
            do_update_user(user, **changes)
        return Response(UserSerializer(self.get_object()).data)

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "organization",
                OpenApiTypes.STR,
                required=True,
                description="the organization to remove the user from",
            )
        ],
        responses={204: None},
    )
    def destroy(self, request: Request, username: str) -> Response:
        """Remove the user from `?organization=` and its teams; the account stays."""
        user = get_user_for_user(request.user, username)
        query = MemberRemovalQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        organization = get_organization_for_user(
            request.user, query.validated_data["organization"], AccessMode.ADMINISTRATE
        )
        if role_in(user, organization) is None:
            raise exceptions.NotFound(f"{username} is not a member of {organization}")
        with action_errors():
            do_remove_membership(user, organization)
        return Response(status=status.HTTP_204_NO_CONTENT)


def _teams(
    organization: Organization, references: list[int | str], field: str
) -> list[Team]:
    teams, unknown = teams_of_organization(organization, references)
    if unknown:
        listed = ", ".join(repr(ref) for ref in unknown[:20])
        raise exceptions.ValidationError(
            {field: [f"no such teams in {organization}: {listed}"]}
        )
    return teams
