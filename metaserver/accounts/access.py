"""Gates for organizations and roles: who belongs where, and as what.

The helpers returning querysets of ids are meant as subqueries, so callers build
one SQL predicate instead of loading ids into Python.
"""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AnonymousUser
from django.db.models import QuerySet
from django.utils import timezone

from metaserver.accounts.models import (
    API_TOKEN_PREFIX,
    DATASET_MANAGING_ROLES,
    ApiToken,
    Membership,
    Organization,
    Role,
    User,
    hash_secret,
)

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
