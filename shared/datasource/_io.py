"""Read and write datasource-properties.json text and files."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import stat
import tempfile
from pathlib import Path
from typing import Final

from shared.datasource._dump import dump_datasource
from shared.datasource._model import DatasourceError, DatasourceProperties
from shared.datasource._parse import parse_datasource

logger = logging.getLogger(__name__)

MAX_FILE_BYTES: Final = 16 * 1024 * 1024
_NEW_FILE_MODE: Final = 0o644


def parse_datasource_json(text: str | bytes) -> DatasourceProperties:
    """Parse and validate JSON text; invalid JSON is a `DatasourceError` at `(json)`."""
    if len(text) > MAX_FILE_BYTES:
        raise DatasourceError(
            "(json)", f"too large ({len(text)} > {MAX_FILE_BYTES} bytes)"
        )
    if isinstance(text, bytes):
        try:
            # utf-8-sig: editors on Windows like to start files with a BOM.
            text = text.decode("utf-8-sig")
        except UnicodeDecodeError as e:
            raise DatasourceError(
                "(json)", f"not UTF-8 text (bad byte at offset {e.start})"
            ) from None
    text = text.removeprefix("\ufeff")
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise DatasourceError(
            "(json)", f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}"
        ) from None
    except RecursionError:
        raise DatasourceError("(json)", "nested too deeply") from None
    return parse_datasource(obj)


def load_datasource(path: Path) -> DatasourceProperties:
    """Read and validate a datasource-properties.json file.

    A missing or unreadable file raises `OSError`; a file over 16 MiB or with invalid
    content raises `DatasourceError`.
    """
    with open(path, "rb") as f:
        # Read one byte more than allowed to notice an oversized file without
        # trusting its reported size (it may still be growing).
        data = f.read(MAX_FILE_BYTES + 1)
    if len(data) > MAX_FILE_BYTES:
        raise DatasourceError(
            "(file)", f"{path.name} is larger than {MAX_FILE_BYTES // 2**20} MiB"
        )
    return parse_datasource_json(data)


def dumps_datasource(props: DatasourceProperties) -> str:
    """The JSON text of `props`: indented by 4 like webknossos-libs, newline at end."""
    return json.dumps(dump_datasource(props), indent=4, allow_nan=False) + "\n"


def save_datasource(path: Path, props: DatasourceProperties) -> None:
    """Validate `props` and write them atomically to `path`.

    The text goes to a temporary file in the same folder, is fsynced and then renamed
    over `path`, so readers see the old or the new file, never half of one. An invalid
    `props` raises `DatasourceError` and leaves `path` untouched.
    """
    data = dump_datasource(props)
    # Never write a file that would not load again.
    parse_datasource(data)
    text = json.dumps(data, indent=4, allow_nan=False) + "\n"
    _atomic_write(path, text.encode("utf-8"))
    logger.debug("saved %s", path)


def _atomic_write(path: Path, payload: bytes) -> None:
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        mode = _NEW_FILE_MODE
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
    )
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
            f.flush()
            # mkstemp makes 0600 files; keep the mode readers already rely on.
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    # The rename is durable only once the folder entry is on disk.
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError as e:
        logger.debug("cannot fsync folder %s: %s", folder, e)
    finally:
        os.close(fd)
