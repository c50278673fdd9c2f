"""The datasource as a form: voxel size, bounding boxes, largest segment ids.

Used by the Data tab of the settings and by the import screen. The form keeps what
the person typed as strings (a largest segment id up to 2^64-1 never becomes a
float). `build_datasource` puts numbers where the text is one and the text itself
where it is not, so `shared.datasource` (through the API's serializer) finds every
problem and names it by its JSON path; `DataForm.attach` maps those paths back to
the inputs, and what maps to none is listed with its path.
"""

from __future__ import annotations

import copy
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from shared.datasource import LENGTH_UNITS, MAX_FILE_BYTES, VoxelSize

Problem = dict[str, str]

AXES: Final = ("x", "y", "z")
SIZES: Final = ("width", "height", "depth")
DEFAULT_UNIT: Final = "nanometer"
# Larger ids lose precision in JavaScript; WEBKNOSSOS wraps them like this.
JS_MAX_SAFE_INTEGER: Final = 2**53 - 1
_BIGINT: Final = "customJsonEncoding"
_MAX_NUMBER_CHARS: Final = 64
_INTEGER = re.compile(r"[+-]?[0-9]+", re.ASCII)
_DECIMAL = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?", re.ASCII
)
_UNIT_SYMBOLS: Final = {
    "picometer": "pm",
    "angstrom": "Å",
    "nanometer": "nm",
    "micrometer": "µm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}
# The units a microscope dataset plausibly uses come first in the select.
_COMMON_UNITS: Final = tuple(_UNIT_SYMBOLS)

_SCALE_ITEM = re.compile(r"scale(?:\.factor)?\[([0-2])\]")
_LAYER_PATH = re.compile(r"dataLayers\[([0-9]+)\]\.(.+)")
_BOX_CORNER = re.compile(r"boundingBox\.topLeft\[([0-2])\]")


@dataclass
class Field:
    """One text input: its name in the POST, label, value as typed, problems."""

    name: str
    label: str
    value: str = ""
    errors: list[str] = field(default_factory=list)
    inputmode: str = "decimal"
    placeholder: str = ""

    @property
    def id(self) -> str:
        return "f-" + self.name


@dataclass
class LayerForm:
    index: int
    name: str
    category: str
    element_class: str
    data_format: str
    box: list[Field]
    box_errors: list[str] = field(default_factory=list)
    largest: Field | None = None

    @property
    def box_error_id(self) -> str:
        """The id of the bounding box's group error, "" without one."""
        return f"layer-{self.index}-box-error" if self.box_errors else ""


@dataclass
class DataForm:
    """The Data tab's simple form (or the import form, without bounding boxes)."""

    scale: list[Field]
    unit: Field
    layers: list[LayerForm]
    show_boxes: bool = True
    scale_errors: list[str] = field(default_factory=list)
    other: list[Problem] = field(default_factory=list)

    @property
    def scale_error_id(self) -> str:
        """The id of the voxel size's group error, "" without one."""
        return "scale-error" if self.scale_errors else ""

    def fields(self) -> Iterator[Field]:
        yield from self.scale
        yield self.unit
        for layer in self.layers:
            if self.show_boxes:
                yield from layer.box
            if layer.largest is not None:
                yield layer.largest

    @property
    def error_count(self) -> int:
        fields = sum(len(f.errors) for f in self.fields())
        groups = len(self.scale_errors) + sum(len(la.box_errors) for la in self.layers)
        return fields + groups + len(self.other)

    def unit_choices(self) -> list[tuple[str, str]]:
        """(value, label) of the unit select; an unknown unit stays selectable."""
        ordered = [*_COMMON_UNITS, *(u for u in LENGTH_UNITS if u not in _COMMON_UNITS)]
        if self.unit.value and self.unit.value not in ordered:
            ordered.insert(0, self.unit.value)
        return [
            (u, f"{u} ({_UNIT_SYMBOLS[u]})" if u in _UNIT_SYMBOLS else u)
            for u in ordered
        ]

    def attach(self, problems: list[Problem]) -> None:
        """Put each problem at its input, its group, or (unmapped) in `other`."""
        by_name = {f.name: f for f in self.fields()}
        layers = {layer.index: layer for layer in self.layers}
        for problem in problems:
            path, message = problem.get("path", ""), problem.get("message", "")
            target = field_for_path(path)
            if target in by_name:
                owner = by_name[target]
                owner.errors.append("required" if not owner.value.strip() else message)
            elif target == "scale":
                self.scale_errors.append(message)
            elif target and target.endswith("-box") and self.show_boxes:
                layer = layers.get(int(target.split("-")[1]))
                if layer is not None:
                    layer.box_errors.append(message)
                else:
                    self.other.append(problem)
            else:
                self.other.append(problem)


def field_for_path(path: str) -> str | None:
    """The input (or group: "scale", "layer-<i>-box") a datasource JSON path is about.

    `scale.factor[1]` -> `scale_y`; `dataLayers[0].boundingBox.width` ->
    `layer-0-width`; `dataLayers[1].largestSegmentId` -> `layer-1-largest`.
    """
    if match := _SCALE_ITEM.fullmatch(path):
        return "scale_" + AXES[int(match[1])]
    if path in ("scale", "scale.factor"):
        return "scale"
    if path == "scale.unit":
        return "scale_unit"
    match = _LAYER_PATH.fullmatch(path)
    if match is None:
        return None
    index, rest = match[1], match[2]
    if corner := _BOX_CORNER.fullmatch(rest):
        return f"layer-{index}-{AXES[int(corner[1])]}"
    if rest.startswith("boundingBox.") and rest[len("boundingBox.") :] in SIZES:
        return f"layer-{index}-{rest[len('boundingBox.') :]}"
    if rest in ("boundingBox", "boundingBox.topLeft"):
        return f"layer-{index}-box"
    if rest == "largestSegmentId":
        return f"layer-{index}-largest"
    return None


def show_number(value: Any) -> str:
    """A JSON number as a person writes it: 28.0 -> "28", 11.24 -> "11.24"."""
    if isinstance(value, bool) or value is None:
        return ""
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return str(int(value))
    if isinstance(value, int | float):
        return repr(value)
    return value if isinstance(value, str) else ""


def _segment_id_text(value: Any) -> str:
    if isinstance(value, Mapping) and value.get(_BIGINT) == "bigint":
        digits = value.get("value")
        return digits if isinstance(digits, str) else ""
    return show_number(value)


def canonical_unit(unit: Any) -> str:
    """ "nm" -> "nanometer"; an unknown unit is kept for the parser to name."""
    if not isinstance(unit, str) or not unit:
        return DEFAULT_UNIT
    try:
        return VoxelSize((1.0, 1.0, 1.0), unit).unit
    except ValueError:
        return unit


def _scale_parts(datasource: Any) -> tuple[list[Any], str]:
    scale = datasource.get("scale") if isinstance(datasource, dict) else None
    if isinstance(scale, list):
        return scale, DEFAULT_UNIT
    if isinstance(scale, dict):
        factor = scale.get("factor")
        return (factor if isinstance(factor, list) else []), canonical_unit(
            scale.get("unit")
        )
    return [], DEFAULT_UNIT


def _layers_of(datasource: Any) -> list[tuple[int, dict[str, Any]]]:
    layers = datasource.get("dataLayers") if isinstance(datasource, dict) else None
    if not isinstance(layers, list):
        return []
    return [(i, layer) for i, layer in enumerate(layers) if isinstance(layer, dict)]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _layer_form(index: int, layer: dict[str, Any]) -> LayerForm:
    raw_box = layer.get("boundingBox")
    box: dict[str, Any] = raw_box if isinstance(raw_box, dict) else {}
    raw_corner = box.get("topLeft")
    corner: list[Any] = raw_corner if isinstance(raw_corner, list) else []
    prefix = f"layer-{index}-"
    fields = [
        Field(
            prefix + axis,
            axis,
            show_number(corner[k]) if k < len(corner) else "",
            inputmode="numeric",
        )
        for k, axis in enumerate(AXES)
    ]
    fields += [
        Field(prefix + size, size, show_number(box.get(size)), inputmode="numeric")
        for size in SIZES
    ]
    category = _text(layer.get("category"))
    largest = None
    if category == "segmentation":
        largest = Field(
            prefix + "largest",
            "Largest segment id",
            _segment_id_text(layer.get("largestSegmentId")),
            inputmode="numeric",
            placeholder="unknown",
        )
    return LayerForm(
        index=index,
        name=_text(layer.get("name")) or f"layer {index}",
        category=category,
        element_class=_text(layer.get("elementClass")),
        data_format=_text(layer.get("dataFormat")),
        box=fields,
        largest=largest,
    )


def form_from_datasource(datasource: Any, *, show_boxes: bool = True) -> DataForm:
    """The form showing `datasource` as stored (read leniently: it may be broken)."""
    factor, unit = _scale_parts(datasource)
    scale = [
        Field("scale_" + axis, axis, show_number(factor[k]) if k < len(factor) else "")
        for k, axis in enumerate(AXES)
    ]
    return DataForm(
        scale=scale,
        unit=Field("scale_unit", "Unit", unit),
        layers=[_layer_form(i, layer) for i, layer in _layers_of(datasource)],
        show_boxes=show_boxes,
    )


def form_from_post(
    datasource: Any, post: Mapping[str, Any], *, show_boxes: bool = True
) -> DataForm:
    """The form of `datasource` with what was typed in `post` (absent keys kept)."""
    return fill_from_post(form_from_datasource(datasource, show_boxes=show_boxes), post)


def fill_from_post(form: DataForm, post: Mapping[str, Any]) -> DataForm:
    """`form` with the values typed in `post`; inputs absent from it keep theirs."""
    for f in form.fields():
        typed = post.get(f.name)
        if isinstance(typed, str):
            f.value = typed[:1000]
    return form


def parse_number(text: str) -> Any:
    """The number in `text`, or `text` itself for the parser to refuse by name."""
    s = text.strip()
    if "," in s and "." not in s:
        s = s.replace(",", ".")
    if len(s) > _MAX_NUMBER_CHARS:
        return text
    if _INTEGER.fullmatch(s):
        return int(s)
    if _DECIMAL.fullmatch(s):
        number = float(s)
        return number if math.isfinite(number) else text
    return text


def _segment_id(text: str) -> Any:
    s = text.strip()
    if len(s) > _MAX_NUMBER_CHARS or not _INTEGER.fullmatch(s):
        return text
    number = int(s)
    if number > JS_MAX_SAFE_INTEGER:
        return {_BIGINT: "bigint", "value": str(number)}
    return number


def build_datasource(datasource: Any, form: DataForm) -> dict[str, Any]:
    """`datasource` (a copy) with the form's values; unknown keys stay as they were."""
    result = copy.deepcopy(datasource) if isinstance(datasource, dict) else {}
    factor = [parse_number(f.value) for f in form.scale]
    unit = form.unit.value or DEFAULT_UNIT
    scale = result.get("scale")
    if isinstance(scale, list) and unit == DEFAULT_UNIT:
        # A plain [x, y, z] (nanometers) stays plain: the file keeps its shape.
        result["scale"] = factor
    else:
        rest = scale if isinstance(scale, dict) else {}
        result["scale"] = {**rest, "factor": factor, "unit": unit}
    layers = result.get("dataLayers")
    for layer_form in form.layers:
        layer = layers[layer_form.index] if isinstance(layers, list) else None
        if not isinstance(layer, dict):
            continue
        if form.show_boxes:
            values = [parse_number(f.value) for f in layer_form.box]
            box = layer.get("boundingBox")
            rest = box if isinstance(box, dict) else {}
            layer["boundingBox"] = {
                **rest,
                "topLeft": values[:3],
                **dict(zip(SIZES, values[3:], strict=True)),
            }
        largest = layer_form.largest
        if largest is not None:
            if largest.value.strip():
                layer["largestSegmentId"] = _segment_id(largest.value)
            elif "largestSegmentId" in layer:
                layer["largestSegmentId"] = None
    return result


@dataclass(frozen=True)
class JsonSyntaxError:
    message: str
    line: int = 0
    column: int = 0

    def as_problem(self) -> Problem:
        return {"path": "(json)", "message": self.message}


def parse_json_text(text: str) -> tuple[Any, JsonSyntaxError | None]:
    """(value, None) for valid JSON, else (None, where and what is wrong)."""
    if len(text) > MAX_FILE_BYTES:
        return None, JsonSyntaxError(
            f"too large ({len(text)} > {MAX_FILE_BYTES} bytes)"
        )
    try:
        return json.loads(text), None
    except json.JSONDecodeError as e:
        return None, JsonSyntaxError(
            f"invalid JSON at line {e.lineno}, column {e.colno}: {e.msg}",
            e.lineno,
            e.colno,
        )
    except RecursionError:
        return None, JsonSyntaxError("invalid JSON: nested too deeply")


def as_problems(detail: Any, prefix: str = "") -> list[Problem]:
    """DRF error details (or a datastore's) as `{"path", "message"}` problems."""
    if isinstance(detail, Mapping):
        if "message" in detail:
            path = str(detail.get("path") or "")
            return [{"path": path or prefix, "message": str(detail["message"])}]
        problems: list[Problem] = []
        for key, value in detail.items():
            where = f"{prefix}.{key}" if prefix else str(key)
            problems += as_problems(value, where)
        return problems
    if isinstance(detail, list | tuple):
        return [p for item in detail for p in as_problems(item, prefix)]
    return [{"path": prefix, "message": str(detail)}]
