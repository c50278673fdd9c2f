"""Changes people make to datasets: settings, folder, tags, sharing, deletion.

Each owns its transaction. A change that must reach the datastore's disk (the
datasource, deletion) calls the datastore first and touches the database only
when the datastore agreed, so disk and database never disagree for long and a
failed call changes nothing.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import transaction
from django.utils import timezone
from rest_framework.exceptions import APIException, ValidationError

from metaserver.accounts.models import Team
from metaserver.datasets.models import (
    SHARING_TOKEN_PREFIX,
    TAG_NAME_MAX_CHARS,
    Dataset,
    Folder,
    Status,
    Tag,
)
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
    check_inbox,
    trash_dataset,
    write_properties,
)
from metaserver.datastores.models import DataStore

logger = logging.getLogger(__name__)

MAX_TAGS_PER_DATASET = 100
SHARING_TOKEN_BYTES = 32


class DatastoreDown(APIException):
    status_code = 503
    default_detail = "The dataset's datastore cannot be reached; nothing was changed."
    default_code = "datastore_unavailable"


class DatastoreRefused(APIException):
    status_code = 502
    default_detail = "The dataset's datastore refused the change."
    default_code = "datastore_refused"


def clean_tag_names(names: Iterable[object]) -> list[str]:
    """Stripped, de-duplicated tag names in order; ValidationError names bad ones."""
    clean: dict[str, None] = {}
    for name in names:
        if not isinstance(name, str):
            raise ValidationError({"tags": ["tags must be strings"]})
        tag = name.strip()
        if not tag or len(tag) > TAG_NAME_MAX_CHARS:
            raise ValidationError(
                {"tags": [f"a tag has 1 to {TAG_NAME_MAX_CHARS} characters: {name!r}"]}
            )
        if any(ord(c) < 32 for c in tag):
            raise ValidationError({"tags": [f"control characters in tag {name!r}"]})
        clean[tag] = None
    if len(clean) > MAX_TAGS_PER_DATASET:
        raise ValidationError({"tags": [f"at most {MAX_TAGS_PER_DATASET} tags"]})
    return list(clean)


def _tags_of(organization_id: int, names: Sequence[str]) -> list[Tag]:
    existing = {
        tag.name: tag
        for tag in Tag.objects.filter(organization_id=organization_id, name__in=names)
    }
    missing = [name for name in names if name not in existing]
    Tag.objects.bulk_create(
        [Tag(organization_id=organization_id, name=name) for name in missing],
        ignore_conflicts=True,
    )
    if missing:
        existing.update(
            (tag.name, tag)
            for tag in Tag.objects.filter(
                organization_id=organization_id, name__in=missing
            )
        )
    return [existing[name] for name in names]


def _write_datasource(dataset: Dataset, datasource: dict[str, Any]) -> dict[str, Any]:
    """Write on the datastore first; returns the datasource as the node re-read it."""
    if dataset.is_remote:
        return datasource
    try:
        answer = write_properties(
            dataset.datastore, dataset.organization.name, dataset.name, datasource
        )
    except DatastoreUnavailable as e:
        raise DatastoreDown(str(e)) from None
    except DatastoreRejected as e:
        if e.status == 400:
            raise ValidationError(
                {"datasource": e.detail if e.detail else [e.error]}
            ) from None
        raise DatastoreRefused(str(e)) from None
    written = answer.get("datasource")
    return written if isinstance(written, dict) else datasource


def do_update_dataset(dataset: Dataset, changes: dict[str, Any]) -> Dataset:
    """Apply validated `changes` (keys of DatasetUpdateSerializer) to `dataset`.

    A new `datasource` goes to the datastore's disk before anything else; if the
    node refuses or is down, nothing changes. The rest is one transaction.
    """
    new_datasource = None
    if "datasource" in changes:
        new_datasource = _write_datasource(dataset, changes["datasource"])
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        fields = ["updated"]
        for name in ("display_name", "description", "is_public"):
            if name in changes:
                setattr(locked, name, changes[name])
                fields.append(name)
        if "default_view_configuration" in changes:
            locked.default_view_configuration = changes["default_view_configuration"]
            fields.append("default_view_configuration")
        if "folder" in changes:
            folder: Folder = changes["folder"]
            locked.folder = folder
            fields.append("folder")
        if new_datasource is not None:
            locked.datasource = new_datasource
            # What is on disk now is what the person chose.
            locked.pending_datasource = None
            fields += ["datasource", "pending_datasource"]
            if locked.status in (Status.NEEDS_REVIEW, Status.UNUSABLE):
                # The node validated and wrote it; the next scan will agree.
                locked.status, locked.status_reason = Status.ACTIVE, ""
                fields += ["status", "status_reason"]
        locked.updated = timezone.now()
        locked.save(update_fields=fields)
        if "allowed_teams" in changes:
            teams: list[Team] = changes["allowed_teams"]
            locked.allowed_teams.set(teams)
        if "tags" in changes:
            locked.tags.set(_tags_of(locked.organization_id, changes["tags"]))
    logger.info(
        "updated dataset %s: %s", dataset, ", ".join(sorted(changes)) or "nothing"
    )
    return locked


class NothingPending(APIException):
    status_code = 409
    default_detail = "The datasource on disk has not changed; nothing to apply."
    default_code = "conflict"


def do_apply_pending_datasource(dataset: Dataset) -> Dataset:
    """Take the datasource-properties.json found on disk as the dataset's datasource."""
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if locked.pending_datasource is None:
            raise NothingPending()
        locked.datasource = locked.pending_datasource
        locked.pending_datasource = None
        locked.updated = timezone.now()
        locked.save(update_fields=["datasource", "pending_datasource", "updated"])
    logger.info("applied the datasource found on disk to %s", dataset)
    return locked


def do_discard_pending_datasource(dataset: Dataset) -> Dataset:
    """Keep the recorded datasource: write it back to disk, forget the change."""
    if dataset.pending_datasource is None or dataset.datasource is None:
        raise NothingPending()
    return do_update_dataset(dataset, {"datasource": dataset.datasource})


def do_move_datasets(datasets: Sequence[Dataset], folder: Folder) -> int:
    """Move `datasets` into `folder` in one statement; returns how many."""
    foreign = [d.name for d in datasets if d.organization_id != folder.organization_id]
    if foreign:
        raise ValidationError(
            {"datasets": [f"not in the folder's organization: {', '.join(foreign)}"]}
        )
    with transaction.atomic():
        moved = Dataset.objects.filter(pk__in=[d.pk for d in datasets]).update(
            folder=folder, updated=timezone.now()
        )
    logger.info("moved %d dataset(s) into folder %d", moved, folder.pk)
    return moved


def _new_sharing_token() -> str:
    return SHARING_TOKEN_PREFIX + secrets.token_urlsafe(SHARING_TOKEN_BYTES)


def do_get_sharing_token(dataset: Dataset) -> str:
    """The dataset's sharing token, made on first use."""
    if dataset.sharing_token:
        return dataset.sharing_token
    with transaction.atomic():
        locked = Dataset.objects.select_for_update().get(pk=dataset.pk)
        if not locked.sharing_token:
            locked.sharing_token = _new_sharing_token()
            locked.save(update_fields=["sharing_token"])
    dataset.sharing_token = locked.sharing_token
    return str(locked.sharing_token)


def do_revoke_sharing_token(dataset: Dataset) -> str:
    """Replace the sharing token; the old one stops working at once here and
    within the datastores' cache time (MAX_ACCESS_CACHE_SECONDS) on the nodes."""
    token = _new_sharing_token()
    with transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).update(sharing_token=token)
    dataset.sharing_token = token
    logger.info("revoked the sharing token of %s", dataset)
    return token


def do_delete_dataset(dataset: Dataset) -> dict[str, Any]:
    """Delete the record; a dataset on disk first goes to the datastore's trash.

    Remote datasets only lose their record. If the datastore is down nothing is
    deleted (503); if the folder is already gone from disk the record goes anyway.
    """
    trashed = None
    if not dataset.is_remote:
        try:
            trashed = trash_dataset(
                dataset.datastore, dataset.organization.name, dataset.name
            ).get("trashed")
        except DatastoreUnavailable as e:
            raise DatastoreDown(str(e)) from None
        except DatastoreRejected as e:
            if e.status != 404:
                raise DatastoreRefused(str(e)) from None
    with transaction.atomic():
        Dataset.objects.filter(pk=dataset.pk).delete()
    logger.info("deleted dataset %s (trash: %s)", dataset, trashed)
    return {"deleted": f"{dataset.organization.name}/{dataset.name}", "trash": trashed}


def do_conversion_ended(
    dataset_ref: str, datastore: DataStore, *, succeeded: bool, reason: str = ""
) -> None:
    """A conversion job for `org/name` ended on `datastore`.

    Failed: the `converting` record becomes unusable with the reason (never left
    spinning). Succeeded: the datastore scans, and its report makes the dataset
    active with the datasource it finds (best effort; the periodic scan follows).
    """
    organization = dataset_ref.partition("/")[0]
    if not succeeded:
        _conversion_stopped(dataset_ref, datastore, f"conversion failed: {reason}")
        return
    try:
        check_inbox(datastore, organization)
    except (DatastoreUnavailable, DatastoreRejected) as e:
        logger.warning("scan after the conversion of %s failed: %s", dataset_ref, e)


def do_conversion_cancelled(dataset_ref: str, datastore: DataStore) -> None:
    """A conversion job for `org/name` on `datastore` was cancelled: the
    `converting` record becomes unusable, "conversion cancelled"."""
    _conversion_stopped(dataset_ref, datastore, "conversion cancelled")


def _conversion_stopped(dataset_ref: str, datastore: DataStore, reason: str) -> None:
    organization, _, name = dataset_ref.partition("/")
    with transaction.atomic():
        Dataset.objects.filter(
            organization__name=organization,
            name=name,
            datastore=datastore,
            status=Status.CONVERTING,
        ).update(
            status=Status.UNUSABLE,
            status_reason=reason[:2000],
            updated=timezone.now(),
        )
