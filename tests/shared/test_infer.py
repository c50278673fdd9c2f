"""Inferring datasource properties from folders alone, for every format."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import zarr

from shared.datasource import Category, DataFormat, ElementClass, VoxelSize
from shared.formats import (
    FormatError,
    create_mag,
    infer_datasource,
    infer_layer,
    open_mag,
)
from shared.geometry import BoundingBox, Mag, Vec3
from tests.shared.conftest import COLOR_ORIGIN, WRITERS, WebknossosDataset, make_data


@pytest.fixture
def webknossos_copy(webknossos_dataset: WebknossosDataset, tmp_path: Path) -> Path:
    """The webknossos-written dataset without its datasource-properties.json."""
    target = tmp_path / "wkds"
    shutil.copytree(webknossos_dataset.path, target)
    (target / "datasource-properties.json").unlink()
    return target


def test_webknossos_dataset_without_properties_is_inferred(
    webknossos_copy: Path,
) -> None:
    props = infer_datasource(webknossos_copy, name="wkds", team="lab")
    assert (props.name, props.team) == ("wkds", "lab")
    layers = {layer.name: layer for layer in props.layers}
    assert set(layers) == {"color", "segmentation", "rgb"}

    color = layers["color"]
    assert color.data_format == DataFormat.WKW
    assert color.element_class == ElementClass.UINT8
    assert color.category == Category.COLOR
    assert [m.mag for m in color.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert [m.path for m in color.mags] == ["./color/1", "./color/2-2-1"]
    data_box = BoundingBox(COLOR_ORIGIN, Vec3(100, 80, 60))
    assert color.bounding_box.contains_box(data_box)
    # per WKW block (32³), not per 1024³ file
    assert color.bounding_box.size.max() <= 128

    seg = layers["segmentation"]
    assert seg.data_format == DataFormat.ZARR3
    assert seg.category == Category.SEGMENTATION
    assert seg.element_class == ElementClass.UINT32
    assert [m.mag for m in seg.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert seg.mags[0].axis_order == {"c": 0, "x": 1, "y": 2, "z": 3}
    assert seg.bounding_box.contains_box(BoundingBox.of(0, (64, 48, 40)))
    assert seg.bounding_box.size.max() <= 64

    rgb = layers["rgb"]
    assert (rgb.element_class, rgb.num_channels) == (ElementClass.UINT24, 3)
    # the zarr3 layer's OME metadata carries the voxel size
    assert props.voxel_size == VoxelSize((11.0, 11.0, 24.0), "nanometer")


def test_inferred_webknossos_dataset_reads_the_same_data(
    webknossos_copy: Path, webknossos_dataset: WebknossosDataset
) -> None:
    props = infer_datasource(webknossos_copy, name="wkds")
    expected = {
        "color": (webknossos_dataset.color, COLOR_ORIGIN),
        "segmentation": (webknossos_dataset.segmentation, Vec3(0, 0, 0)),
        "rgb": (webknossos_dataset.rgb, Vec3(0, 0, 0)),
    }
    for layer in props.layers:
        data, origin = expected[layer.name]
        with open_mag(webknossos_copy, layer, Mag(1, 1, 1)) as array:
            got = array.read(BoundingBox(origin, Vec3(*data.shape[1:])))
        np.testing.assert_array_equal(got, data)


def test_given_voxel_size_wins_over_metadata(webknossos_copy: Path) -> None:
    size = VoxelSize((4.0, 4.0, 4.0), "nanometer")
    assert (
        infer_datasource(webknossos_copy, name="x", voxel_size=size).voxel_size == size
    )


@pytest.mark.parametrize(
    ("kind", "data_format"),
    [
        ("wkw-raw", DataFormat.WKW),
        ("wkw-lz4hc", DataFormat.WKW),
        ("tensorstore-zarr3-sharded", DataFormat.ZARR3),
        ("tensorstore-zarr", DataFormat.ZARR),
    ],
)
def test_mag_folders_of_each_format_make_a_layer(
    kind: str, data_format: DataFormat, tmp_path: Path
) -> None:
    w = WRITERS[kind](tmp_path / "ds", make_data("uint16"))
    layer = infer_layer(w.dataset_dir / "color")
    assert layer is not None
    assert layer.data_format == data_format
    assert layer.element_class == ElementClass.UINT16
    assert layer.bounding_box.contains_box(w.box)
    with open_mag(w.dataset_dir, layer, Mag(1, 1, 1)) as array:
        np.testing.assert_array_equal(array.read(w.box), w.data)


def test_n5_mag_folders_make_a_layer(tmp_path: Path) -> None:
    data = make_data("uint8", shape=(40, 30, 20))
    for name, factor in (("1", 1), ("2-2-2", 2)):
        ts.open(
            {
                "driver": "n5",
                "kvstore": {"driver": "file", "path": str(tmp_path / "em" / name)},
                "metadata": {
                    "dimensions": [40 // factor, 30 // factor, 20 // factor],
                    "blockSize": [16, 16, 16],
                    "dataType": "uint8",
                    "compression": {"type": "raw"},
                },
                "create": True,
            }
        ).result().write(data[0, ::factor, ::factor, ::factor]).result()
    layer = infer_layer(tmp_path / "em")
    assert layer is not None
    assert layer.data_format == DataFormat.N5
    assert [m.mag for m in layer.mags] == [Mag(1, 1, 1), Mag(2, 2, 2)]
    assert layer.bounding_box == BoundingBox.of(0, (40, 30, 20))


def test_ome_zarr_v2_multiscales_give_mags_axis_order_and_voxel_size(
    tmp_path: Path,
) -> None:
    layer_dir = tmp_path / "ds" / "raw"
    data = make_data("uint16", shape=(64, 48, 20))
    datasets = []
    for level, (fx, fz) in enumerate(((1, 1), (2, 1))):
        zyx = np.ascontiguousarray(data[0, ::fx, ::fx, ::fz].transpose(2, 1, 0))
        array = zarr.create_array(
            store=str(layer_dir / str(level)),
            shape=zyx.shape,
            chunks=(16, 16, 16),
            dtype="uint16",
            zarr_format=2,
        )
        array[...] = zyx
        scale = [0.5 * fz, 0.25 * fx, 0.25 * fx]
        datasets.append(
            {
                "path": str(level),
                "coordinateTransformations": [{"type": "scale", "scale": scale}],
            }
        )
    axes = [{"name": a, "type": "space", "unit": "micrometer"} for a in "zyx"]
    (layer_dir / ".zattrs").write_text(
        json.dumps(
            {"multiscales": [{"version": "0.4", "axes": axes, "datasets": datasets}]}
        )
    )
    (layer_dir / ".zgroup").write_text('{"zarr_format": 2}')

    props = infer_datasource(tmp_path / "ds", name="ome")
    (layer,) = props.layers
    assert layer.data_format == DataFormat.ZARR
    assert [m.mag for m in layer.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert [m.path for m in layer.mags] == ["./raw/0", "./raw/1"]
    assert layer.mags[0].axis_order == {"x": 2, "y": 1, "z": 0}
    assert layer.bounding_box == BoundingBox.of(0, (64, 48, 20))
    assert props.voxel_size == VoxelSize((0.25, 0.25, 0.5), "micrometer")
    with open_mag(tmp_path / "ds", layer, Mag(2, 2, 1)) as opened:
        got = opened.read(BoundingBox.of(0, (32, 24, 20)))
    np.testing.assert_array_equal(got, data[:, ::2, ::2, :])


def test_ome_zarr3_with_time_and_channel_axes_is_inferred(tmp_path: Path) -> None:
    w = WRITERS["zarr-python-zarr3-tczyx"](tmp_path / "ds", make_data("uint8", 2))
    axes = [
        {"name": "t", "type": "time"},
        {"name": "c", "type": "channel"},
        *({"name": a, "type": "space", "unit": "nanometer"} for a in "zyx"),
    ]
    meta = {
        "zarr_format": 3,
        "node_type": "group",
        "attributes": {
            "ome": {
                "version": "0.5",
                "multiscales": [
                    {
                        "axes": axes,
                        "datasets": [
                            {
                                "path": "0",
                                "coordinateTransformations": [
                                    {"type": "scale", "scale": [1, 1, 30, 6, 5]}
                                ],
                            }
                        ],
                    }
                ],
            }
        },
    }
    (w.dataset_dir / "color" / "zarr.json").write_text(json.dumps(meta))
    props = infer_datasource(w.dataset_dir, name="ome5d")
    (layer,) = props.layers
    assert layer.data_format == DataFormat.ZARR3
    assert layer.num_channels == 2
    assert layer.mags[0].axis_order == {"c": 1, "x": 4, "y": 3, "z": 2}
    assert props.voxel_size == VoxelSize((5.0, 6.0, 30.0))
    with open_mag(w.dataset_dir, layer, Mag(1, 1, 1)) as array:
        np.testing.assert_array_equal(array.read(w.box), w.data)


def test_precomputed_info_gives_scales_category_offset_and_voxel_size(
    tmp_path: Path,
) -> None:
    layer_dir = tmp_path / "ds" / "cells"
    data = make_data("uint64", shape=(40, 36, 10))
    for factor in (1, 2):
        store = ts.open(
            {
                "driver": "neuroglancer_precomputed",
                "kvstore": {"driver": "file", "path": str(layer_dir)},
                "multiscale_metadata": {
                    "type": "segmentation",
                    "data_type": "uint64",
                    "num_channels": 1,
                },
                "scale_metadata": {
                    "resolution": [4 * factor, 4 * factor, 40],
                    "size": [40 // factor, 36 // factor, 10],
                    "voxel_offset": [8 // factor, 6 // factor, 2],
                    "chunk_size": [16, 16, 8],
                    "encoding": "raw",
                },
                "create": True,
            }
        ).result()
        part = data[0, ::factor, ::factor, :]
        store[..., 0].write(part).result()
    props = infer_datasource(tmp_path / "ds", name="ng")
    (layer,) = props.layers
    assert layer.data_format == DataFormat.NEUROGLANCER_PRECOMPUTED
    assert layer.category == Category.SEGMENTATION
    assert layer.element_class == ElementClass.UINT64
    assert [m.mag for m in layer.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert [m.path for m in layer.mags] == ["./cells/4_4_40", "./cells/8_8_40"]
    assert layer.bounding_box == BoundingBox.of((8, 6, 2), (40, 36, 10))
    assert props.voxel_size == VoxelSize((4.0, 4.0, 40.0))
    with open_mag(tmp_path / "ds", layer, Mag(2, 2, 1)) as array:
        got = array.read(BoundingBox.of((4, 3, 2), (20, 18, 10)))
    np.testing.assert_array_equal(got, data[:, ::2, ::2, :])


def test_layers_written_by_create_mag_are_found(tmp_path: Path) -> None:
    data = make_data("uint8", shape=(50, 40, 30))
    for data_format, name in ((DataFormat.ZARR, "z2"), (DataFormat.ZARR3, "z3")):
        with create_mag(tmp_path / "ds" / name / "1", data_format, np.uint8) as array:
            array.write(Vec3(0, 0, 0), data)
    layers = {
        layer.name: layer
        for layer in infer_datasource(tmp_path / "ds", name="x").layers
    }
    assert layers["z2"].data_format == DataFormat.ZARR
    assert layers["z3"].data_format == DataFormat.ZARR3
    assert layers["z3"].bounding_box == BoundingBox.of(0, (50, 40, 30))


def test_folder_without_mags_is_not_a_layer(tmp_path: Path) -> None:
    (tmp_path / "notes" / "misc").mkdir(parents=True)
    (tmp_path / "notes" / "readme.txt").write_text("hello")
    assert infer_layer(tmp_path / "notes") is None


def test_dataset_without_layers_names_the_reasons(tmp_path: Path) -> None:
    (tmp_path / "ds" / "color" / "1").mkdir(parents=True)
    (tmp_path / "ds" / "bad name!").mkdir()
    with pytest.raises(FormatError, match="no layers found") as info:
        infer_datasource(tmp_path / "ds", name="x")
    message = str(info.value)
    assert "color: no mag folders" in message
    assert "not a valid layer name" in message
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FormatError, match="no layers found: the dataset folder has no"):
        infer_datasource(empty, name="x")


def test_corrupt_metadata_skips_the_layer_with_a_reason(tmp_path: Path) -> None:
    (tmp_path / "ds" / "color" / "1").mkdir(parents=True)
    (tmp_path / "ds" / "color" / "1" / "zarr.json").write_text("{not json")
    with pytest.raises(FormatError, match=r"corrupt metadata zarr\.json"):
        infer_datasource(tmp_path / "ds", name="x")


def test_symlinked_layers_count_only_inside_the_allowed_roots(tmp_path: Path) -> None:
    w = WRITERS["wkw-raw"](tmp_path / "elsewhere", make_data("uint8"))
    dataset = tmp_path / "binaryData" / "org" / "ds"
    dataset.mkdir(parents=True)
    (dataset / "linked").symlink_to(w.dataset_dir / "color")
    with pytest.raises(FormatError, match="'linked' is outside the dataset"):
        infer_datasource(dataset, name="ds")
    props = infer_datasource(
        dataset, name="ds", allowed_roots=[dataset.parent, tmp_path / "elsewhere"]
    )
    assert [layer.name for layer in props.layers] == ["linked"]
