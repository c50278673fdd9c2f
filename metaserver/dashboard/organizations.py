"""The organization a dashboard user is looking at, kept in their session.

Everything the dashboard lists is filtered to it. Users choose among the
organizations they belong to; superusers among all of them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet
from django.http import HttpRequest

from metaserver.accounts.access import (
    AnyUser,
    is_logged_in,
    member_organization_ids,
    user_can_manage_datasets,
    user_is_any_admin,
)
from metaserver.accounts.models import Organization

SESSION_KEY = "dashboard_organization"


@dataclass(frozen=True)
class OrganizationChoice:
    organizations: tuple[Organization, ...]
    current: Organization | None


def organizations_of(user: AnyUser) -> QuerySet[Organization]:
    """The organizations `user` may switch to (a queryset, ordered by name)."""
    if not is_logged_in(user):
        return Organization.objects.none()
    if user.is_superuser:
        return Organization.objects.order_by("name")
    return Organization.objects.filter(pk__in=member_organization_ids(user)).order_by(
        "name"
    )


def current_organization(request: HttpRequest) -> OrganizationChoice:
    """The session's organization if still allowed, else the first one (one query)."""
    organizations = tuple(organizations_of(request.user))
    chosen = request.session.get(SESSION_KEY)
    current = next(
        (org for org in organizations if org.name == chosen),
        organizations[0] if organizations else None,
    )
    return OrganizationChoice(organizations, current)


def choose_organization(request: HttpRequest, name: str) -> Organization | None:
    """Remember `name` as the session's organization if the user may switch to it."""
    organization = organizations_of(request.user).filter(name=name).first()
    if organization is not None:
        request.session[SESSION_KEY] = organization.name
    return organization


def layout_context(
    request: HttpRequest, choice: OrganizationChoice | None = None
) -> dict[str, Any]:
    """What the page layout needs: organizations, the current one, which links."""
    choice = choice or current_organization(request)
    user = request.user
    current = choice.current
    return {
        "organizations": choice.organizations,
        "organization": current,
        "can_manage_datasets": current is not None
        and user_can_manage_datasets(user, current),
        "can_see_datastores": user_is_any_admin(user),
    }
