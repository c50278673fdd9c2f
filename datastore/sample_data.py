"""Sample datasets a datastore writes for "Add a Sample Dataset".

`em_cells`: EM-like cells, color + segmentation (`shared.samples`); `mri_blobs`: a
smooth 3D blob phantom, uint16, one color layer. Both are written into a staging
folder and renamed into `binaryData/<organization>/<name>` in one step.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Final

import numpy as np

from datastore.errors import BadRequest
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
from shared.samples import write_sample_dataset

SAMPLE_KINDS: Final = ("em_cells", "mri_blobs")
EM_SHAPE: Final = (128, 128, 64)
MRI_SHAPE: Final = (96, 96, 96)


def mri_phantom(shape: tuple[int, int, int], seed: int = 7) -> np.ndarray:
    """A smooth uint16 volume: a bright ellipsoid "head" with Gaussian blobs inside."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    x, y, z = np.meshgrid(*axes, indexing="ij")
    radius = (x / 0.85) ** 2 + (y / 0.75) ** 2 + (z / 0.8) ** 2
    head = 1 / (1 + np.exp(np.clip((radius - 1) * 25, -50, 50)))
    volume = 0.35 * head
    for _ in range(12):
        cx, cy, cz = rng.uniform(-0.5, 0.5, 3)
        sigma = rng.uniform(0.06, 0.2)
        weight = rng.uniform(0.2, 0.6)
        r2 = (x - cx) ** 2 + (y - cy) ** 2 + (z - cz) ** 2
        volume += weight * np.exp(-r2 / (2 * sigma**2)) * head
    volume = volume / float(volume.max())
    return (volume * 60000).astype(np.uint16)


def write_mri_sample(binary_data: Path, organization: str, name: str) -> Path:
    """Write the blob phantom as a WKW dataset (mag 1), staged then renamed."""
    org_dir = binary_data / organization
    target = org_dir / name
    if target.exists():
        raise FileExistsError(f"{target} already exists")
    org_dir.mkdir(parents=True, exist_ok=True)
    data = mri_phantom(MRI_SHAPE)
    staging = Path(tempfile.mkdtemp(prefix=f".staging-{name}-", dir=org_dir))
    try:
        mag = Mag(1, 1, 1)
        array = create_mag(
            staging / "color" / mag.to_layer_name(), DataFormat.WKW, data.dtype, 1
        )
        array.write(Vec3(0, 0, 0), data[None])
        array.close()
        layer = LayerProperties(
            name="color",
            category=Category.COLOR,
            bounding_box=BoundingBox.of((0, 0, 0), MRI_SHAPE),
            element_class=ElementClass.from_dtype(data.dtype),
            data_format=DataFormat.WKW,
            mags=(MagProperties(mag=mag, path=f"./color/{mag.to_layer_name()}"),),
            num_channels=1,
        )
        properties = DatasourceProperties(
            name=name,
            team=organization,
            voxel_size=VoxelSize((1000.0, 1000.0, 1000.0)),
            layers=(layer,),
        )
        save_datasource(staging / "datasource-properties.json", properties)
        staging.replace(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def sample_writer(kind: str) -> Callable[[Path, str, str], Path]:
    """The function writing sample `kind` into binaryData/<org>/<name>."""
    if kind == "em_cells":
        return lambda root, org, name: write_sample_dataset(
            root, org, name, shape=EM_SHAPE
        )
    if kind == "mri_blobs":
        return write_mri_sample
    raise BadRequest("unknown sample kind", {"kinds": list(SAMPLE_KINDS)})
