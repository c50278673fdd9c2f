"""Changes to organizations, users, teams and tokens. Each owns its transaction."""

from __future__ import annotations

import logging
import secrets
import unicodedata
from collections.abc import Collection

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from metaserver.accounts.models import (
    API_TOKEN_DISPLAY_CHARS,
    API_TOKEN_PREFIX,
    ApiToken,
    Membership,
    Organization,
    Role,
    Team,
    TeamMembership,
    User,
    hash_secret,
)

logger = logging.getLogger(__name__)

TEAM_NAME_MAX_LENGTH = 100
# The through table of User.groups: team membership is mirrored there for guardian.
UserGroup = User.groups.through


class AlreadyExists(ValidationError):
    """The name is taken (the API answers 409)."""


class LastAdminError(ValidationError):
    """The change would leave an organization without an active admin (409)."""


class TeamManagersLocked(ValidationError):
    """Someone who may not change a team's managers tried to (the API answers 403)."""


def _organization(organization: Organization | str) -> Organization:
    if isinstance(organization, Organization):
        return organization
    try:
        return Organization.objects.get(name=organization)
    except Organization.DoesNotExist:
        raise ValidationError(f"unknown organization {organization!r}") from None


def _role(role: Role | str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ValidationError(
            f"unknown role {role!r}; use one of {', '.join(Role.values)}"
        ) from None


def do_create_organization(name: str, display_name: str = "") -> Organization:
    """Create an organization and its root folder; ValidationError for a bad or
    taken name."""
    # Imported here: the datasets app builds on accounts, not the other way round.
    from metaserver.datasets.models import Folder

    if Organization.objects.filter(name=name).exists():
        raise AlreadyExists(f"organization {name!r} already exists")
    organization = Organization(name=name, display_name=display_name or name)
    organization.full_clean()
    try:
        with transaction.atomic():
            organization.save()
            Folder.objects.root_of(organization.pk)
    except IntegrityError:
        raise AlreadyExists(f"organization {name!r} already exists") from None
    logger.info("created organization %s", name)
    return organization


def do_update_organization(organization: Organization, *, display_name: str) -> None:
    """Change the name people see (blank: the technical name, which never changes)."""
    organization.display_name = display_name.strip() or organization.name
    organization.full_clean()
    with transaction.atomic():
        organization.save(update_fields=["display_name"])


def do_create_user(
    username: str,
    password: str | None,
    *,
    organization: Organization | str,
    role: Role | str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_superuser: bool = False,
    teams: Collection[Team] = (),
    managed_teams: Collection[Team] = (),
) -> User:
    """Create a user with a role in `organization`, in `teams` of it.

    `password` None gives an unusable password (token-only accounts, invitations).
    Passwords go through Django's password validators; problems raise
    ValidationError, a taken username (in any letter case) AlreadyExists. The user
    manages `managed_teams` and is a member of those and of `teams`.
    """
    org = _organization(organization)
    checked_role = _role(role)
    if User.objects.filter(username__iexact=username).exists():
        raise AlreadyExists(f"user {username!r} already exists")
    user = User(
        username=username,
        email=email,
        first_name=first_name,
        last_name=last_name,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user)
        user.set_password(password)
    user.full_clean()
    try:
        with transaction.atomic():
            user.save()
            Membership.objects.create(user=user, organization=org, role=checked_role)
            if teams or managed_teams:
                _set_user_teams(user, org, teams, managed_teams)
    except IntegrityError:
        raise AlreadyExists(f"user {username!r} already exists") from None
    logger.info("created user %s in %s as %s", username, org.name, checked_role)
    return user


def do_update_user(
    user: User,
    *,
    email: str | None = None,
    first_name: str | None = None,
    last_name: str | None = None,
    is_active: bool | None = None,
    organization: Organization | str | None = None,
    role: Role | str | None = None,
    teams: Collection[Team] | None = None,
    managed_teams: Collection[Team] | None = None,
) -> None:
    """Change a user's account and, in `organization`, role and teams; all or nothing.

    None leaves a value alone. Role and teams need `organization`; a role adds the
    membership if missing. Deactivating the last active admin of an organization
    raises LastAdminError.
    """
    in_organization = role is not None or teams is not None or managed_teams is not None
    if in_organization and organization is None:
        raise ValidationError("an organization is needed to change a role or teams")
    account = {
        "email": email,
        "first_name": first_name,
        "last_name": last_name,
        "is_active": is_active,
    }
    changed = [field for field, value in account.items() if value is not None]
    with transaction.atomic():
        if is_active is False:
            administrated = Organization.objects.filter(
                pk__in=Membership.objects.filter(user=user, role=Role.ADMIN).values(
                    "organization_id"
                )
            )
            for org in administrated.select_for_update().order_by("pk"):
                _refuse_removing_last_admin(org, user)
        if changed:
            for field in changed:
                setattr(user, field, account[field])
            all_fields = {f.name for f in User._meta.concrete_fields}
            user.clean_fields(exclude=all_fields - set(changed))
            user.save(update_fields=changed)
        if organization is not None and in_organization:
            org = _organization(organization)
            if role is not None:
                do_set_role(user, org, role)
            if teams is not None or managed_teams is not None:
                do_set_user_teams(user, org, teams=teams, managed_teams=managed_teams)
    logger.info("updated user %s", user.username)


def do_set_role(
    user: User, organization: Organization | str, role: Role | str
) -> Membership:
    """Give `user` `role` in `organization`, adding the membership if needed.

    Demoting the last active admin raises LastAdminError.
    """
    org = _organization(organization)
    checked_role = _role(role)
    with transaction.atomic():
        lock_organization(org)
        if checked_role != Role.ADMIN:
            _refuse_removing_last_admin(org, user)
        membership, _ = Membership.objects.update_or_create(
            user=user, organization=org, defaults={"role": checked_role}
        )
    return membership


def do_remove_membership(user: User, organization: Organization | str) -> None:
    """Take `user` out of `organization` and its teams; the account stays.

    Removing the last active admin raises LastAdminError.
    """
    org = _organization(organization)
    with transaction.atomic():
        lock_organization(org)
        membership = Membership.objects.filter(user=user, organization=org).first()
        if membership is None:
            raise ValidationError(f"{user.username} is not a member of {org.name}")
        _refuse_removing_last_admin(org, user)
        team_memberships = TeamMembership.objects.filter(
            user=user, team__organization=org
        )
        group_ids = list(team_memberships.values_list("team__group_id", flat=True))
        team_memberships.delete()
        UserGroup.objects.filter(user_id=user.pk, group_id__in=group_ids).delete()
        membership.delete()
    logger.info("removed %s from %s", user.username, org.name)


def do_set_user_teams(
    user: User,
    organization: Organization | str,
    *,
    teams: Collection[Team] | None = None,
    managed_teams: Collection[Team] | None = None,
) -> None:
    """Replace `user`'s teams in `organization` (the user must be a member).

    `teams` None keeps the current teams (plus `managed_teams`); `managed_teams`
    None keeps the manager flags of the teams that stay.
    """
    org = _organization(organization)
    with transaction.atomic():
        lock_organization(org)
        if not Membership.objects.filter(user=user, organization=org).exists():
            raise ValidationError(f"{user.username} is not a member of {org.name}")
        _set_user_teams(user, org, teams, managed_teams)


def do_set_password(user: User, password: str) -> None:
    """Set a new password (validated) and log the user's other sessions out."""
    validate_password(password, user)
    user.set_password(password)
    with transaction.atomic():
        user.save(update_fields=["password"])


def do_create_api_token(user: User, name: str = "cli") -> str:
    """Create an API token; returns the plaintext, never stored or shown again."""
    token = API_TOKEN_PREFIX + secrets.token_urlsafe(32)
    with transaction.atomic():
        ApiToken.objects.create(
            user=user,
            name=name[:100],
            key_hash=hash_secret(token),
            prefix=token[:API_TOKEN_DISPLAY_CHARS],
        )
    logger.info("created API token %r for %s", name, user.username)
    return token


def do_revoke_api_tokens(user: User, name: str | None = None) -> int:
    """Delete the user's tokens (those called `name` if given); returns how many."""
    tokens = ApiToken.objects.filter(user=user)
    if name is not None:
        tokens = tokens.filter(name=name)
    with transaction.atomic():
        deleted, _ = tokens.delete()
    return deleted


def do_create_team(organization: Organization | str, name: str) -> Team:
    """Create a team and the Django group behind it."""
    org = _organization(organization)
    name = clean_team_name(name)
    try:
        with transaction.atomic():
            if Team.objects.filter(organization=org, name=name).exists():
                raise AlreadyExists(f"team {name!r} already exists in {org.name}")
            group = Group.objects.create(name=Team.group_name_for(org.pk, name))
            team = Team.objects.create(organization=org, name=name, group=group)
    except IntegrityError:
        raise AlreadyExists(f"team {name!r} already exists in {org.name}") from None
    logger.info("created team %s", team)
    return team


def do_add_team_member(
    team: Team, user: User, *, is_manager: bool = False
) -> TeamMembership:
    """Put a member of the team's organization into the team."""
    with transaction.atomic():
        if not Membership.objects.filter(
            user=user, organization_id=team.organization_id
        ).exists():
            raise ValidationError(
                f"{user.username} is not a member of the team's organization"
            )
        membership, _ = TeamMembership.objects.update_or_create(
            user=user, team=team, defaults={"is_manager": is_manager}
        )
        user.groups.add(team.group)
    return membership


def lock_organization(organization: Organization | int) -> None:
    """Serialize changes of an organization's memberships and team memberships
    (inside a transaction): last-admin checks and member checks stay true."""
    pk = organization if isinstance(organization, int) else organization.pk
    Organization.objects.select_for_update().filter(pk=pk).first()


def _refuse_removing_last_admin(organization: Organization, user: User) -> None:
    """Call with the organization locked, before `user` stops being an active admin."""
    active_admins = set(
        Membership.objects.filter(
            organization=organization, role=Role.ADMIN, user__is_active=True
        ).values_list("user_id", flat=True)
    )
    if active_admins == {user.pk}:
        raise LastAdminError(
            f"{user.username} is the last admin of {organization.name}; "
            "make someone else admin first"
        )


def clean_team_name(name: str) -> str:
    """`name` without surrounding blanks, if it is a valid team name."""
    name = name.strip()
    if not name or len(name) > TEAM_NAME_MAX_LENGTH:
        raise ValidationError(f"team names have 1 to {TEAM_NAME_MAX_LENGTH} characters")
    # A team is written "organization/team" in messages and logs.
    if "/" in name or any(unicodedata.category(c).startswith("C") for c in name):
        raise ValidationError("team names cannot contain '/' or control characters")
    return name


def _set_user_teams(
    user: User,
    organization: Organization,
    teams: Collection[Team] | None,
    managed_teams: Collection[Team] | None,
) -> None:
    """See do_set_user_teams; runs inside the caller's transaction."""
    given = [*(teams or ()), *(managed_teams or ())]
    foreign = sorted(t.name for t in given if t.organization_id != organization.pk)
    if foreign:
        raise ValidationError(f"not teams of {organization.name}: {', '.join(foreign)}")
    group_of = {t.pk: t.group_id for t in given}
    current = {
        m.team_id: m
        for m in TeamMembership.objects.select_related("team").filter(
            user=user, team__organization=organization
        )
    }
    group_of.update({pk: m.team.group_id for pk, m in current.items()})
    managed = {t.pk for t in managed_teams or ()}
    wanted = set(current) if teams is None else {t.pk for t in teams}
    wanted |= managed
    if managed_teams is None:
        managed = {pk for pk, m in current.items() if m.is_manager and pk in wanted}
    removed = current.keys() - wanted
    added = wanted - current.keys()
    TeamMembership.objects.filter(user=user, team_id__in=removed).delete()
    UserGroup.objects.filter(
        user_id=user.pk, group_id__in=[group_of[pk] for pk in removed]
    ).delete()
    changed = [
        m
        for pk, m in current.items()
        if pk in wanted and m.is_manager != (pk in managed)
    ]
    for membership in changed:
        membership.is_manager = membership.team_id in managed
    TeamMembership.objects.bulk_update(changed, ["is_manager"])
    TeamMembership.objects.bulk_create(
        TeamMembership(user=user, team_id=pk, is_manager=pk in managed) for pk in added
    )
    UserGroup.objects.bulk_create(
        (UserGroup(user_id=user.pk, group_id=group_of[pk]) for pk in added),
        ignore_conflicts=True,
    )
