"""End to end: `voxelhub.client.Client` and `voxelhub upload` against both services.

Uploads a small WKW folder and a zipped Zarr3 dataset, interrupts an upload and
resumes it without re-sending stored chunks, drives the CLI as a subprocess, and
lists, changes and deletes datasets.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from voxelhub.client import Client, UploadProgress, VoxelhubError

from .services import ORG, ROOT, Services

# Uploads go to a datastore the metaserver has heard from (conftest).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("registered"),
]

OFFSET = (8, 16, 4)
SHAPE = (32, 32, 32)


class Interrupted(Exception):
    pass


class CountingTransport(httpx.HTTPTransport):
    """Records (method, path) of every request it carries."""

    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str, str]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.seen.append((request.method, request.url.path))
        return super().handle_request(request)


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv("VOXELHUB_CACHE_DIR", str(folder))
    return folder


@pytest.fixture
def client(services: Services, cache: Path) -> Iterator[Client]:
    with Client(services.metaserver_url, services.admin_token) as c:
        yield c


def _write(path: Path, data_format: str, seed: int = 3) -> np.ndarray:
    """A 32³ one-layer dataset written by the webknossos library."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        wk: Any = importlib.import_module("webknossos")
        data = np.random.default_rng(seed).integers(0, 255, SHAPE, dtype=np.uint8)
        ds = wk.Dataset(path, voxel_size=(11, 11, 24))
        layer = ds.add_layer(
            "color", wk.COLOR_CATEGORY, dtype=np.uint8, data_format=data_format
        )
        if data_format == "zarr3":
            mag = layer.add_mag(1, chunk_shape=32, shard_shape=64)
        else:
            mag = layer.add_mag(1)
        mag.write(data, absolute_offset=OFFSET, allow_resize=True)
    return data


def _zip(folder: Path) -> Path:
    target = folder.with_suffix(".zip")
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                archive.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return target


def _read(services: Services, name: str) -> Any:
    with services.data(services.admin_token) as data:
        response = data.get(
            f"/data/datasets/{ORG}/{name}/layers/color/data",
            params={
                "mag": "1-1-1",
                "x": OFFSET[0],
                "y": OFFSET[1],
                "z": OFFSET[2],
                "width": SHAPE[0],
                "height": SHAPE[1],
                "depth": SHAPE[2],
            },
        )
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, np.uint8).reshape(SHAPE, order="F")


def test_a_wkw_folder_uploads_and_becomes_active(
    services: Services, client: Client, tmp_path: Path, cache: Path
) -> None:
    source = _write(tmp_path / "wkw_folder", "wkw")
    steps: list[str] = []
    result = client.upload(
        tmp_path / "wkw_folder",
        organization=ORG,
        name="client_wkw",
        voxel_size=(11, 11, 24),
        progress=lambda p: steps.append(p.stage),
        wait=True,
        timeout=30,
    )
    assert result.outcome == "imported"
    assert not result.resumed
    assert result.dataset is not None
    assert result.dataset["status"] == "active"
    assert steps[0] == "hashing"
    assert steps[-1] == "done"
    np.testing.assert_array_equal(_read(services, "client_wkw"), source)
    assert list(cache.rglob("*.json")) == []  # the reservation is forgotten


def test_an_interrupted_upload_resumes_without_resending_stored_chunks(
    services: Services, client: Client, tmp_path: Path, cache: Path
) -> None:
    source = _write(tmp_path / "zarr_source", "zarr3", seed=5)
    archive = _zip(tmp_path / "zarr_source")
    chunk = 4096
    total = -(-archive.stat().st_size // chunk)
    assert total >= 4

    def stop_after_two(p: UploadProgress) -> None:
        if p.stage == "uploading" and p.chunks_sent == 2:
            raise Interrupted

    arguments: dict[str, Any] = {
        "organization": ORG,
        "name": "client_resumed",
        "voxel_size": (11, 11, 24),
        "chunk_size": chunk,
    }
    with pytest.raises(Interrupted):
        client.upload(archive, progress=stop_after_two, **arguments)
    [state_file] = cache.rglob("*.json")
    assert oct(state_file.stat().st_mode & 0o777) == "0o600"

    # Count the requests that reach the datastore in the second run.
    transport = CountingTransport()
    with Client(
        services.metaserver_url, services.admin_token, transport=transport
    ) as second:
        result = second.upload(archive, wait=True, timeout=30, **arguments)
    posts = [r for r in transport.seen if r == ("POST", "/data/datasets")]
    assert result.resumed
    assert (result.chunks_skipped, result.chunks_sent) == (2, total - 2)
    assert len(posts) == total - 2
    assert result.dataset is not None
    assert result.dataset["status"] == "active"
    np.testing.assert_array_equal(_read(services, "client_resumed"), source)
    assert not state_file.exists()


def _cli(
    services: Services, cache: Path, *args: str
) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "VOXELHUB_URL": services.metaserver_url,
        "VOXELHUB_TOKEN": services.admin_token,
        "VOXELHUB_CACHE_DIR": str(cache),
        "COLUMNS": "200",
    }
    return subprocess.run(
        [sys.executable, "-m", "voxelhub.cli", *args],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_the_cli_uploads_and_refuses_a_taken_name(
    services: Services, tmp_path: Path, cache: Path
) -> None:
    _write(tmp_path / "cli_source", "wkw", seed=7)
    archive = _zip(tmp_path / "cli_source")
    args = ["upload", str(archive), "--organization", ORG, "--voxel-size", "11,11,24"]
    done = _cli(services, cache, *args, "--name", "client_cli", "--wait")
    assert done.returncode == 0, done.stderr
    assert "client_cli: imported" in done.stdout
    assert services.admin_token not in done.stdout + done.stderr
    taken = _cli(services, cache, *args, "--name", "client_cli")
    assert taken.returncode != 0
    assert "409" in taken.stderr, taken.stderr
    assert services.admin_token not in taken.stdout + taken.stderr
    listed = _cli(services, cache, "datasets", "list", "--organization", ORG)
    assert listed.returncode == 0, listed.stderr
    assert "client_cli" in listed.stdout


def test_datasets_pages_update_and_delete(
    services: Services, client: Client, tmp_path: Path
) -> None:
    for i in range(3):
        _write(tmp_path / f"many_{i}", "wkw", seed=i)
        client.upload(
            tmp_path / f"many_{i}",
            organization=ORG,
            name=f"client_many_{i}",
            wait=True,
            timeout=30,
        )
    names = [
        d["name"]
        for d in client.datasets(organization=ORG, q="client_many", page_size=2)
    ]
    assert names == ["client_many_0", "client_many_1", "client_many_2"]
    changed = client.update(ORG, "client_many_1", tags=["EM"], display_name="One")
    assert (changed["tags"], changed["display_name"]) == (["EM"], "One")
    assert [d["name"] for d in client.datasets(ORG, tag="EM")] == ["client_many_1"]
    client.delete(ORG, "client_many_2")
    with pytest.raises(VoxelhubError) as caught:
        client.dataset(ORG, "client_many_2")
    assert caught.value.status == 404
    with pytest.raises(VoxelhubError) as caught:
        client.upload(
            tmp_path / "many_0",
            organization=ORG,
            name="bad name!",
            voxel_size=(1, 1, 1),
        )
    assert caught.value.status == 400
    assert "name" in str(caught.value)


def test_a_client_needs_a_url_and_a_token(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VOXELHUB_URL", raising=False)
    monkeypatch.delenv("VOXELHUB_TOKEN", raising=False)
    with pytest.raises(ValueError, match="VOXELHUB_URL"):
        Client()
    with pytest.raises(ValueError, match="VOXELHUB_TOKEN"):
        Client("http://127.0.0.1:1")
    assert "vxh_secret" not in repr(Client("http://127.0.0.1:1", "vxh_secret"))


def test_an_array_is_uploaded_as_a_tiff_stack_and_converted(
    services: Services, client: Client
) -> None:
    data = np.random.default_rng(9).integers(0, 255, (32, 24, 16), dtype=np.uint8)
    result = client.upload_array(
        data,
        organization=ORG,
        name="client_array",
        voxel_size=(4, 4, 40),
        layer_name="color",
        category="color",
        wait=True,
        timeout=60,
    )
    assert result.outcome == "conversion_needed"
    assert result.dataset is not None
    assert result.dataset["status"] == "active"
    with services.data(services.admin_token) as store:
        response = store.get(
            f"/data/datasets/{ORG}/client_array/layers/color/data",
            params={
                "mag": "1-1-1",
                "x": 0,
                "y": 0,
                "z": 0,
                "width": data.shape[0],
                "height": data.shape[1],
                "depth": data.shape[2],
            },
        )
    assert response.status_code == 200, response.text
    got = np.frombuffer(response.content, np.uint8).reshape(data.shape, order="F")
    np.testing.assert_array_equal(got, data)


def test_the_cli_converts_a_tiff_upload_to_the_format_asked_for(
    services: Services, tmp_path: Path, cache: Path
) -> None:
    import tensorstore as ts
    import tifffile

    data = np.random.default_rng(11).integers(0, 255, (20, 48, 40), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "stack.tif", data)  # pages are z slices of (y, x)
    done = _cli(
        services,
        cache,
        *("upload", str(tmp_path / "stack.tif"), "--organization", ORG),
        *("--name", "cli_zarr3", "--voxel-size", "5,5,5", "--format", "zarr3"),
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    dataset = services.dataset("cli_zarr3", "active")
    [layer] = dataset["datasource"]["dataLayers"]
    assert (layer["name"], layer["dataFormat"]) == ("color", "zarr3")
    # Read with tensorstore, as a client of the files would.
    store = ts.open(
        {
            "driver": "zarr3",
            "kvstore": {
                "driver": "file",
                "path": str(services.binary_data / ORG / "cli_zarr3" / "color" / "1"),
            },
        }
    ).result()
    np.testing.assert_array_equal(
        store[0, :40, :48, :20].read().result(), data.transpose(2, 1, 0)
    )


def test_the_cli_uploads_a_raw_file_with_its_layout(
    services: Services, tmp_path: Path, cache: Path
) -> None:
    data = np.random.default_rng(13).integers(0, 4000, (36, 28, 12), dtype=np.uint16)
    (tmp_path / "volume.raw").write_bytes(data.tobytes(order="F"))  # x fastest
    done = _cli(
        services,
        cache,
        *("upload", str(tmp_path / "volume.raw"), "--organization", ORG),
        *("--name", "cli_raw", "--voxel-size", "4,4,4"),
        *("--dtype", "uint16", "--shape", "36,28,12", "--wait"),
    )
    assert done.returncode == 0, done.stderr
    dataset = services.dataset("cli_raw", "active")
    [layer] = dataset["datasource"]["dataLayers"]
    assert layer["elementClass"] == "uint16"
    with services.data(services.admin_token) as store:
        response = store.get(
            f"/data/datasets/{ORG}/cli_raw/layers/{layer['name']}/data",
            params={"mag": "1", "x": 0, "y": 0, "z": 0,
                    "width": 36, "height": 28, "depth": 12},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    got = np.frombuffer(response.content, "<u2").reshape(data.shape, order="F")
    np.testing.assert_array_equal(got, data)
    half = _cli(
        services,
        cache,
        *("upload", str(tmp_path / "volume.raw"), "--organization", ORG),
        *("--name", "cli_raw_2", "--dtype", "uint16"),
    )
    assert half.returncode != 0
    assert "--dtype and --shape" in half.stderr


def test_the_cli_resumes_an_interrupted_upload(
    services: Services, client: Client, tmp_path: Path, cache: Path
) -> None:
    _write(tmp_path / "cli_resume", "wkw", seed=8)
    archive = _zip(tmp_path / "cli_resume")

    def stop_after_one(p: UploadProgress) -> None:
        if p.stage == "uploading" and p.chunks_sent == 1:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        client.upload(
            archive,
            organization=ORG,
            name="client_cli_resume",
            voxel_size=(11, 11, 24),
            chunk_size=4096,
            progress=stop_after_one,
        )
    done = _cli(
        services,
        cache,
        "upload",
        str(archive),
        "--organization",
        ORG,
        "--name",
        "client_cli_resume",
        "--voxel-size",
        "11,11,24",
        "--wait",
    )
    assert done.returncode == 0, done.stderr
    assert "resumed" in done.stdout
    assert "1 already stored" in done.stdout
    assert services.dataset("client_cli_resume")["status"] == "active"
