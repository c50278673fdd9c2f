"""Turn schema objects back into datasource-properties.json.

Every value still equal to what was parsed is written in its source spelling (see
`JsonForm`); changed and new values get the spelling webknossos-libs writes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from shared.datasource._frozen import thaw
from shared.datasource._model import (
    ABSENT,
    DatasourceProperties,
    JsonForm,
    LayerProperties,
    MagProperties,
    VoxelSize,
)

# JavaScript numbers are exact up to here; WEBKNOSSOS wraps larger ids.
_JS_MAX_SAFE_INTEGER: Final = 2**53 - 1


def dump_datasource(props: DatasourceProperties) -> dict[str, Any]:
    """The JSON object of `props`; parsed objects keep their source spelling."""
    form = props.json_form
    out: dict[str, Any] = {}
    _put(
        out,
        form,
        "id",
        (props.name, props.team),
        lambda raw: _merge({"name": props.name, "team": props.team}, raw),
    )
    _put(
        out, form, "scale", props.voxel_size, lambda raw: _scale(props.voxel_size, raw)
    )
    _put(
        out,
        form,
        "dataLayers",
        props.layers,
        lambda raw: [dump_layer(layer) for layer in props.layers],
    )
    view = props.default_view_configuration
    _put(
        out,
        form,
        "defaultViewConfiguration",
        view,
        lambda raw: thaw(view),
        default=view is None,
    )
    out.update(thaw(props.extra))
    return _ordered(out, form.keys if form else ())


def dump_layer(layer: LayerProperties) -> dict[str, Any]:
    """The JSON object of one `dataLayers` entry."""
    form = layer.json_form
    legacy_source = form is not None and "wkwResolutions" in form.raw
    # A legacy file stays legacy while its mags fit the old shape.
    legacy = legacy_source and all(_fits_legacy(m) for m in layer.mags)
    out: dict[str, Any] = {}
    _put(out, form, "name", layer.name, lambda raw: layer.name)
    _put(out, form, "category", layer.category, lambda raw: layer.category.value)
    box = layer.bounding_box
    _put(out, form, "boundingBox", box, lambda raw: _merge(box.to_wkw_dict(), raw))
    _put(
        out,
        form,
        "elementClass",
        layer.element_class,
        lambda raw: layer.element_class.value,
    )
    _put(
        out,
        form,
        "dataFormat",
        layer.data_format,
        lambda raw: layer.data_format.value,
        keep_absent=legacy,
    )
    mags_key = "wkwResolutions" if legacy else "mags"
    _put(
        out,
        form,
        mags_key,
        layer.mags,
        lambda raw: [
            _dump_mag(mag, legacy=legacy, legacy_source=legacy_source)
            for mag in layer.mags
        ],
    )
    largest = layer.largest_segment_id
    _put(
        out,
        form,
        "largestSegmentId",
        largest,
        lambda raw: _segment_id(largest),
        default=largest is None,
    )
    _put(
        out,
        form,
        "mappings",
        layer.mappings,
        lambda raw: list(layer.mappings),
        default=not layer.mappings,
    )
    for key, value in (
        ("defaultViewConfiguration", layer.default_view_configuration),
        ("coordinateTransformations", layer.coordinate_transformations),
        ("additionalAxes", layer.additional_axes),
        ("numChannels", layer.num_channels),
    ):
        _put(out, form, key, value, _thawed(value), default=value is None)
    out.update(thaw(layer.extra))
    return _ordered(out, form.keys if form else ())


def _thawed(value: Any) -> Callable[[Any], Any]:
    return lambda raw: thaw(value)


def _fits_legacy(mag: MagProperties) -> bool:
    return mag.path is None and mag.axis_order is None and mag.credential_id is None


def _dump_mag(
    mag: MagProperties, *, legacy: bool, legacy_source: bool
) -> dict[str, Any]:
    form = mag.json_form
    source_key = (
        "resolution" if form is not None and "resolution" in form.raw else "mag"
    )
    if legacy:
        key = "resolution"
    else:
        key = (
            "resolution" if source_key == "resolution" and not legacy_source else "mag"
        )
    out: dict[str, Any] = {}
    _put(out, form, key, mag.mag, lambda raw: mag.mag.to_list(), source_key=source_key)
    for name, value in (
        ("path", mag.path),
        ("cubeLength", mag.cube_length),
        ("axisOrder", mag.axis_order),
        ("credentialId", mag.credential_id),
    ):
        _put(out, form, name, value, _thawed(value), default=value is None)
    out.update(thaw(mag.extra))
    order = form.keys if form else ()
    return _ordered(out, [key if k == source_key else k for k in order])


def _put(
    out: dict[str, Any],
    form: JsonForm | None,
    key: str,
    value: Any,
    canonical: Callable[[Any], Any],
    *,
    default: bool = False,
    keep_absent: bool = True,
    source_key: str | None = None,
) -> None:
    """Write `value` under `key`: in its source spelling when unchanged, else
    `canonical(raw source)`. Defaults the source did not spell are left out."""
    record = form.raw.get(source_key or key) if form is not None else None
    raw = record[1] if record is not None else ABSENT
    if record is not None and record[0] == value:
        if raw is not ABSENT:
            out[key] = thaw(raw)
            return
        if keep_absent:
            return
    if default and raw is ABSENT:
        return
    out[key] = canonical(raw)


def _merge(canonical: dict[str, Any], raw: Any) -> dict[str, Any]:
    """`canonical` plus the unknown keys of the source object, in source order."""
    if not isinstance(raw, Mapping):
        return canonical
    merged = {k: thaw(v) for k, v in raw.items() if k not in canonical}
    merged.update(canonical)
    return _ordered(merged, raw.keys())


def _scale(voxel_size: VoxelSize, raw: Any) -> Any:
    factor = list(voxel_size.factor)
    # A plain [x, y, z] in the source stays plain as long as it can say the unit.
    if isinstance(raw, tuple) and voxel_size.unit == "nanometer":
        return factor
    return _merge({"factor": factor, "unit": voxel_size.unit}, raw)


def _segment_id(value: int | None) -> Any:
    if value is not None and value > _JS_MAX_SAFE_INTEGER:
        return {"customJsonEncoding": "bigint", "value": str(value)}
    return value


def _ordered(out: dict[str, Any], order: Iterable[str]) -> dict[str, Any]:
    result = {key: out[key] for key in order if key in out}
    result.update((key, value) for key, value in out.items() if key not in result)
    return result
