"""Single- and multi-page TIFF and OME-TIFF files, through tifffile.

The first series is converted. Its axes are mapped as: `Z`, `I`, `Q` (page
sequence) -> z; `C` and `S` (samples) -> channels; `Y`, `X`. Other axes (time...)
must have size 1. Uncompressed, contiguous pages are read row range by row range
(`pread`); otherwise pages are decoded one by one and cropped, so memory stays at a
few pages.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import tifffile

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources.base import (
    BaseSource,
    check_extent,
    check_voxel_dtype,
    layer_name_from,
)
from shared.datasource import VoxelSize
from shared.datasource._model import canonical_unit
from shared.geometry import BoundingBox

logger = logging.getLogger(__name__)

KIND = "tiff"
_Z_AXES = "ZIQ"
_PIXELS = re.compile(r"<(?:\w+:)?Pixels\b[^>]*>")
_ATTRIBUTE = r'\b{}="([^"]*)"'
_OBJECT = re.compile(r"<tifffile\.[^>]*>")


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(_OBJECT.sub("", record.getMessage()).strip())


@contextmanager
def tifffile_warnings() -> Iterator[list[str]]:
    """Collect what tifffile logs about a damaged file (instead of printing it)."""
    log = logging.getLogger("tifffile")
    handler = _Collect()
    propagate = log.propagate
    log.addHandler(handler)
    log.propagate = False
    try:
        yield handler.messages
    finally:
        log.removeHandler(handler)
        log.propagate = propagate


def _open(path: Path, where: str) -> tifffile.TiffFile:
    try:
        with tifffile_warnings() as problems:
            tif = tifffile.TiffFile(path)
            empty = not tif.series
        if empty:
            tif.close()
            why = "; ".join(problems[:2]) or "no image found"
            raise ConversionInputError(f"{where}: not a readable TIFF file ({why})")
        return tif
    except ConversionInputError:
        raise
    except FileNotFoundError:
        raise ConversionInputError(f"{where}: file not found") from None
    except Exception as e:  # tifffile raises many kinds for damaged files
        raise ConversionInputError(f"{where}: not a readable TIFF file ({e})") from None


def _ome_voxel_size(tif: tifffile.TiffFile) -> VoxelSize | None:
    text = tif.ome_metadata if tif.is_ome else None
    match = _PIXELS.search(text or "")
    if not match:
        return None
    tag = match.group(0)
    sizes: list[float] = []
    units: set[str] = set()
    for axis in "XYZ":
        value = re.search(_ATTRIBUTE.format(f"PhysicalSize{axis}"), tag)
        if value is None:
            return None
        try:
            sizes.append(float(value.group(1)))
        except ValueError:
            return None
        unit = re.search(_ATTRIBUTE.format(f"PhysicalSize{axis}Unit"), tag)
        units.add(canonical_unit(unit.group(1) if unit else "µm") or "")
    if len(units) != 1 or "" in units:
        return None
    try:
        return VoxelSize((sizes[0], sizes[1], sizes[2]), units.pop())
    except ValueError:
        return None


class ContiguousPages:
    """Uncompressed pages stored one after another: rows are read with `pread`.

    Unlike a memory map, nothing stays mapped after a read, so a process converting
    a large file keeps only the rows it works on in memory.
    """

    def __init__(
        self,
        path: Path,
        offset: int,
        page_shape: tuple[int, ...],
        dtype: np.dtype[Any],
    ) -> None:
        self.path = path
        self.offset = offset
        self.page_shape = page_shape  # (y, x) or (y, x, samples)
        self.dtype = dtype
        self.row_bytes = int(np.prod(page_shape[1:])) * dtype.itemsize
        self.page_bytes = self.row_bytes * page_shape[0]

    def read(self, page: int, y0: int, y1: int) -> np.ndarray:
        """Rows `y0:y1` of page `page` as (rows, x, samples)."""
        start = self.offset + page * self.page_bytes + y0 * self.row_bytes
        length = (y1 - y0) * self.row_bytes
        with self.path.open("rb", buffering=0) as f:
            raw = os.pread(f.fileno(), length, start)
        if len(raw) != length:
            raise ConversionInputError(
                f"{self.path.name}: the file is truncated (page {page})"
            )
        rows = np.frombuffer(raw, dtype=self.dtype).reshape(
            (y1 - y0, *self.page_shape[1:])
        )
        return rows if rows.ndim == 3 else rows[:, :, np.newaxis]


class TiffSource(BaseSource):
    """The first series of one TIFF file."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._path = Path(spec["path"])
        self._where = str(spec.get("label") or self._path.name)
        self._lock = threading.Lock()
        tif = _open(self._path, self._where)
        try:
            layout = self._layout(tif)
            voxel_size = _ome_voxel_size(tif)
        except Exception:
            tif.close()
            raise
        self._tif: tifffile.TiffFile | None = tif
        (
            self._leading_shape,
            self._z_dim,
            self._c_dim,
            self._page_axes,
            dtype,
            size,
            channels,
        ) = layout
        self._contiguous: ContiguousPages | None = None
        self._contiguous_checked = False
        super().__init__(
            name=layer_name_from(self._path.name),
            dtype=dtype,
            channels=channels,
            bounding_box=BoundingBox.of((0, 0, 0), size),
            spec=dict(spec),
            voxel_size=voxel_size,
        )

    def _layout(self, tif: tifffile.TiffFile) -> tuple[Any, ...]:
        series = tif.series[0]
        axes: str = series.axes
        shape: tuple[int, ...] = tuple(series.shape)
        page_ndim = len(series.keyframe.shape)
        page_axes = axes[-page_ndim:]
        leading_axes, leading_shape = axes[:-page_ndim], shape[:-page_ndim]
        if "Y" not in page_axes or "X" not in page_axes:
            raise ConversionInputError(
                f"{self._where}: unsupported TIFF layout (axes {axes})"
            )
        extra = set(page_axes) - set("YXS")
        if extra:
            raise ConversionInputError(
                f"{self._where}: unsupported TIFF page axes {page_axes}"
            )
        z_dim = c_dim = None
        for dim, (axis, length) in enumerate(
            zip(leading_axes, leading_shape, strict=True)
        ):
            if axis in _Z_AXES and z_dim is None and length > 1:
                z_dim = dim
            elif axis == "C" and c_dim is None:
                c_dim = dim
            elif length != 1:
                raise ConversionInputError(
                    f"{self._where}: axis {axis} has {length} entries; only z, "
                    f"channels, y and x can be converted (axes {axes})"
                )
        samples = shape[-page_ndim:][page_axes.index("S")] if "S" in page_axes else 1
        if c_dim is not None and samples > 1:
            raise ConversionInputError(
                f"{self._where}: both channels and samples per pixel (axes {axes})"
            )
        channels = leading_shape[c_dim] if c_dim is not None else samples
        page_shape = shape[-page_ndim:]
        size = (
            page_shape[page_axes.index("X")],
            page_shape[page_axes.index("Y")],
            leading_shape[z_dim] if z_dim is not None else 1,
        )
        check_extent(size, self._where)
        dtype = check_voxel_dtype(series.dtype, self._where)
        return leading_shape, z_dim, c_dim, page_axes, dtype, size, channels

    def _file(self) -> tifffile.TiffFile:
        if self._tif is None:
            self._tif = _open(self._path, self._where)
        return self._tif

    def _rows(self) -> ContiguousPages | None:
        if not self._contiguous_checked:
            self._contiguous_checked = True
            series = self._file().series[0]
            if series.dataoffset is not None and self._page_axes in ("YX", "YXS"):
                self._contiguous = ContiguousPages(
                    self._path,
                    int(series.dataoffset),
                    tuple(series.keyframe.shape),
                    np.dtype(series.dtype).newbyteorder(self._file().byteorder),
                )
        return self._contiguous

    def _page_index(self, z: int, c: int) -> tuple[int, ...]:
        index = [0] * len(self._leading_shape)
        if self._z_dim is not None:
            index[self._z_dim] = z
        if self._c_dim is not None:
            index[self._c_dim] = c
        return tuple(index)

    def _to_yxc(self, page: np.ndarray) -> np.ndarray:
        """A page as (y, x, samples)."""
        order = [self._page_axes.index(a) for a in "YX"]
        if "S" in self._page_axes:
            order.append(self._page_axes.index("S"))
            return page.transpose(order)
        return page.transpose(order)[:, :, np.newaxis]

    def _read(self, box: BoundingBox) -> np.ndarray:
        x0, y0, z0 = box.topleft
        x1, y1, z1 = box.end
        out = np.empty((self.channels, *box.size), dtype=self.dtype, order="F")
        leading_channels = self._c_dim is not None
        with self._lock:
            rows = self._rows()
            for z in range(z0, z1):
                for c in range(self.channels if leading_channels else 1):
                    index = self._page_index(z, c)
                    if rows is not None:
                        flat = self._flat(index)
                        yxc = rows.read(flat, y0, y1)[:, x0:x1]
                    else:
                        yxc = self._to_yxc(self._decode(index))[y0:y1, x0:x1]
                    target = out[c : c + 1] if leading_channels else out
                    target[:, :, :, z - z0] = yxc.transpose(2, 1, 0)
        return out

    def _flat(self, index: tuple[int, ...]) -> int:
        return int(np.ravel_multi_index(index, self._leading_shape)) if index else 0

    def _decode(self, index: tuple[int, ...]) -> np.ndarray:
        flat = self._flat(index)
        try:
            page = self._file().series[0].pages[flat]
            if page is None:
                raise ValueError("page missing")
            data: np.ndarray = page.asarray()
        except (MemoryError, PermissionError):
            raise
        except Exception as e:
            raise ConversionInputError(
                f"{self._where}: page {flat} cannot be decoded ({e})"
            ) from None
        if data.ndim != len(self._page_axes):
            data = data.reshape(self._file().series[0].keyframe.shape)
        return data

    def close(self) -> None:
        with self._lock:
            if self._tif is not None:
                self._tif.close()
                self._tif = None
            self._contiguous = None
            self._contiguous_checked = False


def open_tiff(spec: Mapping[str, Any]) -> TiffSource:
    return TiffSource(spec)
