"""Data routes: cuboids, bucket batches and thumbnails against the source arrays."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient
from PIL import Image

from shared.geometry import BoundingBox, Mag, Vec3
from tests.datastore.conftest import READER_TOKEN, MetaserverPeer, StartNode
from tests.datastore.samples import Expected

Client = TestClient[web.Request, web.Application]
AUTH = {"X-Auth-Token": READER_TOKEN}
WKW = "/data/datasets/lab/wkw_ds/layers/color"
SEG = "/data/datasets/lab/zarr_ds/layers/seg"
RGB = "/data/datasets/lab/zarr_ds/layers/rgb"


def cuboid_query(
    mag: str, x: int, y: int, z: int, w: int, h: int, d: int
) -> dict[str, Any]:
    return {"mag": mag, "x": x, "y": y, "z": z, "width": w, "height": h, "depth": d}


def as_wire(data: np.ndarray) -> bytes:
    return data.astype(data.dtype.newbyteorder("<")).tobytes(order="F")


async def get_cuboid(node: Client, layer_url: str, **query: Any) -> tuple[int, Any]:
    response = await node.get(f"{layer_url}/data", params=query, headers=AUTH)
    if response.status != 200:
        return response.status, await response.json()
    return 200, (await response.read(), response.headers)


@pytest.mark.parametrize(
    ("mag", "mag1_topleft", "size"),
    [
        ("1-1-1", (0, 0, 0), (32, 32, 32)),
        ("1", (10, 20, 30), (17, 5, 9)),
        ("2-2-1", (8, 16, 4), (16, 16, 16)),
        ("2,2,1", (64, 60, 50), (32, 32, 32)),  # reaches past the layer's end
    ],
)
async def test_cuboid_bytes_equal_the_source_array_x_fastest(
    node: Client,
    expected: Expected,
    mag: str,
    mag1_topleft: tuple[int, int, int],
    size: tuple[int, int, int],
) -> None:
    status, (body, headers) = await get_cuboid(
        node, WKW, **cuboid_query(mag, *mag1_topleft, *size)
    )
    assert status == 200
    parsed = Mag.parse(mag.split(",") if "," in mag else mag)
    box = BoundingBox(Vec3(*mag1_topleft) // parsed.to_vec3(), Vec3(*size))
    want = expected[("wkw_ds", "color", parsed)].region(box)
    assert body == as_wire(want)
    assert headers["Content-Type"] == "application/octet-stream"
    assert headers["X-Voxel-Dtype"] == "uint8"
    assert headers["X-Voxel-Shape"] == ",".join(map(str, size))


async def test_zarr3_segmentation_reads_uint32_little_endian_with_offset(
    node: Client, expected: Expected
) -> None:
    # Starts before the layer's top-left (10, 20, 4): zeros there.
    status, (body, headers) = await get_cuboid(
        node, SEG, **cuboid_query("1", 0, 16, 0, 40, 40, 12)
    )
    assert status == 200
    want = expected[("zarr_ds", "seg", Mag(1, 1, 1))].region(
        BoundingBox.of((0, 16, 0), (40, 40, 12))
    )
    assert body == as_wire(want)
    assert headers["X-Voxel-Dtype"] == "uint32"
    values = np.frombuffer(body, dtype="<u4")
    assert values.max() > 0


async def test_data_written_by_our_format_layer_reads_back_exactly(
    node: Client, expected: Expected, metaserver: MetaserverPeer
) -> None:
    metaserver.allow(READER_TOKEN, "lab", "ours_ds")
    status, (body, headers) = await get_cuboid(
        node,
        "/data/datasets/lab/ours_ds/layers/gray",
        **cuboid_query("1", 16, 0, 0, 64, 64, 40),
    )
    assert status == 200
    assert headers["X-Voxel-Dtype"] == "uint16"
    want = expected[("ours_ds", "gray", Mag(1, 1, 1))].region(
        BoundingBox.of((16, 0, 0), (64, 64, 40))
    )
    assert body == as_wire(want)


async def test_multi_channel_layers_interleave_channels_fastest(
    node: Client, expected: Expected
) -> None:
    status, (body, headers) = await get_cuboid(
        node, RGB, **cuboid_query("1", 4, 5, 6, 10, 8, 3)
    )
    assert status == 200
    assert headers["X-Voxel-Shape"] == "3,10,8,3"
    want = expected[("zarr_ds", "rgb", Mag(1, 1, 1))].region(
        BoundingBox.of((4, 5, 6), (10, 8, 3))
    )
    assert body == as_wire(want)
    assert body[:3] == bytes(want[:, 0, 0, 0])


async def test_buckets_come_in_request_order_and_missing_ones_are_listed(
    node: Client, expected: Expected
) -> None:
    requests: list[dict[str, Any]] = [
        {"position": [0, 0, 0], "mag": [1, 1, 1], "cubeSize": 32, "fourBit": False},
        {"position": [4096, 0, 0], "mag": [1, 1, 1], "cubeSize": 32},  # outside
        {"position": [64, 32, 32], "mag": [2, 2, 1], "cubeSize": 32},
        {"position": [0, 0, 0], "mag": [4, 4, 4], "cubeSize": 32},  # no such mag
        {"position": [96, 64, 64], "mag": [1, 1, 1], "cubeSize": 32},  # border
    ]
    response = await node.post(f"{WKW}/data", json=requests, headers=AUTH)
    assert response.status == 200
    assert json.loads(response.headers["MISSING-BUCKETS"]) == [1, 3]
    body = await response.read()
    parts = []
    for request in (requests[0], requests[2], requests[4]):
        mag = Mag.parse(request["mag"])
        box = BoundingBox(Vec3.of(request["position"]) // mag.to_vec3(), Vec3.full(32))
        parts.append(as_wire(expected[("wkw_ds", "color", mag)].region(box)))
    assert body == b"".join(parts)


async def test_an_empty_bucket_list_gives_an_empty_answer(node: Client) -> None:
    response = await node.post(f"{WKW}/data", json=[], headers=AUTH)
    assert response.status == 200
    assert await response.read() == b""
    assert response.headers["MISSING-BUCKETS"] == "[]"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"position": [0, 0, 0]}, "body must be a JSON list of bucket requests"),
        ([{"position": [0, 0, 0], "fourBit": True}], "fourBit is not supported"),
        (
            [{"position": [0, 0]}],
            "[0].position: expected 3 components [x, y, z], got 2",
        ),
        ([{"position": [-32, 0, 0]}], "[0].position: each coordinate must be in"),
        ([{"position": [0, 0, 0], "mag": [3, 3, 3]}], "[0].mag:"),
        ([{"position": [0, 0, 0], "cubeSize": 512}], "[0].cubeSize: must be between"),
        ([{}, "bucket"], "[0].position:"),
    ],
)
async def test_bad_bucket_requests_are_400_naming_the_entry(
    node: Client, body: Any, message: str
) -> None:
    response = await node.post(f"{WKW}/data", json=body, headers=AUTH)
    assert response.status == 400
    assert (await response.json())["error"].startswith(message)


async def test_too_many_bucket_voxels_is_413(
    start_node: StartNode, metaserver: MetaserverPeer
) -> None:
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    node = await start_node(max_request_voxels=64**3)
    requests = [{"position": [0, 0, 0], "mag": [1, 1, 1], "cubeSize": 32}] * 9
    response = await node.post(f"{WKW}/data", json=requests, headers=AUTH)
    assert response.status == 413
    assert response.content_type == "application/json"


async def test_a_cuboid_over_the_voxel_limit_is_413(node: Client) -> None:
    status, body = await get_cuboid(
        node, WKW, **cuboid_query("1", 0, 0, 0, 1024, 1024, 1024)
    )
    assert status == 413
    assert "more than the limit" in body["error"]


async def test_an_unknown_mag_is_400_listing_the_available_mags(node: Client) -> None:
    status, body = await get_cuboid(
        node, WKW, **cuboid_query("4-4-4", 0, 0, 0, 8, 8, 8)
    )
    assert status == 400
    assert body["error"] == "mag 4-4-4 not found; available mags: 1-1-1, 2-2-1"
    assert body["detail"]["available"] == ["1-1-1", "2-2-1"]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"x": None}, "x: required query parameter is missing"),
        ({"y": "-1"}, "y: must be >= 0"),
        ({"z": "1.5"}, "z: must be an integer"),
        ({"width": "0"}, "width: must be >= 1"),
        ({"height": "abc"}, "height: must be an integer"),
        ({"depth": str(2**40)}, "depth: must be <= "),
        ({"mag": "3"}, "mag: "),
        ({"mag": None}, "mag: required query parameter is missing"),
    ],
)
async def test_bad_cuboid_parameters_are_400_naming_the_parameter(
    node: Client, change: dict[str, str | None], message: str
) -> None:
    query = {k: str(v) for k, v in cuboid_query("1", 0, 0, 0, 8, 8, 8).items()}
    for key, value in change.items():
        if value is None:
            del query[key]
        else:
            query[key] = value
    status, body = await get_cuboid(node, WKW, **query)
    assert status == 400
    assert body["error"].startswith(message)


@pytest.mark.parametrize(
    "path",
    [
        "/data/datasets/lab/..%2F..%2Fetc/layers/color/data",
        "/data/datasets/lab/%2e%2e/layers/color/data",
        "/data/datasets/lab/wkw_ds/layers/..%5C..%5Ccolor/data",
        "/data/datasets/..%2Flab/wkw_ds/layers/color/data",
        "/data/datasets/lab/wkw_ds/layers/.hidden/data",
        "/data/datasets/lab/wkw_ds/layers/color%00/data",
    ],
)
async def test_traversal_attempts_are_rejected_with_json(
    node: Client, path: str
) -> None:
    response = await node.get(
        path + "?mag=1&x=0&y=0&z=0&width=8&height=8&depth=8", headers=AUTH
    )
    assert response.status in (400, 404)
    assert response.content_type == "application/json"
    assert "error" in await response.json()


async def test_dot_dot_segments_never_reach_a_dataset(node: Client) -> None:
    response = await node.get(
        "/data/datasets/lab/wkw_ds/layers/../../../../etc/passwd", headers=AUTH
    )
    assert response.status in (400, 404)
    assert (await response.json())["error"]


async def test_an_unknown_dataset_is_404_and_an_unknown_layer_too(
    node: Client, metaserver: MetaserverPeer
) -> None:
    metaserver.allow(READER_TOKEN, "lab", "nothing")
    query = cuboid_query("1", 0, 0, 0, 8, 8, 8)
    response = await node.get(
        "/data/datasets/lab/nothing/layers/color/data", params=query, headers=AUTH
    )
    assert response.status == 404
    assert (await response.json())["error"] == "dataset not found"
    response = await node.get(
        "/data/datasets/lab/wkw_ds/layers/nope/data", params=query, headers=AUTH
    )
    assert response.status == 404
    assert (await response.json())["detail"]["available"] == ["color"]


@pytest.mark.parametrize(
    "layer_url", [WKW, RGB, "/data/datasets/lab/ours_ds/layers/gray"]
)
async def test_thumbnail_is_a_jpeg_of_the_requested_size(
    node: Client, metaserver: MetaserverPeer, layer_url: str
) -> None:
    metaserver.allow(READER_TOKEN, "lab", "ours_ds")
    response = await node.get(
        f"{layer_url}/thumbnail.jpg", params={"width": 120, "height": 80}, headers=AUTH
    )
    assert response.status == 200
    assert response.content_type == "image/jpeg"
    assert response.headers["Cache-Control"] == "private, max-age=60"
    image = Image.open(io.BytesIO(await response.read()))
    assert image.format == "JPEG"
    assert image.size == (120, 80)


async def test_segmentation_thumbnails_have_colors_and_default_size(
    node: Client,
) -> None:
    response = await node.get(f"{SEG}/thumbnail.jpg", headers=AUTH)
    assert response.status == 200
    image = Image.open(io.BytesIO(await response.read())).convert("RGB")
    assert image.size == (400, 400)
    pixels = np.asarray(image)
    assert len(np.unique(pixels.reshape(-1, 3), axis=0)) > 10


async def test_thumbnail_around_a_position_and_too_large_sizes(node: Client) -> None:
    response = await node.get(
        f"{WKW}/thumbnail.jpg", params={"x": 10, "y": 10, "z": 69}, headers=AUTH
    )
    assert response.status == 200
    response = await node.get(
        f"{WKW}/thumbnail.jpg", params={"width": 4096}, headers=AUTH
    )
    assert response.status == 400
    assert (await response.json())["error"] == "width: must be <= 2048, got 4096"


async def test_a_dataset_that_is_not_active_is_409_with_its_reason(
    start_node: StartNode, metaserver: MetaserverPeer, tmp_path: Path
) -> None:
    binary_data = tmp_path / "binaryData"
    (binary_data / "lab" / "broken").mkdir(parents=True)
    (binary_data / "lab" / "broken" / "datasource-properties.json").write_text("{")
    metaserver.allow(READER_TOKEN, "lab", "broken")
    node = await start_node(binary_data)
    status, body = await get_cuboid(
        node,
        "/data/datasets/lab/broken/layers/color",
        **cuboid_query("1", 0, 0, 0, 8, 8, 8),
    )
    assert status == 409
    assert body["error"].startswith(
        "dataset is not active: datasource-properties.json:"
    )


async def test_changed_properties_take_effect_after_a_scan(
    start_node: StartNode,
    metaserver: MetaserverPeer,
    samples: tuple[Path, Expected],
    tmp_path: Path,
) -> None:
    binary_data = tmp_path / "binaryData"
    dataset = binary_data / "lab" / "wkw_ds"
    shutil.copytree(samples[0] / "lab" / "wkw_ds", dataset)
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    metaserver.allow("admin", "lab", None, "administrate")
    node = await start_node(binary_data)
    query = cuboid_query("2-2-1", 0, 0, 0, 8, 8, 8)
    assert (await get_cuboid(node, WKW, **query))[0] == 200
    props_path = dataset / "datasource-properties.json"
    props = json.loads(props_path.read_text())
    props["dataLayers"][0]["mags"] = props["dataLayers"][0]["mags"][:1]
    props_path.write_text(json.dumps(props))
    response = await node.post("/data/triggers/checkInbox", params={"token": "admin"})
    assert response.status == 200
    status, body = await get_cuboid(node, WKW, **query)
    assert status == 400
    assert body["detail"]["available"] == ["1-1-1"]
