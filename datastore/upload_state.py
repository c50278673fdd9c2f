"""An upload's reservation as `upload.json` holds it, and how it is parsed.

The metaserver's reservation (`POST /data/datasets/reserveUpload`) is checked
again here with the rules of `shared.uploads`, every problem named by its JSON
path; state files are replaced atomically (temporary file, fsync, rename).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import os
import re
import time
import uuid
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from datastore.errors import BadRequest
from shared.datasource import VoxelSize
from shared.protocol import NAME_PATTERN
from shared.uploads import (
    CONVERSION_FORMATS,
    MAX_FILES_HARD,
    UploadPathError,
    check_relative_path,
    check_sha256,
    check_upload_id,
    path_conflicts,
    raw_hint_problems,
)

logger = logging.getLogger(__name__)

_NAME = re.compile(NAME_PATTERN)


class UploadState(StrEnum):
    RESERVED = "reserved"  # chunks welcome
    FINISHING = "finishing"  # a finish runs (or ran when the node died)
    CONVERTING = "converting"  # handed to a conversion job; input kept until done
    FAILED = "failed"  # terminal; only the state file is left, until expiry
    DONE = "done"  # imported; kept only while the metaserver has not been told


@dataclass(frozen=True, slots=True)
class UploadFile:
    path: str
    size: int
    sha256: str


@dataclass
class Upload:
    """One reservation as stored in `upload.json` (mutable: its state changes)."""

    upload_id: str
    organization: str
    name: str
    files: tuple[UploadFile, ...]
    token_sha256: str
    expires: float
    created: float
    voxel_size: tuple[float, float, float] | None = None
    unit: str = "nanometer"
    layer_hints: tuple[dict[str, str], ...] = ()
    # Output format of a conversion: wkw or zarr3 (None: the converter's default).
    data_format: str | None = None
    # A raw file's layout: {dtype, shape, order, header_bytes} (shared.uploads).
    raw: dict[str, Any] | None = None
    state: UploadState = UploadState.RESERVED
    message: str = ""
    # An outcome the metaserver has not acknowledged yet (sent again later).
    pending_report: dict[str, Any] | None = None
    job_id: str | None = None
    # The folder a conversion reads, relative to the upload's folder.
    input_path: str | None = None
    _index: dict[str, int] = field(default_factory=dict, repr=False, compare=False)

    @property
    def total_size(self) -> int:
        return sum(f.size for f in self.files)

    def index_of(self, path: str) -> int | None:
        if not self._index:
            self._index = {f.path: i for i, f in enumerate(self.files)}
        return self._index.get(path)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "upload_id": self.upload_id,
            "organization": self.organization,
            "name": self.name,
            "files": [
                {"path": f.path, "size": f.size, "sha256": f.sha256} for f in self.files
            ],
            "token_sha256": self.token_sha256,
            "expires": self.expires,
            "created": self.created,
            "voxel_size": None if self.voxel_size is None else list(self.voxel_size),
            "unit": self.unit,
            "layer_hints": list(self.layer_hints),
            "data_format": self.data_format,
            "raw": self.raw,
            "state": self.state.value,
            "message": self.message,
            "pending_report": self.pending_report,
            "job_id": self.job_id,
            "input_path": self.input_path,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Upload:
        voxel = data.get("voxel_size")
        return cls(
            upload_id=data["upload_id"],
            organization=data["organization"],
            name=data["name"],
            files=tuple(
                UploadFile(f["path"], int(f["size"]), f["sha256"])
                for f in data["files"]
            ),
            token_sha256=data["token_sha256"],
            expires=float(data["expires"]),
            created=float(data["created"]),
            voxel_size=None if voxel is None else (voxel[0], voxel[1], voxel[2]),
            unit=data.get("unit", "nanometer"),
            layer_hints=tuple(data.get("layer_hints") or ()),
            data_format=data.get("data_format"),
            raw=data.get("raw"),
            state=UploadState(data.get("state", "reserved")),
            message=data.get("message", ""),
            pending_report=data.get("pending_report"),
            job_id=data.get("job_id"),
            input_path=data.get("input_path"),
        )


def _problem(problems: list[dict[str, str]], where: str, message: str) -> None:
    if len(problems) < 50:
        problems.append({"path": where, "message": message})


def _files_of(value: Any, problems: list[dict[str, str]]) -> list[UploadFile]:
    if not isinstance(value, list) or not value:
        _problem(problems, "files", "must be a non-empty list")
        return []
    if len(value) > MAX_FILES_HARD:
        _problem(problems, "files", f"at most {MAX_FILES_HARD} files")
        return []
    files: list[UploadFile] = []
    for i, item in enumerate(value):
        where = f"files[{i}]"
        if not isinstance(item, dict):
            _problem(problems, where, "must be an object")
            continue
        try:
            path = check_relative_path(item.get("path"))
        except UploadPathError as e:
            _problem(problems, f"{where}.path", f"{item.get('path')!r} {e}")
            continue
        size = item.get("size")
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            _problem(problems, f"{where}.size", f"{path}: must be an integer >= 0")
            continue
        try:
            digest = check_sha256(item.get("sha256"))
        except ValueError as e:
            _problem(problems, f"{where}.sha256", f"{path}: {e}")
            continue
        files.append(UploadFile(path, size, digest))
    for message in path_conflicts([f.path for f in files]):
        _problem(problems, "files", message)
    return files


def _voxel_size(value: Any, problems: list[dict[str, str]]) -> Any:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(
            isinstance(v, (int, float))
            and not isinstance(v, bool)
            and math.isfinite(v)
            and v > 0
            for v in value
        )
    ):
        _problem(problems, "voxel_size", "must be 3 finite numbers > 0")
        return None
    return (float(value[0]), float(value[1]), float(value[2]))


def parse_reservation(body: Any) -> Upload:
    """The metaserver's reservation → Upload; BadRequest listing every problem."""
    if not isinstance(body, dict):
        raise BadRequest("invalid reservation", [{"path": "", "message": "object"}])
    problems: list[dict[str, str]] = []
    try:
        upload_id = check_upload_id(body.get("upload_id"))
    except ValueError as e:
        _problem(problems, "upload_id", str(e))
        upload_id = ""
    for key in ("organization", "name"):
        if not isinstance(body.get(key), str) or not _NAME.fullmatch(body[key]):
            _problem(problems, key, f"must match {NAME_PATTERN}")
    files = _files_of(body.get("files"), problems)
    token = ""
    try:
        token = check_sha256(body.get("token_sha256"))
    except ValueError as e:
        _problem(problems, "token_sha256", str(e))
    expires = body.get("expires")
    if isinstance(expires, bool) or not isinstance(expires, (int, float)):
        _problem(problems, "expires", "must be a UNIX time in seconds")
        expires = 0.0
    voxel = _voxel_size(body.get("voxel_size"), problems)
    unit = body.get("unit") or "nanometer"
    hints = body.get("layer_hints") or []
    try:
        unit = VoxelSize((1.0, 1.0, 1.0), unit).unit
    except (TypeError, ValueError):
        _problem(problems, "unit", "must be a length unit like nanometer")
    if not isinstance(hints, list) or not all(
        isinstance(h, dict) and all(isinstance(v, str) for v in h.values())
        for h in hints
    ):
        _problem(problems, "layer_hints", "must be a list of {name, category}")
    data_format = body.get("data_format")
    if data_format is not None and data_format not in CONVERSION_FORMATS:
        _problem(
            problems, "data_format", f"must be one of {', '.join(CONVERSION_FORMATS)}"
        )
    raw = body.get("raw")
    if raw is not None:
        for path, message in raw_hint_problems(raw):
            _problem(problems, path, message)
    declared = body.get("total_size")
    if declared is not None and declared != sum(f.size for f in files):
        _problem(problems, "total_size", "differs from the sum of the file sizes")
    if problems:
        raise BadRequest("invalid reservation", problems)
    return Upload(
        upload_id=upload_id,
        organization=body["organization"],
        name=body["name"],
        files=tuple(files),
        token_sha256=token,
        expires=float(expires),
        created=time.time(),
        voxel_size=voxel,
        unit=unit,
        layer_hints=tuple(hints),
        data_format=data_format,
        raw=raw,
    )


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(path: Path, data: bytes) -> None:
    """Write `data` to a temporary file beside `path`, fsync, rename over `path`."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        tmp.replace(path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def token_matches(upload: Upload, token: str | None) -> bool:
    if not token:
        return False
    given = hashlib.sha256(token.encode()).hexdigest()
    return hmac.compare_digest(given, upload.token_sha256)
