"""The "Add Dataset" page: who sees it, and adding a sample dataset."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from metaserver.dashboard import add_views
from metaserver.datastores.datastore_client import DatastoreRejected
from metaserver.jobs.models import Job, JobKind, JobState

from .world import World

pytestmark = pytest.mark.django_db

ADD_URL = "/datasets/add/"
SAMPLE_URL = "/datasets/add/sample/"
MAY_ADD = ("admin", "dataset_manager", "outsider")
MAY_NOT_ADD = ("member", "member_without_team", "team_manager")


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def texts_of_messages(response: Any) -> list[str]:
    return [str(m) for m in response.context["messages"]]


@pytest.mark.parametrize("persona", MAY_ADD)
def test_managers_see_the_button_and_the_page_with_both_tabs(
    world: World, persona: str
) -> None:
    client = client_for(world, persona)
    home = client.get("/")
    assert 'id="add-dataset"' in home.content.decode()
    page = client.get(ADD_URL)
    assert page.status_code == 200
    body = page.content.decode()
    assert 'id="tab-upload"' in body
    assert 'id="tab-sample"' in body
    assert 'id="upload-form"' in body
    assert 'data-chunk-size="8388608"' in body
    assert "webkitdirectory" in body
    samples = client.get(ADD_URL + "?tab=sample").content.decode()
    assert "EM cells: color + segmentation" in samples
    assert "MRI-like volume" in samples


def test_the_upload_tab_lists_teams_and_folders_of_the_organization(
    world: World,
) -> None:
    body = client_for(world, "admin").get(ADD_URL).content.decode()
    assert f'<option value="{world.alpha.pk}">alpha</option>' in body
    assert "The Lab</option>" in body  # the root folder


def test_a_chunk_size_from_the_query_is_clamped(world: World) -> None:
    client = client_for(world, "admin")
    assert (
        'data-chunk-size="1024"'
        in client.get(ADD_URL + "?chunk_size=5").content.decode()
    )
    big = client.get(ADD_URL + f"?chunk_size={2**40}").content.decode()
    assert f'data-chunk-size="{64 * 2**20}"' in big
    assert (
        'data-chunk-size="8388608"'
        in client.get(ADD_URL + "?chunk_size=x").content.decode()
    )


@pytest.mark.parametrize("persona", MAY_NOT_ADD)
def test_members_see_no_button_and_may_not_add(world: World, persona: str) -> None:
    client = client_for(world, persona)
    assert 'id="add-dataset"' not in client.get("/").content.decode()
    assert client.get(ADD_URL).status_code == 403
    response = client.post(SAMPLE_URL, {"kind": "em_cells", "name": "x"})
    assert response.status_code == 403
    assert not Job.objects.exists()


def test_anonymous_visitors_are_sent_to_the_login(world: World) -> None:
    client = client_for(world, "anonymous")
    assert 'id="add-dataset"' not in client.get("/").content.decode()
    response = client.get(ADD_URL)
    assert response.status_code == 302
    assert response["Location"].startswith("/login/")
    assert client.post(SAMPLE_URL, {"kind": "em_cells"}).status_code == 302
    assert not Job.objects.exists()


def test_an_unreachable_datastore_gives_a_clear_error_and_a_failed_job(
    world: World,
) -> None:
    world.datastore.url = "http://127.0.0.1:9"
    world.datastore.save(update_fields=["url"])
    world.other_datastore.delete()
    response = client_for(world, "admin").post(
        SAMPLE_URL, {"kind": "em_cells", "name": "cells"}, follow=True
    )
    assert response.redirect_chain[-1][0] == ADD_URL + "?tab=sample"
    [message] = texts_of_messages(response)
    assert "Could not add the sample" in message
    assert "unreachable" in message
    [job] = Job.objects.all()
    assert job.kind == JobKind.SAMPLE
    assert job.state == JobState.FAILURE
    assert "unreachable" in job.message
    assert job.arguments == {
        "kind": "em_cells",
        "name": "cells",
        "dataset": "lab/cells",
    }
    assert job.owner == world.users["admin"]


def test_a_sample_is_queued_on_the_datastore_as_a_pending_job(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[tuple[str, str, str, str, int]] = []

    def fake_add_sample(
        datastore: Any, org: str, name: str, kind: str, job_id: int
    ) -> dict[str, str]:
        calls.append((datastore.name, org, name, kind, job_id))
        return {"dataset": f"{org}/{name}", "status": "queued"}

    monkeypatch.setattr(add_views, "add_sample", fake_add_sample)
    response = client_for(world, "dataset_manager").post(
        SAMPLE_URL, {"kind": "mri_blobs", "name": ""}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/jobs/"
    [job] = Job.objects.all()
    assert calls == [("store1", "lab", "sample_mri_volume", "mri_blobs", job.pk)]
    # The datastore's worker reports to the job (datastore and e2e tests).
    assert job.state == JobState.PENDING
    assert job.arguments["dataset"] == "lab/sample_mri_volume"
    assert "Adding the sample sample_mri_volume" in texts_of_messages(response)[0]


def test_a_name_taken_in_the_database_is_refused_without_a_job(world: World) -> None:
    world.dataset("taken")
    response = client_for(world, "admin").post(
        SAMPLE_URL, {"kind": "em_cells", "name": "taken"}, follow=True
    )
    [message] = texts_of_messages(response)
    assert "A dataset named taken exists already in lab" in message
    assert not Job.objects.exists()


def test_a_name_taken_on_the_datastore_fails_the_job_with_a_clear_error(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    def taken(
        datastore: Any, org: str, name: str, kind: str, job_id: int
    ) -> dict[str, str]:
        raise DatastoreRejected(datastore, 409, "exists already", None)

    monkeypatch.setattr(add_views, "add_sample", taken)
    response = client_for(world, "admin").post(
        SAMPLE_URL, {"kind": "em_cells", "name": "on_disk"}, follow=True
    )
    [message] = texts_of_messages(response)
    assert "A dataset named on_disk exists already on store1" in message
    [job] = Job.objects.all()
    assert job.state == JobState.FAILURE


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("nope", "x", "Unknown sample dataset."),
        ("em_cells", "-bad", "is not a valid dataset name"),
        ("em_cells", "a/b", "is not a valid dataset name"),
    ],
)
def test_bad_kinds_and_names_are_refused(
    world: World, kind: str, name: str, expected: str
) -> None:
    response = client_for(world, "admin").post(
        SAMPLE_URL, {"kind": kind, "name": name}, follow=True
    )
    [message] = texts_of_messages(response)
    assert expected in message
    assert not Job.objects.exists()
