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


_WIDER = {
    np.dtype(np.uint8): np.uint16,
    np.dtype(np.int8): np.int16,
    np.dtype(np.uint16): np.uint32,
    np.dtype(np.int16): np.int32,
    np.dtype(np.uint32): np.uint64,
    np.dtype(np.int32): np.int64,
}


def _sum_windows(block: np.ndarray, factor: Vec3) -> np.ndarray:
    """Exact sum of each window, one axis at a time (z, y, then x), so most adds
    read contiguous runs and each step shrinks the data."""
    total = block
    wide = _WIDER[np.dtype(block.dtype)]
    for axis in (3, 2, 1):
        f = factor[axis - 1]
        if f == 1:
            continue
        parts = [total[(slice(None),) * axis + (slice(i, None, f),)] for i in range(f)]
        summed = parts[0].astype(wide)
        for part in parts[1:]:
            summed += part
        total = summed
    if total is block:
        total = block.astype(wide)
    return total


def downsample_mean(block: np.ndarray, factor: Vec3) -> np.ndarray:
    """Average each window; integer types are rounded (half to even), floats stay
    floats."""
    block = _pad_to_multiple(block, factor)
    count = factor.prod()
    if count == 1:
        return block.copy()
    if np.dtype(block.dtype) in _WIDER:
        # Exact integer sums, divided in a float type that holds them exactly, give
        # the same rounding as the float64 mean below, several times faster.
        total = _sum_windows(block, factor)
        exact = np.float32 if block.dtype.itemsize <= 2 else np.float64
        mean: np.ndarray = np.divide(total, count, dtype=exact)
        out: np.ndarray = np.rint(mean, out=mean).astype(block.dtype)
        return out
    windows = _windows(block, factor)
    mean64 = windows.mean(axis=-1, dtype=np.float64)
    if np.issubdtype(block.dtype, np.integer):
        info = np.iinfo(block.dtype)
        rounded: np.ndarray = np.clip(np.rint(mean64), info.min, info.max)
        return rounded.astype(block.dtype)
    result: np.ndarray = mean64.astype(block.dtype)
    return result


def downsample_mode(
    block: np.ndarray, factor: Vec3, *, slab: int = 1 << 20
) -> np.ndarray:
    """Most frequent value of each window (ties: the smallest id).

    Segment ids must never be averaged: the mean of two ids is a third, unrelated id.
    Each window is sorted; the mode ends the longest run of equal values (the first
    such run on ties, so the smallest id). Works in slabs to bound memory.
    """
    block = _pad_to_multiple(block, factor)
    if factor.prod() == 1:
        return block.copy()
    windows = _windows(block, factor)
    out_shape = windows.shape[:-1]
    k = windows.shape[-1]
    flat = windows.reshape(-1, k)
    result = np.empty(flat.shape[0], dtype=block.dtype)
    for start in range(0, flat.shape[0], slab):
        part = np.sort(flat[start : start + slab], axis=1)
        runs = np.ones(part.shape, dtype=np.int8)
        for j in range(1, k):
            same = part[:, j] == part[:, j - 1]
            runs[:, j] = np.where(same, runs[:, j - 1] + 1, 1)
        result[start : start + slab] = part[
            np.arange(part.shape[0]), runs.argmax(axis=1)
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
        # Axes down to one voxel (a single slice) cannot shrink and do not count.
        smallest = min(e for e, s in zip(extent, current, strict=True) if s > 1)
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
