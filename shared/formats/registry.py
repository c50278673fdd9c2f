"""The one registry of on-disk formats, and opening or creating a layer's mag.

Code elsewhere never branches on `DataFormat`: it asks `backend_for(format)`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from shared.datasource import DataFormat, LayerProperties, MagProperties
from shared.formats import (
    n5_format,
    precomputed_format,
    wkw_format,
    zarr3_format,
    zarr_format,
)
from shared.formats.base import FormatBackend, VoxelArray
from shared.formats.errors import FormatError, MagNotFound, UnsupportedData
from shared.formats.paths import resolve_mag_path
from shared.geometry import GeometryError, Mag, Vec3

logger = logging.getLogger(__name__)

BACKENDS: Mapping[DataFormat, FormatBackend] = MappingProxyType(
    {
        DataFormat.WKW: wkw_format,
        DataFormat.ZARR: zarr_format,
        DataFormat.ZARR3: zarr3_format,
        DataFormat.N5: n5_format,
        DataFormat.NEUROGLANCER_PRECOMPUTED: precomputed_format,
    }
)


def backend_for(data_format: DataFormat | str) -> FormatBackend:
    """The backend module of `data_format`; UnsupportedData for unknown formats."""
    try:
        return BACKENDS[DataFormat(data_format)]
    except (KeyError, ValueError):
        raise UnsupportedData(f"data format {data_format!r} is not supported") from None


def open_mag(
    dataset_dir: Path,
    layer: LayerProperties,
    mag: MagProperties | Mag,
    *,
    allowed_roots: Sequence[Path] = (),
    writable: bool = False,
) -> VoxelArray:
    """Open one mag of `layer` of the dataset in `dataset_dir`.

    `mag` is one of `layer.mags` or a `Mag` to look up there. The mag's folder is
    found and checked by `resolve_mag_path` (PathNotAllowed, MagNotFound,
    UnsupportedData). The data on disk must match the layer's element class and
    channel count, else FormatError. Written only when `writable`.
    """
    if isinstance(mag, Mag):
        try:
            mag = layer.get_mag(mag)
        except KeyError as e:
            raise MagNotFound(str(e.args[0]) if e.args else str(mag)) from None
    backend = backend_for(layer.data_format)
    path = resolve_mag_path(dataset_dir, layer, mag, allowed_roots=allowed_roots)
    array = backend.open(path, mag, layer, writable)
    try:
        expected_dtype, expected_channels = layer.dtype, layer.channels
    except ValueError as e:
        array.close()
        raise FormatError(f"layer '{layer.name}': {e}") from None
    if array.dtype != expected_dtype or array.num_channels != expected_channels:
        array.close()
        raise FormatError(
            f"layer '{layer.name}' mag {mag.mag}: the data holds "
            f"{array.num_channels} channel(s) of {array.dtype.name}, but the layer "
            f"declares {layer.element_class} with {expected_channels} channel(s)"
        )
    return array


def create_mag(
    path: Path,
    data_format: DataFormat,
    dtype: np.dtype[Any] | type | str,
    num_channels: int = 1,
    *,
    chunk_shape: int = 32,
    shard_shape: int = 1024,
    compress: bool = True,
    shape: Vec3 | Sequence[int] | None = None,
) -> VoxelArray:
    """Create a writable mag at `path` (WKW, zarr3 or zarr), or open an existing one
    with the same layout, so a retried task can write again.

    WKW: `chunk_shape`³ blocks in files of `shard_shape`³ voxels. Zarr3: sharded when
    `shard_shape > chunk_shape`. Zarr (v2): chunks only. `shape` (x, y, z) sets the
    declared extent of zarr arrays; writes beyond it grow it (pass the final shape
    when several processes write one array).
    """
    backend = backend_for(data_format)
    if isinstance(num_channels, bool) or not isinstance(num_channels, int):
        raise FormatError(f"num_channels must be an integer, got {num_channels!r}")
    if num_channels < 1:
        raise FormatError(f"num_channels must be >= 1, got {num_channels}")
    extent: Vec3 | None = None
    if shape is not None:
        try:
            extent = Vec3.of(shape)
        except GeometryError as e:
            raise FormatError(f"shape: {e}") from None
        if any(v < 0 for v in extent):
            raise FormatError(f"shape must not be negative, got {extent}")
    try:
        dt = np.dtype(dtype)
    except TypeError:
        raise UnsupportedData(f"unknown data type {dtype!r}") from None
    return backend.create(
        Path(path),
        dt,
        num_channels,
        chunk_shape=chunk_shape,
        shard_shape=shard_shape,
        compress=compress,
        shape=extent,
    )
