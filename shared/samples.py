"""Generated sample datasets that look like tissue rather than noise.

`generate_cells` makes an EM-like volume: Voronoi cells with dark membranes, a grainy
cytoplasm and a few dark organelles, plus the matching segmentation (one id per cell,
0 on membranes). `write_sample_dataset` stores it as a WEBKNOSSOS dataset with a full
mag pyramid, written into a staging folder and moved into place in one rename.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from shared.conversions.downsample import (
    downsample_mean,
    downsample_mode,
    mag_pyramid_factors,
)
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

logger = logging.getLogger(__name__)

Progress = Callable[[str, float], None]


def _box_blur(volume: np.ndarray) -> np.ndarray:
    """A cheap 3-tap blur on every axis; turns white noise into EM-like grain."""
    out = volume.astype(np.float32)
    for axis in range(3):
        out = (np.roll(out, 1, axis) + out + np.roll(out, -1, axis)) / 3.0
    return out


def _smooth_noise(
    rng: np.random.Generator, shape: tuple[int, int, int], *, cell: int
) -> np.ndarray:
    """Low-frequency noise in [-1, 1]: coarse random values, upsampled and blurred."""
    coarse = rng.uniform(-1, 1, size=tuple(-(-s // cell) + 1 for s in shape))
    fine = coarse.repeat(cell, 0).repeat(cell, 1).repeat(cell, 2)
    fine = fine[: shape[0], : shape[1], : shape[2]].astype(np.float32)
    for _ in range(cell // 4):
        fine = _box_blur(fine)
    return fine / max(float(np.abs(fine).max()), 1e-6)


def generate_cells(
    shape: tuple[int, int, int] = (256, 256, 256),
    *,
    cells: int = 64,
    seed: int = 7,
    anisotropy: tuple[float, float, float] = (1.0, 1.0, 1.0),
) -> tuple[np.ndarray, np.ndarray]:
    """Return (color uint8, segmentation uint32), both shaped (x, y, z)."""
    rng = np.random.default_rng(seed)
    sx, sy, sz = shape
    seeds = rng.uniform(0, 1, size=(cells, 3)) * np.array(shape, dtype=np.float64)
    scale = np.asarray(anisotropy, dtype=np.float32)
    xs = (np.arange(sx, dtype=np.float32) * scale[0])[:, None, None]
    ys = (np.arange(sy, dtype=np.float32) * scale[1])[None, :, None]
    segmentation = np.zeros(shape, dtype=np.uint32)
    membrane = np.zeros(shape, dtype=bool)
    wobble = _smooth_noise(rng, shape, cell=12) * 2.0
    xy = xs**2 + ys**2  # reused: |p - c|^2 = |p|^2 - 2 p.c + |c|^2, per slab
    slab = 32
    for z0 in range(0, sz, slab):
        zs = (np.arange(z0, min(z0 + slab, sz), dtype=np.float32) * scale[2])[
            None, None, :
        ]
        shape_slab = (sx, sy, zs.shape[2])
        base = xy + zs**2
        best = np.full(shape_slab, np.inf, dtype=np.float32)
        second = best.copy()
        owner = np.zeros(shape_slab, dtype=np.uint32)
        d = np.empty(shape_slab, dtype=np.float32)
        tmp = np.empty(shape_slab, dtype=np.float32)
        for index, (cx, cy, cz) in enumerate(seeds * scale):
            np.subtract(base, 2 * cx * xs + 2 * cy * ys, out=d)
            d -= 2 * cz * zs
            d += cx * cx + cy * cy + cz * cz
            owner[d < best] = index + 1
            np.maximum(best, d, out=tmp)
            np.minimum(second, tmp, out=second)
            np.minimum(best, d, out=best)
        np.maximum(best, 0, out=best)
        # The bisector between the two nearest seeds is where a membrane runs.
        gap = np.sqrt(second) - np.sqrt(best) + wobble[:, :, z0 : z0 + slab]
        membrane[:, :, z0 : z0 + slab] = gap < 2.5
        segmentation[:, :, z0 : z0 + slab] = owner
    segmentation[membrane] = 0

    cytoplasm = rng.normal(0.0, 1.0, size=shape).astype(np.float32)
    grain = _box_blur(cytoplasm) * 18.0
    per_cell = rng.uniform(135, 185, size=cells + 1).astype(np.float32)
    color = per_cell[segmentation] + grain
    color[membrane] = 45.0 + grain[membrane] * 0.5
    for _ in range(cells * 2):
        # Organelles: small dark spheres inside cells.
        center = rng.uniform(0, 1, 3) * np.array(shape)
        radius = rng.uniform(3, 7)
        lo = np.maximum(np.floor(center - radius).astype(int), 0)
        hi = np.minimum(np.ceil(center + radius).astype(int) + 1, shape)
        gx, gy, gz = np.ogrid[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        inside = (gx - center[0]) ** 2 + (gy - center[1]) ** 2 + (
            gz - center[2]
        ) ** 2 <= radius**2
        region = color[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        region[inside] = region[inside] * 0.55
    color += rng.normal(0.0, 6.0, size=shape).astype(np.float32)
    return np.clip(color, 0, 255).astype(np.uint8), segmentation


def write_sample_dataset(
    binary_data: Path,
    organization: str,
    name: str = "sample_dataset",
    *,
    shape: tuple[int, int, int] = (256, 256, 256),
    voxel_size: tuple[float, float, float] = (11.24, 11.24, 28.0),
    progress: Progress | None = None,
) -> Path:
    """Write the sample as `binary_data/organization/name` (WKW, with a mag pyramid).

    Returns the dataset folder. Raises FileExistsError if it already exists.
    """
    org_dir = binary_data / organization
    target = org_dir / name
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    org_dir.mkdir(parents=True, exist_ok=True)
    report = progress or (lambda _stage, _fraction: None)
    report("generating cells", 0.0)
    color, segmentation = generate_cells(
        shape, anisotropy=(1.0, 1.0, voxel_size[2] / voxel_size[0])
    )
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=org_dir))
    try:
        factors = mag_pyramid_factors(Vec3(*shape), voxel_size)
        layers = []
        plan = [
            ("color", Category.COLOR, color, downsample_mean),
            ("segmentation", Category.SEGMENTATION, segmentation, downsample_mode),
        ]
        for index, (layer_name, category, data, reduce) in enumerate(plan):
            mags: list[MagProperties] = []
            block = data[None]
            mag = Mag(1, 1, 1)
            for level in range(len(factors) + 1):
                if level:
                    block = reduce(block, factors[level - 1])
                    mag = Mag(*(mag.to_vec3() * factors[level - 1]))
                path = staging / layer_name / mag.to_layer_name()
                array = create_mag(path, DataFormat.WKW, block.dtype, 1)
                array.write(Vec3(0, 0, 0), block)
                array.close()
                mags.append(
                    MagProperties(mag=mag, path=f"./{layer_name}/{mag.to_layer_name()}")
                )
                done = (index + (level + 1) / (len(factors) + 1)) / len(plan)
                report(f"writing {layer_name} mag {mag}", done)
            layers.append(
                LayerProperties(
                    name=layer_name,
                    category=category,
                    bounding_box=BoundingBox.of((0, 0, 0), shape),
                    element_class=ElementClass.from_dtype(data.dtype),
                    data_format=DataFormat.WKW,
                    mags=tuple(mags),
                    largest_segment_id=(
                        int(segmentation.max())
                        if category is Category.SEGMENTATION
                        else None
                    ),
                    num_channels=1,
                )
            )
        properties = DatasourceProperties(
            name=name,
            team=organization,
            voxel_size=VoxelSize(voxel_size),
            layers=tuple(layers),
            default_view_configuration={
                "position": [shape[0] // 2, shape[1] // 2, shape[2] // 2],
                "zoom": 1.0,
            },
        )
        # Metadata last: a half-written dataset never looks complete to a scan.
        save_datasource(staging / "datasource-properties.json", properties)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    report("done", 1.0)
    logger.info("wrote sample dataset %s/%s", organization, name)
    return target
