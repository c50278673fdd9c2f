"""OME-Zarr (NGFF 0.1-0.5) multiscales: mags, axis order and voxel size of a layer.

The layer folder holds `.zattrs` (zarr v2) or `zarr.json` (zarr v3) with
`multiscales`; each dataset is one mag. Mag factors come from the datasets' scale
transforms relative to the finest one (from shape ratios when there are none).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from shared.datasource import DataFormat, VoxelSize
from shared.formats.base import ArrayInfo, FoundMag, LayerScan, read_json
from shared.formats.errors import FormatError
from shared.geometry import BoundingBox, GeometryError, Mag, Vec3

logger = logging.getLogger(__name__)

# NGFF before 0.4 has no axes: always t, c, z, y, x.
_LEGACY_AXES = ("t", "c", "z", "y", "x")


def multiscales(layer_dir: Path) -> tuple[DataFormat, Mapping[str, Any]] | None:
    """The first `multiscales` entry of the layer folder and its zarr version."""
    where = layer_dir.name
    for name, data_format in (
        ("zarr.json", DataFormat.ZARR3),
        (".zattrs", DataFormat.ZARR),
    ):
        file = layer_dir / name
        if not file.is_file():
            continue
        doc = read_json(file, where)
        if not isinstance(doc, dict):
            continue
        attrs = doc.get("attributes", {}) if data_format == DataFormat.ZARR3 else doc
        if not isinstance(attrs, dict):
            continue
        ome = attrs.get("ome")
        found = ome.get("multiscales") if isinstance(ome, dict) else None
        found = found or attrs.get("multiscales")
        if isinstance(found, list) and found and isinstance(found[0], dict):
            return data_format, found[0]
    return None


def _axes(
    entry: Mapping[str, Any], rank: int
) -> tuple[list[str], list[str], str | None]:
    """Axis names, axis types and the unit of x."""
    axes = entry.get("axes")
    names: list[str] = []
    types: list[str] = []
    unit: str | None = None
    if isinstance(axes, list) and axes:
        for axis in axes:
            if isinstance(axis, str):
                names.append(axis.lower())
                types.append("")
            elif isinstance(axis, dict):
                name = str(axis.get("name", "")).lower()
                names.append(name)
                types.append(str(axis.get("type", "")).lower())
                if name == "x" and isinstance(axis.get("unit"), str):
                    unit = axis["unit"]
    else:
        names = list(_LEGACY_AXES[-rank:])
        types = ["" for _ in names]
    return names, types, unit


def _axis_order(names: list[str], types: list[str]) -> dict[str, int] | None:
    if not {"x", "y", "z"} <= set(names):
        return None
    order = {axis: names.index(axis) for axis in ("x", "y", "z")}
    for i, (name, kind) in enumerate(zip(names, types, strict=True)):
        if kind == "channel" or name in ("c", "channel"):
            order = {"c": i, **order}
            break
    return order


def _scale(transforms: Any) -> list[float] | None:
    if not isinstance(transforms, list):
        return None
    for t in transforms:
        if isinstance(t, dict) and t.get("type") == "scale":
            scale = t.get("scale")
            if isinstance(scale, list) and all(
                isinstance(v, (int, float)) and not isinstance(v, bool) for v in scale
            ):
                return [float(v) for v in scale]
    return None


def _power_of_two(value: float) -> int | None:
    if not math.isfinite(value) or value < 0.99:
        return None
    rounded = round(value)
    if rounded < 1 or abs(value - rounded) > 0.02 * rounded or rounded & (rounded - 1):
        return None
    return int(rounded)


def _safe_relative(path: Any) -> str | None:
    if not isinstance(path, str) or not path or "\x00" in path:
        return None
    pure = PurePosixPath(path)
    if pure.is_absolute() or ".." in pure.parts or "://" in path:
        return None
    return pure.as_posix()


def scan(
    layer_dir: Path,
    data_format: DataFormat,
    probe: Callable[[Path, Mapping[str, int] | None], ArrayInfo],
) -> LayerScan | None:
    """The layer described by OME multiscales in `layer_dir`, if any."""
    found = multiscales(layer_dir)
    if found is None or found[0] != data_format:
        return None
    entry = found[1]
    datasets = entry.get("datasets")
    if not isinstance(datasets, list) or not datasets:
        return LayerScan(data_format, (), notes=("multiscales lists no datasets",))
    notes: list[str] = []
    arrays: list[tuple[str, ArrayInfo, list[float] | None]] = []
    names: list[str] = []
    types: list[str] = []
    unit: str | None = None
    for dataset in datasets:
        path = _safe_relative(
            dataset.get("path") if isinstance(dataset, dict) else None
        )
        if path is None:
            notes.append(f"skipped dataset with unusable path {dataset!r:.80}")
            continue
        try:
            first = _first_rank(layer_dir / path)
            names, types, unit = _axes(entry, first)
            info = probe(layer_dir / path, _axis_order(names, types))
        except FormatError as e:
            notes.append(f"skipped {path}: {e}")
            continue
        arrays.append((path, info, _scale(dataset.get("coordinateTransformations"))))
    if not arrays:
        return LayerScan(data_format, (), notes=tuple(notes))
    order = _axis_order(names, types) or {}
    spatial = [order.get(a) for a in ("x", "y", "z")]
    _, finest, finest_scale = arrays[0]
    mags: list[FoundMag] = []
    for path, info, scale in arrays:
        factors: list[int | None] = []
        for axis, dim in enumerate(spatial):
            if scale and finest_scale and dim is not None and dim < len(scale):
                ratio = (
                    scale[dim] / finest_scale[dim] if finest_scale[dim] else math.nan
                )
            elif info.shape and finest.shape and info.shape[axis]:
                ratio = finest.shape[axis] / info.shape[axis]
            else:
                ratio = math.nan
            factors.append(_power_of_two(ratio))
        try:
            mag = Mag(*factors)  # type: ignore[arg-type]
        except (GeometryError, TypeError):
            notes.append(f"skipped {path}: its scale is not a power-of-two mag")
            continue
        mags.append(FoundMag(mag=mag, path=path, info=info))
    voxel_size = _voxel_size(entry, finest_scale, spatial, unit, notes)
    return LayerScan(
        data_format,
        tuple(mags),
        voxel_size=voxel_size,
        notes=tuple(notes),
    )


def _first_rank(path: Path) -> int:
    """Rank of the array at `path` (for axes-less legacy metadata)."""
    for name in ("zarr.json", ".zarray"):
        file = path / name
        if file.is_file():
            doc = read_json(file, path.name)
            shape = doc.get("shape") if isinstance(doc, dict) else None
            if isinstance(shape, list):
                return len(shape)
    return 5


def _voxel_size(
    entry: Mapping[str, Any],
    scale: list[float] | None,
    spatial: Sequence[int | None],
    unit: str | None,
    notes: list[str],
) -> VoxelSize | None:
    if not scale or any(d is None or d >= len(scale) for d in spatial):
        return None
    factor = [scale[d] for d in spatial if d is not None]
    overall = _scale(entry.get("coordinateTransformations"))
    if overall and len(overall) == len(scale):
        factor = [
            f * overall[d]
            for f, d in zip(factor, spatial, strict=True)
            if d is not None
        ]
    xyz = (factor[0], factor[1], factor[2])
    try:
        return VoxelSize(xyz, unit or "nanometer")
    except ValueError:
        pass
    try:
        size = VoxelSize(xyz)
    except ValueError as e:
        notes.append(f"unusable voxel size: {e}")
        return None
    notes.append(f"unknown unit {unit!r}, assumed nanometer")
    return size


def shape_box(info: ArrayInfo) -> BoundingBox | None:
    if info.shape is None:
        return None
    return BoundingBox(Vec3(0, 0, 0), info.shape)
