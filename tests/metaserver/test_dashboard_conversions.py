"""Conversions in the dataset table: a converting dataset shows its job's
progress, and its status cell polls until the conversion ends."""

from __future__ import annotations

import html
import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from metaserver.datasets.models import Dataset
from metaserver.jobs.actions import (
    do_cancel_job,
    do_create_job,
    do_finish_job,
    do_record_progress,
)
from metaserver.jobs.models import Job, JobKind, JobState

from .world import World

TABLE = {"HX-Request": "true", "HX-Target": "dataset-table"}


def client_for(world: World, persona: str) -> Client:
    client = Client()
    if persona != "anonymous":
        client.force_login(world.users[persona])
    return client


def converting(world: World, name: str, progress: float) -> tuple[Dataset, Job]:
    dataset = world.dataset(
        name, teams=(world.alpha,), status="converting", datasource=None
    )
    job = do_create_job(
        world.lab,
        JobKind.CONVERT,
        owner=world.users["admin"],
        datastore=world.datastore,
        arguments={"dataset": f"lab/{name}"},
    )
    if progress:
        do_record_progress(job, progress, "stage 1 of 3")
    return dataset, job


def status_cell(page: str, name: str) -> str:
    """The status cell of dataset `name`'s row."""
    row = re.search(
        rf'<tr class="dataset-row"[^>]*data-dataset="lab/{name}".*?</tr>', page, re.S
    )
    assert row is not None, f"no row for {name}"
    cell = re.search(r'<td class="col-status".*?</td>', row.group(0), re.S)
    assert cell is not None
    return html.unescape(cell.group(0))


def test_a_converting_dataset_shows_its_jobs_progress_and_polls(world: World) -> None:
    converting(world, "half_done", 0.42)
    world.dataset("ready", teams=(world.alpha,))
    page = client_for(world, "admin").get("/", headers=TABLE).content.decode()
    cell = status_cell(page, "half_done")
    assert 'aria-valuenow="42"' in cell
    assert "42\xa0%" in cell
    assert 'hx-get="/datasets/lab/half_done/status/"' in cell
    assert 'hx-trigger="every 2s"' in cell
    ready = status_cell(page, "ready")
    assert "hx-get" not in ready
    assert "progressbar" not in ready


def test_the_status_cell_follows_the_job_and_stops_polling_at_the_end(
    world: World,
) -> None:
    dataset, job = converting(world, "growing", 0.1)
    # Team managers see their teams' datasets in every status.
    client = client_for(world, "team_manager")
    first = client.get("/datasets/lab/growing/status/", headers={"HX-Request": "true"})
    assert first.status_code == 200
    assert 'aria-valuenow="10"' in first.content.decode()
    do_record_progress(job, 0.75)
    second = client.get("/datasets/lab/growing/status/").content.decode()
    assert 'aria-valuenow="75"' in second
    assert "hx-trigger" in second
    do_finish_job(job, JobState.SUCCESS, "", {"dataset": "lab/growing"})
    Dataset.objects.filter(pk=dataset.pk).update(status="active")
    done = client.get("/datasets/lab/growing/status/")
    # 286: htmx stops polling and swaps in the final status.
    assert done.status_code == 286
    body = done.content.decode()
    assert "Active" in body
    assert "hx-trigger" not in body
    assert "progressbar" not in body


def test_a_cancelled_conversion_shows_no_progress(world: World) -> None:
    _, job = converting(world, "stopped", 0.3)
    do_cancel_job(job, by=world.users["admin"])
    answer = client_for(world, "admin").get("/datasets/lab/stopped/status/")
    assert answer.status_code == 286
    body = html.unescape(answer.content.decode())
    assert "conversion cancelled" in body
    assert "progressbar" not in body


# Members see active datasets only; the others not this one at all.
@pytest.mark.parametrize(
    "persona", ["member", "member_without_team", "outsider", "anonymous"]
)
def test_the_status_of_a_dataset_out_of_reach_is_not_found(
    world: World, persona: str
) -> None:
    converting(world, "secret_conversion", 0.5)
    response = client_for(world, persona).get("/datasets/lab/secret_conversion/status/")
    assert response.status_code == 404
    assert b"progressbar" not in response.content


def _home_queries(client: Client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/", headers=TABLE)
    assert response.status_code == 200
    return len(queries)


def test_progress_costs_one_query_whatever_the_number_of_conversions(
    world: World,
) -> None:
    converting(world, "c00", 0.1)
    client = client_for(world, "admin")
    _home_queries(client)
    one = _home_queries(client)
    for index in range(1, 12):
        converting(world, f"c{index:02d}", index / 20)
    many = _home_queries(client)
    assert one == many, (one, many)
    page = client.get("/", headers=TABLE).content.decode()
    assert all(f"lab/c{i:02d}/status/" in page for i in range(12))
