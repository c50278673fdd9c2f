"""Metaserver-only triggers: writing a sample dataset, and cancelling a conversion."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from datastore.convert import conversion_id
from datastore.state import INBOX, LINK
from shared.conversions import ConversionOptions, plan_conversion
from shared.datasource import VoxelSize, load_datasource
from shared.formats import open_mag
from shared.protocol import METASERVER_TOKEN_HEADER
from tests.datastore.conftest import MetaserverPeer, StartNode
from tests.shared import conversion_inputs as inputs

Client = TestClient[web.Request, web.Application]


@pytest.fixture
async def store(
    start_node: StartNode, metaserver: MetaserverPeer, tmp_path: Path
) -> Client:
    binary_data = tmp_path / "binaryData"
    (binary_data / "lab").mkdir(parents=True)
    client = await start_node(binary_data)
    await asyncio.wait_for(client.app[LINK].registered.wait(), 5)
    return client


@pytest.fixture
def meta(metaserver: MetaserverPeer) -> dict[str, str]:
    return {METASERVER_TOKEN_HEADER: metaserver.metaserver_token}


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    body: dict[str, Any] = await response.json()
    return body


def binary_data_of(store: Client) -> Path:
    return Path(store.app[INBOX].binary_data)


# -- samples ---------------------------------------------------------------------


async def add(store: Client, meta: dict[str, str], **params: str) -> Any:
    return await store.post(
        "/data/triggers/addSample", params={"job": "5", **params}, headers=meta
    )


async def wait_for_job_end(metaserver: MetaserverPeer, job: str) -> dict[str, Any]:
    """The body of the job's final report (success or failure) to the metaserver."""
    async with asyncio.timeout(30):
        while True:
            for call in metaserver.calls_of("job-progress"):
                if call.path.endswith(f"/jobs/{job}/progress") and call.body.get(
                    "state"
                ) in ("success", "failure"):
                    return dict(call.body)
            await asyncio.sleep(0.05)


async def test_the_em_sample_is_written_by_a_worker_and_reported_to_its_job(
    store: Client, meta: dict[str, str], metaserver: MetaserverPeer
) -> None:
    response = await add(store, meta, organization="lab", name="em", kind="em_cells")
    assert response.status == 202, await response.text()
    assert await response.json() == {
        "dataset": "lab/em",
        "status": "queued",
        "job": "5",
    }
    end = await wait_for_job_end(metaserver, "5")
    assert end["state"] == "success", end
    assert end["result"] == {"dataset": "lab/em"}
    folder = binary_data_of(store) / "lab" / "em"
    props = load_datasource(folder / "datasource-properties.json")
    assert {layer.category.value for layer in props.layers} == {"color", "segmentation"}
    segmentation = next(la for la in props.layers if la.category == "segmentation")
    array = open_mag(
        folder, segmentation, segmentation.mags[0], allowed_roots=(folder.resolve(),)
    )
    ids = array.read(segmentation.bounding_box)
    array.close()
    assert len(np.unique(ids)) > 10, "cells with ids"
    assert segmentation.largest_segment_id == int(ids.max())
    # No staging folder beside it; its thumbnails are rendered.
    assert sorted(p.name for p in folder.parent.iterdir()) == ["em"]
    thumbnails = binary_data_of(store) / ".voxelhub" / "thumbnails" / "lab" / "em"
    assert len(list(thumbnails.rglob("*.jpg"))) == 2


async def test_the_mri_sample_is_one_uint16_color_layer(
    store: Client, meta: dict[str, str], metaserver: MetaserverPeer
) -> None:
    response = await add(store, meta, organization="lab", name="mri", kind="mri_blobs")
    assert response.status == 202, await response.text()
    assert (await wait_for_job_end(metaserver, "5"))["state"] == "success"
    props = load_datasource(
        binary_data_of(store) / "lab" / "mri" / "datasource-properties.json"
    )
    [layer] = props.layers
    assert (layer.category.value, layer.element_class.value) == ("color", "uint16")


async def test_a_sample_job_cancelled_while_queued_writes_nothing(
    store: Client, meta: dict[str, str], metaserver: MetaserverPeer
) -> None:
    metaserver.ended_jobs.add(5)
    response = await add(store, meta, organization="lab", name="late", kind="em_cells")
    assert response.status == 202
    await metaserver.wait_for("job-progress", within=10)
    await asyncio.sleep(0.5)  # a worker going on would write and report now
    assert [c.body.get("state") for c in metaserver.calls_of("job-progress")] == [None]
    assert list((binary_data_of(store) / "lab").iterdir()) == []


async def test_a_sample_name_in_use_is_409_and_the_dataset_stays(
    store: Client, meta: dict[str, str]
) -> None:
    existing = binary_data_of(store) / "lab" / "taken"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    response = await add(store, meta, organization="lab", name="taken", kind="em_cells")
    body = await error_of(response, 409)
    assert "lab/taken" in body["error"]
    assert sorted(p.name for p in existing.iterdir()) == ["mine.txt"]


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"organization": "lab", "name": "x", "kind": "brain"}, "unknown sample kind"),
        ({"organization": "lab", "name": "../x", "kind": "em_cells"}, "dataset"),
        ({"organization": "..", "name": "x", "kind": "em_cells"}, "organization"),
        ({"organization": "lab", "name": ".hidden", "kind": "em_cells"}, "dataset"),
        ({"organization": "lab", "name": "x", "kind": "em_cells", "job": "x"}, "job"),
        ({"organization": "lab", "name": "x", "kind": "em_cells", "job": ""}, "job"),
    ],
)
async def test_bad_sample_requests_are_400_and_write_nothing(
    store: Client, meta: dict[str, str], params: dict[str, str], problem: str
) -> None:
    response = await add(store, meta, **params)
    body = await error_of(response, 400)
    assert problem in str(body)
    await asyncio.sleep(0.3)  # nothing was queued either
    assert list((binary_data_of(store) / "lab").iterdir()) == []


async def test_only_the_metaserver_adds_samples(store: Client) -> None:
    params = {"organization": "lab", "name": "x", "kind": "em_cells", "job": "5"}
    await error_of(await store.post("/data/triggers/addSample", params=params), 401)
    wrong = {METASERVER_TOKEN_HEADER: "not-the-token"}
    response = await store.post(
        "/data/triggers/addSample", params=params, headers=wrong
    )
    await error_of(response, 403)
    assert list((binary_data_of(store) / "lab").iterdir()) == []


# -- cancelling a conversion -----------------------------------------------------


def staged_conversion(binary_data: Path, name: str, job_id: str) -> Path:
    """A planned conversion into lab/<name> with its staging folder; returns it."""
    source = binary_data.parent / f"{name}.tif"
    inputs.write_tiff(source, inputs.volume("uint8", (32, 32, 8)))
    plan = plan_conversion(
        source,
        binary_data / "lab" / name,
        ConversionOptions(voxel_size=VoxelSize((1.0, 1.0, 1.0))),
        conversion_id=conversion_id(job_id),
    )
    assert plan.staging.exists()
    return plan.staging


async def test_cancel_removes_the_jobs_staging_folder_and_is_idempotent(
    store: Client, meta: dict[str, str]
) -> None:
    binary_data = binary_data_of(store)
    staging = staged_conversion(binary_data, "conv", "41")
    other = staged_conversion(binary_data, "other", "42")
    body = {"organization": "lab", "name": "conv"}
    response = await store.post("/data/jobs/41/cancel", json=body, headers=meta)
    assert response.status == 200, await response.text()
    assert await response.json() == {"cancelled": "41"}
    assert not staging.exists()
    assert other.exists(), "another job's staging folder stays"
    again = await store.post("/data/jobs/41/cancel", json=body, headers=meta)
    assert again.status == 200


async def test_cancelling_a_finished_job_keeps_its_dataset(
    store: Client, meta: dict[str, str]
) -> None:
    dataset = binary_data_of(store) / "lab" / "done"
    dataset.mkdir()
    (dataset / "datasource-properties.json").write_text("{}")
    response = await store.post(
        "/data/jobs/7/cancel",
        json={"organization": "lab", "name": "done"},
        headers=meta,
    )
    assert response.status == 200
    assert (dataset / "datasource-properties.json").read_text() == "{}"


@pytest.mark.parametrize(
    ("path", "body", "status"),
    [
        ("/data/jobs/41/cancel", {"organization": "lab", "name": "../x"}, 400),
        ("/data/jobs/41/cancel", {"organization": "..", "name": "x"}, 400),
        ("/data/jobs/41/cancel", {"organization": "lab"}, 400),
        ("/data/jobs/41/cancel", ["lab", "x"], 400),
        ("/data/jobs/..%2F41/cancel", {"organization": "lab", "name": "x"}, 404),
        ("/data/jobs/abc/cancel", {"organization": "lab", "name": "x"}, 404),
    ],
)
async def test_bad_cancel_requests_change_nothing(
    store: Client, meta: dict[str, str], path: str, body: Any, status: int
) -> None:
    staging = staged_conversion(binary_data_of(store), "conv", "41")
    response = await store.post(path, json=body, headers=meta)
    assert response.status == status, await response.text()
    assert staging.exists()


async def test_only_the_metaserver_cancels_jobs(store: Client) -> None:
    staging = staged_conversion(binary_data_of(store), "conv", "41")
    body = {"organization": "lab", "name": "conv"}
    await error_of(await store.post("/data/jobs/41/cancel", json=body), 401)
    wrong = {METASERVER_TOKEN_HEADER: "not-the-token"}
    await error_of(
        await store.post("/data/jobs/41/cancel", json=body, headers=wrong), 403
    )
    assert staging.exists()
