"""TensorStore-backed arrays: zarr (v2), zarr3, n5 and neuroglancer precomputed.

Caching: every handle shares one `ts.Context` whose cache pool holds decoded chunks
and shard indexes (size: `VOXELHUB_TENSORSTORE_CACHE_MB`, default 512). Handles are
opened with `recheck_cached_data` and `recheck_cached_metadata` set to `"open"`: a
handle trusts what it has cached since it was opened and never stats files per read
(fast random reads), while a newly opened handle revalidates anything cached
before. Data replaced on disk (a conversion moved into place by an atomic rename) is
therefore seen by handles opened after the move; callers that cache handles must
re-open them when a dataset changes.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Self

import numpy as np
import tensorstore as ts

from shared.env import env_int
from shared.formats._axes import (
    AxisLayout,
    axis_layout,
    bounds,
    chunk_shape_of,
    cxyz_view,
    stored_box,
)
from shared.formats.base import (
    MAX_IO_BYTES,
    ArrayInfo,
    as_cxyz,
    check_box,
    check_dtype,
    check_offset,
    zeros,
)
from shared.formats.errors import (
    CorruptData,
    FormatError,
    MagNotFound,
    UnsupportedData,
)
from shared.geometry import BoundingBox, Vec3

logger = logging.getLogger(__name__)

_context_lock = threading.Lock()
_context: ts.Context | None = None

_METADATA_FILES = frozenset(
    {"zarr.json", ".zarray", ".zattrs", "attributes.json", "info"}
)
_LOCAL_FILE = re.compile(r'local file "([^"]+)"')
_SPEC_SUFFIX = re.compile(r"\s*\[(tensorstore_spec|source locations)=.*$", re.DOTALL)


def shared_context() -> ts.Context:
    """The one TensorStore context (cache pool, I/O concurrency) of this process."""
    global _context
    with _context_lock:
        if _context is None:
            cache_mb = env_int("VOXELHUB_TENSORSTORE_CACHE_MB", 512, minimum=0)
            _context = ts.Context({"cache_pool": {"total_bytes_limit": cache_mb << 20}})
        return _context


def file_kvstore(path: Path) -> dict[str, Any]:
    return {"driver": "file", "path": f"{path}/"}


def translate_error(error: Exception, where: str, mag_dir: Path | None) -> FormatError:
    """A FormatError for a TensorStore failure, without absolute server paths."""
    message = _SPEC_SUFFIX.sub("", str(error))
    code = message.split(":", 1)[0].strip()
    keys: list[str] = []

    def relative(found: re.Match[str]) -> str:
        file = Path(found.group(1))
        if mag_dir is not None and file.is_relative_to(mag_dir):
            keys.append(file.relative_to(mag_dir).as_posix())
        else:
            keys.append(file.name)
        return f'local file "{keys[-1]}"'

    message = _LOCAL_FILE.sub(relative, message)
    if mag_dir is not None:
        message = message.replace(str(mag_dir), ".")
    key = keys[-1] if keys else None
    if code == "NOT_FOUND":
        return MagNotFound(f"{where}: no array metadata found ({message})")
    if key is not None and code in (
        "FAILED_PRECONDITION",
        "DATA_LOSS",
        "INVALID_ARGUMENT",
    ):
        if key in _METADATA_FILES:
            return CorruptData(f"{where}: corrupt metadata {key} ({message})")
        return CorruptData(f"{where}: corrupt chunk {key} ({message})")
    if code in ("INVALID_ARGUMENT", "UNIMPLEMENTED", "FAILED_PRECONDITION"):
        return UnsupportedData(f"{where}: cannot use this array ({message})")
    return FormatError(f"{where}: {message}")


def open_store(
    spec: dict[str, Any],
    *,
    where: str,
    mag_dir: Path | None,
    writable: bool = False,
    create: bool = False,
) -> ts.TensorStore:
    """Open (or create) a TensorStore with the shared context and open-time caching."""
    full = {"recheck_cached_data": "open", "recheck_cached_metadata": "open", **spec}
    try:
        if create:
            return ts.open(
                full, context=shared_context(), create=True, open=True
            ).result()
        return ts.open(
            full, context=shared_context(), read=True, write=writable
        ).result()
    except ValueError as e:
        raise translate_error(e, where, mag_dir) from None


class TensorStoreArray:
    """A mag read and written through TensorStore, seen as `(c, x, y, z)`."""

    def __init__(
        self,
        base: ts.TensorStore,
        layout: AxisLayout,
        *,
        where: str,
        mag_dir: Path | None,
        writable: bool,
    ) -> None:
        self._where = where
        self._mag_dir = mag_dir
        self._writable = writable
        self._layout = layout
        self._resize_lock = threading.Lock()
        self.dtype = check_dtype(base.dtype.numpy_dtype, where)
        self._set_base(base)
        self.num_channels = int(
            self._view.domain[0].exclusive_max - self._view.domain[0].inclusive_min
        )
        self.chunk_shape = chunk_shape_of(self._view)
        self._voxel_bytes = self.num_channels * self.dtype.itemsize
        self._closed = False

    def _set_base(self, base: ts.TensorStore) -> None:
        view = cxyz_view(base, self._layout, self._where)
        self._base = base
        lower, upper = bounds(view)
        self._channel_lo = view.domain[0].inclusive_min
        # One tuple, swapped in one assignment: a read running during a resize sees
        # the old view with its own bounds or the new one with its bounds.
        self._state = (view, lower, upper)
        self._view = view
        self.shape: Vec3 | None = Vec3(*upper)

    def __repr__(self) -> str:
        return f"TensorStoreArray({self._where})"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of `box` as `(channels, sx, sy, sz)`, zeros outside the array."""
        view, (lx, ly, lz), (ux, uy, uz) = self._state
        if self._closed:
            raise FormatError(f"{self._where}: array is closed")
        # Plain ints on the hot path: Vec3 arithmetic costs more than the rest.
        start, size = box.topleft, box.size
        x0, y0, z0 = start.x, start.y, start.z
        x1, y1, z1 = x0 + size.x, y0 + size.y, z0 + size.z
        if size.x * size.y * size.z * self._voxel_bytes > MAX_IO_BYTES:
            check_box(box, self.num_channels, self.dtype)
        if lx <= x0 < x1 <= ux and ly <= y0 < y1 <= uy and lz <= z0 < z1 <= uz:
            return self._read(view, (x0, y0, z0), (x1, y1, z1))
        out = zeros(size, self.num_channels, self.dtype)
        lo = (max(x0, lx), max(y0, ly), max(z0, lz))
        hi = (min(x1, ux), min(y1, uy), min(z1, uz))
        if any(b <= a for a, b in zip(lo, hi, strict=True)):
            return out
        data = self._read(view, lo, hi)
        o = (lo[0] - x0, lo[1] - y0, lo[2] - z0)
        s = data.shape
        out[:, o[0] : o[0] + s[1], o[1] : o[1] + s[2], o[2] : o[2] + s[3]] = data
        return out

    def _read(
        self, view: ts.TensorStore, lo: tuple[int, ...], hi: tuple[int, ...]
    ) -> np.ndarray:
        try:
            result: np.ndarray = (
                view[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
                .read(order="F")
                .result()
            )
        except ValueError as e:
            raise translate_error(e, self._where, self._mag_dir) from None
        return result

    def write(self, offset: Vec3, data: np.ndarray) -> None:
        """Store `data` at `offset`; grows the array's shape when needed."""
        if not self._writable:
            raise FormatError(f"{self._where}: array is opened read-only")
        if self._closed:
            raise FormatError(f"{self._where}: array is closed")
        data = as_cxyz(data, self.num_channels, self.dtype, self._where)
        start = check_offset(offset, self._where)
        end = start + Vec3(*data.shape[1:])
        check_box(BoundingBox(start, end - start), self.num_channels, self.dtype)
        if any(e > u for e, u in zip(end, self._state[2], strict=True)):
            self._grow(end)
        view = self._state[0]
        c0 = self._channel_lo
        target = view[
            c0 : c0 + self.num_channels,
            start.x : end.x,
            start.y : end.y,
            start.z : end.z,
        ]
        try:
            target.write(data).result()
        except ValueError as e:
            raise translate_error(e, self._where, self._mag_dir) from None

    def _grow(self, end: Vec3) -> None:
        with self._resize_lock:
            upper = self._state[2]
            if all(e <= u for e, u in zip(end, upper, strict=True)):
                return
            new_max: list[int | None] = [None] * self._base.rank
            for axis, dim in enumerate(
                (self._layout.x, self._layout.y, self._layout.z)
            ):
                new_max[dim] = max(end[axis], upper[axis])
            try:
                resized = self._base.resize(
                    exclusive_max=new_max, expand_only=True
                ).result()
            except ValueError as e:
                raise FormatError(
                    f"{self._where}: cannot grow the array to {end}: "
                    f"{translate_error(e, self._where, self._mag_dir)}"
                ) from None
            self._set_base(resized)

    def close(self) -> None:
        """Forget the handle; reads already running finish on their own reference."""
        self._closed = True

    def info(self, *, record_axis_order: bool = True) -> ArrayInfo:
        """What `infer_layer` records about this array."""
        return ArrayInfo(
            dtype=self.dtype,
            num_channels=self.num_channels,
            shape=self.shape,
            chunk_shape=self.chunk_shape,
            axis_order=self._layout.as_axis_order() if record_axis_order else None,
        )

    def stored_box(self) -> BoundingBox | None:
        """Chunk-aligned box of the stored chunks (bisecting storage statistics)."""
        return stored_box(self._view, self.chunk_shape)


def open_array(
    driver: str,
    path: Path,
    *,
    axis_order: Mapping[str, int] | None,
    where: str,
    writable: bool,
    extra_spec: Mapping[str, Any] | None = None,
    kvstore_path: Path | None = None,
) -> TensorStoreArray:
    """Open the `driver` array at `path` as a `(c, x, y, z)` TensorStoreArray."""
    spec: dict[str, Any] = {
        "driver": driver,
        "kvstore": file_kvstore(kvstore_path or path),
        **(extra_spec or {}),
    }
    base = open_store(spec, where=where, mag_dir=path, writable=writable)
    layout = axis_layout(base.rank, base.domain.labels, axis_order, where)
    return TensorStoreArray(base, layout, where=where, mag_dir=path, writable=writable)


def probe_array(
    driver: str,
    path: Path,
    *,
    where: str,
    axis_order: Mapping[str, int] | None = None,
    record_axis_order: bool = True,
    **kwargs: Any,
) -> ArrayInfo:
    """ArrayInfo of the `driver` array at `path` (keyword arguments as `open_array`)."""
    array = open_array(
        driver, path, axis_order=axis_order, where=where, writable=False, **kwargs
    )
    return array.info(record_axis_order=record_axis_order)


def stored_box_of(
    driver: str,
    path: Path,
    *,
    where: str,
    axis_order: Mapping[str, int] | None = None,
    **kwargs: Any,
) -> BoundingBox | None:
    """Box of the chunks stored in the `driver` array at `path`."""
    array = open_array(
        driver, path, axis_order=axis_order, where=where, writable=False, **kwargs
    )
    return array.stored_box()


def create_array(
    driver: str,
    path: Path,
    metadata: dict[str, Any],
    *,
    metadata_file: str,
    dtype: np.dtype[Any],
    num_channels: int,
    where: str,
) -> TensorStoreArray:
    """Create a `(c, x, y, z)` array, or open an existing one of the same dtype and
    channels (so a retried task can write again)."""
    layout = AxisLayout(c=0, x=1, y=2, z=3, extras=())
    if (path / metadata_file).exists():
        array = open_array(driver, path, axis_order=None, where=where, writable=True)
        if array.dtype != dtype or array.num_channels != num_channels:
            raise FormatError(
                f"{where}: an array of {array.num_channels} x {array.dtype.name} "
                f"exists there, not {num_channels} x {dtype.name}"
            )
        return array
    path.mkdir(parents=True, exist_ok=True)
    spec = {"driver": driver, "kvstore": file_kvstore(path), "metadata": metadata}
    base = open_store(spec, where=where, mag_dir=path, writable=True, create=True)
    return TensorStoreArray(base, layout, where=where, mag_dir=path, writable=True)


def check_chunking(chunk_shape: int, shard_shape: int, where: str) -> None:
    if chunk_shape < 1 or shard_shape < 1:
        raise FormatError(f"{where}: chunk_shape and shard_shape must be >= 1")
    if shard_shape % chunk_shape:
        raise FormatError(f"{where}: shard_shape must be a multiple of chunk_shape")
