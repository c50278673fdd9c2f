"""The dashboard's admin pages: teams and users of the current organization.

Admins (and superusers) change teams and users; dataset managers look at the
users. Who may see and change what is decided by `metaserver.accounts.access`;
changes go through the account actions via `admin_forms`, whose messages are
the API's. Every change is a POST with CSRF; forms that fail are shown again
with the messages next to their fields (status 400, 403 or 409).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db.models import Count, Prefetch, Q, QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import (
    require_http_methods,
    require_POST,
    require_safe,
)
from rest_framework import exceptions

from metaserver.accounts.access import (
    get_team_for_user,
    get_user_for_user,
    memberships_visible_to,
    role_in,
    team_memberships_visible_to,
    teams_visible_to,
    user_can_administrate_organization,
    user_can_manage_datasets,
    user_is_any_admin,
    users_visible_to,
)
from metaserver.accounts.models import (
    Membership,
    Organization,
    Role,
    Team,
    TeamMembership,
    User,
)
from metaserver.accounts.team_actions import do_delete_team
from metaserver.dashboard import admin_forms
from metaserver.dashboard.organizations import (
    OrganizationChoice,
    current_organization,
    layout_context,
)
from metaserver.dashboard.views import HtmxRequest, login_required
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

USERS_PAGE_SIZE = 100
MAX_QUERY_CHARS = 200
GET_AND_POST = ("GET", "HEAD", "POST")


@dataclass(frozen=True)
class AdminScope:
    """The current organization and whether the caller administrates it."""

    choice: OrganizationChoice
    organization: Organization
    administrates: bool


def _scope(request: HtmxRequest, *, administrate: bool) -> AdminScope:
    """Admins (or, to look, dataset managers) of the current organization; else 403."""
    choice = current_organization(request)
    organization = choice.current
    if organization is None:
        raise PermissionDenied
    user = request.user
    role = None if user.is_superuser else role_in(user, organization)
    administrates = user.is_superuser or role == Role.ADMIN
    if not administrates and (administrate or role != Role.DATASET_MANAGER):
        raise PermissionDenied
    return AdminScope(choice, organization, administrates)


def _render(
    request: HtmxRequest,
    scope: AdminScope,
    template: str,
    context: dict[str, Any],
    status: int = 200,
) -> HttpResponse:
    layout = layout_context(request, scope.choice)
    return render(
        request,
        template,
        {
            **layout,
            "section": "admin",
            # The sidebar's links (see templatetags/admin_nav.py).
            "admin_flags": {
                "teams": scope.administrates,
                "users": True,
                "datastores": layout["can_see_datastores"],
            },
            "can_edit": scope.administrates,
            **context,
        },
        status=status,
    )


def _confirm(
    request: HtmxRequest,
    *,
    title: str,
    message: str,
    action: str,
    label: str,
    back: str,
) -> HttpResponse:
    """The page asking before a deletion when JavaScript's dialog did not."""
    return render(
        request,
        "dashboard/admin/confirm.html",
        {
            **layout_context(request),
            "section": "admin",
            "title": title,
            "message": message,
            "action": action,
            "confirm_label": label,
            "back": back,
            "fields": {},
        },
    )


def _confirmed(request: HtmxRequest) -> bool:
    return request.POST.get("confirmed") == "yes"


@require_safe
@login_required
def admin_index(request: HtmxRequest) -> HttpResponse:
    """The first admin page the caller may open."""
    organization = current_organization(request).current
    user = request.user
    if organization is not None:
        if user_can_administrate_organization(user, organization):
            return HttpResponseRedirect(reverse("dashboard:admin-teams"))
        if user_can_manage_datasets(user, organization):
            return HttpResponseRedirect(reverse("dashboard:admin-users"))
    if user_is_any_admin(user):
        return HttpResponseRedirect(reverse("dashboard:datastores"))
    raise PermissionDenied


# Teams


def _teams_of(request: HtmxRequest, organization: Organization) -> QuerySet[Team]:
    return (
        teams_visible_to(request.user)
        .filter(organization=organization)
        .annotate(
            member_count=Count("memberships"),
            manager_count=Count("memberships", filter=Q(memberships__is_manager=True)),
        )
        .order_by("name")
    )


@require_http_methods(GET_AND_POST)
@login_required
def teams(request: HtmxRequest) -> HttpResponse:
    """The organization's teams with member counts; POST creates one."""
    scope = _scope(request, administrate=True)
    outcome = admin_forms.Outcome()
    name = ""
    if request.method == "POST":
        name = request.POST.get("name", "")
        outcome = admin_forms.create_team(scope.organization, name)
        if outcome.ok:
            team = outcome.created
            messages.success(
                request, f"Team {team.name} created. Add its members here."
            )
            return HttpResponseRedirect(
                reverse("dashboard:admin-team", args=(team.pk,))
            )
    return _render(
        request,
        scope,
        "dashboard/admin/teams.html",
        {
            "teams": list(_teams_of(request, scope.organization)),
            "name": name,
            "errors": outcome.errors,
            "admin_page": "teams",
        },
        outcome.status,
    )


def _team(request: HtmxRequest, team_id: int) -> tuple[AdminScope, Team]:
    """The team if the caller administrates its organization: else 404 or 403."""
    try:
        team = get_team_for_user(request.user, team_id, AccessMode.ADMINISTRATE)
    except exceptions.NotFound:
        raise Http404(f"team {team_id} not found") from None
    except exceptions.PermissionDenied:
        raise PermissionDenied from None
    choice = current_organization(request)
    return AdminScope(choice, team.organization, administrates=True), team


def _render_team(
    request: HtmxRequest,
    scope: AdminScope,
    team: Team,
    *,
    errors: dict[str, list[str]] | None = None,
    status: int = 200,
    name: str | None = None,
) -> HttpResponse:
    """Two queries: the team's members, and the organization's members with roles."""
    in_team = list(
        TeamMembership.objects.filter(team=team)
        .select_related("user")
        .order_by("user__username")
    )
    organization_members = list(
        Membership.objects.filter(organization_id=team.organization_id)
        .select_related("user")
        .order_by("user__username")
    )
    roles = {m.user_id: m.get_role_display() for m in organization_members}
    member_ids = {m.user_id for m in in_team}
    return _render(
        request,
        scope,
        "dashboard/admin/team.html",
        {
            "team": team,
            "members": [(m, roles.get(m.user_id, "")) for m in in_team],
            "candidates": [
                m for m in organization_members if m.user_id not in member_ids
            ],
            "manager_count": sum(1 for m in in_team if m.is_manager),
            "name": team.name if name is None else name,
            "errors": errors or {},
            "admin_page": "teams",
        },
        status,
    )


@require_safe
@login_required
def team_detail(request: HtmxRequest, team_id: int) -> HttpResponse:
    scope, team = _team(request, team_id)
    return _render_team(request, scope, team)


@require_POST
@login_required
def team_rename(request: HtmxRequest, team_id: int) -> HttpResponse:
    scope, team = _team(request, team_id)
    old = team.name
    name = request.POST.get("name", "")
    outcome = admin_forms.rename_team(team, name)
    if not outcome.ok:
        team.name = old
        return _render_team(
            request,
            scope,
            team,
            errors=outcome.errors,
            status=outcome.status,
            name=name,
        )
    messages.success(request, f"Team {old} renamed to {team.name}.")
    return HttpResponseRedirect(reverse("dashboard:admin-team", args=(team.pk,)))


@require_POST
@login_required
def team_delete(request: HtmxRequest, team_id: int) -> HttpResponse:
    _, team = _team(request, team_id)
    if not _confirmed(request):
        return _confirm(
            request,
            title=f"Delete team {team.name}?",
            message="Its members stay in the organization but lose access to the "
            "datasets and folders shared with this team.",
            action=reverse("dashboard:admin-team-delete", args=(team.pk,)),
            label="Delete team",
            back=reverse("dashboard:admin-team", args=(team.pk,)),
        )
    do_delete_team(team)
    messages.success(request, f"Team {team.name} deleted.")
    return HttpResponseRedirect(reverse("dashboard:admin-teams"))


@require_POST
@login_required
def team_add_member(request: HtmxRequest, team_id: int) -> HttpResponse:
    scope, team = _team(request, team_id)
    username = request.POST.get("username", "").strip()
    is_manager = request.POST.get("is_manager") in ("on", "true", "yes")
    outcome = admin_forms.add_team_member(team, username, is_manager)
    if not outcome.ok:
        return _render_team(
            request, scope, team, errors=outcome.errors, status=outcome.status
        )
    role = "manager" if is_manager else "member"
    messages.success(request, f"{username} added to {team.name} as {role}.")
    return HttpResponseRedirect(reverse("dashboard:admin-team", args=(team.pk,)))


@require_POST
@login_required
def team_member(request: HtmxRequest, team_id: int, user_id: int) -> HttpResponse:
    """Remove a member, or make them manager (`action` manager) or not (member)."""
    scope, team = _team(request, team_id)
    user = (
        User.objects.filter(pk=user_id, team_memberships__team=team).first()
        if user_id
        else None
    )
    if user is None:
        raise Http404(f"user {user_id} is not in team {team.name}")
    action = request.POST.get("action", "")
    outcome = admin_forms.change_team_member(team, user, action)
    if not outcome.ok:
        return _render_team(
            request, scope, team, errors=outcome.errors, status=outcome.status
        )
    done = {
        "remove": f"{user.username} removed from {team.name}.",
        "manager": f"{user.username} now manages {team.name}.",
        "member": f"{user.username} no longer manages {team.name}.",
    }
    messages.success(request, done[action])
    return HttpResponseRedirect(reverse("dashboard:admin-team", args=(team.pk,)))


# Users


@dataclass(frozen=True)
class UserRow:
    user: User
    role: str
    role_label: str
    teams: list[tuple[str, bool]]


def _users_of(
    request: HtmxRequest, organization: Organization, query: str
) -> QuerySet[User]:
    """The organization's users, with their role and teams there (two prefetches)."""
    caller = request.user
    in_organization = memberships_visible_to(caller).filter(organization=organization)
    users = users_visible_to(caller).filter(pk__in=in_organization.values("user_id"))
    if query:
        users = users.filter(
            Q(username__icontains=query)
            | Q(email__icontains=query)
            | Q(first_name__icontains=query)
            | Q(last_name__icontains=query)
        )
    return users.order_by("username").prefetch_related(
        Prefetch("memberships", in_organization, to_attr="organization_memberships"),
        Prefetch(
            "team_memberships",
            team_memberships_visible_to(caller)
            .filter(team__organization=organization)
            .select_related("team")
            .order_by("team__name"),
            to_attr="organization_team_memberships",
        ),
    )


def _user_row(user: User) -> UserRow:
    membership = user.organization_memberships[0]
    return UserRow(
        user=user,
        role=membership.role,
        role_label=membership.get_role_display(),
        teams=[(m.team.name, m.is_manager) for m in user.organization_team_memberships],
    )


@require_safe
@login_required
def users(request: HtmxRequest) -> HttpResponse:
    """The organization's users: role, teams, active, last login, invitation."""
    scope = _scope(request, administrate=False)
    query = request.GET.get("q", "").strip()[:MAX_QUERY_CHARS]
    page = Paginator(_users_of(request, scope.organization, query), USERS_PAGE_SIZE)
    current = page.get_page(request.GET.get("page"))
    return _render(
        request,
        scope,
        "dashboard/admin/users.html",
        {
            "page": current,
            "rows": [_user_row(user) for user in current.object_list],
            "query": query,
            "admin_page": "users",
        },
    )


def _team_choices(
    organization: Organization, teams: set[int], managed: set[int]
) -> list[tuple[Team, bool, bool]]:
    return [
        (team, team.pk in teams or team.pk in managed, team.pk in managed)
        for team in Team.objects.filter(organization=organization).order_by("name")
    ]


def _posted_team_ids(request: HtmxRequest, name: str) -> set[int]:
    return {int(v) for v in request.POST.getlist(name) if v.isdigit() and len(v) < 19}


@require_http_methods(GET_AND_POST)
@login_required
def user_new(request: HtmxRequest) -> HttpResponse:
    """Create a user in the organization; without a password it is an invitation."""
    scope = _scope(request, administrate=True)
    outcome = admin_forms.Outcome()
    values: dict[str, Any] = {"role": Role.MEMBER}
    if request.method == "POST":
        outcome = admin_forms.create_user(scope.organization, request.POST)
        if outcome.ok:
            user = outcome.created
            note = (
                ""
                if user.has_usable_password()
                else " The account has no password yet: it is an invitation."
            )
            messages.success(request, f"User {user.username} created.{note}")
            return HttpResponseRedirect(reverse("dashboard:admin-users"))
        values = {
            name: request.POST.get(name, "")
            for name in ("username", "email", "first_name", "last_name", "role")
        }
    teams = _team_choices(
        scope.organization,
        _posted_team_ids(request, "teams"),
        _posted_team_ids(request, "managed_teams"),
    )
    return _render(
        request,
        scope,
        "dashboard/admin/user_new.html",
        {
            "values": values,
            "roles": Role.choices,
            "team_choices": teams,
            "errors": outcome.errors,
            "admin_page": "users",
        },
        outcome.status,
    )


def _role_of(
    request: HtmxRequest, user: User, organization: Organization
) -> str | None:
    """`user`'s role in `organization` (active or not), None for non-members."""
    return (
        memberships_visible_to(request.user)
        .filter(user=user, organization=organization)
        .values_list("role", flat=True)
        .first()
    )


def _member(request: HtmxRequest, organization: Organization, username: str) -> User:
    """A user of `organization` whom the caller sees; else 404."""
    try:
        user = get_user_for_user(request.user, username)
    except exceptions.NotFound:
        raise Http404(f"user {username!r} not found") from None
    if _role_of(request, user, organization) is None:
        raise Http404(f"{username} is not a member of {organization}")
    return user


def _render_user(
    request: HtmxRequest,
    scope: AdminScope,
    user: User,
    *,
    outcome: admin_forms.Outcome | None = None,
) -> HttpResponse:
    outcome = outcome or admin_forms.Outcome()
    role = _role_of(request, user, scope.organization)
    if outcome.errors and "role" in request.POST:
        teams = _posted_team_ids(request, "teams")
        managed = _posted_team_ids(request, "managed_teams")
        role_value = request.POST.get("role", "")
        is_active = request.POST.get("is_active") in ("on", "true", "yes")
    else:
        current = TeamMembership.objects.filter(
            user=user, team__organization=scope.organization
        )
        teams = {m.team_id for m in current}
        managed = {m.team_id for m in current if m.is_manager}
        role_value = role or ""
        is_active = user.is_active
    return _render(
        request,
        scope,
        "dashboard/admin/user.html",
        {
            "target": user,
            "role": role,
            "role_value": role_value,
            "is_active": is_active,
            "roles": Role.choices,
            "team_choices": _team_choices(scope.organization, teams, managed),
            "errors": outcome.errors,
            "is_self": user.pk == request.user.pk,
            "admin_page": "users",
        },
        outcome.status,
    )


@require_http_methods(GET_AND_POST)
@login_required
def user_detail(request: HtmxRequest, username: str) -> HttpResponse:
    """A user's role, teams and active flag: admins change them, managers look."""
    scope = _scope(request, administrate=request.method == "POST")
    user = _member(request, scope.organization, username)
    if request.method == "POST":
        outcome = admin_forms.update_user(
            request.user, user, scope.organization, request.POST
        )
        if not outcome.ok:
            user.refresh_from_db()
            return _render_user(request, scope, user, outcome=outcome)
        messages.success(request, f"Changes to {user.username} saved.")
        return HttpResponseRedirect(reverse("dashboard:admin-user", args=(username,)))
    return _render_user(request, scope, user)


@require_POST
@login_required
def user_remove(request: HtmxRequest, username: str) -> HttpResponse:
    """Take a user out of the organization and its teams (the account stays)."""
    scope = _scope(request, administrate=True)
    user = _member(request, scope.organization, username)
    back = reverse("dashboard:admin-user", args=(username,))
    if not _confirmed(request):
        return _confirm(
            request,
            title=f"Remove {username} from {scope.organization}?",
            message="They leave the organization and its teams; the account "
            "itself stays.",
            action=reverse("dashboard:admin-user-remove", args=(username,)),
            label="Remove from organization",
            back=back,
        )
    outcome = admin_forms.remove_user(user, scope.organization)
    if not outcome.ok:
        return _render_user(request, scope, user, outcome=outcome)
    messages.success(request, f"{username} removed from {scope.organization}.")
    if user.pk == request.user.pk:
        return HttpResponseRedirect(reverse("dashboard:home"))
    return HttpResponseRedirect(reverse("dashboard:admin-users"))


urlpatterns = [
    path("", admin_index, name="admin"),
    path("teams/", teams, name="admin-teams"),
    path("teams/<int:team_id>/", team_detail, name="admin-team"),
    path("teams/<int:team_id>/rename/", team_rename, name="admin-team-rename"),
    path("teams/<int:team_id>/delete/", team_delete, name="admin-team-delete"),
    path("teams/<int:team_id>/members/", team_add_member, name="admin-team-add"),
    path(
        "teams/<int:team_id>/members/<int:user_id>/",
        team_member,
        name="admin-team-member",
    ),
    path("users/", users, name="admin-users"),
    path("new-user/", user_new, name="admin-user-new"),
    path("users/<str:username>/", user_detail, name="admin-user"),
    path("users/<str:username>/remove/", user_remove, name="admin-user-remove"),
]
