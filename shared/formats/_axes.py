"""How an array's dimensions map to (c, x, y, z), and the 4-d view TensorStore reads.

`axisOrder` (WEBKNOSSOS' `{"c": 0, "x": 1, "y": 2, "z": 3}`, or `{"x": 2, "y": 1,
"z": 0}` for OME-Zarr z, y, x arrays) wins; else dimension names; else x, y, z last
with a channel axis before them. Other dimensions must have size 1 (OME-Zarr t).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import tensorstore as ts

from shared.formats.errors import FormatError, UnsupportedData
from shared.geometry import BoundingBox, Vec3

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class AxisLayout:
    """Which dimensions of the stored array are c, x, y, z; `extras` are singletons."""

    c: int | None
    x: int
    y: int
    z: int
    extras: tuple[int, ...]

    def as_axis_order(self) -> dict[str, int]:
        order = {"x": self.x, "y": self.y, "z": self.z}
        if self.c is not None:
            order = {"c": self.c, **order}
        return order


def axis_layout(
    rank: int,
    labels: Sequence[str],
    axis_order: Mapping[str, int] | None,
    where: str,
) -> AxisLayout:
    """The layout from `axisOrder`, else from dimension names, else WEBKNOSSOS' default.

    The default puts x, y, z last and a channel axis before them (`c, x, y, z`).
    """
    if rank < 3:
        raise UnsupportedData(
            f"{where}: array has {rank} dimension(s), at least 3 needed"
        )
    if axis_order is not None:
        order = dict(axis_order)
        unknown = sorted(set(order) - {"c", "x", "y", "z"})
        if unknown or not {"x", "y", "z"} <= set(order):
            raise FormatError(
                f"{where}: axisOrder must name x, y, z and optionally c, got {order}"
            )
        values = list(order.values())
        if any(
            isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < rank
            for v in values
        ) or len(set(values)) != len(values):
            raise FormatError(
                f"{where}: axisOrder {order} does not fit an array of {rank} dimensions"
            )
        c = order.get("c")
        x, y, z = order["x"], order["y"], order["z"]
    else:
        names = [label.lower() for label in labels]
        if {"x", "y", "z"} <= set(names):
            x, y, z = names.index("x"), names.index("y"), names.index("z")
            c = next((names.index(n) for n in ("c", "channel") if n in names), None)
        else:
            x, y, z = rank - 3, rank - 2, rank - 1
            c = rank - 4 if rank >= 4 else None
    used = {x, y, z} | ({c} if c is not None else set())
    extras = tuple(d for d in range(rank) if d not in used)
    return AxisLayout(c, x, y, z, extras)


def cxyz_view(base: ts.TensorStore, layout: AxisLayout, where: str) -> ts.TensorStore:
    """A 4-d `(c, x, y, z)` view of `base`: singleton extras dropped, axes reordered."""
    domain = base.domain
    index: list[Any] = []
    for d in range(base.rank):
        if d in layout.extras:
            size = domain[d].exclusive_max - domain[d].inclusive_min
            if size != 1:
                name = domain[d].label or str(d)
                raise UnsupportedData(
                    f"{where}: dimension '{name}' has size {size}; only x, y, z, a "
                    "channel axis and axes of size 1 are supported"
                )
            index.append(domain[d].inclusive_min)
        else:
            index.append(slice(None))
    view = base[tuple(index)] if layout.extras else base
    remaining = [d for d in range(base.rank) if d not in layout.extras]
    position = {d: i for i, d in enumerate(remaining)}
    wanted = [layout.x, layout.y, layout.z]
    if layout.c is not None:
        wanted.insert(0, layout.c)
    order = tuple(position[d] for d in wanted)
    if order != tuple(range(len(order))):
        view = view[ts.d[order].transpose[tuple(range(len(order)))]]
    if layout.c is None:
        view = view[ts.newaxis, ...]
    return view


def bounds(view: ts.TensorStore) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    dom = view.domain
    lower = (dom[1].inclusive_min, dom[2].inclusive_min, dom[3].inclusive_min)
    upper = (dom[1].exclusive_max, dom[2].exclusive_max, dom[3].exclusive_max)
    return lower, upper


def chunk_shape_of(view: ts.TensorStore) -> Vec3:
    shape = view.chunk_layout.read_chunk.shape
    if shape is None:
        return Vec3(64, 64, 64)
    sizes = [s if s else 64 for s in shape[1:4]]
    return Vec3(*sizes)


def _any_stored(view: ts.TensorStore, lo: Sequence[int], hi: Sequence[int]) -> bool:
    sub = view[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
    stats = sub.storage_statistics(query_not_stored=True).result()
    return not stats.not_stored


def stored_box(view: ts.TensorStore, chunk: Vec3) -> BoundingBox | None:
    """Box of the chunks that exist on disk; None if the driver cannot tell."""
    lower, upper = bounds(view)
    try:
        if any(b <= a for a, b in zip(lower, upper, strict=True)) or not _any_stored(
            view, lower, upper
        ):
            return BoundingBox(Vec3(*lower), Vec3(0, 0, 0))
        start, end = list(lower), list(upper)
        for axis in range(3):
            step = chunk[axis]
            count = -(-(upper[axis] - lower[axis]) // step)

            def probe(a: int, b: int, axis: int = axis) -> bool:
                lo, hi = list(start), list(end)
                lo[axis], hi[axis] = a, b
                return _any_stored(view, lo, hi)

            # smallest k with data in [lower, lower + (k + 1) * step)
            first_lo, first_hi = 0, count - 1
            while first_lo < first_hi:
                mid = (first_lo + first_hi) // 2
                if probe(lower[axis], min(upper[axis], lower[axis] + (mid + 1) * step)):
                    first_hi = mid
                else:
                    first_lo = mid + 1
            # largest k with data in [lower + k * step, upper)
            last_lo, last_hi = first_lo, count - 1
            while last_lo < last_hi:
                mid = (last_lo + last_hi + 1) // 2
                if probe(lower[axis] + mid * step, upper[axis]):
                    last_lo = mid
                else:
                    last_hi = mid - 1
            start[axis] = lower[axis] + first_lo * step
            end[axis] = min(upper[axis], lower[axis] + (last_lo + 1) * step)
    except ValueError:
        logger.debug("storage statistics unavailable", exc_info=True)
        return None
    return BoundingBox.from_corners(start, end)
