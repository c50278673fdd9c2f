"""The default view configuration of a dataset: checked before it is stored.

The keys are WEBKNOSSOS's (camelCase, as in `defaultViewConfiguration` of a
datasource-properties.json), so a configuration copied from one works here. Every
problem is collected with its JSON path, like the datasource's errors.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection
from typing import Any

Problem = dict[str, str]
_Check = Callable[[Any, str, list[Problem]], None]

MAX_COORDINATE = 2**31
MAX_ZOOM = 1_000_000
LOADING_STRATEGIES = ("BEST_QUALITY_FIRST", "PROGRESSIVE_QUALITY")


def _number(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and math.isfinite(value)
    )


def _bool(value: Any, path: str, problems: list[Problem]) -> None:
    if not isinstance(value, bool):
        problems.append({"path": path, "message": "must be true or false"})


def _range(low: float, high: float, *, exclusive_low: bool = False) -> _Check:
    def check(value: Any, path: str, problems: list[Problem]) -> None:
        too_low = value <= low if exclusive_low else value < low
        if not _number(value) or too_low or value > high:
            bound = "above" if exclusive_low else "from"
            problems.append(
                {"path": path, "message": f"must be a number {bound} {low} to {high}"}
            )

    return check


def _vector(length: int, low: float, high: float, *, integers: bool = False) -> _Check:
    def check(value: Any, path: str, problems: list[Problem]) -> None:
        ok = isinstance(value, list) and len(value) == length
        ok = ok and all(_number(v) and low <= v <= high for v in value)
        ok = ok and (not integers or all(isinstance(v, int) for v in value))
        if not ok:
            kind = "integers" if integers else "numbers"
            message = f"must be a list of {length} {kind} from {low} to {high}"
            problems.append({"path": path, "message": message})

    return check


def _intensity_range(value: Any, path: str, problems: list[Problem]) -> None:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(_number(v) for v in value)
        or value[0] > value[1]
    ):
        problems.append({"path": path, "message": "must be [min, max] with min <= max"})


def _mapping(value: Any, path: str, problems: list[Problem]) -> None:
    if value is None:
        return
    if (
        not isinstance(value, dict)
        or not isinstance(value.get("name"), str)
        or set(value) - {"name", "type"}
    ):
        problems.append(
            {"path": path, "message": 'must be {"name": ..., "type": ...} or null'}
        )


def _loading_strategy(value: Any, path: str, problems: list[Problem]) -> None:
    if value not in LOADING_STRATEGIES:
        problems.append(
            {"path": path, "message": f"must be one of {', '.join(LOADING_STRATEGIES)}"}
        )


_LAYER_KEYS: dict[str, _Check] = {
    "color": _vector(3, 0, 255, integers=True),
    "alpha": _range(0, 100),
    "intensityRange": _intensity_range,
    "min": _range(-(2**64), 2**64),
    "max": _range(-(2**64), 2**64),
    "isDisabled": _bool,
    "isInverted": _bool,
    "isInEditMode": _bool,
    "gammaCorrectionValue": _range(0, 10, exclusive_low=True),
    "mapping": _mapping,
}


def _layers(
    value: Any, path: str, problems: list[Problem], layer_names: Collection[str] | None
) -> None:
    if not isinstance(value, dict):
        problems.append({"path": path, "message": "must be an object by layer name"})
        return
    for name, settings in value.items():
        where = f"{path}.{name}"
        if layer_names is not None and name not in layer_names:
            known = ", ".join(sorted(layer_names)) or "none"
            problems.append(
                {"path": where, "message": f"no such layer (layers: {known})"}
            )
            continue
        _object(settings, where, problems, _LAYER_KEYS)


_TOP_KEYS: dict[str, _Check] = {
    "position": _vector(3, 0, MAX_COORDINATE),
    "zoom": _range(0, MAX_ZOOM, exclusive_low=True),
    "rotation": _vector(3, -360, 360),
    "interpolation": _bool,
    "fourBit": _bool,
    "renderMissingDataBlack": _bool,
    "loadingStrategy": _loading_strategy,
    "segmentationPatternOpacity": _range(0, 100),
}


def _object(
    value: Any, path: str, problems: list[Problem], keys: dict[str, _Check]
) -> None:
    if not isinstance(value, dict):
        problems.append({"path": path, "message": "must be an object"})
        return
    for key, item in value.items():
        check = keys.get(key)
        if check is None:
            problems.append(
                {
                    "path": f"{path}.{key}",
                    "message": f"unknown key; allowed: {', '.join(keys)}",
                }
            )
        else:
            check(item, f"{path}.{key}", problems)


def view_configuration_problems(
    value: Any, layer_names: Collection[str] | None = None
) -> list[Problem]:
    """What is wrong with `value` as a default view configuration (empty: fine).

    `layer_names` (the dataset's layers, when known) limits the keys of `layers`.
    None clears the configuration and is fine.
    """
    problems: list[Problem] = []
    if value is None:
        return problems
    if not isinstance(value, dict):
        return [{"path": "(root)", "message": "must be an object or null"}]
    for key, item in value.items():
        if key == "layers":
            _layers(item, "layers", problems, layer_names)
        elif key in _TOP_KEYS:
            _TOP_KEYS[key](item, key, problems)
        else:
            allowed = ", ".join([*_TOP_KEYS, "layers"])
            problems.append(
                {"path": key, "message": f"unknown key; allowed: {allowed}"}
            )
    return problems
