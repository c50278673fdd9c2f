"""Writing a task's box into a mag, and reading a mag back for downsampling.

One output class per format, looked up with `output_for` (the conversions' side of
the format registry; mags are created with `shared.formats.create_mag`).

- WKW: see `wkw_writer` (part files per task, assembled per 1024³ file).
- Zarr3: a task holds its box, whole shards, and writes it shard by shard through
  TensorStore; no other task touches those shard files.

Each process uses one TensorStore context with no chunk cache and one thread for
encoding: conversions scale by adding worker processes, and memory stays bounded.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, Final, Protocol

import numpy as np
import tensorstore as ts

from shared.conversions.errors import ConversionCancelled, ConversionError
from shared.datasource import DataFormat
from shared.formats import create_mag
from shared.geometry import BoundingBox, Vec3

logger = logging.getLogger(__name__)

CHUNK: Final = 32
WKW_FILE: Final = 1024
_handles_lock = threading.Lock()
_context: ts.Context | None = None

Pieces = Iterable[tuple[BoundingBox, np.ndarray]]


def conversion_context() -> ts.Context:
    """TensorStore context of conversion work in this process (no cache, 1 thread)."""
    global _context
    with _handles_lock:
        if _context is None:
            _context = ts.Context(
                {
                    "cache_pool": {"total_bytes_limit": 0},
                    "data_copy_concurrency": {"limit": 1},
                    "file_io_concurrency": {"limit": 8},
                }
            )
        return _context


class Output(Protocol):
    """How tasks write and read one output format."""

    data_format: DataFormat
    needs_assembly: bool

    def create(
        self,
        path: Path,
        dtype: np.dtype[Any],
        channels: int,
        *,
        shard_size: int,
        extent: Vec3,
    ) -> None: ...

    def write(self, path: Path, box: BoundingBox, pieces: Pieces) -> int:
        """Write the task box `box` from `pieces` ((box, (c, x, y, z) data) of
        32-deep slabs covering `box`); returns the bytes written to disk."""
        ...

    def read(self, path: Path, box: BoundingBox) -> np.ndarray: ...

    def assemble(self, path: Path, file_box: BoundingBox) -> int: ...

    def finish(self, path: Path) -> None:
        """Remove what the tasks left for themselves (before the final move)."""
        ...


def require_dir(path: Path) -> None:
    if not path.is_dir():
        raise ConversionCancelled(f"{path.name}: the staging folder is gone")


def replace_file(tmp: Path, final: Path) -> None:
    try:
        tmp.replace(final)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        raise ConversionCancelled("the staging folder is gone") from None


class Zarr3Output:
    """Sharded Zarr v3 (c, x, y, z), one shard per task, 32³ chunks, zstd."""

    data_format = DataFormat.ZARR3
    needs_assembly = False

    def __init__(self) -> None:
        self._stores: dict[Path, ts.TensorStore] = {}
        self._lock = threading.Lock()

    def create(
        self,
        path: Path,
        dtype: np.dtype[Any],
        channels: int,
        *,
        shard_size: int,
        extent: Vec3,
    ) -> None:
        create_mag(
            path,
            DataFormat.ZARR3,
            dtype,
            channels,
            chunk_shape=CHUNK,
            shard_shape=shard_size,
            compress=True,
            shape=extent,
        ).close()

    def _store(self, path: Path) -> ts.TensorStore:
        with self._lock:
            store = self._stores.get(path)
        if store is None:
            require_dir(path)
            spec = {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": f"{path}/"},
            }
            store = ts.open(
                spec, context=conversion_context(), read=True, write=True
            ).result()
            with self._lock:
                if len(self._stores) > 64:
                    self._stores.clear()
                self._stores[path] = store
        return store

    def write(self, path: Path, box: BoundingBox, pieces: Pieces) -> int:
        store = self._store(path)
        buffer: np.ndarray | None = None
        for piece_box, data in pieces:
            if buffer is None:
                buffer = np.zeros((data.shape[0], *box.size), data.dtype, order="F")
            at = piece_box.topleft - box.topleft
            end = at + piece_box.size
            buffer[:, at.x : end.x, at.y : end.y, at.z : end.z] = data
        if buffer is None:
            return 0
        require_dir(path)
        # Shard by shard: TensorStore then holds one encoded shard at a time.
        layout = store.chunk_layout.write_chunk.shape
        shard = (
            Vec3(*(int(v or 0) for v in layout[1:4]))
            if layout is not None and all(layout[1:4])
            else box.size
        )
        for part in box.chunks(shard):
            (x0, y0, z0), (x1, y1, z1) = part.topleft, part.end
            at, end = part.topleft - box.topleft, part.end - box.topleft
            store[:, x0:x1, y0:y1, z0:z1].write(
                buffer[:, at.x : end.x, at.y : end.y, at.z : end.z]
            ).result()
        return int(buffer.nbytes)

    def read(self, path: Path, box: BoundingBox) -> np.ndarray:
        store = self._store(path)
        upper = store.domain.exclusive_max
        channels = int(upper[0])
        out = np.zeros((channels, *box.size), store.dtype.numpy_dtype, order="F")
        lo = box.topleft.pairmax(0)
        hi = box.end.pairmin(Vec3(*upper[1:4]))
        if any(h <= lo_ for lo_, h in zip(lo, hi, strict=True)):
            return out
        data = store[:, lo.x : hi.x, lo.y : hi.y, lo.z : hi.z].read(order="F").result()
        at = lo - box.topleft
        end = at + (hi - lo)
        out[:, at.x : end.x, at.y : end.y, at.z : end.z] = data
        return out

    def assemble(self, path: Path, file_box: BoundingBox) -> int:
        return 0

    def finish(self, path: Path) -> None:
        with self._lock:
            self._stores.pop(path, None)


_OUTPUTS: dict[DataFormat, Output] = {}


def output_for(data_format: DataFormat) -> Output:
    """The (per-process) writer of `data_format`."""
    with _handles_lock:
        output = _OUTPUTS.get(data_format)
        if output is None:
            from shared.conversions.wkw_writer import WkwOutput

            factories: Mapping[DataFormat, Callable[[], Output]] = {
                DataFormat.WKW: WkwOutput,
                DataFormat.ZARR3: Zarr3Output,
            }
            try:
                output = factories[data_format]()
            except KeyError:
                raise ConversionError(
                    f"cannot write {data_format} (supported: wkw, zarr3)"
                ) from None
            _OUTPUTS[data_format] = output
        return output


def forget_handles() -> None:
    """Drop cached handles (after a dataset moved into place or was removed)."""
    with _handles_lock:
        _OUTPUTS.clear()
