"""The one interface every input reader offers, and what they share.

A `Source` is one volume: `bounding_box` (mag-1 voxels), `dtype`, `channels`, and
`read(box)` returning `(channels, x, y, z)` for any sub-box, zeros outside the data.
Readers stream: they touch only the files, pages or chunks a box needs and never
hold the whole volume unless it is small. `spec` is a JSON-able description that
`open_source` turns into the same reader again in another process.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from shared.conversions.errors import ConversionInputError
from shared.datasource import Category, VoxelSize
from shared.formats.base import SUPPORTED_DTYPES
from shared.geometry import BoundingBox, Vec3
from shared.protocol import NAME_PATTERN

_NAME = re.compile(NAME_PATTERN)
_DIGITS = re.compile(r"(\d+)")
_SEGMENTATION_WORDS = ("seg", "label")
# A volume at most this big may be read whole (metadata probing, small inputs).
SMALL_BYTES = 64 << 20


@dataclass(frozen=True, slots=True)
class SourceHints:
    """What the user says about the input; everything optional.

    `dtype` and `shape` (x, y, z[, c]) describe raw files, which carry no header;
    `order` is their layout: `F` (x fastest, as WEBKNOSSOS and most raw exports) or
    `C` (z fastest). `header_bytes` skips a header at the start of a raw file.
    """

    dtype: str | None = None
    shape: tuple[int, ...] | None = None
    order: str = "F"
    header_bytes: int = 0
    layer_name: str | None = None
    category: Category | None = None


@runtime_checkable
class Source(Protocol):
    """One input volume, read box by box."""

    name: str
    """A layer name suggested by the input (file or folder name, layer name)."""
    dtype: np.dtype[Any]
    channels: int
    bounding_box: BoundingBox
    """Where the data lies, in mag-1 voxels."""
    voxel_size: VoxelSize | None
    """The voxel size the input declares, if any."""
    category: Category | None
    """The category the input's metadata declares, if any."""
    spec: Mapping[str, Any]
    """JSON-able; `open_source(spec)` opens the same reader again."""

    @property
    def shape(self) -> tuple[int, ...]:
        """(x, y, z), or (x, y, z, c) for several channels."""
        ...

    def read(self, box: BoundingBox) -> np.ndarray:
        """`(channels, x, y, z)` voxels of `box` (mag-1 coordinates)."""
        ...

    def close(self) -> None: ...


class BaseSource:
    """Clipping and zero-filling around a reader's `_read` of boxes inside the data."""

    def __init__(
        self,
        *,
        name: str,
        dtype: np.dtype[Any],
        channels: int,
        bounding_box: BoundingBox,
        spec: Mapping[str, Any],
        voxel_size: VoxelSize | None = None,
        category: Category | None = None,
    ) -> None:
        self.name = name
        self.dtype = dtype
        self.channels = channels
        self.bounding_box = bounding_box
        self.spec = spec
        self.voxel_size = voxel_size
        self.category = category

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name}, {self.shape}, {self.dtype.name})"

    @property
    def shape(self) -> tuple[int, ...]:
        size = self.bounding_box.size.to_tuple()
        return size if self.channels == 1 else (*size, self.channels)

    def read(self, box: BoundingBox) -> np.ndarray:
        inner = box.intersection(self.bounding_box)
        if inner == box:
            return self._read(box)
        out = np.zeros((self.channels, *box.size), dtype=self.dtype, order="F")
        if inner.is_empty():
            return out
        at = inner.topleft - box.topleft
        end = at + inner.size
        out[:, at.x : end.x, at.y : end.y, at.z : end.z] = self._read(inner)
        return out

    def _read(self, box: BoundingBox) -> np.ndarray:
        """Voxels of `box`, which lies inside `bounding_box`."""
        raise NotImplementedError

    def close(self) -> None:
        """Release file handles (reopened on the next read where possible)."""


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting `slice_2` before `slice_10`."""
    return tuple(
        (0, int(part), part) if part.isdigit() else (1, 0, part.lower())
        for part in _DIGITS.split(name)
    )


def natural_sorted(names: Sequence[str]) -> list[str]:
    return sorted(names, key=natural_key)


def layer_name_from(text: str, fallback: str = "color") -> str:
    """A valid layer name from a file or folder name (`my stack.tif` -> `my_stack`)."""
    stem = text
    for suffix in (".ome.tiff", ".ome.tif", ".nii.gz"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    else:
        stem = Path(stem).stem if "." in stem.strip(".") else stem
    cleaned = re.sub(r"[^A-Za-z0-9_.-]+", "_", stem).strip("._-")[:120]
    return cleaned if cleaned and _NAME.fullmatch(cleaned) else fallback


def looks_like_segmentation(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in _SEGMENTATION_WORDS)


def check_voxel_dtype(dtype: Any, where: str) -> np.dtype[Any]:
    """The native-order dtype of one channel, or ConversionInputError naming `where`."""
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise ConversionInputError(f"{where}: unknown data type {dtype!r}") from None
    if dt == np.dtype(bool):
        return np.dtype(np.uint8)
    native: np.dtype[Any] = (
        dt.newbyteorder("=") if dt.byteorder not in ("=", "|") else dt
    )
    if native not in SUPPORTED_DTYPES:
        raise ConversionInputError(
            f"{where}: data type {dt.name} cannot be converted (supported: "
            "uint8/16/32/64, int8/16/32/64, float32, float64)"
        )
    return native


def as_native(data: np.ndarray, dtype: np.dtype[Any]) -> np.ndarray:
    """`data` in native byte order and `dtype` (bool -> uint8)."""
    if data.dtype != dtype:
        return data.astype(dtype)
    return data


def box_of(size: Sequence[int], topleft: Vec3 | None = None) -> BoundingBox:
    return BoundingBox(topleft or Vec3(0, 0, 0), Vec3(*(int(v) for v in size)))


def check_extent(size: Sequence[int], where: str) -> None:
    if len(size) != 3 or any(int(v) < 1 for v in size):
        raise ConversionInputError(f"{where}: the volume is empty ({tuple(size)})")
    if any(int(v) >= 1 << 31 for v in size):
        raise ConversionInputError(f"{where}: the volume is too large ({size})")
