"""Raw voxel files: no header, so the data type and shape must be given.

`shape` is (x, y, z) or (x, y, z, c). Layout `F` (the default) stores x fastest with
channels interleaved (c, x, y, z in Fortran order: z slices of y rows of x, as
WEBKNOSSOS, ImageJ and most raw exports write); layout `C` stores z fastest
(a C-ordered (x, y, z, c) array). The file must hold exactly `header_bytes` plus
the voxels, else the conversion is refused with both sizes. Boxes are read with
`pread` of the rows they need.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources.base import (
    BaseSource,
    SourceHints,
    check_extent,
    check_voxel_dtype,
    layer_name_from,
)
from shared.geometry import BoundingBox

KIND = "raw"
RAW_SUFFIXES = frozenset({".raw", ".bin", ".dat", ".img"})


def raw_spec(path: Path, hints: SourceHints, label: str) -> dict[str, Any]:
    if hints.dtype is None or hints.shape is None:
        raise ConversionInputError(
            f"{label}: a raw file needs its data type and shape "
            "(--dtype and --shape x,y,z[,c])"
        )
    return {
        "kind": KIND,
        "path": str(path),
        "dtype": hints.dtype,
        "shape": list(hints.shape),
        "order": hints.order,
        "header_bytes": hints.header_bytes,
        "label": label,
    }


class RawSource(BaseSource):
    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._path = Path(spec["path"])
        self._where = str(spec.get("label") or self._path.name)
        self._lock = threading.Lock()
        try:
            stored = np.dtype(spec["dtype"])
        except TypeError:
            raise ConversionInputError(
                f"{self._where}: unknown data type {spec['dtype']!r}"
            ) from None
        dtype = check_voxel_dtype(stored, self._where)
        shape = [int(v) for v in spec["shape"]]
        if len(shape) not in (3, 4):
            raise ConversionInputError(
                f"{self._where}: shape must be x,y,z or x,y,z,c, got {shape}"
            )
        channels = shape[3] if len(shape) == 4 else 1
        if channels < 1:
            raise ConversionInputError(f"{self._where}: shape {shape} is empty")
        check_extent(shape[:3], self._where)
        self._order = str(spec.get("order", "F")).upper()
        if self._order not in ("F", "C"):
            raise ConversionInputError(
                f"{self._where}: layout must be F or C, got {self._order}"
            )
        self._offset = int(spec.get("header_bytes", 0))
        if self._offset < 0:
            raise ConversionInputError(f"{self._where}: header_bytes must be >= 0")
        self._stored = stored
        expected = self._offset + int(np.prod(shape)) * stored.itemsize
        try:
            actual = self._path.stat().st_size
        except FileNotFoundError:
            raise ConversionInputError(f"{self._where}: file not found") from None
        if actual != expected:
            raise ConversionInputError(
                f"{self._where}: the file has {actual} bytes, but {stored.name} "
                f"x {'x'.join(map(str, shape))}"
                + (f" after a {self._offset}-byte header" if self._offset else "")
                + f" needs exactly {expected}"
            )
        super().__init__(
            name=str(spec.get("name") or layer_name_from(self._where)),
            dtype=dtype,
            channels=channels,
            bounding_box=BoundingBox.of((0, 0, 0), shape[:3]),
            spec=dict(spec),
        )

    def _pread(self, fd: int, start: int, count: int) -> np.ndarray:
        length = count * self._stored.itemsize
        raw = os.pread(fd, length, self._offset + start * self._stored.itemsize)
        if len(raw) != length:
            raise ConversionInputError(f"{self._where}: the file is truncated")
        return np.frombuffer(raw, dtype=self._stored)

    def _read(self, box: BoundingBox) -> np.ndarray:
        sx, sy, sz = self.bounding_box.size
        c = self.channels
        x0, y0, z0 = box.topleft
        x1, y1, z1 = box.end
        out = np.empty((c, *box.size), dtype=self.dtype, order="F")
        with self._lock, self._path.open("rb", buffering=0) as f:
            fd = f.fileno()
            if self._order == "F":
                # One read per z slice: the rows y0:y1, cropped to x0:x1 after.
                row = c * sx
                for z in range(z0, z1):
                    start = (z * sy + y0) * row
                    rows = self._pread(fd, start, (y1 - y0) * row)
                    plane = rows.reshape((c, sx, y1 - y0), order="F")
                    out[:, :, :, z - z0] = plane[:, x0:x1, :]
            else:
                # z fastest: one read per x column, holding y0:y1 full z runs.
                column = sy * sz * c
                for x in range(x0, x1):
                    start = x * column + y0 * sz * c
                    part = self._pread(fd, start, (y1 - y0) * sz * c)
                    block = part.reshape((y1 - y0, sz, c))[:, z0:z1, :]
                    out[:, x - x0, :, :] = block.transpose(2, 0, 1)
        return out


def open_raw(spec: Mapping[str, Any]) -> RawSource:
    return RawSource(spec)
