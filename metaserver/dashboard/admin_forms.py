"""What the admin pages' forms do: validate through the accounts API's serializers
(so the messages are the API's), then call the account actions.

Every function returns errors by field (`ALL` for the form as a whole) and the HTTP
status the page answers with: 400 for bad input, 403 for a refused change, 409
for a taken name or the last admin. An action either happens whole or not at all.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import QueryDict

from metaserver.accounts.access import (
    AnyUser,
    members_of_organization,
    teams_of_organization,
    user_can_edit_account,
)
from metaserver.accounts.actions import (
    AlreadyExists,
    LastAdminError,
    TeamManagersLocked,
    do_create_team,
    do_create_user,
    do_remove_membership,
    do_update_user,
)
from metaserver.accounts.api.serializers import (
    TeamCreateSerializer,
    TeamUpdateSerializer,
    UserCreateSerializer,
    UserUpdateSerializer,
)
from metaserver.accounts.models import Organization, Team, TeamMembership, User
from metaserver.accounts.team_actions import do_update_team

ALL = "form"
MAX_ID_DIGITS = 18


@dataclass
class Outcome:
    """Errors by field and the status to answer with; no errors: it happened."""

    errors: dict[str, list[str]] = field(default_factory=dict)
    status: int = 200
    created: Any = None

    @property
    def ok(self) -> bool:
        return not self.errors

    def fail(self, name: str, messages: list[str], status: int = 400) -> Outcome:
        self.errors.setdefault(name, []).extend(messages)
        self.status = max(self.status, status)
        return self


def _leaves(value: Any) -> Iterator[str]:
    if isinstance(value, Mapping):
        for item in value.values():
            yield from _leaves(item)
    elif isinstance(value, list):
        for item in value:
            yield from _leaves(item)
    else:
        yield str(value)


def _flatten(errors: Mapping[str, Any]) -> dict[str, list[str]]:
    """A serializer's `errors` as {field: [message, ...]} (nested lists merged)."""
    return {
        ALL if key == "non_field_errors" else key: list(_leaves(value))
        for key, value in errors.items()
    }


@contextmanager
def _action_errors(outcome: Outcome, name: str = ALL) -> Iterator[None]:
    """Like the API's `action_errors`: the same refusals, the same statuses."""
    try:
        yield
    except (AlreadyExists, LastAdminError) as e:
        outcome.fail(name, e.messages, 409)
    except TeamManagersLocked as e:
        outcome.fail(name, e.messages, 403)
    except DjangoValidationError as e:
        if hasattr(e, "error_dict"):
            for key, messages in e.message_dict.items():
                outcome.fail(ALL if key == "__all__" else key, messages)
        else:
            outcome.fail(name, e.messages)


def team_references(values: list[str]) -> list[int | str]:
    """Checkbox values: team ids; anything else stays a (probably unknown) name."""
    return [
        int(value) if value.isdigit() and len(value) <= MAX_ID_DIGITS else value
        for value in values
    ]


def _teams(
    organization: Organization, references: list[int | str], name: str, out: Outcome
) -> list[Team]:
    teams, unknown = teams_of_organization(organization, references)
    if unknown:
        listed = ", ".join(repr(ref) for ref in unknown[:20])
        out.fail(name, [f"no such teams in {organization}: {listed}"])
    return teams


# Teams


def create_team(organization: Organization, name: str) -> Outcome:
    out = Outcome()
    body = TeamCreateSerializer(data={"name": name, "organization": organization.name})
    if not body.is_valid():
        return Outcome(_flatten(body.errors), 400)
    with _action_errors(out, "name"):
        out.created = do_create_team(organization, body.validated_data["name"])
    return out


def rename_team(team: Team, name: str) -> Outcome:
    out = Outcome()
    body = TeamUpdateSerializer(data={"name": name})
    if not body.is_valid():
        return Outcome(_flatten(body.errors), 400)
    with _action_errors(out, "name"):
        do_update_team(team, name=body.validated_data["name"])
    return out


def _current_members(team: Team) -> list[dict[str, Any]]:
    memberships = TeamMembership.objects.filter(team=team).select_related("user")
    return [
        {"username": m.user.username, "is_manager": m.is_manager}
        for m in memberships.order_by("user__username")
    ]


def set_team_members(
    team: Team, members: list[dict[str, Any]], error_field: str = "members"
) -> Outcome:
    """Replace the members as `PATCH /api/teams/{id}/` with `members` does."""
    out = Outcome()
    body = TeamUpdateSerializer(data={"members": members})
    if not body.is_valid():
        flat = _flatten(body.errors)
        return Outcome({error_field: [m for ms in flat.values() for m in ms]}, 400)
    listed = body.validated_data["members"]
    users = members_of_organization(team.organization, [m["username"] for m in listed])
    outside = [m["username"] for m in listed if m["username"] not in users]
    if outside:
        return out.fail(
            error_field,
            [f"not members of {team.organization}: {', '.join(outside[:20])}"],
        )
    pairs = [(users[m["username"]], m["is_manager"]) for m in listed]
    with _action_errors(out, error_field):
        do_update_team(team, members=pairs)
    return out


def add_team_member(team: Team, username: str, is_manager: bool) -> Outcome:
    if not username:
        return Outcome({"username": ["Choose a member of the organization."]}, 400)
    members = [
        *_current_members(team),
        {"username": username, "is_manager": is_manager},
    ]
    return set_team_members(team, members, "username")


def change_team_member(team: Team, user: User, action: str) -> Outcome:
    """`remove` the user from the team, or make them `manager` or plain `member`."""
    members = _current_members(team)
    if not any(m["username"] == user.username for m in members):
        return Outcome({ALL: [f"{user.username} is not in team {team.name}"]}, 400)
    if action == "remove":
        members = [m for m in members if m["username"] != user.username]
    elif action in ("manager", "member"):
        for member in members:
            if member["username"] == user.username:
                member["is_manager"] = action == "manager"
    else:
        return Outcome({ALL: [f"unknown action {action[:30]!r}"]}, 400)
    return set_team_members(team, members, ALL)


# Users


def _text(post: QueryDict, name: str) -> str:
    return post.get(name, "").strip()


def create_user(organization: Organization, post: QueryDict) -> Outcome:
    """A new user from the form: no password makes an invitation."""
    out = Outcome()
    body = UserCreateSerializer(
        data={
            "username": _text(post, "username"),
            "email": _text(post, "email"),
            "first_name": _text(post, "first_name"),
            "last_name": _text(post, "last_name"),
            "organization": organization.name,
            "role": post.get("role", ""),
            "password": post.get("password") or None,
            "teams": team_references(post.getlist("teams")),
            "managed_teams": team_references(post.getlist("managed_teams")),
        }
    )
    if not body.is_valid():
        return Outcome(_flatten(body.errors), 400)
    data = body.validated_data
    teams = _teams(organization, data["teams"], "teams", out)
    managed_teams = _teams(organization, data["managed_teams"], "managed_teams", out)
    if not out.ok:
        return out
    with _action_errors(out, "username"):
        out.created = do_create_user(
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
    return out


def update_user(
    caller: AnyUser, user: User, organization: Organization, post: QueryDict
) -> Outcome:
    """Role, teams, managed teams and active flag in one all-or-nothing change."""
    out = Outcome()
    data: dict[str, Any] = {
        "organization": organization.name,
        "role": post.get("role", ""),
        "teams": team_references(post.getlist("teams")),
        "managed_teams": team_references(post.getlist("managed_teams")),
    }
    is_active = post.get("is_active") in ("on", "true", "yes")
    if is_active != user.is_active:
        data["is_active"] = is_active
    body = UserUpdateSerializer(data=data)
    if not body.is_valid():
        return Outcome(_flatten(body.errors), 400)
    valid = body.validated_data
    if "is_active" in valid:
        if user.pk == caller.pk:
            out.fail("is_active", ["you cannot deactivate yourself"], 403)
        elif not user_can_edit_account(caller, user):
            out.fail(
                "is_active",
                [
                    "only a superuser or the admins of all of "
                    f"{user.username}'s organizations can change is_active"
                ],
                403,
            )
    teams = _teams(organization, valid["teams"], "teams", out)
    managed_teams = _teams(organization, valid["managed_teams"], "managed_teams", out)
    if not out.ok:
        return out
    with _action_errors(out):
        do_update_user(
            user,
            is_active=valid.get("is_active"),
            organization=organization,
            role=valid["role"],
            teams=teams,
            managed_teams=managed_teams,
        )
    return out


def remove_user(user: User, organization: Organization) -> Outcome:
    out = Outcome()
    with _action_errors(out):
        do_remove_membership(user, organization)
    return out
