"""Zarr v3 through TensorStore, written the way webknossos-libs writes it.

Arrays are `(c, x, y, z)` with `dimension_names`, sharded (`sharding_indexed`) when
the shard is larger than the chunk, and a `transpose` codec so chunks hold x fastest
(channels interleaved), the order WEBKNOSSOS serves.
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
from shared.formats.base import ArrayInfo, LayerScan, check_dtype, describe, read_json
from shared.formats.errors import FormatError
from shared.geometry import BoundingBox, Vec3

DATA_FORMAT = DataFormat.ZARR3
DRIVER = "zarr3"


# Shadows the builtin on purpose: backends are modules with open/create.
def open(
    path: Path, mag: MagProperties, layer: LayerProperties, writable: bool
) -> TensorStoreArray:
    """Open the zarr v3 array at `path`, honouring the mag's `axisOrder`."""
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
    """A `(c, x, y, z)` zarr v3 array; sharded when `shard_shape > chunk_shape`."""
    where = describe(path)
    dt = check_dtype(dtype, where)
    check_chunking(chunk_shape, shard_shape, where)
    extent = list(shape or Vec3(0, 0, 0))
    inner_chunk = [num_channels, chunk_shape, chunk_shape, chunk_shape]
    codecs: list[dict[str, Any]] = [
        {"name": "transpose", "configuration": {"order": [3, 2, 1, 0]}},
        {"name": "bytes", "configuration": {"endian": "little"}},
    ]
    if compress:
        codecs.append({"name": "zstd", "configuration": {"level": 5, "checksum": True}})
    grid = inner_chunk
    if shard_shape > chunk_shape:
        grid = [num_channels, shard_shape, shard_shape, shard_shape]
        codecs = [
            {
                "name": "sharding_indexed",
                "configuration": {
                    "chunk_shape": inner_chunk,
                    "codecs": codecs,
                    "index_codecs": [
                        {"name": "bytes", "configuration": {"endian": "little"}},
                        {"name": "crc32c"},
                    ],
                    "index_location": "end",
                },
            }
        ]
    metadata = {
        "shape": [num_channels, *extent],
        "data_type": dt.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": grid}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "codecs": codecs,
        "fill_value": 0,
        "dimension_names": ["c", "x", "y", "z"],
    }
    return create_array(
        DRIVER,
        path,
        metadata,
        metadata_file="zarr.json",
        dtype=dt,
        num_channels=num_channels,
        where=where,
    )


def detect(path: Path) -> bool:
    """True if `path` holds a zarr v3 array (not a group)."""
    file = path / "zarr.json"
    if not file.is_file():
        return False
    try:
        doc = read_json(file, describe(path))
    except FormatError:
        return True  # corrupt metadata still marks a zarr3 array; probe says why
    return isinstance(doc, dict) and doc.get("node_type") == "array"


def probe(path: Path, axis_order: Any = None) -> ArrayInfo:
    """dtype, channels, shape and axis order of the array at `path`."""
    return probe_array(DRIVER, path, where=describe(path), axis_order=axis_order)


def stored_box(path: Path, axis_order: Any = None) -> BoundingBox | None:
    """Chunk-aligned box of the chunks stored at `path`, in mag voxels."""
    return stored_box_of(DRIVER, path, where=describe(path), axis_order=axis_order)


def scan_layer(layer_dir: Path) -> LayerScan | None:
    """Mags from OME-Zarr 0.5 `multiscales` in the layer's `zarr.json`, if any."""
    return _ome.scan(layer_dir, DATA_FORMAT, probe)
