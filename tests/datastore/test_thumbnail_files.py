"""Thumbnails kept on disk: served from there, renewed when the properties change,
and rendered by conversion workers ahead of the first request."""

from __future__ import annotations

import io
import os
import shutil
import time
import uuid
from pathlib import Path

import dramatiq
import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from datastore.thumbnail_files import (
    PREGENERATED_SIZES,
    pregenerate_thumbnails,
    thumbnail_path,
)
from datastore.thumbnails import ThumbnailRequest
from datastore.worker import boot, declare_actors
from shared.conversions import close_sources
from shared.protocol import THUMBNAIL_SIZES
from tests.datastore.conftest import READER_TOKEN, MetaserverPeer, StartNode
from tests.datastore.test_convert_actors import FileReporter, redis_broker, wait_for_end
from tests.shared import conversion_inputs as inputs

Client = TestClient[web.Request, web.Application]
AUTH = {"X-Auth-Token": READER_TOKEN}
URL = "/data/datasets/lab/wkw_ds/layers/color/thumbnail.jpg"


def kept_files(binary_data: Path, dataset: str) -> list[Path]:
    folder = binary_data / ".voxelhub" / "thumbnails" / "lab" / dataset
    return sorted(p for p in folder.rglob("*.jpg")) if folder.exists() else []


def a_jpeg(color: tuple[int, int, int], size: int) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (size, size), color).save(out, format="JPEG")
    return out.getvalue()


async def copied_node(
    start_node: StartNode,
    metaserver: MetaserverPeer,
    samples: tuple[Path, object],
    tmp_path: Path,
) -> tuple[Client, Path]:
    binary_data = tmp_path / "binaryData"
    shutil.copytree(samples[0] / "lab" / "wkw_ds", binary_data / "lab" / "wkw_ds")
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    return await start_node(binary_data=binary_data), binary_data


async def test_a_default_thumbnail_is_kept_on_disk_and_served_from_there(
    start_node: StartNode,
    metaserver: MetaserverPeer,
    samples: tuple[Path, object],
    tmp_path: Path,
) -> None:
    node, binary_data = await copied_node(start_node, metaserver, samples, tmp_path)
    first = await node.get(URL, params={"width": 64, "height": 64}, headers=AUTH)
    assert first.status == 200
    [kept] = kept_files(binary_data, "wkw_ds")
    assert kept.name.endswith("-64x64.jpg")
    assert kept.read_bytes() == await first.read()
    # Another node process (a restart) serves the file instead of rendering.
    marker = a_jpeg((200, 30, 30), 64)
    kept.write_bytes(marker)
    restarted = await start_node(binary_data=binary_data)
    again = await restarted.get(URL, params={"width": 64, "height": 64}, headers=AUTH)
    assert await again.read() == marker
    # Off-centre thumbnails are not kept.
    moved = await node.get(URL, params={"x": 5, "y": 5, "z": 3}, headers=AUTH)
    assert moved.status == 200
    assert kept_files(binary_data, "wkw_ds") == [kept]


async def test_changed_properties_make_a_new_thumbnail_and_drop_the_old_one(
    start_node: StartNode,
    metaserver: MetaserverPeer,
    samples: tuple[Path, object],
    tmp_path: Path,
) -> None:
    node, binary_data = await copied_node(start_node, metaserver, samples, tmp_path)
    await node.get(URL, params={"width": 64, "height": 64}, headers=AUTH)
    [old] = kept_files(binary_data, "wkw_ds")
    old.write_bytes(a_jpeg((200, 30, 30), 64))
    properties = binary_data / "lab" / "wkw_ds" / "datasource-properties.json"
    later = time.time() + 5
    os.utime(properties, (later, later))
    metaserver.allow("admin", "lab", None, "administrate")
    scan = await node.post("/data/triggers/checkInbox", params={"token": "admin"})
    assert scan.status == 200
    fresh = await node.get(URL, params={"width": 64, "height": 64}, headers=AUTH)
    image = np.asarray(Image.open(io.BytesIO(await fresh.read())).convert("RGB"))
    assert not (image[..., 0] > 150).all(), "the stale red marker was served"
    [new] = kept_files(binary_data, "wkw_ds")
    assert new != old
    assert new.name.startswith(str(properties.stat().st_mtime_ns))


def test_the_dashboards_sizes_are_pregenerated() -> None:
    assert PREGENERATED_SIZES == THUMBNAIL_SIZES
    request = ThumbnailRequest(width=64, height=64, z=3)
    assert thumbnail_path(Path("/b"), "o", "d", "l", 1, request) is None
    # Layer names never become path segments.
    path = thumbnail_path(Path("/b"), "o", "d", "../../x", 7, ThumbnailRequest(8, 8))
    assert path is not None
    assert path.parent.parent == Path("/b/.voxelhub/thumbnails/o/d")
    assert path.name == "7-8x8.jpg"


def test_a_conversion_worker_renders_the_thumbnails_of_its_dataset(
    tmp_path: Path,
) -> None:
    binary_data = tmp_path / "binaryData"
    (binary_data / "lab").mkdir(parents=True)
    broker = redis_broker()
    queue = f"datastore.thumbs-{uuid.uuid4().hex[:8]}"
    reports = tmp_path / "reports.jsonl"
    actors = declare_actors(
        broker, queue, FileReporter(reports), binary_data=binary_data
    )
    worker = dramatiq.Worker(boot(broker), queues={queue}, worker_timeout=100)
    worker.start()
    try:
        inputs.write_tiff(tmp_path / "em.tif", inputs.volume("uint8", (96, 80, 24)))
        target = binary_data / "lab" / "em"
        actors.conversion.start(
            "job-t", tmp_path / "em.tif", target, {"voxel_size": [4, 4, 4]}
        )
        assert wait_for_end(reports, "job-t", within=60)["kind"] == "success"
    finally:
        worker.stop()
        broker.flush(queue)
        broker.close()
        close_sources()
    kept = kept_files(binary_data, "em")
    mtime = (target / "datasource-properties.json").stat().st_mtime_ns
    assert [p.name for p in kept] == sorted(
        f"{mtime}-{size}x{size}.jpg" for size in THUMBNAIL_SIZES
    )
    for path in kept:
        size = int(path.name.split("-")[1].split("x")[0])
        with Image.open(path) as image:
            assert image.size == (size, size)


def test_pregenerating_a_broken_dataset_writes_nothing(tmp_path: Path) -> None:
    broken = tmp_path / "binaryData" / "lab" / "broken"
    broken.mkdir(parents=True)
    (broken / "datasource-properties.json").write_text("{not json")
    assert pregenerate_thumbnails(tmp_path / "binaryData", "lab", "broken", broken) == 0
    assert not (tmp_path / "binaryData" / ".voxelhub").exists()
