"""Conversions: every input format, both output formats, the pyramid, and failures.

Inputs are written by their reference libraries (tifffile, PIL, nibabel,
zarr-python, TensorStore, wkw, webknossos); outputs are read back with wkw and
TensorStore and opened with the official `webknossos` library. Downsampled mags
are compared with `conversion_inputs.reference_down`, written independently.
"""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import tifffile
import wkw

from shared.conversions import (
    ConversionCancelled,
    ConversionInputError,
    ConversionOptions,
    SourceHints,
    abort_conversion,
    convert,
    execute_task,
    finish_conversion,
    plan_conversion,
    run_task,
)
from shared.datasource import (
    Category,
    DataFormat,
    ElementClass,
    VoxelSize,
    load_datasource,
)
from shared.geometry import BoundingBox, Mag, Vec3
from tests.shared import conversion_inputs as inputs

FORMATS = [DataFormat.WKW, DataFormat.ZARR3]
NM = VoxelSize((11.0, 11.0, 11.0))


def options(
    data_format: DataFormat = DataFormat.WKW, **kwargs: object
) -> ConversionOptions:
    return ConversionOptions(
        data_format=data_format,
        voxel_size=kwargs.pop("voxel_size", NM),  # type: ignore[arg-type]
        shard_size=kwargs.pop("shard_size", 32),  # type: ignore[arg-type]
        task_bytes=kwargs.pop("task_bytes", 1 << 16),  # type: ignore[arg-type]
        **kwargs,  # type: ignore[arg-type]
    )


def read_mag(target: Path, layer_name: str, mag: Mag) -> np.ndarray:
    """The mag's voxels over the layer's box, read with wkw or TensorStore."""
    props = load_datasource(target / "datasource-properties.json")
    layer = props.get_layer(layer_name)
    box = layer.bounding_box.in_mag(mag)
    path = target / layer_name / mag.to_layer_name()
    if layer.data_format == DataFormat.WKW:
        with wkw.Dataset.open(str(path)) as dataset:
            data: np.ndarray = dataset.read(box.topleft.to_tuple(), box.size.to_tuple())
        return data
    store = ts.open(
        {"driver": "zarr3", "kvstore": {"driver": "file", "path": str(path)}}
    ).result()
    (x0, y0, z0), (x1, y1, z1) = box.topleft, box.end
    return np.asarray(store[:, x0:x1, y0:y1, z0:z1].read().result())


def check_layer(
    target: Path,
    layer_name: str,
    expected: np.ndarray,
    *,
    segmentation: bool = False,
) -> None:
    """Mag 1 equals `expected`; every coarser mag equals the reference pyramid; the
    official library reads the same mag 1."""
    props = load_datasource(target / "datasource-properties.json")
    layer = props.get_layer(layer_name)
    assert layer.bounding_box.size.to_tuple() == expected.shape[1:]
    assert layer.category == (Category.SEGMENTATION if segmentation else Category.COLOR)
    previous, data = Mag(1, 1, 1), expected
    for mag in (m.mag for m in layer.mags):
        if mag != previous:
            factor = tuple(a // b for a, b in zip(mag, previous, strict=True))
            data = inputs.reference_down(data, factor, mode=segmentation)  # type: ignore[arg-type]
            previous = mag
        got = read_mag(target, layer_name, mag)
        assert got.dtype == expected.dtype
        np.testing.assert_array_equal(got, data, err_msg=f"{layer_name} mag {mag}")
    assert max(layer.bounding_box.in_mag(layer.mags[-1].mag).size) <= 32
    if segmentation:
        assert layer.largest_segment_id == int(expected.max())
    import webknossos as wk

    official = wk.Dataset.open(target).get_layer(layer_name)
    np.testing.assert_array_equal(official.get_mag(1).read(), expected)


def no_leftovers(parent: Path) -> None:
    names = [p.name for p in parent.iterdir()]
    assert not [n for n in names if ".staging-" in n or ".old-" in n], names


# -- formats ------------------------------------------------------------------------


@pytest.mark.parametrize("data_format", FORMATS)
def test_a_multipage_tiff_becomes_a_dataset_with_a_full_pyramid(
    tmp_path: Path, data_format: DataFormat
) -> None:
    data = inputs.write_tiff(tmp_path / "stack.tif", inputs.volume("uint16"))
    target = tmp_path / "out"
    props = convert(tmp_path / "stack.tif", target, options(data_format))
    assert [m.mag for m in props.layers[0].mags] == [
        Mag(1, 1, 1),
        Mag(2, 2, 2),
        Mag(4, 4, 4),
    ]
    assert props.layers[0].data_format == data_format
    check_layer(target, "stack", data)
    assert not (target / ".conversion").exists()
    no_leftovers(tmp_path)


def test_a_single_2d_tiff_becomes_a_one_slice_layer_downsampled_in_x_and_y(
    tmp_path: Path,
) -> None:
    data = inputs.volume("uint8", (90, 70, 1))
    tifffile.imwrite(tmp_path / "photo.tif", data[0, :, :, 0].T)
    props = convert(tmp_path / "photo.tif", tmp_path / "out", options())
    assert [m.mag for m in props.layers[0].mags] == [
        Mag(1, 1, 1),
        Mag(2, 2, 1),
        Mag(4, 4, 1),
    ]
    check_layer(tmp_path / "out", "photo", data)


def test_compressed_tiff_pages_are_decoded_one_by_one(tmp_path: Path) -> None:
    data = inputs.write_tiff(
        tmp_path / "em.tiff", inputs.volume("uint8"), compression="zlib"
    )
    convert(tmp_path / "em.tiff", tmp_path / "out", options())
    check_layer(tmp_path / "out", "em", data)


def test_ome_tiff_channels_become_layers_with_the_declared_anisotropic_voxel_size(
    tmp_path: Path,
) -> None:
    data = np.concatenate(
        [inputs.volume("uint8", seed=1), inputs.volume("uint8", seed=2)]
    )
    inputs.write_ome_tiff(tmp_path / "cells.ome.tif", data, (0.5, 0.5, 1.5))
    props = convert(
        tmp_path / "cells.ome.tif", tmp_path / "out", options(voxel_size=None)
    )
    assert props.voxel_size == VoxelSize((0.5, 0.5, 1.5), "micrometer")
    assert [layer.name for layer in props.layers] == ["cells_0", "cells_1"]
    assert props.layers[0].mags[1].mag == Mag(2, 2, 1)
    check_layer(tmp_path / "out", "cells_0", data[0:1])
    check_layer(tmp_path / "out", "cells_1", data[1:2])


@pytest.mark.parametrize("suffix", [".png", ".tif", ".bmp", ".jpg"])
def test_a_folder_of_slices_is_sorted_naturally(tmp_path: Path, suffix: str) -> None:
    data = inputs.write_slices(tmp_path / "em", inputs.volume("uint8"), suffix)
    (tmp_path / "em" / "notes.txt").write_text("ignored")
    convert(tmp_path / "em", tmp_path / "out", options(DataFormat.ZARR3))
    check_layer(tmp_path / "out", "em", data)


def test_rgb_becomes_one_uint24_layer_or_one_layer_per_channel_on_request(
    tmp_path: Path,
) -> None:
    rgb = np.concatenate(
        [inputs.volume("uint8", (40, 30, 12), seed=s) for s in range(3)]
    )
    data = inputs.write_slices(tmp_path / "photo", rgb, ".png")
    props = convert(tmp_path / "photo", tmp_path / "one", options())
    assert props.layers[0].element_class == ElementClass.UINT24
    check_layer(tmp_path / "one", "photo", data)
    split = convert(
        tmp_path / "photo", tmp_path / "three", options(split_channels=True)
    )
    assert [(layer.name, layer.element_class) for layer in split.layers] == [
        ("photo_0", ElementClass.UINT8),
        ("photo_1", ElementClass.UINT8),
        ("photo_2", ElementClass.UINT8),
    ]
    check_layer(tmp_path / "three", "photo_2", data[2:3])


def test_a_zip_of_slices_and_a_zip_with_one_folder_per_layer(tmp_path: Path) -> None:
    one = inputs.volume("uint8", (40, 36, 20), seed=3)
    inputs.write_zip(tmp_path / "stack.zip", {"": one})
    convert(tmp_path / "stack.zip", tmp_path / "a", options())
    check_layer(tmp_path / "a", "stack", one)
    seg = inputs.labels((40, 36, 20), dtype="uint8")
    inputs.write_zip(tmp_path / "two.zip", {"raw": one, "seg": seg})
    props = convert(tmp_path / "two.zip", tmp_path / "b", options())
    assert [layer.name for layer in props.layers] == ["raw", "seg"]
    check_layer(tmp_path / "b", "raw", one)
    check_layer(tmp_path / "b", "seg", seg, segmentation=True)


@pytest.mark.parametrize("packed", [False, True])
def test_nifti_labels_become_segmentation_with_the_header_voxel_size(
    tmp_path: Path, packed: bool
) -> None:
    data = inputs.write_nifti(
        tmp_path / "labels.nii", inputs.labels((40, 36, 20)), (0.02, 0.02, 0.05)
    )
    path = (
        inputs.gzip_file(tmp_path / "labels.nii") if packed else tmp_path / "labels.nii"
    )
    props = convert(path, tmp_path / "out", options(voxel_size=None))
    assert props.voxel_size == VoxelSize((0.02, 0.02, 0.05), "millimeter")
    assert props.layers[0].mags[1].mag == Mag(2, 2, 1)
    check_layer(tmp_path / "out", "labels", data, segmentation=True)


@pytest.mark.parametrize("order", ["F", "C"])
def test_raw_files_in_either_layout(tmp_path: Path, order: str) -> None:
    data = inputs.write_raw(tmp_path / "vol.raw", inputs.volume("uint16"), order)
    hints = SourceHints(dtype="uint16", shape=inputs.SHAPE, order=order)
    convert(tmp_path / "vol.raw", tmp_path / "out", options(DataFormat.ZARR3), hints)
    check_layer(tmp_path / "out", "vol", data)


@pytest.mark.parametrize(
    ("name", "write"),
    [
        ("zarr2", lambda p, d: inputs.write_zarr(p, d, 2)),
        ("zarr3", lambda p, d: inputs.write_zarr(p, d, 3)),
        ("omezarr", inputs.write_ome_zarr),
        ("n5", lambda p, d: inputs.write_tensorstore(p, d, "n5")),
        ("precomputed", lambda p, d: inputs.write_tensorstore(p, d, "precomputed")),
        ("wkwmag", inputs.write_wkw_mag),
    ],
)
def test_array_formats_are_read_through_the_format_registry(
    tmp_path: Path, name: str, write: object
) -> None:
    data = write(tmp_path / name, inputs.volume("uint8"))  # type: ignore[operator]
    convert(tmp_path / name, tmp_path / "out", options(DataFormat.ZARR3))
    check_layer(tmp_path / "out", name, data)


def test_a_webknossos_dataset_keeps_its_layers_and_categories(tmp_path: Path) -> None:
    import webknossos as wk

    color, seg = inputs.volume("uint8"), inputs.labels()
    dataset = wk.Dataset(tmp_path / "wkds", voxel_size=(8, 8, 16))
    dataset.add_layer(
        "img", wk.COLOR_CATEGORY, dtype="uint8", data_format="zarr3"
    ).add_mag(1, chunk_shape=32, shard_shape=64).write(color, allow_resize=True)
    dataset.add_layer(
        "cells",
        wk.SEGMENTATION_CATEGORY,
        dtype="uint32",
        largest_segment_id=0,
        data_format="zarr3",
    ).add_mag(1, chunk_shape=32, shard_shape=64).write(seg, allow_resize=True)
    props = convert(tmp_path / "wkds", tmp_path / "out", options(voxel_size=None))
    assert props.voxel_size.factor == (8.0, 8.0, 16.0)
    assert props.layers[0].mags[1].mag == Mag(2, 2, 1)
    check_layer(tmp_path / "out", "img", color)
    check_layer(tmp_path / "out", "cells", seg, segmentation=True)


def test_a_folder_with_one_subfolder_per_layer_detects_segmentation_by_name(
    tmp_path: Path,
) -> None:
    shape = (40, 36, 20)
    color = inputs.write_slices(
        tmp_path / "in" / "em", inputs.volume("uint8", shape), ".png"
    )
    seg = inputs.write_slices(
        tmp_path / "in" / "segmentation", inputs.labels(shape), ".tif"
    )
    props = convert(tmp_path / "in", tmp_path / "out", options(DataFormat.ZARR3))
    assert {layer.name: layer.category for layer in props.layers} == {
        "em": Category.COLOR,
        "segmentation": Category.SEGMENTATION,
    }
    check_layer(tmp_path / "out", "em", color)
    check_layer(tmp_path / "out", "segmentation", seg, segmentation=True)


def test_category_given_by_the_user_wins_and_is_checked(tmp_path: Path) -> None:
    data = inputs.write_tiff(tmp_path / "ids.tif", inputs.labels((40, 36, 20)))
    convert(
        tmp_path / "ids.tif", tmp_path / "seg", options(category=Category.SEGMENTATION)
    )
    check_layer(tmp_path / "seg", "ids", data, segmentation=True)
    inputs.write_tiff(tmp_path / "f.tif", inputs.volume("float32", (40, 36, 20)))
    with pytest.raises(
        ConversionInputError, match="segmentation layer needs one channel of integers"
    ):
        convert(
            tmp_path / "f.tif",
            tmp_path / "bad",
            options(category=Category.SEGMENTATION),
        )
    no_leftovers(tmp_path)


# -- failures -----------------------------------------------------------------------


def previous_dataset(path: Path) -> Path:
    path.mkdir()
    (path / "datasource-properties.json").write_text('{"previous": true}')
    return path


def test_a_corrupt_tiff_fails_at_once_and_leaves_the_previous_dataset(
    tmp_path: Path,
) -> None:
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x07" * 64)
    target = previous_dataset(tmp_path / "out")
    with pytest.raises(ConversionInputError, match=r"broken\.tif: not a readable TIFF"):
        convert(tmp_path / "broken.tif", target, options(), overwrite=True)
    assert (target / "datasource-properties.json").read_text() == '{"previous": true}'
    no_leftovers(tmp_path)


def test_slices_of_different_shapes_name_the_first_odd_slice(tmp_path: Path) -> None:
    inputs.write_slices(tmp_path / "em", inputs.volume("uint8", (40, 30, 12)), ".png")
    from PIL import Image

    Image.fromarray(np.zeros((30, 41), np.uint8)).save(tmp_path / "em" / "slice_7.png")
    Image.fromarray(np.zeros((31, 40), np.uint8)).save(tmp_path / "em" / "slice_9.png")
    with pytest.raises(
        ConversionInputError,
        match=r"em/slice_7\.png: 41x30 uint8 .* first slice slice_1\.png is 40x30",
    ):
        convert(tmp_path / "em", tmp_path / "out", options())
    no_leftovers(tmp_path)


def test_a_raw_file_of_the_wrong_size_is_refused_naming_both_sizes(
    tmp_path: Path,
) -> None:
    (tmp_path / "v.raw").write_bytes(bytes(999))
    with pytest.raises(
        ConversionInputError,
        match=r"v\.raw: the file has 999 bytes, but uint16 x 10x10x5 needs exactly",
    ):
        convert(
            tmp_path / "v.raw",
            tmp_path / "out",
            options(),
            SourceHints(dtype="uint16", shape=(10, 10, 5)),
        )
    no_leftovers(tmp_path)


def test_a_page_that_fails_to_decode_mid_conversion_removes_the_staging_folder(
    tmp_path: Path,
) -> None:
    inputs.write_tiff(tmp_path / "em.tif", inputs.volume("uint8"), compression="zlib")
    with tifffile.TiffFile(tmp_path / "em.tif") as tif:
        offset = tif.pages[30].dataoffsets[0]
    with (tmp_path / "em.tif").open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    target = previous_dataset(tmp_path / "out")
    with pytest.raises(
        ConversionInputError, match=r"em\.tif: page 30 cannot be decoded"
    ):
        convert(tmp_path / "em.tif", target, options(), overwrite=True)
    assert (target / "datasource-properties.json").read_text() == '{"previous": true}'
    no_leftovers(tmp_path)


def test_the_target_is_refused_when_it_exists_and_replaced_with_overwrite(
    tmp_path: Path,
) -> None:
    data = inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8", (40, 36, 20)))
    target = previous_dataset(tmp_path / "out")
    with pytest.raises(ConversionInputError, match="exists already"):
        convert(tmp_path / "s.tif", target, options())
    convert(tmp_path / "s.tif", target, options(), overwrite=True)
    check_layer(target, "s", data)
    no_leftovers(tmp_path)


def _die_midway(staging: str, stage: int, index: int, data_format: str) -> None:
    """Run one task and kill the process (no cleanup) in the middle of its write."""
    from shared.conversions import wkw_writer, writers

    def die(*args: object, **kwargs: object) -> None:
        os._exit(9)

    if data_format == "wkw":
        wkw_writer.replace_file = die  # type: ignore[assignment]  # part written, not renamed
    else:
        real = writers.Zarr3Output.write

        def half(self: object, path: Path, box: BoundingBox, pieces: object) -> int:
            piece, data = next(iter(pieces))  # type: ignore[call-overload]
            first = BoundingBox(piece.topleft, Vec3(32, piece.size.y, piece.size.z))
            real(self, path, first, [(first, data[:, :32])])  # type: ignore[arg-type]
            os._exit(9)  # the task's first shard is written, the second is not

        writers.Zarr3Output.write = half  # type: ignore[method-assign]
    run_task(Path(staging), stage, index)


def data_files(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and p.name != "datasource-properties.json"
    }


@pytest.mark.parametrize("data_format", FORMATS)
def test_a_task_killed_midway_and_run_again_gives_the_same_bytes(
    tmp_path: Path, data_format: DataFormat
) -> None:
    inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8"))
    convert(tmp_path / "s.tif", tmp_path / "clean", options(data_format))
    plan = plan_conversion(
        tmp_path / "s.tif", tmp_path / "retried", options(data_format)
    )
    victim = plan.stages[0][2]  # two shards wide: one is written before the kill
    assert victim.box.size.x == 64
    child = multiprocessing.get_context("spawn").Process(
        target=_die_midway, args=(str(plan.staging), 0, victim.index, data_format.value)
    )
    child.start()
    child.join(60)
    assert child.exitcode == 9
    for stage in plan.stages:
        for task in stage:
            execute_task(plan, task)
    execute_task(plan, victim)  # once more, after its file exists: still the same
    finish_conversion(plan)
    assert data_files(tmp_path / "retried") == data_files(tmp_path / "clean")
    assert load_datasource(
        tmp_path / "retried" / "datasource-properties.json"
    ).layers == (
        load_datasource(tmp_path / "clean" / "datasource-properties.json").layers
    )


def test_cancelling_removes_the_staging_folder_and_stops_later_tasks(
    tmp_path: Path,
) -> None:
    inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8"))
    plan = plan_conversion(tmp_path / "s.tif", tmp_path / "out", options())
    execute_task(plan, plan.stages[0][0])
    abort_conversion(plan.staging)
    assert not plan.staging.exists()
    with pytest.raises(ConversionCancelled):
        run_task(plan.staging, 0, 1)
    with pytest.raises(ConversionCancelled):
        execute_task(plan, plan.stages[0][2])
    assert not plan.staging.exists()
    assert not (tmp_path / "out").exists()
    no_leftovers(tmp_path)


@pytest.mark.slow
def test_two_processes_give_the_same_dataset_as_one(tmp_path: Path) -> None:
    data = inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8", (100, 90, 70)))
    convert(tmp_path / "s.tif", tmp_path / "one", options())
    convert(tmp_path / "s.tif", tmp_path / "two", options(), processes=2)
    assert data_files(tmp_path / "two") == data_files(tmp_path / "one")
    check_layer(tmp_path / "two", "s", data)


# -- command line -------------------------------------------------------------------


def voxelhub(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "voxelhub.cli", "convert", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "COLUMNS": "100"},
    )


@pytest.mark.slow
def test_voxelhub_convert_turns_a_tiff_stack_into_a_dataset(tmp_path: Path) -> None:
    data = inputs.write_slices(tmp_path / "stack", inputs.volume("uint8"), ".tif")
    done = voxelhub(
        str(tmp_path / "stack"),
        str(tmp_path / "ds"),
        "--voxel-size",
        "11,11,30",
        "--format",
        "zarr3",
        "--processes",
        "2",
    )
    assert done.returncode == 0, done.stderr
    assert "converted" in done.stdout
    check_layer(tmp_path / "ds", "stack", data)
    again = voxelhub(
        str(tmp_path / "stack"), str(tmp_path / "ds"), "--voxel-size", "11,11,30"
    )
    assert again.returncode != 0
    assert "exists (use --overwrite" in again.stderr


@pytest.mark.slow
def test_voxelhub_convert_reports_bad_input_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "v.raw").write_bytes(bytes(10))
    done = voxelhub(
        str(tmp_path / "v.raw"),
        str(tmp_path / "ds"),
        "--voxel-size",
        "1,1,1",
        "--dtype",
        "uint8",
        "--shape",
        "2,2,2",
    )
    assert done.returncode == 1
    assert done.stderr.strip().splitlines() == [
        "Error: v.raw: the file has 10 bytes, but uint8 x 2x2x2 needs exactly 8"
    ]
    assert done.stdout == ""
    no_leftovers(tmp_path)
