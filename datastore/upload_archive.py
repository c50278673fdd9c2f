"""Unpacking uploaded zip archives without trusting them (RELIABILITY 1, 3, 6).

Everything is checked from the central directory before the first byte is
written, and the entries are written by us, never by `ZipFile.extract`:

- names: the raw name (NUL bytes included: `zipfile` cuts names at NUL) must be a
  relative POSIX path without backslashes, control characters, empty or `..`
  components, drive letters or a leading `/`; components of at most 255 bytes.
  `.` components are dropped. Names that only look odd (`..foo.txt`, `a/..b/c`,
  Unicode) are fine: components are compared whole;
- types: symbolic links, devices, FIFOs and sockets are refused (zip cannot
  express hard links); encrypted entries are refused;
- bombs: more than `max_entries` entries, a declared total above
  `max_total_bytes` or the free space, an entry of at least `ratio_min_bytes`
  whose size exceeds `max_ratio` times its compressed size, entries whose data
  overlap each other or the central directory, and the same path twice;
- while writing, every entry is counted again: more bytes than declared stop it.

Files are created with O_EXCL and O_NOFOLLOW under a target folder that holds
nothing but what we created, so no entry can write through a link.
"""

from __future__ import annotations

import logging
import os
import re
import stat
import struct
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from shared.uploads import MAX_COMPONENT_BYTES, MAX_PATH_CHARS

logger = logging.getLogger(__name__)

_LOCAL_HEADER = struct.Struct("<4s22xHH")
_LOCAL_SIGNATURE = b"PK\x03\x04"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DRIVE = re.compile(r"^[A-Za-z]:")
_PIECE = 2**20
_UNIX = 3


class ArchiveError(ValueError):
    """An archive we refuse; `entry` names the entry when one is to blame."""

    def __init__(self, message: str, entry: str | None = None) -> None:
        super().__init__(f"{entry!r}: {message}" if entry is not None else message)
        self.entry = entry
        self.reason = message


@dataclass(frozen=True, slots=True)
class ArchiveLimits:
    max_entries: int = 100_000
    max_total_bytes: int = 2**40
    max_ratio: float = 100.0
    ratio_min_bytes: int = 2**20


@dataclass(frozen=True, slots=True)
class _Entry:
    info: zipfile.ZipInfo
    parts: tuple[str, ...]
    is_dir: bool


def _shown(raw: str) -> str:
    shown = raw.replace("\x00", "\\x00")
    return shown if len(shown) <= 200 else shown[:197] + "..."


def entry_parts(raw: str) -> tuple[tuple[str, ...], bool]:
    """(path components, is a folder) of a raw entry name; ArchiveError if unsafe."""
    shown = _shown(raw)
    if "\x00" in raw:
        raise ArchiveError("name contains a NUL byte", shown)
    if "\\" in raw:
        raise ArchiveError("name contains a backslash", shown)
    if _CONTROL.search(raw):
        raise ArchiveError("name contains a control character", shown)
    if len(raw) > MAX_PATH_CHARS:
        raise ArchiveError(f"name longer than {MAX_PATH_CHARS} characters", shown)
    if raw.startswith("/") or _DRIVE.match(raw):
        raise ArchiveError("absolute path", shown)
    is_dir = raw.endswith("/")
    components = raw[:-1].split("/") if is_dir else raw.split("/")
    parts: list[str] = []
    for component in components:
        if component == "..":
            raise ArchiveError("path leaves the target folder ('..')", shown)
        if component == "":
            raise ArchiveError("empty path component", shown)
        if component == ".":
            continue
        if len(component.encode("utf-8", "surrogatepass")) > MAX_COMPONENT_BYTES:
            raise ArchiveError(
                f"a component is longer than {MAX_COMPONENT_BYTES} bytes", shown
            )
        parts.append(component)
    if not parts:
        raise ArchiveError("empty name", shown)
    return tuple(parts), is_dir


def _check_type(info: zipfile.ZipInfo, shown: str) -> bool:
    """True for a folder; ArchiveError for links, devices and encrypted entries."""
    if info.flag_bits & 0x1:
        raise ArchiveError("encrypted entries are not supported", shown)
    mode = info.external_attr >> 16
    if info.create_system == _UNIX and mode:
        if stat.S_ISLNK(mode):
            raise ArchiveError("symbolic links are not allowed", shown)
        if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
            raise ArchiveError("device files are not allowed", shown)
        if stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode):
            raise ArchiveError("FIFOs and sockets are not allowed", shown)
        if stat.S_ISDIR(mode):
            return True
    return info.orig_filename.endswith("/")


def _check_overlaps(archive: zipfile.ZipFile, infos: list[zipfile.ZipInfo]) -> None:
    """Entries whose data share bytes (a classic bomb) or run into the directory."""
    handle = archive.fp
    if handle is None:
        raise ArchiveError("archive is closed")
    end_of_data = archive.start_dir
    spans: list[tuple[int, int, str]] = []
    for info in infos:
        handle.seek(info.header_offset)
        header = handle.read(_LOCAL_HEADER.size)
        if len(header) != _LOCAL_HEADER.size:
            raise ArchiveError("local header lies past the end", _shown(info.filename))
        signature, name_length, extra_length = _LOCAL_HEADER.unpack(header)
        if signature != _LOCAL_SIGNATURE:
            raise ArchiveError("bad local header", _shown(info.filename))
        start = info.header_offset
        end = start + _LOCAL_HEADER.size + name_length + extra_length
        end += info.compress_size
        spans.append((start, end, info.filename))
    spans.sort()
    previous_end, previous_name = 0, ""
    for start, end, name in spans:
        if start < previous_end:
            raise ArchiveError(
                f"overlaps the data of {_shown(previous_name)!r}", _shown(name)
            )
        if end > end_of_data:
            raise ArchiveError("data overlaps the central directory", _shown(name))
        previous_end, previous_name = end, name


def plan_entries(
    archive: zipfile.ZipFile, limits: ArchiveLimits, free_bytes: int | None
) -> list[_Entry]:
    """Every entry checked (names, types, sizes, overlaps); nothing written."""
    infos = archive.infolist()
    if len(infos) > limits.max_entries:
        raise ArchiveError(
            f"{len(infos)} entries, at most {limits.max_entries} are accepted"
        )
    entries: list[_Entry] = []
    total = 0
    files: set[tuple[str, ...]] = set()
    folders: set[tuple[str, ...]] = set()
    for info in infos:
        shown = _shown(info.orig_filename)
        parts, named_dir = entry_parts(info.orig_filename)
        is_dir = _check_type(info, shown) or named_dir
        if is_dir:
            folders.add(parts)
        else:
            if parts in files:
                raise ArchiveError("the archive holds this path twice", shown)
            files.add(parts)
            total += info.file_size
            if info.file_size >= limits.ratio_min_bytes and (
                info.compress_size * limits.max_ratio < info.file_size
            ):
                raise ArchiveError(
                    f"compression ratio above {limits.max_ratio:g} "
                    f"({info.file_size} bytes from {info.compress_size})",
                    shown,
                )
        folders.update(parts[:i] for i in range(1, len(parts)))
        entries.append(_Entry(info, parts, is_dir))
    clash = files & folders
    if clash:
        raise ArchiveError(
            "is a file and also a folder of other entries", "/".join(min(clash))
        )
    if total > limits.max_total_bytes:
        raise ArchiveError(
            f"unpacks to {total} bytes, more than the limit of {limits.max_total_bytes}"
        )
    if free_bytes is not None and total > free_bytes:
        raise ArchiveError(
            f"unpacks to {total} bytes, more than the {free_bytes} bytes free"
        )
    _check_overlaps(archive, infos)
    return entries


def _make_folder(target: Path, parts: tuple[str, ...]) -> Path:
    folder = target
    for part in parts:
        folder = folder / part
        try:
            folder.mkdir()
        except FileExistsError:
            if folder.is_symlink() or not folder.is_dir():
                raise ArchiveError(
                    "is a file and also a folder", "/".join(parts)
                ) from None
    return folder


def _write_file(
    archive: zipfile.ZipFile, entry: _Entry, target: Path, budget: int
) -> int:
    shown = _shown(entry.info.orig_filename)
    folder = _make_folder(target, entry.parts[:-1])
    path = folder / entry.parts[-1]
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, 0o644)
    except FileExistsError:
        raise ArchiveError("the archive holds this path twice", shown) from None
    written = 0
    try:
        with archive.open(entry.info) as source:
            while piece := source.read(_PIECE):
                written += len(piece)
                if written > entry.info.file_size:
                    raise ArchiveError("more data than the declared size", shown)
                if written > budget:
                    raise ArchiveError("the archive unpacks to more than allowed")
                view = memoryview(piece)
                while view:
                    view = view[os.write(fd, view) :]
        os.fsync(fd)
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as e:
        raise ArchiveError(f"cannot be read: {e}", shown) from None
    finally:
        os.close(fd)
    return written


def unpack_zip(
    archive_path: Path,
    target: Path,
    limits: ArchiveLimits,
    *,
    free_bytes: int | None = None,
) -> int:
    """Unpack `archive_path` into the existing folder `target`; bytes written.

    Raises ArchiveError before writing anything for names, types, sizes and
    overlaps; later (a corrupt stream, more data than declared) after writing
    only inside `target`, which the caller removes.
    """
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError, ValueError) as e:
        raise ArchiveError(f"not a readable zip archive ({e})") from None
    with archive:
        entries = plan_entries(archive, limits, free_bytes)
        total = 0
        for entry in entries:
            if entry.is_dir:
                _make_folder(target, entry.parts)
                continue
            total += _write_file(archive, entry, target, limits.max_total_bytes - total)
    logger.info("unpacked %s: %d entries, %d bytes", archive_path, len(entries), total)
    return total


def is_zip_name(path: str) -> bool:
    return PurePosixPath(path).suffix.lower() == ".zip"
