"""Datasource properties inferred from folders alone (no datasource-properties.json).

A layer is a sub-folder of the dataset described by layer-level metadata (OME-Zarr
`multiscales`, neuroglancer `info`) or holding mag sub-folders named as WEBKNOSSOS
names them (`1`, `2-2-1`, `2`) in one format. The bounding box covers the stored
data of the finest mag (per block for WKW, per chunk for TensorStore formats).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
)
from shared.formats.base import FoundMag, LayerScan
from shared.formats.errors import FormatError, PathNotAllowed
from shared.formats.paths import check_inside, real_roots
from shared.formats.registry import BACKENDS
from shared.geometry import BoundingBox, GeometryError, Mag, Vec3
from shared.protocol import NAME_PATTERN

logger = logging.getLogger(__name__)

_NAME = re.compile(NAME_PATTERN)
_SEGMENTATION_HINTS = ("seg", "label")


@dataclass(frozen=True, slots=True)
class _Inferred:
    layer: LayerProperties | None
    voxel_size: VoxelSize | None
    reason: str


def _scan_mag_folders(layer_dir: Path) -> tuple[LayerScan | None, list[str]]:
    notes: list[str] = []
    found: dict[DataFormat, dict[Mag, FoundMag]] = {}
    for sub in sorted(layer_dir.iterdir()):
        if sub.name.startswith(".") or not sub.is_dir():
            continue
        try:
            mag = Mag.parse(sub.name)
        except GeometryError:
            continue
        for data_format, backend in BACKENDS.items():
            if not backend.detect(sub):
                continue
            try:
                info = backend.probe(sub)
            except FormatError as e:
                notes.append(f"{sub.name}: {e}")
                break
            found.setdefault(data_format, {}).setdefault(
                mag, FoundMag(mag, sub.name, info)
            )
            break
    if not found:
        return None, notes
    data_format = max(found, key=lambda f: len(found[f]))
    for other in found:
        if other != data_format:
            notes.append(f"ignored {len(found[other])} {other} mag folder(s)")
    return LayerScan(data_format, tuple(found[data_format].values())), notes


def _scan(layer_dir: Path) -> tuple[LayerScan | None, list[str]]:
    notes: list[str] = []
    for backend in BACKENDS.values():
        try:
            scan = backend.scan_layer(layer_dir)
        except FormatError as e:
            notes.append(str(e))
            continue
        if scan is not None:
            notes.extend(scan.notes)
            if scan.mags:
                return scan, notes
    scan, more = _scan_mag_folders(layer_dir)
    return scan, notes + more


def _category(name: str, scan: LayerScan) -> Category:
    if scan.category is not None:
        return scan.category
    lowered = name.lower()
    if any(hint in lowered for hint in _SEGMENTATION_HINTS):
        return Category.SEGMENTATION
    return Category.COLOR


def _bounding_box(
    layer_dir: Path, scan: LayerScan, finest: FoundMag
) -> BoundingBox | None:
    box = finest.stored_box
    if box is None:
        # Only the finest mag: listing what is stored can take a while.
        backend = BACKENDS[scan.data_format]
        box = backend.stored_box(layer_dir / finest.path, finest.info.axis_order)
    shape = finest.info.shape
    if shape is not None:
        declared = BoundingBox(Vec3(0, 0, 0), shape)
        box = declared if box is None else box.intersection(declared)
    if box is None:
        return None
    return box.from_mag_to_mag1(finest.mag)


def _infer(layer_dir: Path) -> _Inferred:
    name = layer_dir.name
    if not _NAME.fullmatch(name):
        return _Inferred(None, None, f"{name!r}: not a valid layer name")
    if not layer_dir.is_dir():
        return _Inferred(None, None, f"{name}: not a folder")
    try:
        scan, notes = _scan(layer_dir)
    except OSError as e:
        return _Inferred(None, None, f"{name}: cannot list ({e.strerror})")
    for note in notes:
        logger.info("inferring layer %s: %s", name, note)
    if scan is None or not scan.mags:
        detail = f" ({'; '.join(notes)})" if notes else ""
        return _Inferred(None, None, f"{name}: no mag folders with known data{detail}")
    mags = sorted(scan.mags, key=lambda m: m.mag)
    finest = mags[0]
    kept = [
        m
        for m in mags
        if m.info.dtype == finest.info.dtype
        and m.info.num_channels == finest.info.num_channels
    ]
    try:
        element_class = ElementClass.from_dtype(
            finest.info.dtype, finest.info.num_channels
        )
    except ValueError as e:
        return _Inferred(None, None, f"{name}: {e}")
    try:
        box = scan.bounding_box or _bounding_box(layer_dir, scan, finest)
    except FormatError as e:
        return _Inferred(None, None, f"{name}: {e}")
    if box is None:
        return _Inferred(None, None, f"{name}: cannot tell the extent of the data")
    layer = LayerProperties(
        name=name,
        category=_category(name, scan),
        bounding_box=box,
        element_class=element_class,
        data_format=scan.data_format,
        mags=tuple(
            MagProperties(
                mag=m.mag,
                path=f"./{name}/{m.path}",
                axis_order=m.info.axis_order,
            )
            for m in kept
        ),
        num_channels=finest.info.num_channels,
    )
    return _Inferred(layer, scan.voxel_size, "")


def infer_layer(layer_dir: Path) -> LayerProperties | None:
    """The layer in `layer_dir` as found on disk; None if the folder is not a layer.

    Mag paths are written relative to the dataset folder (`./<layer>/<mag>`).
    """
    return _infer(Path(layer_dir)).layer


def infer_datasource(
    dataset_dir: Path,
    *,
    name: str,
    team: str = "",
    voxel_size: VoxelSize | None = None,
    allowed_roots: Sequence[Path] = (),
) -> DatasourceProperties:
    """Datasource properties for the dataset in `dataset_dir`, from its folders only.

    The voxel size is `voxel_size`, else the one OME-Zarr or precomputed metadata
    declares, else 1 x 1 x 1 nm. Layer folders that really (symlinks resolved) lie
    outside the dataset folder and `allowed_roots` are skipped unread, as
    `open_mag` would refuse them. Raises FormatError("no layers found: <reasons>").
    """
    dataset_dir = Path(dataset_dir)
    roots = real_roots(dataset_dir, allowed_roots)
    try:
        entries = sorted(p for p in dataset_dir.iterdir() if p.is_dir())
    except OSError as e:
        raise FormatError(
            f"no layers found: cannot list the dataset folder ({e.strerror})"
        ) from None
    layers: list[LayerProperties] = []
    declared: VoxelSize | None = None
    reasons: list[str] = []
    for entry in entries:
        if entry.name.startswith("."):
            continue
        try:
            check_inside(entry, roots, entry.name, "layer folder")
        except PathNotAllowed as e:
            reasons.append(str(e))
            continue
        inferred = _infer(entry)
        if inferred.layer is None:
            reasons.append(inferred.reason)
            continue
        layers.append(inferred.layer)
        declared = declared or inferred.voxel_size
    if not layers:
        why = "; ".join(reasons) if reasons else "the dataset folder has no sub-folders"
        raise FormatError(f"no layers found: {why}")
    return DatasourceProperties(
        name=name,
        team=team,
        voxel_size=voxel_size or declared or VoxelSize((1.0, 1.0, 1.0)),
        layers=tuple(layers),
    )
