"""The Jobs page: the organization's jobs a user may see, live while any runs.

The table polls itself every two seconds (htmx) while a job of the page is
pending or started and stops once none is. Jobs come only from the gates of
`metaserver.jobs.access`; cancelling goes through `do_cancel_job`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Page, Paginator
from django.db.models import QuerySet
from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views.decorators.http import require_POST, require_safe
from rest_framework import exceptions

from metaserver.accounts.access import AnyUser, user_can_administrate_organization
from metaserver.accounts.models import Organization
from metaserver.dashboard.organizations import current_organization, layout_context
from metaserver.dashboard.views import HtmxRequest, login_required
from metaserver.jobs.access import get_job_for_user, jobs_visible_to
from metaserver.jobs.actions import JobNotRunning, do_cancel_job
from metaserver.jobs.models import RUNNING_STATES, Job, JobState
from shared.protocol import AccessMode

logger = logging.getLogger(__name__)

PAGE_SIZE = 50
POLL_SECONDS = 2
TABLE_TARGET = "job-table"
# The sidebar's filters: (value of ?state=, label, states shown).
FILTERS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("", "All jobs", ()),
    ("running", "Running", tuple(RUNNING_STATES)),
    (JobState.SUCCESS, "Succeeded", (JobState.SUCCESS,)),
    (JobState.FAILURE, "Failed", (JobState.FAILURE,)),
    (JobState.CANCELLED, "Cancelled", (JobState.CANCELLED,)),
)


@dataclass(frozen=True)
class JobRow:
    job: Job
    can_cancel: bool
    duration: str
    dataset_url: str
    # "org/name" for the title, and the name the cell shows.
    dataset_label: str
    dataset_name: str


def format_duration(duration: timedelta | None) -> str:
    """Like "1 h 05 min", "4 min 09 s" or "12 s"; empty for None."""
    if duration is None:
        return ""
    seconds = max(0, int(duration.total_seconds()))
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def _row(job: Job, user: AnyUser, is_admin: bool) -> JobRow:
    dataset = job.result_dataset
    return JobRow(
        job=job,
        can_cancel=job.is_running and (is_admin or job.owner_id == user.pk),
        duration=format_duration(job.duration),
        dataset_url=reverse("dashboard:dataset", args=dataset) if dataset else "",
        dataset_label="/".join(dataset) if dataset else "",
        dataset_name=dataset[1] if dataset else "",
    )


def _jobs_in(
    user: AnyUser, organization: Organization | None, states: tuple[str, ...]
) -> QuerySet[Job]:
    if organization is None:
        return Job.objects.none()
    jobs = jobs_visible_to(user).filter(organization=organization)
    if states:
        jobs = jobs.filter(state__in=states)
    return jobs.select_related("owner").order_by("-created", "-pk")


def _filter(request: HtmxRequest) -> tuple[str, tuple[str, ...]]:
    wanted = request.GET.get("state", "")
    for value, _, states in FILTERS:
        if value == wanted:
            return value, states
    return "", ()


def _page_url(state: str, page: int) -> str:
    params: dict[str, str | int] = {}
    if state:
        params["state"] = state
    if page > 1:
        params["page"] = page
    base = reverse("dashboard:jobs")
    return f"{base}?{urlencode(params)}" if params else base


def _table_context(request: HtmxRequest) -> dict[str, Any]:
    """Two queries for the page (count, rows with owners) plus one role check."""
    choice = current_organization(request)
    organization = choice.current
    state, states = _filter(request)
    jobs = _jobs_in(request.user, organization, states)
    page: Page[Job] = Paginator(jobs, PAGE_SIZE).get_page(request.GET.get("page"))
    is_admin = organization is not None and user_can_administrate_organization(
        request.user, organization
    )
    rows = [_row(job, request.user, is_admin) for job in page.object_list]
    return {
        "choice": choice,
        "organization": organization,
        "page": page,
        "rows": rows,
        "state": state,
        "filters": [(value, label) for value, label, _ in FILTERS],
        "polling": any(row.job.is_running for row in rows),
        "poll_seconds": POLL_SECONDS,
        "refresh_url": _page_url(state, page.number),
        "query": _page_url(state, page.number).partition("?")[2],
        "section": "jobs",
    }


def _is_table_request(request: HtmxRequest) -> bool:
    return (
        bool(request.htmx)
        and not request.htmx.history_restore_request
        and request.htmx.target == TABLE_TARGET
    )


@require_safe
@login_required
def jobs(request: HtmxRequest) -> HttpResponse:
    """The jobs of the current organization that the user sees."""
    context = _table_context(request)
    if _is_table_request(request):
        return render(request, "dashboard/_job_table.html", context)
    return render(
        request,
        "dashboard/jobs.html",
        {**layout_context(request, context["choice"]), **context},
    )


@require_POST
@login_required
def cancel_job(request: HtmxRequest, job_id: int) -> HttpResponse:
    """Cancel a running job (its owner and admins), after a confirmation."""
    try:
        job = get_job_for_user(request.user, job_id, AccessMode.ADMINISTRATE)
    except exceptions.NotFound:
        raise Http404(f"job {job_id} not found") from None
    except exceptions.PermissionDenied:
        raise PermissionDenied from None
    back = request.POST.get("next", "")
    if not back.startswith(reverse("dashboard:jobs")):
        back = reverse("dashboard:jobs")
    if request.POST.get("confirmed") != "yes":
        return render(
            request,
            "dashboard/admin/confirm.html",
            {
                **layout_context(request),
                "section": "jobs",
                "title": f"Cancel job {job.pk}?",
                "message": f"The {job.get_kind_display().lower()} stops; "
                "what it wrote so far is discarded.",
                "action": reverse("dashboard:cancel-job", args=(job.pk,)),
                "confirm_label": "Cancel job",
                "back": back,
                "fields": {"next": back},
            },
        )
    try:
        do_cancel_job(job, by=request.user)
        level, text = messages.SUCCESS, f"Job {job.pk} cancelled."
    except JobNotRunning:
        job.refresh_from_db(fields=["state"])
        level = messages.ERROR
        text = (
            f"Job {job.pk} cannot be cancelled: "
            f"it is {job.get_state_display().lower()} already."
        )
    if _is_table_request(request):
        # The refreshed table, and a toast out of band.
        response = render(request, "dashboard/_job_table.html", _table_context(request))
        toast = render(
            request,
            "dashboard/admin/_toasts_oob.html",
            {"toasts": [("error" if level == messages.ERROR else "success", text)]},
        )
        response.content += toast.content
        return response
    messages.add_message(request, level, text)
    return HttpResponseRedirect(back)


urlpatterns = [
    path("jobs/", jobs, name="jobs"),
    path("jobs/<int:job_id>/cancel/", cancel_job, name="cancel-job"),
]
