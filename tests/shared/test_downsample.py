"""Downsampling: mean for color, mode for segmentation, anisotropy-aware pyramids."""

from __future__ import annotations

import numpy as np

from shared.conversions.downsample import (
    downsample_mean,
    downsample_mode,
    mag_pyramid_factors,
)
from shared.geometry import Vec3


def test_mean_averages_each_window_and_rounds() -> None:
    block = np.arange(8, dtype=np.uint8).reshape(1, 2, 2, 2)
    assert downsample_mean(block, Vec3(2, 2, 2)).tolist() == [[[[4]]]]  # 3.5 -> 4
    assert downsample_mean(block, Vec3(2, 1, 1)).shape == (1, 1, 2, 2)


def test_mean_pads_odd_edges_with_the_border_value_not_zero() -> None:
    block = np.full((1, 3, 2, 2), 200, dtype=np.uint8)
    out = downsample_mean(block, Vec3(2, 2, 2))
    assert out.shape == (1, 2, 1, 1)
    assert (out == 200).all()


def test_mode_keeps_existing_ids_and_picks_the_most_frequent() -> None:
    block = np.array([7, 7, 7, 9, 9, 1, 2, 3], dtype=np.uint64).reshape(
        1, 2, 2, 2, order="F"
    )
    out = downsample_mode(block, Vec3(2, 2, 2))
    assert out.dtype == np.uint64
    assert out.item() == 7


def test_mode_breaks_ties_towards_the_smallest_id_and_handles_huge_ids() -> None:
    big = np.iinfo(np.uint64).max
    block = np.array([big, big, 5, 5, 1, 2, 3, 4], dtype=np.uint64).reshape(1, 2, 2, 2)
    assert downsample_mode(block, Vec3(2, 2, 2)).item() == 5


def test_mode_matches_a_plain_python_reference_on_random_data() -> None:
    rng = np.random.default_rng(0)
    block = rng.integers(0, 4, size=(1, 8, 6, 4), dtype=np.uint32)
    out = downsample_mode(block, Vec3(2, 2, 1), slab=7)
    for x in range(4):
        for y in range(3):
            for z in range(4):
                window = (
                    block[0, 2 * x : 2 * x + 2, 2 * y : 2 * y + 2, z].ravel().tolist()
                )
                counts = {v: window.count(v) for v in window}
                best = min(counts, key=lambda v: (-counts[v], v))
                assert out[0, x, y, z] == best


def test_pyramid_keeps_thick_z_until_xy_catch_up() -> None:
    factors = mag_pyramid_factors(Vec3(1024, 1024, 100), (10.0, 10.0, 40.0))
    assert factors[0] == Vec3(2, 2, 1)
    assert factors[1] == Vec3(2, 2, 1)
    assert factors[2] == Vec3(2, 2, 2)


def test_pyramid_stops_when_the_largest_side_fits_one_chunk() -> None:
    factors = mag_pyramid_factors(Vec3(256, 256, 256), (1.0, 1.0, 1.0))
    assert len(factors) == 3  # 256 -> 128 -> 64 -> 32
    assert mag_pyramid_factors(Vec3(20, 20, 20), (1.0, 1.0, 1.0)) == []
