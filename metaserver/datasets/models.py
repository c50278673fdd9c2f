"""Datasets: the metaserver's record of what the datastores hold."""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from metaserver.accounts.models import Organization, Team, name_validator
from metaserver.datastores.models import DataStore
from shared.protocol import DatasetStatus


class Status(models.TextChoices):
    """`shared.protocol.DatasetStatus` as Django choices (the same values)."""

    ACTIVE = DatasetStatus.ACTIVE.value, "Active"
    NEEDS_REVIEW = DatasetStatus.NEEDS_REVIEW.value, "Needs review"
    UNUSABLE = DatasetStatus.UNUSABLE.value, "Unusable"
    CONVERTING = DatasetStatus.CONVERTING.value, "Converting"


class Dataset(models.Model):
    """One dataset of an organization, served by one datastore.

    `name` is the technical directory name on the datastore; `datasource` is its
    datasource-properties JSON exactly as reported (WEBKNOSSOS camelCase, unknown
    keys kept) and the source of truth for layers. A dataset that disappears from
    its datastore becomes `unusable` with a reason and is never deleted, so its
    sharing settings survive a remounted disk.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.PROTECT, related_name="datasets"
    )
    datastore = models.ForeignKey(
        DataStore, on_delete=models.PROTECT, related_name="datasets"
    )
    name = models.CharField(max_length=128, validators=[name_validator])
    display_name = models.CharField(max_length=255, blank=True)
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=32, choices=Status.choices, default=Status.ACTIVE
    )
    status_reason = models.TextField(blank=True)
    datasource = models.JSONField(null=True, blank=True)
    is_public = models.BooleanField(default=False)
    allowed_teams = models.ManyToManyField(
        Team, blank=True, related_name="allowed_datasets"
    )
    # Remote datasets live in object storage, not on the datastore's disk, so a
    # disk scan that does not list them says nothing about them.
    is_remote = models.BooleanField(default=False)
    default_view_configuration = models.JSONField(null=True, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    updated = models.DateTimeField(default=timezone.now)
    last_used = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("organization_id", "name")
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "name"), name="dataset_unique_org_name"
            ),
            models.CheckConstraint(
                condition=models.Q(status__in=Status.values),
                name="dataset_status_valid",
            ),
        )
        indexes = (
            models.Index(fields=("organization", "status"), name="dataset_org_status"),
            models.Index(fields=("datastore", "name"), name="dataset_datastore_name"),
            models.Index(
                fields=("status",),
                condition=models.Q(is_public=True),
                name="dataset_public_status",
            ),
            models.Index(fields=("-updated",), name="dataset_updated"),
        )

    def __str__(self) -> str:
        return f"{self.organization_id}/{self.name}"
