"""End to end: uploads through both real services.

Reserve at the metaserver, send chunks straight to the datastore, stop halfway,
resume by asking which chunks are stored, finish; the dataset becomes active and
its voxels read back through the datastore's data route.
"""

from __future__ import annotations

import hashlib
import io
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from shared.uploads import CHUNK_SHA256_HEADER

from .services import ORG, Services

# Uploads go to a datastore the metaserver has heard from (conftest).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("registered"),
]

CHUNK = 64 * 1024
OFFSET = (8, 16, 4)


def _webknossos() -> Any:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos as wk
    return wk


def _write(path: Path, data_format: str) -> np.ndarray:
    """A one-layer dataset written by the webknossos library."""
    wk = _webknossos()
    rng = np.random.default_rng(11)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = wk.Dataset(path, voxel_size=(11, 11, 24))
        if data_format == "wkw":
            data = rng.integers(0, 255, (70, 50, 40), dtype=np.uint8)
            layer = ds.add_layer(
                "color", wk.COLOR_CATEGORY, dtype=np.uint8, data_format="wkw"
            )
            mag = layer.add_mag(1)
        else:
            data = rng.integers(0, 5000, (70, 50, 40), dtype=np.uint32)
            layer = ds.add_layer(
                "segmentation",
                wk.SEGMENTATION_CATEGORY,
                dtype=np.uint32,
                data_format="zarr3",
                largest_segment_id=5000,
            )
            mag = layer.add_mag(1, chunk_shape=32, shard_shape=64)
        mag.write(data, absolute_offset=OFFSET, allow_resize=True)
    return data


def _files(folder: Path, prefix: str = "") -> dict[str, bytes]:
    return {
        prefix + p.relative_to(folder).as_posix(): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _zip(folder: Path) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in _files(folder, f"{folder.name}/").items():
            archive.writestr(name, data)
    return buffer.getvalue()


def _chunks(data: bytes) -> int:
    return max(-(-len(data) // CHUNK), 1)


class Upload:
    """A client of the protocol, as the CLI will drive it."""

    def __init__(self, services: Services, name: str, files: dict[str, bytes]):
        self.files = files
        with services.api(services.admin_token) as api:
            response = api.post(
                "/api/uploads/",
                json={
                    "organization": ORG,
                    "name": name,
                    "voxel_size": [11, 11, 24],
                    "files": [
                        {
                            "path": path,
                            "size": len(data),
                            "sha256": hashlib.sha256(data).hexdigest(),
                        }
                        for path, data in files.items()
                    ],
                },
            )
        assert response.status_code == 201, response.text
        self.reserved = response.json()
        self.id = self.reserved["id"]

    def datastore(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.reserved["datastore_url"],
            headers={"X-Auth-Token": self.reserved["upload_token"]},
            timeout=60,
        )

    def fields(self, path: str, number: int) -> dict[str, str]:
        size = len(self.files[path])
        start = (number - 1) * CHUNK
        return {
            "resumableChunkNumber": str(number),
            "resumableChunkSize": str(CHUNK),
            "resumableCurrentChunkSize": str(min(CHUNK, size - start)),
            "resumableTotalChunks": str(_chunks(self.files[path])),
            "resumableTotalSize": str(size),
            "resumableIdentifier": f"{self.id}/{path}",
        }

    def send(self, client: httpx.Client, path: str, number: int) -> None:
        start = (number - 1) * CHUNK
        payload = self.files[path][start : start + CHUNK]
        response = client.post(
            "/data/datasets",
            data=self.fields(path, number),
            files={"file": ("blob", payload, "application/octet-stream")},
            headers={CHUNK_SHA256_HEADER: hashlib.sha256(payload).hexdigest()},
        )
        assert response.status_code == 200, response.text

    def stored(self, client: httpx.Client, path: str, number: int) -> bool:
        response = client.get(
            "/data/datasets",
            params={
                "resumableChunkNumber": str(number),
                "resumableIdentifier": f"{self.id}/{path}",
            },
        )
        assert response.status_code in (200, 204), response.text
        return response.status_code == 200

    def all_chunks(self) -> list[tuple[str, int]]:
        return [
            (path, number)
            for path, data in self.files.items()
            for number in range(1, _chunks(data) + 1)
        ]

    def finish(self, client: httpx.Client) -> dict[str, Any]:
        response = client.post(
            "/data/datasets/finishUpload", json={"uploadId": self.id}
        )
        assert response.status_code == 200, response.text
        answer: dict[str, Any] = response.json()
        return answer


def _read(services: Services, name: str, layer: str, dtype: Any, shape: Any) -> Any:
    with services.data(services.admin_token) as client:
        response = client.get(
            f"/data/datasets/{ORG}/{name}/layers/{layer}/data",
            params={
                "mag": "1-1-1",
                "x": OFFSET[0],
                "y": OFFSET[1],
                "z": OFFSET[2],
                "width": shape[0],
                "height": shape[1],
                "depth": shape[2],
            },
        )
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, dtype=dtype).reshape(shape, order="F")


def test_a_zipped_wkw_dataset_uploads_resumes_after_an_interruption_and_reads_back(
    services: Services, tmp_path: Path
) -> None:
    source = _write(tmp_path / "wkw_source", "wkw")
    upload = Upload(
        services, "uploaded_wkw", {"wkw_source.zip": _zip(tmp_path / "wkw_source")}
    )
    chunks = upload.all_chunks()
    assert len(chunks) >= 4
    half = len(chunks) // 2
    with upload.datastore() as client:
        for path, number in chunks[:half]:
            upload.send(client, path, number)
    # Interrupted. A new session asks which chunks arrived and sends the rest.
    with upload.datastore() as client:
        stored = [c for c in chunks if upload.stored(client, *c)]
        assert stored == chunks[:half]
        for chunk in chunks:
            if chunk not in stored:
                upload.send(client, *chunk)
        answer = upload.finish(client)
    assert answer["outcome"] == "imported"
    dataset = services.dataset("uploaded_wkw", "active")
    assert dataset["status"] == "active", dataset
    assert dataset["datastore"]["name"] == services.datastore_name
    with services.api(services.admin_token) as api:
        record = api.get(f"/api/uploads/{upload.id}/").json()
    assert record["state"] == "done"
    assert record["result"] == {"dataset": f"{ORG}/uploaded_wkw"}
    got = _read(services, "uploaded_wkw", "color", np.uint8, source.shape)
    np.testing.assert_array_equal(got, source)
    assert not (services.binary_data / ".uploads" / upload.id).exists()


def test_a_zarr3_folder_without_properties_is_inferred_and_reads_back(
    services: Services, tmp_path: Path
) -> None:
    source = _write(tmp_path / "zarr_source", "zarr3")
    files = {
        path: data
        for path, data in _files(tmp_path / "zarr_source").items()
        if path != "datasource-properties.json"
    }
    upload = Upload(services, "uploaded_zarr3", files)
    with upload.datastore() as client:
        for chunk in upload.all_chunks():
            upload.send(client, *chunk)
        assert upload.finish(client)["outcome"] == "imported"
    dataset = services.dataset("uploaded_zarr3", "active")
    [layer] = dataset["datasource"]["dataLayers"]
    assert (layer["name"], layer["dataFormat"]) == ("segmentation", "zarr3")
    assert dataset["datasource"]["scale"]["factor"] == [11.0, 11.0, 24.0]
    got = _read(services, "uploaded_zarr3", "segmentation", np.uint32, source.shape)
    np.testing.assert_array_equal(got, source)


def test_a_cancelled_upload_leaves_nothing_and_frees_the_name(
    services: Services,
) -> None:
    upload = Upload(services, "cancelled_one", {"a.bin": b"x" * 100})
    with upload.datastore() as client:
        upload.send(client, "a.bin", 1)
    with services.api(services.admin_token) as api:
        response = api.post(f"/api/uploads/{upload.id}/cancel/")
    assert response.status_code == 200, response.text
    assert not (services.binary_data / ".uploads" / upload.id).exists()
    with upload.datastore() as client:
        assert (
            client.get(
                "/data/datasets",
                params={
                    "resumableChunkNumber": "1",
                    "resumableIdentifier": f"{upload.id}/a.bin",
                },
            ).status_code
            == 404
        )
    Upload(services, "cancelled_one", {"a.bin": b"y"})


def test_a_tiff_stack_is_converted_by_a_job_that_ends_with_an_active_dataset(
    services: Services, tmp_path: Path
) -> None:
    import tifffile

    rng = np.random.default_rng(5)
    stack = rng.integers(0, 255, (40, 64, 72), dtype=np.uint8)  # z, y, x
    path = tmp_path / "stack.tif"
    tifffile.imwrite(path, stack)
    upload = Upload(services, "converted_tiff", {"stack.tif": path.read_bytes()})
    chunks = upload.all_chunks()
    assert len(chunks) >= 3
    with upload.datastore() as client:
        for chunk in chunks[::2]:  # interrupted after every other chunk
            upload.send(client, *chunk)
    with upload.datastore() as client:
        missing = [c for c in chunks if not upload.stored(client, *c)]
        assert missing == chunks[1::2]
        for chunk in missing:
            upload.send(client, *chunk)
        answer = upload.finish(client)
    assert answer["outcome"] == "conversion_needed", answer
    with services.api(services.admin_token) as api:
        job_id = api.get(f"/api/uploads/{upload.id}/").json()["result"]["job"]
        deadline = time.monotonic() + 90
        while True:
            job = api.get(f"/api/jobs/{job_id}/").json()
            if job["state"] in ("success", "failure") or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    assert job["state"] == "success", job
    assert job["progress"] == 1.0
    assert job["result"] == {"dataset": f"{ORG}/converted_tiff"}
    dataset = services.dataset("converted_tiff", "active")
    assert dataset["status"] == "active", dataset
    [layer] = dataset["datasource"]["dataLayers"]
    assert (layer["name"], layer["category"]) == ("color", "color")
    assert layer["boundingBox"]["width"] == 72
    with services.data(services.admin_token) as data:
        response = data.get(
            f"/data/datasets/{ORG}/converted_tiff/layers/{layer['name']}/data",
            params={"mag": "1", "x": 0, "y": 0, "z": 0,
                    "width": 72, "height": 64, "depth": 40},
        )  # fmt: skip
    assert response.status_code == 200, response.text
    got = np.frombuffer(response.content, np.uint8).reshape((72, 64, 40), order="F")
    np.testing.assert_array_equal(got, stack.transpose(2, 1, 0))
    # The next mag (2-2-1 for the reserved 11 x 11 x 24 nm) is the blocks' mean.
    from .test_conversions_e2e import _check_active

    _check_active(services, "converted_tiff", stack.transpose(2, 1, 0))
