"""Thumbnails kept on disk, so they survive restarts and conversions can make them.

`<binaryData>/.voxelhub/thumbnails/<org>/<dataset>/<layer digest>/<mtime>-<w>x<h>.jpg`
holds the default thumbnail (the layer's middle) of a size. The name carries the
mtime of the dataset's `datasource-properties.json`, so editing the properties
makes older files unreachable; writing a new one removes them. Only the node and
its workers write there (a dot folder: the inbox scan ignores it), and a file that
cannot be written is only a missed cache entry, never an error.

Conversion workers render the dashboard's sizes (`PREGENERATED_SIZES`) right after
a dataset is moved into place, so the first page showing it needs no rendering.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from datastore.inbox import PROPERTIES_FILE
from datastore.thumbnails import ThumbnailRequest, render_thumbnail
from shared.datasource import (
    Category,
    DatasourceError,
    LayerProperties,
    MagProperties,
    load_datasource,
)
from shared.formats import FormatError, open_mag
from shared.geometry import BoundingBox
from shared.protocol import THUMBNAIL_SIZES

logger = logging.getLogger(__name__)

# Square thumbnails the dashboard asks for (list rows and the details sidebar).
PREGENERATED_SIZES: tuple[int, ...] = THUMBNAIL_SIZES


def thumbnail_path(
    binary_data: Path,
    organization: str,
    dataset: str,
    layer: str,
    properties_mtime_ns: int,
    request: ThumbnailRequest,
) -> Path | None:
    """Where the thumbnail `request` is kept; None for off-centre requests."""
    if request.x is not None or request.y is not None or request.z is not None:
        return None
    # Layer names may hold characters a file name should not.
    digest = hashlib.sha256(layer.encode()).hexdigest()[:20]
    name = f"{properties_mtime_ns}-{request.width}x{request.height}.jpg"
    return (
        binary_data
        / ".voxelhub"
        / "thumbnails"
        / organization
        / dataset
        / (digest)
        / name
    )


def load_thumbnail(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except OSError:
        return None


def store_thumbnail(path: Path, jpeg: bytes) -> None:
    """Write atomically; drop the layer's files of older properties."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_bytes(jpeg)
        temporary.replace(path)
        stamp = path.name.split("-", 1)[0]
        for other in path.parent.iterdir():
            if not other.name.startswith((stamp + "-", ".")):
                other.unlink(missing_ok=True)
    except OSError as e:
        logger.debug("thumbnail %s not kept: %s", path, e)


def default_layer(layers: Iterable[LayerProperties]) -> LayerProperties | None:
    """The layer the dashboard shows: the first color layer."""
    return next((la for la in layers if la.category == Category.COLOR), None)


def pregenerate_thumbnails(
    binary_data: Path, organization: str, dataset: str, dataset_dir: Path
) -> int:
    """Render the dashboard's thumbnails of a dataset just written (blocking).

    Returns how many were written; failures are logged, never raised: a missing
    thumbnail is rendered on first request instead.
    """
    properties_file = dataset_dir / PROPERTIES_FILE
    try:
        mtime_ns = properties_file.stat().st_mtime_ns
        properties = load_datasource(properties_file)
    except (OSError, DatasourceError) as e:
        logger.warning("no thumbnails for %s/%s: %s", organization, dataset, e)
        return 0
    layer = default_layer(properties.layers)
    if layer is None or not layer.mags:
        return 0
    roots = (dataset_dir.resolve(),)
    opened: dict[MagProperties, object] = {}

    def read(mag: MagProperties, box: BoundingBox) -> np.ndarray:
        array = opened.get(mag)
        if array is None:
            array = opened[mag] = open_mag(dataset_dir, layer, mag, allowed_roots=roots)
        return array.read(box)  # type: ignore[attr-defined,no-any-return]

    written = 0
    try:
        for size in PREGENERATED_SIZES:
            request = ThumbnailRequest(width=size, height=size)
            path = thumbnail_path(
                binary_data, organization, dataset, layer.name, mtime_ns, request
            )
            if path is None:
                continue
            store_thumbnail(path, render_thumbnail(layer, request, read))
            written += 1
    except (FormatError, OSError, ValueError) as e:
        logger.warning("thumbnails of %s/%s failed: %s", organization, dataset, e)
    finally:
        for array in opened.values():
            close = getattr(array, "close", None)
            if close is not None:
                close()
    return written
