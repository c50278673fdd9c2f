"""Gates for organizations, users and teams: who belongs where, and as what.

The helpers returning querysets of ids are meant as subqueries, so callers build
one SQL predicate instead of loading ids into Python. The `get_*_for_user` gates
raise NotFound for what the caller may not see (missing and forbidden look the
same) and PermissionDenied for what they see but may not change.

Who sees what: superusers everything; everyone their own organizations and the
teams in them; admins and dataset managers the users of their organizations,
everyone else only themselves.
"""

from __future__ import annotations

import logging
from collections.abc import Collection
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db.models import Exists, OuterRef, Q, QuerySet, Subquery
from django.utils import timezone
from rest_framework.exceptions import NotFound, PermissionDenied

from metaserver.accounts.models import (
    API_TOKEN_PREFIX,
    DATASET_MANAGING_ROLES,
    ApiToken,
    Membership,
    Organization,
    Role,
    Team,
    TeamMembership,
    User,
    hash_secret,
)
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

AnyUser = User | AnonymousUser

# last_used is informational; writing it on every request would make every read a write.
LAST_USED_RESOLUTION_SECONDS = 60


def is_logged_in(user: Any) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active)


def member_organization_ids(user: AnyUser) -> QuerySet[Membership, Any]:
    """Ids of the organizations `user` belongs to, in any role (a subquery)."""
    if not is_logged_in(user):
        return Membership.objects.none().values("organization_id")
    return Membership.objects.filter(user_id=user.pk).values("organization_id")


def managed_organization_ids(user: AnyUser) -> QuerySet[Membership, Any]:
    """Ids of the organizations whose datasets `user` manages (admin, manager)."""
    if not is_logged_in(user):
        return Membership.objects.none().values("organization_id")
    return Membership.objects.filter(
        user_id=user.pk, role__in=DATASET_MANAGING_ROLES
    ).values("organization_id")


def role_in(user: AnyUser, organization: Organization) -> Role | None:
    """The user's role in `organization`, None for non-members and anonymous."""
    if not is_logged_in(user):
        return None
    role = (
        Membership.objects.filter(user_id=user.pk, organization=organization)
        .values_list("role", flat=True)
        .first()
    )
    return None if role is None else Role(role)


def user_can_administrate_organization(
    user: AnyUser, organization: Organization
) -> bool:
    """Superusers and the organization's admins: users, teams, settings."""
    if not is_logged_in(user):
        return False
    return bool(user.is_superuser) or role_in(user, organization) == Role.ADMIN


def user_can_manage_datasets(user: AnyUser, organization: Organization) -> bool:
    """Superusers, admins and dataset managers: every dataset of the organization."""
    if not is_logged_in(user):
        return False
    return bool(user.is_superuser) or role_in(user, organization) in (
        DATASET_MANAGING_ROLES
    )


def user_is_member(user: AnyUser, organization: Organization) -> bool:
    if not is_logged_in(user):
        return False
    return bool(user.is_superuser) or role_in(user, organization) is not None


def user_is_any_admin(user: AnyUser) -> bool:
    """Superusers and admins of at least one organization."""
    if not is_logged_in(user):
        return False
    return (
        bool(user.is_superuser)
        or Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).exists()
    )


def user_for_api_token(token: str) -> User | None:
    """The active user owning API token `token`, or None; records its use."""
    if not token.startswith(API_TOKEN_PREFIX) or len(token) > 200:
        return None
    # Looking up by the hash is safe against timing attacks: an attacker cannot
    # choose inputs whose SHA-256 shares a growing prefix with a stored one.
    api_token = (
        ApiToken.objects.select_related("user")
        .filter(key_hash=hash_secret(token))
        .first()
    )
    if api_token is None or not api_token.user.is_active:
        return None
    now = timezone.now()
    last = api_token.last_used
    if last is None or (now - last).total_seconds() >= LAST_USED_RESOLUTION_SECONDS:
        ApiToken.objects.filter(pk=api_token.pk).update(last_used=now)
    return api_token.user


def administrated_organization_ids(user: AnyUser) -> QuerySet[Membership, Any]:
    """Ids of the organizations `user` is an admin of (a subquery)."""
    if not is_logged_in(user):
        return Membership.objects.none().values("organization_id")
    return Membership.objects.filter(user_id=user.pk, role=Role.ADMIN).values(
        "organization_id"
    )


def organizations_visible_to(user: AnyUser) -> QuerySet[Organization]:
    """The organizations `user` belongs to (superusers: all), each annotated with
    `caller_role`, the user's role there or None."""
    if not is_logged_in(user):
        return Organization.objects.none()
    organizations = Organization.objects.annotate(
        caller_role=Subquery(
            Membership.objects.filter(
                user_id=user.pk, organization=OuterRef("pk")
            ).values("role")[:1]
        )
    )
    if user.is_superuser:
        return organizations
    return organizations.filter(pk__in=member_organization_ids(user))


def get_organization_for_user(
    user: AnyUser, name: str, mode: AccessMode = AccessMode.READ
) -> Organization:
    """Organization `name`: reading needs membership, anything else an admin."""
    organization = organizations_visible_to(user).filter(name=name).first()
    if organization is None:
        raise NotFound(f"organization {name!r} not found")
    if mode is not AccessMode.READ and not user_can_administrate_organization(
        user, organization
    ):
        raise PermissionDenied(f"only admins of {name} can do this")
    return organization


def users_visible_to(user: AnyUser) -> QuerySet[User]:
    """The caller, and for admins and dataset managers the users of their
    organizations (superusers: everyone)."""
    if not is_logged_in(user):
        return User.objects.none()
    if user.is_superuser:
        return User.objects.all()
    in_managed_organization = Exists(
        Membership.objects.filter(
            user_id=OuterRef("pk"), organization_id__in=managed_organization_ids(user)
        )
    )
    return User.objects.filter(Q(pk=user.pk) | in_managed_organization)


def memberships_visible_to(user: AnyUser) -> QuerySet[Membership]:
    """The memberships `user` may see: their own and those of organizations they
    manage; a user's other organizations stay hidden."""
    if not is_logged_in(user):
        return Membership.objects.none()
    if user.is_superuser:
        return Membership.objects.all()
    return Membership.objects.filter(
        Q(user_id=user.pk) | Q(organization_id__in=managed_organization_ids(user))
    )


def team_memberships_visible_to(user: AnyUser) -> QuerySet[TeamMembership]:
    """Like `memberships_visible_to`, for the teams of those organizations."""
    if not is_logged_in(user):
        return TeamMembership.objects.none()
    if user.is_superuser:
        return TeamMembership.objects.all()
    return TeamMembership.objects.filter(
        Q(user_id=user.pk) | Q(team__organization_id__in=managed_organization_ids(user))
    )


def get_user_for_user(user: AnyUser, username: str) -> User:
    """The user called `username` if `user` may see them."""
    found = users_visible_to(user).filter(username=username).first()
    if found is None:
        raise NotFound(f"user {username!r} not found")
    return found


def user_can_edit_account(user: AnyUser, target: User) -> bool:
    """Email, names, active flag: the user themselves, superusers, and whoever
    administrates every organization of `target` (an account is shared by all
    of them). A superuser's account only by superusers and themselves."""
    if not is_logged_in(user):
        return False
    if user.is_superuser or user.pk == target.pk:
        return True
    if target.is_superuser:
        return False
    organizations = Membership.objects.filter(user_id=target.pk)
    outside = organizations.exclude(
        organization_id__in=administrated_organization_ids(user)
    )
    return organizations.exists() and not outside.exists()


def members_of_organization(
    organization: Organization, usernames: Collection[str]
) -> dict[str, User]:
    """The members of `organization` among `usernames`, by username."""
    users = User.objects.filter(
        username__in=usernames, memberships__organization=organization
    )
    return {user.username: user for user in users}


def teams_visible_to(user: AnyUser) -> QuerySet[Team]:
    """The teams of the organizations `user` belongs to (superusers: all)."""
    if not is_logged_in(user):
        return Team.objects.none()
    if user.is_superuser:
        return Team.objects.all()
    return Team.objects.filter(organization_id__in=member_organization_ids(user))


def user_manages_team(user: AnyUser, team: Team) -> bool:
    if not is_logged_in(user):
        return False
    return TeamMembership.objects.filter(
        user_id=user.pk, team=team, is_manager=True
    ).exists()


def get_team_for_user(
    user: AnyUser, team_id: int, mode: AccessMode = AccessMode.READ
) -> Team:
    """Team `team_id`: members of its organization read, its managers and the
    organization's admins change members (WRITE), admins alone rename or delete
    it (ADMINISTRATE)."""
    visible = teams_visible_to(user).select_related("organization")
    found = visible.filter(pk=team_id).first()
    if found is None:
        raise NotFound(f"team {team_id} not found")
    if mode is AccessMode.READ or user_can_administrate_organization(
        user, found.organization
    ):
        return found
    if mode is AccessMode.WRITE and user_manages_team(user, found):
        return found
    raise PermissionDenied(
        f"only admins of {found.organization.name} can do this"
        if mode is AccessMode.ADMINISTRATE
        else f"only managers of team {found.name} and admins can do this"
    )


def teams_of_organization(
    organization: Organization, references: Collection[int | str]
) -> tuple[list[Team], list[int | str]]:
    """Teams of `organization` by id (int) or name (str), and the unknown references.

    A team of another organization counts as unknown.
    """
    ids = {ref for ref in references if isinstance(ref, int)}
    names = {ref for ref in references if isinstance(ref, str)}
    teams = list(
        Team.objects.filter(organization=organization).filter(
            Q(pk__in=ids) | Q(name__in=names)
        )
    )
    found = {team.pk for team in teams} | {team.name for team in teams}
    return teams, [ref for ref in references if ref not in found]
