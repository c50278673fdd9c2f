"""Metaserver-only write routes: properties PUT and trash, on copies of the samples."""

from __future__ import annotations

import asyncio
import io
import json
import shutil
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from datastore.inbox import PROPERTIES_FILE
from datastore.state import INBOX, LINK, READER
from shared.datasource import load_datasource, parse_datasource_json
from shared.protocol import METASERVER_TOKEN_HEADER, DatasetStatus
from tests.datastore.conftest import (
    ADMIN_TOKEN,
    READER_TOKEN,
    MetaserverPeer,
    StartNode,
)
from tests.datastore.samples import Expected

Client = TestClient[web.Request, web.Application]
OURS = "/data/datasets/lab/ours_ds"
GRAY_DATA = f"{OURS}/layers/gray/data"
CUBOID: dict[str, str | int] = {
    "mag": "1",
    "x": 20,
    "y": 8,
    "z": 3,
    "width": 4,
    "height": 4,
    "depth": 4,
}
AUTH = {"X-Auth-Token": READER_TOKEN}


@pytest.fixture
def binary_data(tmp_path: Path, samples: tuple[Path, Expected]) -> Path:
    """Copies of two samples, a dataset symlinked into an allowed root, and an
    organization next door whose data a mag path must never reach."""
    binary_data = tmp_path / "binaryData"
    lab = binary_data / "lab"
    lab.mkdir(parents=True)
    for name in ("wkw_ds", "ours_ds"):
        shutil.copytree(samples[0] / "lab" / name, lab / name, symlinks=True)
    (binary_data / "other_org" / "x" / "gray" / "1").mkdir(parents=True)
    target = tmp_path / "extra" / "linked_target"
    shutil.copytree(samples[0] / "lab" / "ours_ds", target)
    (lab / "linked").symlink_to(target, target_is_directory=True)
    # Shares the allowed root's name as a prefix, but is outside it.
    (tmp_path / "extra2" / "gray" / "1").mkdir(parents=True)
    (tmp_path / "outside" / "gray" / "1").mkdir(parents=True)
    return binary_data


@pytest.fixture
async def store(
    start_node: StartNode, metaserver: MetaserverPeer, binary_data: Path
) -> Client:
    for name in ("ours_ds", "wkw_ds", "linked"):
        metaserver.allow(READER_TOKEN, "lab", name)
    client = await start_node(
        binary_data, allowed_roots=(binary_data.parent / "extra",)
    )
    await asyncio.wait_for(client.app[LINK].registered.wait(), 5)
    return client


@pytest.fixture
def meta(metaserver: MetaserverPeer) -> dict[str, str]:
    return {METASERVER_TOKEN_HEADER: metaserver.metaserver_token}


def properties(binary_data: Path, name: str = "ours_ds") -> dict[str, Any]:
    result: dict[str, Any] = json.loads(
        (binary_data / "lab" / name / PROPERTIES_FILE).read_text()
    )
    return result


async def wait_for_report(
    metaserver: MetaserverPeer, matches: Callable[[list[dict[str, Any]]], bool]
) -> None:
    async with asyncio.timeout(5):
        while not any(
            matches(c.body["datasets"]) for c in metaserver.calls_of("report")
        ):
            reports = len(metaserver.calls_of("report"))
            await metaserver.wait_for("report", count=reports + 1)


async def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status == status, await response.text()
    assert response.content_type == "application/json"
    body: dict[str, Any] = await response.json()
    return body


ROUTES = [("PUT", f"{OURS}/properties"), ("POST", f"{OURS}/trash")]


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_without_the_metaserver_token_the_routes_are_401_without_details(
    store: Client, binary_data: Path, method: str, path: str
) -> None:
    response = await store.request(method, path, json=properties(binary_data))
    body = await error_of(response, 401)
    assert body["detail"] is None
    assert (binary_data / "lab" / "ours_ds").is_dir()


@pytest.mark.parametrize(("method", "path"), ROUTES)
async def test_a_wrong_metaserver_token_is_403_without_details(
    store: Client, binary_data: Path, method: str, path: str
) -> None:
    response = await store.request(
        method,
        path,
        json=properties(binary_data),
        headers={METASERVER_TOKEN_HEADER: "metaserver-token-for-callbackz"},
    )
    body = await error_of(response, 403)
    assert body == {"error": "access denied", "detail": None}
    assert (binary_data / "lab" / "ours_ds").is_dir()


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("where", ["header", "query"])
async def test_user_tokens_are_never_accepted_even_with_every_permission(
    store: Client,
    metaserver: MetaserverPeer,
    binary_data: Path,
    method: str,
    path: str,
    where: str,
) -> None:
    for mode in ("read", "write", "administrate"):
        metaserver.allow(ADMIN_TOKEN, "lab", "ours_ds", mode)
        metaserver.allow(ADMIN_TOKEN, "lab", None, mode)
    before = (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes()
    response = await store.request(
        method,
        path,
        json=properties(binary_data),
        headers={"X-Auth-Token": ADMIN_TOKEN} if where == "header" else {},
        params={"token": ADMIN_TOKEN} if where == "query" else {},
    )
    await error_of(response, 401)
    assert metaserver.calls_of("validate-access") == []
    assert (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes() == before


async def test_put_writes_the_file_and_the_new_values_are_served_at_once(
    store: Client,
    metaserver: MetaserverPeer,
    binary_data: Path,
    meta: dict[str, str],
) -> None:
    # Reading first puts the arrays into the reader cache, which must be dropped.
    assert (await store.get(GRAY_DATA, params=CUBOID, headers=AUTH)).status == 200
    props = properties(binary_data)
    props["scale"] = {"factor": [5.0, 5.0, 50.0], "unit": "nanometer"}
    props["id"] = {"name": "renamed", "team": "elsewhere"}
    props["someToolsKey"] = {"kept": True}

    response = await store.put(f"{OURS}/properties", json=props, headers=meta)

    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["status"] == "active"
    assert answer["reason"] == ""
    assert answer["datasource"]["scale"]["factor"] == [5.0, 5.0, 50.0]
    # Like WEBKNOSSOS: the id is the folder and organization, whatever was sent.
    assert answer["datasource"]["id"] == {"name": "ours_ds", "team": "lab"}
    on_disk = load_datasource(binary_data / "lab" / "ours_ds" / PROPERTIES_FILE)
    assert on_disk.voxel_size.factor == (5.0, 5.0, 50.0)
    assert (on_disk.name, on_disk.team) == ("ours_ds", "lab")
    assert on_disk.extra["someToolsKey"] == {"kept": True}
    scanned = store.app[INBOX].get("lab", "ours_ds")
    assert scanned is not None
    assert scanned.status is DatasetStatus.ACTIVE
    assert scanned.datasource is not None
    assert scanned.datasource.voxel_size.factor == (5.0, 5.0, 50.0)
    assert len(store.app[READER].cache) == 0
    assert (await store.get(GRAY_DATA, params=CUBOID, headers=AUTH)).status == 200
    await wait_for_report(
        metaserver,
        lambda datasets: any(
            d["name"] == "ours_ds"
            and d["datasource"]["scale"]["factor"] == [5.0, 5.0, 50.0]
            for d in datasets
        ),
    )


async def test_put_makes_a_folder_without_properties_active(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    props = properties(binary_data, "wkw_ds")
    (binary_data / "lab" / "wkw_ds" / PROPERTIES_FILE).unlink()
    await store.post("/data/triggers/checkInbox", headers=meta)
    scanned = store.app[INBOX].get("lab", "wkw_ds")
    assert scanned is not None
    assert scanned.status is DatasetStatus.NEEDS_REVIEW

    response = await store.put(
        "/data/datasets/lab/wkw_ds/properties", json=props, headers=meta
    )

    assert response.status == 200
    assert (await response.json())["status"] == "active"
    assert (binary_data / "lab" / "wkw_ds" / PROPERTIES_FILE).is_file()


def _without_scale(props: dict[str, Any]) -> None:
    del props["scale"]


def _bad_element_class(props: dict[str, Any]) -> None:
    props["dataLayers"][0]["elementClass"] = "uint7"


@pytest.mark.parametrize(
    ("body", "json_path"),
    [
        (b"{not json", "(json)"),
        (b"", "(json)"),
        (b"[]", "(root)"),
        (_without_scale, "scale"),
        (_bad_element_class, "dataLayers[0].elementClass"),
    ],
)
async def test_an_invalid_body_is_400_with_json_paths_and_the_file_unchanged(
    store: Client,
    binary_data: Path,
    meta: dict[str, str],
    body: bytes | Callable[[dict[str, Any]], None],
    json_path: str,
) -> None:
    file = binary_data / "lab" / "ours_ds" / PROPERTIES_FILE
    before = file.read_bytes()
    if callable(body):
        props = properties(binary_data)
        body(props)
        data = json.dumps(props).encode()
    else:
        data = body
    response = await store.put(f"{OURS}/properties", data=data, headers=meta)
    answer = await error_of(response, 400)
    assert answer["error"] == "invalid datasource"
    assert json_path in [problem["path"] for problem in answer["detail"]]
    assert all(problem["message"] for problem in answer["detail"])
    assert file.read_bytes() == before


@pytest.mark.parametrize(
    "mag_path",
    [
        "../../other_org/x/gray/1",
        "../../other_org/x",
        "{tmp}/outside/gray/1",
        "file://{tmp}/outside/gray/1",
        "{tmp}/extra2/gray/1",  # the allowed root's name is only a prefix of it
        "/etc",
        "./gray/9",  # inside, but there is no data
    ],
)
async def test_a_mag_path_outside_the_allowed_roots_is_400_naming_it(
    store: Client,
    binary_data: Path,
    meta: dict[str, str],
    mag_path: str,
) -> None:
    file = binary_data / "lab" / "ours_ds" / PROPERTIES_FILE
    before = file.read_bytes()
    written = mag_path.format(tmp=binary_data.parent)
    props = properties(binary_data)
    props["dataLayers"][0]["mags"][0]["path"] = written
    response = await store.put(f"{OURS}/properties", json=props, headers=meta)
    answer = await error_of(response, 400)
    assert answer["error"] == "invalid datasource"
    [problem] = answer["detail"]
    assert problem["path"] == "dataLayers[0].mags[0].path"
    assert f"'{written}'" in problem["message"]
    # Messages name what the caller wrote, never other server paths.
    assert str(binary_data) not in problem["message"].replace(written, "")
    assert file.read_bytes() == before
    scanned = store.app[INBOX].get("lab", "ours_ds")
    assert scanned is not None
    assert scanned.status is DatasetStatus.ACTIVE


@pytest.mark.parametrize(
    "path",
    [
        "/data/datasets/lab/..%2F..%2Fother_org/properties",
        "/data/datasets/lab/..%5Cwkw_ds/properties",
        "/data/datasets/lab/.trash/properties",
        "/data/datasets/..%2Flab/ours_ds/properties",
        "/data/datasets/lab/ours_ds%00/properties",
    ],
)
async def test_names_with_dots_or_encoded_separators_are_400(
    store: Client, binary_data: Path, meta: dict[str, str], path: str
) -> None:
    before = (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes()
    for method, route in (
        ("PUT", path),
        ("POST", path[: -len("properties")] + "trash"),
    ):
        response = await store.request(
            method, route, json=properties(binary_data), headers=meta
        )
        answer = await error_of(response, 400)
        assert answer["error"].startswith("invalid ")
    assert (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes() == before
    assert sorted(p.name for p in (binary_data / "lab").iterdir()) == [
        "linked",
        "ours_ds",
        "wkw_ds",
    ]


async def test_put_for_an_unknown_dataset_is_404_and_creates_nothing(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    response = await store.put(
        "/data/datasets/lab/nothing/properties",
        json=properties(binary_data),
        headers=meta,
    )
    assert (await error_of(response, 404))["error"] == "dataset not found"
    assert not (binary_data / "lab" / "nothing").exists()
    response = await store.put(
        "/data/datasets/nobody/nothing/properties",
        json=properties(binary_data),
        headers=meta,
    )
    await error_of(response, 404)


async def _chunks(total: int) -> AsyncIterator[bytes]:
    piece = b" " * 2**20
    for start in range(0, total, len(piece)):
        yield piece[: total - start]


@pytest.mark.parametrize("declared", [True, False])
async def test_a_body_above_16_mib_is_413(
    store: Client, binary_data: Path, meta: dict[str, str], declared: bool
) -> None:
    before = (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes()
    size = 16 * 2**20 + 1
    # With a Content-Length the answer comes before reading; without, while reading.
    body = io.BytesIO(b" " * size) if declared else _chunks(size)
    response = await store.put(f"{OURS}/properties", data=body, headers=meta)
    answer = await error_of(response, 413)
    assert answer["detail"] == {"max_bytes": 16 * 2**20}
    assert (binary_data / "lab" / "ours_ds" / PROPERTIES_FILE).read_bytes() == before


async def test_a_body_above_the_usual_1_mib_limit_is_accepted(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    props = properties(binary_data)
    props["notes"] = "x" * (2 * 2**20)
    response = await store.put(
        f"{OURS}/properties",
        data=io.BytesIO(json.dumps(props).encode()),
        headers={**meta, "Content-Type": "application/json"},
    )
    assert response.status == 200, await response.text()
    assert len(properties(binary_data)["notes"]) == 2 * 2**20


async def test_trash_moves_the_folder_and_the_dataset_is_gone(
    store: Client,
    metaserver: MetaserverPeer,
    binary_data: Path,
    meta: dict[str, str],
) -> None:
    assert (await store.get(GRAY_DATA, params=CUBOID, headers=AUTH)).status == 200

    response = await store.post(f"{OURS}/trash", headers=meta)

    assert response.status == 200, await response.text()
    trashed = (await response.json())["trashed"]
    assert trashed.startswith("lab/.trash/ours_ds-")
    assert not (binary_data / "lab" / "ours_ds").exists()
    assert (binary_data / trashed / PROPERTIES_FILE).is_file()
    assert (binary_data / trashed / "gray" / "1").is_dir()
    assert store.app[INBOX].get("lab", "ours_ds") is None
    assert len(store.app[READER].cache) == 0
    response = await store.get(GRAY_DATA, params=CUBOID, headers=AUTH)
    assert (await error_of(response, 404))["error"] == "dataset not found"
    second = await store.post(f"{OURS}/trash", headers=meta)
    assert (await error_of(second, 404))["error"] == "dataset not found"
    # A full scan skips .trash: the dataset stays gone, also for the metaserver.
    assert (await store.post("/data/triggers/checkInbox", headers=meta)).status == 200
    assert store.app[INBOX].get("lab", "ours_ds") is None
    await wait_for_report(
        metaserver,
        lambda datasets: "ours_ds" not in {d["name"] for d in datasets},
    )


async def test_trashing_a_symlinked_dataset_moves_only_the_link(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    target = binary_data.parent / "extra" / "linked_target"
    scanned = store.app[INBOX].get("lab", "linked")
    assert scanned is not None
    assert scanned.status is DatasetStatus.ACTIVE

    response = await store.post("/data/datasets/lab/linked/trash", headers=meta)

    assert response.status == 200, await response.text()
    moved = binary_data / (await response.json())["trashed"]
    assert moved.is_symlink()
    assert moved.resolve() == target.resolve()
    assert not (binary_data / "lab" / "linked").exists()
    assert (target / PROPERTIES_FILE).is_file()
    assert (target / "gray" / "1").is_dir()
    response = await store.get(
        "/data/datasets/lab/linked/layers/gray/data", params=CUBOID, headers=AUTH
    )
    await error_of(response, 404)


async def test_trashing_twice_in_one_second_keeps_both_copies(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    first = await (await store.post(f"{OURS}/trash", headers=meta)).json()
    shutil.copytree(
        binary_data / first["trashed"], binary_data / "lab" / "ours_ds", symlinks=True
    )
    response = await store.post(f"{OURS}/trash", headers=meta)
    second = await response.json()
    assert response.status == 200
    assert first["trashed"] != second["trashed"]
    assert len(list((binary_data / "lab" / ".trash").iterdir())) == 2


async def test_trash_of_an_unknown_dataset_or_a_plain_file_is_404(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    (binary_data / "lab" / "a_file").write_text("not a dataset")
    for path in (
        "/data/datasets/lab/nothing/trash",
        "/data/datasets/nobody/nothing/trash",
        "/data/datasets/lab/a_file/trash",
    ):
        response = await store.post(path, headers=meta)
        assert (await error_of(response, 404))["error"] == "dataset not found"
    assert (binary_data / "lab" / "a_file").is_file()
    assert not (binary_data / "lab" / ".trash").exists()


async def test_a_large_put_leaves_the_heavy_work_to_the_executor(
    store: Client, binary_data: Path, meta: dict[str, str]
) -> None:
    props = properties(binary_data)
    # Many small values: slow to parse, validate, dump and rescan.
    props["notes"] = [{"i": i, "v": [i, i + 1, i + 2]} for i in range(100_000)]
    body = json.dumps(props).encode()
    started = time.thread_time()
    parse_datasource_json(body)
    one_parse = time.thread_time() - started
    # Hold reports back: the reporter dumps every datasource on the loop itself.
    store.app[LINK].registered.clear()
    # CPU time of this thread, the loop's: waiting for the GIL does not count, so
    # this measures only what ran on the loop (the handler, the test client).
    started = time.thread_time()
    response = await store.put(
        f"{OURS}/properties", data=io.BytesIO(body), headers=meta
    )
    assert response.status == 200, await response.text()
    await response.read()
    on_the_loop = time.thread_time() - started
    # Done on the loop, parse + save + rescan + answer would cost several parses.
    assert on_the_loop < one_parse / 4, (on_the_loop, one_parse)
