"""Parse the bounding box, segment ids, transformations and axes of a layer."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Final

from shared.datasource import _checks as c
from shared.datasource._checks import Errors
from shared.datasource._frozen import join_path
from shared.geometry import BoundingBox, Vec3

_UINT64_MAX: Final = 2**64 - 1
# Above this, JSON numbers lose precision in JavaScript and in floats.
_MAX_SAFE_FLOAT_INT: Final = 2**53
_BIGINT_KEY: Final = "customJsonEncoding"
_AXES_XYZ: Final = ("x", "y", "z")


def bounding_box(errors: Errors, path: str, d: Mapping[str, Any]) -> BoundingBox | None:
    box = c.obj(errors, path, d["boundingBox"])
    if box is None:
        return None
    before = len(errors)
    topleft: list[int | None] = [None, None, None]
    if "topLeft" not in box:
        errors.add(join_path(path, "topLeft"), "required")
    elif not isinstance(box["topLeft"], tuple) or len(box["topLeft"]) != 3:
        errors.add(
            join_path(path, "topLeft"),
            f"must be a list of 3 integers [x, y, z], got {c.kind(box['topLeft'])}",
        )
    else:
        topleft = [
            c.integer(errors, f"{path}.topLeft[{i}]", v)
            for i, v in enumerate(box["topLeft"])
        ]
    size: list[int | None] = []
    for key in ("width", "height", "depth"):
        if key not in box:
            errors.add(join_path(path, key), "required")
            size.append(None)
        else:
            size.append(
                c.integer(
                    errors,
                    join_path(path, key),
                    box[key],
                    low=1,
                    low_message="must be > 0",
                )
            )
    if len(errors) > before:
        return None
    x, y, z = (v or 0 for v in topleft)
    w, h, dep = (v or 0 for v in size)
    return BoundingBox(Vec3(x, y, z), Vec3(w, h, dep))


def segment_id(errors: Errors, path: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, Mapping):
        # WEBKNOSSOS wraps ids beyond JavaScript's safe integers in a "bigint" envelope.
        digits = value.get("value")
        if value.get(_BIGINT_KEY) != "bigint" or not (
            isinstance(digits, str) and digits.isascii() and digits.isdigit()
        ):
            errors.add(
                path,
                'must be an integer, null or {"customJsonEncoding": "bigint", '
                '"value": "<digits>"}',
            )
            return None
        # Long digit strings are out of range anyway; int() of huge ones is slow.
        number = int(digits) if len(digits) <= 30 else _UINT64_MAX + 1
    elif isinstance(value, float) and abs(value) > _MAX_SAFE_FLOAT_INT:
        errors.add(
            path, "must be an exact integer (write large ids without a fraction)"
        )
        return None
    else:
        plain = c.as_int(value)
        if plain is None:
            errors.add(path, f"must be an integer or null, got {c.show(value)}")
            return None
        number = plain
    if number < 0:
        errors.add(path, "must be >= 0")
        return None
    if number > _UINT64_MAX:
        errors.add(path, f"must be <= 2^64-1 ({_UINT64_MAX})")
        return None
    return number


def optional_list(
    errors: Errors,
    base: str,
    d: Mapping[str, Any],
    key: str,
    item: Callable[[Errors, str, Any], Any],
) -> tuple[Any, ...] | None:
    value = d.get(key)
    if value is None:
        return None
    path = join_path(base, key)
    entries = c.seq(errors, path, value)
    if entries is None:
        return None
    return tuple(item(errors, f"{path}[{i}]", entry) for i, entry in enumerate(entries))


def transform(errors: Errors, path: str, value: Any) -> Any:
    d = c.obj(errors, path, value)
    if d is None:
        return value
    kind = d.get("type")
    if kind == "affine":
        if "matrix" not in d:
            errors.add(join_path(path, "matrix"), "required")
        else:
            _matrix(errors, join_path(path, "matrix"), d["matrix"])
    elif kind == "thin_plate_spline":
        _correspondences(errors, join_path(path, "correspondences"), d)
    elif "type" not in d:
        errors.add(join_path(path, "type"), "required")
    else:
        errors.add(
            join_path(path, "type"),
            f"unknown transformation type {c.show(kind)}"
            " (expected affine or thin_plate_spline)",
        )
    return d


def _matrix(errors: Errors, path: str, value: Any) -> None:
    rows = value if isinstance(value, tuple) and len(value) == 4 else None
    if rows is None or not all(isinstance(r, tuple) and len(r) == 4 for r in rows):
        errors.add(path, "must be a 4x4 matrix of numbers")
        return
    for i, row in enumerate(rows):
        for j, cell in enumerate(row):
            if c.as_number(cell) is None:
                errors.add(f"{path}[{i}][{j}]", "must be a finite number")


def _correspondences(errors: Errors, path: str, d: Mapping[str, Any]) -> None:
    if "correspondences" not in d:
        errors.add(path, "required")
        return
    pairs = c.obj(errors, path, d["correspondences"])
    if pairs is None:
        return
    counts = []
    for key in ("source", "target"):
        points_path = join_path(path, key)
        points = pairs.get(key)
        if not isinstance(points, tuple) or not points:
            errors.add(points_path, "must be a non-empty list of points [x, y, z]")
            return
        for i, point in enumerate(points):
            if errors.full:
                return
            if not (
                isinstance(point, tuple)
                and len(point) == 3
                and all(c.as_number(v) is not None for v in point)
            ):
                errors.add(
                    f"{points_path}[{i}]", "must be a point [x, y, z] of finite numbers"
                )
        counts.append(len(points))
    if counts[0] != counts[1]:
        errors.add(
            join_path(path, "target"),
            f"must have as many points as source ({counts[1]} != {counts[0]})",
        )


def additional_axis(errors: Errors, path: str, value: Any) -> Any:
    d = c.obj(errors, path, value)
    if d is None:
        return value
    if "name" not in d:
        errors.add(join_path(path, "name"), "required")
    else:
        c.string(errors, join_path(path, "name"), d["name"])
    bounds = d.get("bounds")
    if "bounds" not in d:
        errors.add(join_path(path, "bounds"), "required")
    elif not (
        isinstance(bounds, tuple)
        and len(bounds) == 2
        and all(c.as_int(b) is not None and abs(b) < c.LIMIT_31 for b in bounds)
        and bounds[0] < bounds[1]
    ):
        errors.add(
            join_path(path, "bounds"), "must be [min, max] integers with min < max"
        )
    if "index" not in d:
        errors.add(join_path(path, "index"), "required")
    else:
        c.integer(errors, join_path(path, "index"), d["index"], low=0, below=64)
    return d


def check_axis_names(errors: Errors, path: str, axes: tuple[Any, ...]) -> None:
    seen: set[str] = set()
    for i, axis in enumerate(axes):
        axis_name = axis.get("name") if isinstance(axis, Mapping) else None
        if not isinstance(axis_name, str):
            continue
        if axis_name in ("c", *_AXES_XYZ):
            errors.add(f"{path}[{i}].name", f"{axis_name!r} is not an additional axis")
        elif axis_name in seen:
            errors.add(f"{path}[{i}].name", f"duplicate axis name {axis_name!r}")
        seen.add(axis_name)
