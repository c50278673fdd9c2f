"""The reader LRU and the wire layout, with real arrays from the sample data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from datastore.reading import ReaderCache, voxels_to_wire, wire_shape
from shared.datasource import load_datasource
from shared.formats import FormatError, VoxelArray, open_mag
from shared.geometry import BoundingBox
from tests.datastore.samples import Expected


class CountingOpener:
    """Opens the sample's color mag 1 for real and counts how often."""

    def __init__(self, binary_data: Path) -> None:
        self.dataset_dir = binary_data / "lab" / "wkw_ds"
        self.layer = load_datasource(
            self.dataset_dir / "datasource-properties.json"
        ).get_layer("color")
        self.opened: list[VoxelArray] = []

    def __call__(self) -> VoxelArray:
        array = open_mag(self.dataset_dir, self.layer, self.layer.mags[0])
        self.opened.append(array)
        return array


KEY = ("lab", "wkw_ds", "color", "mag-1")  # the cache only needs (org, dataset, ...)


@pytest.fixture
def opener(samples: tuple[Path, Expected]) -> CountingOpener:
    return CountingOpener(samples[0])


def test_an_open_array_is_reused_until_its_dataset_is_invalidated(
    opener: CountingOpener,
) -> None:
    cache = ReaderCache()
    box = BoundingBox.of(0, 8)
    with cache.use(KEY, opener) as first:  # type: ignore[arg-type]
        first.read(box)
    with cache.use(KEY, opener) as second:  # type: ignore[arg-type]
        assert second is first
    assert len(opener.opened) == 1
    cache.invalidate({("lab", "other")})
    with cache.use(KEY, opener):  # type: ignore[arg-type]
        pass
    assert len(opener.opened) == 1
    cache.invalidate({("lab", "wkw_ds")})
    with cache.use(KEY, opener) as third:  # type: ignore[arg-type]
        assert third is not first
    assert len(opener.opened) == 2
    cache.close_all()


def test_an_evicted_array_is_closed_only_after_its_last_reader(
    opener: CountingOpener,
) -> None:
    cache = ReaderCache(capacity=1)
    other = ("lab", "wkw_ds", "color", "other")
    box = BoundingBox.of(0, 8)
    with cache.use(KEY, opener) as busy:  # type: ignore[arg-type]
        with cache.use(other, opener):  # type: ignore[arg-type]
            pass  # evicts KEY while it is still in use
        busy.read(box)  # still open
    with pytest.raises(FormatError):
        busy.read(box)  # closed once released
    assert len(cache) == 1
    cache.close_all()


def test_wire_bytes_put_channels_fastest_then_x() -> None:
    data = np.arange(2 * 3 * 4 * 5, dtype=np.uint16).reshape(2, 3, 4, 5)
    wire = voxels_to_wire(data)
    assert bytes(wire) == data.astype("<u2").tobytes(order="F")
    assert wire_shape(data) == "2,3,4,5"
    assert wire_shape(data[:1]) == "3,4,5"
    big_endian = data.astype(">u2")
    assert bytes(voxels_to_wire(big_endian)) == bytes(wire)
