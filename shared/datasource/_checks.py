"""Small validators that collect problems with their JSON path instead of raising."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from enum import StrEnum
from typing import Any, Final, TypeVar

from shared.datasource._frozen import FrozenDict
from shared.datasource._model import ABSENT, MAX_ERRORS, DatasourceError, JsonForm
from shared.protocol import NAME_PATTERN

MAX_STRING: Final = 2048
LIMIT_31: Final = 2**31
# Enough to say what is wrong; more would only cost memory on a hostile file.
MAX_JSON_PROBLEMS: Final = 1000
MAX_COUNTED: Final = 1000
_NAME = re.compile(NAME_PATTERN)
E = TypeVar("E", bound=StrEnum)


class Errors:
    """The problems found so far, in document order, without duplicates.

    Only the first `MAX_ERRORS` are kept (the rest are counted), so a hostile file
    cannot make the error list itself huge.
    """

    def __init__(self, json_problems: Sequence[tuple[str, str]] = ()) -> None:
        self.items: list[tuple[str, str]] = []
        self.count = 0
        self._seen: set[tuple[str, str]] = set()
        self.paths: set[str] = set()
        # Values that are not plain JSON (NaN, deep nesting), found while freezing.
        self.json_problems = list(json_problems)
        self._tainted: set[str] = set()
        for path, _ in self.json_problems:
            self._tainted.add(path)
            self._tainted.update(path[:i] for i, ch in enumerate(path) if ch in ".[")

    def json_ok(self, path: str) -> bool:
        """True if no value at or below `path` is malformed JSON."""
        return path not in self._tainted

    def add(self, path: str, message: str) -> None:
        if (path, message) in self._seen:
            return
        self.count += 1
        if len(self.items) < MAX_ERRORS:
            self._seen.add((path, message))
            self.paths.add(path)
            self.items.append((path, message))

    def __len__(self) -> int:
        return self.count

    @property
    def full(self) -> bool:
        """True once there are so many problems that checking further is pointless."""
        return self.count >= MAX_COUNTED

    def raise_if_any(self) -> None:
        # A specific message at a path beats the generic "not plain JSON" one.
        for path, message in self.json_problems:
            if path not in self.paths:
                self.add(path, message)
        if not self.count:
            return
        items = list(self.items)
        if self.count > len(items):
            more = f"{self.count - len(items)} more problems"
            items.append(("(more)", f"{more}, then stopped" if self.full else more))
        raise DatasourceError(items)


class FormBuilder:
    """Collects a `JsonForm` while an object is parsed."""

    def __init__(self, obj: Mapping[str, Any]) -> None:
        self.keys = tuple(obj)
        self.raw: dict[str, tuple[Any, Any]] = {}
        self._obj = obj

    def record(self, key: str, parsed: Any, *, inferred: bool = False) -> None:
        """Remember the source spelling of `key` (or that `parsed` was inferred)."""
        self.raw[key] = (parsed, ABSENT if inferred else self._obj[key])

    def build(self) -> JsonForm:
        return JsonForm(self.keys, self.raw)


def kind(value: Any) -> str:
    """The JSON type of a value, for messages: "a string", "an object"..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def show(value: Any) -> str:
    """A short rendering of a value for messages."""
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    text = repr(value) if isinstance(value, (str, int, float)) else kind(value)
    return text if len(text) <= 80 else text[:77] + "..."


def as_int(value: Any) -> int | None:
    """The integer of an int or an integral float (5.0); None for anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    return None


def as_number(value: Any) -> float | None:
    """A finite float from an int or float; None for anything else."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def obj(errors: Errors, path: str, value: Any) -> Mapping[str, Any] | None:
    if isinstance(value, Mapping):
        return value
    errors.add(path, f"must be an object, got {kind(value)}")
    return None


def seq(errors: Errors, path: str, value: Any) -> tuple[Any, ...] | None:
    if isinstance(value, tuple):
        return value
    errors.add(path, f"must be a list, got {kind(value)}")
    return None


def string(
    errors: Errors, path: str, value: Any, *, allow_empty: bool = False
) -> str | None:
    """A string without NUL bytes of at most `MAX_STRING` characters."""
    if not isinstance(value, str):
        errors.add(path, f"must be a string, got {kind(value)}")
        return None
    if not value and not allow_empty:
        errors.add(path, "must not be empty")
        return None
    if len(value) > MAX_STRING:
        errors.add(path, f"too long ({len(value)} > {MAX_STRING} characters)")
        return None
    if "\x00" in value:
        errors.add(path, "must not contain NUL bytes")
        return None
    return value


def is_name(value: Any) -> bool:
    """True for a string matching `NAME_PATTERN`."""
    # fullmatch: `$` alone would let a trailing newline through.
    return isinstance(value, str) and _NAME.fullmatch(value) is not None


def name(errors: Errors, path: str, value: Any) -> str | None:
    """A technical name that is safe as one path segment (`NAME_PATTERN`)."""
    if not isinstance(value, str):
        errors.add(path, f"must be a string, got {kind(value)}")
        return None
    if not is_name(value):
        errors.add(
            path,
            f"invalid name {show(value)}: use 1-128 letters, digits, '_', '.' or '-',"
            " starting with a letter, digit or '_'",
        )
        return None
    return value


def integer(
    errors: Errors,
    path: str,
    value: Any,
    *,
    low: int | None = None,
    below: int | None = LIMIT_31,
    low_message: str | None = None,
) -> int | None:
    """An integer (integral floats accepted) with `low <= value < below`.

    Without `low`, the range is symmetric: `|value| < below`.
    """
    number = as_int(value)
    if number is None:
        errors.add(path, f"must be an integer, got {show(value)}")
        return None
    if low is not None and number < low:
        errors.add(path, low_message or f"must be >= {low}")
        return None
    if below is not None:
        if low is None and abs(number) >= below:
            errors.add(path, f"must be an integer with |value| < {_power(below)}")
            return None
        if number >= below:
            errors.add(path, f"must be < {_power(below)}")
            return None
    return number


def _power(limit: int) -> str:
    exponent = limit.bit_length() - 1
    return f"2^{exponent}" if limit == 2**exponent else str(limit)


def enum(errors: Errors, path: str, value: Any, cls: type[E], what: str) -> E | None:
    """A member of the string enum `cls`, named `what` in messages."""
    if not isinstance(value, str):
        errors.add(path, f"must be a string, got {kind(value)}")
        return None
    try:
        return cls(value)
    except ValueError:
        expected = ", ".join(member.value for member in cls)
        errors.add(path, f"unknown {what} {show(value)} (expected one of {expected})")
        return None


def extras(source: Mapping[str, Any], known: frozenset[str]) -> FrozenDict:
    """The unknown keys of `source` (already frozen), in source order."""
    return FrozenDict({k: v for k, v in source.items() if k not in known})
