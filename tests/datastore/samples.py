"""Small sample datasets written by the official webknossos library (and by ours).

`write_samples(root)` builds `root/binaryData/lab/...` once per test session and
returns what each mag should read back, as the official library reads it.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    save_datasource,
)
from shared.formats import create_mag
from shared.geometry import BoundingBox, Mag, Vec3

ORG = "lab"
WKW_DATASET = "wkw_ds"
ZARR_DATASET = "zarr_ds"
OURS_DATASET = "ours_ds"  # written by shared.formats.create_mag


@dataclass(frozen=True)
class MagData:
    """A whole mag as (c, x, y, z), with its top-left in that mag's voxels."""

    topleft: Vec3
    data: np.ndarray

    def region(self, box: BoundingBox) -> np.ndarray:
        """What a read of `box` (mag voxels) must return: data, zeros outside."""
        out = np.zeros((self.data.shape[0], *box.size), dtype=self.data.dtype)
        stored = BoundingBox(self.topleft, Vec3(*self.data.shape[1:]))
        overlap = box.intersection(stored)
        if overlap.is_empty():
            return out
        src = overlap.offset(Vec3.full(0) - self.topleft).slices()
        dst = overlap.offset(Vec3.full(0) - box.topleft).slices()
        out[(slice(None), *dst)] = self.data[(slice(None), *src)]
        return out


Expected = dict[tuple[str, str, Mag], MagData]


def _import_webknossos() -> tuple[Any, Any]:
    # The library asks PyPI for newer versions on import; tests stay offline.
    os.environ.setdefault("WEBKNOSSOS_SKIP_VERSION_CHECK", "True")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos as wk
        from cluster_tools import get_executor
    return wk, get_executor


def _snapshot(layer: Any, mag_name: str) -> MagData:
    """The whole mag as the official library reads it."""
    wk, _ = _import_webknossos()
    mag = wk.Mag(mag_name)
    aligned = layer.bounding_box.align_with_mag(mag, ceil=True)
    data = layer.get_mag(mag).read(absolute_offset=aligned.topleft, size=aligned.size)
    return MagData(Vec3(*aligned.in_mag(mag).topleft), np.asarray(data))


def write_samples(root: Path) -> Expected:
    """Write the sample datasets under `root/binaryData/lab`; return expected data."""
    wk, get_executor = _import_webknossos()
    rng = np.random.default_rng(42)
    org_dir = root / "binaryData" / ORG
    org_dir.mkdir(parents=True)
    expected: Expected = {}
    sequential = get_executor("sequential")

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # numba hints and the like from the library
        ds = wk.Dataset(org_dir / WKW_DATASET, voxel_size=(11, 11, 24))
        color = ds.add_layer(
            "color", wk.COLOR_CATEGORY, dtype=np.uint8, data_format="wkw"
        )
        mag1 = color.add_mag(1)
        mag1.write(
            rng.integers(0, 255, (100, 90, 70), dtype=np.uint8),
            absolute_offset=(0, 0, 0),
            allow_resize=True,
        )
        color.downsample(coarsest_mag=wk.Mag("2-2-1"), executor=sequential)

        ds = wk.Dataset(org_dir / ZARR_DATASET, voxel_size=(11, 11, 24))
        seg = ds.add_layer(
            "seg",
            wk.SEGMENTATION_CATEGORY,
            dtype=np.uint32,
            data_format="zarr3",
            largest_segment_id=1000,
        )
        seg_mag = seg.add_mag(1, chunk_shape=32, shard_shape=64)
        seg_mag.write(
            rng.integers(0, 1000, (64, 64, 32), dtype=np.uint32),
            absolute_offset=(10, 20, 4),
            allow_resize=True,
        )
        seg.downsample(
            coarsest_mag=wk.Mag("2-2-1"),
            executor=sequential,
            chunk_shape=32,
            shard_shape=64,
        )
        rgb = ds.add_layer(
            "rgb",
            wk.COLOR_CATEGORY,
            dtype=np.uint8,
            num_channels=3,
            data_format="zarr3",
        )
        rgb.add_mag(1, chunk_shape=32, shard_shape=64).write(
            rng.integers(0, 255, (3, 40, 30, 20), dtype=np.uint8),
            absolute_offset=(0, 0, 0),
            allow_resize=True,
        )

    expected.update(_write_ours(org_dir / OURS_DATASET, rng))
    wkw_ds = wk.Dataset.open(org_dir / WKW_DATASET)
    zarr_ds = wk.Dataset.open(org_dir / ZARR_DATASET)
    for dataset_name, dataset, layer_name, mags in (
        (WKW_DATASET, wkw_ds, "color", ("1", "2-2-1")),
        (ZARR_DATASET, zarr_ds, "seg", ("1", "2-2-1")),
        (ZARR_DATASET, zarr_ds, "rgb", ("1",)),
    ):
        layer = dataset.get_layer(layer_name)
        for mag_name in mags:
            expected[(dataset_name, layer_name, Mag.parse(mag_name))] = _snapshot(
                layer, mag_name
            )
    return expected


def _write_ours(target: Path, rng: np.random.Generator) -> Expected:
    """A uint16 zarr (v2) layer at an offset, written with our own format layer."""
    topleft, size = Vec3(20, 8, 3), Vec3(50, 40, 30)
    data = rng.integers(0, 65535, (1, *size), dtype=np.uint16)
    array = create_mag(target / "gray" / "1", DataFormat.ZARR, np.uint16, 1)
    array.write(topleft, data)
    array.close()
    save_datasource(
        target / "datasource-properties.json",
        DatasourceProperties(
            name=OURS_DATASET,
            team=ORG,
            voxel_size=VoxelSize((4.0, 4.0, 40.0)),
            layers=(
                LayerProperties(
                    name="gray",
                    category=Category.COLOR,
                    bounding_box=BoundingBox(topleft, size),
                    element_class=ElementClass.UINT16,
                    data_format=DataFormat.ZARR,
                    mags=(MagProperties(mag=Mag(1, 1, 1), path="./gray/1"),),
                    num_channels=1,
                ),
            ),
        ),
    )
    return {(OURS_DATASET, "gray", Mag(1, 1, 1)): MagData(topleft, data)}
