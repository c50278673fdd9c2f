"""Reading, writing and path checks of `shared.formats`, over every format.

Data is written by the reference libraries (see conftest.py) and must read back
byte-equal through `open_mag`; our writers' output must read back through the
reference libraries.
"""

from __future__ import annotations

import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import tensorstore as ts
import wkw
import zarr

from shared.datasource import (
    DataFormat,
    DatasourceProperties,
    LayerProperties,
    MagProperties,
    VoxelSize,
    save_datasource,
)
from shared.formats import (
    BACKENDS,
    CorruptData,
    FormatError,
    MagNotFound,
    PathNotAllowed,
    UnsupportedData,
    VoxelArray,
    create_mag,
    open_mag,
    resolve_mag_path,
)
from shared.geometry import BoundingBox, Mag, Vec3
from tests.shared.conftest import (
    DTYPES,
    MULTICHANNEL_WRITERS,
    WRITERS,
    WebknossosDataset,
    Written,
    import_webknossos,
    layer_for,
    make_data,
    webknossos_written,
)


def open_written(w: Written, **kwargs: object) -> VoxelArray:
    return open_mag(w.dataset_dir, w.layer, w.mag, **kwargs)  # type: ignore[arg-type]


def assert_reads(array: VoxelArray, w: Written, box: BoundingBox) -> None:
    got = array.read(box)
    assert got.shape == (w.data.shape[0], *box.size)
    assert got.dtype == w.data.dtype
    np.testing.assert_array_equal(got, w.expected(box), strict=True)


# --- reading what the reference libraries wrote ------------------------------------


def test_full_region_reads_back_byte_equal(written: Written) -> None:
    with open_written(written) as array:
        got = array.read(written.box)
        assert got.tobytes(order="F") == written.data.tobytes(order="F")


def test_random_sub_boxes_read_back_byte_equal(written: Written) -> None:
    rng = np.random.default_rng(7)
    end = written.box.end
    with open_written(written) as array:
        for _ in range(25):
            start = Vec3(*(int(rng.integers(-8, e + 8)) for e in end))
            size = Vec3(*(int(rng.integers(0, 40)) for _ in range(3)))
            assert_reads(array, written, BoundingBox(start, size))


def test_bucket_crossing_the_data_end_is_padded_with_zeros(written: Written) -> None:
    end = written.box.end
    with open_written(written) as array:
        assert_reads(array, written, BoundingBox(end - Vec3(10, 7, 3), Vec3.full(32)))


def test_box_fully_outside_the_data_reads_zeros(written: Written) -> None:
    box = BoundingBox(written.box.end + Vec3(100, 0, 5), Vec3.full(32))
    with open_written(written) as array:
        got = array.read(box)
    assert got.shape == (written.data.shape[0], 32, 32, 32)
    assert not got.any()


def test_negative_coordinates_read_zeros_before_the_origin(written: Written) -> None:
    with open_written(written) as array:
        assert_reads(array, written, BoundingBox(Vec3(-20, -3, -40), Vec3(40, 30, 50)))
        assert not array.read(BoundingBox(Vec3(-64, -64, -64), Vec3.full(32))).any()


def test_empty_box_reads_an_empty_array(written: Written) -> None:
    with open_written(written) as array:
        got = array.read(BoundingBox(Vec3(3, 4, 5), Vec3(0, 8, 8)))
    assert got.shape == (written.data.shape[0], 0, 8, 8)


def test_reads_are_fortran_ordered_for_the_wire(written: Written) -> None:
    with open_written(written) as array:
        got = array.read(BoundingBox(written.origin, Vec3(32, 16, 8)))
    assert got.flags.f_contiguous


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", list(WRITERS))
def test_every_dtype_reads_back_from_every_reference_writer(
    kind: str, dtype: str, tmp_path: Path
) -> None:
    w = WRITERS[kind](tmp_path / "ds", make_data(dtype, shape=(40, 33, 20)))
    with open_written(w) as array:
        assert array.dtype == np.dtype(dtype)
        assert_reads(array, w, w.box)
        assert_reads(array, w, BoundingBox(Vec3(-3, 30, 10), Vec3(48, 8, 16)))


def test_uint64_keeps_the_largest_segment_id(tmp_path: Path) -> None:
    data = np.full((1, 8, 8, 8), 2**64 - 1, dtype=np.uint64)
    w = WRITERS["tensorstore-zarr3-sharded"](tmp_path / "ds", data)
    with open_written(w) as array:
        assert int(array.read(w.box).max()) == 2**64 - 1


@pytest.mark.parametrize("kind", MULTICHANNEL_WRITERS)
def test_rgb_reads_back_with_interleaved_channels(kind: str, tmp_path: Path) -> None:
    data = make_data("uint8", channels=3, shape=(37, 20, 18))
    w = WRITERS[kind](tmp_path / "ds", data)
    assert w.layer.element_class == "uint24"
    with open_written(w) as array:
        assert array.num_channels == 3
        got = array.read(w.box)
        # Channels interleaved per voxel, x fastest: the bytes WEBKNOSSOS serves.
        assert got.tobytes(order="F") == data.tobytes(order="F")
        assert_reads(array, w, BoundingBox(w.origin + Vec3(30, 10, 10), Vec3.full(16)))


def test_webknossos_rgb_layer_reads_back(webknossos_dataset: WebknossosDataset) -> None:
    w = webknossos_written(webknossos_dataset, "webknossos-rgb")
    with open_written(w) as array:
        assert (array.dtype, array.num_channels) == (np.dtype("uint8"), 3)
        assert_reads(array, w, BoundingBox(Vec3(-5, 0, 3), Vec3(50, 41, 16)))


# --- our writers -------------------------------------------------------------------

ROUND_TRIPS = [
    (DataFormat.WKW, 32, True),
    (DataFormat.WKW, 32, False),
    (DataFormat.ZARR3, 32, True),
    (DataFormat.ZARR3, 8, False),  # unsharded
    (DataFormat.ZARR, 32, True),
]


@pytest.mark.parametrize(("data_format", "shard", "compress"), ROUND_TRIPS)
@pytest.mark.parametrize("channels", [1, 3])
def test_created_mag_round_trips_unaligned_writes(
    data_format: DataFormat, shard: int, compress: bool, channels: int, tmp_path: Path
) -> None:
    data = make_data("uint8" if channels == 3 else "uint32", channels, (45, 38, 29))
    path = tmp_path / "color" / "1"
    with create_mag(
        path,
        data_format,
        data.dtype,
        channels,
        chunk_shape=8,
        shard_shape=shard,
        compress=compress,
    ) as array:
        # Overlapping, unaligned pieces; the second overwrites part of the first.
        array.write(Vec3(3, 2, 1), data[:, :30, :, :20])
        array.write(Vec3(3, 2, 1), data)
        array.write(Vec3(3 + 40, 2, 1), data[:, 40:, :, :])
        layer = layer_for("color", data_format, data, Vec3(3, 2, 1), "./color/1")
    w = Written(tmp_path, layer, data, Vec3(3, 2, 1))
    with open_written(w) as array:
        assert_reads(array, w, BoundingBox(Vec3(0, 0, 0), Vec3(64, 64, 64)))
        assert_reads(array, w, BoundingBox(Vec3(-1, 20, 25), Vec3(17, 33, 9)))


def test_create_mag_opens_an_existing_array_again(tmp_path: Path) -> None:
    data = make_data("uint16", shape=(20, 20, 20))
    for data_format in (DataFormat.WKW, DataFormat.ZARR3, DataFormat.ZARR):
        path = tmp_path / str(data_format) / "1"
        with create_mag(path, data_format, np.uint16) as array:
            array.write(Vec3(0, 0, 0), data)
        with create_mag(path, data_format, np.uint16) as again:
            np.testing.assert_array_equal(again.read(BoundingBox.of(0, 20)), data)
        with pytest.raises(FormatError, match=r"uint8|another layout"):
            create_mag(path, data_format, np.uint8)


def test_zarr_arrays_grow_to_cover_writes_and_keep_a_given_shape(
    tmp_path: Path,
) -> None:
    grown = create_mag(tmp_path / "a", DataFormat.ZARR3, np.uint8, shard_shape=64)
    assert grown.shape == Vec3(0, 0, 0)
    grown.write(Vec3(10, 0, 70), np.ones((5, 6, 7), dtype=np.uint8))
    assert grown.shape == Vec3(15, 6, 77)
    fixed = create_mag(tmp_path / "b", DataFormat.ZARR, np.uint8, shape=(100, 90, 80))
    fixed.write(Vec3(0, 0, 0), np.ones((5, 6, 7), dtype=np.uint8))
    assert fixed.shape == Vec3(100, 90, 80)


def test_our_wkw_is_read_by_the_wkw_package_and_by_webknossos(tmp_path: Path) -> None:
    data = make_data("uint8", shape=(70, 40, 33))
    origin = Vec3(1000, 0, 2040)  # crosses WKW file borders in x and z
    dataset_dir = tmp_path / "ours"
    for name, compress in (("compressed", True), ("raw", False)):
        with create_mag(
            dataset_dir / name / "1", DataFormat.WKW, np.uint8, compress=compress
        ) as array:
            array.write(origin, data)
        with wkw.Dataset.open(str(dataset_dir / name / "1")) as reference:
            got = reference.read(origin.to_tuple(), data.shape[1:])
        np.testing.assert_array_equal(got, data)
    layers = tuple(
        layer_for(name, DataFormat.WKW, data, origin, f"./{name}/1")
        for name in ("compressed", "raw")
    )
    save_datasource(
        dataset_dir / "datasource-properties.json",
        DatasourceProperties("ours", "", VoxelSize((1.0, 1.0, 1.0)), layers),
    )
    dataset = import_webknossos().Dataset.open(dataset_dir)
    for name in ("compressed", "raw"):
        mag = dataset.get_layer(name).get_mag(1)
        got = mag.read(absolute_offset=origin.to_tuple(), size=data.shape[1:])
        np.testing.assert_array_equal(np.asarray(got).reshape(data.shape), data)


def test_our_zarr3_is_read_by_zarr_python(tmp_path: Path) -> None:
    data = make_data("uint16", 3, (50, 40, 30))
    for name, shard in (("sharded", 32), ("plain", 16)):
        path = tmp_path / name
        with create_mag(
            path, DataFormat.ZARR3, np.uint16, 3, chunk_shape=16, shard_shape=shard
        ) as array:
            array.write(Vec3(0, 0, 0), data)
        reference = zarr.open_array(str(path), mode="r")
        metadata = json.loads((path / "zarr.json").read_text())
        assert metadata["dimension_names"] == ["c", "x", "y", "z"]
        np.testing.assert_array_equal(reference[...], data)


def test_our_zarr_is_read_by_zarr_python(tmp_path: Path) -> None:
    data = make_data("float32", 2, (30, 20, 10))
    with create_mag(tmp_path / "z", DataFormat.ZARR, np.float32, 2) as array:
        array.write(Vec3(0, 0, 0), data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "z"))[...], data)


def test_only_wkw_zarr3_and_zarr_can_be_created(tmp_path: Path) -> None:
    for data_format in (DataFormat.N5, DataFormat.NEUROGLANCER_PRECOMPUTED):
        with pytest.raises(UnsupportedData, match="not supported"):
            create_mag(tmp_path / "x", data_format, np.uint8)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (np.zeros((2, 4, 4, 4), dtype=np.uint8), "channel"),
        (np.zeros((4, 4, 4), dtype=np.uint16), "data type"),
        (np.zeros((4, 4), dtype=np.uint8), "shape"),
    ],
)
def test_writes_of_the_wrong_shape_or_type_are_refused(
    data: np.ndarray, message: str, tmp_path: Path
) -> None:
    for data_format in (DataFormat.WKW, DataFormat.ZARR3):
        array = create_mag(tmp_path / str(data_format), data_format, np.uint8)
        with pytest.raises(FormatError, match=message):
            array.write(Vec3(0, 0, 0), data)
        with pytest.raises(FormatError, match="negative"):
            array.write(Vec3(-1, 0, 0), np.zeros((4, 4, 4), dtype=np.uint8))


# --- read-only, mismatches, corruption, concurrency ---------------------------------


def test_arrays_opened_read_only_refuse_writes(written: Written) -> None:
    with open_written(written) as array, pytest.raises(FormatError, match="read-only"):
        array.write(Vec3(0, 0, 0), written.data[:, :4, :4, :4])


@pytest.mark.parametrize("kind", ["wkw-raw", "wkw-lz4hc", "tensorstore-zarr3-sharded"])
def test_writable_open_mag_writes_in_place(kind: str, tmp_path: Path) -> None:
    w = WRITERS[kind](tmp_path / "ds", make_data("uint16"))
    patch = np.full((1, 5, 6, 7), 42, dtype=np.uint16)
    inside = BoundingBox(Vec3(17, 20, 3), Vec3(5, 6, 7))  # relative to the data
    with open_written(w, writable=True) as array:
        array.write(inside.topleft + w.origin, patch)
    w.data[(slice(None), *inside.slices())] = 42
    with open_written(w) as array:
        assert_reads(array, w, w.box)


def test_layer_declaring_another_dtype_is_refused(tmp_path: Path) -> None:
    w = WRITERS["tensorstore-zarr3-sharded"](tmp_path / "ds", make_data("uint16"))
    wrong = layer_for(
        "color", DataFormat.ZARR3, make_data("uint8"), Vec3(0, 0, 0), "./color/1"
    )
    with pytest.raises(FormatError, match=r"uint16.*declares uint8"):
        open_mag(w.dataset_dir, wrong, Mag(1, 1, 1))


def test_mag_not_listed_in_the_layer_is_not_found(written: Written) -> None:
    with pytest.raises(MagNotFound, match="16-16-16 not in layer"):
        open_mag(written.dataset_dir, written.layer, Mag(16, 16, 16))


def test_corrupt_wkw_file_names_the_chunk_and_other_files_still_read(
    tmp_path: Path,
) -> None:
    w = WRITERS["wkw-lz4hc"](tmp_path / "ds", make_data("uint16"))
    victim = w.dataset_dir / "color" / "1" / "z1" / "y0" / "x0.wkw"
    victim.write_bytes(victim.read_bytes()[: victim.stat().st_size // 2])
    with open_written(w) as array:
        with pytest.raises(CorruptData, match=r"corrupt chunk z1/y0/x0\.wkw"):
            array.read(BoundingBox(Vec3(16, 16, 48), Vec3.full(16)))
        assert_reads(array, w, BoundingBox(Vec3(0, 0, 40), Vec3.full(16)))


def test_write_into_a_corrupt_wkw_file_fails_and_leaves_it_unchanged(
    tmp_path: Path,
) -> None:
    w = WRITERS["wkw-lz4hc"](tmp_path / "ds", make_data("uint16"))
    victim = w.dataset_dir / "color" / "1" / "z1" / "y0" / "x0.wkw"
    damaged = victim.read_bytes()[:200]
    victim.write_bytes(damaged)
    with (
        open_written(w, writable=True) as array,
        pytest.raises(CorruptData, match=r"corrupt chunk z1/y0/x0\.wkw"),
    ):
        array.write(Vec3(0, 0, 40), np.ones((1, 4, 4, 4), dtype=np.uint16))
    assert victim.read_bytes() == damaged
    assert not [p for p in victim.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_wkw_header_is_reported_as_corrupt_metadata(tmp_path: Path) -> None:
    w = WRITERS["wkw-raw"](tmp_path / "ds", make_data("uint16"))
    (w.dataset_dir / "color" / "1" / "header.wkw").write_bytes(b"XKW" + bytes(13))
    with pytest.raises(CorruptData, match=r"corrupt metadata header\.wkw"):
        open_written(w)


def test_corrupt_zarr3_shard_names_the_chunk_and_others_still_read(
    tmp_path: Path,
) -> None:
    w = WRITERS["tensorstore-zarr3-sharded"](tmp_path / "ds", make_data("uint16"))
    victim = w.dataset_dir / "color" / "1" / "c" / "0" / "1" / "0" / "0"
    raw = bytearray(victim.read_bytes())
    raw[-40:] = b"\xff" * 40  # the shard index and its checksum
    victim.write_bytes(bytes(raw))
    with open_written(w) as array:
        with pytest.raises(CorruptData, match="corrupt chunk c/0/1/0/0") as info:
            array.read(BoundingBox(Vec3(32, 0, 0), Vec3.full(16)))
        assert str(tmp_path) not in str(info.value)
        assert_reads(array, w, BoundingBox(Vec3(0, 0, 0), Vec3.full(32)))


def test_unsupported_dtype_is_refused_before_decoding(tmp_path: Path) -> None:
    path = tmp_path / "ds" / "color" / "1"
    array = zarr.create_array(store=str(path), shape=(4, 4, 4), dtype="float16")
    array[...] = 1
    layer = layer_for(
        "color", DataFormat.ZARR3, make_data("uint16"), Vec3(0, 0, 0), "./color/1"
    )
    with pytest.raises(UnsupportedData, match="float16 is not supported"):
        open_mag(tmp_path / "ds", layer, Mag(1, 1, 1))


def test_missing_zarr_metadata_is_mag_not_found(tmp_path: Path) -> None:
    (tmp_path / "ds" / "color" / "1").mkdir(parents=True)
    layer = layer_for(
        "color", DataFormat.ZARR3, make_data(), Vec3(0, 0, 0), "./color/1"
    )
    with pytest.raises(MagNotFound, match="no array metadata") as info:
        open_mag(tmp_path / "ds", layer, Mag(1, 1, 1))
    assert str(tmp_path) not in str(info.value)


def test_singleton_extra_axes_are_dropped_but_larger_ones_refused(
    tmp_path: Path,
) -> None:
    array = zarr.create_array(
        store=str(tmp_path / "ds" / "color" / "0"), shape=(2, 8, 8, 8), dtype="uint8"
    )
    array[...] = 1
    layer = layer_for(
        "color", DataFormat.ZARR3, make_data("uint8"), Vec3(0, 0, 0), "./color/0",
        {"x": 1, "y": 2, "z": 3},
    )  # fmt: skip
    with pytest.raises(UnsupportedData, match="size 2"):
        open_mag(tmp_path / "ds", layer, Mag(1, 1, 1))


@pytest.mark.parametrize(
    "axis_order", [{"x": 0, "y": 1}, {"x": 0, "y": 1, "z": 1}, {"x": 0, "y": 1, "z": 9}]
)
def test_invalid_axis_order_is_refused(
    axis_order: dict[str, int], tmp_path: Path
) -> None:
    w = WRITERS["tensorstore-zarr3"](tmp_path / "ds", make_data())
    layer = layer_for(
        "color", DataFormat.ZARR3, w.data, Vec3(0, 0, 0), "color/mag1", axis_order
    )
    with pytest.raises(FormatError, match="axisOrder"):
        open_mag(w.dataset_dir, layer, Mag(1, 1, 1))


@pytest.mark.parametrize("kind", ["wkw-lz4hc", "tensorstore-zarr3-sharded"])
def test_concurrent_reads_from_threads_are_correct(kind: str, tmp_path: Path) -> None:
    w = WRITERS[kind](tmp_path / "ds", make_data("uint16"))
    rng = np.random.default_rng(3)
    boxes = [
        BoundingBox(Vec3(*(int(v) for v in rng.integers(-10, 60, 3))), Vec3.full(32))
        for _ in range(200)
    ]
    with open_written(w) as array, ThreadPoolExecutor(8) as pool:
        results = list(pool.map(array.read, boxes))
    for box, got in zip(boxes, results, strict=True):
        np.testing.assert_array_equal(got, w.expected(box))


def test_closing_while_reads_run_lets_them_finish(tmp_path: Path) -> None:
    w = WRITERS["wkw-raw"](tmp_path / "ds", make_data("uint16"))
    array = open_written(w)
    failures: list[Exception] = []
    start = threading.Barrier(5)

    def reader() -> None:
        start.wait()
        for _ in range(200):
            try:
                array.read(BoundingBox(Vec3(0, 0, 0), Vec3.full(32)))
            except Exception as e:
                # after close, reads fail cleanly; anything else is a bug
                if not (isinstance(e, FormatError) and "closed" in str(e)):
                    failures.append(e)
                return

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for t in threads:
        t.start()
    start.wait()
    array.close()
    for t in threads:
        t.join()
    assert not failures
    with pytest.raises(FormatError, match="closed"):
        array.read(BoundingBox(Vec3(0, 0, 0), Vec3.full(8)))


def test_every_data_format_has_a_backend() -> None:
    assert set(BACKENDS) == set(DataFormat)


# --- paths -------------------------------------------------------------------------


def _layer(path: str | None, name: str = "color") -> LayerProperties:
    layer = layer_for(
        name, DataFormat.WKW, make_data("uint8", shape=(4, 4, 4)), Vec3(0, 0, 0), "x"
    )
    mag = MagProperties(mag=Mag(1, 1, 1), path=path)
    return LayerProperties(
        name=name,
        category=layer.category,
        bounding_box=layer.bounding_box,
        element_class=layer.element_class,
        data_format=layer.data_format,
        mags=(mag,),
    )


@pytest.fixture
def roots(tmp_path: Path) -> dict[str, Path]:
    binary = tmp_path / "binaryData"
    org = binary / "org"
    dataset = org / "ds"
    (dataset / "color" / "1").mkdir(parents=True)
    sibling = tmp_path / "binaryData2"
    (sibling / "org" / "ds" / "color" / "1").mkdir(parents=True)
    outside = tmp_path / "outside"
    (outside / "color" / "1").mkdir(parents=True)
    extra = tmp_path / "extra"
    (extra / "color" / "1").mkdir(parents=True)
    return {
        "binary": binary, "org": org, "dataset": dataset, "sibling": sibling,
        "outside": outside, "extra": extra,
    }  # fmt: skip


def resolve(roots: dict[str, Path], path: str | None, **kwargs: object) -> Path:
    layer = _layer(path)
    return resolve_mag_path(roots["dataset"], layer, layer.mags[0], **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("path", ["./color/1", "color/1", "color/./1"])
def test_relative_mag_paths_resolve_inside_the_dataset(
    roots: dict[str, Path], path: str
) -> None:
    assert resolve(roots, path) == roots["dataset"].resolve() / "color" / "1"


def test_dot_dot_escape_is_not_allowed_and_names_the_path(
    roots: dict[str, Path],
) -> None:
    with pytest.raises(
        PathNotAllowed, match=r"dataLayers\[color\].*'\.\./\.\./etc'"
    ) as e:
        resolve(roots, "../../etc")
    assert str(roots["dataset"]) not in str(e.value)


def test_dot_dot_inside_an_allowed_root_is_allowed(roots: dict[str, Path]) -> None:
    (roots["org"] / "other" / "color" / "1").mkdir(parents=True)
    assert resolve(roots, "../other/color/1", allowed_roots=[roots["org"]]).is_dir()
    with pytest.raises(PathNotAllowed):
        resolve(roots, "../other/color/1")


@pytest.mark.parametrize("key", ["outside", "sibling"])
def test_absolute_path_outside_the_roots_is_not_allowed(
    roots: dict[str, Path], key: str
) -> None:
    target = roots[key] / "color" / "1"
    if key == "sibling":  # shares the prefix "binaryData" with the allowed root
        target = roots["sibling"] / "org" / "ds" / "color" / "1"
    with pytest.raises(
        PathNotAllowed, match="outside the dataset and the allowed roots"
    ):
        resolve(roots, str(target), allowed_roots=[roots["binary"]])
    with pytest.raises(PathNotAllowed):
        resolve(roots, f"file://{target}", allowed_roots=[roots["binary"]])


def test_absolute_path_and_file_uri_inside_an_allowed_root_are_allowed(
    roots: dict[str, Path],
) -> None:
    target = roots["extra"] / "color" / "1"
    allowed = [roots["org"], roots["extra"]]
    assert resolve(roots, str(target), allowed_roots=allowed) == target.resolve()
    assert resolve(roots, f"file://{target}", allowed_roots=allowed) == target.resolve()
    assert resolve(roots, f"file://localhost{target}", allowed_roots=allowed).is_dir()


def test_symlinked_layer_pointing_outside_the_roots_is_not_allowed(
    roots: dict[str, Path],
) -> None:
    layer_dir = roots["dataset"] / "linked"
    layer_dir.symlink_to(roots["outside"] / "color")
    layer = _layer(None, name="linked")
    with pytest.raises(PathNotAllowed, match="'linked'"):
        resolve_mag_path(
            roots["dataset"], layer, layer.mags[0], allowed_roots=[roots["org"]]
        )
    with pytest.raises(PathNotAllowed, match=r"'\./linked/1'"):
        resolve(roots, "./linked/1", allowed_roots=[roots["org"]])


def test_symlinked_layer_into_an_allowed_root_is_allowed(
    roots: dict[str, Path],
) -> None:
    (roots["dataset"] / "linked").symlink_to(roots["extra"] / "color")
    layer = _layer(None, name="linked")
    got = resolve_mag_path(
        roots["dataset"],
        layer,
        layer.mags[0],
        allowed_roots=[roots["org"], roots["extra"]],
    )
    assert got == (roots["extra"] / "color" / "1").resolve()


def test_dataset_folder_symlinked_into_an_allowed_root_is_fine(
    roots: dict[str, Path],
) -> None:
    link = roots["org"] / "linked_ds"
    link.symlink_to(roots["extra"])
    layer = _layer("./color/1")
    allowed = [roots["org"], roots["extra"]]
    got = resolve_mag_path(link, layer, layer.mags[0], allowed_roots=allowed)
    assert got == (roots["extra"] / "color" / "1").resolve()
    # mags leaving the dataset's real folder are judged by the real folder
    escaping = _layer("../org/ds/color/1")
    with pytest.raises(PathNotAllowed):
        resolve_mag_path(link, escaping, escaping.mags[0])


def test_names_that_only_look_odd_are_allowed(roots: dict[str, Path]) -> None:
    (roots["dataset"] / "..color" / "..1").mkdir(parents=True)
    assert resolve(roots, "./..color/..1").name == "..1"


@pytest.mark.parametrize(
    ("path", "error", "message"),
    [
        (
            "s3://bucket/ds/color/1",
            UnsupportedData,
            "remote mag paths are not supported",
        ),
        ("https://example.org/ds/color/1", UnsupportedData, "remote mag paths"),
        ("gs://bucket/x", UnsupportedData, "remote mag paths"),
        ("ftp://host/x", UnsupportedData, "scheme 'ftp'"),
        ("file://otherhost/data/x", PathNotAllowed, "host"),
        ("color/\x001", PathNotAllowed, "NUL"),
        ("", PathNotAllowed, "empty"),
        ("./color/7", MagNotFound, "no data at './color/7'"),
    ],
)
def test_unusable_mag_paths_give_clear_errors(
    roots: dict[str, Path], path: str, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=message):
        resolve(roots, path)


def test_unset_path_follows_webknossos_folder_naming(roots: dict[str, Path]) -> None:
    dataset = roots["dataset"]
    (dataset / "color" / "2-2-1").mkdir()
    (dataset / "color" / "4-4-4").mkdir()
    layer = _layer(None)
    for mag, folder in (("1", "1"), ("2-2-1", "2-2-1"), ("4", "4-4-4")):
        props = MagProperties(mag=Mag.parse(mag))
        assert resolve_mag_path(dataset, layer, props).name == folder
    with pytest.raises(MagNotFound, match="tried color/8, color/8-8-8"):
        resolve_mag_path(dataset, layer, MagProperties(mag=Mag(8, 8, 8)))
    # the old single-number name never applies to anisotropic mags
    (dataset / "color" / "2").mkdir()
    with pytest.raises(MagNotFound, match=r"tried color/2-2-4\)"):
        resolve_mag_path(dataset, layer, MagProperties(mag=Mag(2, 2, 4)))


def test_open_mag_checks_paths_before_opening(tmp_path: Path) -> None:
    w = WRITERS["wkw-raw"](tmp_path / "ds", make_data("uint8"))
    outside = tmp_path / "elsewhere"
    (outside / "1").mkdir(parents=True)
    (outside / "1" / "header.wkw").write_bytes(
        (w.dataset_dir / "color" / "1" / "header.wkw").read_bytes()
    )
    (w.dataset_dir / "evil").symlink_to(outside)
    with pytest.raises(PathNotAllowed, match=r"'\./evil/1'"):
        open_mag(w.dataset_dir, _layer("./evil/1"), Mag(1, 1, 1))


def test_tensorstore_view_of_precomputed_keeps_voxel_offsets(tmp_path: Path) -> None:
    w = WRITERS["tensorstore-precomputed"](tmp_path / "ds", make_data("uint16"))
    store = ts.open(
        {
            "driver": "neuroglancer_precomputed",
            "kvstore": {"driver": "file", "path": str(w.dataset_dir / "color")},
        }
    ).result()
    with open_written(w) as array:
        assert array.shape == Vec3(*store.domain.exclusive_max[:3])
