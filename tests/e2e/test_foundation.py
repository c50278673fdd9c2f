"""End to end: registration, inbox scans and voxel streaming; both services real."""

from __future__ import annotations

import json
import shutil
import time
import warnings
from pathlib import Path

import httpx
import numpy as np
import pytest

from shared.protocol import DATASTORE_KEY_HEADER

from .services import ORG, Services

pytestmark = pytest.mark.e2e

SHAPE = (100, 90, 70)
OFFSET = (10, 20, 30)


def _write_with_webknossos(path: Path) -> dict[str, np.ndarray]:
    """A dataset as the official library writes it: WKW color + Zarr3 segmentation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos as wk
        from cluster_tools import get_executor

    rng = np.random.default_rng(3)
    color = rng.integers(0, 255, SHAPE, dtype=np.uint8)
    segmentation = rng.integers(0, 2**32 - 1, SHAPE, dtype=np.uint32)
    ds = wk.Dataset(path, voxel_size=(11, 11, 24))
    with get_executor("sequential") as executor:
        for name, category, data, fmt in (
            ("color", wk.COLOR_CATEGORY, color, "wkw"),
            ("segmentation", wk.SEGMENTATION_CATEGORY, segmentation, "zarr3"),
        ):
            kwargs = {"largest_segment_id": int(data.max())} if fmt == "zarr3" else {}
            layer = ds.add_layer(
                name, category, dtype=data.dtype, data_format=fmt, **kwargs
            )
            # Small shards: the default 1024³ zarr3 shard takes ~25 s to write here.
            mag_kwargs = (
                {"chunk_shape": 32, "shard_shape": 64} if fmt == "zarr3" else {}
            )
            mag = layer.add_mag(1, **mag_kwargs)
            mag.write(data, absolute_offset=OFFSET, allow_resize=True)
            layer.downsample(coarsest_mag=wk.Mag("2-2-1"), executor=executor)
    return {"color": color, "segmentation": segmentation}


@pytest.fixture(scope="module")
def source(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, np.ndarray]]:
    path = tmp_path_factory.mktemp("wk") / "from_webknossos"
    return path, _write_with_webknossos(path)


@pytest.fixture(scope="module")
def imported(
    services: Services, source: tuple[Path, dict[str, np.ndarray]]
) -> dict[str, np.ndarray]:
    path, arrays = source
    shutil.copytree(path, services.binary_data / ORG / "from_webknossos", symlinks=True)
    services.scan()
    return arrays


def _read(
    services: Services, layer: str, token: str | None, **params: object
) -> httpx.Response:
    with services.data(token) as client:
        return client.get(
            f"/data/datasets/{ORG}/from_webknossos/layers/{layer}/data", params=params
        )


def test_datastore_registers_and_reports_heartbeats(services: Services) -> None:
    deadline = time.monotonic() + 15
    with services.api(services.admin_token) as client:
        while True:
            response = client.get("/api/datastores/")
            assert response.status_code == 200, response.text
            body = response.json()
            stores = body["results"] if isinstance(body, dict) else body
            store = next(s for s in stores if s["name"] == services.datastore_name)
            if store["is_reachable"] or time.monotonic() > deadline:
                break
            time.sleep(0.3)
    assert store["is_reachable"] is True
    assert "key" not in json.dumps(store).lower().replace("datastore", "")


def test_dataset_placed_in_binary_data_appears_active_after_a_scan(
    services: Services, imported: dict[str, np.ndarray]
) -> None:
    dataset = services.dataset("from_webknossos", "active")
    assert dataset["status"] == "active", dataset
    assert dataset["organization"] == ORG
    assert dataset["datastore"]["name"] == services.datastore_name
    layers = {layer["name"]: layer for layer in dataset["datasource"]["dataLayers"]}
    assert layers["color"]["dataFormat"] == "wkw"
    assert layers["segmentation"]["elementClass"] == "uint32"
    with services.api(services.admin_token) as client:
        names = [d["name"] for d in client.get("/api/datasets/").json()["results"]]
    assert "from_webknossos" in names


@pytest.mark.parametrize("layer", ["color", "segmentation"])
def test_data_route_returns_the_source_voxels_x_fastest(
    services: Services, imported: dict[str, np.ndarray], layer: str
) -> None:
    source = imported[layer]
    response = _read(
        services, layer, services.admin_token,
        mag="1-1-1", x=OFFSET[0], y=OFFSET[1], z=OFFSET[2],
        width=SHAPE[0], height=SHAPE[1], depth=SHAPE[2],
    )  # fmt: skip
    assert response.status_code == 200, response.text
    got = np.frombuffer(response.content, dtype=source.dtype).reshape(SHAPE, order="F")
    np.testing.assert_array_equal(got, source)


def test_data_route_pads_a_border_region_with_zeros_in_a_downsampled_mag(
    services: Services, imported: dict[str, np.ndarray]
) -> None:
    # Mag 2-2-1: a 32^3 box that starts inside the data and runs past its x/y end.
    x, y, z = 96, 96, 64
    response = _read(
        services, "color", services.admin_token,
        mag="2-2-1", x=x, y=y, z=z, width=32, height=32, depth=32,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    got = np.frombuffer(response.content, dtype=np.uint8).reshape(
        (32, 32, 32), order="F"
    )
    end = np.array(OFFSET) + np.array(SHAPE)
    # Voxels of mag 2-2-1 that hold data, per axis.
    inside = -(-(end - np.array([x, y, z])) // np.array([2, 2, 1]))
    assert got[: inside[0], : inside[1], : inside[2]].any()
    assert not got[inside[0] :].any()
    assert not got[:, inside[1] :].any()


def test_bucket_batch_lists_missing_buckets_in_the_header(
    services: Services, imported: dict[str, np.ndarray]
) -> None:
    buckets = [
        {"position": [0, 0, 32], "mag": [1, 1, 1], "cubeSize": 32},
        {"position": [4096, 0, 0], "mag": [1, 1, 1], "cubeSize": 32},
        {"position": [64, 64, 64], "mag": [1, 1, 1], "cubeSize": 32},
        {"position": [0, 0, 0], "mag": [16, 16, 16], "cubeSize": 32},
    ]
    with services.data(services.admin_token) as client:
        response = client.post(
            f"/data/datasets/{ORG}/from_webknossos/layers/color/data", json=buckets
        )
    assert response.status_code == 200, response.text
    assert json.loads(response.headers["MISSING-BUCKETS"]) == [1, 3]
    assert len(response.content) == 2 * 32**3
    second = np.frombuffer(response.content[32**3 :], np.uint8).reshape(
        (32,) * 3, order="F"
    )
    source = imported["color"]
    o = np.array([64, 64, 64]) - np.array(OFFSET)
    np.testing.assert_array_equal(
        second, source[o[0] : o[0] + 32, o[1] : o[1] + 32, o[2] : o[2] + 32]
    )


def test_thumbnail_is_a_jpeg(
    services: Services, imported: dict[str, np.ndarray]
) -> None:
    with services.data(services.admin_token) as client:
        response = client.get(
            f"/data/datasets/{ORG}/from_webknossos/layers/color/thumbnail.jpg",
            params={"width": 64, "height": 48},
        )
    assert response.status_code == 200, response.text
    assert response.content[:3] == b"\xff\xd8\xff"


def test_data_without_a_token_is_refused_for_a_private_dataset(
    services: Services, imported: dict[str, np.ndarray]
) -> None:
    response = _read(
        services, "color", None, mag=1, x=0, y=0, z=0, width=8, height=8, depth=8
    )
    assert response.status_code in (401, 403), response.text
    assert "error" in response.json()
    response = _read(
        services,
        "color",
        "vxh_not-a-token",
        mag=1,
        x=0,
        y=0,
        z=0,
        width=8,
        height=8,
        depth=8,
    )
    assert response.status_code in (401, 403)


@pytest.mark.parametrize(
    "path",
    [
        f"/data/datasets/{ORG}/..%2F..%2Fetc/layers/color/data",
        f"/data/datasets/{ORG}/from_webknossos/layers/..%2Fcolor/data",
        f"/data/datasets/{ORG}/from_webknossos/layers/%2e%2e/data",
        "/data/datasets/..%2F/from_webknossos/layers/color/data",
        f"/data/datasets/{ORG}/from_webknossos/layers/color%5C..%5C/data",
    ],
)
def test_traversal_in_any_segment_gives_a_json_error(
    services: Services, imported: dict[str, np.ndarray], path: str
) -> None:
    with services.data(services.admin_token) as client:
        response = client.get(
            path,
            params={
                "mag": 1,
                "x": 0,
                "y": 0,
                "z": 0,
                "width": 1,
                "height": 1,
                "depth": 1,
            },
        )
    assert response.status_code in (400, 404), response.text
    assert "error" in response.json()


@pytest.mark.parametrize(
    ("params", "needle"),
    [
        ({"mag": "8-8-8"}, "mag"),
        ({"mag": "3"}, "mag"),
        ({"width": -1}, "width"),
        ({"width": "abc"}, "width"),
        ({"x": "1e9999"}, "x"),
        ({"width": 4096, "height": 4096, "depth": 4096}, ""),
    ],
)
def test_bad_data_parameters_give_a_clear_4xx(
    services: Services, imported: dict[str, np.ndarray], params: dict, needle: str
) -> None:
    query = {
        "mag": 1,
        "x": 0,
        "y": 0,
        "z": 0,
        "width": 8,
        "height": 8,
        "depth": 8,
    } | params
    response = _read(services, "color", services.admin_token, **query)
    assert 400 <= response.status_code < 500, response.text
    assert needle in response.json()["error"] + json.dumps(
        response.json().get("detail")
    )
    with services.data() as client:
        assert client.get("/data/health").status_code == 200


def test_wrong_datastore_key_is_refused_without_details(services: Services) -> None:
    with httpx.Client(base_url=services.metaserver_url, timeout=10) as client:
        for headers in ({}, {DATASTORE_KEY_HEADER: "wrong"}):
            response = client.post(
                f"/api/datastores/{services.datastore_name}/heartbeat",
                json={},
                headers=headers,
            )
            assert response.status_code in (401, 403)
            assert services.datastore_key not in response.text
        response = client.post(
            f"/api/datastores/{services.datastore_name}/heartbeat",
            params={"key": services.datastore_key},
            json={},
        )
        assert response.status_code in (401, 403)


def test_dataset_without_properties_is_reported_for_review(
    services: Services, source: tuple[Path, dict[str, np.ndarray]]
) -> None:
    target = services.binary_data / ORG / "needs_props"
    shutil.copytree(source[0], target)
    (target / "datasource-properties.json").unlink()
    services.scan()
    dataset = services.dataset("needs_props", "needs_review")
    assert dataset["status"] == "needs_review", dataset
    names = {layer["name"] for layer in dataset["datasource"]["dataLayers"]}
    assert names == {"color", "segmentation"}


def test_invalid_properties_make_the_dataset_unusable_with_the_reason(
    services: Services, source: tuple[Path, dict[str, np.ndarray]]
) -> None:
    target = services.binary_data / ORG / "broken_props"
    shutil.copytree(source[0], target)
    props = json.loads((target / "datasource-properties.json").read_text())
    props["dataLayers"][1]["boundingBox"]["width"] = 0
    (target / "datasource-properties.json").write_text(json.dumps(props))
    services.scan()
    dataset = services.dataset("broken_props", "unusable")
    assert dataset["status"] == "unusable"
    assert "dataLayers[1].boundingBox.width" in dataset["status_reason"]


def test_dataset_removed_from_disk_turns_unusable_and_comes_back(
    services: Services, source: tuple[Path, dict[str, np.ndarray]]
) -> None:
    target = services.binary_data / ORG / "vanishing"
    shutil.copytree(source[0], target)
    services.scan()
    assert services.dataset("vanishing", "active")["status"] == "active"
    parked = target.with_name(".parked")
    target.rename(parked)
    services.scan()
    gone = services.dataset("vanishing", "unusable")
    assert gone["status"] == "unusable"
    assert "not found on disk" in gone["status_reason"]
    parked.rename(target)
    services.scan()
    assert services.dataset("vanishing", "active")["status"] == "active"


def test_symlink_escaping_the_allowed_roots_is_unusable(
    services: Services, tmp_path: Path, source: tuple[Path, dict[str, np.ndarray]]
) -> None:
    outside = tmp_path / "outside"
    shutil.copytree(source[0], outside)
    (services.binary_data / ORG / "escaping").symlink_to(
        outside, target_is_directory=True
    )
    services.scan()
    dataset = services.dataset("escaping", "unusable")
    assert dataset["status"] == "unusable"
    assert "allowed roots" in dataset["status_reason"]
    response = httpx.get(
        f"{services.datastore_url}/data/datasets/{ORG}/escaping/layers/color/data",
        params={
            "mag": 1,
            "x": 10,
            "y": 20,
            "z": 30,
            "width": 8,
            "height": 8,
            "depth": 8,
        },
        headers={"X-Auth-Token": services.admin_token},
    )
    assert response.status_code in (404, 409)


def test_heartbeat_keeps_last_seen_fresh(services: Services) -> None:
    with services.api(services.admin_token) as client:
        first = client.get(f"/api/datastores/{services.datastore_name}/").json()
        time.sleep(2.5)
        second = client.get(f"/api/datastores/{services.datastore_name}/").json()
    assert second["last_heartbeat"] > first["last_heartbeat"]
