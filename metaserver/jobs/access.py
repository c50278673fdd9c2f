"""Gates for jobs: who sees which jobs, and who may cancel them.

Admins and dataset managers see every job of their organizations, everyone else
the jobs they own in organizations they still belong to; superusers see all.
Cancelling is for the job's owner, the organization's admins and superusers.
Missing and invisible jobs look the same (NotFound).
"""

from __future__ import annotations

from django.db.models import Q, QuerySet
from rest_framework.exceptions import NotFound, PermissionDenied

from metaserver.accounts.access import (
    AnyUser,
    is_logged_in,
    managed_organization_ids,
    member_organization_ids,
    user_can_administrate_organization,
)
from metaserver.jobs.models import Job
from shared.protocol import AccessMode


def jobs_visible_to(user: AnyUser) -> QuerySet[Job]:
    """The jobs `user` may see (one SQL predicate, no rows loaded)."""
    if not is_logged_in(user):
        return Job.objects.none()
    if user.is_superuser:
        return Job.objects.all()
    return Job.objects.filter(
        Q(organization_id__in=managed_organization_ids(user))
        | Q(owner_id=user.pk, organization_id__in=member_organization_ids(user))
    )


def user_can_cancel_job(user: AnyUser, job: Job) -> bool:
    """The owner, the organization's admins and superusers (job visible or not)."""
    if not is_logged_in(user):
        return False
    if job.owner_id is not None and job.owner_id == user.pk:
        return True
    return user_can_administrate_organization(user, job.organization)


def get_job_for_user(
    user: AnyUser, job_id: int, mode: AccessMode = AccessMode.READ
) -> Job:
    """Job `job_id` if `user` sees it; any other mode than READ means cancelling,
    refused with PermissionDenied to those who see the job but may not."""
    job = (
        jobs_visible_to(user)
        .select_related("organization", "owner", "datastore")
        .filter(pk=job_id)
        .first()
    )
    if job is None:
        raise NotFound(f"job {job_id} not found")
    if mode is not AccessMode.READ and not user_can_cancel_job(user, job):
        raise PermissionDenied(
            f"only the job's owner and admins of {job.organization.name} can cancel it"
        )
    return job
