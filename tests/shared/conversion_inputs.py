"""Inputs for the conversion tests, each written by its format's reference library,
and an independent reference for what a converted dataset must hold.

Every writer returns the `(c, x, y, z)` volume the input holds, as the reference
library sees it.
"""

from __future__ import annotations

import gzip
import io
import warnings
import zipfile
from pathlib import Path

import numpy as np
import tensorstore as ts
import tifffile
import wkw
import zarr
from PIL import Image

SHAPE = (70, 50, 40)  # x, y, z: no side a multiple of 32


def volume(
    dtype: str = "uint8", shape: tuple[int, ...] = SHAPE, seed: int = 0
) -> np.ndarray:
    """A smooth-plus-noise `(1, x, y, z)` volume over most of the dtype's range."""
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "f":
        return rng.normal(0, 100, (1, *shape)).astype(dt)
    top = min(int(np.iinfo(dt).max), 60000)
    return rng.integers(0, top, (1, *shape), endpoint=True).astype(dt)


def labels(
    shape: tuple[int, ...] = SHAPE, dtype: str = "uint32", seed: int = 1
) -> np.ndarray:
    """Blocky segment ids (runs of 3 voxels) with a huge id somewhere."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 40, [-(-s // 3) for s in shape]).astype(dtype)
    data = (
        coarse.repeat(3, 0)
        .repeat(3, 1)
        .repeat(3, 2)[: shape[0], : shape[1], : shape[2]]
    )
    data = np.ascontiguousarray(data)
    data[5, 6, 7] = np.iinfo(np.dtype(dtype)).max // 3
    return data[np.newaxis]


def zyx(data: np.ndarray) -> np.ndarray:
    """`(1, x, y, z)` as the `(z, y, x)` stack image libraries write."""
    return np.ascontiguousarray(data[0].transpose(2, 1, 0))


def write_tiff(path: Path, data: np.ndarray, **kwargs: object) -> np.ndarray:
    tifffile.imwrite(path, zyx(data), photometric="minisblack", **kwargs)
    return data


def write_ome_tiff(
    path: Path, data: np.ndarray, voxel: tuple[float, float, float]
) -> np.ndarray:
    """`data` (c, x, y, z) as an OME-TIFF ZCYX with physical sizes in µm."""
    tifffile.imwrite(
        path,
        np.ascontiguousarray(data.transpose(3, 0, 2, 1)),
        photometric="minisblack",
        metadata={
            "axes": "ZCYX",
            "PhysicalSizeX": voxel[0],
            "PhysicalSizeY": voxel[1],
            "PhysicalSizeZ": voxel[2],
        },
    )
    return data


def write_slices(folder: Path, data: np.ndarray, suffix: str) -> np.ndarray:
    """One image per z (`slice_1`, `slice_2`, ... `slice_10`: natural order matters).

    Returns what the reference reader (PIL, tifffile) decodes, so lossy JPEG
    compares against its own decoding.
    """
    folder.mkdir(parents=True, exist_ok=True)
    decoded = []
    for z in range(data.shape[3]):
        plane = data[:, :, :, z].transpose(2, 1, 0)  # y, x, c
        image = plane[:, :, 0] if plane.shape[2] == 1 else plane
        path = folder / f"slice_{z + 1}{suffix}"
        if suffix in (".tif", ".tiff"):
            tifffile.imwrite(path, image)
            back = tifffile.imread(path)
        else:
            Image.fromarray(image).save(path)
            back = np.asarray(Image.open(path))
        decoded.append(back if back.ndim == 3 else back[:, :, np.newaxis])
    return np.stack(decoded, axis=-1).transpose(2, 1, 0, 3)


def write_zip(path: Path, folders: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PNG slices in a zip, one folder of members per entry ("" for the root)."""
    with zipfile.ZipFile(path, "w") as archive:
        for folder, data in folders.items():
            for z in range(data.shape[3]):
                buffer = io.BytesIO()
                Image.fromarray(data[0, :, :, z].T).save(buffer, format="PNG")
                name = f"{folder}/{z}.png" if folder else f"{z}.png"
                archive.writestr(name, buffer.getvalue())
    return folders


def write_nifti(
    path: Path, data: np.ndarray, zooms: tuple[float, float, float]
) -> np.ndarray:
    import nibabel

    image = nibabel.Nifti1Image(data[0], affine=np.diag([*zooms, 1.0]))
    image.header.set_zooms(zooms)
    image.header.set_xyzt_units("mm")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        nibabel.save(image, path)
    return data


def write_raw(path: Path, data: np.ndarray, order: str = "F") -> np.ndarray:
    if order == "F":
        path.write_bytes(np.asfortranarray(data).tobytes(order="F"))
    else:  # z fastest: a C-ordered (x, y, z, c) array
        path.write_bytes(np.ascontiguousarray(data.transpose(1, 2, 3, 0)).tobytes())
    return data


def write_zarr(path: Path, data: np.ndarray, zarr_format: int) -> np.ndarray:
    """A bare zarr array (c, x, y, z) with dimension names (v3) by zarr-python."""
    kwargs: dict[str, object] = {"chunks": (1, 32, 32, 32)}
    if zarr_format == 3:
        kwargs["dimension_names"] = ["c", "x", "y", "z"]
    array = zarr.create_array(
        store=str(path),
        shape=data.shape,
        dtype=data.dtype,
        zarr_format=zarr_format,
        **kwargs,  # type: ignore[arg-type]
    )
    array[...] = data
    return data


def write_ome_zarr(folder: Path, data: np.ndarray) -> np.ndarray:
    """An OME-Zarr 0.4 image (z, y, x) with one scale, by zarr-python."""
    group = zarr.open_group(str(folder), mode="w", zarr_format=2)
    group.attrs["multiscales"] = [
        {
            "version": "0.4",
            "axes": [
                {"name": "z", "type": "space", "unit": "nanometer"},
                {"name": "y", "type": "space", "unit": "nanometer"},
                {"name": "x", "type": "space", "unit": "nanometer"},
            ],
            "datasets": [
                {
                    "path": "0",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [20.0, 10.0, 10.0]}
                    ],
                }
            ],
        }
    ]
    array = group.create_array(
        "0", shape=zyx(data).shape, dtype=data.dtype, chunks=(16, 16, 16)
    )
    array[...] = zyx(data)
    return data


def write_tensorstore(path: Path, data: np.ndarray, driver: str) -> np.ndarray:
    """An N5 dataset or a precomputed volume (x, y, z[, c]) by TensorStore."""
    if driver == "n5":
        spec = {
            "driver": "n5",
            "kvstore": {"driver": "file", "path": str(path)},
            "metadata": {
                "dimensions": list(data.shape[1:]),
                "blockSize": [32, 32, 32],
                "dataType": data.dtype.name,
                "compression": {"type": "gzip"},
            },
            "create": True,
        }
        ts.open(spec).result()[...].write(data[0]).result()
        return data
    spec = {
        "driver": "neuroglancer_precomputed",
        "kvstore": {"driver": "file", "path": str(path)},
        "multiscale_metadata": {
            "data_type": data.dtype.name,
            "num_channels": 1,
            "type": "image",
        },
        "scale_metadata": {
            "size": list(data.shape[1:]),
            "resolution": [8, 8, 8],
            "chunk_size": [32, 32, 32],
            "encoding": "raw",
        },
        "create": True,
    }
    store = ts.open(spec).result()
    store[...].write(data[0][..., np.newaxis]).result()
    return data


def write_wkw_mag(path: Path, data: np.ndarray) -> np.ndarray:
    """A bare WKW mag folder (files of one 32³ block) written by the `wkw` package.

    WKW declares no extent: a converter sees the stored blocks, so the data comes
    back padded with zeros to whole blocks.
    """
    header = wkw.Header(data.dtype, num_channels=data.shape[0], file_len=1)
    with wkw.Dataset.create(str(path), header) as dataset:
        dataset.write((0, 0, 0), np.asfortranarray(data))
    padded = [-(-s // 32) * 32 for s in data.shape[1:]]
    out = np.zeros((data.shape[0], *padded), dtype=data.dtype)
    out[:, : data.shape[1], : data.shape[2], : data.shape[3]] = data
    return out


def gzip_file(path: Path) -> Path:
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


# -- the reference pyramid, written independently of shared.conversions ----------


def _pad_even(data: np.ndarray, factor: tuple[int, int, int]) -> np.ndarray:
    pad = [(0, 0)] + [(0, s % f) for s, f in zip(data.shape[1:], factor, strict=True)]
    return np.pad(data, pad, mode="edge")


def reference_down(
    data: np.ndarray, factor: tuple[int, int, int], *, mode: bool
) -> np.ndarray:
    """Mean (rounded half to even) or mode (smallest id on ties) of each window."""
    padded = _pad_even(data, factor)
    c, sx, sy, sz = padded.shape
    fx, fy, fz = factor
    windows = padded.reshape(c, sx // fx, fx, sy // fy, fy, sz // fz, fz)
    windows = windows.transpose(0, 1, 3, 5, 2, 4, 6).reshape(
        c, sx // fx, sy // fy, sz // fz, -1
    )
    if not mode:
        mean = windows.astype(np.float64).mean(axis=-1)
        return (
            np.rint(mean).astype(data.dtype)
            if data.dtype.kind in "ui"
            else mean.astype(data.dtype)
        )
    out = np.empty(windows.shape[:-1], dtype=data.dtype)
    flat_in = windows.reshape(-1, windows.shape[-1])
    flat_out = out.reshape(-1)
    for i, window in enumerate(flat_in):
        values, counts = np.unique(window, return_counts=True)
        flat_out[i] = values[np.argmax(counts)]  # unique sorts: ties -> smallest
    return out
