"""Typed environment settings used by both services.

Every setting is read once at start by one of these helpers. Junk fails loudly with
the variable's name; a secret may be given as `NAME_FILE` pointing at a file.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class SettingError(RuntimeError):
    """A missing or malformed environment setting."""


def _raw(name: str, environ: Mapping[str, str] | None) -> str | None:
    env = os.environ if environ is None else environ
    value = env.get(name)
    file_name = env.get(f"{name}_FILE")
    if value is None and file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as e:
            raise SettingError(f"{name}_FILE: cannot read {file_name}: {e}") from None
    return value


def env_str(
    name: str,
    default: str | None = None,
    *,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> str:
    value = _raw(name, environ)
    if value is None or value == "":
        if required:
            raise SettingError(f"{name} must be set")
        if default is None:
            return ""
        return default
    return value


def env_int(
    name: str,
    default: int,
    *,
    minimum: int | None = None,
    environ: Mapping[str, str] | None = None,
) -> int:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        result = int(value.strip())
    except ValueError:
        raise SettingError(f"{name} must be an integer, got {value!r}") from None
    if minimum is not None and result < minimum:
        raise SettingError(f"{name} must be >= {minimum}, got {result}")
    return result


def env_float(
    name: str,
    default: float,
    *,
    minimum: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> float:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return default
    try:
        result = float(value.strip())
    except ValueError:
        raise SettingError(f"{name} must be a number, got {value!r}") from None
    if result != result or (minimum is not None and result < minimum):  # NaN check
        raise SettingError(f"{name} must be >= {minimum}, got {value!r}")
    return result


def env_bool(
    name: str, default: bool, *, environ: Mapping[str, str] | None = None
) -> bool:
    value = _raw(name, environ)
    if value is None:
        return default
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise SettingError(f"{name} must be true or false, got {value!r}")


def env_list(
    name: str,
    default: list[str] | None = None,
    *,
    separator: str = ",",
    environ: Mapping[str, str] | None = None,
) -> list[str]:
    value = _raw(name, environ)
    if value is None or value.strip() == "":
        return list(default or [])
    return [item.strip() for item in value.split(separator) if item.strip()]


def env_path(
    name: str,
    default: Path | str | None = None,
    *,
    required: bool = False,
    environ: Mapping[str, str] | None = None,
) -> Path:
    value = env_str(
        name,
        None if default is None else str(default),
        required=required,
        environ=environ,
    )
    if value == "":
        raise SettingError(f"{name} must be set")
    return Path(value).expanduser()


def env_paths(name: str, *, environ: Mapping[str, str] | None = None) -> list[Path]:
    """A list of paths separated by the OS path separator (':' on Linux)."""
    return [
        Path(p).expanduser()
        for p in env_list(name, separator=os.pathsep, environ=environ)
    ]
