"""The email a job's owner gets when the job ends (queued by the job actions)."""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.mail import send_mail
from django.urls import reverse

from metaserver.jobs.models import Job, JobKind, JobState

logger = logging.getLogger(__name__)


def _subject(job: Job) -> str:
    what = JobKind(job.kind).label
    dataset = _dataset(job)
    state = JobState(job.state).label.lower()
    return f"[voxelhub] {what} job {job.pk} {state}" + (
        f": {dataset}" if dataset else ""
    )


def _dataset(job: Job) -> str:
    for source in (job.result, job.arguments):
        value = (source or {}).get("dataset")
        if isinstance(value, str):
            return value
    return ""


def job_ended_email(job: Job) -> tuple[str, str]:
    """Subject and plain-text body of the mail about an ended job."""
    link = settings.VOXELHUB_PUBLIC_URL.rstrip("/") + reverse("dashboard:jobs")
    lines = [
        f"Job {job.pk} ({JobKind(job.kind).label.lower()}) "
        f"in {job.organization.name} ended: {JobState(job.state).label.lower()}.",
        "",
    ]
    if dataset := _dataset(job):
        lines.append(f"Dataset: {dataset}")
    if job.message:
        lines.append(f"Message: {job.message}")
    lines += ["", f"Your jobs: {link}", ""]
    return _subject(job), "\n".join(lines)


def send_job_ended_email(job_id: int) -> None:
    """Mail the owner of an ended job; failures are logged, never raised
    (the job has ended whether the mail goes out or not)."""
    try:
        job = Job.objects.select_related("owner", "organization").get(pk=job_id)
        if job.owner is None or not job.owner.email:
            return
        subject, body = job_ended_email(job)
        send_mail(subject, body, None, [job.owner.email])
    except Exception:
        logger.exception("cannot send the email about job %s", job_id)
        return
    logger.info("mailed the owner of job %s", job_id)
