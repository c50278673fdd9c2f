"""N5 through TensorStore (read, and write into existing arrays).

TensorStore keeps N5's dimension order (`dimensions` in attributes.json, fastest
first), so an `axisOrder` indexes that list; without one, the last three dimensions
are x, y, z, or the ones the `axes` attribute names so.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.datasource import DataFormat, LayerProperties, MagProperties
from shared.formats._tensorstore import (
    TensorStoreArray,
    open_array,
    probe_array,
    stored_box_of,
)
from shared.formats.base import ArrayInfo, LayerScan, describe, read_json
from shared.formats.errors import FormatError, UnsupportedData
from shared.geometry import BoundingBox, Vec3

DATA_FORMAT = DataFormat.N5
DRIVER = "n5"


# Shadows the builtin on purpose: backends are modules with open/create.
def open(
    path: Path, mag: MagProperties, layer: LayerProperties, writable: bool
) -> TensorStoreArray:
    """Open the N5 dataset at `path`, honouring the mag's `axisOrder`."""
    where = f"layer '{layer.name}' mag {mag.mag}"
    return open_array(
        DRIVER, path, axis_order=mag.axis_order, where=where, writable=writable
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
    raise UnsupportedData(f"{describe(path)}: creating N5 arrays is not supported")


def detect(path: Path) -> bool:
    """True if `path` holds an N5 dataset (attributes.json with `dimensions`)."""
    file = path / "attributes.json"
    if not file.is_file():
        return False
    try:
        doc = read_json(file, describe(path))
    except FormatError:
        return True
    return isinstance(doc, dict) and "dimensions" in doc


def probe(path: Path, axis_order: Any = None) -> ArrayInfo:
    """dtype, channels, shape and axis order of the dataset at `path`."""
    return probe_array(DRIVER, path, where=describe(path), axis_order=axis_order)


def stored_box(path: Path, axis_order: Any = None) -> BoundingBox | None:
    """Chunk-aligned box of the blocks stored at `path`, in mag voxels."""
    return stored_box_of(DRIVER, path, where=describe(path), axis_order=axis_order)


def scan_layer(layer_dir: Path) -> LayerScan | None:
    """N5 multiscale groups are found as mag sub-folders."""
    return None
