"""Reserving and cancelling uploads. Each owns its transaction.

A reservation holds the dataset name in the database first (a partial unique
constraint lets one of two concurrent reservations in, the other gets 409), then
asks the datastore to reserve it too, outside any transaction; if the node
refuses or cannot be reached the reservation ends `failed` and the name is free
again.

Quota: an organization's uploads may hold at most VOXELHUB_UPLOAD_QUOTA_BYTES
(default 1 TiB): the bytes of its uploads in progress plus those of finished
uploads whose dataset still exists. Datasets placed on disk by operators do not
count; reservations of one organization are serialized (its row is locked), so
concurrent ones cannot overrun the quota together.
"""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Exists, OuterRef, Q, Sum
from django.utils import timezone
from rest_framework import exceptions

from metaserver.accounts.models import Organization, Team, User, hash_secret
from metaserver.api_errors import Conflict
from metaserver.datasets.models import Dataset, Folder
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
    cancel_upload,
    reserve_upload,
)
from metaserver.datastores.models import DataStore
from metaserver.uploads import conf
from metaserver.uploads.models import ACTIVE_STATES, Upload, UploadState
from shared.uploads import UPLOAD_TOKEN_PREFIX

logger = logging.getLogger(__name__)


class NoDatastore(exceptions.APIException):
    status_code = 503
    default_detail = "No datastore accepts uploads right now."
    default_code = "service_unavailable"


class DatastoreFailed(exceptions.APIException):
    status_code = 502
    default_detail = "The datastore could not reserve the upload."
    default_code = "bad_gateway"


@dataclass(frozen=True)
class Reservation:
    """What a caller asks for; checked by the serializer and the gates before."""

    organization: Organization
    user: User
    name: str
    files: list[dict[str, Any]]
    folder: Folder | None
    teams: list[Team]
    voxel_size: list[float] | None
    unit: str
    layer_hints: list[dict[str, str]]
    datastore_name: str | None = None
    data_format: str = "wkw"
    raw: dict[str, Any] | None = None

    @property
    def total_size(self) -> int:
        return sum(int(f["size"]) for f in self.files)


def quota_used(organization: Organization) -> int:
    """Bytes counted against the quota (one query)."""
    dataset_exists = Exists(
        Dataset.objects.filter(
            organization_id=OuterRef("organization_id"), name=OuterRef("name")
        )
    )
    used = (
        Upload.objects.filter(organization=organization)
        .filter(
            Q(state__in=ACTIVE_STATES) | (Q(state=UploadState.DONE) & dataset_exists)
        )
        .aggregate(total=Sum("total_size"))["total"]
    )
    return int(used or 0)


def _pick_datastore(name: str | None) -> DataStore:
    """A registered, recently heard-from datastore that allows uploads."""
    fresh = timezone.now() - timedelta(
        seconds=settings.VOXELHUB_DATASTORE_STALE_SECONDS
    )
    candidates = (
        DataStore.objects.filter(allows_upload=True, last_heartbeat__gte=fresh)
        .exclude(metaserver_token="")
        .order_by("name")
    )
    if name is not None:
        found = candidates.filter(name=name).first()
        if found is None:
            raise exceptions.ValidationError(
                {"datastore": [f"{name!r} does not accept uploads or is unreachable"]}
            )
        return found
    found = candidates.first()
    if found is None:
        raise NoDatastore()
    return found


def _expire_reservations(organization: Organization) -> None:
    """Reservations past their expiry (never sent to finish) release their name
    and quota; the datastore removes their data itself."""
    now = timezone.now()
    Upload.objects.filter(
        organization=organization, state=UploadState.RESERVED, expires__lt=now
    ).update(
        state=UploadState.FAILED,
        message="expired before it was finished",
        updated=now,
        finished=now,
    )


def _hold_name(reservation: Reservation, datastore: DataStore, token: str) -> Upload:
    organization = reservation.organization
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        _expire_reservations(organization)
        if Dataset.objects.filter(
            organization=organization, name=reservation.name
        ).exists():
            raise Conflict(f"a dataset {organization.name}/{reservation.name} exists")
        used, quota = quota_used(organization), conf.quota_bytes()
        if used + reservation.total_size > quota:
            raise exceptions.ValidationError(
                {
                    "files": [
                        f"{reservation.total_size} bytes exceed the upload quota of "
                        f"{organization.name}: {used} of {quota} bytes are in use"
                    ]
                }
            )
        now = timezone.now()
        upload = Upload(
            organization=organization,
            user=reservation.user,
            datastore=datastore,
            name=reservation.name,
            folder=reservation.folder,
            voxel_size=reservation.voxel_size,
            unit=reservation.unit,
            layer_hints=reservation.layer_hints,
            data_format=reservation.data_format,
            raw=reservation.raw,
            files=reservation.files,
            file_count=len(reservation.files),
            total_size=reservation.total_size,
            token_hash=hash_secret(token),
            created=now,
            updated=now,
            expires=now + timedelta(hours=conf.expiry_hours()),
        )
        try:
            with transaction.atomic():
                upload.save(force_insert=True)
        except IntegrityError:
            raise Conflict(
                f"an upload of {organization.name}/{reservation.name} is in progress"
            ) from None
        upload.allowed_teams.set(reservation.teams)
    return upload


def _end(upload: Upload, state: UploadState, message: str) -> None:
    now = timezone.now()
    Upload.objects.filter(pk=upload.pk).update(
        state=state, message=message, updated=now, finished=now
    )
    upload.state, upload.message, upload.finished = state, message, now


def do_reserve_upload(reservation: Reservation) -> tuple[Upload, str]:
    """Reserve the name here and on a datastore; (upload, the upload token).

    The token is shown once: only its SHA-256 is kept, here and on the node.
    """
    datastore = _pick_datastore(reservation.datastore_name)
    token = UPLOAD_TOKEN_PREFIX + secrets.token_urlsafe(32)
    upload = _hold_name(reservation, datastore, token)
    try:
        reserve_upload(
            datastore,
            str(upload.pk),
            reservation.organization.name,
            reservation.name,
            reservation.files,
            reservation.total_size,
            token_sha256=upload.token_hash,
            expires=upload.expires.timestamp(),
            voxel_size=reservation.voxel_size,
            unit=reservation.unit,
            layer_hints=reservation.layer_hints,
            data_format=reservation.data_format,
            raw=reservation.raw,
        )
    except DatastoreUnavailable as e:
        _end(upload, UploadState.FAILED, f"datastore unreachable: {e}")
        raise DatastoreFailed(f"datastore {datastore.name} is unreachable") from None
    except DatastoreRejected as e:
        _end(upload, UploadState.FAILED, f"datastore refused: {e.error}")
        if e.status == 409:
            raise Conflict(f"datastore {datastore.name}: {e.error}") from None
        if e.status == 400:
            raise exceptions.ValidationError({"files": [e.error, e.detail]}) from None
        raise DatastoreFailed(f"datastore {datastore.name}: {e.error}") from None
    logger.info(
        "%s reserved upload %s of %s/%s (%d files, %d bytes) on %s",
        reservation.user.username,
        upload.pk,
        reservation.organization.name,
        reservation.name,
        upload.file_count,
        upload.total_size,
        datastore.name,
    )
    return upload, token


def do_cancel_upload(upload: Upload, *, by: User) -> Upload:
    """Cancel a reserved upload (a finishing one only once expired): the name is
    free at once; the datastore removes the data now, or at expiry if it is down."""
    with transaction.atomic():
        locked = Upload.objects.select_for_update().get(pk=upload.pk)
        stuck = locked.state == UploadState.FINISHING and locked.is_expired
        if locked.state != UploadState.RESERVED and not stuck:
            raise Conflict(f"the upload is {locked.state}; it cannot be cancelled")
        _end(locked, UploadState.CANCELLED, f"Cancelled by {by.username}.")
    upload.state, upload.message, upload.finished = (
        locked.state,
        locked.message,
        locked.finished,
    )
    if upload.datastore is not None:
        try:
            cancel_upload(upload.datastore, str(upload.pk))
        except DatastoreUnavailable as e:
            logger.warning("upload %s: the datastore will expire it (%s)", upload.pk, e)
        except DatastoreRejected as e:
            logger.warning("upload %s: datastore answered %s to cancel", upload.pk, e)
    logger.info("upload %s cancelled by %s", upload.pk, by.username)
    return upload
