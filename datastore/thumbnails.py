"""Thumbnails: one z plane of a layer as a JPEG, from the coarsest mag that suffices.

Rendering is blocking (reads, numpy, Pillow) and runs in an executor; the finished
JPEGs are kept in a small in-memory LRU that scans invalidate per dataset.
"""

from __future__ import annotations

import io
import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from PIL import Image

from datastore.inbox import DatasetKey
from shared.datasource import Category, LayerProperties, MagProperties
from shared.geometry import BoundingBox, Vec3

logger = logging.getLogger(__name__)

DEFAULT_SIZE = 400
MAX_SIZE = 2048
# Without a coarse enough mag, read at most this many times the output size and
# show the middle of the layer rather than reading a huge mag-1 plane.
_MAX_OVERSAMPLING = 4

ReadFn = Callable[[MagProperties, BoundingBox], np.ndarray]


@dataclass(frozen=True, slots=True)
class ThumbnailRequest:
    width: int
    height: int
    # Optional centre in mag-1 voxels; missing axes default to the layer's middle.
    x: int | None = None
    y: int | None = None
    z: int | None = None


def _region(layer: LayerProperties, request: ThumbnailRequest) -> tuple[Vec3, Vec3]:
    """Mag-1 region (top-left, size; z size 1) with the aspect of the image."""
    bbox = layer.bounding_box
    middle = bbox.topleft + bbox.size // 2
    center = Vec3(
        middle.x if request.x is None else request.x,
        middle.y if request.y is None else request.y,
        middle.z if request.z is None else request.z,
    )
    aspect = request.width / request.height
    sx, sy = max(bbox.size.x, 1), max(bbox.size.y, 1)
    # Largest region of the image's aspect that fits inside the layer's x/y extent.
    if sx / sy > aspect:
        sx = max(1, round(sy * aspect))
    else:
        sy = max(1, round(sx / aspect))
    topleft = Vec3(center.x - sx // 2, center.y - sy // 2, center.z)
    # Keep it inside the layer where possible; a centre near the border shifts it.
    topleft = Vec3(
        min(max(topleft.x, bbox.topleft.x), bbox.end.x - sx),
        min(max(topleft.y, bbox.topleft.y), bbox.end.y - sy),
        topleft.z,
    )
    return topleft, Vec3(sx, sy, 1)


def _pick_mag(
    layer: LayerProperties, size: Vec3, request: ThumbnailRequest
) -> MagProperties:
    mags = sorted(layer.mags, key=lambda m: m.mag)
    chosen = mags[0]
    for mag in mags:
        if (
            size.x // mag.mag.x >= request.width
            and size.y // mag.mag.y >= request.height
        ):
            chosen = mag  # coarser and still enough pixels
    return chosen


def _stretch(plane: np.ndarray) -> np.ndarray:
    """Contrast-stretch by percentiles to uint8."""
    values = plane.astype(np.float32)
    lo, hi = np.percentile(values, [0.5, 99.5])
    if hi <= lo:
        hi = lo + 1.0
    scaled: np.ndarray = np.clip((values - lo) / (hi - lo), 0.0, 1.0) * 255.0
    return scaled.astype(np.uint8)


def _segment_colors(ids: np.ndarray) -> np.ndarray:
    """A stable pseudo-random RGB color per id; id 0 (background) is black."""
    mixed = ids.astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
    mixed ^= mixed >> np.uint64(29)
    rgb = np.stack(
        [(mixed >> np.uint64(shift)) & np.uint64(0xFF) for shift in (8, 24, 40)],
        axis=-1,
    ).astype(np.uint8)
    rgb |= np.uint8(0x40)  # never too dark to tell apart from the background
    rgb[ids == 0] = 0
    return rgb


def render_thumbnail(
    layer: LayerProperties, request: ThumbnailRequest, read: ReadFn
) -> bytes:
    """The JPEG bytes of a thumbnail (blocking)."""
    topleft, size = _region(layer, request)
    mag = _pick_mag(layer, size, request)
    m = mag.mag.to_vec3()
    box = BoundingBox(topleft // m, size.ceildiv(m).pairmax(1))
    limit = Vec3(
        request.width * _MAX_OVERSAMPLING, request.height * _MAX_OVERSAMPLING, 1
    )
    if box.size.x > limit.x or box.size.y > limit.y:
        shrink = box.size - box.size.pairmin(limit)
        box = BoundingBox(box.topleft + shrink // 2, box.size.pairmin(limit))
    data = read(mag, box)  # (c, x, y, 1)
    if layer.category == Category.SEGMENTATION:
        rgb = _segment_colors(data[0, :, :, 0].T)
        resample = Image.Resampling.NEAREST
    elif data.shape[0] == 3:
        rgb = np.stack([_stretch(data[c, :, :, 0].T) for c in range(3)], axis=-1)
        resample = Image.Resampling.BILINEAR
    else:
        rgb = np.repeat(_stretch(data[0, :, :, 0].T)[:, :, None], 3, axis=-1)
        resample = Image.Resampling.BILINEAR
    image = Image.fromarray(np.ascontiguousarray(rgb))
    if image.size != (request.width, request.height):
        image = image.resize((request.width, request.height), resample)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85)
    return out.getvalue()


ThumbnailKey = tuple[str, str, str, ThumbnailRequest]


class ThumbnailCache:
    """Small LRU of rendered JPEGs (used on the event loop only)."""

    def __init__(self, capacity: int = 128) -> None:
        self._capacity = capacity
        self._items: OrderedDict[ThumbnailKey, bytes] = OrderedDict()

    def get(self, key: ThumbnailKey) -> bytes | None:
        jpeg = self._items.get(key)
        if jpeg is not None:
            self._items.move_to_end(key)
        return jpeg

    def put(self, key: ThumbnailKey, jpeg: bytes) -> None:
        self._items[key] = jpeg
        self._items.move_to_end(key)
        while len(self._items) > self._capacity:
            self._items.popitem(last=False)

    def invalidate(self, datasets: set[DatasetKey]) -> None:
        for key in [k for k in self._items if (k[0], k[1]) in datasets]:
            del self._items[key]
