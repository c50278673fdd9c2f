"""Upload routes, resumable.js-compatible as in WEBKNOSSOS.

- `POST /data/datasets/reserveUpload` (metaserver only, its token in
  `METASERVER_TOKEN_HEADER`): JSON `{upload_id, organization, name, files: [{path,
  size, sha256}], total_size, token_sha256, expires, voxel_size, unit,
  layer_hints}` → 200 `{"upload_id", "created"}`.
- `POST /data/datasets`: one chunk as multipart/form-data with the fields
  `resumableChunkNumber` (1-based), `resumableChunkSize`,
  `resumableCurrentChunkSize`, `resumableTotalChunks`, `resumableTotalSize`,
  `resumableIdentifier` = `<upload id>/<relative path>` before the part `file`;
  optionally the chunk's SHA-256 in `X-Voxelhub-Chunk-Sha256`. → 200
  `{"stored": true, "duplicate": bool}`; 460 on a checksum mismatch (send again);
  409 for a different payload of a stored chunk.
- `GET /data/datasets?resumableChunkNumber=&resumableIdentifier=` → 200 if that
  chunk is stored, 204 if not.
- `GET /data/datasets/uploadStatus?uploadId=` → state and missing chunks.
- `POST /data/datasets/finishUpload` `{"uploadId"}` → 200 with the outcome; 409
  listing missing chunks; 400 naming bad files or archive entries.
- `POST /data/datasets/cancelUpload` `{"uploadId"}` (upload token or metaserver).

Every call but reserve carries the upload token (`X-Auth-Token` or `?token=`).
Paths are checked before anything touches the disk (RELIABILITY 2).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

from aiohttp import BodyPartReader, web

from datastore.access import request_token
from datastore.errors import BadRequest, Conflict, NotFound, PayloadTooLarge
from datastore.routes.manage import require_metaserver
from datastore.state import ACTORS, EXECUTOR, INBOX, LINK, SETTINGS
from datastore.upload import UploadStore, check_upload_token, receive_chunk
from datastore.upload_finish import Finisher, start_conversion
from datastore.upload_state import Upload, UploadState, parse_reservation
from shared.protocol import METASERVER_TOKEN_HEADER
from shared.uploads import (
    CHUNK_SHA256_HEADER,
    UploadPathError,
    check_sha256,
    check_upload_id,
    chunk_span,
    split_identifier,
)

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()
UPLOADS = web.AppKey("uploads", UploadStore)
FINISHER = web.AppKey("upload_finisher", Finisher)

_INTEGER = re.compile(r"[+-]?\d{1,19}")
_MAX_FIELD_BYTES = 8192
_MAX_PARTS = 32
_MAX_RESERVATION_BYTES = 64 * 2**20
_MAX_SMALL_BODY = 64 * 1024
_T = TypeVar("_T")


async def _run(request: web.Request, work: Callable[[], _T]) -> _T:
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(request.app[EXECUTOR], work)


async def _json_body(request: web.Request, limit: int) -> Any:
    if request.content_length is not None and request.content_length > limit:
        raise PayloadTooLarge(f"body larger than {limit} bytes")
    body = bytearray()
    async for piece in request.content.iter_any():
        body += piece
        if len(body) > limit:
            raise PayloadTooLarge(f"body larger than {limit} bytes")
    try:
        return json.loads(body)
    except ValueError:
        raise BadRequest("the body must be JSON") from None


def _upload_id(value: Any, field: str) -> str:
    try:
        return check_upload_id(value)
    except ValueError as e:
        raise BadRequest(f"{field}: {e}") from None


async def _checked_upload(
    request: web.Request, upload_id: str, *, writable: bool
) -> Upload:
    store = request.app[UPLOADS]
    upload = check_upload_token(
        await _run(request, lambda: store.load(upload_id)), request_token(request)
    )
    if writable and (
        upload.state is not UploadState.RESERVED or upload_id in store.finishing
    ):
        raise Conflict(
            "the upload takes no more chunks",
            {"state": "finishing" if upload_id in store.finishing else upload.state},
        )
    return upload


def _file_index(upload: Upload, path: str) -> int:
    index = upload.index_of(path)
    if index is None:
        raise BadRequest(
            "resumableIdentifier: this file is not part of the reservation",
            {"path": path},
        )
    return index


@routes.post("/data/datasets/reserveUpload")
async def reserve_upload(request: web.Request) -> web.Response:
    """The metaserver reserves an upload here (it already checked the caller)."""
    require_metaserver(request)
    if not request.app[SETTINGS].allows_upload:
        raise Conflict("this datastore does not accept uploads")
    body = await _json_body(request, _MAX_RESERVATION_BYTES)
    upload = parse_reservation(body)
    store = request.app[UPLOADS]
    async with store.upload_locks.hold("reserve"):
        created = await _run(request, lambda: store.reserve(upload))
    return web.json_response({"upload_id": upload.upload_id, "created": created})


async def _read_field(part: BodyPartReader) -> str:
    data = bytearray()
    while piece := await part.read_chunk(4096):
        data += piece
        if len(data) > _MAX_FIELD_BYTES:
            raise BadRequest(f"{part.name}: longer than {_MAX_FIELD_BYTES} bytes")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest(f"{part.name}: not UTF-8 text") from None


async def _fields_then_file(
    request: web.Request,
) -> tuple[dict[str, str], BodyPartReader]:
    """The form fields sent before the part `file`, and that part (unread)."""
    try:
        reader = await request.multipart()
    except (AssertionError, ValueError, KeyError):
        raise BadRequest("expected a multipart/form-data body") from None
    fields: dict[str, str] = {}
    for _ in range(_MAX_PARTS):
        try:
            part = await reader.next()
        except ValueError as e:
            raise BadRequest(f"malformed multipart body: {e}") from None
        if part is None:
            raise BadRequest("file: the part with the chunk's bytes is missing")
        if not isinstance(part, BodyPartReader):
            raise BadRequest("nested multipart bodies are not supported")
        if part.name == "file":
            return fields, part
        fields[part.name or ""] = await _read_field(part)
    raise BadRequest(f"more than {_MAX_PARTS} parts")


def _int_field(fields: dict[str, str], name: str) -> int:
    raw = fields.get(name)
    if raw is None:
        raise BadRequest(f"{name}: required field is missing")
    if not _INTEGER.fullmatch(raw.strip()):
        raise BadRequest(f"{name}: must be an integer, got {raw[:40]!r}")
    return int(raw.strip())


def _identifier(value: str | None) -> tuple[str, str]:
    try:
        return split_identifier(value)
    except UploadPathError as e:
        shown = (value or "")[:300].replace("\x00", "\\x00")
        raise BadRequest(
            f"resumableIdentifier: {e}", {"resumableIdentifier": shown}
        ) from None


@routes.post("/data/datasets")
async def upload_chunk(request: web.Request) -> web.Response:
    """One chunk; its bytes go straight to their place in the file."""
    fields, part = await _fields_then_file(request)
    upload_id, path = _identifier(fields.get("resumableIdentifier"))
    number = _int_field(fields, "resumableChunkNumber")
    chunk_size = _int_field(fields, "resumableChunkSize")
    current = _int_field(fields, "resumableCurrentChunkSize")
    total_chunks = _int_field(fields, "resumableTotalChunks")
    total_size = _int_field(fields, "resumableTotalSize")
    expected = request.headers.get(CHUNK_SHA256_HEADER)
    if expected is not None:
        try:
            expected = check_sha256(expected)
        except ValueError as e:
            raise BadRequest(f"{CHUNK_SHA256_HEADER}: {e}") from None
    upload = await _checked_upload(request, upload_id, writable=True)
    index = _file_index(upload, path)
    declared = upload.files[index].size
    if total_size != declared:
        raise BadRequest(
            f"resumableTotalSize: the reservation declares {declared} bytes",
            {"path": path, "declared": declared, "sent": total_size},
        )
    try:
        span = chunk_span(number, declared, chunk_size, total_chunks)
    except ValueError as e:
        raise BadRequest(str(e), {"path": path}) from None
    if current != span.size:
        raise BadRequest(
            f"resumableCurrentChunkSize: chunk {number} holds {span.size} bytes",
            {"path": path, "expected": span.size, "sent": current},
        )
    store = request.app[UPLOADS]
    executor = request.app[EXECUTOR]
    try:
        await _run(
            request,
            functools.partial(
                store.ensure_layout, upload, index, chunk_size, total_chunks
            ),
        )
        duplicate = await receive_chunk(
            store,
            executor,
            upload,
            index,
            number,
            span.start,
            span.size,
            part,
            expected,
        )
    except FileNotFoundError:
        raise NotFound("upload not found (cancelled?)") from None
    return web.json_response({"stored": True, "chunk": number, "duplicate": duplicate})


@routes.get("/data/datasets")
async def test_chunk(request: web.Request) -> web.Response:
    """resumable.js' testChunks: 200 if the chunk is stored, 204 if not."""
    upload_id, path = _identifier(request.query.get("resumableIdentifier"))
    raw = request.query.get("resumableChunkNumber", "")
    if not _INTEGER.fullmatch(raw.strip()) or int(raw) < 1:
        raise BadRequest("resumableChunkNumber: must be an integer >= 1")
    number = int(raw)
    upload = await _checked_upload(request, upload_id, writable=False)
    index = _file_index(upload, path)
    store = request.app[UPLOADS]
    stored = await _run(request, lambda: store.stored_digest(upload, index, number))
    if stored is None:
        return web.Response(status=204)
    return web.json_response({"stored": True, "chunk": number})


@routes.get("/data/datasets/uploadStatus")
async def upload_status(request: web.Request) -> web.Response:
    """State of an upload and the chunks still missing (at most 100 per file)."""
    upload_id = _upload_id(request.query.get("uploadId"), "uploadId")
    upload = await _checked_upload(request, upload_id, writable=False)
    store = request.app[UPLOADS]
    missing = await _run(request, lambda: store.missing_chunks(upload))
    state = "finishing" if upload_id in store.finishing else upload.state.value
    return web.json_response(
        {
            "upload_id": upload_id,
            "state": state,
            "message": upload.message,
            "incomplete_files": len(missing),
            "missing": missing[:100],
        }
    )


@routes.post("/data/datasets/finishUpload")
async def finish_upload(request: web.Request) -> web.Response:
    body = await _json_body(request, _MAX_SMALL_BODY)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with uploadId")
    upload_id = _upload_id(body.get("uploadId"), "uploadId")
    result = await request.app[FINISHER].finish(upload_id, request_token(request))
    return web.json_response(result)


@routes.post("/data/datasets/cancelUpload")
async def cancel_upload(request: web.Request) -> web.Response:
    body = await _json_body(request, _MAX_SMALL_BODY)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object with uploadId")
    upload_id = _upload_id(body.get("uploadId"), "uploadId")
    by_metaserver = METASERVER_TOKEN_HEADER in request.headers
    if by_metaserver:
        require_metaserver(request)
    result = await request.app[FINISHER].cancel(
        upload_id, request_token(request), by_metaserver=by_metaserver
    )
    return web.json_response(result)


async def uploads_ctx(app: web.Application) -> AsyncIterator[None]:
    """Start: reset interrupted finishes, remove leftovers. Stop: stop finishes."""
    finisher = Finisher(
        app[UPLOADS],
        app[INBOX],
        app[EXECUTOR],
        app[LINK],
        app[SETTINGS],
        functools.partial(start_conversion, app[ACTORS]),
    )
    app[FINISHER] = finisher
    try:
        await finisher.recover()
    except Exception:
        logger.exception("recovering uploads failed")
    yield
    await finisher.close()


def setup_uploads(app: web.Application) -> None:
    """Routes and state of uploads; `uploads_ctx` goes into the app's lifetimes."""
    settings = app[SETTINGS]
    app[UPLOADS] = UploadStore(settings.binary_data, settings.upload_expiry_hours)
    app.add_routes(routes)


async def housekeeping(app: web.Application) -> None:
    """For the periodic background task: postponed reports, expired uploads."""
    finisher = app.get(FINISHER)
    if finisher is not None:
        await finisher.housekeeping()
