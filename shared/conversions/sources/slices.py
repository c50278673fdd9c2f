"""Stacks of 2D slices: a folder or a zip archive of TIFF, PNG, JPEG or BMP images.

Slices are sorted naturally by name (`2.png` before `10.png`) and become z = 0, 1,
...; every slice must have the size, data type and channels of the first, else the
first odd slice is named. Images with alpha (`LA`, `RGBA`) lose the alpha channel;
palette images keep their indices; CMYK and YCbCr JPEGs become RGB. Uncompressed
TIFF slices in a folder are read row range by row range; everything else is
decoded one slice at a time. Archive members are read in memory, never extracted.
"""

from __future__ import annotations

import io
import logging
import threading
import zipfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import IO, Any

import numpy as np
import tifffile
from PIL import Image, UnidentifiedImageError

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources.base import (
    BaseSource,
    check_extent,
    check_voxel_dtype,
    layer_name_from,
    natural_sorted,
)
from shared.conversions.sources.tiff import ContiguousPages
from shared.geometry import BoundingBox

logger = logging.getLogger(__name__)

KIND = "slices"
TIFF_SUFFIXES = frozenset({".tif", ".tiff"})
IMAGE_SUFFIXES = TIFF_SUFFIXES | {".png", ".jpg", ".jpeg", ".bmp"}
# (numpy dtype, channels after dropping alpha) of the PIL modes we take.
_MODES: dict[str, tuple[str, int]] = {
    "1": ("u1", 1),
    "L": ("u1", 1),
    "P": ("u1", 1),
    "LA": ("u1", 1),
    "RGB": ("u1", 3),
    "RGBA": ("u1", 3),
    "CMYK": ("u1", 3),
    "YCbCr": ("u1", 3),
    "I;16": ("u2", 1),
    "I;16L": ("u2", 1),
    "I;16B": ("u2", 1),
    "I;16N": ("u2", 1),
    "I": ("i4", 1),
    "F": ("f4", 1),
}
_TO_RGB = frozenset({"CMYK", "YCbCr"})
_MAX_ARCHIVE_MEMBER = 4 << 30


def is_image_name(name: str) -> bool:
    path = PurePosixPath(name)
    return (
        path.suffix.lower() in IMAGE_SUFFIXES
        and not any(part.startswith(".") for part in path.parts)
        and "__MACOSX" not in path.parts
    )


def _pil_array(image: Image.Image) -> np.ndarray:
    """A decoded PIL image as (y, x, channels), alpha dropped."""
    mode = image.mode
    if mode in _TO_RGB:
        image = image.convert("RGB")
    data = np.asarray(image)
    if data.dtype == bool:
        data = data.astype(np.uint8)
    if mode in ("LA", "RGBA"):
        data = data[..., :-1]
    if data.ndim == 2:
        data = data[:, :, np.newaxis]
    return data


class SliceSource(BaseSource):
    """Slices listed in `spec["files"]` (relative to a folder or inside a zip)."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._path = Path(spec["path"])
        self._archive = bool(spec.get("archive"))
        self._files: list[str] = list(spec["files"])
        self._label = str(spec.get("label") or self._path.name)
        self._lock = threading.Lock()
        self._zip: zipfile.ZipFile | None = None
        self._rows: dict[str, ContiguousPages | None] = {}
        if not self._files:
            raise ConversionInputError(f"{self._label}: no image slices found")
        if "width" in spec:
            width, height = int(spec["width"]), int(spec["height"])
            dtype = np.dtype(spec["dtype"])
            channels = int(spec["channels"])
        else:
            width, height, dtype, channels = self._check_all()
            spec = {
                **spec,
                "width": width,
                "height": height,
                "dtype": dtype.str,
                "channels": channels,
            }
        size = (width, height, len(self._files))
        check_extent(size, self._label)
        super().__init__(
            name=str(spec.get("name") or layer_name_from(self._path.name)),
            dtype=dtype,
            channels=channels,
            bounding_box=BoundingBox.of((0, 0, 0), size),
            spec=dict(spec),
        )

    # -- probing -----------------------------------------------------------------

    def _where(self, name: str) -> str:
        return f"{self._label}/{name}"

    @contextmanager
    def _open_file(self, name: str) -> Iterator[IO[bytes]]:
        if self._archive:
            archive = self._archive_handle()
            try:
                info = archive.getinfo(name)
            except KeyError:
                raise ConversionInputError(
                    f"{self._where(name)}: missing from the archive"
                ) from None
            if info.file_size > _MAX_ARCHIVE_MEMBER:
                raise ConversionInputError(
                    f"{self._where(name)}: slice is larger than 4 GiB"
                )
            try:
                data = archive.read(info)
            except (zipfile.BadZipFile, EOFError, ValueError) as e:
                raise ConversionInputError(
                    f"{self._where(name)}: cannot be read from the archive ({e})"
                ) from None
            yield io.BytesIO(data)
            return
        try:
            f = (self._path / name).open("rb")
        except FileNotFoundError:
            raise ConversionInputError(f"{self._where(name)}: file not found") from None
        with f:
            yield f

    def _archive_handle(self) -> zipfile.ZipFile:
        if self._zip is None:
            try:
                self._zip = zipfile.ZipFile(self._path)
            except (zipfile.BadZipFile, OSError) as e:
                raise ConversionInputError(
                    f"{self._label}: not a readable zip archive ({e})"
                ) from None
        return self._zip

    def _probe(self, name: str) -> tuple[int, int, np.dtype[Any], int]:
        """(width, height, dtype, channels) from the slice's header."""
        where = self._where(name)
        with self._open_file(name) as f:
            if PurePosixPath(name).suffix.lower() in TIFF_SUFFIXES:
                try:
                    with tifffile.TiffFile(f) as tif:
                        series = tif.series[0]
                        if len(tif.pages) != 1:
                            raise ConversionInputError(
                                f"{where}: has {len(tif.pages)} pages; a slice must "
                                "be a single 2D image"
                            )
                        shape, axes, dtype = series.shape, series.axes, series.dtype
                except ConversionInputError:
                    raise
                except Exception as e:
                    raise ConversionInputError(
                        f"{where}: not a readable TIFF file ({e})"
                    ) from None
                if axes not in ("YX", "YXS"):
                    raise ConversionInputError(
                        f"{where}: unsupported TIFF slice layout (axes {axes})"
                    )
                channels = shape[2] if axes == "YXS" else 1
                return shape[1], shape[0], check_voxel_dtype(dtype, where), channels
            try:
                with Image.open(f) as image:
                    mode, (width, height) = image.mode, image.size
            except (UnidentifiedImageError, Image.DecompressionBombError) as e:
                raise ConversionInputError(
                    f"{where}: not a readable image ({e})"
                ) from None
            if mode not in _MODES:
                raise ConversionInputError(
                    f"{where}: image mode {mode} is not supported"
                )
            dtype_name, channels = _MODES[mode]
            return width, height, np.dtype(dtype_name), channels

    def _check_all(self) -> tuple[int, int, np.dtype[Any], int]:
        first_name = self._files[0]
        first = self._probe(first_name)
        for name in self._files[1:]:
            found = self._probe(name)
            if found != first:
                raise ConversionInputError(
                    f"{self._where(name)}: {_describe(found)}, but the first slice "
                    f"{first_name} is {_describe(first)}; all slices must match"
                )
        return first

    # -- reading -----------------------------------------------------------------

    def _contiguous(self, name: str) -> ContiguousPages | None:
        if self._archive or PurePosixPath(name).suffix.lower() not in TIFF_SUFFIXES:
            return None
        if name not in self._rows:
            path = self._path / name
            try:
                with tifffile.TiffFile(path) as tif:
                    series = tif.series[0]
                    offset = series.dataoffset
                    pages = (
                        ContiguousPages(
                            path,
                            int(offset),
                            tuple(series.shape),
                            np.dtype(series.dtype).newbyteorder(tif.byteorder),
                        )
                        if offset is not None
                        else None
                    )
            except FileNotFoundError:
                raise ConversionInputError(
                    f"{self._where(name)}: file not found"
                ) from None
            except Exception as e:
                raise ConversionInputError(
                    f"{self._where(name)}: not a readable TIFF file ({e})"
                ) from None
            if len(self._rows) > 4096:
                self._rows.clear()
            self._rows[name] = pages
        return self._rows[name]

    def _decode(self, name: str) -> np.ndarray:
        where = self._where(name)
        with self._open_file(name) as f:
            try:
                if PurePosixPath(name).suffix.lower() in TIFF_SUFFIXES:
                    data: np.ndarray = tifffile.imread(f, key=0)
                    if data.ndim == 2:
                        data = data[:, :, np.newaxis]
                else:
                    with Image.open(f) as image:
                        data = _pil_array(image)
            except (MemoryError, PermissionError):
                raise
            except Exception as e:
                raise ConversionInputError(
                    f"{where}: cannot be decoded ({e})"
                ) from None
        expected = (self.bounding_box.size.y, self.bounding_box.size.x, self.channels)
        if data.shape != expected:
            raise ConversionInputError(
                f"{where}: decodes to shape {data.shape}, expected {expected}"
            )
        return data

    def _read(self, box: BoundingBox) -> np.ndarray:
        x0, y0, z0 = box.topleft
        x1, y1, z1 = box.end
        out = np.empty((self.channels, *box.size), dtype=self.dtype, order="F")
        with self._lock:
            for z in range(z0, z1):
                name = self._files[z]
                rows = self._contiguous(name)
                if rows is not None:
                    yxc = rows.read(0, y0, y1)[:, x0:x1]
                else:
                    yxc = self._decode(name)[y0:y1, x0:x1]
                out[:, :, :, z - z0] = yxc.transpose(2, 1, 0)
        return out

    def close(self) -> None:
        with self._lock:
            if self._zip is not None:
                self._zip.close()
                self._zip = None
            self._rows.clear()


def _describe(found: tuple[int, int, np.dtype[Any], int]) -> str:
    width, height, dtype, channels = found
    plural = "s" if channels != 1 else ""
    return f"{width}x{height} {dtype.name} with {channels} channel{plural}"


def list_folder_slices(folder: Path) -> list[str]:
    names = [
        entry.name
        for entry in folder.iterdir()
        if entry.is_file() and is_image_name(entry.name)
    ]
    return natural_sorted(names)


def archive_groups(path: Path, label: str) -> dict[str, list[str]]:
    """Image members of a zip archive grouped by folder, each naturally sorted."""
    try:
        with zipfile.ZipFile(path) as archive:
            names = [
                info.filename
                for info in archive.infolist()
                if not info.is_dir() and is_image_name(info.filename)
            ]
    except (zipfile.BadZipFile, OSError) as e:
        raise ConversionInputError(
            f"{label}: not a readable zip archive ({e})"
        ) from None
    groups: dict[str, list[str]] = {}
    for name in natural_sorted(names):
        groups.setdefault(str(PurePosixPath(name).parent), []).append(name)
    return groups


def open_slices(spec: Mapping[str, Any]) -> SliceSource:
    return SliceSource(spec)


def slice_spec(
    path: Path,
    files: Sequence[str],
    *,
    archive: bool,
    label: str,
    name: str,
) -> dict[str, Any]:
    return {
        "kind": KIND,
        "path": str(path),
        "archive": archive,
        "files": list(files),
        "label": label,
        "name": name,
    }
