"""Deep-frozen JSON values, so that schema objects stay immutable and hashable.

JSON objects become `FrozenDict`, arrays become tuples; `thaw` turns them back into
plain dicts and lists for `json.dumps`.
"""

from __future__ import annotations

import math
from collections.abc import ItemsView, Iterator, KeysView, Mapping, ValuesView
from typing import Any, Final

# Deeper nesting than this is no datasource anyone wrote by hand or by tool.
MAX_DEPTH: Final = 64


class JsonValueError(ValueError):
    """A value that is not plain, finite JSON; `path` is relative to the value."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}" if path else message)
        self.path = path
        self.message = message


class FrozenDict(Mapping[str, Any]):
    """An immutable, hashable JSON object that keeps its key order."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        self._data: dict[str, Any] = dict(data or {})
        self._hash: int | None = None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: object) -> bool:
        return key in self._data

    def get(self, key: str, default: Any = None) -> Any:
        return self._data.get(key, default)

    def keys(self) -> KeysView[str]:
        return self._data.keys()

    def items(self) -> ItemsView[str, Any]:
        return self._data.items()

    def values(self) -> ValuesView[Any]:
        return self._data.values()

    def __hash__(self) -> int:
        if self._hash is None:
            self._hash = hash(frozenset(self._data.items()))
        return self._hash

    def __repr__(self) -> str:
        return repr(self._data)


def join_path(base: str, key: str | int) -> str:
    """`join_path("a", "b") == "a.b"`, `join_path("a", 1) == "a[1]"`."""
    if isinstance(key, int):
        return f"{base}[{key}]"
    return f"{base}.{key}" if base else key


class _NotPlain(Exception):
    """Raised by the fast freeze; the slow one then finds and names the value."""


class _TooMany(Exception):
    """Enough problems noted; the rest of the document is not worth walking."""


def freeze_plain(value: Any, depth: int = 0) -> Any:
    """Deep-freeze a JSON value; raise `_NotPlain` on anything else. Fast: no paths."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is FrozenDict:
        # FrozenDicts are only built from JSON that was checked on the way in.
        return value
    if depth > MAX_DEPTH:
        raise _NotPlain
    if kind is float:
        if not math.isfinite(value):
            raise _NotPlain
        return value
    if kind is list or kind is tuple:
        return tuple([freeze_plain(item, depth + 1) for item in value])
    if kind is dict or isinstance(value, Mapping):
        for key in value:
            if type(key) is not str:
                raise _NotPlain
        return FrozenDict({k: freeze_plain(v, depth + 1) for k, v in value.items()})
    if isinstance(value, (str, int)):  # str and int subclasses such as enums
        return value
    if isinstance(value, float):
        return freeze_plain(float(value), depth)
    if isinstance(value, (list, tuple)):
        return tuple([freeze_plain(item, depth + 1) for item in value])
    raise _NotPlain


def freeze(value: Any, path: str = "") -> Any:
    """Deep-freeze a JSON value; raise `JsonValueError` on anything not plain JSON.

    NaN and infinities are rejected: they are not JSON; WEBKNOSSOS cannot read them.
    """
    try:
        return freeze_plain(value)
    except _NotPlain:
        problems: list[tuple[str, str]] = []
        freeze_collect(value, path, problems, limit=1)
        raise JsonValueError(*problems[0]) from None


def freeze_collect(
    value: Any, path: str, problems: list[tuple[str, str]], limit: int
) -> Any:
    """Deep-freeze JSON, noting non-JSON values in `problems` with their path.

    Bad leaves are kept as they are, so that specific validators can name them
    better. After `limit` problems the walk stops and None is returned.
    """
    try:
        return freeze_plain(value)
    except _NotPlain:
        pass
    try:
        return _collect(value, path, problems, limit, 0)
    except _TooMany:
        return None


# A path is built only for a problem: (parent, key) pairs down from the base string.
_Where = Any


def _render(where: _Where) -> str:
    keys: list[str | int] = []
    while isinstance(where, tuple):
        where, key = where
        keys.append(key)
    text: str = where
    for key in reversed(keys):
        text = join_path(text, key)
    return text


def _collect(
    value: Any, where: _Where, problems: list[tuple[str, str]], limit: int, depth: int
) -> Any:
    def note(message: str) -> None:
        problems.append((_render(where), message))
        if len(problems) >= limit:
            raise _TooMany

    if value is None or isinstance(value, (str, bool, int)):
        return value
    if depth > MAX_DEPTH:
        note(f"nested too deeply (more than {MAX_DEPTH} levels)")
        return None
    if isinstance(value, float):
        if not math.isfinite(value):
            note("must be a finite number")
        return value
    if isinstance(value, Mapping):
        items = {}
        for key, item in value.items():
            if not isinstance(key, str):
                note(f"object keys must be strings, got {key!r}")
                continue
            items[key] = _collect(item, (where, key), problems, limit, depth + 1)
        return FrozenDict(items)
    if isinstance(value, (list, tuple)):
        return tuple(
            _collect(item, (where, i), problems, limit, depth + 1)
            for i, item in enumerate(value)
        )
    note(f"not a JSON value: {type(value).__name__}")
    return value


def freeze_mapping(value: Mapping[str, Any] | None) -> FrozenDict:
    """Freeze an optional mapping (`None` -> empty)."""
    frozen = freeze(value if value is not None else {})
    if not isinstance(frozen, FrozenDict):
        raise JsonValueError("", f"expected a mapping, got {type(value).__name__}")
    return frozen


def thaw(value: Any) -> Any:
    """The plain `dict`/`list` form of a frozen (or plain) JSON value."""
    if isinstance(value, Mapping):
        return {key: thaw(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [thaw(item) for item in value]
    return value
