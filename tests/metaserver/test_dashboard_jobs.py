"""The dashboard's Jobs page: who sees which jobs, progress, polling, cancelling."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from metaserver.dashboard.job_views import format_duration
from metaserver.jobs.actions import do_create_job, do_finish_job, do_record_progress
from metaserver.jobs.models import Job, JobKind, JobState

from .world import World

HTMX_TABLE = {"HX-Request": "true", "HX-Target": "job-table"}


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def text(response: Any) -> str:
    return html.unescape(response.content.decode())


def shown(response: Any) -> set[int]:
    assert response.status_code == 200
    return {int(pk) for pk in re.findall(r'<tr id="job-(\d+)"', text(response))}


@pytest.fixture
def jobs(world: World) -> dict[str, Job]:
    users = world.users
    made = {
        "admin_job": do_create_job(
            world.lab, JobKind.CONVERT, owner=users["admin"], datastore=world.datastore
        ),
        "member_job": do_create_job(
            world.lab, JobKind.CONVERT, owner=users["member"], datastore=world.datastore
        ),
        "done": do_create_job(
            world.lab, JobKind.COMPOSE, owner=users["member"], datastore=world.datastore
        ),
        "other_job": do_create_job(
            world.other, JobKind.CONVERT, owner=users["outsider"]
        ),
    }
    do_record_progress(made["member_job"], 0.42, "5 of 12 shards")
    do_finish_job(made["done"], JobState.SUCCESS, "", {"dataset": "lab/composed"})
    return made


def test_the_jobs_page_needs_a_login(world: World) -> None:
    response = Client().get("/jobs/")
    assert response.status_code == 302
    assert response["Location"] == "/login/?next=/jobs/"


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("admin", {"admin_job", "member_job", "done"}),
        ("dataset_manager", {"admin_job", "member_job", "done"}),
        ("member", {"member_job", "done"}),
        ("member_without_team", set()),
        ("outsider", {"other_job"}),
    ],
)
def test_each_persona_sees_the_jobs_of_the_organization_they_may_see(
    world: World, jobs: dict[str, Job], persona: str, expected: set[str]
) -> None:
    response = client_for(world, persona).get("/jobs/")
    assert shown(response) == {jobs[name].pk for name in expected}


def test_rows_show_kind_dataset_owner_state_progress_and_message(
    world: World, jobs: dict[str, Job]
) -> None:
    page = text(client_for(world, "admin").get("/jobs/"))
    rows = dict(re.findall(r'<tr id="job-(\d+)"[^>]*>(.*?)</tr>', page, re.S))
    running = rows[str(jobs["member_job"].pk)]
    assert "Conversion" in running
    assert '<span class="badge badge-job-started">Running</span>' in running
    assert 'role="progressbar"' in running
    assert 'aria-valuenow="42"' in running
    assert "42&nbsp;%" in running.replace("\xa0", "&nbsp;")
    assert "5 of 12 shards" in running
    assert ">member<" in running
    done = rows[str(jobs["done"].pk)]
    assert '<a href="/datasets/lab/composed/" title="lab/composed">composed</a>' in done
    assert 'aria-valuenow="100"' in done
    assert "Succeeded" in done
    pending = rows[str(jobs["admin_job"].pk)]
    assert "Pending" in pending
    assert 'aria-valuenow="0"' in pending


def test_the_table_polls_while_a_job_runs_and_stops_when_none_does(
    world: World, jobs: dict[str, Job]
) -> None:
    client = client_for(world, "member")
    page = text(client.get("/jobs/"))
    assert 'hx-trigger="every 2s' in page
    fragment = client.get("/jobs/", headers=HTMX_TABLE)
    assert fragment.status_code == 200
    assert "<html" not in text(fragment)
    assert text(fragment).startswith('<div id="job-table"')
    do_finish_job(jobs["member_job"], JobState.FAILURE, "out of disk space")
    after = text(client.get("/jobs/", headers=HTMX_TABLE))
    assert "hx-trigger" not in after
    assert "out of disk space" in after


def test_the_sidebar_filters_by_state(world: World, jobs: dict[str, Job]) -> None:
    client = client_for(world, "admin")
    running = client.get("/jobs/", {"state": "running"})
    assert shown(running) == {jobs["admin_job"].pk, jobs["member_job"].pk}
    assert shown(client.get("/jobs/", {"state": "success"})) == {jobs["done"].pk}
    assert shown(client.get("/jobs/", {"state": "failure"})) == set()
    assert "No jobs here" in text(client.get("/jobs/", {"state": "failure"}))
    # Junk is "all", not an error.
    assert len(shown(client.get("/jobs/", {"state": "<junk>"}))) == 3


def test_without_jobs_the_page_says_what_will_appear(world: World) -> None:
    page = text(client_for(world, "member").get("/jobs/"))
    assert "No jobs yet" in page
    assert "hx-trigger" not in page


def test_cancel_buttons_only_for_running_jobs_one_may_cancel(
    world: World, jobs: dict[str, Job]
) -> None:
    def buttons(persona: str) -> set[int]:
        page = text(client_for(world, persona).get("/jobs/"))
        return {int(pk) for pk in re.findall(r'id="cancel-job-(\d+)"', page)}

    running = {jobs["admin_job"].pk, jobs["member_job"].pk}
    assert buttons("admin") == running
    assert buttons("member") == {jobs["member_job"].pk}
    assert buttons("dataset_manager") == set()


def test_an_owner_cancels_from_the_table_and_sees_a_toast(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["member_job"]
    response = client_for(world, "member").post(
        f"/jobs/{job.pk}/cancel/", {"confirmed": "yes"}, headers=HTMX_TABLE
    )
    assert response.status_code == 200
    page = text(response)
    assert page.startswith('<div id="job-table"')
    assert '<div hx-swap-oob="beforeend:#toasts"><div class="toast toast-success"' in (
        page
    )
    assert f"Job {job.pk} cancelled." in page
    job.refresh_from_db()
    assert job.state == JobState.CANCELLED
    assert job.message == "Cancelled by member."


def test_without_javascript_cancelling_asks_on_a_page_then_redirects(
    world: World, jobs: dict[str, Job]
) -> None:
    client = client_for(world, "admin")
    job = jobs["member_job"]
    asked = client.post(f"/jobs/{job.pk}/cancel/", {"next": "/jobs/?state=running"})
    assert asked.status_code == 200
    assert f"Cancel job {job.pk}?" in text(asked)
    job.refresh_from_db()
    assert job.is_running
    response = client.post(
        f"/jobs/{job.pk}/cancel/", {"confirmed": "yes", "next": "/jobs/?state=running"}
    )
    assert response.status_code == 302
    assert response["Location"] == "/jobs/?state=running"
    assert f"Job {job.pk} cancelled." in text(client.get(response["Location"]))
    # An off-site "next" is ignored.
    other = client.post(
        f"/jobs/{jobs['admin_job'].pk}/cancel/",
        {"confirmed": "yes", "next": "https://evil.example/"},
    )
    assert other["Location"] == "/jobs/"


def test_ended_jobs_cannot_be_cancelled_and_the_toast_says_so(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["done"]
    response = client_for(world, "member").post(
        f"/jobs/{job.pk}/cancel/", {"confirmed": "yes"}, headers=HTMX_TABLE
    )
    assert response.status_code == 200
    assert f"Job {job.pk} cannot be cancelled: it is succeeded already." in text(
        response
    )
    assert "toast-error" in text(response)


@pytest.mark.parametrize(
    ("persona", "job", "status"),
    [
        ("member", "admin_job", 404),
        ("outsider", "member_job", 404),
        ("member_without_team", "member_job", 404),
        ("dataset_manager", "member_job", 403),
    ],
)
def test_others_cannot_cancel(
    world: World, jobs: dict[str, Job], persona: str, job: str, status: int
) -> None:
    response = client_for(world, persona).post(
        f"/jobs/{jobs[job].pk}/cancel/", {"confirmed": "yes"}
    )
    assert response.status_code == status
    jobs[job].refresh_from_db()
    assert jobs[job].is_running


def test_cancelling_needs_post_and_the_csrf_token(
    world: World, jobs: dict[str, Job]
) -> None:
    url = f"/jobs/{jobs['member_job'].pk}/cancel/"
    assert client_for(world, "member").get(url).status_code == 405
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["member"])
    assert client.post(url, {"confirmed": "yes"}).status_code == 403
    jobs["member_job"].refresh_from_db()
    assert jobs["member_job"].is_running


def _queries(client: Client, **headers: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/jobs/", headers=headers)
    assert response.status_code == 200
    return len(queries)


@pytest.mark.parametrize("persona", ["admin", "member"])
def test_the_jobs_page_runs_a_constant_number_of_queries(
    world: World, jobs: dict[str, Job], persona: str
) -> None:
    client = client_for(world, persona)
    few, few_polled = _queries(client), _queries(client, **HTMX_TABLE)
    for index in range(30):
        job = do_create_job(world.lab, JobKind.CONVERT, owner=world.users["member"])
        if index % 3:
            do_finish_job(job, JobState.SUCCESS, "", {"dataset": f"lab/d{index}"})
    many, many_polled = _queries(client), _queries(client, **HTMX_TABLE)
    # Session, user, organizations, the role check, count, one page of jobs with
    # owners (and for the whole page the layout's two role checks).
    assert (few, few_polled) == (many, many_polled)
    assert many_polled <= 6
    assert many <= 8


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [(None, ""), (0, "0 s"), (59, "59 s"), (61, "1 min 01 s"), (3725, "1 h 02 min")],
)
def test_durations_read_short(seconds: int | None, expected: str) -> None:
    value = None if seconds is None else timedelta(seconds=seconds)
    assert format_duration(value) == expected
