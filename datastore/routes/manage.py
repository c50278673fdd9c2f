"""Changes the metaserver makes on this node's disk, so disk and database agree.

- `PUT /data/datasets/{org}/{dataset}/properties` writes a validated
  datasource-properties.json atomically and rescans that dataset.
- `POST /data/datasets/{org}/{dataset}/trash` moves the dataset folder to
  `binaryData/<org>/.trash/<dataset>-<UTC time>`.

Only the metaserver may call these routes, with the secret from our last
registration in `METASERVER_TOKEN_HEADER`. User tokens are never accepted here: the
metaserver has already decided whether its user may make the change.

The datastore never deletes a trashed dataset: operators empty `.trash` themselves
(a wrong click stays recoverable with one `mv`).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from aiohttp import web

from datastore.errors import (
    BadRequest,
    Conflict,
    DatastoreError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from datastore.inbox import PROPERTIES_FILE, Inbox, ScannedDataset, scan_dataset
from datastore.routes.common import path_names
from datastore.state import EXECUTOR, INBOX, LINK
from shared.datasource import (
    MAX_FILE_BYTES,
    DatasourceError,
    DatasourceProperties,
    LayerProperties,
    dump_datasource,
    parse_datasource_json,
    save_datasource,
)
from shared.formats import FormatError, resolve_mag_path
from shared.protocol import METASERVER_TOKEN_HEADER

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

TRASH_FOLDER = ".trash"
_T = TypeVar("_T")


def require_metaserver(request: web.Request) -> None:
    """401 without the metaserver token, 403 with a wrong one; no details either way."""
    token = request.headers.get(METASERVER_TOKEN_HEADER)
    if not token:
        raise Unauthorized("metaserver token required")
    if not request.app[LINK].is_metaserver_token(token):
        raise Forbidden("access denied")


async def _read_body(request: web.Request, limit: int) -> bytes:
    # Read ourselves: the app's client_max_size (1 MiB) is below the file limit.
    declared = request.content_length
    too_large = PayloadTooLarge(
        f"body larger than {limit // 2**20} MiB", {"max_bytes": limit}
    )
    if declared is not None and declared > limit:
        raise too_large
    body = bytearray()
    # iter_any hands over whole buffered chunks; read(n) would copy the rest of a
    # large chunk on every call.
    async for piece in request.content.iter_any():
        body += piece
        if len(body) > limit:
            raise too_large
    return bytes(body)


async def _in_executor(request: web.Request, work: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(request.app[EXECUTOR], work)


def _not_found(organization: str, name: str) -> NotFound:
    return NotFound("dataset not found", {"dataset": f"{organization}/{name}"})


def _dataset_entry(inbox: Inbox, organization: str, name: str) -> Path:
    """The dataset folder (or symlink) as a scan would find it; 404 otherwise."""
    link_roots, _ = inbox.roots(organization)
    org_dir = inbox.binary_data / organization
    # Like a scan: an organization symlinked outside the roots does not exist.
    org_real = Path(os.path.realpath(org_dir))
    if not org_dir.is_dir() or not any(org_real.is_relative_to(r) for r in link_roots):
        raise _not_found(organization, name)
    entry = org_dir / name
    if not (entry.is_symlink() or entry.is_dir()):
        raise _not_found(organization, name)
    return entry


def _mags_list(layer: LayerProperties) -> str:
    form = layer.json_form
    return "wkwResolutions" if form and "wkwResolutions" in form.keys else "mags"


def mag_problems(
    props: DatasourceProperties, dataset_dir: Path, mag_roots: list[Path]
) -> list[dict[str, str]]:
    """Every mag that does not resolve to existing data inside `mag_roots`, as
    `{"path": <JSON path>, "message": ...}` (the message quotes the mag's path)."""
    problems: list[dict[str, str]] = []
    for i, layer in enumerate(props.layers):
        for j, mag in enumerate(layer.mags):
            try:
                resolve_mag_path(dataset_dir, layer, mag, allowed_roots=mag_roots)
            except FormatError as e:
                where = f"dataLayers[{i}].{_mags_list(layer)}[{j}]"
                if mag.path is not None:
                    where += ".path"
                problems.append({"path": where, "message": str(e)})
    return problems


def _write_properties(
    inbox: Inbox, organization: str, name: str, props: DatasourceProperties
) -> ScannedDataset:
    """Check, write and rescan (blocking; the caller holds `inbox.exclusive()`)."""
    dataset_dir = _dataset_entry(inbox, organization, name)
    if not dataset_dir.is_dir():
        raise Conflict("dataset folder is a broken symlink")
    link_roots, mag_roots = inbox.roots(organization)
    real_dir = Path(os.path.realpath(dataset_dir))
    if not any(real_dir.is_relative_to(root) for root in mag_roots):
        # Writing there would write outside the roots this organization may use.
        raise Conflict("dataset folder is outside the allowed roots")
    problems = mag_problems(props, dataset_dir, mag_roots)
    if problems:
        raise BadRequest("invalid datasource", problems)
    try:
        save_datasource(dataset_dir / PROPERTIES_FILE, props)
    except DatasourceError as e:
        raise BadRequest("invalid datasource", e.as_json()) from None
    except OSError as e:
        logger.error("cannot write %s: %s", dataset_dir / PROPERTIES_FILE, e)
        raise DatastoreError(
            f"cannot write {PROPERTIES_FILE}: {e.strerror or type(e).__name__}"
        ) from None
    logger.info("wrote %s of %s/%s", PROPERTIES_FILE, organization, name)
    return scan_dataset(organization, name, dataset_dir, link_roots, mag_roots)


def describe(scanned: ScannedDataset) -> dict[str, Any]:
    """The answer for a rescanned dataset: status, reason and its datasource."""
    datasource = scanned.datasource
    return {
        "status": scanned.status.value,
        "reason": scanned.reason,
        "datasource": None if datasource is None else dump_datasource(datasource),
    }


@routes.put("/data/datasets/{org}/{dataset}/properties")
async def put_properties(request: web.Request) -> web.Response:
    """Replace datasource-properties.json; answer the rescanned dataset.

    `id` is set to the folder and organization names, as WEBKNOSSOS does. An
    invalid body or a mag outside the allowed roots leaves the old file as it was.
    """
    require_metaserver(request)
    organization, name, _ = path_names(request)
    body = await _read_body(request, MAX_FILE_BYTES)
    try:
        # Parsing up to 16 MiB of JSON takes a while: not on the event loop.
        parsed = await _in_executor(request, lambda: parse_datasource_json(body))
    except DatasourceError as e:
        raise BadRequest("invalid datasource", e.as_json()) from None
    props = dataclasses.replace(parsed, name=name, team=organization)
    inbox = request.app[INBOX]
    async with inbox.exclusive():
        scanned = await _in_executor(
            request, lambda: _write_properties(inbox, organization, name, props)
        )
        inbox.set_dataset(scanned.key, scanned)
    # In the background: the metaserver is the caller and waits for our answer.
    request.app[LINK].request_report()
    # Up to 16 MiB of JSON again: serialized off the event loop too.
    text = await _in_executor(request, lambda: json.dumps(describe(scanned)))
    return web.Response(text=text, content_type="application/json")


def _trash_target(trash: Path, name: str) -> Path:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    target = trash / f"{name}-{stamp}"
    suffix = 1
    while os.path.lexists(target):  # the same dataset trashed twice in one second
        suffix += 1
        target = trash / f"{name}-{stamp}-{suffix}"
    return target


def _move_to_trash(inbox: Inbox, organization: str, name: str) -> Path:
    """Rename the dataset entry into `.trash` (blocking; caller holds the lock).

    One `os.rename` within the organization folder: atomic, same file system, and a
    symlinked dataset moves as the link, its target stays where it is.
    """
    entry = _dataset_entry(inbox, organization, name)
    trash = entry.parent / TRASH_FOLDER
    try:
        trash.mkdir(exist_ok=True)
        if trash.is_symlink() or not trash.is_dir():
            raise Conflict(f"{organization}/{TRASH_FOLDER} is not a plain folder")
        target = _trash_target(trash, name)
        entry.rename(target)  # os.rename: moves a symlink itself, not its target
    except OSError as e:
        logger.error("cannot move %s to %s: %s", entry, trash, e)
        raise DatastoreError(
            f"cannot move the dataset to the trash: {e.strerror or type(e).__name__}"
        ) from None
    return target


@routes.post("/data/datasets/{org}/{dataset}/trash")
async def trash_dataset(request: web.Request) -> web.Response:
    """Move a dataset folder to `<org>/.trash/`; it is gone from this node at once.

    Nothing is deleted: operators empty `binaryData/<org>/.trash` themselves.
    """
    require_metaserver(request)
    organization, name, _ = path_names(request)
    inbox = request.app[INBOX]
    async with inbox.exclusive():
        target = await _in_executor(
            request, lambda: _move_to_trash(inbox, organization, name)
        )
        inbox.set_dataset((organization, name), None)
    request.app[LINK].request_report()
    trashed = f"{organization}/{TRASH_FOLDER}/{target.name}"
    logger.info("moved dataset %s/%s to %s", organization, name, trashed)
    return web.json_response({"trashed": trashed})
