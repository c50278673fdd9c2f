"""The metaserver's datastore client against a real datastore node on loopback.

The node (the aiohttp app, in a thread with its own event loop) registers with the
protocol-faithful metaserver peer of the datastore tests, which hands out the
metaserver token. `DataStore` objects stay unsaved: no database is needed.
"""

from __future__ import annotations

import asyncio
import http.server
import json
import logging
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from datastore.access import RedactingAccessLogger
from datastore.app import create_app
from datastore.state import LINK
from metaserver.datastores.datastore_client import (
    DatastoreRejected,
    DatastoreUnavailable,
    check_inbox,
    trash_dataset,
    write_properties,
)
from metaserver.datastores.models import DataStore
from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    dump_datasource,
    load_datasource,
    save_datasource,
)
from shared.formats import create_mag
from shared.geometry import BoundingBox, Mag, Vec3
from tests.datastore.conftest import MetaserverPeer, make_settings

TOKEN = "metaserver-token-for-the-client-test-0123456789"
PROPERTIES = "datasource-properties.json"


def write_dataset(folder: Path, name: str) -> None:
    """A tiny uint8 zarr3 dataset with properties, written with our format layer."""
    array = create_mag(folder / name / "color" / "1", DataFormat.ZARR3, np.uint8)
    array.write(Vec3(0, 0, 0), np.arange(16**3, dtype=np.uint8).reshape(1, 16, 16, 16))
    array.close()
    save_datasource(
        folder / name / PROPERTIES,
        DatasourceProperties(
            name=name,
            team="lab",
            voxel_size=VoxelSize((11.0, 11.0, 24.0)),
            layers=(
                LayerProperties(
                    name="color",
                    category=Category.COLOR,
                    bounding_box=BoundingBox(Vec3(0, 0, 0), Vec3(16, 16, 16)),
                    element_class=ElementClass.UINT8,
                    data_format=DataFormat.ZARR3,
                    mags=(MagProperties(mag=Mag(1, 1, 1), path="./color/1"),),
                    num_channels=1,
                ),
            ),
        ),
    )


class NodeThread:
    """A datastore node and its metaserver peer on one event loop in a thread."""

    def __init__(self, binary_data: Path) -> None:
        self.binary_data = binary_data
        self.url = ""
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="datastore-node")

    def __enter__(self) -> NodeThread:
        self._thread.start()
        if not self._ready.wait(30):
            raise TimeoutError("the datastore node did not start")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(30)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:
            self._failure = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        peer = MetaserverPeer(metaserver_token=TOKEN)
        peer_runner = web.AppRunner(peer.app())
        await peer_runner.setup()
        await web.TCPSite(peer_runner, "127.0.0.1", 0).start()
        peer_port = peer_runner.addresses[0][1]
        settings = make_settings(
            self.binary_data, metaserver_url=f"http://127.0.0.1:{peer_port}"
        )
        app = create_app(settings)
        runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
        await runner.setup()
        try:
            await web.TCPSite(runner, "127.0.0.1", 0).start()
            self.url = f"http://127.0.0.1:{runner.addresses[0][1]}"
            # Registered: the node now knows the token the peer handed out.
            await asyncio.wait_for(app[LINK].registered.wait(), 10)
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await peer_runner.cleanup()


@pytest.fixture
def binary_data(tmp_path: Path) -> Path:
    lab = tmp_path / "binaryData" / "lab"
    lab.mkdir(parents=True)
    write_dataset(lab, "ds")
    (tmp_path / "binaryData" / "other" / "secret" / "color" / "1").mkdir(parents=True)
    return tmp_path / "binaryData"


@pytest.fixture
def node(binary_data: Path) -> Iterator[NodeThread]:
    with NodeThread(binary_data) as running:
        yield running


@pytest.fixture
def store(node: NodeThread) -> DataStore:
    return DataStore(name="testnode", url=node.url + "/", metaserver_token=TOKEN)


def datasource(binary_data: Path) -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (binary_data / "lab" / "ds" / PROPERTIES).read_text()
    )
    return result


def test_write_properties_changes_the_file_and_answers_the_rescanned_dataset(
    store: DataStore, binary_data: Path
) -> None:
    source = datasource(binary_data)
    source["scale"] = {"factor": [4.0, 4.0, 40.0], "unit": "nanometer"}

    answer = write_properties(store, "lab", "ds", source)

    assert answer["status"] == "active"
    assert answer["datasource"]["scale"]["factor"] == [4.0, 4.0, 40.0]
    on_disk = load_datasource(binary_data / "lab" / "ds" / PROPERTIES)
    assert on_disk.voxel_size.factor == (4.0, 4.0, 40.0)
    assert dump_datasource(on_disk)["id"] == {"name": "ds", "team": "lab"}


def test_a_mag_path_into_another_organization_is_rejected_naming_it(
    store: DataStore, binary_data: Path
) -> None:
    before = (binary_data / "lab" / "ds" / PROPERTIES).read_bytes()
    source = datasource(binary_data)
    source["dataLayers"][0]["mags"][0]["path"] = "../../other/secret/color/1"

    with pytest.raises(DatastoreRejected) as caught:
        write_properties(store, "lab", "ds", source)

    assert caught.value.status == 400
    assert caught.value.error == "invalid datasource"
    [problem] = caught.value.detail
    assert problem["path"] == "dataLayers[0].mags[0].path"
    assert "'../../other/secret/color/1'" in problem["message"]
    assert (binary_data / "lab" / "ds" / PROPERTIES).read_bytes() == before


def test_an_invalid_datasource_is_rejected_with_json_paths(store: DataStore) -> None:
    with pytest.raises(DatastoreRejected) as caught:
        write_properties(store, "lab", "ds", {"dataLayers": []})
    assert caught.value.status == 400
    assert "scale" in [p["path"] for p in caught.value.detail]


def test_trash_moves_the_dataset_and_a_second_trash_is_404(
    store: DataStore, binary_data: Path
) -> None:
    answer = trash_dataset(store, "lab", "ds")

    assert answer["trashed"].startswith("lab/.trash/ds-")
    assert (binary_data / answer["trashed"] / PROPERTIES).is_file()
    assert not (binary_data / "lab" / "ds").exists()
    with pytest.raises(DatastoreRejected) as caught:
        trash_dataset(store, "lab", "ds")
    assert (caught.value.status, caught.value.error) == (404, "dataset not found")


def test_names_that_try_to_leave_the_organization_stay_one_segment(
    store: DataStore, binary_data: Path
) -> None:
    with pytest.raises(DatastoreRejected) as caught:
        trash_dataset(store, "lab", "../other")
    assert caught.value.status == 400
    assert (binary_data / "other").is_dir()


def test_check_inbox_scans_and_answers_the_counts(
    store: DataStore, binary_data: Path
) -> None:
    write_dataset(binary_data / "lab", "new_ds")
    counts = check_inbox(store, "lab")
    # lab/ds and lab/new_ds; other/secret has no data.
    assert counts == {"active": 2, "needs_review": 0, "unusable": 1}


def test_a_wrong_token_is_rejected_with_403(node: NodeThread) -> None:
    stranger = DataStore(name="testnode", url=node.url, metaserver_token="x" * 43)
    with pytest.raises(DatastoreRejected) as caught:
        trash_dataset(stranger, "lab", "ds")
    assert caught.value.status == 403
    assert caught.value.detail is None


def test_a_datastore_that_never_registered_is_unavailable_without_a_call() -> None:
    # Port 9 (discard) is never contacted: there is no token to send.
    unregistered = DataStore(name="fresh", url="http://127.0.0.1:9")
    with pytest.raises(DatastoreUnavailable, match="datastore fresh is unreachable"):
        check_inbox(unregistered, "lab")


def test_a_closed_port_is_unavailable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    down = DataStore(
        name="down", url=f"http://127.0.0.1:{port}", metaserver_token=TOKEN
    )
    with pytest.raises(DatastoreUnavailable, match="datastore down is unreachable"):
        write_properties(down, "lab", "ds", {})


class _Failing(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        self.send_response(503)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"error": "metaserver unreachable", "detail": null}')

    def log_message(self, *_args: Any) -> None:
        pass  # keep the test output quiet


def test_a_5xx_answer_is_unavailable() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Failing)
    thread = threading.Thread(target=server.serve_forever)
    thread.start()
    try:
        failing = DataStore(
            name="failing",
            url=f"http://127.0.0.1:{server.server_address[1]}",
            metaserver_token=TOKEN,
        )
        with pytest.raises(DatastoreUnavailable, match=r"unreachable \(HTTP 503\)"):
            trash_dataset(failing, "lab", "ds")
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def test_the_token_is_never_logged(
    store: DataStore, binary_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    write_properties(store, "lab", "ds", datasource(binary_data))
    check_inbox(store, "lab")
    with pytest.raises(DatastoreRejected):
        trash_dataset(store, "lab", "missing")
    trash_dataset(store, "lab", "ds")
    assert caplog.records
    for record in caplog.records:
        assert TOKEN not in record.getMessage()
