"""Downsampling of voxel blocks: mean for color data, mode for segmentation ids.

Blocks are numpy arrays shaped (channels, x, y, z). A factor like (2, 2, 1) halves x
and y and keeps z. Odd edges are padded by repeating the last voxel so the border of
a layer is not darkened by zeros.
"""

from __future__ import annotations

import numpy as np

from shared.geometry import Vec3


def _pad_to_multiple(block: np.ndarray, factor: Vec3) -> np.ndarray:
    pad = [(0, 0)] + [
        (0, (-s) % f) for s, f in zip(block.shape[1:], factor, strict=True)
    ]
    if any(p[1] for p in pad):
        return np.pad(block, pad, mode="edge")
    return block


def _windows(block: np.ndarray, factor: Vec3) -> np.ndarray:
    """View (c, x, y, z) as (c, X, Y, Z, fx*fy*fz) windows."""
    c, sx, sy, sz = block.shape
    fx, fy, fz = factor
    shaped = block.reshape(c, sx // fx, fx, sy // fy, fy, sz // fz, fz)
    return shaped.transpose(0, 1, 3, 5, 2, 4, 6).reshape(
        c, sx // fx, sy // fy, sz // fz, fx * fy * fz
    )


def downsample_mean(block: np.ndarray, factor: Vec3) -> np.ndarray:
    """Average each window; integer types are rounded, floats stay floats."""
    block = _pad_to_multiple(block, factor)
    if factor.prod() == 1:
        return block.copy()
    windows = _windows(block, factor)
    mean = windows.mean(axis=-1, dtype=np.float64)
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        return np.clip(np.rint(mean), info.min, info.max).astype(block.dtype)
    return mean.astype(block.dtype)


def downsample_mode(
    block: np.ndarray, factor: Vec3, *, slab: int = 1 << 18
) -> np.ndarray:
    """Most frequent value of each window (ties: the smallest id).

    Segment ids must never be averaged: the mean of two ids is a third, unrelated id.
    Works in slabs to keep the (n, k, k) comparison bounded in memory.
    """
    block = _pad_to_multiple(block, factor)
    if factor.prod() == 1:
        return block.copy()
    windows = _windows(block, factor)
    out_shape = windows.shape[:-1]
    flat = np.sort(windows.reshape(-1, windows.shape[-1]), axis=1)
    result = np.empty(flat.shape[0], dtype=block.dtype)
    for start in range(0, flat.shape[0], slab):
        part = flat[start : start + slab]
        counts = (part[:, :, None] == part[:, None, :]).sum(axis=2)
        # argmax takes the first maximum; rows are sorted, so ties give the smallest id.
        result[start : start + slab] = part[
            np.arange(part.shape[0]), counts.argmax(axis=1)
        ]
    return result.reshape(out_shape)


def mag_pyramid_factors(
    size: Vec3, voxel_size: tuple[float, float, float], *, min_side: int = 32
) -> list[Vec3]:
    """Successive downsampling factors until the largest side fits `min_side`.

    Anisotropy-aware: an axis is not downsampled while its voxel extent is at least
    twice the smallest one, so thick z slices are kept until x and y catch up
    (11x11x24 nm gives 2-2-1 then 4-4-2, as webknossos does).
    """
    factors: list[Vec3] = []
    current = list(size)
    extent = list(voxel_size)
    while max(current) > min_side:
        smallest = min(extent)
        step = [
            2 if e < 2 * smallest and s > 1 else 1
            for e, s in zip(extent, current, strict=True)
        ]
        if step == [1, 1, 1]:
            break
        factors.append(Vec3(*step))
        current = [-(-s // f) for s, f in zip(current, step, strict=True)]
        extent = [e * f for e, f in zip(extent, step, strict=True)]
    return factors
