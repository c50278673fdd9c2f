"""The upload protocol's shared vocabulary: header names, limits, path and chunk rules.

The metaserver checks a reservation's file list with these rules, the datastore
checks it again and checks every chunk against it, and clients can use them to
fail early. A relative path is accepted only in its one canonical spelling:
components separated by "/", none empty, "." or "..", no backslash, NUL or other
control character, no percent-encoded dot, slash, backslash or NUL, at most
`MAX_COMPONENT_BYTES` bytes of UTF-8 per component. Names that only look odd
(`..foo.txt`, `a/..b/c`, Unicode) are fine: components are compared whole, never
by string prefix.

Chunks follow resumable.js: chunk `n` (1-based) of a file starts at
`(n - 1) * chunk_size`; the last chunk ends at the file's size. resumable.js by
default lets the last chunk absorb the remainder (`floor(size / chunk_size)`
chunks, at least one); with `forceChunkSize` it sends `ceil(size / chunk_size)`.
Both counts are accepted.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass
from typing import Any, Final

CHUNK_SHA256_HEADER: Final = "X-Voxelhub-Chunk-Sha256"
UPLOAD_TOKEN_PREFIX: Final = "vxu_"  # noqa: S105 (a prefix, not a secret)
# tus answers a checksum mismatch with 460; resumable.js retries it (not permanent).
CHECKSUM_MISMATCH_STATUS: Final = 460

MAX_CHUNK_BYTES: Final = 64 * 2**20
# Output formats an upload's conversion may ask for (WKW is the default).
CONVERSION_FORMATS: Final = ("wkw", "zarr3")
# Data types a raw upload may declare (little-endian, as the converter reads them).
RAW_DTYPES: Final = (
    "uint8", "uint16", "uint32", "uint64",
    "int8", "int16", "int32", "int64",
    "float32", "float64",
)  # fmt: skip


def raw_hint_problems(raw: Any) -> list[tuple[str, str]]:
    """(field, message) for each problem of a raw upload's `raw` hint.

    `{"dtype", "shape": [x, y, z(, c)], "order": "F" | "C", "header_bytes"}`;
    order and header_bytes are optional.
    """
    if not isinstance(raw, dict):
        return [("raw", "must be an object {dtype, shape, order, header_bytes}")]
    problems = []
    unknown = sorted(set(raw) - {"dtype", "shape", "order", "header_bytes"})
    if unknown:
        problems.append(("raw", f"unknown fields {', '.join(unknown)}"))
    if raw.get("dtype") not in RAW_DTYPES:
        problems.append(("raw.dtype", f"must be one of {', '.join(RAW_DTYPES)}"))
    shape = raw.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) not in (3, 4)
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 < v <= 2**31
            for v in shape
        )
    ):
        problems.append(("raw.shape", "must be [x, y, z] or [x, y, z, c] of sizes > 0"))
    if raw.get("order", "F") not in ("F", "C"):
        problems.append(("raw.order", "must be F (x fastest) or C"))
    header = raw.get("header_bytes", 0)
    if isinstance(header, bool) or not isinstance(header, int) or header < 0:
        problems.append(("raw.header_bytes", "must be an integer >= 0"))
    return problems


MAX_COMPONENT_BYTES: Final = 255
MAX_PATH_CHARS: Final = 4096
# Files per upload the datastore accepts at all; the metaserver's limit is lower.
MAX_FILES_HARD: Final = 100_000

_SHA256: Final = re.compile(r"[0-9a-f]{64}")
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f]")
_ENCODED: Final = re.compile(r"%(?:2e|2f|5c|00)", re.IGNORECASE)
_DRIVE: Final = re.compile(r"^[A-Za-z]:")


class UploadPathError(ValueError):
    """A relative path that is not acceptable; the message says why."""


def check_relative_path(path: object) -> str:
    """`path` if it is a safe relative file path, else UploadPathError."""
    if not isinstance(path, str) or not path:
        raise UploadPathError("must be a non-empty string")
    if len(path) > MAX_PATH_CHARS:
        raise UploadPathError(f"longer than {MAX_PATH_CHARS} characters")
    if "\x00" in path:
        raise UploadPathError("contains a NUL byte")
    if "\\" in path:
        raise UploadPathError("contains a backslash (use / between folders)")
    if _CONTROL.search(path):
        raise UploadPathError("contains a control character")
    if _ENCODED.search(path):
        raise UploadPathError("contains a percent-encoded '.', '/', '\\' or NUL")
    if path.startswith("/") or _DRIVE.match(path):
        raise UploadPathError("is absolute (paths are relative to the upload)")
    for component in path.split("/"):
        if component == "":
            raise UploadPathError("has an empty component ('//' or a '/' at the end)")
        if component in (".", ".."):
            raise UploadPathError(f"contains a {component!r} component")
        if len(component.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise UploadPathError(
                f"has a component longer than {MAX_COMPONENT_BYTES} bytes"
            )
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise UploadPathError("is not valid Unicode") from None
    return path


def check_sha256(value: object) -> str:
    """A lower-case hex SHA-256 digest (upper case is accepted and lowered)."""
    if not isinstance(value, str) or not _SHA256.fullmatch(value.lower()):
        raise ValueError("must be a SHA-256 digest as 64 hex digits")
    return value.lower()


def check_upload_id(value: object) -> str:
    """The canonical spelling of an upload id (a UUID), else ValueError."""
    if not isinstance(value, str) or len(value) != 36:
        raise ValueError("must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
    parsed = uuid.UUID(value)
    if str(parsed) != value.lower():
        raise ValueError("must be a UUID like 123e4567-e89b-12d3-a456-426614174000")
    return str(parsed)


def split_identifier(identifier: object) -> tuple[str, str]:
    """`resumableIdentifier` = `<upload id>/<relative path>` → (id, path)."""
    if not isinstance(identifier, str) or "/" not in identifier:
        raise UploadPathError("must be <upload id>/<relative path>")
    upload_id, path = identifier.split("/", 1)
    try:
        checked_id = check_upload_id(upload_id)
    except ValueError as e:
        raise UploadPathError(f"upload id {e}") from None
    return checked_id, check_relative_path(path)


def path_conflicts(paths: list[str]) -> list[str]:
    """Messages for duplicates and for paths used both as a file and a folder."""
    problems: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path in seen:
            problems.append(f"{path}: listed twice")
        seen.add(path)
    folders = {p.rsplit("/", i)[0] for p in seen for i in range(1, p.count("/") + 1)}
    problems.extend(
        f"{path}: is a file and also a folder of other files"
        for path in sorted(seen & folders)
    )
    return problems


@dataclass(frozen=True, slots=True)
class ChunkSpan:
    """Where chunk `number` of a file lies: bytes [start, end)."""

    number: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


def chunk_counts(file_size: int, chunk_size: int) -> set[int]:
    """The chunk counts resumable.js may declare for this file and chunk size."""
    if chunk_size < 1:
        return set()
    return {max(file_size // chunk_size, 1), max(-(-file_size // chunk_size), 1)}


def chunk_span(
    number: int, file_size: int, chunk_size: int, total_chunks: int
) -> ChunkSpan:
    """The byte range of chunk `number`; ValueError naming the field if impossible."""
    if not 1 <= chunk_size <= MAX_CHUNK_BYTES:
        raise ValueError(f"resumableChunkSize: must be 1 to {MAX_CHUNK_BYTES}")
    if total_chunks not in chunk_counts(file_size, chunk_size):
        expected = " or ".join(map(str, sorted(chunk_counts(file_size, chunk_size))))
        raise ValueError(
            f"resumableTotalChunks: {file_size} bytes in chunks of {chunk_size} "
            f"make {expected} chunks, not {total_chunks}"
        )
    if not 1 <= number <= total_chunks:
        raise ValueError(f"resumableChunkNumber: must be 1 to {total_chunks}")
    start = (number - 1) * chunk_size
    end = file_size if number == total_chunks else number * chunk_size
    if start > file_size or end > file_size:
        raise ValueError("resumableChunkNumber: the chunk lies past the file's end")
    return ChunkSpan(number, start, end)


# Datastore -> metaserver, signed like every datastore call (`shared.protocol`):
# body {"status": "finishing" | "reserved" | "imported" | "conversion_needed" |
# "failed" | "cancelled", "reason": str, "datasource": dict | null}
# -> 200 {"state": str, "job_id": int | null}; 409 when the upload cannot take
# that step (cancelled, ended, expired).
UPLOAD_FINISHED_PATH: Final = "/api/datastores/{name}/uploads/{upload_id}/finished"
