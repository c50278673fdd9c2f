"""Changes to a team's name and members. Each owns its transaction.

A team's members are mirrored in its Django group (django-guardian grants
permissions to groups), so every change here updates both.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from metaserver.accounts.actions import (
    AlreadyExists,
    TeamManagersLocked,
    UserGroup,
    clean_team_name,
    lock_organization,
)
from metaserver.accounts.models import Membership, Team, TeamMembership, User

logger = logging.getLogger(__name__)


def do_rename_team(team: Team, name: str) -> None:
    """Rename a team and its group."""
    name = clean_team_name(name)
    try:
        with transaction.atomic():
            taken = Team.objects.filter(organization_id=team.organization_id, name=name)
            if taken.exclude(pk=team.pk).exists():
                raise AlreadyExists(
                    f"team {name!r} already exists in {team.organization}"
                )
            team.name = name
            team.save(update_fields=["name"])
            Group.objects.filter(pk=team.group_id).update(
                name=Team.group_name_for(team.organization_id, name)
            )
    except IntegrityError:
        raise AlreadyExists(
            f"team {name!r} already exists in {team.organization}"
        ) from None


def do_set_team_members(
    team: Team,
    members: Sequence[tuple[User, bool]],
    *,
    may_change_managers: bool = True,
) -> None:
    """Replace a team's members by `members` ((user, is_manager) pairs).

    Every user must be a member of the team's organization (ValidationError naming
    those who are not). Without `may_change_managers` (a team manager's edit) the
    set of managers must stay as it is, else TeamManagersLocked.
    """
    wanted = {user.pk: is_manager for user, is_manager in members}
    usernames = {user.pk: user.username for user, _ in members}
    with transaction.atomic():
        lock_organization(team.organization_id)
        in_organization = set(
            Membership.objects.filter(
                organization_id=team.organization_id, user_id__in=wanted
            ).values_list("user_id", flat=True)
        )
        outside = sorted(usernames[pk] for pk in wanted.keys() - in_organization)
        if outside:
            raise ValidationError(
                f"not members of {team.organization}: {', '.join(outside)}"
            )
        current = {m.user_id: m for m in TeamMembership.objects.filter(team=team)}
        if not may_change_managers:
            managers_before = {pk for pk, m in current.items() if m.is_manager}
            managers_after = {pk for pk, is_manager in wanted.items() if is_manager}
            if managers_before != managers_after:
                raise TeamManagersLocked(
                    f"only admins of {team.organization} can change team managers"
                )
        removed = current.keys() - wanted.keys()
        added = wanted.keys() - current.keys()
        TeamMembership.objects.filter(team=team, user_id__in=removed).delete()
        UserGroup.objects.filter(group_id=team.group_id, user_id__in=removed).delete()
        changed = [
            m
            for pk, m in current.items()
            if pk in wanted and m.is_manager != wanted[pk]
        ]
        for membership in changed:
            membership.is_manager = wanted[membership.user_id]
        TeamMembership.objects.bulk_update(changed, ["is_manager"])
        TeamMembership.objects.bulk_create(
            TeamMembership(team=team, user_id=pk, is_manager=wanted[pk]) for pk in added
        )
        UserGroup.objects.bulk_create(
            (UserGroup(user_id=pk, group_id=team.group_id) for pk in added),
            ignore_conflicts=True,
        )
    logger.info(
        "set members of team %s: %d added, %d removed", team, len(added), len(removed)
    )


def do_update_team(
    team: Team,
    *,
    name: str | None = None,
    members: Sequence[tuple[User, bool]] | None = None,
    may_change_managers: bool = True,
) -> None:
    """Rename a team and/or replace its members, all or nothing."""
    with transaction.atomic():
        if name is not None:
            do_rename_team(team, name)
        if members is not None:
            do_set_team_members(team, members, may_change_managers=may_change_managers)


def do_delete_team(team: Team) -> None:
    """Delete a team with its group: its members' and datasets' links go with it."""
    with transaction.atomic():
        group_id = team.group_id
        team.delete()
        Group.objects.filter(pk=group_id).delete()
    logger.info("deleted team %s", team)
