"""Changing and deleting datasets through the metaserver reaches the datastore's disk.

Both services are real processes; every assertion about the disk reads the files
the datastore wrote.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from .services import ORG, Services, write_zarr3_dataset

pytestmark = pytest.mark.e2e

PROPERTIES = "datasource-properties.json"


def write_dataset(services: Services, name: str) -> Path:
    """A 16³ uint8 zarr3 dataset with properties, in the datastore's binaryData."""
    folder = services.binary_data / ORG / name
    write_zarr3_dataset(folder, np.arange(16**3, dtype=np.uint8).reshape(16, 16, 16))
    services.scan()
    services.dataset(name, "active")
    return folder


def patch(services: Services, name: str, body: dict[str, Any]) -> Any:
    with services.api(services.admin_token) as client:
        return client.patch(f"/api/datasets/{ORG}/{name}/", json=body)


def on_disk(folder: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((folder / PROPERTIES).read_text())
    return loaded


def test_voxel_size_edited_in_the_api_is_written_to_disk(services: Services) -> None:
    folder = write_dataset(services, "edit_scale")
    source = services.dataset("edit_scale")["datasource"]
    source["scale"] = {"factor": [4.0, 4.0, 35.0], "unit": "nanometer"}
    response = patch(services, "edit_scale", {"datasource": source})
    assert response.status_code == 200, response.text
    assert on_disk(folder)["scale"]["factor"] == [4.0, 4.0, 35.0]
    assert response.json()["datasource"]["scale"]["factor"] == [4.0, 4.0, 35.0]
    # The next scan finds what was written: nothing pending, nothing changed.
    services.scan()
    time.sleep(0.5)
    record = services.dataset("edit_scale")
    assert record["pending_datasource"] is None
    assert record["datasource"]["scale"]["factor"] == [4.0, 4.0, 35.0]


def test_a_mag_path_outside_the_organization_is_refused_and_nothing_changes(
    services: Services,
) -> None:
    folder = write_dataset(services, "escape")
    before = (folder / PROPERTIES).read_bytes()
    source = services.dataset("escape")["datasource"]
    source["dataLayers"][0]["mags"][0]["path"] = "../../../../etc"
    response = patch(services, "escape", {"datasource": source, "display_name": "x"})
    assert response.status_code == 400, response.text
    assert "dataLayers[0].mags[0]" in response.text
    assert (folder / PROPERTIES).read_bytes() == before
    assert services.dataset("escape")["display_name"] == ""


def test_a_file_changed_on_disk_waits_until_applied(services: Services) -> None:
    folder = write_dataset(services, "changed_on_disk")
    properties = on_disk(folder)
    properties["scale"]["factor"] = [5.0, 5.0, 50.0]
    (folder / PROPERTIES).write_text(json.dumps(properties))
    services.scan()
    deadline = time.monotonic() + 20
    while services.dataset("changed_on_disk")["pending_datasource"] is None:
        assert time.monotonic() < deadline, "the change on disk was never reported"
        time.sleep(0.3)
    record = services.dataset("changed_on_disk")
    assert record["datasource"]["scale"]["factor"] == [11.0, 11.0, 24.0]
    assert record["pending_datasource"]["scale"]["factor"] == [5.0, 5.0, 50.0]
    with services.api(services.admin_token) as client:
        applied = client.post(
            f"/api/datasets/{ORG}/changed_on_disk/pending-datasource/",
            json={"action": "apply"},
        )
    assert applied.status_code == 200, applied.text
    assert applied.json()["datasource"]["scale"]["factor"] == [5.0, 5.0, 50.0]
    assert applied.json()["pending_datasource"] is None


def test_keeping_the_recorded_version_writes_it_back_to_disk(
    services: Services,
) -> None:
    folder = write_dataset(services, "keep_ours")
    properties = on_disk(folder)
    properties["scale"]["factor"] = [7.0, 7.0, 70.0]
    (folder / PROPERTIES).write_text(json.dumps(properties))
    services.scan()
    deadline = time.monotonic() + 20
    while services.dataset("keep_ours")["pending_datasource"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.3)
    with services.api(services.admin_token) as client:
        kept = client.post(
            f"/api/datasets/{ORG}/keep_ours/pending-datasource/",
            json={"action": "discard"},
        )
    assert kept.status_code == 200, kept.text
    assert on_disk(folder)["scale"]["factor"] == [11.0, 11.0, 24.0]
    assert kept.json()["pending_datasource"] is None


def test_deleting_moves_the_folder_to_the_trash(services: Services) -> None:
    folder = write_dataset(services, "to_delete")
    with services.api(services.admin_token) as client:
        response = client.delete(f"/api/datasets/{ORG}/to_delete/")
        assert response.status_code == 200, response.text
        assert client.get(f"/api/datasets/{ORG}/to_delete/").status_code == 404
    assert not folder.exists()
    trash = services.binary_data / ORG / ".trash"
    trashed = [p for p in trash.iterdir() if p.name.startswith("to_delete")]
    assert len(trashed) == 1
    assert (trashed[0] / PROPERTIES).exists()
    # Nothing is served any more, and a scan does not bring it back.
    with services.data(services.admin_token) as client:
        gone = client.get(
            f"/data/datasets/{ORG}/to_delete/layers/color/data",
            params={"mag": "1", "x": 0, "y": 0, "z": 0, "width": 4, "height": 4},
        )
    assert gone.status_code in (403, 404)
    services.scan()
    time.sleep(0.5)
    with services.api(services.admin_token) as client:
        assert client.get(f"/api/datasets/{ORG}/to_delete/").status_code == 404
