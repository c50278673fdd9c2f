"""End to end: conversion jobs through both real services.

PNG slices and a NIfTI volume convert to active datasets whose mags 1 and 2 read
back as the source and an independent numpy downsampling; a corrupt TIFF fails
its job with a reason naming the file; a cancelled job leaves an unusable dataset
and no staging folder.
"""

from __future__ import annotations

import io
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .services import ORG, Services
from .test_upload import Upload

# Uploads go to a datastore the metaserver has heard from (conftest).
pytestmark = [
    pytest.mark.e2e,
    pytest.mark.timeout(120),
    pytest.mark.usefixtures("registered"),
]


def _upload(services: Services, name: str, files: dict[str, bytes]) -> int:
    """Upload and finish; the id of the conversion job the upload started."""
    upload = Upload(services, name, files)
    with upload.datastore() as client:
        for chunk in upload.all_chunks():
            upload.send(client, *chunk)
        answer = upload.finish(client)
    assert answer["outcome"] == "conversion_needed", answer
    with services.api(services.admin_token) as api:
        record = api.get(f"/api/uploads/{upload.id}/").json()
    job_id: int = record["result"]["job"]
    return job_id


def _wait_for_job(services: Services, job_id: int, seconds: float = 60) -> Any:
    deadline = time.monotonic() + seconds
    with services.api(services.admin_token) as api:
        while True:
            job = api.get(f"/api/jobs/{job_id}/").json()
            if job["state"] not in ("pending", "started"):
                return job
            if time.monotonic() > deadline:
                pytest.fail(f"job {job_id} did not end: {job}")
            time.sleep(0.2)


def _mag_factors(entry: dict[str, Any]) -> tuple[int, int, int]:
    mag = entry.get("mag", entry.get("resolution"))
    if isinstance(mag, int):
        return (mag, mag, mag)
    return tuple(int(v) for v in mag)  # type: ignore[return-value]


def _read(
    services: Services, name: str, layer: dict[str, Any], factors: Any, shape: Any
) -> np.ndarray:
    top = layer["boundingBox"]["topLeft"]
    with services.data(services.admin_token) as data:
        response = data.get(
            f"/data/datasets/{ORG}/{name}/layers/{layer['name']}/data",
            params={
                "mag": "-".join(str(f) for f in factors),
                "x": top[0] // factors[0],
                "y": top[1] // factors[1],
                "z": top[2] // factors[2],
                "width": shape[0],
                "height": shape[1],
                "depth": shape[2],
            },
        )
    assert response.status_code == 200, response.text
    return np.frombuffer(response.content, np.uint8).reshape(shape, order="F")


def _reference_mean(volume: np.ndarray, factors: tuple[int, int, int]) -> np.ndarray:
    """Mean of each block (edges repeated), rounded half to even: the converter's."""
    pad = [(0, (-s) % f) for s, f in zip(volume.shape, factors, strict=True)]
    padded = np.pad(volume, pad, mode="edge").astype(np.float64)
    (sx, sy, sz), (fx, fy, fz) = padded.shape, factors
    blocks = padded.reshape(sx // fx, fx, sy // fy, fy, sz // fz, fz)
    return np.rint(blocks.mean(axis=(1, 3, 5))).astype(volume.dtype)


def _check_active(services: Services, name: str, volume: np.ndarray) -> None:
    """`volume` (x, y, z) at mag 1, and its reference downsampling at mag 2."""
    dataset = services.dataset(name, "active")
    assert dataset["status"] == "active", dataset
    [layer] = dataset["datasource"]["dataLayers"]
    mags = layer.get("mags") or layer.get("wkwResolutions")
    assert _mag_factors(mags[0]) == (1, 1, 1)
    got = _read(services, name, layer, (1, 1, 1), volume.shape)
    np.testing.assert_array_equal(got, volume)
    factors = _mag_factors(mags[1])
    expected = _reference_mean(volume, factors)
    got2 = _read(services, name, layer, factors, expected.shape)
    np.testing.assert_array_equal(got2, expected)


def test_png_slices_in_a_zip_convert_in_natural_order_with_a_mag_pyramid(
    services: Services,
) -> None:
    from PIL import Image

    rng = np.random.default_rng(7)
    stack = rng.integers(0, 255, (30, 40, 48), dtype=np.uint8)  # z, y, x
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for z, plane in enumerate(stack, start=1):
            png = io.BytesIO()
            Image.fromarray(plane).save(png, format="PNG")
            archive.writestr(f"slices/slice_{z}.png", png.getvalue())
    job_id = _upload(services, "converted_png", {"slices.zip": buffer.getvalue()})
    job = _wait_for_job(services, job_id)
    assert job["state"] == "success", job
    _check_active(services, "converted_png", stack.transpose(2, 1, 0))


def test_a_nifti_volume_converts_with_x_y_z_kept(
    services: Services, tmp_path: Path
) -> None:
    import nibabel

    rng = np.random.default_rng(9)
    volume = rng.integers(0, 255, (44, 36, 20), dtype=np.uint8)  # x, y, z
    path = tmp_path / "brain.nii"
    nibabel.save(nibabel.Nifti1Image(volume, np.eye(4)), path)
    job_id = _upload(services, "converted_nifti", {"brain.nii": path.read_bytes()})
    job = _wait_for_job(services, job_id)
    assert job["state"] == "success", job
    _check_active(services, "converted_nifti", volume)


def _staging_folders(services: Services, name: str) -> list[Path]:
    return list((services.binary_data / ORG).glob(f".{name}.staging-*"))


def test_a_corrupt_tiff_fails_its_job_naming_the_file(services: Services) -> None:
    corrupt = b"II*\x00" + b"\x08\x00\x00\x00" + b"\xff" * 4000
    job_id = _upload(services, "corrupt_tiff", {"broken_stack.tif": corrupt})
    job = _wait_for_job(services, job_id)
    assert job["state"] == "failure", job
    assert "broken_stack.tif" in job["message"], job
    dataset = services.dataset("corrupt_tiff", "unusable")
    assert dataset["status"] == "unusable", dataset
    assert "broken_stack.tif" in dataset["status_reason"], dataset
    assert _staging_folders(services, "corrupt_tiff") == []
    assert not (services.binary_data / ORG / "corrupt_tiff").exists()


def test_a_cancelled_conversion_leaves_an_unusable_dataset_and_no_staging(
    services: Services, tmp_path: Path
) -> None:
    import tifffile

    rng = np.random.default_rng(3)
    stack = rng.integers(0, 255, (160, 256, 256), dtype=np.uint8)
    path = tmp_path / "big.tif"
    tifffile.imwrite(path, stack)
    job_id = _upload(services, "cancelled_tiff", {"big.tif": path.read_bytes()})
    with services.api(services.admin_token) as api:
        deadline = time.monotonic() + 30
        # Once started, the plan (and its staging folder) exists.
        while api.get(f"/api/jobs/{job_id}/").json()["state"] == "pending":
            assert time.monotonic() < deadline
            time.sleep(0.02)
        response = api.post(f"/api/jobs/{job_id}/cancel/")
    assert response.status_code == 200, response.text
    assert response.json()["state"] == "cancelled"
    dataset = services.dataset("cancelled_tiff", "unusable")
    assert dataset["status_reason"] == "conversion cancelled", dataset
    deadline = time.monotonic() + 20
    while _staging_folders(services, "cancelled_tiff"):
        assert time.monotonic() < deadline, "the staging folder stayed"
        time.sleep(0.2)
    time.sleep(1.0)  # workers that were mid-task stop without recreating it
    assert _staging_folders(services, "cancelled_tiff") == []
    assert not (services.binary_data / ORG / "cancelled_tiff").exists()
    assert _wait_for_job(services, job_id)["state"] == "cancelled"


_QUEUED_JOB = """
import sys
from metaserver.accounts.models import Organization
from metaserver.datastores.models import DataStore
from metaserver.jobs.actions import do_create_job
job = do_create_job(
    Organization.objects.get(name=sys.argv[1]),
    "convert",
    datastore=DataStore.objects.get(name=sys.argv[2]),
    arguments={"dataset": sys.argv[1] + "/" + sys.argv[3]},
)
print(job.pk)
"""


def test_a_job_cancelled_while_queued_drops_its_conversion_when_it_starts(
    services: Services, tmp_path: Path
) -> None:
    """The cancel reaches the node before any staging folder exists; the worker
    that later takes the queued message hears 409 on its first report and
    removes what it planned, instead of converting a cancelled job."""
    import dramatiq

    from datastore.config import DatastoreSettings
    from datastore.job_reporter import MetaserverJobReporter
    from datastore.worker import create_broker, declare_actors
    from shared.conversions import ConversionCancelled
    from tests.shared import conversion_inputs as inputs

    name = "queued_cancel"
    job_id = services.django(_QUEUED_JOB, ORG, services.datastore_name, name).strip()
    with services.api(services.admin_token) as api:
        assert api.post(f"/api/jobs/{job_id}/cancel/").json()["state"] == "cancelled"

    class Recording(MetaserverJobReporter):
        raised: list[str] = []

        def report_progress(self, job: str, done: int, total: int, msg: str) -> None:
            try:
                super().report_progress(job, done, total, msg)
            except ConversionCancelled as e:
                self.raised.append(str(e))
                raise

    # A worker of the node's own kind (its settings, its reporter), in-process.
    reporter = Recording(DatastoreSettings.from_env(services.env))
    broker = create_broker("")
    actors = declare_actors(broker, "datastore.queued-cancel", reporter)
    inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8", (64, 64, 16)))
    target = services.binary_data / ORG / name
    actors.conversion.start(job_id, tmp_path / "s.tif", target, {"voxel_size": [1] * 3})
    worker = dramatiq.Worker(
        broker, queues={"datastore.queued-cancel"}, worker_timeout=100
    )
    worker.start()
    try:
        broker.join("datastore.queued-cancel", timeout=30_000)
    finally:
        worker.stop()
        broker.close()
    assert reporter.raised == [f"job {job_id} has ended on the metaserver"]
    assert _staging_folders(services, name) == []
    assert not target.exists()
    assert _wait_for_job(services, job_id)["state"] == "cancelled"
