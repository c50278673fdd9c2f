"""The generated sample dataset is a real WEBKNOSSOS dataset that looks like cells."""

from __future__ import annotations

import warnings
from pathlib import Path

import numpy as np
import pytest

from shared.datasource import load_datasource
from shared.samples import generate_cells, write_sample_dataset

SHAPE = (64, 64, 48)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("samples")
    return write_sample_dataset(root, "org", "cells", shape=SHAPE)


def test_cells_have_membranes_and_many_segments() -> None:
    color, segmentation = generate_cells(SHAPE, cells=12, seed=1)
    assert color.shape == SHAPE
    assert color.dtype == np.uint8
    assert segmentation.dtype == np.uint32
    assert len(np.unique(segmentation)) >= 10
    membrane = segmentation == 0
    assert 0.01 < membrane.mean() < 0.5
    # Membranes are darker than cell interiors: it looks like EM, not noise.
    assert color[membrane].mean() < color[~membrane].mean() - 40


def test_sample_opens_with_the_official_webknossos_library(sample: Path) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import webknossos as wk

    dataset = wk.Dataset.open(sample)
    color, segmentation = generate_cells(SHAPE, anisotropy=(1.0, 1.0, 28.0 / 11.24))
    read = dataset.get_layer("color").get_mag(1).read()[0]
    np.testing.assert_array_equal(read, color)
    seg_layer = dataset.get_layer("segmentation")
    assert seg_layer.largest_segment_id == int(segmentation.max())
    mags = sorted(m.to_layer_name() for m in seg_layer.mags)
    assert mags == ["1", "2-2-1", "4-4-2"]


def test_downsampled_segmentation_keeps_only_existing_ids(sample: Path) -> None:
    props = load_datasource(sample / "datasource-properties.json")
    layer = props.get_layer("segmentation")
    from shared.formats import open_mag

    full = open_mag(sample, layer, layer.mags[0].mag).read(layer.bounding_box)
    coarse_mag = layer.mags[-1]
    coarse = open_mag(sample, layer, coarse_mag).read(
        layer.bounding_box.in_mag(coarse_mag.mag)
    )
    assert set(np.unique(coarse)) <= set(np.unique(full))


def test_writing_over_an_existing_dataset_is_refused_and_leaves_no_staging(
    sample: Path,
) -> None:
    with pytest.raises(FileExistsError):
        write_sample_dataset(sample.parent.parent, "org", "cells", shape=SHAPE)
    assert [p.name for p in sample.parent.iterdir()] == ["cells"]
