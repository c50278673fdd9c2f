"""What a datastore reports about an upload (`.../uploads/{id}/finished`).

Steps a datastore may report, and what they do (the upload's row is locked, so a
report and a user's cancel cannot overtake each other):
- `finishing`: the node starts verifying (from reserved; repeated: no change).
  From now on users cannot cancel; a cancelled upload answers 409 and the node
  discards it;
- `reserved`: the finish stopped, the upload stays resumable (`reason` says why);
- `imported`: the dataset is in place: its record is created (or completed, if a
  scan report came first) in the reserved folder with the allowed teams;
- `conversion_needed`: a `convert` Job is created (when the jobs app is there)
  and a `converting` dataset record; the answer's `job_id` lets the node start
  the conversion;
- `failed`, `cancelled`: terminal, with the reason.
Reporting the same terminal outcome again gives the same answer (the node
resends outcomes it could not deliver).
"""

from __future__ import annotations

import logging
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from metaserver.api_errors import Conflict
from metaserver.datasets.models import Dataset, Folder, Status
from metaserver.uploads.models import Upload, UploadState
from shared.datasource import DatasourceError, parse_datasource

logger = logging.getLogger(__name__)

REPORTED = (
    "finishing",
    "reserved",
    "imported",
    "conversion_needed",
    "failed",
    "cancelled",
)
MAX_REASON_CHARS = 2000
_OPEN = (UploadState.RESERVED, UploadState.FINISHING)


def _answer(upload: Upload) -> dict[str, Any]:
    return {"state": upload.state, "job_id": upload.result.get("job")}


def _status_of(datasource: Any) -> tuple[str, str]:
    try:
        parse_datasource(datasource)
    except DatasourceError as e:
        return Status.UNUSABLE, f"invalid datasource-properties.json: {e}"[:2000]
    return Status.ACTIVE, ""


def _record_dataset(
    upload: Upload, status: str, reason: str, datasource: Any
) -> Dataset:
    """Create the dataset's record, or complete the one a scan report created."""
    if upload.datastore_id is None:
        raise Conflict("the upload has no datastore any more")
    folder = upload.folder or Folder.objects.root_of(upload.organization_id)
    dataset = (
        Dataset.objects.select_for_update()
        .filter(organization_id=upload.organization_id, name=upload.name)
        .first()
    )
    if dataset is not None and dataset.datastore_id != upload.datastore_id:
        raise Conflict(f"{upload.name} is served by another datastore")
    now = timezone.now()
    if dataset is None:
        dataset = Dataset(
            organization_id=upload.organization_id,
            datastore_id=upload.datastore_id,
            name=upload.name,
            created=now,
        )
    dataset.status, dataset.status_reason = status, reason
    dataset.datasource, dataset.pending_datasource = datasource, None
    dataset.folder, dataset.updated = folder, now
    dataset.save()
    dataset.allowed_teams.set(upload.allowed_teams.all())
    return dataset


def _create_job(upload: Upload) -> int | None:
    try:
        from metaserver.jobs.actions import do_create_job
    except ImportError:  # the jobs app is optional for uploads
        return None
    arguments = {
        "upload": str(upload.pk),
        "dataset": f"{upload.organization.name}/{upload.name}",
        "voxel_size": upload.voxel_size,
        "unit": upload.unit,
        "layer_hints": upload.layer_hints,
        "data_format": upload.data_format,
        "raw": upload.raw,
    }
    owner = upload.user
    try:
        job = do_create_job(
            upload.organization,
            "convert",
            owner=owner,
            datastore=upload.datastore,
            arguments=arguments,
        )
    except ValidationError:  # the owner has left the organization meanwhile
        job = do_create_job(
            upload.organization,
            "convert",
            datastore=upload.datastore,
            arguments=arguments,
        )
    return int(job.pk)


def do_record_upload_outcome(
    upload: Upload, status: str, reason: str = "", datasource: Any = None
) -> dict[str, Any]:
    """Apply a datastore's report; `{"state", "job_id"}`. Conflict (409) when the
    upload cannot take that step (cancelled, ended, expired)."""
    reason = reason[:MAX_REASON_CHARS]
    with transaction.atomic():
        locked = (
            Upload.objects.select_for_update(of=("self",))
            .select_related("organization", "datastore", "user")
            .get(pk=upload.pk)
        )
        state = locked.state
        done = state == UploadState.DONE
        if done and status in ("imported", "conversion_needed"):
            return _answer(locked)  # a resent outcome
        if state == status:
            return _answer(locked)
        if state not in _OPEN:
            raise Conflict(f"the upload is {state}")
        now = timezone.now()
        locked.updated = now
        if status == "finishing":
            if locked.is_expired:
                raise Conflict("the upload has expired")
            locked.state, locked.message = UploadState.FINISHING, ""
        elif status == "reserved":
            locked.state, locked.message = UploadState.RESERVED, reason
        elif status == "imported":
            dataset_status, dataset_reason = _status_of(datasource)
            _record_dataset(locked, dataset_status, dataset_reason, datasource)
            locked.state, locked.finished = UploadState.DONE, now
            locked.result = {"dataset": f"{locked.organization.name}/{locked.name}"}
        elif status == "conversion_needed":
            _record_dataset(locked, Status.CONVERTING, "", None)
            job_id = _create_job(locked)
            locked.state, locked.finished, locked.message = (
                UploadState.DONE,
                now,
                reason,
            )
            locked.result = {"dataset": f"{locked.organization.name}/{locked.name}"}
            if job_id is not None:
                locked.result["job"] = job_id
        else:  # failed, cancelled
            locked.state, locked.message, locked.finished = (
                UploadState(status),
                reason,
                now,
            )
        locked.save()
    logger.info("upload %s: %s reported (%s)", locked.pk, status, reason or "-")
    return _answer(locked)
