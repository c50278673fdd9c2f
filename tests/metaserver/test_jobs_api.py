"""/api/jobs/: who sees and cancels which jobs; datastores report progress."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext

from metaserver.accounts.actions import do_create_user
from metaserver.accounts.models import Role
from metaserver.jobs.actions import (
    JobNotRunning,
    do_cancel_job,
    do_create_job,
    do_finish_job,
    do_record_progress,
)
from metaserver.jobs.models import Job, JobKind, JobState

from .world import World, assert_json_error

LAB_JOBS = {"admin_job", "member_job", "manager_job", "member_no_store"}


@pytest.fixture
def jobs(world: World) -> dict[str, Job]:
    """Jobs of lab (by admin, member, dataset manager; one without datastore)
    and of other (by the outsider, on store2)."""
    users = world.users
    made = {
        "admin_job": do_create_job(
            world.lab, JobKind.CONVERT, owner=users["admin"], datastore=world.datastore
        ),
        "member_job": do_create_job(
            world.lab,
            JobKind.CONVERT,
            owner=users["member"],
            datastore=world.datastore,
            arguments={"source": "upload/abc"},
        ),
        "manager_job": do_create_job(
            world.lab,
            JobKind.COMPOSE,
            owner=users["dataset_manager"],
            datastore=world.datastore,
        ),
        "member_no_store": do_create_job(
            world.lab, JobKind.SAMPLE, owner=users["member"]
        ),
        "other_job": do_create_job(
            world.other,
            JobKind.DOWNSAMPLE,
            owner=users["outsider"],
            datastore=world.other_datastore,
        ),
    }
    do_record_progress(made["member_job"], 0.3, "3 of 10 tasks")
    do_finish_job(
        made["manager_job"], JobState.SUCCESS, "done", {"dataset": "lab/composed"}
    )
    return made


def listed(response: Any) -> set[int]:
    assert response.status_code == 200, response.content
    return {job["id"] for job in response.json()["results"]}


def ids(jobs: dict[str, Job], *names: str) -> set[int]:
    return {jobs[name].pk for name in names}


def progress_url(job: Job | int) -> str:
    return f"/api/jobs/{job if isinstance(job, int) else job.pk}/progress"


def cancel_url(job: Job | int) -> str:
    return f"/api/jobs/{job if isinstance(job, int) else job.pk}/cancel/"


# Seeing jobs


@pytest.mark.parametrize(
    ("persona", "expected"),
    [
        ("superuser", LAB_JOBS | {"other_job"}),
        ("admin", LAB_JOBS),
        ("dataset_manager", LAB_JOBS),
        ("member", {"member_job", "member_no_store"}),
        ("member_without_team", set()),
        ("team_manager", set()),
        ("outsider", {"other_job"}),
    ],
)
def test_managers_see_their_organizations_jobs_and_others_their_own(
    world: World, jobs: dict[str, Job], persona: str, expected: set[str]
) -> None:
    assert listed(world.client(persona).get("/api/jobs/")) == ids(jobs, *expected)


def test_anonymous_callers_are_asked_to_log_in(
    world: World, jobs: dict[str, Job]
) -> None:
    client = world.client("anonymous")
    assert_json_error(client.get("/api/jobs/"), 401)
    assert_json_error(client.get(f"/api/jobs/{jobs['admin_job'].pk}/"), 401)
    assert_json_error(client.post(cancel_url(jobs["admin_job"])), 401)


def test_a_member_who_left_the_organization_no_longer_sees_their_jobs(
    world: World, jobs: dict[str, Job]
) -> None:
    world.users["member"].memberships.all().delete()
    assert listed(world.client("member").get("/api/jobs/")) == set()


def test_a_job_shows_owner_kind_state_progress_and_result(
    world: World, jobs: dict[str, Job]
) -> None:
    response = world.client("admin").get(f"/api/jobs/{jobs['manager_job'].pk}/")
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {
        "id",
        "organization",
        "owner",
        "kind",
        "datastore",
        "arguments",
        "state",
        "progress",
        "message",
        "result",
        "created",
        "started",
        "finished",
    }
    assert body["organization"] == "lab"
    assert body["owner"] == "dataset_manager"
    assert body["kind"] == "compose"
    assert body["datastore"] == "store1"
    assert body["state"] == "success"
    assert body["progress"] == 1.0
    assert body["result"] == {"dataset": "lab/composed"}
    assert body["finished"] is not None
    running = world.client("member").get(f"/api/jobs/{jobs['member_job'].pk}/").json()
    assert running["state"] == "started"
    assert running["progress"] == pytest.approx(0.3)
    assert running["message"] == "3 of 10 tasks"
    assert running["arguments"] == {"source": "upload/abc"}
    assert running["finished"] is None
    no_store = world.client("member").get(f"/api/jobs/{jobs['member_no_store'].pk}/")
    assert no_store.json()["datastore"] is None


@pytest.mark.parametrize(
    ("persona", "job"),
    [
        ("member", "admin_job"),
        ("member_without_team", "member_job"),
        ("outsider", "member_job"),
        ("admin", "other_job"),
    ],
)
def test_jobs_out_of_sight_look_missing(
    world: World, jobs: dict[str, Job], persona: str, job: str
) -> None:
    hidden = assert_json_error(
        world.client(persona).get(f"/api/jobs/{jobs[job].pk}/"), 404
    )
    missing = assert_json_error(world.client(persona).get("/api/jobs/987654/"), 404)
    assert hidden["detail"].replace(str(jobs[job].pk), "N") == missing[
        "detail"
    ].replace("987654", "N")


def test_the_list_filters_by_state_and_organization(
    world: World, jobs: dict[str, Job]
) -> None:
    client = world.client("superuser")
    assert listed(client.get("/api/jobs/", {"state": "started"})) == ids(
        jobs, "member_job"
    )
    assert listed(client.get("/api/jobs/", {"state": "pending"})) == ids(
        jobs, "admin_job", "member_no_store", "other_job"
    )
    assert listed(client.get("/api/jobs/", {"organization": "other"})) == ids(
        jobs, "other_job"
    )


@pytest.mark.parametrize(
    ("query", "field", "message"),
    [
        ({"state": "running"}, "state", "unknown state 'running'; use one of pending"),
        ({"organization": "../x"}, "organization", "Use 1 to 128 characters"),
        ({"page": "0"}, "page", "must be a positive integer"),
        ({"page_size": "5000"}, "page_size", "must be between 1 and 1000"),
    ],
)
def test_bad_list_parameters_are_400_naming_them(
    world: World, jobs: dict[str, Job], query: dict[str, str], field: str, message: str
) -> None:
    body = assert_json_error(world.client("admin").get("/api/jobs/", query), 400)
    assert message in body["detail"][field][0]


def test_the_list_comes_in_pages_newest_first(
    world: World, jobs: dict[str, Job]
) -> None:
    response = world.client("admin").get("/api/jobs/", {"page_size": 2})
    body = response.json()
    assert body["count"] == 4
    assert [job["id"] for job in body["results"]] == [
        jobs["member_no_store"].pk,
        jobs["manager_job"].pk,
    ]
    assert body["next"] is not None
    assert_json_error(world.client("admin").get("/api/jobs/", {"page": 9}), 404)


def _list_queries(world: World) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = world.client("admin").get("/api/jobs/")
    assert response.status_code == 200
    return len(queries)


def test_the_list_runs_a_constant_number_of_queries(
    world: World, jobs: dict[str, Job]
) -> None:
    _list_queries(world)  # records the token's use, once a minute
    few = _list_queries(world)
    for index in range(30):
        owner = do_create_user(
            f"owner{index}", None, organization=world.lab, role=Role.MEMBER
        )
        do_create_job(
            world.lab, JobKind.CONVERT, owner=owner, datastore=world.datastore
        )
    many = _list_queries(world)
    # Token, count, one page with organization, owner and datastore joined:
    # nothing per job.
    assert few == many, (few, many)
    assert many <= 3


# Cancelling


@pytest.mark.parametrize(
    ("persona", "job"),
    [
        ("member", "member_job"),
        ("admin", "member_job"),
        ("admin", "admin_job"),
        ("superuser", "other_job"),
        ("outsider", "other_job"),
    ],
)
def test_owners_admins_and_superusers_cancel_running_jobs(
    world: World, jobs: dict[str, Job], persona: str, job: str
) -> None:
    response = world.client(persona).post(cancel_url(jobs[job]))
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "cancelled"
    assert body["message"] == f"Cancelled by {persona}."
    assert body["finished"] is not None
    jobs[job].refresh_from_db()
    assert jobs[job].state == JobState.CANCELLED


def test_dataset_managers_see_but_may_not_cancel_others_jobs(
    world: World, jobs: dict[str, Job]
) -> None:
    response = world.client("dataset_manager").post(cancel_url(jobs["member_job"]))
    body = assert_json_error(response, 403)
    assert "only the job's owner and admins of lab" in body["detail"]
    jobs["member_job"].refresh_from_db()
    assert jobs["member_job"].state == JobState.STARTED


@pytest.mark.parametrize(
    ("persona", "job"),
    [
        ("member", "admin_job"),
        ("outsider", "member_job"),
        ("team_manager", "admin_job"),
    ],
)
def test_jobs_out_of_sight_cannot_be_cancelled_and_look_missing(
    world: World, jobs: dict[str, Job], persona: str, job: str
) -> None:
    assert_json_error(world.client(persona).post(cancel_url(jobs[job])), 404)
    jobs[job].refresh_from_db()
    assert jobs[job].is_running


def test_ended_jobs_cannot_be_cancelled(world: World, jobs: dict[str, Job]) -> None:
    body = assert_json_error(
        world.client("admin").post(cancel_url(jobs["manager_job"])), 409
    )
    assert body["detail"] == f"job {jobs['manager_job'].pk} is success already"


def test_cancel_needs_post(world: World, jobs: dict[str, Job]) -> None:
    assert_json_error(world.client("admin").get(cancel_url(jobs["admin_job"])), 405)


# Progress reports of datastores


def test_the_jobs_datastore_records_progress_and_starts_the_job(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["admin_job"]
    response = world.datastore_client().post(
        progress_url(job), {"progress": 0.25, "message": "1 of 4"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["state"] == "started"
    assert body["progress"] == 0.25
    assert body["message"] == "1 of 4"
    job.refresh_from_db()
    assert job.state == JobState.STARTED
    assert job.started is not None
    assert job.percent == 25


def test_progress_never_goes_back_and_the_message_stays_unless_sent(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["member_job"]
    response = world.datastore_client().post(
        progress_url(job), {"progress": 0.1}, format="json"
    )
    assert response.status_code == 200, response.content
    assert response.json()["progress"] == pytest.approx(0.3)
    assert response.json()["message"] == "3 of 10 tasks"


def test_a_datastore_ends_a_job_with_success_and_its_result(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["member_job"]
    response = world.datastore_client().post(
        progress_url(job),
        {"state": "success", "message": "converted", "result": {"dataset": "lab/x"}},
        format="json",
    )
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert (job.state, job.progress, job.result) == (
        JobState.SUCCESS,
        1.0,
        {"dataset": "lab/x"},
    )
    assert job.finished is not None
    assert job.result_dataset == ("lab", "x")


def test_a_datastore_ends_a_job_with_failure_and_why(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["admin_job"]
    response = world.datastore_client().post(
        progress_url(job),
        {"state": "failure", "message": "unsupported TIFF compression"},
        format="json",
    )
    assert response.status_code == 200, response.content
    job.refresh_from_db()
    assert job.state == JobState.FAILURE
    assert job.message == "unsupported TIFF compression"
    assert job.progress == 0.0
    assert job.started is not None


def test_reports_on_ended_jobs_are_409_so_workers_stop(
    world: World, jobs: dict[str, Job]
) -> None:
    do_cancel_job(jobs["admin_job"], by=world.users["admin"])
    response = world.datastore_client().post(
        progress_url(jobs["admin_job"]), {"progress": 0.5}, format="json"
    )
    body = assert_json_error(response, 409)
    assert body["detail"] == f"job {jobs['admin_job'].pk} is cancelled already"


def test_only_the_jobs_own_datastore_reports_on_it(
    world: World, jobs: dict[str, Job]
) -> None:
    store2 = world.datastore_client(
        world.other_datastore_key, secret=world.other_datastore.metaserver_token
    )
    for job in ("admin_job", "member_no_store"):
        response = store2.post(
            progress_url(jobs[job]), {"progress": 0.5}, format="json"
        )
        assert_json_error(response, 403)
    # The same for a job that does not exist: nothing tells them apart.
    response = store2.post(progress_url(987654), {"progress": 0.5}, format="json")
    assert_json_error(response, 403)
    # store2's own job is fine.
    response = store2.post(
        progress_url(jobs["other_job"]), {"progress": 0.5}, format="json"
    )
    assert response.status_code == 200, response.content
    jobs["admin_job"].refresh_from_db()
    assert jobs["admin_job"].progress == 0.0


def test_progress_reports_need_the_datastores_key_and_signature(
    world: World, jobs: dict[str, Job]
) -> None:
    job = jobs["admin_job"]
    body = {"progress": 0.5}
    assert_json_error(world.client("admin").post(progress_url(job), body), 401)
    assert_json_error(world.client("anonymous").post(progress_url(job), body), 401)
    wrong_key = world.datastore_client("not-the-key-" * 4)
    assert_json_error(wrong_key.post(progress_url(job), body, format="json"), 403)
    wrong_secret = world.datastore_client(secret="not-the-secret")
    assert_json_error(wrong_secret.post(progress_url(job), body, format="json"), 403)
    job.refresh_from_db()
    assert job.state == JobState.PENDING


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ({"progress": 1.5}, "progress", "less than or equal to 1"),
        ({"progress": -0.1}, "progress", "greater than or equal to 0"),
        ({"progress": "0.5"}, "progress", "A valid number is required"),
        ({"progress": True}, "progress", "A valid number is required"),
        ({}, "progress", "needed unless state is success or failure"),
        ({"message": "x"}, "progress", "needed unless state is success or failure"),
        ({"progress": 0.5, "state": "cancelled"}, "state", "unknown state"),
        ({"progress": 0.5, "result": {"a": 1}}, "result", "only with state success"),
        ({"state": "success", "result": [1]}, "result", "Expected a dictionary"),
        ({"progress": 0.5, "percent": 50}, "percent", "unknown field"),
        ({"progress": 0.5, "message": "x" * 4001}, "message", "no more than 4000"),
    ],
)
def test_bad_progress_reports_are_400_naming_the_field(
    world: World,
    jobs: dict[str, Job],
    body: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = world.datastore_client().post(
        progress_url(jobs["admin_job"]), body, format="json"
    )
    detail = assert_json_error(response, 400)["detail"]
    assert message in " ".join(detail[field]), detail
    jobs["admin_job"].refresh_from_db()
    assert jobs["admin_job"].state == JobState.PENDING


def test_a_progress_report_runs_a_constant_number_of_queries(
    world: World, jobs: dict[str, Job]
) -> None:
    with CaptureQueriesContext(connection) as queries:
        response = world.datastore_client().post(
            progress_url(jobs["admin_job"]), {"progress": 0.5}, format="json"
        )
    assert response.status_code == 200, response.content
    # The job's datastore name, the datastore, the nonce's INSERT in a savepoint
    # (3), the job with its relations, then savepoint, lock, UPDATE, release.
    assert len(queries) <= 10, [q["sql"] for q in queries.captured_queries]


# Actions


def test_actions_refuse_bad_kinds_progress_and_states(
    world: World, jobs: dict[str, Job]
) -> None:
    with pytest.raises(ValidationError, match="unknown job kind 'paint'"):
        do_create_job(world.lab, "paint")
    with pytest.raises(ValidationError, match="not a member of lab"):
        do_create_job(world.lab, JobKind.CONVERT, owner=world.users["outsider"])
    with pytest.raises(ValidationError, match="from 0 to 1"):
        do_record_progress(jobs["admin_job"], float("nan"))
    with pytest.raises(ValidationError, match="finishes with success or failure"):
        do_finish_job(jobs["admin_job"], JobState.CANCELLED)
    with pytest.raises(JobNotRunning):
        do_record_progress(jobs["manager_job"], 0.5)
    with pytest.raises(JobNotRunning):
        do_cancel_job(jobs["manager_job"])


def test_the_schema_describes_the_job_endpoints(db: None) -> None:
    from rest_framework.test import APIClient

    paths = APIClient().get("/api/schema/", {"format": "json"}).json()["paths"]
    for path in (
        "/api/jobs/",
        "/api/jobs/{id}/",
        "/api/jobs/{id}/cancel/",
        "/api/jobs/{id}/progress",
    ):
        assert path in paths, sorted(paths)
