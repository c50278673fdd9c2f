"""Schema classes of datasource-properties.json: enums, value types, the error type."""

from __future__ import annotations

import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

import numpy as np

from shared.datasource._frozen import FrozenDict, freeze, freeze_mapping
from shared.geometry import BoundingBox, GeometryError, Mag

# More problems than this in one file are noise; the first ones tell the story.
MAX_ERRORS: Final = 100


class DatasourceError(ValueError):
    """One or more problems, each with a JSON path.

    `DatasourceError([("scale", "required")])` and
    `DatasourceError("scale", "required")` are the same error.
    """

    errors: list[tuple[str, str]]

    def __init__(
        self, errors: list[tuple[str, str]] | str, message: str | None = None
    ) -> None:
        if isinstance(errors, str):
            if message is None:
                raise TypeError("DatasourceError(path, message) needs a message")
            errors = [(errors, message)]
        elif message is not None:
            raise TypeError("give either a list of (path, message) or path and message")
        self.errors = [(str(path), str(msg)) for path, msg in errors]
        super().__init__(str(self))

    def __str__(self) -> str:
        return "; ".join(f"{path}: {msg}" for path, msg in self.errors)

    def __reduce__(self) -> tuple[Any, ...]:
        # Exceptions pickle their args by default, which would lose the paths.
        return (type(self), (self.errors,))

    def as_json(self) -> list[dict[str, str]]:
        """`[{"path": ..., "message": ...}]`, for API error bodies."""
        return [{"path": path, "message": msg} for path, msg in self.errors]


class Category(StrEnum):
    COLOR = "color"
    SEGMENTATION = "segmentation"


class DataFormat(StrEnum):
    WKW = "wkw"
    ZARR = "zarr"
    ZARR3 = "zarr3"
    N5 = "n5"
    NEUROGLANCER_PRECOMPUTED = "neuroglancerPrecomputed"


class ElementClass(StrEnum):
    """The voxel type of a layer, as WEBKNOSSOS names it (`uint24` is RGB)."""

    UINT8 = "uint8"
    UINT16 = "uint16"
    UINT24 = "uint24"
    UINT32 = "uint32"
    UINT64 = "uint64"
    INT8 = "int8"
    INT16 = "int16"
    INT32 = "int32"
    INT64 = "int64"
    FLOAT = "float"
    DOUBLE = "double"

    @property
    def dtype(self) -> np.dtype[Any]:
        """The little-endian numpy dtype of one channel (`uint24` -> `uint8`)."""
        return np.dtype(_ELEMENT_DTYPES[self][0])

    @property
    def num_channels(self) -> int:
        """3 for `uint24`, else 1."""
        return _ELEMENT_DTYPES[self][1]

    @property
    def bytes_per_voxel(self) -> int:
        return self.dtype.itemsize * self.num_channels

    @property
    def is_integer(self) -> bool:
        """True for the types a segmentation layer may use (not float nor uint24)."""
        return self.dtype.kind in "ui" and self.num_channels == 1

    @classmethod
    def from_dtype(cls, dtype: Any, num_channels: int = 1) -> ElementClass:
        """The element class of `num_channels` channels of `dtype` (uint8 x3: uint24).

        Like webknossos-libs, several channels add up their bits: uint16 x 2 -> uint32.
        """
        try:
            dt = np.dtype(dtype)
        except TypeError:
            raise ValueError(f"not a numpy dtype: {dtype!r}") from None
        if isinstance(num_channels, bool) or num_channels < 1:
            raise ValueError(f"num_channels must be >= 1, got {num_channels!r}")
        bits = dt.itemsize * 8 * num_channels
        found = _ELEMENT_BY_KIND_BITS.get((dt.kind, bits))
        if found is None:
            raise ValueError(
                f"no WEBKNOSSOS element class for {num_channels} channel(s) "
                f"of {dt.name}"
            )
        return found


_ELEMENT_DTYPES: Final[dict[ElementClass, tuple[str, int]]] = {
    ElementClass.UINT8: ("<u1", 1),
    ElementClass.UINT16: ("<u2", 1),
    ElementClass.UINT24: ("<u1", 3),
    ElementClass.UINT32: ("<u4", 1),
    ElementClass.UINT64: ("<u8", 1),
    ElementClass.INT8: ("<i1", 1),
    ElementClass.INT16: ("<i2", 1),
    ElementClass.INT32: ("<i4", 1),
    ElementClass.INT64: ("<i8", 1),
    ElementClass.FLOAT: ("<f4", 1),
    ElementClass.DOUBLE: ("<f8", 1),
}
_ELEMENT_BY_KIND_BITS: Final[dict[tuple[str, int], ElementClass]] = {
    (np.dtype(dt).kind, np.dtype(dt).itemsize * 8 * n): ec
    for ec, (dt, n) in _ELEMENT_DTYPES.items()
}

# Unit names and abbreviations webknossos-libs accepts, with their size in nm.
_NM_PER_UNIT: Final[dict[str, float]] = {
    "yoctometer": 1e-15,
    "zeptometer": 1e-12,
    "attometer": 1e-9,
    "femtometer": 1e-6,
    "picometer": 1e-3,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "decimeter": 1e8,
    "meter": 1e9,
    "hectometer": 1e11,
    "kilometer": 1e12,
    "megameter": 1e15,
    "gigameter": 1e18,
    "terameter": 1e21,
    "petameter": 1e24,
    "exameter": 1e27,
    "zettameter": 1e30,
    "yottameter": 1e33,
    "angstrom": 0.1,
    "inch": 25400000.0,
    "foot": 304800000.0,
    "yard": 914400000.0,
    "mile": 1609344000000.0,
    "parsec": 3.085677581e25,
}
_UNIT_ALIASES: Final[dict[str, str]] = {
    **{name: name for name in _NM_PER_UNIT},
    **{
        "ym": "yoctometer", "zm": "zeptometer", "am": "attometer", "fm": "femtometer",
        "pm": "picometer", "nm": "nanometer", "µm": "micrometer", "um": "micrometer",
        "mm": "millimeter", "cm": "centimeter", "dm": "decimeter", "m": "meter",
        "hm": "hectometer", "km": "kilometer", "Mm": "megameter", "Gm": "gigameter",
        "Tm": "terameter", "Pm": "petameter", "Em": "exameter", "Zm": "zettameter",
        "Ym": "yottameter", "Å": "angstrom", "in": "inch", "ft": "foot", "yd": "yard",
        "mi": "mile", "pc": "parsec",
    },
}  # fmt: skip
LENGTH_UNITS: Final[tuple[str, ...]] = tuple(_NM_PER_UNIT)


def canonical_unit(unit: str) -> str | None:
    """`"nm"` -> `"nanometer"`; None for an unknown unit."""
    return _UNIT_ALIASES.get(unit)


@dataclass(frozen=True, slots=True)
class JsonForm:
    """How an object was spelled in its source JSON; ignored by `==`.

    `keys` is the source key order. `raw` maps each known key to (the parsed value,
    the source JSON or `ABSENT` when the value was inferred). Dumping writes the source
    JSON again for every value that is still equal to what was parsed, so a round trip
    keeps legacy shapes, number spellings and unknown keys of nested objects.
    """

    keys: tuple[str, ...] = ()
    raw: Mapping[str, tuple[Any, Any]] = field(default_factory=dict)


class _Absent:
    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent()


def _check_extra(extra: FrozenDict, known: frozenset[str], owner: str) -> None:
    clash = sorted(known & set(extra))
    if clash:
        raise ValueError(f"{owner} extra must not hold known keys: {', '.join(clash)}")


@dataclass(frozen=True)
class VoxelSize:
    """The size of a mag-1 voxel: `factor` (x, y, z) in `unit` (canonical name)."""

    factor: tuple[float, float, float]
    unit: str = "nanometer"

    def __post_init__(self) -> None:
        factor = tuple(self.factor)
        if len(factor) != 3 or not all(
            isinstance(v, numbers.Real)
            and not isinstance(v, bool)
            and math.isfinite(v)
            and v > 0
            for v in factor
        ):
            raise ValueError(f"voxel size must be 3 finite numbers > 0, got {factor!r}")
        unit = canonical_unit(self.unit)
        if unit is None:
            raise ValueError(f"unknown length unit {self.unit!r}")
        object.__setattr__(self, "factor", tuple(float(v) for v in factor))
        object.__setattr__(self, "unit", unit)

    def to_nanometers(self) -> tuple[float, float, float]:
        nm = _NM_PER_UNIT[self.unit]
        x, y, z = self.factor
        return (x * nm, y * nm, z * nm)


MAG_KNOWN_KEYS: Final = frozenset(
    {"mag", "resolution", "path", "axisOrder", "credentialId", "cubeLength"}
)


@dataclass(frozen=True)
class MagProperties:
    """One mag of a layer. `path` is kept verbatim: relative, absolute or a URI."""

    mag: Mag
    path: str | None = None
    axis_order: Mapping[str, int] | None = None
    credential_id: str | None = None
    cube_length: int | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenDict)
    json_form: JsonForm | None = field(
        default=None, compare=False, repr=False, kw_only=True
    )

    def __post_init__(self) -> None:
        if not isinstance(self.mag, Mag):
            object.__setattr__(self, "mag", Mag.parse(self.mag))
        if self.axis_order is not None:
            object.__setattr__(self, "axis_order", freeze_mapping(self.axis_order))
        extra = freeze_mapping(self.extra)
        _check_extra(extra, MAG_KNOWN_KEYS, "mag")
        object.__setattr__(self, "extra", extra)


LAYER_KNOWN_KEYS: Final = frozenset(
    {
        "name", "category", "boundingBox", "elementClass", "dataFormat", "mags",
        "wkwResolutions", "largestSegmentId", "mappings", "defaultViewConfiguration",
        "coordinateTransformations", "additionalAxes", "numChannels",
    }
)  # fmt: skip


@dataclass(frozen=True)
class LayerProperties:
    """One entry of `dataLayers`."""

    name: str
    category: Category
    bounding_box: BoundingBox
    element_class: ElementClass
    data_format: DataFormat
    mags: tuple[MagProperties, ...]
    largest_segment_id: int | None = None
    mappings: tuple[str, ...] = ()
    default_view_configuration: Mapping[str, Any] | None = None
    coordinate_transformations: tuple[Any, ...] | None = None
    additional_axes: tuple[Any, ...] | None = None
    num_channels: int | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenDict)
    json_form: JsonForm | None = field(
        default=None, compare=False, repr=False, kw_only=True
    )

    def __post_init__(self) -> None:
        # Accept plain strings and lists from callers; store enums and frozen values.
        object.__setattr__(self, "category", Category(self.category))
        object.__setattr__(self, "element_class", ElementClass(self.element_class))
        object.__setattr__(self, "data_format", DataFormat(self.data_format))
        object.__setattr__(self, "mags", tuple(self.mags))
        object.__setattr__(self, "mappings", tuple(self.mappings))
        for name in (
            "default_view_configuration",
            "coordinate_transformations",
            "additional_axes",
        ):
            value = getattr(self, name)
            if value is not None:
                object.__setattr__(self, name, freeze(value, name))
        extra = freeze_mapping(self.extra)
        _check_extra(extra, LAYER_KNOWN_KEYS, "layer")
        object.__setattr__(self, "extra", extra)

    def get_mag(self, mag: Mag | str | Sequence[int]) -> MagProperties:
        """The mag `mag` (`Mag`, `"2-2-1"`, `"2"`, `[2, 2, 1]`); KeyError if absent."""
        try:
            wanted = Mag.parse(mag)
        except GeometryError as e:
            raise KeyError(f"{e}") from None
        for candidate in self.mags:
            if candidate.mag == wanted:
                return candidate
        available = ", ".join(m.mag.to_layer_name() for m in self.mags)
        raise KeyError(
            f"mag {wanted} not in layer {self.name} (available: {available})"
        )

    @property
    def channels(self) -> int:
        """`num_channels`, or what the element class implies (3 for uint24)."""
        if self.num_channels is not None:
            return self.num_channels
        return self.element_class.num_channels

    @property
    def dtype(self) -> np.dtype[Any]:
        """The numpy dtype of one channel.

        As in webknossos-libs, the element class counts the bits of all channels:
        `uint24` with 3 channels is uint8, `uint32` with 2 channels is uint16.
        """
        ec = self.element_class
        channels = self.channels
        if channels == ec.num_channels:
            return ec.dtype
        bits, rest = divmod(ec.bytes_per_voxel * 8, channels)
        dt = channel_dtype(ec.dtype.kind, bits) if not rest else None
        if dt is None:
            raise ValueError(f"{channels} channels do not fit element class {ec}")
        return dt


def channel_dtype(kind: str, bits: int) -> np.dtype[Any] | None:
    """The numpy dtype of `kind` ('u', 'i', 'f') and `bits`, if WEBKNOSSOS has one."""
    if kind in "ui" and bits in (8, 16, 32, 64):
        return np.dtype(f"<{kind}{bits // 8}")
    if kind == "f" and bits in (32, 64):
        return np.dtype(f"<f{bits // 8}")
    return None


DATASOURCE_KNOWN_KEYS: Final = frozenset(
    {"id", "scale", "dataLayers", "defaultViewConfiguration"}
)


@dataclass(frozen=True)
class DatasourceProperties:
    """A whole datasource-properties.json. `name` and `team` are its `id`."""

    name: str
    team: str
    voxel_size: VoxelSize
    layers: tuple[LayerProperties, ...]
    default_view_configuration: Mapping[str, Any] | None = None
    extra: Mapping[str, Any] = field(default_factory=FrozenDict)
    json_form: JsonForm | None = field(
        default=None, compare=False, repr=False, kw_only=True
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "layers", tuple(self.layers))
        if self.default_view_configuration is not None:
            object.__setattr__(
                self,
                "default_view_configuration",
                freeze_mapping(self.default_view_configuration),
            )
        extra = freeze_mapping(self.extra)
        _check_extra(extra, DATASOURCE_KNOWN_KEYS, "datasource")
        object.__setattr__(self, "extra", extra)

    def get_layer(self, name: str) -> LayerProperties:
        """The layer called `name`; KeyError naming the available layers if absent."""
        for layer in self.layers:
            if layer.name == name:
                return layer
        available = ", ".join(layer.name for layer in self.layers) or "none"
        raise KeyError(
            f"layer {name!r} not in dataset {self.name} (available: {available})"
        )
