"""Resumable uploads on a datastore node: reservations, chunks, state on disk.

One folder per upload, `binaryData/.uploads/<upload id>/` (hidden from scans):

- `upload.json`: the reservation (files with size and SHA-256, the hash of the
  upload token, expiry, voxel size, layer hints) and its state, replaced atomically;
- `files/<relative path>`: each reserved file, created sparse at its declared size;
  chunk `n` is written in place at `(n - 1) * chunkSize`, so no assembly step and
  no second copy are needed, and a file never grows past its declared size;
- `chunks/<file index>/layout.json`: chunk size and count of that file, fixed by
  its first chunk (a later chunk with another layout is refused);
- `chunks/<file index>/<n>`: the SHA-256 of chunk `n`, written (atomically) only
  after its bytes were fsynced. A chunk is stored if and only if its marker
  exists: a node killed mid-chunk reports the chunk missing after a restart;
- `staging/`: the finish's work folder (see `datastore.upload_finish`).

The token: the metaserver gives the client a random upload token and this node
only its SHA-256 (at reservation, with the expiry), so chunk requests are checked
locally, without a round trip, also after a restart; a leaked hash is useless.

Duplicates: a chunk whose marker exists is hashed without writing; the same
digest answers 200, another one 409. One in-process lock per chunk serializes
concurrent copies of one chunk; different chunks proceed in parallel.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import hmac
import json
import logging
import os
import re
import shutil
import stat
import time
import uuid
from collections.abc import AsyncIterator, Callable, Hashable
from concurrent.futures import Executor
from pathlib import Path
from typing import Any, Protocol, TypeVar

from datastore.errors import (
    BadRequest,
    Conflict,
    DatastoreError,
    Forbidden,
    NotFound,
    Unauthorized,
)
from datastore.upload_state import (
    Upload,
    UploadState,
    token_matches,
    write_atomically,
)
from shared.uploads import CHECKSUM_MISMATCH_STATUS, check_upload_id

logger = logging.getLogger(__name__)

UPLOADS_FOLDER = ".uploads"
STATE_FILE = "upload.json"
FILES_DIR = "files"
CHUNKS_DIR = "chunks"
STAGING_DIR = "staging"
LAYOUT_FILE = "layout.json"
_TRASH_PREFIX = ".trash-"
_PIECE = 2**20
_T = TypeVar("_T")
MAX_LISTED_MISSING = 100


class ChecksumMismatch(DatastoreError):
    status = CHECKSUM_MISMATCH_STATUS


class InsufficientStorage(DatastoreError):
    status = 507


class KeyedLocks:
    """One asyncio lock per key, forgotten when nobody holds or waits for it."""

    def __init__(self) -> None:
        self._locks: dict[Hashable, tuple[asyncio.Lock, int]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, key: Hashable) -> AsyncIterator[None]:
        lock, users = self._locks.get(key, (asyncio.Lock(), 0))
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)


class PieceSource(Protocol):
    async def read_chunk(self, size: int = ...) -> bytes: ...


class UploadStore:
    """The uploads of this node on disk (blocking methods: call in an executor)."""

    def __init__(self, binary_data: Path, expiry_hours: float) -> None:
        self.binary_data = binary_data
        self.root = binary_data / UPLOADS_FOLDER
        self.expiry_seconds = expiry_hours * 3600
        self._cache: dict[str, Upload] = {}
        self.chunk_locks = KeyedLocks()
        self.upload_locks = KeyedLocks()
        # Uploads whose finish runs in this process (one winner, RELIABILITY 10).
        self.finishing: set[str] = set()

    def upload_dir(self, upload_id: str) -> Path:
        return self.root / check_upload_id(upload_id)

    def load(self, upload_id: str) -> Upload | None:
        cached = self._cache.get(upload_id)
        if cached is not None:
            return cached
        path = self.upload_dir(upload_id) / STATE_FILE
        try:
            upload = Upload.from_json(json.loads(path.read_bytes()))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            logger.error("unreadable upload state %s: %s", path, e)
            return None
        self._cache[upload_id] = upload
        return upload

    def save(self, upload: Upload) -> None:
        text = json.dumps(upload.to_json(), indent=1).encode()
        write_atomically(self.upload_dir(upload.upload_id) / STATE_FILE, text)
        self._cache[upload.upload_id] = upload

    def active(self) -> list[Upload]:
        """Uploads known to this process (all of them after `recover`)."""
        return list(self._cache.values())

    def reserve(self, upload: Upload) -> bool:
        """Create the upload's folder; False if the same reservation exists (then
        token and expiry are renewed). Conflict for a clash of names or ids."""
        existing = self.load(upload.upload_id)
        if existing is not None:
            same = (existing.organization, existing.name, existing.files) == (
                upload.organization,
                upload.name,
                upload.files,
            )
            if not same or existing.state is not UploadState.RESERVED:
                raise Conflict("another upload with this id exists")
            existing.token_sha256, existing.expires = (
                upload.token_sha256,
                upload.expires,
            )
            self.save(existing)
            return False
        for other in self.active():
            if (other.organization, other.name) == (upload.organization, upload.name):
                raise Conflict(
                    "an upload of this dataset is in progress",
                    {"dataset": f"{upload.organization}/{upload.name}"},
                )
        target = self.binary_data / upload.organization / upload.name
        if os.path.lexists(target):
            raise Conflict(
                "a dataset with this name exists on the datastore",
                {"dataset": f"{upload.organization}/{upload.name}"},
            )
        self.root.mkdir(parents=True, exist_ok=True)
        free = shutil.disk_usage(self.root).free
        if upload.total_size > free:
            raise InsufficientStorage(
                "not enough free space on the datastore",
                {"needed": upload.total_size, "free": free},
            )
        folder = self.upload_dir(upload.upload_id)
        folder.mkdir()
        (folder / FILES_DIR).mkdir()
        (folder / CHUNKS_DIR).mkdir()
        self.save(upload)
        for index, item in enumerate(upload.files):
            if item.size == 0:  # nothing to send: stored from the start
                self.open_data_file(upload, index, close=True)
                self.write_marker(upload, index, 1, hashlib.sha256().hexdigest())
        logger.info(
            "reserved upload %s for %s/%s: %d files, %d bytes",
            upload.upload_id,
            upload.organization,
            upload.name,
            len(upload.files),
            upload.total_size,
        )
        return True

    def remove(self, upload_id: str) -> None:
        """Remove everything of an upload (renamed away first: it vanishes at once)."""
        self._cache.pop(upload_id, None)
        folder = self.upload_dir(upload_id)
        trash = self.root / f"{_TRASH_PREFIX}{upload_id}-{uuid.uuid4().hex[:8]}"
        try:
            folder.rename(trash)
        except FileNotFoundError:
            return
        shutil.rmtree(trash, ignore_errors=True)

    def _chunk_dir(self, upload: Upload, index: int) -> Path:
        return self.upload_dir(upload.upload_id) / CHUNKS_DIR / str(index)

    def data_path(self, upload: Upload, index: int) -> Path:
        return self.upload_dir(upload.upload_id) / FILES_DIR / upload.files[index].path

    def ensure_layout(
        self, upload: Upload, index: int, chunk_size: int, total_chunks: int
    ) -> None:
        """Fix the file's chunk layout at its first chunk; 400 if a later differs."""
        if upload.files[index].size == 0:
            return
        folder = self._chunk_dir(upload, index)
        folder.mkdir(exist_ok=True)
        path = folder / LAYOUT_FILE
        wanted = {"chunk_size": chunk_size, "total_chunks": total_chunks}
        if not path.exists():
            tmp = folder / f".{LAYOUT_FILE}.{uuid.uuid4().hex[:8]}.tmp"
            tmp.write_text(json.dumps(wanted))
            with contextlib.suppress(FileExistsError):
                os.link(tmp, path)  # atomic: the first chunk's layout wins
            tmp.unlink()
        stored = json.loads(path.read_text())
        if stored != wanted:
            raise BadRequest(
                "resumableChunkSize/resumableTotalChunks: differ from the earlier "
                "chunks of this file",
                {"path": upload.files[index].path, "stored": stored, "sent": wanted},
            )

    def layout(self, upload: Upload, index: int) -> dict[str, int] | None:
        if upload.files[index].size == 0:
            return {"chunk_size": 1, "total_chunks": 1}
        try:
            data = json.loads(
                (self._chunk_dir(upload, index) / LAYOUT_FILE).read_text()
            )
        except (FileNotFoundError, ValueError):
            return None
        return {
            "chunk_size": int(data["chunk_size"]),
            "total_chunks": int(data["total_chunks"]),
        }

    def stored_digest(self, upload: Upload, index: int, number: int) -> str | None:
        try:
            text = (self._chunk_dir(upload, index) / str(number)).read_text().strip()
        except FileNotFoundError:
            return None
        return text if re.fullmatch(r"[0-9a-f]{64}", text) else None

    def open_data_file(self, upload: Upload, index: int, *, close: bool = False) -> int:
        """The file's descriptor, created sparse at its declared size."""
        files = self.upload_dir(upload.upload_id) / FILES_DIR
        relative = upload.files[index].path
        folder = files
        for part in relative.split("/")[:-1]:
            folder = folder / part
            with contextlib.suppress(FileExistsError):
                folder.mkdir()
            if not stat.S_ISDIR(folder.lstat().st_mode):
                raise Conflict("upload folder damaged", {"path": relative})
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(files / relative, flags, 0o644)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                raise Conflict("upload folder damaged", {"path": relative})
            if info.st_size != upload.files[index].size:
                os.ftruncate(fd, upload.files[index].size)
        except BaseException:
            os.close(fd)
            raise
        if close:
            os.close(fd)
        return fd

    def write_marker(
        self, upload: Upload, index: int, number: int, digest: str
    ) -> None:
        folder = self._chunk_dir(upload, index)
        folder.mkdir(exist_ok=True)
        write_atomically(folder / str(number), (digest + "\n").encode())

    def clear_markers(self, upload: Upload, index: int) -> None:
        """Forget every chunk of a file (its data failed the whole-file digest)."""
        shutil.rmtree(self._chunk_dir(upload, index), ignore_errors=True)

    def missing_chunks(self, upload: Upload) -> list[dict[str, Any]]:
        """Per incomplete file: `{"path", "missing": [n, ...] | "all", "count"}`."""
        missing: list[dict[str, Any]] = []
        for index, item in enumerate(upload.files):
            layout = self.layout(upload, index)
            if layout is None:
                missing.append({"path": item.path, "missing": "all", "count": None})
                continue
            folder = self._chunk_dir(upload, index)
            try:
                names = {p.name for p in folder.iterdir()}
            except FileNotFoundError:
                names = set()
            if item.size == 0:
                continue
            absent = [
                n for n in range(1, layout["total_chunks"] + 1) if str(n) not in names
            ]
            if absent:
                missing.append(
                    {
                        "path": item.path,
                        "missing": absent[:MAX_LISTED_MISSING],
                        "count": len(absent),
                    }
                )
        return missing

    def scan(self) -> list[tuple[str, Upload | None, float]]:
        """(id, state or None if unreadable, folder mtime) of every upload folder;
        leftovers of removals and temporary files are deleted on the way."""
        found: list[tuple[str, Upload | None, float]] = []
        try:
            entries = list(os.scandir(self.root))
        except FileNotFoundError:
            return found
        for entry in entries:
            if entry.name.startswith(_TRASH_PREFIX):
                shutil.rmtree(entry.path, ignore_errors=True)
                continue
            try:
                upload_id = check_upload_id(entry.name)
            except ValueError:
                continue
            self._cache.pop(upload_id, None)
            found.append((upload_id, self.load(upload_id), entry.stat().st_mtime))
        return found

    def remove_temporaries(self, upload: Upload) -> None:
        """Temporary files of writes a killed process left behind."""
        folder = self.upload_dir(upload.upload_id)
        for tmp in folder.glob(f"{CHUNKS_DIR}/*/.*.tmp"):
            tmp.unlink(missing_ok=True)
        for tmp in folder.glob(".*.tmp"):
            tmp.unlink(missing_ok=True)


def check_upload_token(upload: Upload | None, token: str | None) -> Upload:
    """The upload if `token` is its (unexpired) token: 404, 401 or 403 otherwise."""
    if upload is None:
        raise NotFound("upload not found")
    if not token:
        raise Unauthorized("upload token required")
    if not token_matches(upload, token):
        raise Forbidden("access denied")
    if time.time() > upload.expires:
        raise Forbidden("the upload token has expired")
    return upload


async def _run(executor: Executor, work: Callable[[], _T]) -> _T:
    return await asyncio.get_running_loop().run_in_executor(executor, work)


def _write_piece(fd: int, piece: bytes, offset: int, hasher: Any) -> None:
    hasher.update(piece)
    view = memoryview(piece)
    while view:
        written = os.pwrite(fd, view, offset)
        view, offset = view[written:], offset + written


async def _consume(
    source: PieceSource,
    size: int,
    executor: Executor,
    sink: Callable[[bytes, int], None],
) -> None:
    """Read exactly `size` bytes from `source`, handing each piece to `sink`."""
    received = 0
    while piece := await source.read_chunk(_PIECE):
        if received + len(piece) > size:
            raise BadRequest(
                "the file part is larger than resumableCurrentChunkSize",
                {"declared": size},
            )
        await _run(executor, functools.partial(sink, piece, received))
        received += len(piece)
    if received != size:
        raise BadRequest(
            "the file part is shorter than resumableCurrentChunkSize",
            {"declared": size, "received": received},
        )


async def receive_chunk(
    store: UploadStore,
    executor: Executor,
    upload: Upload,
    index: int,
    number: int,
    start: int,
    size: int,
    source: PieceSource,
    expected_sha256: str | None,
) -> bool:
    """Store chunk `number` of file `index` at byte `start`; True for a duplicate.

    The bytes go straight to their place in the file; the marker that makes the
    chunk count is written only after the checksum matched and the data were
    fsynced. A checksum mismatch leaves no marker: the chunk is not stored.
    """
    path = upload.files[index].path
    async with store.chunk_locks.hold((upload.upload_id, index, number)):
        stored = await _run(
            executor, lambda: store.stored_digest(upload, index, number)
        )
        hasher = hashlib.sha256()
        if stored is not None:
            await _consume(source, size, executor, lambda p, _o: hasher.update(p))
            digest = hasher.hexdigest()
            _check_sum(expected_sha256, digest, path, number)
            if not hmac.compare_digest(digest, stored):
                raise Conflict(
                    "this chunk is stored already with different content",
                    {"path": path, "chunk": number},
                )
            return True
        fd = await _run(executor, lambda: store.open_data_file(upload, index))
        try:
            await _consume(
                source,
                size,
                executor,
                lambda p, o: _write_piece(fd, p, start + o, hasher),
            )
            digest = hasher.hexdigest()
            _check_sum(expected_sha256, digest, path, number)
            await _run(executor, lambda: os.fsync(fd))
        finally:
            os.close(fd)
        await _run(executor, lambda: store.write_marker(upload, index, number, digest))
    return False


def _check_sum(expected: str | None, digest: str, path: str, number: int) -> None:
    if expected is not None and not hmac.compare_digest(expected, digest):
        raise ChecksumMismatch(
            "chunk checksum mismatch; the chunk was discarded, send it again",
            {"path": path, "chunk": number, "expected": expected, "actual": digest},
        )
