"""Resumable uploads on a datastore node (RELIABILITY 1-12).

Each test gets its own empty binaryData; the metaserver is the protocol-faithful
peer of conftest.py plus the upload-finished endpoint. Datasets come from the
session's samples, written by the webknossos library.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import json
import os
import shutil
import stat
import struct
import time
import uuid
import zipfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import FormData, web
from aiohttp.test_utils import TestClient

from datastore.routes.upload import FINISHER, UPLOADS
from datastore.state import INBOX, LINK
from datastore.upload import STATE_FILE, UPLOADS_FOLDER
from datastore.upload_archive import ArchiveError, ArchiveLimits, unpack_zip
from datastore.upload_finish import ConversionRequest
from shared.datasource import load_datasource
from shared.protocol import METASERVER_TOKEN_HEADER, DatasetStatus
from shared.uploads import CHUNK_SHA256_HEADER, UPLOAD_FINISHED_PATH
from tests.datastore.conftest import MetaserverPeer, StartNode
from tests.datastore.samples import Expected

Client = TestClient[web.Request, web.Application]
pytestmark = pytest.mark.timeout(60)


@dataclass
class UploadMetaserver(MetaserverPeer):
    """The peer, plus `.../uploads/{id}/finished`: records reports, answers a job
    id for conversions, refuses the statuses in `refuse` with 409."""

    refuse: set[str] = field(default_factory=set)
    job_id: int = 77

    def app(self) -> web.Application:
        app = super().app()

        async def finished(request: web.Request) -> web.Response:
            body = await self._record("upload-finished", request)
            if body["status"] in self.refuse:
                return web.json_response({"error": "conflict"}, status=409)
            job = self.job_id if body["status"] == "conversion_needed" else None
            return web.json_response({"state": body["status"], "job_id": job})

        app.router.add_post(
            UPLOAD_FINISHED_PATH.replace("{upload_id}", "{upload_id}"), finished
        )
        return app

    def reports(self) -> list[str]:
        return [c.body["status"] for c in self.calls_of("upload-finished")]


@pytest.fixture
async def metaserver(aiohttp_server: Any) -> UploadMetaserver:
    peer = UploadMetaserver()
    peer.server = await aiohttp_server(peer.app())
    peer.url = str(peer.server.make_url("")).rstrip("/")
    return peer


@pytest.fixture
def binary_data(tmp_path: Path) -> Path:
    path = tmp_path / "binaryData"
    path.mkdir()
    return path


@pytest.fixture
def conversions() -> list[ConversionRequest]:
    return []


@pytest.fixture
def start(
    start_node: StartNode, binary_data: Path, conversions: list[ConversionRequest]
) -> Callable[..., Awaitable[Client]]:
    """Start a registered node on `binary_data`; conversions are only recorded."""

    async def go(**overrides: Any) -> Client:
        client = await start_node(binary_data=binary_data, **overrides)
        await asyncio.wait_for(client.app[LINK].registered.wait(), 5)
        client.app[FINISHER].start_conversion = conversions.append
        return client

    return go


@pytest.fixture
async def node(start: Callable[..., Awaitable[Client]]) -> Client:
    return await start()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class Reserved:
    upload_id: str
    token: str
    files: dict[str, bytes]

    @property
    def auth(self) -> dict[str, str]:
        return {"X-Auth-Token": self.token}


async def reserve(
    client: Client,
    metaserver: MetaserverPeer,
    files: dict[str, bytes],
    *,
    name: str = "up",
    organization: str = "lab",
    expires_in: float = 3600,
    declared: dict[str, str] | None = None,
    **extra: Any,
) -> Reserved:
    upload_id, token = str(uuid.uuid4()), f"vxu_{uuid.uuid4().hex}"
    body = {
        "upload_id": upload_id,
        "organization": organization,
        "name": name,
        "files": [
            {
                "path": path,
                "size": len(data),
                "sha256": (declared or {}).get(path, sha(data)),
            }
            for path, data in files.items()
        ],
        "total_size": sum(len(d) for d in files.values()),
        "token_sha256": sha(token.encode()),
        "expires": time.time() + expires_in,
        **extra,
    }
    response = await client.post(
        "/data/datasets/reserveUpload",
        json=body,
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    assert response.status == 200, await response.text()
    return Reserved(upload_id, token, dict(files))


def chunk_fields(
    up: Reserved, path: str, number: int, chunk_size: int, **overrides: Any
) -> tuple[dict[str, Any], bytes]:
    data = up.files[path]
    total = max(-(-len(data) // chunk_size), 1)
    start = (number - 1) * chunk_size
    payload = data[start : min(start + chunk_size, len(data))]
    fields = {
        "resumableChunkNumber": number,
        "resumableChunkSize": chunk_size,
        "resumableCurrentChunkSize": len(payload),
        "resumableTotalChunks": total,
        "resumableTotalSize": len(data),
        "resumableIdentifier": f"{up.upload_id}/{path}",
        "resumableFilename": path.rsplit("/", 1)[-1],
    }
    fields.update(overrides)
    return fields, payload


async def send(
    client: Client,
    up: Reserved,
    path: str,
    number: int,
    chunk_size: int,
    *,
    payload: bytes | None = None,
    checksum: str | bool | None = True,
    token: str | None = None,
    **overrides: Any,
) -> Any:
    fields, natural = chunk_fields(up, path, number, chunk_size, **overrides)
    body = natural if payload is None else payload
    form = FormData()
    for key, value in fields.items():
        form.add_field(key, str(value))
    form.add_field("file", io.BytesIO(body), filename="blob")
    headers = {"X-Auth-Token": token or up.token}
    if checksum is True:
        headers[CHUNK_SHA256_HEADER] = sha(body)
    elif isinstance(checksum, str):
        headers[CHUNK_SHA256_HEADER] = checksum
    return await client.post("/data/datasets", data=form, headers=headers)


async def send_all(
    client: Client, up: Reserved, chunk_size: int = 1000, skip: set[Any] = frozenset()
) -> None:
    for path, data in up.files.items():
        for number in range(1, max(-(-len(data) // chunk_size), 1) + 1):
            if (path, number) in skip or path in skip:
                continue
            response = await send(client, up, path, number, chunk_size)
            assert response.status == 200, await response.text()


async def is_stored(client: Client, up: Reserved, path: str, number: int) -> bool:
    response = await client.get(
        "/data/datasets",
        params={
            "resumableChunkNumber": str(number),
            "resumableIdentifier": f"{up.upload_id}/{path}",
        },
        headers=up.auth,
    )
    assert response.status in (200, 204), await response.text()
    return response.status == 200


async def finish(client: Client, up: Reserved) -> Any:
    return await client.post(
        "/data/datasets/finishUpload", json={"uploadId": up.upload_id}, headers=up.auth
    )


async def error(response: Any, status: int) -> dict[str, Any]:
    text = await response.text()
    assert response.status == status, text
    body: dict[str, Any] = json.loads(text)
    assert set(body) == {"error", "detail"}, body
    return body


def upload_dir(binary_data: Path, up: Reserved) -> Path:
    return binary_data / UPLOADS_FOLDER / up.upload_id


def folder_files(folder: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(folder)): p.read_bytes()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def zip_bytes(entries: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in entries.items():
            archive.writestr(name, data)
    return buffer.getvalue()


def zip_with_raw_name(name: str, data: bytes = b"x", mode: int = 0) -> bytes:
    """A zip whose one entry has exactly this name (NUL included) and unix mode."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        info = zipfile.ZipInfo("placeholder")
        info.filename = name  # bypasses ZipInfo's cut at NUL
        if mode:
            info.create_system = 3
            info.external_attr = mode << 16
        archive.writestr(info, data)
    return buffer.getvalue()


@pytest.fixture
def wkw_zip(samples: tuple[Path, Expected]) -> bytes:
    """The sample WKW dataset folder, zipped with its top folder."""
    source = samples[0] / "lab" / "wkw_ds"
    return zip_bytes(
        {f"wkw_ds/{k}": v for k, v in folder_files(source).items()},
        zipfile.ZIP_STORED,
    )


# -- the happy path, and what the metaserver hears ------------------------------------


async def test_a_zipped_wkw_dataset_is_imported_and_served(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    wkw_zip: bytes,
    samples: tuple[Path, Expected],
) -> None:
    up = await reserve(node, metaserver, {"wkw_ds.zip": wkw_zip}, name="fresh")
    await send_all(node, up, chunk_size=64 * 1024)
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["outcome"] == "imported"
    assert answer["dataset"] == "lab/fresh"
    target = binary_data / "lab" / "fresh"
    source = samples[0] / "lab" / "wkw_ds"
    assert {k: v for k, v in folder_files(target).items() if "datasource" not in k} == {
        k: v for k, v in folder_files(source).items() if "datasource" not in k
    }
    props = load_datasource(target / "datasource-properties.json")
    assert props.name == "fresh"
    assert props.team == "lab"
    scanned = node.app[INBOX].get("lab", "fresh")
    assert scanned is not None
    assert scanned.status is DatasetStatus.ACTIVE
    assert metaserver.reports() == ["finishing", "imported"]
    imported = metaserver.calls_of("upload-finished")[-1].body
    assert imported["datasource"]["dataLayers"][0]["name"] == "color"
    assert not upload_dir(binary_data, up).exists()


async def test_a_folder_without_properties_is_inferred_with_the_reserved_voxel_size(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    samples: tuple[Path, Expected],
) -> None:
    source = samples[0] / "lab" / "zarr_ds"
    files = {
        k: v
        for k, v in folder_files(source).items()
        if "datasource-properties" not in k
    }
    up = await reserve(
        node, metaserver, files, name="zarr_up", voxel_size=[4, 5, 6], unit="nanometer"
    )
    await send_all(node, up, chunk_size=4096)
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    props = load_datasource(
        binary_data / "lab" / "zarr_up" / "datasource-properties.json"
    )
    assert props.voxel_size.factor == (4.0, 5.0, 6.0)
    assert {layer.name for layer in props.layers} == {"seg", "rgb"}


async def test_data_that_is_no_dataset_goes_to_a_conversion_job(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    conversions: list[ConversionRequest],
) -> None:
    files = {"stack/z000.tif": b"not really a tiff", "stack/z001.tif": b"neither"}
    up = await reserve(
        node,
        metaserver,
        files,
        name="tiffs",
        voxel_size=[1, 1, 2],
        layer_hints=[{"name": "em", "category": "color"}],
        data_format="zarr3",
    )
    await send_all(node, up)
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    answer = await response.json()
    assert answer["outcome"] == "conversion_needed"
    assert answer["job_id"] == metaserver.job_id
    assert metaserver.reports() == ["finishing", "conversion_needed"]
    [request] = conversions
    assert request.job_id == str(metaserver.job_id)
    assert request.target == binary_data / "lab" / "tiffs"
    assert request.voxel_size == (1.0, 1.0, 2.0)
    assert request.layer_hints == ({"name": "em", "category": "color"},)
    assert request.data_format == "zarr3"
    assert sorted(p.name for p in request.input_path.iterdir()) == [
        "z000.tif",
        "z001.tif",
    ]
    assert not (binary_data / "lab" / "tiffs").exists()


# -- RELIABILITY 1, 3, 6: archives -----------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../../x",
        "/etc/x",
        "..\\..\\x",
        "a/../../x",
        "a/b/../../../x",
        "evil\x00.txt",
        "a" * 300,
        "C:/x",
        "a//b",
    ],
)
def test_zip_entries_that_leave_the_target_are_refused_naming_the_entry(
    tmp_path: Path, name: str
) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_with_raw_name(name))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError) as caught:
        unpack_zip(archive, target, ArchiveLimits())
    assert caught.value.entry is not None
    assert caught.value.entry[:10] == name.replace("\x00", "\\x00")[:10]
    assert list(target.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.zip", "target"]


def test_zip_entries_that_only_look_odd_are_unpacked(tmp_path: Path) -> None:
    archive = tmp_path / "a.zip"
    names = ["..foo.txt", "a/..b/c", "ünï/cödé.txt", "./dot/x", "a/...", "x..y/z"]
    archive.write_bytes(zip_bytes({name: name.encode() for name in names}))
    target = tmp_path / "target"
    target.mkdir()
    unpack_zip(archive, target, ArchiveLimits())
    assert (target / "..foo.txt").read_bytes() == b"..foo.txt"
    assert (target / "a" / "..b" / "c").read_bytes() == b"a/..b/c"
    assert (target / "ünï" / "cödé.txt").exists()
    assert (target / "dot" / "x").read_bytes() == b"./dot/x"
    assert (target / "a" / "...").exists()


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        (stat.S_IFLNK | 0o777, "symbolic link"),
        (stat.S_IFCHR | 0o644, "device"),
        (stat.S_IFBLK | 0o644, "device"),
        (stat.S_IFIFO | 0o644, "FIFO"),
    ],
)
def test_links_and_special_files_in_a_zip_are_refused_never_created(
    tmp_path: Path, mode: int, why: str
) -> None:
    archive = tmp_path / "a.zip"
    archive.write_bytes(zip_with_raw_name("color/1", b"/etc", mode))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError, match=why):
        unpack_zip(archive, target, ArchiveLimits())
    assert list(target.iterdir()) == []


def test_a_highly_compressed_entry_is_refused_before_writing(tmp_path: Path) -> None:
    archive = tmp_path / "bomb.zip"
    archive.write_bytes(zip_bytes({"zeros": bytes(8 * 2**20)}))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError, match="compression ratio"):
        unpack_zip(archive, target, ArchiveLimits(max_ratio=100))
    assert list(target.iterdir()) == []


def test_an_archive_above_the_unpacked_size_limit_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "big.zip"
    archive.write_bytes(zip_bytes({"a": os.urandom(3000), "b": os.urandom(3000)}))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError, match="more than the limit"):
        unpack_zip(archive, target, ArchiveLimits(max_total_bytes=5000))
    with pytest.raises(ArchiveError, match="bytes free"):
        unpack_zip(archive, target, ArchiveLimits(), free_bytes=100)
    assert list(target.iterdir()) == []


def test_an_archive_with_more_than_100k_entries_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as out:
        for i in range(100_001):
            out.writestr(f"f{i}", b"")
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError, match="100001 entries"):
        unpack_zip(archive, target, ArchiveLimits())
    assert list(target.iterdir()) == []


def _overlapping_zip() -> bytes:
    """Two central directory records pointing at one local entry."""
    raw = zip_bytes({"a": os.urandom(500)}, zipfile.ZIP_STORED)
    directory_at = raw.rindex(b"PK\x01\x02")
    end_at = raw.rindex(b"PK\x05\x06")
    record = raw[directory_at:end_at]
    second = record[:46] + b"b" + record[47:]  # same offset, another name
    end = bytearray(raw[end_at:])
    struct.pack_into("<HHI", end, 8, 2, 2, len(record) * 2)
    return raw[:directory_at] + record + second + bytes(end)


def test_overlapping_entries_are_refused(tmp_path: Path) -> None:
    archive = tmp_path / "overlap.zip"
    archive.write_bytes(_overlapping_zip())
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError, match="overlaps"):
        unpack_zip(archive, target, ArchiveLimits())
    assert list(target.iterdir()) == []


def test_an_entry_streaming_more_than_it_declares_is_stopped(tmp_path: Path) -> None:
    raw = bytearray(zip_bytes({"a": bytes(100)}, zipfile.ZIP_STORED))
    directory_at = raw.rindex(b"PK\x01\x02")
    struct.pack_into("<I", raw, directory_at + 24, 10)  # declared size 10, not 100
    archive = tmp_path / "liar.zip"
    archive.write_bytes(bytes(raw))
    target = tmp_path / "target"
    target.mkdir()
    with pytest.raises(ArchiveError) as caught:
        unpack_zip(archive, target, ArchiveLimits())
    assert caught.value.entry == "a"


async def test_a_zip_escaping_its_folder_fails_the_upload_naming_the_entry(
    node: Client, metaserver: UploadMetaserver, binary_data: Path, tmp_path: Path
) -> None:
    archive = zip_bytes({"ok/x.txt": b"fine", "../../escaped.txt": b"evil"})
    up = await reserve(node, metaserver, {"data.zip": archive})
    await send_all(node, up)
    body = await error(await finish(node, up), 400)
    assert "../../escaped.txt" in body["error"]
    assert body["detail"]["entry"] == "../../escaped.txt"
    assert not await asyncio.to_thread(lambda: list(tmp_path.rglob("escaped.txt")))
    assert not (binary_data / "lab" / "up").exists()
    assert metaserver.reports()[-1] == "failed"
    state = json.loads((upload_dir(binary_data, up) / STATE_FILE).read_text())
    assert state["state"] == "failed"
    assert not (upload_dir(binary_data, up) / "files").exists()


async def test_a_zip_with_a_symlink_fails_the_upload_and_creates_no_link(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    archive = zip_with_raw_name("color", b"/etc", stat.S_IFLNK | 0o777)
    up = await reserve(node, metaserver, {"data.zip": archive})
    await send_all(node, up)
    body = await error(await finish(node, up), 400)
    assert "symbolic link" in body["error"]
    everything = await asyncio.to_thread(lambda: list(binary_data.rglob("*")))
    assert not any(p.is_symlink() for p in everything)


# -- RELIABILITY 2, 4, 5: paths ---------------------------------------------------


ESCAPING_PATHS = [
    "b/../../a",
    "../a",
    "/etc/passwd",
    "a\\..\\b",
    "a/%2e%2e/%2E%2E/b",
    "a%2fb",
    "a\x00b",
    "C:/x",
    "a//b",
    "./a",
    "",
]


@pytest.mark.parametrize("path", ESCAPING_PATHS)
async def test_a_chunk_with_an_escaping_path_is_400_before_any_write(
    node: Client, metaserver: UploadMetaserver, binary_data: Path, path: str
) -> None:
    up = await reserve(node, metaserver, {"a": b"hello"})
    before = await asyncio.to_thread(lambda: sorted(binary_data.rglob("*")))
    response = await send(
        node, up, "a", 1, 100, resumableIdentifier=f"{up.upload_id}/{path}"
    )
    body = await error(response, 400)
    assert body["error"].startswith("resumableIdentifier")
    after = await asyncio.to_thread(lambda: sorted(binary_data.rglob("*")))
    assert after == before


@pytest.mark.parametrize("path", ESCAPING_PATHS)
async def test_a_reservation_with_an_escaping_path_is_400_naming_it(
    node: Client, metaserver: UploadMetaserver, binary_data: Path, path: str
) -> None:
    body = {
        "upload_id": str(uuid.uuid4()),
        "organization": "lab",
        "name": "x",
        "files": [{"path": path, "size": 1, "sha256": sha(b"x")}],
        "token_sha256": sha(b"t"),
        "expires": time.time() + 60,
    }
    response = await node.post(
        "/data/datasets/reserveUpload",
        json=body,
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    detail = (await error(response, 400))["detail"]
    assert detail[0]["path"].startswith("files[0]")
    assert not (binary_data / UPLOADS_FOLDER).exists() or not list(
        (binary_data / UPLOADS_FOLDER).iterdir()
    )


@pytest.mark.parametrize(
    "identifier",
    [
        "../x/a",
        "..%2Fx/a",
        "%2e%2e/a",
        "not-a-uuid/a",
        "12345678-1234-1234-1234-1234567890ab",
    ],
)
async def test_upload_ids_with_dots_or_encodings_are_400(
    node: Client, identifier: str
) -> None:
    response = await node.get(
        "/data/datasets",
        params={"resumableChunkNumber": "1", "resumableIdentifier": identifier},
        headers={"X-Auth-Token": "t"},
    )
    await error(response, 400)
    status = await node.get(
        "/data/datasets/uploadStatus",
        params={"uploadId": identifier},
        headers={"X-Auth-Token": "t"},
    )
    assert status.status in (400, 404)


async def test_a_datasource_with_a_mag_outside_the_dataset_fails_naming_the_path(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    samples: tuple[Path, Expected],
) -> None:
    source = samples[0] / "lab" / "wkw_ds"
    files = folder_files(source)
    props = json.loads(files["datasource-properties.json"])
    props["dataLayers"][0]["mags"][0]["path"] = "../../../../etc"
    files["datasource-properties.json"] = json.dumps(props).encode()
    up = await reserve(node, metaserver, files, name="escaper")
    await send_all(node, up, chunk_size=64 * 1024)
    body = await error(await finish(node, up), 400)
    assert body["detail"][0]["path"] == "../../../../etc"
    assert not (binary_data / "lab" / "escaper").exists()


# -- RELIABILITY 7: bounds ---------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field_name"),
    [
        ({"resumableChunkNumber": 0}, "resumableChunkNumber"),
        ({"resumableChunkNumber": -1}, "resumableChunkNumber"),
        ({"resumableChunkNumber": 4}, "resumableChunkNumber"),
        ({"resumableChunkNumber": "1e3"}, "resumableChunkNumber"),
        ({"resumableChunkSize": 0}, "resumableChunkSize"),
        ({"resumableChunkSize": 2**40}, "resumableChunkSize"),
        ({"resumableTotalChunks": 7}, "resumableTotalChunks"),
        ({"resumableTotalSize": 10_000}, "resumableTotalSize"),
        ({"resumableTotalSize": 2**62}, "resumableTotalSize"),
        ({"resumableCurrentChunkSize": 500}, "resumableCurrentChunkSize"),
        ({"payload": b"x" * 1001}, "resumableCurrentChunkSize"),
        ({"payload": b"x" * 999}, "resumableCurrentChunkSize"),
    ],
)
async def test_chunk_numbers_and_sizes_out_of_bounds_are_400(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    overrides: dict[str, Any],
    field_name: str,
) -> None:
    data = os.urandom(2500)
    up = await reserve(node, metaserver, {"f.bin": data})
    payload = overrides.pop("payload", None)
    response = await send(
        node,
        up,
        "f.bin",
        1,
        1000,
        payload=payload,
        checksum=payload is None,
        **overrides,
    )
    body = await error(response, 400)
    assert field_name in body["error"]
    data_file = upload_dir(binary_data, up) / "files" / "f.bin"
    assert not data_file.exists() or data_file.stat().st_size == len(data)
    assert not await is_stored(node, up, "f.bin", 1)


async def test_resumable_js_default_chunking_with_a_big_last_chunk_works(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    data = os.urandom(2500)  # floor(2500 / 1000) = 2 chunks: 1000 + 1500 bytes
    up = await reserve(node, metaserver, {"f.bin": data})
    first = await send(node, up, "f.bin", 1, 1000, resumableTotalChunks=2)
    assert first.status == 200, await first.text()
    last = await send(
        node,
        up,
        "f.bin",
        2,
        1000,
        payload=data[1000:],
        resumableTotalChunks=2,
        resumableCurrentChunkSize=1500,
    )
    assert last.status == 200, await last.text()
    mixed = await send(node, up, "f.bin", 3, 1000)  # now 3 chunks: another layout
    assert "differ from the earlier chunks" in (await error(mixed, 400))["error"]
    assert (upload_dir(binary_data, up) / "files" / "f.bin").read_bytes() == data


async def test_a_chunk_above_the_usual_body_limit_streams_to_disk(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    data = os.urandom(5 * 2**20 + 7)
    up = await reserve(node, metaserver, {"big.bin": data})
    await send_all(node, up, chunk_size=4 * 2**20)
    stored = (upload_dir(binary_data, up) / "files" / "big.bin").read_bytes()
    assert sha(stored) == sha(data)


# -- RELIABILITY 8, 9: duplicates and checksums ----------------------------------


async def test_duplicate_out_of_order_and_concurrent_chunks_are_idempotent(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    conversions: list[ConversionRequest],
) -> None:
    data = os.urandom(5000)
    up = await reserve(node, metaserver, {"dir/f.bin": data}, name="dups")
    for number in (5, 3, 1, 3):
        response = await send(node, up, "dir/f.bin", number, 1000)
        assert response.status == 200, await response.text()
    concurrent = await asyncio.gather(
        *(send(node, up, "dir/f.bin", 2, 1000) for _ in range(6)),
        *(send(node, up, "dir/f.bin", 4, 1000) for _ in range(6)),
    )
    assert [r.status for r in concurrent] == [200] * 12
    duplicates = [(await r.json())["duplicate"] for r in concurrent]
    assert duplicates.count(False) == 2
    other = await send(node, up, "dir/f.bin", 2, 1000, payload=os.urandom(1000))
    assert (await error(other, 409))["detail"] == {"path": "dir/f.bin", "chunk": 2}
    assert (await finish(node, up)).status == 200
    [conversion] = conversions  # one raw file: not a dataset, to be converted
    assert sha((conversion.input_path / "f.bin").read_bytes()) == sha(data)


async def test_a_chunk_with_a_wrong_checksum_is_460_and_not_stored(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    data = os.urandom(3000)
    up = await reserve(node, metaserver, {"f.bin": data})
    response = await send(node, up, "f.bin", 2, 1000, checksum=sha(b"other"))
    body = await error(response, 460)
    assert body["detail"]["chunk"] == 2
    assert not await is_stored(node, up, "f.bin", 2)
    assert not (upload_dir(binary_data, up) / "chunks" / "0" / "2").exists()
    malformed = await send(node, up, "f.bin", 2, 1000, checksum="zz")
    assert CHUNK_SHA256_HEADER in (await error(malformed, 400))["error"]
    again = await send(node, up, "f.bin", 2, 1000)
    assert again.status == 200
    assert await is_stored(node, up, "f.bin", 2)


async def test_a_whole_file_digest_mismatch_keeps_the_upload_for_a_resend(
    node: Client,
    metaserver: UploadMetaserver,
    binary_data: Path,
    conversions: list[ConversionRequest],
) -> None:
    good, wrong = os.urandom(2500), os.urandom(2500)
    files = {"a.bin": os.urandom(100), "b.bin": wrong}
    up = await reserve(node, metaserver, files, declared={"b.bin": sha(good)})
    await send_all(node, up)  # b.bin's chunks pass: no per-chunk checksum lies
    body = await error(await finish(node, up), 400)
    assert body["detail"]["files"] == [
        {"path": "b.bin", "expected": sha(good), "actual": sha(wrong)}
    ]
    assert await is_stored(node, up, "a.bin", 1)
    assert not await is_stored(node, up, "b.bin", 1)
    assert metaserver.reports() == ["finishing", "reserved"]
    up.files["b.bin"] = good
    await send_all(node, up, skip={"a.bin"})
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    assert (conversions[0].input_path / "b.bin").read_bytes() == good


# -- RELIABILITY 10, 11: finish and names ----------------------------------------


async def test_finish_before_every_chunk_is_409_listing_what_is_missing(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    files = {"a.bin": os.urandom(3500), "b.bin": os.urandom(10), "empty": b""}
    up = await reserve(node, metaserver, files)
    await send(node, up, "a.bin", 2, 1000)
    body = await error(await finish(node, up), 409)
    assert body["detail"]["files"] == [
        {"path": "a.bin", "missing": [1, 3, 4], "count": 3},
        {"path": "b.bin", "missing": "all", "count": None},
    ]
    assert not (binary_data / "lab" / "up").exists()
    assert metaserver.reports() == []
    status = await node.get(
        "/data/datasets/uploadStatus",
        params={"uploadId": up.upload_id},
        headers=up.auth,
    )
    assert (await status.json())["incomplete_files"] == 2


async def test_two_finishes_at_once_have_one_winner(
    node: Client, metaserver: UploadMetaserver, binary_data: Path, wkw_zip: bytes
) -> None:
    up = await reserve(node, metaserver, {"ds.zip": wkw_zip}, name="once")
    await send_all(node, up, chunk_size=256 * 1024)
    first, second = await asyncio.gather(finish(node, up), finish(node, up))
    assert sorted([first.status, second.status]) == [200, 409]
    loser = first if first.status == 409 else second
    assert "running" in (await error(loser, 409))["error"]
    assert (binary_data / "lab" / "once" / "datasource-properties.json").exists()
    assert metaserver.reports().count("imported") == 1


async def test_reserving_a_name_in_use_on_the_node_is_409(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    await reserve(node, metaserver, {"a": b"1"}, name="taken")
    body = {
        "upload_id": str(uuid.uuid4()),
        "organization": "lab",
        "name": "taken",
        "files": [{"path": "a", "size": 1, "sha256": sha(b"1")}],
        "token_sha256": sha(b"t"),
        "expires": time.time() + 60,
    }
    headers = {METASERVER_TOKEN_HEADER: metaserver.metaserver_token}
    response = await node.post(
        "/data/datasets/reserveUpload", json=body, headers=headers
    )
    await error(response, 409)
    (binary_data / "lab" / "on_disk").mkdir(parents=True)
    body["name"] = "on_disk"
    response = await node.post(
        "/data/datasets/reserveUpload", json=body, headers=headers
    )
    assert "exists" in (await error(response, 409))["error"]


async def test_an_upload_cancelled_on_the_metaserver_cannot_finish(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    up = await reserve(node, metaserver, {"a": b"1"})
    await send_all(node, up)
    metaserver.refuse.add("finishing")
    await error(await finish(node, up), 409)
    assert not upload_dir(binary_data, up).exists()
    assert not (binary_data / "lab" / "up").exists()


async def test_finish_with_the_metaserver_down_is_503_and_stays_resumable(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    up = await reserve(node, metaserver, {"a": b"1"})
    await send_all(node, up)
    await metaserver.stop()
    await error(await finish(node, up), 503)
    assert await is_stored(node, up, "a", 1)
    state = json.loads((upload_dir(binary_data, up) / STATE_FILE).read_text())
    assert state["state"] == "reserved"


# -- tokens and cancel -----------------------------------------------------------------


async def test_chunks_need_the_upload_token_of_this_upload_unexpired(
    node: Client, metaserver: UploadMetaserver
) -> None:
    up = await reserve(node, metaserver, {"a": b"1"})
    other = await reserve(node, metaserver, {"a": b"1"}, name="other")
    await error(await send(node, up, "a", 1, 10, token=other.token), 403)
    form = FormData()
    form.add_field("resumableIdentifier", f"{up.upload_id}/a")
    for key in ("ChunkNumber", "ChunkSize", "CurrentChunkSize", "TotalChunks"):
        form.add_field(f"resumable{key}", "1")
    form.add_field("resumableTotalSize", "1")
    form.add_field("file", b"1", filename="blob")
    await error(await node.post("/data/datasets", data=form), 401)
    expired = await reserve(node, metaserver, {"a": b"1"}, name="old", expires_in=-1)
    assert (
        "expired" in (await error(await send(node, expired, "a", 1, 10), 403))["error"]
    )


async def test_a_node_that_does_not_allow_uploads_refuses_reservations(
    start: Callable[..., Awaitable[Client]], metaserver: UploadMetaserver
) -> None:
    node = await start(allows_upload=False)
    response = await node.post(
        "/data/datasets/reserveUpload",
        json={},
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    assert "does not accept uploads" in (await error(response, 409))["error"]


async def test_reserve_is_for_the_metaserver_only(node: Client) -> None:
    await error(await node.post("/data/datasets/reserveUpload", json={}), 401)
    response = await node.post(
        "/data/datasets/reserveUpload",
        json={},
        headers={METASERVER_TOKEN_HEADER: "guess"},
    )
    await error(response, 403)


async def test_cancel_removes_everything_of_the_upload_and_tells_the_metaserver(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    up = await reserve(node, metaserver, {"a/b.bin": os.urandom(3000)})
    await send(node, up, "a/b.bin", 1, 1000)
    response = await node.post(
        "/data/datasets/cancelUpload", json={"uploadId": up.upload_id}, headers=up.auth
    )
    assert response.status == 200, await response.text()
    assert list((binary_data / UPLOADS_FOLDER).iterdir()) == []
    assert metaserver.reports() == ["cancelled"]
    await error(await send(node, up, "a/b.bin", 2, 1000), 404)
    by_metaserver = await reserve(node, metaserver, {"x": b"1"}, name="second")
    response = await node.post(
        "/data/datasets/cancelUpload",
        json={"uploadId": by_metaserver.upload_id},
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    assert response.status == 200
    assert metaserver.reports() == ["cancelled"]  # the metaserver asked itself


# -- RELIABILITY 12: restarts ------------------------------------------------------


async def test_stored_chunks_survive_a_restart_and_the_upload_finishes(
    start: Callable[..., Awaitable[Client]],
    metaserver: UploadMetaserver,
    binary_data: Path,
    wkw_zip: bytes,
) -> None:
    node = await start()
    up = await reserve(node, metaserver, {"ds.zip": wkw_zip}, name="survivor")
    chunk = 128 * 1024
    count = -(-len(wkw_zip) // chunk)
    for number in range(1, count // 2 + 1):
        assert (await send(node, up, "ds.zip", number, chunk)).status == 200
    await node.close()
    node = await start()
    assert await is_stored(node, up, "ds.zip", 1)
    assert not await is_stored(node, up, "ds.zip", count)
    for number in range(1, count + 1):
        if not await is_stored(node, up, "ds.zip", number):
            assert (await send(node, up, "ds.zip", number, chunk)).status == 200
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    assert node.app[INBOX].get("lab", "survivor") is not None


async def test_a_chunk_cut_off_by_kill_9_is_not_reported_stored_after_restart(
    start: Callable[..., Awaitable[Client]],
    metaserver: UploadMetaserver,
    binary_data: Path,
    conversions: list[ConversionRequest],
) -> None:
    data = os.urandom(3000)
    node = await start()
    up = await reserve(node, metaserver, {"f.bin": data})
    assert (await send(node, up, "f.bin", 1, 1000)).status == 200
    await node.close()
    # What a process killed in the middle of chunk 2 leaves: half its bytes in
    # the file, a marker's temporary file, no marker.
    folder = upload_dir(binary_data, up)
    fd = os.open(folder / "files" / "f.bin", os.O_WRONLY)
    os.pwrite(fd, data[1000:1500], 1000)
    os.close(fd)
    (folder / "chunks" / "0" / ".2.abcd1234.tmp").write_text("half")
    node = await start()
    assert await is_stored(node, up, "f.bin", 1)
    assert not await is_stored(node, up, "f.bin", 2)
    assert not list((folder / "chunks" / "0").glob(".*.tmp"))
    await send_all(node, up, skip={("f.bin", 1)})
    assert (await finish(node, up)).status == 200
    assert (conversions[0].input_path / "f.bin").read_bytes() == data


async def test_a_finish_cut_off_mid_unzip_is_resumable_after_restart(
    start: Callable[..., Awaitable[Client]],
    metaserver: UploadMetaserver,
    binary_data: Path,
    wkw_zip: bytes,
) -> None:
    node = await start()
    up = await reserve(node, metaserver, {"ds.zip": wkw_zip}, name="halfway")
    await send_all(node, up, chunk_size=256 * 1024)
    await node.close()
    folder = upload_dir(binary_data, up)
    state = json.loads((folder / STATE_FILE).read_text())
    state["state"] = "finishing"
    (folder / STATE_FILE).write_text(json.dumps(state))
    (folder / "staging" / "wkw_ds" / "color").mkdir(parents=True)
    (folder / "staging" / "wkw_ds" / "color" / "half.wkw").write_bytes(b"xx")
    node = await start()
    assert not (folder / "staging").exists()
    assert json.loads((folder / STATE_FILE).read_text())["state"] == "reserved"
    assert not (binary_data / "lab" / "halfway").exists()
    await node.post(
        "/data/triggers/checkInbox",
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    assert node.app[INBOX].get("lab", "halfway") is None  # nothing half-visible
    await metaserver.wait_for("upload-finished")
    assert metaserver.reports() == ["reserved"]
    response = await finish(node, up)
    assert response.status == 200, await response.text()
    assert node.app[INBOX].get("lab", "halfway") is not None


async def test_expired_and_unreadable_uploads_are_removed_at_start(
    start: Callable[..., Awaitable[Client]],
    metaserver: UploadMetaserver,
    binary_data: Path,
) -> None:
    node = await start()
    old = await reserve(node, metaserver, {"a": b"1"}, name="old", expires_in=-5)
    fresh = await reserve(node, metaserver, {"a": b"1"}, name="fresh")
    await node.close()
    junk = binary_data / UPLOADS_FOLDER / str(uuid.uuid4())
    junk.mkdir()
    (junk / STATE_FILE).write_text("{broken")
    os.utime(junk, (time.time() - 2 * 3600, time.time() - 2 * 3600))
    shutil.copytree(
        upload_dir(binary_data, fresh), binary_data / UPLOADS_FOLDER / ".trash-x"
    )
    await start(upload_expiry_hours=1.0)
    remaining = sorted(p.name for p in (binary_data / UPLOADS_FOLDER).iterdir())
    assert remaining == [fresh.upload_id]
    assert not upload_dir(binary_data, old).exists()


async def test_housekeeping_removes_uploads_that_expire_while_running(
    node: Client, metaserver: UploadMetaserver, binary_data: Path
) -> None:
    up = await reserve(node, metaserver, {"a": b"1"}, expires_in=0.2)
    await asyncio.sleep(0.3)
    await node.app[FINISHER].housekeeping()
    assert not upload_dir(binary_data, up).exists()
    assert node.app[UPLOADS].load(up.upload_id) is None


async def test_a_reservation_with_an_unknown_output_format_is_400(
    node: Client, metaserver: UploadMetaserver
) -> None:
    body = {
        "upload_id": str(uuid.uuid4()),
        "organization": "lab",
        "name": "x",
        "files": [{"path": "a.tif", "size": 1, "sha256": sha(b"x")}],
        "token_sha256": sha(b"t"),
        "expires": time.time() + 60,
        "data_format": "tiff",
    }
    response = await node.post(
        "/data/datasets/reserveUpload",
        json=body,
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    detail = (await error(response, 400))["detail"]
    assert detail == [{"path": "data_format", "message": "must be one of wkw, zarr3"}]
    body["data_format"] = "wkw"
    body["raw"] = {"dtype": "uint8", "shape": [0, 1, 1]}
    response = await node.post(
        "/data/datasets/reserveUpload",
        json=body,
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    detail = (await error(response, 400))["detail"]
    assert [d["path"] for d in detail] == ["raw.shape"]


def test_the_output_format_reaches_the_converter_and_survives_a_restart(
    tmp_path: Path,
) -> None:
    from datastore.upload_finish import start_conversion
    from datastore.upload_state import Upload

    upload = Upload(
        upload_id=str(uuid.uuid4()),
        organization="lab",
        name="x",
        files=(),
        token_sha256=sha(b"t"),
        expires=time.time() + 60,
        created=time.time(),
        data_format="zarr3",
    )
    assert Upload.from_json(json.loads(json.dumps(upload.to_json()))).data_format == (
        "zarr3"
    )

    class Recorder:
        def __init__(self) -> None:
            self.sent: list[Any] = []

        def start(self, *args: Any) -> None:
            self.sent.append(args)

    recorder = Recorder()
    actors = type("A", (), {"conversion": recorder})()
    (tmp_path / "in").mkdir()
    start_conversion(
        actors,  # type: ignore[arg-type]
        ConversionRequest(
            input_path=tmp_path / "in",
            target=tmp_path / "out",
            organization="lab",
            name="x",
            voxel_size=None,
            unit="nanometer",
            layer_hints=(),
            job_id="7",
            data_format="zarr3",
            raw={"dtype": "uint16", "shape": [4, 5, 6], "order": "C"},
        ),
    )
    [(_, _, _, options)] = recorder.sent
    assert options["data_format"] == "zarr3"
    assert (options["dtype"], options["shape"], options["order"]) == (
        "uint16",
        [4, 5, 6],
        "C",
    )
