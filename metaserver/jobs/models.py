"""Jobs: long work (conversions, compositions, ...) done by datastore workers."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from metaserver.accounts.models import Organization
from metaserver.datastores.models import DataStore


class JobKind(models.TextChoices):
    CONVERT = "convert", "Conversion"
    COMPOSE = "compose", "Composition"
    DOWNSAMPLE = "downsample", "Downsampling"
    SAMPLE = "sample", "Sample dataset"


class JobState(models.TextChoices):
    PENDING = "pending", "Pending"
    STARTED = "started", "Running"
    SUCCESS = "success", "Succeeded"
    FAILURE = "failure", "Failed"
    CANCELLED = "cancelled", "Cancelled"


# States in which a job may still progress, finish or be cancelled.
RUNNING_STATES = (JobState.PENDING, JobState.STARTED)
FINAL_STATES = (JobState.SUCCESS, JobState.FAILURE, JobState.CANCELLED)


class Job(models.Model):
    """One piece of long work, a row before any worker touches it.

    `progress` (0..1) only grows; `result` says what came out, for example
    `{"dataset": "org/name"}`. The owner may be gone (a removed account): the
    organization's admins still see the job.
    """

    organization = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="jobs"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    kind = models.CharField(max_length=32, choices=JobKind.choices)
    datastore = models.ForeignKey(
        DataStore,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="jobs",
    )
    arguments = models.JSONField(default=dict, blank=True)
    state = models.CharField(
        max_length=16, choices=JobState.choices, default=JobState.PENDING
    )
    progress = models.FloatField(default=0.0)
    message = models.TextField(blank=True)
    result = models.JSONField(default=dict, blank=True)
    created = models.DateTimeField(default=timezone.now, editable=False)
    started = models.DateTimeField(null=True, blank=True)
    finished = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-created", "-pk")
        indexes = (
            models.Index(fields=("organization", "-created"), name="job_org_created"),
        )
        constraints = (
            models.CheckConstraint(
                condition=models.Q(kind__in=JobKind.values), name="job_kind_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(state__in=JobState.values), name="job_state_valid"
            ),
            models.CheckConstraint(
                condition=models.Q(progress__gte=0.0, progress__lte=1.0),
                name="job_progress_between_0_and_1",
            ),
        )

    def __str__(self) -> str:
        return f"job {self.pk} ({self.kind}, {self.state})"

    @property
    def is_running(self) -> bool:
        return self.state in RUNNING_STATES

    @property
    def percent(self) -> int:
        """Progress in whole percent, rounded down (100 only when done)."""
        return min(100, int(self.progress * 100))

    @property
    def duration(self) -> timedelta | None:
        """How long it ran (so far); None before it started."""
        if self.started is None:
            return None
        return (self.finished or timezone.now()) - self.started

    @property
    def result_dataset(self) -> tuple[str, str] | None:
        """(organization, name) of the dataset in `result`, if it names one."""
        value: Any = (
            self.result.get("dataset") if isinstance(self.result, dict) else None
        )
        if not isinstance(value, str) or value.count("/") != 1:
            return None
        organization, name = value.split("/")
        return (organization, name) if organization and name else None


def running_conversions(datasets: Any) -> dict[tuple[str, str], Job]:
    """The running conversion job of each `converting` dataset among `datasets`
    (with `organization` loaded), by (organization, name): one query.

    A conversion job names its dataset in `arguments["dataset"]` ("org/name");
    the newest running job wins if there were several.
    """
    refs = [
        f"{d.organization.name}/{d.name}" for d in datasets if d.status == "converting"
    ]
    if not refs:
        return {}
    jobs = Job.objects.filter(
        kind=JobKind.CONVERT, state__in=RUNNING_STATES, arguments__dataset__in=refs
    ).order_by("created", "pk")
    found: dict[tuple[str, str], Job] = {}
    for job in jobs:
        organization, _, name = str(job.arguments.get("dataset")).partition("/")
        found[(organization, name)] = job
    return found
