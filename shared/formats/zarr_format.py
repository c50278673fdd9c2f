"""Zarr v2 through TensorStore.

Arrays we create are `(c, x, y, z)` in Fortran order (x fastest in each chunk),
blosc-zstd compressed, with `/` as the chunk key separator. Zarr v2 has no
sharding; `shard_shape` is ignored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from shared.datasource import DataFormat, LayerProperties, MagProperties
from shared.formats import _ome
from shared.formats._tensorstore import (
    TensorStoreArray,
    check_chunking,
    create_array,
    open_array,
    probe_array,
    stored_box_of,
)
from shared.formats.base import ArrayInfo, LayerScan, check_dtype, describe
from shared.geometry import BoundingBox, Vec3

DATA_FORMAT = DataFormat.ZARR
DRIVER = "zarr"


# Shadows the builtin on purpose: backends are modules with open/create.
def open(
    path: Path, mag: MagProperties, layer: LayerProperties, writable: bool
) -> TensorStoreArray:
    """Open the zarr v2 array at `path`, honouring the mag's `axisOrder`."""
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
    """A `(c, x, y, z)` zarr v2 array with chunks of `chunk_shape`³ voxels."""
    where = describe(path)
    dt = check_dtype(dtype, where)
    check_chunking(chunk_shape, shard_shape, where)
    extent = list(shape or Vec3(0, 0, 0))
    compressor = (
        {"id": "blosc", "cname": "zstd", "clevel": 5, "shuffle": 1, "blocksize": 0}
        if compress
        else None
    )
    metadata = {
        "shape": [num_channels, *extent],
        "chunks": [num_channels, chunk_shape, chunk_shape, chunk_shape],
        "dtype": dt.newbyteorder("<").str,
        "compressor": compressor,
        "fill_value": 0,
        "order": "F",
        "filters": None,
        "dimension_separator": "/",
    }
    return create_array(
        DRIVER,
        path,
        metadata,
        metadata_file=".zarray",
        dtype=dt,
        num_channels=num_channels,
        where=where,
    )


def detect(path: Path) -> bool:
    """True if `path` holds a zarr v2 array."""
    return (path / ".zarray").is_file()


def probe(path: Path, axis_order: Any = None) -> ArrayInfo:
    """dtype, channels, shape and axis order of the array at `path`."""
    return probe_array(DRIVER, path, where=describe(path), axis_order=axis_order)


def stored_box(path: Path, axis_order: Any = None) -> BoundingBox | None:
    """Chunk-aligned box of the chunks stored at `path`, in mag voxels."""
    return stored_box_of(DRIVER, path, where=describe(path), axis_order=axis_order)


def scan_layer(layer_dir: Path) -> LayerScan | None:
    """Mags from OME-Zarr (0.1-0.4) `multiscales` in the layer's `.zattrs`, if any."""
    return _ome.scan(layer_dir, DATA_FORMAT, probe)
