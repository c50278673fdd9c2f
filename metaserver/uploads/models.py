"""Uploads: a reservation of a dataset name, then chunks sent to a datastore."""

from __future__ import annotations

import uuid

from django.conf import settings
from django.db import models
from django.utils import timezone

from metaserver.accounts.models import Organization, Team, name_validator
from metaserver.datasets.models import Folder
from metaserver.datastores.models import DataStore
from shared.uploads import CONVERSION_FORMATS


class UploadState(models.TextChoices):
    RESERVED = "reserved", "Reserved"  # chunks go to the datastore
    FINISHING = "finishing", "Finishing"  # the datastore checks and unpacks
    DONE = "done", "Done"  # imported, or handed to a conversion job
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# States that hold the dataset name (one upload per name and organization).
ACTIVE_STATES = (UploadState.RESERVED, UploadState.FINISHING)


class Upload(models.Model):
    """One upload of a dataset into an organization, through one datastore.

    `files` lists `{path, size, sha256}` as declared at reservation; the datastore
    accepts nothing else and checks every digest at finish. Only the SHA-256 of
    the upload token is stored (the datastore gets the same hash). `result` says
    what came out: `{"dataset": "org/name"}` and, for conversions, `"job"`.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="uploads"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="uploads",
    )
    datastore = models.ForeignKey(
        DataStore,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="uploads",
    )
    name = models.CharField(max_length=128, validators=[name_validator])
    folder = models.ForeignKey(
        Folder, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    allowed_teams = models.ManyToManyField(Team, blank=True, related_name="uploads")
    voxel_size = models.JSONField(null=True, blank=True)
    unit = models.CharField(max_length=32, default="nanometer")
    layer_hints = models.JSONField(default=list, blank=True)
    # Output format of a conversion (wkw, the default, or zarr3).
    data_format = models.CharField(
        max_length=8, choices=[(f, f) for f in CONVERSION_FORMATS], default="wkw"
    )
    # A raw file's layout for its conversion: {dtype, shape, order, header_bytes}.
    raw = models.JSONField(null=True, blank=True)
    files = models.JSONField(default=list)
    file_count = models.PositiveIntegerField(default=0)
    total_size = models.PositiveBigIntegerField(default=0)
    token_hash = models.CharField(max_length=64, editable=False)
    state = models.CharField(
        max_length=16, choices=UploadState.choices, default=UploadState.RESERVED
    )
    message = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now)
    expires = models.DateTimeField()
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created",)
        constraints = (
            # Two reservations of one name: the database lets exactly one in.
            models.UniqueConstraint(
                fields=("organization", "name"),
                condition=models.Q(state__in=("reserved", "finishing")),
                name="upload_one_active_per_name",
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=UploadState.values),
                name="upload_state_valid",
            ),
        )
        indexes = (
            models.Index(fields=("organization", "state"), name="upload_org_state"),
        )

    def __str__(self) -> str:
        return f"upload {self.pk} ({self.organization_id}/{self.name}, {self.state})"

    @property
    def is_expired(self) -> bool:
        return timezone.now() > self.expires
