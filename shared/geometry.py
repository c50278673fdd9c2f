"""Frozen geometry value types: Vec3, Mag and BoundingBox.

All coordinates are integers in voxels. A `BoundingBox` is half-open: it covers
`topleft <= p < topleft + size` on every axis.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, SupportsIndex

_MAG_DASHED = re.compile(r"^\s*(\d+)\s*-\s*(\d+)\s*-\s*(\d+)\s*$")
_MAG_SINGLE = re.compile(r"^\s*(\d+)\s*$")


class GeometryError(ValueError):
    """A value that cannot be turned into a vector, mag or bounding box."""


def _as_int(value: Any, what: str) -> int:
    # bool is an int subclass; a `true` in JSON is never a coordinate.
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise GeometryError(f"{what}: expected an integer, got {value!r}")
    if isinstance(value, float):
        if not value.is_integer():
            raise GeometryError(f"{what}: expected an integer, got {value!r}")
        return int(value)
    if isinstance(value, str):
        try:
            return int(value.strip())
        except ValueError:
            raise GeometryError(f"{what}: expected an integer, got {value!r}") from None
    return value


@dataclass(frozen=True, slots=True)
class Vec3:
    """An integer 3-vector (x, y, z)."""

    x: int
    y: int
    z: int

    @classmethod
    def of(cls, value: Vec3 | Sequence[Any] | int) -> Vec3:
        """Build from a Vec3, a 3-sequence or a single int (broadcast)."""
        if isinstance(value, Vec3):
            return value
        if isinstance(value, int) and not isinstance(value, bool):
            return cls(value, value, value)
        if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
            raise GeometryError(f"expected [x, y, z], got {value!r}")
        if len(value) != 3:
            raise GeometryError(f"expected 3 components [x, y, z], got {len(value)}")
        return cls(*(_as_int(v, "component") for v in value))

    @classmethod
    def full(cls, value: int) -> Vec3:
        return cls(value, value, value)

    def __iter__(self) -> Iterator[int]:
        yield self.x
        yield self.y
        yield self.z

    def __getitem__(self, index: SupportsIndex) -> int:
        return (self.x, self.y, self.z)[index]

    def __len__(self) -> int:
        return 3

    def to_tuple(self) -> tuple[int, int, int]:
        return (self.x, self.y, self.z)

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.z]

    def _zip(self, other: Vec3 | Sequence[int] | int) -> Iterator[tuple[int, int]]:
        return zip(self, Vec3.of(other), strict=True)

    def __add__(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(a + b for a, b in self._zip(other)))

    def __sub__(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(a - b for a, b in self._zip(other)))

    def __mul__(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(a * b for a, b in self._zip(other)))

    def __floordiv__(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(a // b for a, b in self._zip(other)))

    def ceildiv(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(-(-a // b) for a, b in self._zip(other)))

    def pairmax(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(max(a, b) for a, b in self._zip(other)))

    def pairmin(self, other: Vec3 | Sequence[int] | int) -> Vec3:
        return Vec3(*(min(a, b) for a, b in self._zip(other)))

    def prod(self) -> int:
        return self.x * self.y * self.z

    def max(self) -> int:
        return max(self.x, self.y, self.z)

    def __str__(self) -> str:
        return f"({self.x}, {self.y}, {self.z})"


@dataclass(frozen=True, slots=True)
class Mag:
    """A magnification (downsampling factor per axis), each a power of two >= 1."""

    x: int
    y: int
    z: int

    def __post_init__(self) -> None:
        for v in (self.x, self.y, self.z):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1 or v & (v - 1):
                raise GeometryError(
                    f"mag components must be powers of two >= 1, got "
                    f"{self.x}-{self.y}-{self.z}"
                )

    @classmethod
    def parse(cls, value: Mag | str | int | Sequence[Any]) -> Mag:
        """Parse `2-2-1`, `2`, `[2, 2, 1]`, `(2, 2, 1)`, 2 or a Mag."""
        if isinstance(value, Mag):
            return value
        if isinstance(value, bool):
            raise GeometryError(f"not a mag: {value!r}")
        if isinstance(value, int):
            return cls(value, value, value)
        if isinstance(value, str):
            m = _MAG_DASHED.match(value)
            if m:
                return cls(*(int(g) for g in m.groups()))
            m = _MAG_SINGLE.match(value)
            if m:
                v = int(m.group(1))
                return cls(v, v, v)
            raise GeometryError(f"not a mag: {value!r} (use 2, 2-2-1 or [2, 2, 1])")
        try:
            vec = Vec3.of(value)
        except GeometryError as e:
            raise GeometryError(f"not a mag: {value!r} ({e})") from None
        return cls(vec.x, vec.y, vec.z)

    def __iter__(self) -> Iterator[int]:
        yield self.x
        yield self.y
        yield self.z

    def to_vec3(self) -> Vec3:
        return Vec3(self.x, self.y, self.z)

    def to_list(self) -> list[int]:
        return [self.x, self.y, self.z]

    def to_layer_name(self) -> str:
        """Folder name as WEBKNOSSOS writes it: `1` for isotropic, else `2-2-1`."""
        if self.x == self.y == self.z:
            return str(self.x)
        return f"{self.x}-{self.y}-{self.z}"

    def to_long_name(self) -> str:
        return f"{self.x}-{self.y}-{self.z}"

    def max_dim(self) -> int:
        return max(self.x, self.y, self.z)

    def __lt__(self, other: Mag) -> bool:
        return (self.max_dim(), self.to_vec3().prod(), self.to_list()) < (
            other.max_dim(),
            other.to_vec3().prod(),
            other.to_list(),
        )

    def __str__(self) -> str:
        return self.to_long_name()


@dataclass(frozen=True, slots=True)
class BoundingBox:
    """Axis-aligned box of voxels: `topleft` inclusive, `topleft + size` exclusive."""

    topleft: Vec3
    size: Vec3

    def __post_init__(self) -> None:
        if any(s < 0 for s in self.size):
            raise GeometryError(f"bounding box size must be >= 0, got {self.size}")

    @classmethod
    def of(
        cls, topleft: Vec3 | Sequence[int] | int, size: Vec3 | Sequence[int] | int
    ) -> BoundingBox:
        return cls(Vec3.of(topleft), Vec3.of(size))

    @classmethod
    def from_corners(
        cls, start: Vec3 | Sequence[int], end: Vec3 | Sequence[int]
    ) -> BoundingBox:
        s, e = Vec3.of(start), Vec3.of(end)
        return cls(s, (e - s).pairmax(0))

    @property
    def end(self) -> Vec3:
        return self.topleft + self.size

    def is_empty(self) -> bool:
        return self.size.prod() == 0

    def volume(self) -> int:
        return self.size.prod()

    def intersection(self, other: BoundingBox) -> BoundingBox:
        start = self.topleft.pairmax(other.topleft)
        end = self.end.pairmin(other.end)
        return BoundingBox.from_corners(start, end.pairmax(start))

    def intersects(self, other: BoundingBox) -> bool:
        return not self.intersection(other).is_empty()

    def contains(self, point: Vec3 | Sequence[int]) -> bool:
        p = Vec3.of(point)
        corners = zip(self.topleft, p, self.end, strict=True)
        return all(a <= b < c for a, b, c in corners)

    def contains_box(self, other: BoundingBox) -> bool:
        return self.intersection(other) == other

    def union(self, other: BoundingBox) -> BoundingBox:
        if self.is_empty():
            return other
        if other.is_empty():
            return self
        return BoundingBox.from_corners(
            self.topleft.pairmin(other.topleft), self.end.pairmax(other.end)
        )

    def offset(self, vector: Vec3 | Sequence[int]) -> BoundingBox:
        return BoundingBox(self.topleft + Vec3.of(vector), self.size)

    def in_mag(self, mag: Mag) -> BoundingBox:
        """Mag-1 box -> the smallest box in `mag` voxels that covers it."""
        m = mag.to_vec3()
        start = self.topleft // m
        end = self.end.ceildiv(m)
        return BoundingBox.from_corners(start, end)

    def from_mag_to_mag1(self, mag: Mag) -> BoundingBox:
        m = mag.to_vec3()
        return BoundingBox(self.topleft * m, self.size * m)

    def align_with(self, chunk: Vec3 | Sequence[int] | int) -> BoundingBox:
        """Grow the box outwards to multiples of `chunk`."""
        c = Vec3.of(chunk)
        start = (self.topleft // c) * c
        end = self.end.ceildiv(c) * c
        return BoundingBox.from_corners(start, end)

    def chunks(self, chunk: Vec3 | Sequence[int] | int) -> Iterable[BoundingBox]:
        """Chunk-aligned sub-boxes covering this box, clipped to it, x fastest."""
        c = Vec3.of(chunk)
        aligned = self.align_with(c)
        for z in range(aligned.topleft.z, aligned.end.z, c.z):
            for y in range(aligned.topleft.y, aligned.end.y, c.y):
                for x in range(aligned.topleft.x, aligned.end.x, c.x):
                    box = BoundingBox(Vec3(x, y, z), c).intersection(self)
                    if not box.is_empty():
                        yield box

    def slices(self) -> tuple[slice, slice, slice]:
        return tuple(  # type: ignore[return-value]
            slice(a, b) for a, b in zip(self.topleft, self.end, strict=True)
        )

    def to_wkw_dict(self) -> dict[str, Any]:
        """The `{topLeft, width, height, depth}` form of datasource-properties."""
        return {
            "topLeft": self.topleft.to_list(),
            "width": self.size.x,
            "height": self.size.y,
            "depth": self.size.z,
        }

    def __str__(self) -> str:
        return f"BoundingBox(topleft={self.topleft}, size={self.size})"
