"""Parse the mags of a layer: modern `mags` and legacy `wkwResolutions`."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Final

from shared.datasource import _checks as c
from shared.datasource._checks import Errors, FormBuilder
from shared.datasource._frozen import FrozenDict, join_path
from shared.datasource._model import (
    MAG_KNOWN_KEYS,
    DataFormat,
    MagProperties,
)
from shared.geometry import Mag

_MAG_DASHED: Final = re.compile(r"(\d{1,10})-(\d{1,10})-(\d{1,10})", re.ASCII)
_MAG_HINT: Final = 'must be a mag like [2, 2, 1], "2-2-1" or 2'
_AXES_XYZ: Final = ("x", "y", "z")


def layer_mags(
    errors: Errors,
    path: str,
    d: Mapping[str, Any],
    data_format: DataFormat | None,
    form: FormBuilder,
) -> tuple[MagProperties, ...] | None:
    legacy = "wkwResolutions" in d
    if legacy and "mags" in d:
        errors.add(
            join_path(path, "wkwResolutions"), "give either mags or wkwResolutions"
        )
        return None
    key = "wkwResolutions" if legacy else "mags"
    list_path = join_path(path, key)
    if key not in d:
        errors.add(list_path, "required")
        return None
    if legacy and data_format not in (None, DataFormat.WKW):
        errors.add(list_path, "only wkw layers may list wkwResolutions; use mags")
        return None
    entries = c.seq(errors, list_path, d[key])
    if entries is None:
        return None
    if not entries:
        errors.add(list_path, "at least one mag is required")
        return None
    mags: list[MagProperties] = []
    seen: set[Mag] = set()
    for i, entry in enumerate(entries):
        if errors.full:
            return None
        mag = _mag(errors, f"{list_path}[{i}]", entry, legacy)
        if mag is None:
            continue
        if mag.mag in seen:
            mag_key = "mag" if "mag" in entry else "resolution"
            errors.add(f"{list_path}[{i}].{mag_key}", f"duplicate mag {mag.mag}")
        seen.add(mag.mag)
        mags.append(mag)
    if len(mags) != len(entries):
        return None
    result = tuple(mags)
    form.record(key, result)
    return result


def _mag(errors: Errors, path: str, value: Any, legacy: bool) -> MagProperties | None:
    d = c.obj(errors, path, value)
    if d is None:
        return None
    before = len(errors)
    form = FormBuilder(d)
    keys = [k for k in ("mag", "resolution") if k in d]
    if not keys:
        errors.add(join_path(path, "resolution" if legacy else "mag"), "required")
    elif len(keys) == 2:
        errors.add(join_path(path, "resolution"), "give either mag or resolution")
    mag = (
        _parse_mag(errors, join_path(path, keys[0]), d[keys[0]])
        if len(keys) == 1
        else None
    )
    if mag is not None:
        form.record(keys[0], mag)

    def optional_string(key: str) -> str | None:
        value = d.get(key)
        found = (
            c.string(errors, join_path(path, key), value) if value is not None else None
        )
        if key in d:
            form.record(key, found)
        return found

    mag_path = optional_string("path")
    credential_id = optional_string("credentialId")
    cube_length = None
    if d.get("cubeLength") is not None:
        cube_length = c.integer(
            errors, join_path(path, "cubeLength"), d["cubeLength"], low=1
        )
    if "cubeLength" in d:
        form.record("cubeLength", cube_length)
    axis_order = None
    if d.get("axisOrder") is not None:
        axis_order = _axis_order(errors, join_path(path, "axisOrder"), d["axisOrder"])
    if "axisOrder" in d:
        form.record("axisOrder", axis_order)
    if len(errors) > before or mag is None or not errors.json_ok(path):
        return None
    return MagProperties(
        mag=mag,
        path=mag_path,
        axis_order=axis_order,
        credential_id=credential_id,
        cube_length=cube_length,
        extra=c.extras(d, MAG_KNOWN_KEYS),
        json_form=form.build(),
    )


def _parse_mag(errors: Errors, path: str, value: Any) -> Mag | None:
    parts: list[int | None]
    if isinstance(value, str):
        text = value.strip()
        match = _MAG_DASHED.fullmatch(text)
        if match:
            parts = [int(g) for g in match.groups()]
        elif text.isascii() and text.isdigit() and len(text) <= 10:
            parts = [int(text)] * 3
        else:
            errors.add(path, f"{_MAG_HINT}, got {c.show(value)}")
            return None
    elif isinstance(value, tuple) and len(value) == 3:
        parts = [c.as_int(v) for v in value]
    elif c.as_int(value) is not None:
        parts = [c.as_int(value)] * 3
    else:
        errors.add(path, f"{_MAG_HINT}, got {c.show(value)}")
        return None
    if any(p is None for p in parts):
        errors.add(path, f"{_MAG_HINT}, got {c.show(value)}")
        return None
    ints = [p for p in parts if p is not None]
    if any(p < 1 or p & (p - 1) or p >= c.LIMIT_31 for p in ints):
        errors.add(
            path,
            f"must be powers of two between 1 and 2^30, got {'-'.join(map(str, ints))}",
        )
        return None
    return Mag(*ints)


def _axis_order(errors: Errors, path: str, value: Any) -> FrozenDict | None:
    d = c.obj(errors, path, value)
    if d is None:
        return None
    before = len(errors)
    owner: dict[int, str] = {}
    for axis, index in d.items():
        number = c.integer(errors, join_path(path, axis), index, low=0, below=64)
        if number is None:
            continue
        if number in owner:
            errors.add(
                path, f"axes {owner[number]!r} and {axis!r} share index {number}"
            )
        owner[number] = axis
    for axis in _AXES_XYZ:
        if axis not in d:
            errors.add(path, f"missing axis {axis!r}")
    if len(errors) > before:
        return None
    return d if isinstance(d, FrozenDict) else FrozenDict(d)
