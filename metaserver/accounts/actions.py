"""Changes to organizations, users, teams and tokens. Each owns its transaction."""

from __future__ import annotations

import logging
import secrets

from django.contrib.auth.models import Group
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.db import transaction

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
    """Create an organization; ValidationError for a bad or taken name."""
    organization = Organization(name=name, display_name=display_name or name)
    organization.full_clean()
    with transaction.atomic():
        organization.save()
    logger.info("created organization %s", name)
    return organization


def do_create_user(
    username: str,
    password: str | None,
    *,
    organization: Organization | str,
    role: Role | str,
    email: str = "",
    is_superuser: bool = False,
) -> User:
    """Create a user with a role in `organization`.

    `password` None gives an unusable password (token-only accounts). Passwords go
    through Django's password validators; problems raise ValidationError.
    """
    org = _organization(organization)
    checked_role = _role(role)
    user = User(
        username=username,
        email=email,
        is_superuser=is_superuser,
        is_staff=is_superuser,
    )
    if password is None:
        user.set_unusable_password()
    else:
        validate_password(password, user)
        user.set_password(password)
    user.full_clean()
    with transaction.atomic():
        user.save()
        Membership.objects.create(user=user, organization=org, role=checked_role)
    logger.info("created user %s in %s as %s", username, org.name, checked_role)
    return user


def do_set_role(
    user: User, organization: Organization | str, role: Role | str
) -> Membership:
    """Give `user` `role` in `organization`, adding the membership if needed."""
    org = _organization(organization)
    checked_role = _role(role)
    with transaction.atomic():
        membership, _ = Membership.objects.update_or_create(
            user=user, organization=org, defaults={"role": checked_role}
        )
    return membership


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
    name = name.strip()
    if not name or len(name) > 100:
        raise ValidationError("team name must have 1 to 100 characters")
    with transaction.atomic():
        if Team.objects.filter(organization=org, name=name).exists():
            raise ValidationError(f"team {name!r} already exists in {org.name}")
        group = Group.objects.create(name=Team.group_name_for(org.pk, name))
        return Team.objects.create(organization=org, name=name, group=group)


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
