"""Inputs already in an array format: WKW, Zarr v2/v3 (OME-Zarr), N5 and
Neuroglancer precomputed, read through `shared.formats` (the format registry).

Accepted: a dataset folder (with datasource-properties.json, or layers as
sub-folders), a layer folder (mag sub-folders, OME-Zarr multiscales, a precomputed
`info`), or one bare array (a zarr array, an N5 dataset, a WKW mag folder). The
finest mag is converted; when it is not mag 1, its voxels become the new mag 1 and a
declared voxel size is scaled by it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from shared.conversions.errors import ConversionInputError
from shared.conversions.sources.base import BaseSource, check_extent, check_voxel_dtype
from shared.datasource import (
    Category,
    DataFormat,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    dump_layer,
    layer_from_json,
)
from shared.formats import (
    BACKENDS,
    FormatError,
    VoxelArray,
    infer_layer,
    open_mag,
)
from shared.geometry import BoundingBox, Mag, Vec3

logger = logging.getLogger(__name__)

KIND = "array"


def array_spec(
    dataset_dir: Path,
    layer: LayerProperties,
    *,
    label: str,
    voxel_size: VoxelSize | None,
    allowed_roots: tuple[Path, ...] = (),
) -> dict[str, Any]:
    finest = min((m.mag for m in layer.mags), default=None)
    if finest is None:
        raise ConversionInputError(f"{label}: the layer lists no mags")
    return {
        "kind": KIND,
        "dataset_dir": str(dataset_dir),
        "layer": dump_layer(layer),
        "mag": finest.to_list(),
        "allowed_roots": [str(p) for p in allowed_roots],
        "label": label,
        "voxel_size": (
            {"factor": list(voxel_size.factor), "unit": voxel_size.unit}
            if voxel_size
            else None
        ),
    }


class ArraySource(BaseSource):
    """The finest mag of one layer, opened through the format registry."""

    def __init__(self, spec: Mapping[str, Any]) -> None:
        self._where = str(spec.get("label") or "input")
        self._dataset_dir = Path(spec["dataset_dir"])
        self._roots = tuple(Path(p) for p in spec.get("allowed_roots", ()))
        self._lock = threading.Lock()
        try:
            self._layer = layer_from_json(spec["layer"])
            self._mag = Mag.parse(spec["mag"])
        except ValueError as e:
            raise ConversionInputError(f"{self._where}: {e}") from None
        self._array: VoxelArray | None = None
        array = self._open()
        dtype = check_voxel_dtype(array.dtype, self._where)
        box = self._layer.bounding_box.in_mag(self._mag)
        check_extent(box.size.to_tuple(), self._where)
        declared = spec.get("voxel_size")
        voxel_size = None
        if declared:
            factor = [f * m for f, m in zip(declared["factor"], self._mag, strict=True)]
            voxel_size = VoxelSize((factor[0], factor[1], factor[2]), declared["unit"])
        super().__init__(
            name=self._layer.name,
            dtype=dtype,
            channels=array.num_channels,
            bounding_box=box,
            spec=dict(spec),
            voxel_size=voxel_size,
            category=self._layer.category,
        )

    def _open(self) -> VoxelArray:
        if self._array is None:
            try:
                self._array = open_mag(
                    self._dataset_dir,
                    self._layer,
                    self._mag,
                    allowed_roots=self._roots,
                )
            except FormatError as e:
                raise ConversionInputError(f"{self._where}: {e}") from None
        return self._array

    def _read(self, box: BoundingBox) -> np.ndarray:
        with self._lock:
            array = self._open()
        try:
            data = array.read(box)
        except FormatError as e:
            raise ConversionInputError(f"{self._where}: {e}") from None
        return data if data.dtype == self.dtype else data.astype(self.dtype)

    def close(self) -> None:
        with self._lock:
            if self._array is not None:
                self._array.close()
                self._array = None


def open_array_source(spec: Mapping[str, Any]) -> ArraySource:
    return ArraySource(spec)


def bare_array_layer(path: Path, name: str) -> LayerProperties | None:
    """A one-mag layer for a bare array folder (zarr array, N5 dataset, WKW mag)."""
    for data_format, backend in BACKENDS.items():
        if data_format == DataFormat.NEUROGLANCER_PRECOMPUTED or not backend.detect(
            path
        ):
            continue
        try:
            info = backend.probe(path)
            shape = info.shape
            if shape is None:
                box = backend.stored_box(path, info.axis_order)
            else:
                box = BoundingBox(Vec3(0, 0, 0), shape)
            element_class = ElementClass.from_dtype(info.dtype, info.num_channels)
        except (FormatError, ValueError) as e:
            raise ConversionInputError(f"{path.name}: {e}") from None
        if box is None or box.is_empty():
            raise ConversionInputError(f"{path.name}: the array holds no data")
        return LayerProperties(
            name=name,
            category=Category.COLOR,
            bounding_box=box,
            element_class=element_class,
            data_format=data_format,
            mags=(
                MagProperties(
                    mag=Mag(1, 1, 1), path=str(path), axis_order=info.axis_order
                ),
            ),
            num_channels=info.num_channels,
        )
    return None


def layer_folder(path: Path) -> tuple[LayerProperties, VoxelSize | None] | None:
    """The layer a layer folder describes (mag folders, OME-Zarr, precomputed)."""
    declared: VoxelSize | None = None
    category: Category | None = None
    for backend in BACKENDS.values():
        try:
            scan = backend.scan_layer(path)
        except FormatError as e:
            raise ConversionInputError(f"{path.name}: {e}") from None
        if scan is not None and scan.mags:
            declared, category = scan.voxel_size, scan.category
            break
    try:
        layer = infer_layer(path)
    except FormatError as e:
        raise ConversionInputError(f"{path.name}: {e}") from None
    if layer is None:
        return None
    if category is not None and category != layer.category:
        from dataclasses import replace

        layer = replace(layer, category=category)
    return layer, declared
