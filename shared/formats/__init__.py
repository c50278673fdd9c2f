"""Open a layer's mag for reading and writing; one registry of on-disk formats.

`open_mag` finds a mag's folder (`resolve_mag_path`: dataset-relative paths,
absolute paths and `file://` URIs inside allowed roots, symlinks resolved) and opens
it with the backend of the layer's data format (`registry.BACKENDS`): WKW through
the `wkw` package, zarr (v2), zarr3, n5 and neuroglancer precomputed through
TensorStore. Every array is a `VoxelArray` that reads `(channels, x, y, z)` boxes in
the mag's own voxel coordinates, with zeros outside the data. `create_mag` makes new
WKW, zarr3 or zarr arrays; `infer_datasource` / `infer_layer` describe a dataset
from its folders alone.
"""

from shared.formats.base import ArrayInfo, FormatBackend, VoxelArray
from shared.formats.errors import (
    CorruptData,
    FormatError,
    MagNotFound,
    PathNotAllowed,
    UnsupportedData,
)
from shared.formats.infer import infer_datasource, infer_layer
from shared.formats.paths import resolve_mag_path
from shared.formats.registry import BACKENDS, backend_for, create_mag, open_mag

__all__ = [
    "BACKENDS",
    "ArrayInfo",
    "CorruptData",
    "FormatBackend",
    "FormatError",
    "MagNotFound",
    "PathNotAllowed",
    "UnsupportedData",
    "VoxelArray",
    "backend_for",
    "create_mag",
    "infer_datasource",
    "infer_layer",
    "open_mag",
    "resolve_mag_path",
]
