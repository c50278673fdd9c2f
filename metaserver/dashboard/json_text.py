"""JSON as people read it: a stable key order, short lists on one line, line diffs.

The database (PostgreSQL's jsonb) does not keep a datasource's key order, so the
dashboard puts the keys of a datasource in WEBKNOSSOS's order before showing it;
two versions shown the same way differ only where their content does.
"""

from __future__ import annotations

import difflib
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final

INDENT: Final = 2
LINE_WIDTH: Final = 88
# Beyond this many lines a side-by-side diff is neither fast nor readable.
MAX_DIFF_LINES: Final = 20_000
CONTEXT_LINES: Final = 3

_TOP_ORDER: Final = ("id", "scale", "dataLayers")
_ORDERS: Final[dict[str, tuple[str, ...]]] = {
    "id": ("name", "team"),
    "scale": ("factor", "unit"),
    "boundingBox": ("topLeft", "width", "height", "depth"),
}
_LAYER_ORDER: Final = (
    "name",
    "category",
    "dataFormat",
    "elementClass",
    "boundingBox",
    "largestSegmentId",
    "mags",
    "wkwResolutions",
    "mappings",
    "defaultViewConfiguration",
    "coordinateTransformations",
    "additionalAxes",
)
_MAG_ORDER: Final = ("mag", "resolution", "path", "axisOrder", "credentialId")


def _ordered(value: dict[str, Any], order: Sequence[str]) -> dict[str, Any]:
    known = [key for key in order if key in value]
    rest = sorted(key for key in value if key not in order)
    return {key: value[key] for key in [*known, *rest]}


def _ordered_layer(layer: Any) -> Any:
    if not isinstance(layer, dict):
        return layer
    out = _ordered(layer, _LAYER_ORDER)
    for key, order in _ORDERS.items():
        if isinstance(out.get(key), dict):
            out[key] = _ordered(out[key], order)
    for key in ("mags", "wkwResolutions"):
        if isinstance(out.get(key), list):
            out[key] = [
                _ordered(mag, _MAG_ORDER) if isinstance(mag, dict) else mag
                for mag in out[key]
            ]
    return out


def ordered_datasource(datasource: Any) -> Any:
    """`datasource` with its keys in WEBKNOSSOS's order (a copy; values shared)."""
    if not isinstance(datasource, dict):
        return datasource
    out = _ordered(datasource, _TOP_ORDER)
    for key, order in _ORDERS.items():
        if isinstance(out.get(key), dict):
            out[key] = _ordered(out[key], order)
    if isinstance(out.get("dataLayers"), list):
        out["dataLayers"] = [_ordered_layer(layer) for layer in out["dataLayers"]]
    return out


def _scalar(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _lines(value: Any, level: int) -> str:
    pad = " " * (INDENT * level)
    inner = pad + " " * INDENT
    if isinstance(value, dict):
        if not value:
            return "{}"
        items = [
            f"{inner}{_scalar(str(k))}: {_lines(v, level + 1)}"
            for k, v in value.items()
        ]
        return "{\n" + ",\n".join(items) + "\n" + pad + "}"
    if isinstance(value, list):
        if not value:
            return "[]"
        if not any(isinstance(v, dict | list) for v in value):
            one_line = "[" + ", ".join(_scalar(v) for v in value) + "]"
            if len(inner) + len(one_line) <= LINE_WIDTH:
                return one_line
        items = [inner + _lines(v, level + 1) for v in value]
        return "[\n" + ",\n".join(items) + "\n" + pad + "]"
    return _scalar(value)


def pretty_json(value: Any) -> str:
    """Indented JSON; short lists of numbers (`[11.24, 11.24, 28]`) stay on one line."""
    return _lines(value, 0)


@dataclass(frozen=True)
class DiffRow:
    """One row of a side-by-side diff; `kind` is "same", "changed" or "gap"."""

    left_number: int | None
    left: str | None
    right_number: int | None
    right: str | None
    kind: str

    @property
    def left_kind(self) -> str:
        if self.kind == "same" or self.left is None:
            return self.kind if self.left is not None else "empty"
        return "removed"

    @property
    def right_kind(self) -> str:
        if self.kind == "same" or self.right is None:
            return self.kind if self.right is not None else "empty"
        return "added"


@dataclass(frozen=True)
class LineDiff:
    rows: tuple[DiffRow, ...]
    removed: int
    added: int
    too_large: bool = False


def _changed_rows(
    old: Sequence[str], new: Sequence[str], i1: int, i2: int, j1: int, j2: int
) -> Iterator[DiffRow]:
    for k in range(max(i2 - i1, j2 - j1)):
        i, j = i1 + k, j1 + k
        yield DiffRow(
            i + 1 if i < i2 else None,
            old[i] if i < i2 else None,
            j + 1 if j < j2 else None,
            new[j] if j < j2 else None,
            "changed",
        )


def line_diff(old_text: str, new_text: str) -> LineDiff:
    """A side-by-side diff of two texts with a few lines of context around changes."""
    old, new = old_text.splitlines(), new_text.splitlines()
    if max(len(old), len(new)) > MAX_DIFF_LINES:
        return LineDiff((), 0, 0, too_large=True)
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    rows: list[DiffRow] = []
    removed = added = 0
    for number, group in enumerate(matcher.get_grouped_opcodes(CONTEXT_LINES)):
        if number:
            rows.append(DiffRow(None, None, None, None, "gap"))
        for tag, i1, i2, j1, j2 in group:
            if tag == "equal":
                rows.extend(
                    DiffRow(i + 1, old[i], j + 1, new[j], "same")
                    for i, j in zip(range(i1, i2), range(j1, j2), strict=True)
                )
            else:
                removed += i2 - i1
                added += j2 - j1
                rows.extend(_changed_rows(old, new, i1, i2, j1, j2))
    return LineDiff(tuple(rows), removed, added)
