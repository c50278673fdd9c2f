"""Organizations, users, roles, teams and API tokens."""

from __future__ import annotations

import hashlib

from django.conf import settings
from django.contrib.auth.models import AbstractUser, Group
from django.core.validators import RegexValidator
from django.db import models
from django.utils import timezone

from shared.protocol import NAME_PATTERN

name_validator = RegexValidator(
    NAME_PATTERN,
    "Use 1 to 128 characters: letters, digits, '_', '.', '-', "
    "not starting with '.' or '-'.",
)

API_TOKEN_PREFIX = "vxh_"  # noqa: S105 (a prefix, not a secret)
# Characters of a token kept in clear text so users can tell their tokens apart.
API_TOKEN_DISPLAY_CHARS = 8


def hash_secret(secret: str) -> str:
    """SHA-256 hex digest of a token or key: what the database stores."""
    return hashlib.sha256(secret.encode()).hexdigest()


class Role(models.TextChoices):
    ADMIN = "admin", "Administrator"
    DATASET_MANAGER = "dataset_manager", "Dataset manager"
    MEMBER = "member", "Member"


# Roles that see and edit every dataset of their organization.
DATASET_MANAGING_ROLES = (Role.ADMIN, Role.DATASET_MANAGER)


class User(AbstractUser):
    """A person (or a script's account). Roles live in `Membership`, per organization.

    A project-owned user model from the start, so fields can be added later without
    swapping the model under existing data.
    """


class Organization(models.Model):
    """A lab or institute: owns datasets, teams and memberships.

    `name` is technical (a directory name on datastores); `display_name` is for people.
    """

    name = models.CharField(max_length=128, unique=True, validators=[name_validator])
    display_name = models.CharField(max_length=255, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("name",)

    def __str__(self) -> str:
        return self.name


class Membership(models.Model):
    """A user's role in one organization; a user may belong to several."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships"
    )
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="memberships"
    )
    role = models.CharField(max_length=32, choices=Role.choices, default=Role.MEMBER)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("user", "organization"), name="membership_unique_user_org"
            ),
            models.CheckConstraint(
                condition=models.Q(role__in=Role.values), name="membership_role_valid"
            ),
        )

    def __str__(self) -> str:
        return f"{self.user} in {self.organization} ({self.role})"


class Team(models.Model):
    """Users of one organization that datasets (later folders) are shared with.

    Backed by a Django `Group`, so django-guardian object permissions can be granted
    to the team as a whole.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="teams"
    )
    name = models.CharField(max_length=100)
    group = models.OneToOneField(Group, on_delete=models.PROTECT, related_name="team")
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        ordering = ("organization", "name")
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "name"), name="team_unique_org_name"
            ),
        )

    def __str__(self) -> str:
        return f"{self.organization.name}/{self.name}"

    @staticmethod
    def group_name_for(organization_id: int, name: str) -> str:
        # Group names are global; the id keeps two organizations' teams apart.
        return f"team:{organization_id}:{name}"


class TeamMembership(models.Model):
    """A user in a team; a team manager may later edit the team's datasets."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        related_name="team_memberships",
    )
    team = models.ForeignKey(Team, on_delete=models.CASCADE, related_name="memberships")
    is_manager = models.BooleanField(default=False)
    created = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("user", "team"), name="team_membership_unique_user_team"
            ),
        )

    def __str__(self) -> str:
        return f"{self.user} in team {self.team_id}"


class ApiToken(models.Model):
    """A user's API token for scripts: `Authorization: Token vxh_...`.

    Only the SHA-256 of the token is stored; the plaintext is shown once, when
    created. `prefix` (its first characters) lets people recognize it in lists.
    """

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_tokens"
    )
    name = models.CharField(max_length=100, default="cli")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    prefix = models.CharField(max_length=16, editable=False)
    created = models.DateTimeField(default=timezone.now, editable=False)
    last_used = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ("-created",)

    def __str__(self) -> str:
        return f"{self.prefix}… ({self.name})"
