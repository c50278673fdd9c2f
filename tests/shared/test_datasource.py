"""The datasource-properties.json model: spellings, round trips and error messages."""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import pickle
import stat
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shared.datasource import (
    MAX_FILE_BYTES,
    Category,
    DataFormat,
    DatasourceError,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
    dump_datasource,
    dumps_datasource,
    layer_from_json,
    load_datasource,
    parse_datasource,
    parse_datasource_json,
    save_datasource,
)
from shared.geometry import BoundingBox, Mag

DATA = Path(__file__).parent / "data"
SAMPLES = sorted(DATA.glob("*.json"))
ELEMENT_CLASSES = (
    "uint8, uint16, uint24, uint32, uint64, int8, int16, int32, int64, float, double"
)


def sample(name: str) -> dict[str, Any]:
    return json.loads((DATA / name).read_text())


def minimal() -> dict[str, Any]:
    """A valid datasource with a color and a segmentation layer."""
    box = {"topLeft": [0, 0, 0], "width": 64, "height": 64, "depth": 32}
    return {
        "id": {"name": "ds", "team": "org"},
        "scale": {"factor": [11.0, 11.0, 24.0], "unit": "nanometer"},
        "dataLayers": [
            {
                "name": "color",
                "category": "color",
                "boundingBox": dict(box),
                "elementClass": "uint8",
                "dataFormat": "wkw",
                "mags": [{"mag": [1, 1, 1], "path": "./color/1"}],
            },
            {
                "name": "seg",
                "category": "segmentation",
                "boundingBox": dict(box),
                "elementClass": "uint32",
                "dataFormat": "zarr3",
                "mags": [{"mag": [1, 1, 1]}, {"mag": [2, 2, 1]}],
                "largestSegmentId": 7,
            },
        ],
    }


def errors_of(obj: Any) -> list[tuple[str, str]]:
    with pytest.raises(DatasourceError) as info:
        parse_datasource(obj)
    return info.value.errors


# --- round trips of real-world files ---------------------------------------------


@pytest.mark.parametrize("path", SAMPLES, ids=lambda p: p.stem)
def test_sample_files_round_trip_unchanged(path: Path) -> None:
    props = load_datasource(path)
    source = json.loads(path.read_text())
    # Same content and the same key order at every level.
    assert json.dumps(dump_datasource(props)) == json.dumps(source)
    assert parse_datasource(dump_datasource(props)) == props
    assert hash(load_datasource(path)) == hash(props)


@pytest.mark.parametrize(
    "path", [p for p in SAMPLES if "legacy" not in p.name], ids=lambda p: p.stem
)
def test_sample_files_in_webknossos_layout_are_written_back_byte_for_byte(
    path: Path,
) -> None:
    # The legacy sample is indented by 2 like WEBKNOSSOS writes; we indent by 4.
    text = path.read_text()
    assert dumps_datasource(load_datasource(path)) == text


def test_modern_file_gives_typed_layers_and_mags() -> None:
    props = load_datasource(DATA / "modern_webknossos_libs.json")
    assert (props.name, props.team) == ("l4_sample", "")
    assert props.voxel_size == VoxelSize((11.24, 11.24, 25.0))
    color = props.get_layer("color")
    assert color.bounding_box == BoundingBox.of((3072, 3072, 512), (1024, 1024, 1024))
    assert [m.mag for m in color.mags] == [Mag(1, 1, 1), Mag(2, 2, 1), Mag(4, 4, 2)]
    assert color.get_mag("2-2-1").path == "./color/2-2-1"
    assert color.get_mag([4, 4, 2]).cube_length == 1024
    assert dict(color.mags[0].axis_order or {}) == {"c": 0, "x": 1, "y": 2, "z": 3}
    assert color.default_view_configuration == {
        "color": (255, 0, 0),
        "intensityRange": (0, 200),
    }
    rgb = props.get_layer("rgb")
    assert (rgb.element_class, rgb.channels, rgb.dtype) == (
        ElementClass.UINT24,
        3,
        np.dtype("uint8"),
    )
    seg = props.get_layer("segmentation")
    assert seg.category is Category.SEGMENTATION
    assert seg.data_format is DataFormat.ZARR3
    assert (seg.largest_segment_id, seg.mappings) == (2504697, ("agglomerate_view_70",))
    assert props.extra == {"version": 1}


def test_legacy_file_reads_wkw_resolutions_plain_scale_and_missing_data_format() -> (
    None
):
    props = load_datasource(DATA / "legacy_wkw_resolutions.json")
    assert props.voxel_size == VoxelSize((11.24, 11.24, 28.0), "nanometer")
    color, seg = props.layers
    assert [(m.mag, m.cube_length) for m in color.mags] == [
        (Mag(1, 1, 1), 1024),
        (Mag(2, 2, 1), 1024),
        (Mag(4, 4, 4), 1024),
    ]
    assert seg.data_format is DataFormat.WKW
    assert (seg.largest_segment_id, seg.mappings) == (1000, ())
    out = dump_datasource(props)
    assert out["scale"] == [11.24, 11.24, 28]
    assert "dataFormat" not in out["dataLayers"][1]
    assert out["dataLayers"][0]["wkwResolutions"][2] == {
        "resolution": 4,
        "cubeLength": 1024,
    }


def test_transforms_axes_bigint_ids_and_unknown_keys_are_kept() -> None:
    props = load_datasource(DATA / "transforms_axes_extras.json")
    em, cells = props.layers
    assert props.voxel_size.unit == "nanometer"
    assert props.extra["createdBy"] == {
        "tool": "registration-pipeline",
        "commit": "abc123",
    }
    assert props.default_view_configuration is not None
    assert props.default_view_configuration["zoom"] == 1.5
    assert em.bounding_box.topleft.x == -64
    assert em.coordinate_transformations is not None
    assert [t["type"] for t in em.coordinate_transformations] == [
        "affine",
        "thin_plate_spline",
    ]
    assert em.additional_axes == ({"name": "t", "bounds": (0, 10), "index": 1},)
    assert em.extra == {"adminViewConfiguration": {"color": (0, 255, 0)}}
    assert em.mags[0].extra == {"channelIndex": 0}
    assert em.dtype == np.dtype("float32")
    assert cells.largest_segment_id == 2**64 - 1
    assert cells.mappings == ("cell_types", "merged")
    assert "attachments" in cells.extra


def test_remote_mag_paths_and_credentials_are_kept_verbatim() -> None:
    layer = load_datasource(DATA / "remote_zarr_s3.json").get_layer("color")
    assert [(m.path, m.credential_id) for m in layer.mags] == [
        ("s3://h01-release/data/20210601/4nm_raw/s0", "64d8b1e1a8b7c6d5e4f3a2b1"),
        ("s3://h01-release/data/20210601/4nm_raw/s1", "64d8b1e1a8b7c6d5e4f3a2b1"),
        ("gs://h01-release/data/20210601/4nm_raw/s2", None),
        ("https://storage.example.org/h01/s3/", None),
    ]
    assert layer.data_format is DataFormat.ZARR


def test_spelling_does_not_matter_for_equality() -> None:
    modern = minimal()
    other = copy.deepcopy(modern)
    other["scale"] = [11, 11, 24]
    other["dataLayers"][1]["mags"] = [{"mag": 1}, {"mag": "2-2-1"}]
    other["dataLayers"][1]["largestSegmentId"] = 7.0
    assert parse_datasource(other) == parse_datasource(modern)
    assert hash(parse_datasource(other)) == hash(parse_datasource(modern))
    assert dump_datasource(parse_datasource(other)) == other


# --- edits keep the user's shape where they can -----------------------------------


def test_edited_bounding_box_is_rewritten_but_keeps_its_unknown_keys() -> None:
    props = load_datasource(DATA / "transforms_axes_extras.json")
    em = props.layers[0]
    bigger = dataclasses.replace(em, bounding_box=BoundingBox.of((0, 0, 0), (8, 8, 8)))
    out = dump_datasource(dataclasses.replace(props, layers=(bigger, props.layers[1])))
    assert out["dataLayers"][0]["boundingBox"] == {
        "topLeft": [0, 0, 0],
        "width": 8,
        "height": 8,
        "depth": 8,
        "comment": "cropped",
    }
    assert out["dataLayers"][0]["mags"][1]["mag"] == "2-2-1"


def test_legacy_layer_stays_legacy_until_a_mag_needs_a_path() -> None:
    props = load_datasource(DATA / "legacy_wkw_resolutions.json")
    seg = props.layers[1]
    grown = dataclasses.replace(seg, mags=(*seg.mags, MagProperties(Mag(8, 8, 8))))
    out = dump_datasource(dataclasses.replace(props, layers=(props.layers[0], grown)))
    assert out["dataLayers"][1]["wkwResolutions"] == [
        {"resolution": 1, "cubeLength": 1024},
        {"resolution": [8, 8, 8]},
    ]

    with_path = dataclasses.replace(
        seg, mags=(MagProperties(Mag(1, 1, 1), path="./seg/1"),)
    )
    edited = dataclasses.replace(props, layers=(props.layers[0], with_path))
    out = dump_datasource(edited)
    layer = out["dataLayers"][1]
    assert "wkwResolutions" not in layer
    assert layer["mags"] == [{"mag": [1, 1, 1], "path": "./seg/1"}]
    assert layer["dataFormat"] == "wkw"
    assert parse_datasource(out) == edited


def test_new_scale_of_a_plain_list_file_stays_a_plain_list() -> None:
    props = load_datasource(DATA / "legacy_wkw_resolutions.json")
    edited = dataclasses.replace(props, voxel_size=VoxelSize((5, 5, 5)))
    assert dump_datasource(edited)["scale"] == [5.0, 5.0, 5.0]
    in_um = dataclasses.replace(props, voxel_size=VoxelSize((5, 5, 5), "µm"))
    assert dump_datasource(in_um)["scale"] == {
        "factor": [5.0, 5.0, 5.0],
        "unit": "micrometer",
    }


def test_new_properties_are_written_like_webknossos_libs() -> None:
    layer = LayerProperties(
        name="seg",
        category="segmentation",  # type: ignore[arg-type]
        bounding_box=BoundingBox.of((1, 2, 3), (10, 20, 30)),
        element_class=ElementClass.from_dtype("uint64"),
        data_format=DataFormat.ZARR3,
        mags=(MagProperties(Mag.parse("2-2-1"), path="./seg/2-2-1"),),
        largest_segment_id=2**60,
        num_channels=1,
    )
    props = DatasourceProperties("ds", "org", VoxelSize((4, 4, 40)), (layer,))
    assert dump_datasource(props) == {
        "id": {"name": "ds", "team": "org"},
        "scale": {"factor": [4.0, 4.0, 40.0], "unit": "nanometer"},
        "dataLayers": [
            {
                "name": "seg",
                "category": "segmentation",
                "boundingBox": {
                    "topLeft": [1, 2, 3],
                    "width": 10,
                    "height": 20,
                    "depth": 30,
                },
                "elementClass": "uint64",
                "dataFormat": "zarr3",
                "mags": [{"mag": [2, 2, 1], "path": "./seg/2-2-1"}],
                "largestSegmentId": {
                    "customJsonEncoding": "bigint",
                    "value": str(2**60),
                },
                "numChannels": 1,
            }
        ],
    }
    assert parse_datasource(dump_datasource(props)) == props
    assert dumps_datasource(props).endswith("}\n")


# --- errors, each with its JSON path -----------------------------------------------


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation that sets `a.b[1].c` (or deletes it for `...`) in the document."""

    def mutate(doc: dict[str, Any]) -> None:
        *parents, last = _split(path)
        target: Any = doc
        for part in parents:
            target = target[part]
        if value is ...:
            del target[last]
        else:
            target[last] = value

    return mutate


def _split(path: str) -> Iterator[str | int]:
    for part in path.replace("[", ".").replace("]", "").split("."):
        yield int(part) if part.isdigit() else part


def _two_layers_named_color(doc: dict[str, Any]) -> None:
    doc["dataLayers"].append(copy.deepcopy(doc["dataLayers"][0]))
    doc["dataLayers"][2]["name"] = "color"


TPS_BAD = {"source": [[0, 0, 0], [1, 1, 1]], "target": [[0, 0, 0]]}
NAME_RULE = (
    "use 1-128 letters, digits, '_', '.' or '-', starting with a letter, digit or '_'"
)

ERROR_CASES: list[tuple[str, Callable[[dict[str, Any]], None], str, str]] = [
    ("root id missing", _set("id", ...), "id", "required"),
    ("scale missing", _set("scale", ...), "scale", "required"),
    ("layers missing", _set("dataLayers", ...), "dataLayers", "required"),
    ("id a string", _set("id", "ds"), "id", "must be an object, got a string"),
    (
        "id name with space",
        _set("id.name", "my dataset"),
        "id.name",
        f"invalid name 'my dataset': {NAME_RULE}",
    ),
    ("id name missing", _set("id.name", ...), "id.name", "required"),
    ("team a number", _set("id.team", 5), "id.team", "must be a string, got a number"),
    (
        "zero voxel size",
        _set("scale.factor", [11, 11, 0]),
        "scale.factor[2]",
        "must be a finite number > 0",
    ),
    (
        "nan voxel size",
        _set("scale.factor", [11, 11, math.nan]),
        "scale.factor[2]",
        "must be a finite number > 0",
    ),
    (
        "plain scale negative",
        _set("scale", [1, -1, 1]),
        "scale[1]",
        "must be a finite number > 0",
    ),
    (
        "scale a string",
        _set("scale", "11nm"),
        "scale",
        "must be an object {factor, unit} or a list [x, y, z], got a string",
    ),
    (
        "factor of two numbers",
        _set("scale.factor", [1, 1]),
        "scale.factor",
        "must be a list of 3 numbers [x, y, z], got a list",
    ),
    (
        "unknown unit",
        _set("scale.unit", "furlong"),
        "scale.unit",
        "unknown unit 'furlong' (expected one of yoctometer, zeptometer, attometer, "
        "femtometer, picometer, nanometer, micrometer, millimeter, centimeter, "
        "decimeter, meter, hectometer, kilometer, megameter, gigameter, terameter, "
        "petameter, exameter, zettameter, yottameter, angstrom, inch, foot, yard, "
        "mile, parsec)",
    ),
    (
        "zero width",
        _set("dataLayers[1].boundingBox.width", 0),
        "dataLayers[1].boundingBox.width",
        "must be > 0",
    ),
    (
        "fractional depth",
        _set("dataLayers[0].boundingBox.depth", 1.5),
        "dataLayers[0].boundingBox.depth",
        "must be an integer, got 1.5",
    ),
    (
        "boolean height",
        _set("dataLayers[0].boundingBox.height", True),
        "dataLayers[0].boundingBox.height",
        "must be an integer, got true",
    ),
    (
        "huge width",
        _set("dataLayers[0].boundingBox.width", 2**31),
        "dataLayers[0].boundingBox.width",
        "must be < 2^31",
    ),
    (
        "huge negative corner",
        _set("dataLayers[0].boundingBox.topLeft", [0, -(2**31), 0]),
        "dataLayers[0].boundingBox.topLeft[1]",
        "must be an integer with |value| < 2^31",
    ),
    (
        "corner of two",
        _set("dataLayers[0].boundingBox.topLeft", [0, 0]),
        "dataLayers[0].boundingBox.topLeft",
        "must be a list of 3 integers [x, y, z], got a list",
    ),
    (
        "unknown element class",
        _set("dataLayers[0].elementClass", "uint7"),
        "dataLayers[0].elementClass",
        f"unknown element class 'uint7' (expected one of {ELEMENT_CLASSES})",
    ),
    (
        "unknown data format",
        _set("dataLayers[0].dataFormat", "tiff"),
        "dataLayers[0].dataFormat",
        "unknown data format 'tiff' (expected one of wkw, zarr, zarr3, n5, "
        "neuroglancerPrecomputed)",
    ),
    (
        "data format missing",
        _set("dataLayers[0].dataFormat", ...),
        "dataLayers[0].dataFormat",
        "required",
    ),
    (
        "unknown category",
        _set("dataLayers[0].category", "mask"),
        "dataLayers[0].category",
        "unknown category 'mask' (expected one of color, segmentation)",
    ),
    (
        "duplicate layer name",
        _two_layers_named_color,
        "dataLayers[2].name",
        "duplicate layer name 'color'",
    ),
    (
        "layer name climbing up",
        _set("dataLayers[0].name", ".."),
        "dataLayers[0].name",
        f"invalid name '..': {NAME_RULE}",
    ),
    (
        "layer name with slash",
        _set("dataLayers[0].name", "a/b"),
        "dataLayers[0].name",
        f"invalid name 'a/b': {NAME_RULE}",
    ),
    (
        "layer name with newline",
        _set("dataLayers[0].name", "color\n"),
        "dataLayers[0].name",
        f"invalid name 'color\\n': {NAME_RULE}",
    ),
    (
        "no mags",
        _set("dataLayers[0].mags", []),
        "dataLayers[0].mags",
        "at least one mag is required",
    ),
    (
        "duplicate mag",
        _set("dataLayers[1].mags[1].mag", "1-1-1"),
        "dataLayers[1].mags[1].mag",
        "duplicate mag 1-1-1",
    ),
    (
        "mag not a power of two",
        _set("dataLayers[0].mags[0].mag", [3, 3, 1]),
        "dataLayers[0].mags[0].mag",
        "must be powers of two between 1 and 2^30, got 3-3-1",
    ),
    (
        "mag not a mag",
        _set("dataLayers[0].mags[0].mag", "big"),
        "dataLayers[0].mags[0].mag",
        "must be a mag like [2, 2, 1], \"2-2-1\" or 2, got 'big'",
    ),
    (
        "mag path with NUL",
        _set("dataLayers[0].mags[0].path", "./color/1\x00.wkw"),
        "dataLayers[0].mags[0].path",
        "must not contain NUL bytes",
    ),
    (
        "mag path a number",
        _set("dataLayers[0].mags[0].path", 1),
        "dataLayers[0].mags[0].path",
        "must be a string, got a number",
    ),
    (
        "mag path too long",
        _set("dataLayers[0].mags[0].path", "a" * 2049),
        "dataLayers[0].mags[0].path",
        "too long (2049 > 2048 characters)",
    ),
    (
        "axis order without z",
        _set("dataLayers[0].mags[0].axisOrder", {"x": 1, "y": 2}),
        "dataLayers[0].mags[0].axisOrder",
        "missing axis 'z'",
    ),
    (
        "float segmentation",
        _set("dataLayers[1].elementClass", "float"),
        "dataLayers[1].elementClass",
        "segmentation layers need an integer element class, got float",
    ),
    (
        "rgb segmentation",
        _set("dataLayers[1].elementClass", "uint24"),
        "dataLayers[1].elementClass",
        "segmentation layers need an integer element class, got uint24",
    ),
    (
        "channels that do not fit",
        _set("dataLayers[0].numChannels", 2),
        "dataLayers[0].numChannels",
        "2 channels do not fit element class uint8",
    ),
    (
        "negative segment id",
        _set("dataLayers[1].largestSegmentId", -1),
        "dataLayers[1].largestSegmentId",
        "must be >= 0",
    ),
    (
        "segment id beyond uint64",
        _set("dataLayers[1].largestSegmentId", 2**64),
        "dataLayers[1].largestSegmentId",
        "must be <= 2^64-1 (18446744073709551615)",
    ),
    (
        "fractional segment id",
        _set("dataLayers[1].largestSegmentId", 5.5),
        "dataLayers[1].largestSegmentId",
        "must be an integer or null, got 5.5",
    ),
    (
        "mapping not a string",
        _set("dataLayers[1].mappings", ["ok", 3]),
        "dataLayers[1].mappings[1]",
        "must be a string, got a number",
    ),
    (
        "affine of 3x3",
        _set(
            "dataLayers[0].coordinateTransformations",
            [{"type": "affine", "matrix": [[1, 0, 0], [0, 1, 0], [0, 0, 1]]}],
        ),
        "dataLayers[0].coordinateTransformations[0].matrix",
        "must be a 4x4 matrix of numbers",
    ),
    (
        "thin plate spline of unequal lists",
        _set(
            "dataLayers[0].coordinateTransformations",
            [{"type": "thin_plate_spline", "correspondences": TPS_BAD}],
        ),
        "dataLayers[0].coordinateTransformations[0].correspondences.target",
        "must have as many points as source (1 != 2)",
    ),
    (
        "unknown transformation",
        _set("dataLayers[0].coordinateTransformations", [{"type": "warp"}]),
        "dataLayers[0].coordinateTransformations[0].type",
        "unknown transformation type 'warp' (expected affine or thin_plate_spline)",
    ),
    (
        "empty axis bounds",
        _set(
            "dataLayers[0].additionalAxes",
            [{"name": "t", "bounds": [5, 5], "index": 1}],
        ),
        "dataLayers[0].additionalAxes[0].bounds",
        "must be [min, max] integers with min < max",
    ),
    (
        "additional axis named x",
        _set(
            "dataLayers[0].additionalAxes",
            [{"name": "x", "bounds": [0, 5], "index": 1}],
        ),
        "dataLayers[0].additionalAxes[0].name",
        "'x' is not an additional axis",
    ),
    (
        "NaN in a view configuration",
        _set("dataLayers[0].defaultViewConfiguration", {"zoom": math.inf}),
        "dataLayers[0].defaultViewConfiguration.zoom",
        "must be a finite number",
    ),
    (
        "NaN in an unknown key",
        _set("importedFrom", {"score": math.nan}),
        "importedFrom.score",
        "must be a finite number",
    ),
    (
        "both mags and wkwResolutions",
        _set("dataLayers[0].wkwResolutions", [{"resolution": 1}]),
        "dataLayers[0].wkwResolutions",
        "give either mags or wkwResolutions",
    ),
    ("version text", _set("version", "1"), "version", "must be an integer, got '1'"),
]


@pytest.mark.parametrize(
    ("mutate", "path", "message"),
    [case[1:] for case in ERROR_CASES],
    ids=[case[0] for case in ERROR_CASES],
)
def test_bad_value_is_named_with_its_json_path(
    mutate: Callable[[dict[str, Any]], None], path: str, message: str
) -> None:
    doc = minimal()
    mutate(doc)
    assert errors_of(doc) == [(path, message)]


def test_all_problems_are_reported_together() -> None:
    doc = minimal()
    del doc["scale"]
    doc["dataLayers"][0]["elementClass"] = "uint7"
    doc["dataLayers"][1]["boundingBox"]["width"] = -3
    doc["dataLayers"][1]["mags"].append({"mag": [2, 2, 1]})
    with pytest.raises(DatasourceError) as info:
        parse_datasource(doc)
    error = info.value
    assert error.errors == [
        ("scale", "required"),
        (
            "dataLayers[0].elementClass",
            f"unknown element class 'uint7' (expected one of {ELEMENT_CLASSES})",
        ),
        ("dataLayers[1].boundingBox.width", "must be > 0"),
        ("dataLayers[1].mags[2].mag", "duplicate mag 2-2-1"),
    ]
    assert str(error).startswith(
        "scale: required; dataLayers[0].elementClass: unknown element class"
    )
    assert error.as_json()[0] == {"path": "scale", "message": "required"}


def test_a_flood_of_problems_is_cut_short() -> None:
    doc = minimal()
    doc["dataLayers"] = [{**doc["dataLayers"][0], "name": "a/b"} for _ in range(150)]
    errors = errors_of(doc)
    assert len(errors) == 101
    assert errors[-1] == ("(more)", "50 more problems")


def test_a_flood_of_non_json_numbers_stops_the_check_early() -> None:
    doc = minimal()
    doc["junk"] = [math.nan] * 5000
    errors = errors_of(doc)
    assert errors[0] == ("junk[0]", "must be a finite number")
    assert errors[-1] == ("(more)", "900 more problems, then stopped")


@pytest.mark.parametrize(
    ("value", "path", "message"),
    [
        ({1: "x"}, "junk", "object keys must be strings, got 1"),
        ({"a": {1, 2}}, "junk.a", "not a JSON value: set"),
        ([1, np.int64(3)], "junk[1]", "not a JSON value: int64"),
    ],
)
def test_python_values_that_are_not_json_are_refused(
    value: Any, path: str, message: str
) -> None:
    doc = minimal()
    doc["junk"] = value
    assert errors_of(doc) == [(path, message)]


@pytest.mark.parametrize(
    ("obj", "message"),
    [
        ([], "must be a JSON object, got a list"),
        (None, "must be a JSON object, got null"),
    ],
)
def test_document_that_is_not_an_object_is_refused(obj: Any, message: str) -> None:
    assert errors_of(obj) == [("(root)", message)]


def test_lenient_spellings_are_accepted() -> None:
    doc = minimal()
    del doc["id"]["team"]
    doc["dataLayers"][1]["largestSegmentId"] = 5.0
    doc["dataLayers"][1]["numChannels"] = None
    doc["dataLayers"][0]["mags"][0]["path"] = None
    props = parse_datasource(doc)
    assert props.team == ""
    assert props.layers[1].largest_segment_id == 5
    assert props.layers[1].num_channels is None
    assert props.layers[0].mags[0].path is None
    assert dump_datasource(props) == doc


def test_layer_from_json_names_errors_below_the_given_path() -> None:
    entry = minimal()["dataLayers"][0]
    assert layer_from_json(entry).name == "color"
    entry["boundingBox"]["depth"] = 0
    with pytest.raises(DatasourceError) as info:
        layer_from_json(entry, "dataLayers[4]")
    assert info.value.errors == [("dataLayers[4].boundingBox.depth", "must be > 0")]


# --- JSON text and files ------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"id": {"name": "x"}\n  "scale": 1}', "invalid JSON at line 2, column 3: "
         "Expecting ',' delimiter"),
        ("", "invalid JSON at line 1, column 1: Expecting value"),
        (b'{"id": "\xff"}', "not UTF-8 text (bad byte at offset 8)"),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
    ],
)  # fmt: skip
def test_invalid_json_text_is_a_datasource_error(
    text: str | bytes, message: str
) -> None:
    with pytest.raises(DatasourceError) as info:
        parse_datasource_json(text)
    assert info.value.errors == [("(json)", message)]


def test_json_text_with_a_byte_order_mark_is_read() -> None:
    text = json.dumps(minimal())
    assert parse_datasource_json("\ufeff" + text) == parse_datasource_json(text)
    assert parse_datasource_json(b"\xef\xbb\xbf" + text.encode()).name == "ds"


def test_oversized_file_is_refused_without_parsing(tmp_path: Path) -> None:
    path = tmp_path / "datasource-properties.json"
    with open(path, "wb") as f:
        f.truncate(MAX_FILE_BYTES + 1)
    with pytest.raises(DatasourceError) as info:
        load_datasource(path)
    assert info.value.errors == [
        ("(file)", "datasource-properties.json is larger than 16 MiB")
    ]


def test_save_writes_atomically_and_keeps_the_file_mode(tmp_path: Path) -> None:
    path = tmp_path / "datasource-properties.json"
    props = parse_datasource(minimal())
    save_datasource(path, props)
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert load_datasource(path) == props
    path.chmod(0o640)
    renamed = dataclasses.replace(props, name="ds2")
    save_datasource(path, renamed)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert load_datasource(path) == renamed
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_save_refuses_invalid_properties_and_leaves_the_old_file(
    tmp_path: Path,
) -> None:
    path = tmp_path / "datasource-properties.json"
    props = parse_datasource(minimal())
    save_datasource(path, props)
    before = path.read_bytes()
    bad_layer = dataclasses.replace(props.layers[0], name="../escape")
    with pytest.raises(DatasourceError) as info:
        save_datasource(path, dataclasses.replace(props, layers=(bad_layer,)))
    assert info.value.errors[0][0] == "dataLayers[0].name"
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == [path.name]


def test_datasource_error_survives_pickling() -> None:
    error = DatasourceError("scale", "required")
    assert error.errors == [("scale", "required")]
    # Our own bytes, pickled one line earlier: safe to unpickle.
    assert pickle.loads(pickle.dumps(error)).errors == error.errors  # noqa: S301
    assert str(DatasourceError([("a", "x"), ("b", "y")])) == "a: x; b: y"


# --- value types -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("element_class", "dtype", "channels", "bytes_per_voxel"),
    [
        (ElementClass.UINT8, "uint8", 1, 1),
        (ElementClass.UINT16, "uint16", 1, 2),
        (ElementClass.UINT24, "uint8", 3, 3),
        (ElementClass.UINT32, "uint32", 1, 4),
        (ElementClass.UINT64, "uint64", 1, 8),
        (ElementClass.INT8, "int8", 1, 1),
        (ElementClass.INT16, "int16", 1, 2),
        (ElementClass.INT32, "int32", 1, 4),
        (ElementClass.INT64, "int64", 1, 8),
        (ElementClass.FLOAT, "float32", 1, 4),
        (ElementClass.DOUBLE, "float64", 1, 8),
    ],
)
def test_element_class_maps_to_little_endian_dtype(
    element_class: ElementClass, dtype: str, channels: int, bytes_per_voxel: int
) -> None:
    assert element_class.dtype == np.dtype(dtype).newbyteorder("<")
    assert element_class.dtype.byteorder in "<|="
    assert element_class.num_channels == channels
    assert element_class.bytes_per_voxel == bytes_per_voxel
    assert ElementClass.from_dtype(element_class.dtype, channels) is element_class


@pytest.mark.parametrize(
    ("dtype", "channels", "expected"),
    [
        (np.uint8, 3, ElementClass.UINT24),
        (">u2", 1, ElementClass.UINT16),
        ("float32", 1, ElementClass.FLOAT),
        (np.dtype("float64"), 1, ElementClass.DOUBLE),
        ("uint16", 2, ElementClass.UINT32),
    ],
)
def test_element_class_from_dtype(
    dtype: Any, channels: int, expected: ElementClass
) -> None:
    assert ElementClass.from_dtype(dtype, channels) is expected


@pytest.mark.parametrize(("dtype", "channels"), [(bool, 1), ("uint8", 5), ("f2", 1)])
def test_element_class_from_unsupported_dtype_is_refused(
    dtype: Any, channels: int
) -> None:
    with pytest.raises(ValueError, match="no WEBKNOSSOS element class"):
        ElementClass.from_dtype(dtype, channels)


def test_layer_dtype_splits_the_element_class_over_its_channels() -> None:
    doc = minimal()["dataLayers"][0]
    doc.update(elementClass="uint32", numChannels=2)
    layer = layer_from_json(doc)
    assert (layer.channels, layer.dtype) == (2, np.dtype("uint16"))


@pytest.mark.parametrize(
    ("spelling", "expected"),
    [
        ([2, 2, 1], Mag(2, 2, 1)),
        ("2-2-1", Mag(2, 2, 1)),
        (" 4 ", Mag(4, 4, 4)),
        (8, Mag(8, 8, 8)),
        ([1.0, 1.0, 2.0], Mag(1, 1, 2)),
    ],
)
def test_mag_spellings_parse_and_round_trip(spelling: Any, expected: Mag) -> None:
    doc = minimal()
    doc["dataLayers"][0]["mags"][0]["mag"] = spelling
    props = parse_datasource(doc)
    assert props.layers[0].mags[0].mag == expected
    assert dump_datasource(props)["dataLayers"][0]["mags"][0]["mag"] == spelling


@pytest.mark.parametrize("spelling", [[2, 2], "2-2", "x", True, None, [2, 2, 0], 2**31])
def test_malformed_mags_are_refused(spelling: Any) -> None:
    doc = minimal()
    doc["dataLayers"][0]["mags"][0]["mag"] = spelling
    [(path, _)] = errors_of(doc)
    assert path == "dataLayers[0].mags[0].mag"


def test_get_mag_and_get_layer_name_what_is_available() -> None:
    props = parse_datasource(minimal())
    seg = props.get_layer("seg")
    assert seg.get_mag(Mag(2, 2, 1)) is seg.get_mag("2-2-1") is seg.get_mag([2, 2, 1])
    with pytest.raises(KeyError) as mag_info:
        seg.get_mag(8)
    assert mag_info.value.args[0] == "mag 8-8-8 not in layer seg (available: 1, 2-2-1)"
    with pytest.raises(KeyError) as layer_info:
        props.get_layer("nope")
    assert layer_info.value.args[0] == (
        "layer 'nope' not in dataset ds (available: color, seg)"
    )


def test_voxel_size_units_are_canonical_and_convert_to_nanometers() -> None:
    size = VoxelSize((0.5, 0.5, 1), "µm")
    assert size == VoxelSize((0.5, 0.5, 1.0), "micrometer")
    assert size.to_nanometers() == (500.0, 500.0, 1000.0)
    with pytest.raises(ValueError, match="unknown length unit 'furlong'"):
        VoxelSize((1, 1, 1), "furlong")


def test_parsed_properties_survive_pickle_and_deepcopy() -> None:
    props = load_datasource(DATA / "transforms_axes_extras.json")
    # Our own bytes, pickled one line earlier: safe to unpickle.
    copied = pickle.loads(pickle.dumps(props))  # noqa: S301
    assert copied == props
    assert dump_datasource(copied) == dump_datasource(props)
    assert copy.deepcopy(props) == props


def test_schema_objects_are_frozen_and_copy_caller_containers() -> None:
    view = {"position": [1, 2, 3]}
    props = DatasourceProperties(
        "ds", "", VoxelSize((1, 1, 1)), (), default_view_configuration=view
    )
    view["position"].append(4)
    assert props.default_view_configuration == {"position": (1, 2, 3)}
    with pytest.raises(dataclasses.FrozenInstanceError):
        props.name = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        props.extra["x"] = 1  # type: ignore[index]


# --- files written by the official webknossos library ------------------------------


@pytest.fixture(scope="module")
def official_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny dataset by `webknossos`: wkw color (+ mag 2-2-1), zarr3 segmentation."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*Not all image readers", UserWarning)
        warnings.filterwarnings("ignore", r".*Downsampling uses the numpy", UserWarning)
        import webknossos as wk
        from cluster_tools import get_executor

        root = tmp_path_factory.mktemp("official") / "l4_tiny"
        ds = wk.Dataset(root, voxel_size=(11.24, 11.24, 25))
        color = ds.add_layer(
            "color", wk.COLOR_CATEGORY, dtype="uint8", data_format="wkw"
        )
        voxels = np.arange(64 * 64 * 32, dtype=np.uint32).reshape(64, 64, 32)
        color.add_mag(1).write(
            (voxels % 251).astype(np.uint8),
            absolute_offset=(0, 0, 0),
            allow_resize=True,
        )
        seg = ds.add_layer(
            "segmentation",
            wk.SEGMENTATION_CATEGORY,
            dtype="uint32",
            data_format="zarr3",
            largest_segment_id=99,
        )
        # Small shards: the default 1024^3 shard takes ~25 s to write here.
        seg.add_mag(1, chunk_shape=32, shard_shape=64).write(
            voxels % 100, absolute_offset=(0, 0, 0), allow_resize=True
        )
        color.downsample(coarsest_mag=wk.Mag(2), executor=get_executor("sequential"))
    return root


def test_dataset_written_by_webknossos_round_trips(official_dataset: Path) -> None:
    path = official_dataset / "datasource-properties.json"
    props = load_datasource(path)
    color, seg = props.get_layer("color"), props.get_layer("segmentation")
    assert (color.data_format, seg.data_format) == (DataFormat.WKW, DataFormat.ZARR3)
    assert [m.mag for m in color.mags] == [Mag(1, 1, 1), Mag(2, 2, 1)]
    assert [m.path for m in color.mags] == ["./color/1", "./color/2-2-1"]
    assert color.bounding_box == BoundingBox.of((0, 0, 0), (64, 64, 32))
    assert (seg.element_class, seg.largest_segment_id) == (ElementClass.UINT32, 99)
    assert props.voxel_size.factor == (11.24, 11.24, 25.0)
    text = path.read_text()
    assert dumps_datasource(props).rstrip("\n") == text.rstrip("\n")


def test_webknossos_reads_what_we_save(official_dataset: Path) -> None:
    path = official_dataset / "datasource-properties.json"
    props = load_datasource(path)
    seg = props.get_layer("segmentation")
    edited = dataclasses.replace(
        props,
        layers=(props.layers[0], dataclasses.replace(seg, largest_segment_id=100)),
        default_view_configuration={"zoom": 2.0},
    )
    save_datasource(path, edited)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", r".*Not all image readers", UserWarning)
        import webknossos as wk

        reopened = wk.Dataset.open(official_dataset)
        layer = reopened.get_segmentation_layer("segmentation")
        assert layer.largest_segment_id == 100
        assert sorted(reopened.get_layer("color").mags) == [wk.Mag(1), wk.Mag("2-2-1")]
        data = layer.get_mag(1).read(absolute_offset=(0, 0, 0), size=(4, 1, 1))
    assert data.ravel().tolist() == [0, 48, 96, 44]
