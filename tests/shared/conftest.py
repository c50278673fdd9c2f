"""Datasets written by the reference libraries, for the format and inference tests.

Every writer stores a known `(c, x, y, z)` volume with its own library (the `wkw`
package, TensorStore, zarr-python, the official `webknossos` library) and returns a
`Written`: where the dataset is, the layer properties that describe it, and what
any box should read as.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tensorstore as ts
import wkw
import zarr

from shared.datasource import (
    Category,
    DataFormat,
    ElementClass,
    LayerProperties,
    MagProperties,
    load_datasource,
)
from shared.geometry import BoundingBox, Mag, Vec3

SHAPE = (70, 50, 40)  # not a multiple of any chunk: every border is a partial chunk
ORIGIN = Vec3(0, 0, 0)
MAG1 = Mag(1, 1, 1)
DTYPES = ("uint8", "uint16", "uint32", "uint64", "float32")


def make_data(
    dtype: str = "uint16",
    channels: int = 1,
    shape: tuple[int, ...] = SHAPE,
    seed: int = 0,
) -> np.ndarray:
    """A `(c, x, y, z)` volume of random values over the dtype's whole range."""
    rng = np.random.default_rng(seed)
    full = (channels, *shape)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        data = rng.normal(0, 1000, full).astype(dt)
    else:
        info = np.iinfo(dt)
        data = rng.integers(info.min, info.max, full, dtype=dt, endpoint=True)
        data[..., 0, 0, 0] = info.max  # 2^64-1 for uint64: no float detour anywhere
        data[..., -1, -1, -1] = info.max
    return data


@dataclass(frozen=True)
class Written:
    """A layer written by a reference library and what it must read back as."""

    dataset_dir: Path
    layer: LayerProperties
    data: np.ndarray
    """`(c, x, y, z)` content of the mag."""
    origin: Vec3 = ORIGIN
    """Mag coordinates of `data[:, 0, 0, 0]`; everything else reads as 0."""
    mag: Mag = MAG1

    @property
    def box(self) -> BoundingBox:
        return BoundingBox(self.origin, Vec3(*self.data.shape[1:]))

    def expected(self, box: BoundingBox) -> np.ndarray:
        out = np.zeros((self.data.shape[0], *box.size), dtype=self.data.dtype)
        inner = box.intersection(self.box)
        if not inner.is_empty():
            src = inner.offset(self.origin * -1)
            dst = inner.offset(box.topleft * -1)
            out[(slice(None), *dst.slices())] = self.data[(slice(None), *src.slices())]
        return out


def layer_for(
    name: str,
    data_format: DataFormat,
    data: np.ndarray,
    origin: Vec3,
    path: str,
    axis_order: dict[str, int] | None = None,
) -> LayerProperties:
    channels = data.shape[0]
    return LayerProperties(
        name=name,
        category=Category.COLOR,
        bounding_box=BoundingBox(origin, Vec3(*data.shape[1:])),
        element_class=ElementClass.from_dtype(data.dtype, channels),
        data_format=data_format,
        mags=(MagProperties(mag=Mag(1, 1, 1), path=path, axis_order=axis_order),),
        num_channels=channels,
    )


def _ts_write(spec: dict[str, Any], data: np.ndarray) -> None:
    store = ts.open(spec, create=True).result()
    store.write(data).result()


def write_wkw_raw(root: Path, data: np.ndarray) -> Written:
    origin = Vec3(5, 6, 7)
    header = wkw.Header(data.dtype.type, data.shape[0], block_len=16, file_len=2)
    with wkw.Dataset.create(str(root / "color" / "1"), header) as dataset:
        dataset.write(origin.to_tuple(), np.asfortranarray(data))
    return Written(
        root,
        layer_for("color", DataFormat.WKW, data, origin, "./color/1"),
        data,
        origin,
    )


def write_wkw_lz4(root: Path, data: np.ndarray) -> Written:
    # libwkw writes compressed files only whole: pad the volume to file multiples.
    origin = Vec3(3, 0, 40)
    file_len = 32
    end = (origin + Vec3(*data.shape[1:])).ceildiv(file_len) * file_len
    padded = np.zeros((data.shape[0], *end), dtype=data.dtype, order="F")
    padded[(slice(None), *BoundingBox(origin, Vec3(*data.shape[1:])).slices())] = data
    header = wkw.Header(
        data.dtype.type, data.shape[0], block_len=16, file_len=2, block_type=3
    )
    with wkw.Dataset.create(str(root / "color" / "1"), header) as dataset:
        dataset.write((0, 0, 0), padded)
    # No `path`: found by WEBKNOSSOS' folder naming.
    layer = layer_for("color", DataFormat.WKW, data, origin, "unused")
    layer = _without_path(layer)
    return Written(root, layer, data, origin)


def _without_path(layer: LayerProperties) -> LayerProperties:
    mags = tuple(MagProperties(mag=m.mag, axis_order=m.axis_order) for m in layer.mags)
    return LayerProperties(
        name=layer.name,
        category=layer.category,
        bounding_box=layer.bounding_box,
        element_class=layer.element_class,
        data_format=layer.data_format,
        mags=mags,
        num_channels=layer.num_channels,
    )


def _zarr3_codecs(sharded: bool, channels: int) -> list[dict[str, Any]]:
    inner = [
        {"name": "transpose", "configuration": {"order": [3, 2, 1, 0]}},
        {"name": "bytes", "configuration": {"endian": "little"}},
        {"name": "zstd", "configuration": {"level": 3}},
    ]
    if not sharded:
        return inner
    return [
        {
            "name": "sharding_indexed",
            "configuration": {
                "chunk_shape": [channels, 16, 16, 16],
                "codecs": inner,
                "index_codecs": [{"name": "bytes"}, {"name": "crc32c"}],
            },
        }
    ]


def write_ts_zarr3_sharded(root: Path, data: np.ndarray) -> Written:
    c = data.shape[0]
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root / "color" / "1")},
        "metadata": {
            "shape": list(data.shape),
            "data_type": data.dtype.name,
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": [c, 32, 32, 32]},
            },
            "codecs": _zarr3_codecs(True, c),
            "dimension_names": ["c", "x", "y", "z"],
        },
    }
    _ts_write(spec, data)
    layer = layer_for("color", DataFormat.ZARR3, data, Vec3(0, 0, 0), "./color/1")
    return Written(root, layer, data)


def write_ts_zarr3_plain(root: Path, data: np.ndarray) -> Written:
    # 3-d, no dimension names, no axisOrder: WEBKNOSSOS' default x, y, z.
    spec = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": str(root / "color" / "mag1")},
        "metadata": {
            "shape": list(data.shape[1:]),
            "data_type": data.dtype.name,
            "chunk_grid": {
                "name": "regular",
                "configuration": {"chunk_shape": [16, 16, 16]},
            },
        },
    }
    _ts_write(spec, data[0])
    layer = layer_for("color", DataFormat.ZARR3, data, Vec3(0, 0, 0), "color/mag1")
    return Written(root, layer, data)


def write_ts_zarr2(root: Path, data: np.ndarray) -> Written:
    spec = {
        "driver": "zarr",
        "kvstore": {"driver": "file", "path": str(root / "color" / "1")},
        "metadata": {
            "shape": list(data.shape),
            "chunks": [data.shape[0], 16, 16, 16],
            "dtype": data.dtype.str,
            "compressor": {"id": "blosc", "cname": "lz4", "clevel": 5, "shuffle": 1},
            "dimension_separator": ".",
        },
    }
    _ts_write(spec, data)
    order = {"c": 0, "x": 1, "y": 2, "z": 3}
    layer = layer_for("color", DataFormat.ZARR, data, Vec3(0, 0, 0), "./color/1", order)
    return Written(root, layer, data)


def write_ts_n5(root: Path, data: np.ndarray) -> Written:
    spec = {
        "driver": "n5",
        "kvstore": {"driver": "file", "path": str(root / "color" / "s0")},
        "metadata": {
            "dimensions": list(data.shape[1:]),
            "blockSize": [16, 16, 16],
            "dataType": data.dtype.name,
            "compression": {"type": "gzip"},
        },
    }
    _ts_write(spec, data[0])
    layer = layer_for("color", DataFormat.N5, data, Vec3(0, 0, 0), "./color/s0")
    return Written(root, layer, data)


def write_ts_precomputed(root: Path, data: np.ndarray) -> Written:
    origin = Vec3(3, 4, 5)
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(root / "color")},
        "multiscale_metadata": {
            "type": "image",
            "data_type": data.dtype.name,
            "num_channels": data.shape[0],
        },
        "scale_metadata": {
            "resolution": [8, 8, 8],
            "size": list(data.shape[1:]),
            "voxel_offset": origin.to_list(),
            "chunk_size": [16, 16, 16],
            "encoding": "raw",
        },
    }
    store = ts.open(spec, create=True).result()
    store.write(np.moveaxis(data, 0, -1)).result()
    layer = layer_for(
        "color", DataFormat.NEUROGLANCER_PRECOMPUTED, data, origin, "./color/8_8_8"
    )
    return Written(root, layer, data, origin)


def write_zarr_python_v2_zyx(root: Path, data: np.ndarray) -> Written:
    # An OME-Zarr-like z, y, x array: axisOrder points at the reversed axes.
    zyx = np.ascontiguousarray(data[0].transpose(2, 1, 0))
    array = zarr.create_array(
        store=str(root / "color" / "0"),
        shape=zyx.shape,
        chunks=(16, 16, 16),
        dtype=zyx.dtype,
        zarr_format=2,
        fill_value=0,
    )
    array[...] = zyx
    order = {"x": 2, "y": 1, "z": 0}
    layer = layer_for("color", DataFormat.ZARR, data, Vec3(0, 0, 0), "./color/0", order)
    return Written(root, layer, data)


def write_zarr_python_v3_tczyx(root: Path, data: np.ndarray) -> Written:
    tczyx = np.ascontiguousarray(data.transpose(0, 3, 2, 1))[np.newaxis]
    c = data.shape[0]
    array = zarr.create_array(
        store=str(root / "color" / "0"),
        shape=tczyx.shape,
        chunks=(1, c, 16, 16, 16),
        shards=(1, c, 32, 32, 32),
        dtype=tczyx.dtype,
        dimension_names=["t", "c", "z", "y", "x"],
        fill_value=0,
    )
    array[...] = tczyx
    order = {"c": 1, "x": 4, "y": 3, "z": 2}
    layer = layer_for(
        "color", DataFormat.ZARR3, data, Vec3(0, 0, 0), "./color/0", order
    )
    return Written(root, layer, data)


WRITERS: dict[str, Callable[[Path, np.ndarray], Written]] = {
    "wkw-raw": write_wkw_raw,
    "wkw-lz4hc": write_wkw_lz4,
    "tensorstore-zarr3-sharded": write_ts_zarr3_sharded,
    "tensorstore-zarr3": write_ts_zarr3_plain,
    "tensorstore-zarr": write_ts_zarr2,
    "tensorstore-n5": write_ts_n5,
    "tensorstore-precomputed": write_ts_precomputed,
    "zarr-python-zarr-zyx": write_zarr_python_v2_zyx,
    "zarr-python-zarr3-tczyx": write_zarr_python_v3_tczyx,
}
# Writers that store several channels natively.
MULTICHANNEL_WRITERS = (
    "wkw-raw",
    "wkw-lz4hc",
    "tensorstore-zarr3-sharded",
    "tensorstore-zarr",
    "tensorstore-precomputed",
    "zarr-python-zarr3-tczyx",
)
WEBKNOSSOS_KINDS = (
    "webknossos-wkw",
    "webknossos-wkw-2-2-1",
    "webknossos-zarr3",
    "webknossos-zarr3-2-2-1",
)


def import_webknossos() -> Any:
    """The official webknossos library, without its PyPI version check (no network)."""
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos

    return webknossos


@dataclass(frozen=True)
class WebknossosDataset:
    """A dataset written by the official webknossos library (read-only in tests)."""

    path: Path
    color: np.ndarray  # (1, x, y, z) uint8 at COLOR_ORIGIN
    segmentation: np.ndarray  # (1, x, y, z) uint32 at 0
    rgb: np.ndarray  # (3, x, y, z) uint8 at 0
    color_mag2: np.ndarray  # color mag 2-2-1 as webknossos reads it, from 0
    segmentation_mag2: np.ndarray  # segmentation mag 2-2-1, from 0


def _mag_from_origin(mag_view: Any, factor: Vec3) -> np.ndarray:
    """A mag as webknossos reads it, `(c, x, y, z)` in the mag's voxels from 0."""
    box = mag_view.bounding_box  # mag-1 coordinates
    data = np.asarray(mag_view.read(absolute_bounding_box=box))
    if data.ndim == 3:
        data = data[np.newaxis]
    start = Vec3(*box.topleft.to_tuple()) // factor
    size = Vec3(*data.shape[1:])
    full = np.zeros((data.shape[0], *(start + size)), dtype=data.dtype)
    full[(slice(None), *BoundingBox(start, size).slices())] = data
    return full


COLOR_ORIGIN = Vec3(10, 20, 30)


@pytest.fixture(scope="session")
def webknossos_dataset(tmp_path_factory: pytest.TempPathFactory) -> WebknossosDataset:
    """WKW (with a downsampled mag), zarr3 (with a downsampled mag) and RGB layers."""
    wk = import_webknossos()
    from cluster_tools import get_executor

    path = tmp_path_factory.mktemp("webknossos") / "wkds"
    color = make_data("uint8", 1, (100, 80, 60), seed=1)
    segmentation = make_data("uint32", 1, (64, 48, 40), seed=2) % 1000
    rgb = make_data("uint8", 3, (40, 40, 40), seed=3)
    # The library's own notes (numba missing, deprecations) are not under test.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        dataset = wk.Dataset(path, voxel_size=(11, 11, 24))
        layer = dataset.add_layer("color", "color", dtype="uint8", data_format="wkw")
        layer.add_mag(1).write(
            color, absolute_offset=COLOR_ORIGIN.to_tuple(), allow_resize=True
        )
        seg = dataset.add_layer(
            "segmentation",
            "segmentation",
            dtype="uint32",
            data_format="zarr3",
            largest_segment_id=1000,
        )
        seg.add_mag(1, chunk_shape=32, shard_shape=64).write(
            segmentation, absolute_offset=(0, 0, 0), allow_resize=True
        )
        rgb_layer = dataset.add_layer(
            "rgb", "color", dtype="uint8", num_channels=3, data_format="wkw"
        )
        rgb_layer.add_mag(1).write(rgb, absolute_offset=(0, 0, 0), allow_resize=True)
        with get_executor("sequential") as executor:
            layer.downsample(coarsest_mag=wk.Mag([2, 2, 1]), executor=executor)
            seg.downsample(
                coarsest_mag=wk.Mag([2, 2, 1]),
                executor=executor,
                chunk_shape=32,
                shard_shape=64,
            )
        color_mag2 = _mag_from_origin(layer.get_mag("2-2-1"), Vec3(2, 2, 1))
        seg_mag2 = _mag_from_origin(seg.get_mag("2-2-1"), Vec3(2, 2, 1))
    return WebknossosDataset(path, color, segmentation, rgb, color_mag2, seg_mag2)


def webknossos_written(wk: WebknossosDataset, kind: str) -> Written:
    props = load_datasource(wk.path / "datasource-properties.json")
    if kind == "webknossos-wkw":
        return Written(wk.path, props.get_layer("color"), wk.color, COLOR_ORIGIN)
    if kind == "webknossos-wkw-2-2-1":
        return Written(
            wk.path, props.get_layer("color"), wk.color_mag2, mag=Mag(2, 2, 1)
        )
    if kind == "webknossos-zarr3-2-2-1":
        return Written(
            wk.path,
            props.get_layer("segmentation"),
            wk.segmentation_mag2,
            mag=Mag(2, 2, 1),
        )
    if kind == "webknossos-zarr3":
        return Written(wk.path, props.get_layer("segmentation"), wk.segmentation)
    if kind == "webknossos-rgb":
        return Written(wk.path, props.get_layer("rgb"), wk.rgb)
    raise ValueError(kind)


@pytest.fixture(params=[*WRITERS, *WEBKNOSSOS_KINDS])
def written(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    webknossos_dataset: WebknossosDataset,
) -> Written:
    """One uint16 layer per reference writer, plus the webknossos-written layers."""
    kind: str = request.param
    if kind in WEBKNOSSOS_KINDS:
        return webknossos_written(webknossos_dataset, kind)
    return WRITERS[kind](tmp_path / "ds", make_data("uint16"))
