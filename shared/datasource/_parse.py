"""Parse and validate datasource-properties.json, collecting every problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from shared.datasource import _checks as c
from shared.datasource._checks import Errors, FormBuilder
from shared.datasource._frozen import FrozenDict, freeze_collect, join_path
from shared.datasource._layer_fields import (
    additional_axis,
    bounding_box,
    check_axis_names,
    optional_list,
    segment_id,
    transform,
)
from shared.datasource._layer_mags import layer_mags
from shared.datasource._model import (
    DATASOURCE_KNOWN_KEYS,
    LAYER_KNOWN_KEYS,
    LENGTH_UNITS,
    Category,
    DataFormat,
    DatasourceError,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    VoxelSize,
    canonical_unit,
    channel_dtype,
)


def parse_datasource(obj: Any) -> DatasourceProperties:
    """Validate a parsed datasource-properties.json; raise `DatasourceError` listing
    every problem with its JSON path."""
    if not isinstance(obj, Mapping):
        raise DatasourceError("(root)", f"must be a JSON object, got {c.kind(obj)}")
    problems: list[tuple[str, str]] = []
    doc = freeze_collect(obj, "", problems, c.MAX_JSON_PROBLEMS)
    errors = Errors(problems)
    if len(problems) >= c.MAX_JSON_PROBLEMS:
        errors.raise_if_any()  # the walk stopped early: nothing more to check
    result = _datasource(errors, doc)
    errors.raise_if_any()
    if result is None:  # unreachable: without errors every part was built
        raise DatasourceError("(root)", "invalid datasource")
    return result


def layer_from_json(obj: Any, path: str = "dataLayers[0]") -> LayerProperties:
    """Validate one `dataLayers` entry; error paths start with `path`."""
    problems: list[tuple[str, str]] = []
    doc = freeze_collect(obj, path, problems, c.MAX_JSON_PROBLEMS)
    errors = Errors(problems)
    if len(problems) >= c.MAX_JSON_PROBLEMS:
        errors.raise_if_any()  # the walk stopped early: nothing more to check
    layer = _layer(errors, path, doc)
    errors.raise_if_any()
    if layer is None:  # unreachable: without errors the layer was built
        raise DatasourceError(path, "invalid layer")
    return layer


def _datasource(errors: Errors, d: Mapping[str, Any]) -> DatasourceProperties | None:
    form = FormBuilder(d)
    name, team = _id(errors, d, form)
    voxel_size = _scale(errors, d, form)

    layers: list[LayerProperties | None] = []
    if "dataLayers" not in d:
        errors.add("dataLayers", "required")
    elif (entries := c.seq(errors, "dataLayers", d["dataLayers"])) is not None:
        seen: set[str] = set()
        for i, entry in enumerate(entries):
            if errors.full:
                break
            path = f"dataLayers[{i}]"
            layer = _layer(errors, path, entry)
            layer_name = layer.name if layer else _raw_name(entry)
            if layer_name is not None and layer_name in seen:
                errors.add(f"{path}.name", f"duplicate layer name {layer_name!r}")
            elif layer_name is not None:
                seen.add(layer_name)
            layers.append(layer)
        form.record("dataLayers", tuple(layers))

    view = _view_configuration(errors, "defaultViewConfiguration", d, form)
    if "version" in d:
        c.integer(errors, "version", d["version"], low=0)

    if errors or errors.json_problems:
        return None
    if name is None or team is None or voxel_size is None:
        return None
    return DatasourceProperties(
        name=name,
        team=team,
        voxel_size=voxel_size,
        layers=tuple(layer for layer in layers if layer is not None),
        default_view_configuration=view,
        extra=c.extras(d, DATASOURCE_KNOWN_KEYS),
        json_form=form.build(),
    )


def _raw_name(entry: Any) -> str | None:
    value = entry.get("name") if isinstance(entry, Mapping) else None
    # Invalid names are reported as such, not again as duplicates.
    return value if c.is_name(value) else None


def _id(
    errors: Errors, d: Mapping[str, Any], form: FormBuilder
) -> tuple[str | None, str | None]:
    if "id" not in d:
        errors.add("id", "required")
        return None, None
    ident = c.obj(errors, "id", d["id"])
    if ident is None:
        return None, None
    name = None
    if "name" not in ident:
        errors.add("id.name", "required")
    else:
        name = c.name(errors, "id.name", ident["name"])
    # WEBKNOSSOS takes the organization from the folder; a missing team is harmless.
    team: str | None = ""
    if ident.get("team") is not None:
        team = c.string(errors, "id.team", ident["team"], allow_empty=True)
    form.record("id", (name, team))
    return name, team


def _scale(errors: Errors, d: Mapping[str, Any], form: FormBuilder) -> VoxelSize | None:
    if "scale" not in d:
        errors.add("scale", "required")
        return None
    raw = d["scale"]
    unit = "nanometer"
    if isinstance(raw, tuple):
        factor = _factor(errors, "scale", raw)
    elif isinstance(raw, Mapping):
        factor = None
        if "factor" not in raw:
            errors.add("scale.factor", "required")
        else:
            factor = _factor(errors, "scale.factor", raw["factor"])
        if raw.get("unit") is not None:
            given = c.string(errors, "scale.unit", raw["unit"])
            found = canonical_unit(given) if given is not None else None
            if given is not None and found is None:
                units = ", ".join(LENGTH_UNITS)
                errors.add(
                    "scale.unit",
                    f"unknown unit {c.show(given)} (expected one of {units})",
                )
            unit = found or unit
    else:
        errors.add(
            "scale",
            "must be an object {factor, unit} or a list [x, y, z], "
            f"got {c.kind(raw)}",
        )
        return None
    if factor is None:
        return None
    voxel_size = VoxelSize(factor, unit)
    form.record("scale", voxel_size)
    return voxel_size


def _factor(errors: Errors, path: str, value: Any) -> tuple[float, float, float] | None:
    if not isinstance(value, tuple) or len(value) != 3:
        errors.add(path, f"must be a list of 3 numbers [x, y, z], got {c.kind(value)}")
        return None
    numbers = []
    for i, item in enumerate(value):
        number = c.as_number(item)
        if number is None or number <= 0:
            errors.add(join_path(path, i), "must be a finite number > 0")
        numbers.append(number)
    if any(n is None or n <= 0 for n in numbers):
        return None
    x, y, z = (float(n or 0) for n in numbers)
    return (x, y, z)


def _view_configuration(
    errors: Errors, key: str, d: Mapping[str, Any], form: FormBuilder, base: str = ""
) -> FrozenDict | None:
    value = d.get(key)
    if value is None:
        if key in d:
            form.record(key, None)
        return None
    view = c.obj(errors, join_path(base, key), value)
    if view is None:
        return None
    form.record(key, view)
    return view if isinstance(view, FrozenDict) else FrozenDict(view)


def _layer(errors: Errors, path: str, value: Any) -> LayerProperties | None:
    d = c.obj(errors, path, value)
    if d is None:
        return None
    before = len(errors)
    form = FormBuilder(d)

    def at(key: str) -> str:
        return join_path(path, key)

    def required(key: str) -> bool:
        if key not in d:
            errors.add(at(key), "required")
        return key in d

    name = c.name(errors, at("name"), d["name"]) if required("name") else None
    category = None
    if required("category"):
        category = c.enum(errors, at("category"), d["category"], Category, "category")
    box = (
        bounding_box(errors, at("boundingBox"), d) if required("boundingBox") else None
    )
    if box is not None:
        form.record("boundingBox", box)
    element_class = None
    if required("elementClass"):
        element_class = c.enum(
            errors, at("elementClass"), d["elementClass"], ElementClass, "element class"
        )
    data_format = _data_format(errors, path, d, form)
    mags = layer_mags(errors, path, d, data_format, form)

    largest = None
    if "largestSegmentId" in d:
        largest = segment_id(errors, at("largestSegmentId"), d["largestSegmentId"])
        form.record("largestSegmentId", largest)
    mappings: tuple[str, ...] = ()
    if d.get("mappings") is not None:
        entries = c.seq(errors, at("mappings"), d["mappings"]) or ()
        found = [
            c.string(errors, f"{at('mappings')}[{i}]", m) for i, m in enumerate(entries)
        ]
        mappings = tuple(m for m in found if m is not None)
        form.record("mappings", mappings)
    elif "mappings" in d:
        form.record("mappings", ())
    view = _view_configuration(errors, "defaultViewConfiguration", d, form, path)
    transforms = optional_list(errors, path, d, "coordinateTransformations", transform)
    if "coordinateTransformations" in d:
        form.record("coordinateTransformations", transforms)
    axes = optional_list(errors, path, d, "additionalAxes", additional_axis)
    if axes:
        check_axis_names(errors, at("additionalAxes"), axes)
    if "additionalAxes" in d:
        form.record("additionalAxes", axes)
    num_channels = None
    if d.get("numChannels") is not None:
        num_channels = c.integer(errors, at("numChannels"), d["numChannels"], low=1)
    if "numChannels" in d:
        form.record("numChannels", num_channels)
    _check_element_class(errors, path, category, element_class, num_channels)

    if len(errors) > before or not errors.json_ok(path):
        return None
    if (
        name is None
        or category is None
        or box is None
        or element_class is None
        or data_format is None
        or mags is None
    ):  # unreachable: each of these is None only after an error
        errors.add(path, "invalid layer")
        return None
    for key, parsed in (
        ("name", name),
        ("category", category),
        ("elementClass", element_class),
    ):
        form.record(key, parsed)
    return LayerProperties(
        name=name,
        category=category,
        bounding_box=box,
        element_class=element_class,
        data_format=data_format,
        mags=mags,
        largest_segment_id=largest,
        mappings=mappings,
        default_view_configuration=view,
        coordinate_transformations=transforms,
        additional_axes=axes,
        num_channels=num_channels,
        extra=c.extras(d, LAYER_KNOWN_KEYS),
        json_form=form.build(),
    )


def _check_element_class(
    errors: Errors,
    path: str,
    category: Category | None,
    element_class: ElementClass | None,
    num_channels: int | None,
) -> None:
    if element_class is None:
        return
    if category is Category.SEGMENTATION and not element_class.is_integer:
        errors.add(
            join_path(path, "elementClass"),
            f"segmentation layers need an integer element class, got {element_class}",
        )
        return
    if num_channels is None or num_channels == element_class.num_channels:
        return
    if category is Category.SEGMENTATION:
        errors.add(
            join_path(path, "numChannels"), "segmentation layers have exactly 1 channel"
        )
        return
    bits, rest = divmod(element_class.bytes_per_voxel * 8, num_channels)
    if rest or channel_dtype(element_class.dtype.kind, bits) is None:
        errors.add(
            join_path(path, "numChannels"),
            f"{num_channels} channels do not fit element class {element_class}",
        )


def _data_format(
    errors: Errors, path: str, d: Mapping[str, Any], form: FormBuilder
) -> DataFormat | None:
    if "dataFormat" not in d:
        # Files from before WEBKNOSSOS knew other formats only list wkwResolutions.
        if "wkwResolutions" in d and "mags" not in d:
            form.record("dataFormat", DataFormat.WKW, inferred=True)
            return DataFormat.WKW
        errors.add(join_path(path, "dataFormat"), "required")
        return None
    found = c.enum(
        errors,
        join_path(path, "dataFormat"),
        d["dataFormat"],
        DataFormat,
        "data format",
    )
    if found is not None:
        form.record("dataFormat", found)
    return found
