"""The shapes every format backend shares: the array protocol, probe results, helpers.

Conventions for all backends:

- Coordinates are voxels of the array's own mag; boxes are `shared.geometry`
  half-open boxes.
- `read` returns `(num_channels, sx, sy, sz)`, preferably Fortran-ordered, so
  `data.tobytes(order="F")` (x fastest, channels interleaved, the WEBKNOSSOS wire
  layout) is a plain copy.
- Anything outside the stored data reads as 0, including negative coordinates.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from shared.datasource import (
    Category,
    DataFormat,
    LayerProperties,
    MagProperties,
    VoxelSize,
)
from shared.formats.errors import CorruptData, FormatError, UnsupportedData
from shared.geometry import BoundingBox, Mag, Vec3

# The voxel types WEBKNOSSOS knows; everything else (bool, float16, complex, strings)
# is refused before any chunk is decoded.
SUPPORTED_DTYPES: frozenset[np.dtype[Any]] = frozenset(
    np.dtype(name)
    for name in ("u1", "u2", "u4", "u8", "i1", "i2", "i4", "i8", "f4", "f8")
)
# One read or write may not exceed this many bytes: a bound on memory per request.
MAX_IO_BYTES = 4 << 30


@runtime_checkable
class VoxelArray(Protocol):
    """One mag of one layer, opened for reading (and maybe writing).

    Implementations are thread-safe for concurrent reads. `close` may be called while
    reads run in other threads; the handle is released after the last one.
    """

    dtype: np.dtype[Any]
    """The numpy dtype of one channel."""
    num_channels: int
    chunk_shape: Vec3
    """The natural read granularity (WKW block, zarr (inner) chunk)."""
    shape: Vec3 | None
    """The extent in this mag's voxels where the format declares one (None for WKW)."""

    def read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of `box` (this mag's coordinates) as `(channels, sx, sy, sz)`."""
        ...

    def write(self, offset: Vec3, data: np.ndarray) -> None:
        """Store `data` (`(c, x, y, z)` or `(x, y, z)`), first voxel at `offset`."""
        ...

    def close(self) -> None:
        """Release file handles; later reads raise FormatError."""
        ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


@dataclass(frozen=True, slots=True)
class ArrayInfo:
    """What a format's metadata says about one mag folder (for inference)."""

    dtype: np.dtype[Any]
    num_channels: int
    shape: Vec3 | None
    chunk_shape: Vec3
    axis_order: Mapping[str, int] | None = None
    """The axis order to record in the datasource, None for the format's default."""


@dataclass(frozen=True, slots=True)
class FoundMag:
    """A mag found on disk: `path` relative to the layer folder."""

    mag: Mag
    path: str
    info: ArrayInfo
    stored_box: BoundingBox | None = None
    """Box of the stored data in this mag's voxels, if the metadata declares it."""


@dataclass(frozen=True, slots=True)
class LayerScan:
    """A layer described by layer-level metadata (OME-Zarr multiscales, `info`)."""

    data_format: DataFormat
    mags: tuple[FoundMag, ...]
    category: Category | None = None
    voxel_size: VoxelSize | None = None
    bounding_box: BoundingBox | None = None
    """Mag-1 box declared by the metadata, if any."""
    notes: tuple[str, ...] = field(default=())


class FormatBackend(Protocol):
    """What each format module provides; `shared.formats.registry` maps formats to it.

    Backends are modules, so each function below is a module-level function.
    """

    @property
    def DATA_FORMAT(self) -> DataFormat: ...

    def open(
        self,
        path: Path,
        mag: MagProperties,
        layer: LayerProperties,
        writable: bool,
    ) -> VoxelArray: ...

    def create(
        self,
        path: Path,
        dtype: np.dtype[Any],
        num_channels: int,
        *,
        chunk_shape: int,
        shard_shape: int,
        compress: bool,
        shape: Vec3 | None,
    ) -> VoxelArray: ...

    def detect(self, path: Path) -> bool: ...

    def probe(
        self, path: Path, axis_order: Mapping[str, int] | None = None
    ) -> ArrayInfo: ...

    def stored_box(
        self, path: Path, axis_order: Mapping[str, int] | None = None
    ) -> BoundingBox | None: ...

    def scan_layer(self, layer_dir: Path) -> LayerScan | None: ...


def describe(path: Path) -> str:
    """A short, server-path-free name for a mag folder: its last two components."""
    parts = path.parts[-2:]
    return "/".join(parts) if parts else str(path)


def check_dtype(dtype: Any, where: str) -> np.dtype[Any]:
    """The native-order numpy dtype, or UnsupportedData naming `where`."""
    if dtype is None:  # np.dtype(None) would silently be float64
        raise UnsupportedData(f"{where}: no data type given")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise UnsupportedData(f"{where}: unknown data type {dtype!r}") from None
    native: np.dtype[Any] = (
        dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    )
    if native not in SUPPORTED_DTYPES:
        raise UnsupportedData(f"{where}: data type {dt.name} is not supported")
    return native


def check_box(box: BoundingBox, num_channels: int, dtype: np.dtype[Any]) -> None:
    nbytes = box.volume() * num_channels * dtype.itemsize
    if nbytes > MAX_IO_BYTES:
        raise FormatError(
            f"box {box} holds {nbytes} bytes, more than the limit of "
            f"{MAX_IO_BYTES} bytes per read or write"
        )


def zeros(box_size: Vec3, num_channels: int, dtype: np.dtype[Any]) -> np.ndarray:
    return np.zeros((num_channels, *box_size), dtype=dtype, order="F")


def as_cxyz(
    data: np.ndarray, num_channels: int, dtype: np.dtype[Any], where: str
) -> np.ndarray:
    """Validate write data and return it as `(c, x, y, z)`."""
    if not isinstance(data, np.ndarray):
        raise FormatError(f"{where}: data must be a numpy array, got {type(data)}")
    if data.ndim == 3:
        data = data[np.newaxis]
    if data.ndim != 4:
        raise FormatError(
            f"{where}: data must have shape (c, x, y, z) or (x, y, z), got {data.shape}"
        )
    if data.shape[0] != num_channels:
        raise FormatError(
            f"{where}: data has {data.shape[0]} channel(s), the array has "
            f"{num_channels}"
        )
    if data.dtype.newbyteorder("=") != dtype.newbyteorder("="):
        raise FormatError(
            f"{where}: data type {data.dtype.name} does not match the array's "
            f"{dtype.name}"
        )
    return data


def check_offset(offset: Vec3 | Sequence[int], where: str) -> Vec3:
    vec = Vec3.of(offset)
    if any(v < 0 for v in vec):
        raise FormatError(f"{where}: cannot write at negative offset {vec}")
    return vec


def clip(box: BoundingBox, lower: Vec3, upper: Vec3) -> BoundingBox:
    """`box` clipped to `[lower, upper)`, empty (at a valid corner) if disjoint."""
    start = box.topleft.pairmax(lower)
    end = box.end.pairmin(upper)
    return BoundingBox.from_corners(start, end.pairmax(start))


# Metadata files (zarr.json, .zattrs, info) larger than this are refused unread.
MAX_METADATA_BYTES = 16 << 20


def read_json(path: Path, where: str) -> Any:
    """Parse a small JSON metadata file; CorruptData if it is not JSON or too big."""
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_METADATA_BYTES + 1)
    except FileNotFoundError:
        raise
    except OSError as e:
        raise FormatError(f"{where}: cannot read {path.name} ({e.strerror})") from None
    if len(raw) > MAX_METADATA_BYTES:
        raise UnsupportedData(f"{where}: {path.name} is larger than 16 MiB")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise CorruptData(f"{where}: corrupt metadata {path.name} (not JSON)") from None
