"""Datasets: the metaserver's record of what the datastores hold."""

from __future__ import annotations

from typing import Any

from django.db import IntegrityError, models, transaction
from django.utils import timezone
from guardian.models import GroupObjectPermissionBase

from metaserver.accounts.models import Organization, Team, name_validator
from metaserver.datastores.models import DataStore
from shared.protocol import DatasetStatus


class Status(models.TextChoices):
    """`shared.protocol.DatasetStatus` as Django choices (the same values)."""

    ACTIVE = DatasetStatus.ACTIVE.value, "Active"
    NEEDS_REVIEW = DatasetStatus.NEEDS_REVIEW.value, "Needs review"
    UNUSABLE = DatasetStatus.UNUSABLE.value, "Unusable"
    CONVERTING = DatasetStatus.CONVERTING.value, "Converting"


FOLDER_NAME_MAX_CHARS = 255
TAG_NAME_MAX_CHARS = 64
SHARING_TOKEN_PREFIX = "vxs_"  # noqa: S105 (a prefix, not a secret)


class FolderManager(models.Manager["Folder"]):
    def root_of(self, organization_id: int) -> Folder:
        """The organization's root folder, created on first use (any creation path)."""
        root = self.filter(organization_id=organization_id, parent=None).first()
        if root is not None:
            return root
        name = (
            Organization.objects.filter(pk=organization_id)
            .values_list("display_name", flat=True)
            .first()
        )
        try:
            with transaction.atomic():
                root = self.create(
                    organization_id=organization_id, parent=None, name=name or "root"
                )
                FolderClosure.objects.create(ancestor=root, descendant=root, depth=0)
        except IntegrityError:
            # Created concurrently: the unique root constraint makes one win.
            return self.get(organization_id=organization_id, parent=None)
        return root


class Folder(models.Model):
    """A folder of an organization's datasets; the root has no parent.

    Teams are allowed on a folder through guardian's `view_folder` permission on the
    team's group (`FolderGroupObjectPermission`). Access is cumulative: an allowed
    team sees every folder and dataset below. Ancestry lives in `FolderClosure`, so
    "below an allowed folder" is one join, not a loop.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="folders"
    )
    parent = models.ForeignKey(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="children"
    )
    name = models.CharField(max_length=FOLDER_NAME_MAX_CHARS)
    created = models.DateTimeField(default=timezone.now, editable=False)

    objects = FolderManager()

    class Meta:
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(
                fields=("parent", "name"), name="folder_unique_sibling_name"
            ),
            models.UniqueConstraint(
                fields=("organization",),
                condition=models.Q(parent__isnull=True),
                name="folder_one_root_per_organization",
            ),
        )

    def __str__(self) -> str:
        return f"{self.organization_id}:{self.name}"

    @property
    def is_root(self) -> bool:
        return self.parent_id is None


class FolderClosure(models.Model):
    """Every (ancestor, descendant) pair of folders, each folder its own at depth 0."""

    ancestor = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="descendant_links"
    )
    descendant = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="ancestor_links"
    )
    depth = models.PositiveIntegerField()

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("ancestor", "descendant"), name="folder_closure_unique_pair"
            ),
        )
        indexes = (
            models.Index(
                fields=("descendant", "ancestor"), name="folder_closure_by_descendant"
            ),
        )

    def __str__(self) -> str:
        return f"{self.ancestor_id} > {self.descendant_id} ({self.depth})"


class FolderGroupObjectPermission(GroupObjectPermissionBase):
    """guardian's group permission on a folder, with a real foreign key (fast joins)."""

    content_object = models.ForeignKey(
        Folder, on_delete=models.CASCADE, related_name="group_permissions"
    )


class Tag(models.Model):
    """A label of datasets, per organization; datasets can be filtered by tag."""

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="tags"
    )
    name = models.CharField(max_length=TAG_NAME_MAX_CHARS)

    class Meta:
        ordering = ("name",)
        constraints = (
            models.UniqueConstraint(
                fields=("organization", "name"), name="tag_unique_org_name"
            ),
        )

    def __str__(self) -> str:
        return self.name


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
    # A different datasource-properties.json found on disk for an active dataset:
    # kept aside until a person applies it (or writes `datasource` back to disk).
    pending_datasource = models.JSONField(null=True, blank=True)
    folder = models.ForeignKey(
        Folder, on_delete=models.PROTECT, related_name="datasets"
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="datasets")
    # Read-only access to this one dataset for whoever holds it; shown to editors,
    # so kept in clear like a link. Created on first request, replaced on revoke.
    sharing_token = models.CharField(
        max_length=80, null=True, blank=True, unique=True, editable=False
    )
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Every dataset lives in a folder; without one it goes to the root.
        if self.folder_id is None and self.organization_id is not None:
            self.folder = Folder.objects.root_of(self.organization_id)
        super().save(*args, **kwargs)


class UserViewConfiguration(models.Model):
    """A user's own last view of a dataset (position, zoom, layer settings).

    The top of the view configuration hierarchy: it wins over the dataset's
    default, which wins over the datasource's (`datasets.view_hierarchy`). Saved
    by the dashboard's viewer, in WEBKNOSSOS camelCase like the defaults.
    """

    user = models.ForeignKey(
        "accounts.User", on_delete=models.CASCADE, related_name="view_configurations"
    )
    dataset = models.ForeignKey(
        Dataset, on_delete=models.CASCADE, related_name="user_view_configurations"
    )
    configuration = models.JSONField()
    updated = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = (
            models.UniqueConstraint(
                fields=("user", "dataset"), name="user_view_configuration_unique"
            ),
        )

    def __str__(self) -> str:
        return f"{self.user_id}@{self.dataset_id}"
