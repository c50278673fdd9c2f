"""Where a layer's mag lives on disk, and whether we may read it.

Containment is decided on real paths (symlinks resolved) by comparing path
components, so `/data/binaryData2` never passes for the root `/data/binaryData`, and
a symlinked layer or mag folder counts where it points to.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import unquote, urlsplit

from shared.datasource import LayerProperties, MagProperties
from shared.formats.errors import MagNotFound, PathNotAllowed, UnsupportedData

logger = logging.getLogger(__name__)

REMOTE_SCHEMES = frozenset({"s3", "gs", "gcs", "http", "https"})


def _real(path: Path) -> Path:
    return Path(os.path.realpath(path))


def _where(layer: LayerProperties, mag: MagProperties) -> str:
    return f"dataLayers[{layer.name}].mags[{mag.mag.to_layer_name()}]"


def real_roots(dataset_dir: Path, allowed_roots: Sequence[Path]) -> list[Path]:
    """The real paths under which data of `dataset_dir` may be read: the dataset
    folder itself and every allowed root.

    A dataset folder that is a symlink counts where it points to; whether that
    place is acceptable is the caller's (the inbox scan's) decision.
    """
    return [_real(dataset_dir), *(_real(Path(root)) for root in allowed_roots)]


def check_inside(path: Path, roots: Sequence[Path], written: str, where: str) -> Path:
    """The real path of `path`, or PathNotAllowed naming the path as `written`."""
    real = _real(path)
    if not any(real.is_relative_to(root) for root in roots):
        raise PathNotAllowed(
            f"{where} path '{written}' is outside the dataset and the allowed roots"
        )
    return real


def _local_path(written: str, dataset_dir: Path, where: str) -> Path:
    """The local path a mag `path` names, before any containment check."""
    if "\x00" in written:
        raise PathNotAllowed(f"{where} path contains a NUL byte")
    if not written.strip():
        raise PathNotAllowed(f"{where} path is empty")
    if "://" in written:
        parts = urlsplit(written)
        scheme = parts.scheme.lower()
        if scheme in REMOTE_SCHEMES:
            raise UnsupportedData(
                f"{where} path '{written}': remote mag paths are not supported here yet"
            )
        if scheme != "file":
            raise UnsupportedData(
                f"{where} path '{written}': scheme '{scheme}' is not supported"
            )
        if parts.netloc not in ("", "localhost"):
            raise PathNotAllowed(
                f"{where} path '{written}': file URIs must not name a host"
            )
        local = unquote(parts.path)
        if "\x00" in local:
            raise PathNotAllowed(f"{where} path contains a NUL byte")
        if not local.startswith("/"):
            raise PathNotAllowed(
                f"{where} path '{written}': file URIs must be absolute"
            )
        return Path(local)
    path = Path(written)
    return path if path.is_absolute() else dataset_dir / path


def resolve_mag_path(
    dataset_dir: Path,
    layer: LayerProperties,
    mag: MagProperties,
    *,
    allowed_roots: Sequence[Path] = (),
) -> Path:
    """The real, existing folder of `mag` of `layer` in the dataset at `dataset_dir`.

    A set `mag.path` is taken relative to `dataset_dir` (`./color/1`, `color/1`), or
    as an absolute path or `file://` URI, which must lie inside `allowed_roots`.
    Without a path, WEBKNOSSOS' folder names are tried in turn: `<layer>/1` or
    `<layer>/2-2-1`, then `<layer>/2-2-2` (long form).

    Raises PathNotAllowed if the real path (symlinks resolved) leaves both the
    dataset folder and the allowed roots, UnsupportedData for remote URIs, and
    MagNotFound if nothing exists there.
    """
    where = _where(layer, mag)
    roots = real_roots(dataset_dir, allowed_roots)
    if mag.path is not None:
        candidate = _local_path(mag.path, dataset_dir, where)
        real = check_inside(candidate, roots, mag.path, where)
        if not real.exists():
            raise MagNotFound(f"{where}: no data at '{mag.path}'")
        return real

    layer_written = layer.name
    check_inside(
        dataset_dir / layer.name, roots, layer_written, f"dataLayers[{layer.name}]"
    )
    names = [mag.mag.to_layer_name(), mag.mag.to_long_name()]
    # WEBKNOSSOS' oldest WKW naming (`2` for 2-2-2) equals to_layer_name() for
    # isotropic mags and never applies to anisotropic ones.
    tried: list[str] = []
    for name in dict.fromkeys(names):
        written = f"{layer.name}/{name}"
        tried.append(written)
        candidate = dataset_dir / layer.name / name
        real = check_inside(candidate, roots, written, where)
        if real.exists():
            return real
    raise MagNotFound(f"{where}: no data folder found (tried {', '.join(tried)})")
