"""Neuroglancer precomputed volumes through TensorStore (read, and write into
existing scales).

A layer folder holds `info`; each scale is a mag (its resolution over the finest
one). A mag's `path` names the scale's key folder (`./seg/8_8_40`), or the layer
folder itself, in which case the scale is picked by mag. TensorStore's view is
x, y, z, channel with the scale's `voxel_offset` as origin, so coordinates are the
scale's own voxels.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from shared.datasource import (
    Category,
    DataFormat,
    LayerProperties,
    MagProperties,
    VoxelSize,
)
from shared.formats._tensorstore import TensorStoreArray, open_array, stored_box_of
from shared.formats.base import (
    ArrayInfo,
    FoundMag,
    LayerScan,
    check_dtype,
    describe,
    read_json,
)
from shared.formats.errors import CorruptData, MagNotFound, UnsupportedData
from shared.geometry import BoundingBox, GeometryError, Mag, Vec3

DATA_FORMAT = DataFormat.NEUROGLANCER_PRECOMPUTED
DRIVER = "neuroglancer_precomputed"


def _ints(value: Any, what: str, where: str, minimum: int) -> Vec3:
    if (
        not isinstance(value, list)
        or len(value) != 3
        or not all(isinstance(v, int) and not isinstance(v, bool) for v in value)
        or any(v < minimum for v in value)
    ):
        raise CorruptData(f"corrupt metadata {where}: {what} must be 3 integers")
    return Vec3(*value)


def _scales(layer_dir: Path) -> tuple[dict[str, Any], list[tuple[Mag, dict[str, Any]]]]:
    """The parsed `info` and (mag, scale) for every scale with a power-of-two mag."""
    where = f"{layer_dir.name}/info"
    info = read_json(layer_dir / "info", layer_dir.name)
    scales = info.get("scales") if isinstance(info, dict) else None
    if not isinstance(scales, list) or not scales:
        raise CorruptData(f"corrupt metadata {where}: no scales")
    resolutions: list[tuple[float, float, float]] = []
    for scale in scales:
        res = scale.get("resolution") if isinstance(scale, dict) else None
        if (
            not isinstance(res, list)
            or len(res) != 3
            or not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
                for v in res
            )
            or not isinstance(scale.get("key"), str)
        ):
            raise CorruptData(
                f"corrupt metadata {where}: each scale needs key, resolution"
            )
        resolutions.append((float(res[0]), float(res[1]), float(res[2])))
    finest = min(resolutions, key=lambda r: r[0] * r[1] * r[2])
    found: list[tuple[Mag, dict[str, Any]]] = []
    for scale, res in zip(scales, resolutions, strict=True):
        factors = [r / f for r, f in zip(res, finest, strict=True)]
        rounded = [round(v) for v in factors]
        if any(
            abs(v - r) > 0.02 * max(r, 1) for v, r in zip(factors, rounded, strict=True)
        ):
            continue
        try:
            found.append((Mag(*rounded), scale))
        except GeometryError:
            continue
    return info, found


def _key_for(path: Path, mag: Mag, where: str) -> tuple[Path, str]:
    """(folder holding `info`, scale key) for a mag whose path is `path`."""
    if (path / "info").is_file():
        for candidate, scale in _scales(path)[1]:
            if candidate == mag:
                return path, str(scale["key"])
        raise MagNotFound(f"{where}: no scale of mag {mag} in the precomputed info")
    if (path.parent / "info").is_file():
        return path.parent, path.name
    raise MagNotFound(f"{where}: no precomputed info next to '{path.name}'")


# Shadows the builtin on purpose: backends are modules with open/create.
def open(
    path: Path, mag: MagProperties, layer: LayerProperties, writable: bool
) -> TensorStoreArray:
    """Open one scale of a precomputed volume."""
    where = f"layer '{layer.name}' mag {mag.mag}"
    info_dir, key = _key_for(path, mag.mag, where)
    return open_array(
        DRIVER,
        info_dir / key,
        axis_order=None,
        where=where,
        writable=writable,
        kvstore_path=info_dir,
        extra_spec={"scale_metadata": {"key": key}},
    )


def create(
    path: Path,
    dtype: np.dtype[Any],
    num_channels: int,
    *,
    chunk_shape: int,
    shard_shape: int,
    compress: bool,
    shape: Vec3 | None,
) -> TensorStoreArray:
    """Not offered: new data is written as WKW or Zarr."""
    raise UnsupportedData(
        f"{describe(path)}: creating neuroglancer precomputed volumes is not supported"
    )


def detect(path: Path) -> bool:
    """True if `path` is a scale folder of a precomputed volume."""
    info = path.parent / "info"
    if not info.is_file():
        return False
    try:
        return any(str(s.get("key")) == path.name for _, s in _scales(path.parent)[1])
    except (CorruptData, UnsupportedData):
        return False


def _info_of(
    scale: dict[str, Any], dtype: np.dtype[Any], channels: int, where: str
) -> tuple[ArrayInfo, BoundingBox]:
    size = _ints(scale.get("size"), "size", where, 0)
    offset = _ints(
        scale.get("voxel_offset", [0, 0, 0]), "voxel_offset", where, -(1 << 62)
    )
    chunks = scale.get("chunk_sizes")
    chunk = (
        _ints(chunks[0], "chunk_sizes", where, 1)
        if isinstance(chunks, list) and chunks
        else Vec3(64, 64, 64)
    )
    box = BoundingBox(offset, size)
    return ArrayInfo(dtype, channels, box.end.pairmax(0), chunk), box


def probe(path: Path, axis_order: Any = None) -> ArrayInfo:
    """dtype, channels and extent of the scale folder `path`."""
    where = describe(path)
    info, scales = _scales(path.parent)
    dtype, channels = _type_of(info, where)
    for _, scale in scales:
        if scale["key"] == path.name:
            return _info_of(scale, dtype, channels, where)[0]
    raise MagNotFound(f"{where}: not a scale of the precomputed info")


def _type_of(info: dict[str, Any], where: str) -> tuple[np.dtype[Any], int]:
    dtype = check_dtype(info.get("data_type"), where)
    channels = info.get("num_channels", 1)
    if not isinstance(channels, int) or isinstance(channels, bool) or channels < 1:
        raise CorruptData(f"corrupt metadata {where}/info: num_channels")
    return dtype, channels


def stored_box(path: Path, axis_order: Any = None) -> BoundingBox | None:
    """Chunk-aligned box of the chunks stored in the scale folder `path` (the
    view is always x, y, z, channel)."""
    return stored_box_of(
        DRIVER,
        path,
        where=describe(path),
        kvstore_path=path.parent,
        extra_spec={"scale_metadata": {"key": path.name}},
    )


def scan_layer(layer_dir: Path) -> LayerScan | None:
    """The layer described by `<layer_dir>/info`, or None without one."""
    if not (layer_dir / "info").is_file():
        return None
    where = layer_dir.name
    info, scales = _scales(layer_dir)
    dtype, channels = _type_of(info, where)
    mags: list[FoundMag] = []
    declared: BoundingBox | None = None
    finest: Sequence[float] | None = None
    for mag, scale in sorted(scales, key=lambda s: s[0]):
        array_info, box = _info_of(scale, dtype, channels, f"{where}/info")
        mags.append(FoundMag(mag, str(scale["key"]), array_info, stored_box=box))
        if declared is None:
            declared = box.from_mag_to_mag1(mag)
            finest = [
                float(v) / m for v, m in zip(scale["resolution"], mag, strict=True)
            ]
    voxel_size = None
    if finest is not None and all(math.isfinite(v) and v > 0 for v in finest):
        voxel_size = VoxelSize((finest[0], finest[1], finest[2]))
    category = (
        Category.SEGMENTATION if info.get("type") == "segmentation" else Category.COLOR
    )
    return LayerScan(
        DATA_FORMAT,
        tuple(mags),
        category=category,
        voxel_size=voxel_size,
        bounding_box=declared,
    )
