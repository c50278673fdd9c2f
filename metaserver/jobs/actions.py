"""Changes to jobs. Each owns its transaction and locks the job's row, so a
worker's progress report and a user's cancel cannot overwrite each other."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from metaserver.accounts.models import Membership, Organization, User
from metaserver.datasets.dataset_actions import do_conversion_cancelled
from metaserver.datastores import datastore_client
from metaserver.datastores.models import DataStore
from metaserver.jobs.emails import send_job_ended_email
from metaserver.jobs.models import RUNNING_STATES, Job, JobKind, JobState
from shared.protocol import NAME_PATTERN

logger = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 4000


class JobNotRunning(ValidationError):
    """The job already ended (the API answers 409)."""


def _kind(kind: JobKind | str) -> JobKind:
    try:
        return JobKind(kind)
    except ValueError:
        raise ValidationError(
            f"unknown job kind {kind!r}; use one of {', '.join(JobKind.values)}"
        ) from None


def _progress(progress: float) -> float:
    if (
        isinstance(progress, bool)
        or not isinstance(progress, (int, float))
        or not math.isfinite(progress)
        or not 0.0 <= progress <= 1.0
    ):
        raise ValidationError(
            f"progress must be a number from 0 to 1, got {progress!r}"
        )
    return float(progress)


def _object(value: Mapping[str, Any] | None, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValidationError(f"{what} must be a JSON object")
    return dict(value)


def _locked(job: Job) -> Job:
    """The job's row, locked until the surrounding transaction ends."""
    locked = Job.objects.select_for_update().get(pk=job.pk)
    if locked.state not in RUNNING_STATES:
        raise JobNotRunning(f"job {job.pk} is {locked.state} already")
    return locked


def _mail_owner_on_commit(job: Job) -> None:
    """Queue the "job ended" mail to the owner, sent once the transaction commits
    (a rolled-back ending mails nobody)."""
    owner = job.owner
    if owner is not None and owner.email:
        job_id = job.pk
        transaction.on_commit(lambda: send_job_ended_email(job_id))


def _conversion_target(job: Job) -> tuple[str, str] | None:
    """(organization, name) of a conversion job's dataset, if well-formed."""
    ref = (job.arguments or {}).get("dataset")
    if job.kind != JobKind.CONVERT or not isinstance(ref, str):
        return None
    organization, _, name = ref.partition("/")
    if not (
        re.fullmatch(NAME_PATTERN, organization) and re.fullmatch(NAME_PATTERN, name)
    ):
        return None
    return organization, name


def _stop_on_datastore(job_id: int, datastore_id: int, org: str, name: str) -> None:
    """Ask the node to stop a cancelled conversion; a node that is down only gets
    a warning: the job is cancelled, and its workers get 409 when they report."""
    datastore = DataStore.objects.filter(pk=datastore_id).first()
    if datastore is None:
        return
    try:
        datastore_client.cancel_conversion(datastore, job_id, org, name)
    except (
        datastore_client.DatastoreUnavailable,
        datastore_client.DatastoreRejected,
    ) as e:
        logger.warning("cannot stop job %s on its datastore: %s", job_id, e)


def _copy_state(source: Job, target: Job) -> None:
    for field in ("state", "progress", "message", "result", "started", "finished"):
        setattr(target, field, getattr(source, field))


def do_create_job(
    organization: Organization,
    kind: JobKind | str,
    *,
    owner: User | None = None,
    datastore: DataStore | None = None,
    arguments: Mapping[str, Any] | None = None,
) -> Job:
    """A pending job of `organization`, for the workers of `datastore`.

    The owner must belong to the organization (superusers need not).
    """
    checked_kind = _kind(kind)
    job = Job(
        organization=organization,
        owner=owner,
        kind=checked_kind,
        datastore=datastore,
        arguments=_object(arguments, "arguments"),
    )
    with transaction.atomic():
        if (
            owner is not None
            and not owner.is_superuser
            and not Membership.objects.filter(
                user=owner, organization=organization
            ).exists()
        ):
            raise ValidationError(
                f"{owner.username} is not a member of {organization.name}"
            )
        job.save()
    logger.info("created %s in %s", job, organization.name)
    return job


def do_record_progress(job: Job, progress: float, message: str | None = None) -> Job:
    """Record how far a job got; the first report starts it (pending → started).

    Progress never goes back: workers report concurrently and out of order, so a
    smaller value than the recorded one is ignored. `message` None keeps the last
    one. An ended job raises JobNotRunning (a worker should stop then).
    """
    checked = _progress(progress)
    with transaction.atomic():
        locked = _locked(job)
        locked.progress = max(locked.progress, checked)
        fields = ["progress"]
        if locked.state == JobState.PENDING:
            locked.state = JobState.STARTED
            locked.started = timezone.now()
            fields += ["state", "started"]
        if message is not None:
            locked.message = message[:MAX_MESSAGE_CHARS]
            fields.append("message")
        locked.save(update_fields=fields)
    _copy_state(locked, job)
    return job


def do_finish_job(
    job: Job,
    state: JobState | str,
    message: str = "",
    result: Mapping[str, Any] | None = None,
) -> Job:
    """End a running job with success (progress 1) or failure (`message` says why)."""
    if state not in (JobState.SUCCESS, JobState.FAILURE):
        raise ValidationError(
            f"a job finishes with {JobState.SUCCESS} or {JobState.FAILURE}, "
            f"not {state!r}"
        )
    checked_result = _object(result, "result")
    with transaction.atomic():
        locked = _locked(job)
        now = timezone.now()
        locked.state = JobState(state)
        locked.message = message[:MAX_MESSAGE_CHARS]
        locked.result = checked_result
        locked.started = locked.started or now
        locked.finished = now
        if locked.state == JobState.SUCCESS:
            locked.progress = 1.0
        locked.save(
            update_fields=[
                "state",
                "message",
                "result",
                "started",
                "finished",
                "progress",
            ]
        )
        _mail_owner_on_commit(locked)
    _copy_state(locked, job)
    logger.info("%s finished", job)
    return job


def do_cancel_job(job: Job, *, by: User | None = None) -> Job:
    """Cancel a pending or started job; its workers stop at their next report.

    A conversion's dataset record becomes unusable, and once committed its
    datastore is asked to stop the workers and remove the staging folder.
    """
    with transaction.atomic():
        locked = _locked(job)
        locked.state = JobState.CANCELLED
        locked.finished = timezone.now()
        locked.message = f"Cancelled by {by.username}." if by else "Cancelled."
        locked.save(update_fields=["state", "finished", "message"])
        target = _conversion_target(locked)
        datastore = locked.datastore
        if target is not None and datastore is not None:
            datastore_id = datastore.pk
            do_conversion_cancelled("/".join(target), datastore)
            job_id = locked.pk
            transaction.on_commit(
                lambda: _stop_on_datastore(job_id, datastore_id, *target)
            )
        _mail_owner_on_commit(locked)
    _copy_state(locked, job)
    logger.info("%s cancelled by %s", job, by.username if by else "the system")
    return job
