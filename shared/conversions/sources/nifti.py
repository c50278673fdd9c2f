"""NIfTI-1/2 volumes (`.nii`, `.nii.gz`) through nibabel.

NIfTI stores voxels with the first index fastest, and nibabel's array is indexed
`[i, j, k]`: i, j, k become x, y, z unchanged, so the converted layer shows the
voxel grid as stored (no reorientation by the affine). The voxel size is the
header's `pixdim[1:4]` in its spatial unit (mm, µm or m; none if the unit is
unknown). Scaled data (`scl_slope`/`scl_inter`) is converted as scaled, so as
float. RGB24 becomes 3 channels of uint8, RGBA32 loses alpha. A 5-D file
`(x, y, z, 1, c)` gives c channels; time series (4th dimension > 1) are refused.

`.nii` files are memory-mapped by nibabel and read box by box. A `.nii.gz` cannot be
read at random positions, so `prepare` unpacks it once into the conversion's
staging folder and the tasks read that copy.
"""

from __future__ import annotations

import gzip
import logging
import shutil
import threading
import warnings
import zlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources.base import (
    BaseSource,
    check_extent,
    check_voxel_dtype,
    layer_name_from,
)
from shared.datasource import VoxelSize
from shared.geometry import BoundingBox

logger = logging.getLogger(__name__)

KIND = "nifti"
_UNITS = {"mm": "millimeter", "micron": "micrometer", "meter": "meter"}


def _load(path: Path, where: str) -> Any:
    import nibabel

    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            image = nibabel.load(path, mmap="r")
        for warning in caught:
            logger.info("%s: %s", where, warning.message)
    except FileNotFoundError:
        raise ConversionInputError(f"{where}: file not found") from None
    except Exception as e:  # nibabel's ImageFileError, HeaderDataError, ...
        raise ConversionInputError(
            f"{where}: not a readable NIfTI file ({e})"
        ) from None
    return image


def is_nifti_name(name: str) -> bool:
    lowered = name.lower()
    return lowered.endswith((".nii", ".nii.gz"))


class NiftiSource(BaseSource):
    """One NIfTI file; `spec["path"]` may be an unpacked copy of a `.nii.gz`."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._path = Path(spec["path"])
        self._where = str(spec.get("label") or self._path.name)
        self._lock = threading.Lock()
        self._image: Any = _load(self._path, self._where)
        header = self._image.header
        shape = tuple(int(v) for v in self._image.shape)
        if len(shape) < 2 or len(shape) > 5:
            raise ConversionInputError(
                f"{self._where}: {len(shape)}-D data cannot be converted"
            )
        if len(shape) >= 4 and shape[3] != 1:
            raise ConversionInputError(
                f"{self._where}: a series of {shape[3]} volumes (4th dimension) "
                "cannot be converted; convert one volume at a time"
            )
        size = (*shape[:3], 1, 1)[:3]
        check_extent(size, self._where)
        raw_dtype = np.dtype(self._image.get_data_dtype())
        self._fields = raw_dtype.names
        channels = shape[4] if len(shape) == 5 else 1
        probe = self._raw((0, 0, 0), (1, 1, 1))
        if self._fields:
            if channels != 1:
                raise ConversionInputError(f"{self._where}: RGB data with channels")
            channels = min(len(self._fields), 3)
            dtype = check_voxel_dtype(raw_dtype[self._fields[0]], self._where)
        else:
            dtype = check_voxel_dtype(probe.dtype, self._where)
        self._check_size(raw_dtype, shape)
        super().__init__(
            name=str(spec.get("name") or layer_name_from(self._where)),
            dtype=dtype,
            channels=channels,
            bounding_box=BoundingBox.of((0, 0, 0), size),
            spec=dict(spec),
            voxel_size=self._voxel_size(header),
        )

    def _check_size(self, raw_dtype: np.dtype[Any], shape: tuple[int, ...]) -> None:
        if self._path.name.lower().endswith(".gz"):
            return
        offset = int(self._image.dataobj.offset)
        needed = offset + int(np.prod(shape)) * raw_dtype.itemsize
        actual = self._path.stat().st_size
        if actual < needed:
            raise ConversionInputError(
                f"{self._where}: the file is truncated ({actual} bytes, the header "
                f"needs {needed})"
            )

    def _voxel_size(self, header: Any) -> VoxelSize | None:
        try:
            # float32 in the header: 0.02 is stored as 0.0199999996.
            zooms = [float(f"{float(v):.7g}") for v in header.get_zooms()[:3]]
            unit = _UNITS.get(header.get_xyzt_units()[0])
        except Exception:
            return None
        zooms = [*zooms, 1.0, 1.0][:3]
        if unit is None:
            return None
        try:
            return VoxelSize((zooms[0], zooms[1], zooms[2]), unit)
        except ValueError:
            return None

    def _raw(self, start: tuple[int, ...], end: tuple[int, ...]) -> np.ndarray:
        index = tuple(slice(a, b) for a, b in zip(start, end, strict=True))
        ndim = len(self._image.shape)
        full = (index + (slice(None),) * ndim)[:ndim] if ndim > 3 else index[:ndim]
        try:
            data = np.asanyarray(self._image.dataobj[full])
        except (MemoryError, PermissionError):
            raise
        except Exception as e:
            raise ConversionInputError(
                f"{self._where}: cannot read the data ({e})"
            ) from None
        return np.asarray(data)

    def _read(self, box: BoundingBox) -> np.ndarray:
        with self._lock:
            data = self._raw(box.topleft.to_tuple(), box.end.to_tuple())
        if data.ndim == 2:
            data = data[:, :, np.newaxis]
        if self._fields:
            channels = [data[name] for name in self._fields[: self.channels]]
            stacked = np.stack(channels)
        elif data.ndim == 5:
            stacked = data[:, :, :, 0, :].transpose(3, 0, 1, 2)
        else:
            stacked = data.reshape(data.shape[:3])[np.newaxis]
        return np.asfortranarray(stacked, dtype=self.dtype)

    def prepare(self, scratch: Path) -> dict[str, Any] | None:
        """Unpack a `.nii.gz` into `scratch` once; the spec of the unpacked copy."""
        if not self._path.name.lower().endswith(".gz"):
            return None
        scratch.mkdir(parents=True, exist_ok=True)
        target = scratch / f"{layer_name_from(self._where, 'volume')}.nii"
        tmp = target.with_suffix(".nii.part")
        try:
            with gzip.open(self._path, "rb") as src, tmp.open("wb") as dst:
                shutil.copyfileobj(src, dst, 16 << 20)
        except (OSError, EOFError, zlib.error) as e:
            tmp.unlink(missing_ok=True)
            disk_problem = isinstance(e, OSError) and e.errno is not None
            if disk_problem and not isinstance(e, gzip.BadGzipFile):
                raise
            raise ConversionInputError(
                f"{self._where}: cannot unpack the gzip data ({e})"
            ) from None
        tmp.replace(target)
        spec = {**self.spec, "path": str(target), "label": self._where}
        NiftiSource(spec).close()  # checks the unpacked size
        return spec

    def close(self) -> None:
        with self._lock:
            self._image.uncache()


def open_nifti(spec: Mapping[str, Any]) -> NiftiSource:
    return NiftiSource(spec)
