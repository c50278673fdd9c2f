"""What the dashboard shows of a dataset: layers, voxel size, size, thumbnail.

The datasource JSON is read through `shared.datasource` (the one place that knows
every spelling); a datasource it refuses (unusable datasets keep what was found)
still shows its layer names, read leniently, instead of breaking the page.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlencode

from django.urls import reverse

from metaserver.datasets.models import Dataset, Status
from metaserver.jobs.models import Job
from shared.datasource import Category, DatasourceError, parse_datasource
from shared.protocol import THUMBNAIL_SIZES

logger = logging.getLogger(__name__)

THUMBNAIL_PIXELS, PREVIEW_PIXELS = THUMBNAIL_SIZES

_UNIT_SYMBOLS = {
    "picometer": "pm",
    "angstrom": "Å",
    "nanometer": "nm",
    "micrometer": "µm",
    "millimeter": "mm",
    "centimeter": "cm",
    "meter": "m",
}
_SI_PREFIXES = ("", "k", "M", "G", "T", "P", "E")
# Narrow no-break spaces keep "11.24 x 11.24 x 28 nm" compact and on one line.
TIMES = "\N{NARROW NO-BREAK SPACE}\N{MULTIPLICATION SIGN}\N{NARROW NO-BREAK SPACE}"


@dataclass(frozen=True)
class LayerSummary:
    name: str
    category: str = ""
    element_class: str = ""
    data_format: str = ""
    # "x, y, z" of the top-left corner and "w x h x d", empty when unknown.
    top_left: str = ""
    extent: str = ""
    mags: tuple[str, ...] = ()
    volume: int = 0


@dataclass(frozen=True)
class DatasetSummary:
    dataset: Dataset
    layers: tuple[LayerSummary, ...]
    voxel_size: str
    # "442 k" (the table's Voxels column), "442 k voxels" and the exact count.
    voxels: str
    size: str
    size_detail: str
    thumbnail_url: str
    preview_url: str
    details_url: str
    # The running conversion of a `converting` dataset (its progress shows).
    conversion: Job | None = None

    @property
    def title(self) -> str:
        return self.dataset.display_name or self.dataset.name

    @property
    def is_active(self) -> bool:
        return self.dataset.status == Status.ACTIVE


def human_count(value: int) -> str:
    """`131072` -> `"131 k"`: three significant digits and an SI prefix."""
    number = float(value)
    prefix = 0
    while abs(number) >= 999.5 and prefix < len(_SI_PREFIXES) - 1:
        number /= 1000
        prefix += 1
    if prefix == 0:
        return f"{value:,}"
    digits = 0 if number >= 99.95 else 1 if number >= 9.995 else 2
    return f"{number:.{digits}f} {_SI_PREFIXES[prefix]}"


def _number(value: float) -> str:
    return f"{value:g}"


def _voxel_size(factor: Any, unit: str) -> str:
    try:
        x, y, z = (float(v) for v in factor)
    except (TypeError, ValueError):
        return ""
    symbol = _UNIT_SYMBOLS.get(unit, unit)
    return TIMES.join(_number(v) for v in (x, y, z)) + f" {symbol}"


def _parsed_summary(datasource: Any) -> tuple[tuple[LayerSummary, ...], str]:
    properties = parse_datasource(datasource)
    layers = tuple(
        LayerSummary(
            name=layer.name,
            category=layer.category.value,
            element_class=layer.element_class.value,
            data_format=layer.data_format.value,
            top_left=", ".join(str(v) for v in layer.bounding_box.topleft),
            extent=TIMES.join(str(v) for v in layer.bounding_box.size),
            mags=tuple(str(m.mag) for m in layer.mags),
            volume=layer.bounding_box.volume(),
        )
        for layer in properties.layers
    )
    voxel_size = properties.voxel_size
    return layers, _voxel_size(voxel_size.factor, voxel_size.unit)


def _lenient_summary(datasource: Any) -> tuple[tuple[LayerSummary, ...], str]:
    """Names and categories of whatever layers a broken datasource still lists."""
    if not isinstance(datasource, dict):
        return (), ""
    layers = []
    for raw in datasource.get("dataLayers") or ():
        if isinstance(raw, dict) and isinstance(raw.get("name"), str):
            category = raw.get("category")
            layers.append(
                LayerSummary(
                    name=raw["name"],
                    category=category if isinstance(category, str) else "",
                )
            )
    scale = datasource.get("scale")
    if isinstance(scale, dict):
        voxel_size = _voxel_size(scale.get("factor"), str(scale.get("unit", "")))
    else:
        voxel_size = _voxel_size(scale, "nanometer")
    return tuple(layers), voxel_size


def _datastore_url(dataset: Dataset, layer: str, pixels: int, token: str) -> str:
    org, name = quote(dataset.organization.name, safe=""), quote(dataset.name, safe="")
    base = dataset.datastore.effective_public_url.rstrip("/")
    params: dict[str, str | int] = {"width": pixels, "height": pixels}
    if token:
        params["token"] = token
    return (
        f"{base}/data/datasets/{org}/{name}/layers/{quote(layer, safe='')}"
        f"/thumbnail.jpg?{urlencode(params)}"
    )


def summarize(
    dataset: Dataset, token: str, conversion: Job | None = None
) -> DatasetSummary:
    """The dashboard's view of `dataset`; `organization` and `datastore` preloaded.

    `token` goes into the datastore URLs the browser loads (thumbnails);
    `conversion` is the running job converting the dataset, if any.
    """
    if dataset.datasource is None:
        layers: tuple[LayerSummary, ...] = ()
        voxel_size = ""
    else:
        try:
            layers, voxel_size = _parsed_summary(dataset.datasource)
        except DatasourceError:
            layers, voxel_size = _lenient_summary(dataset.datasource)
    largest = max(layers, key=lambda layer: layer.volume, default=None)
    volume = largest.volume if largest is not None else 0
    thumbnail_url = preview_url = ""
    # Only active datasets can be read; anything else would be a broken image.
    color = next((la for la in layers if la.category == Category.COLOR), None)
    if dataset.status == Status.ACTIVE and color is not None:
        thumbnail_url = _datastore_url(dataset, color.name, THUMBNAIL_PIXELS, token)
        preview_url = _datastore_url(dataset, color.name, PREVIEW_PIXELS, token)
    return DatasetSummary(
        dataset=dataset,
        layers=layers,
        voxel_size=voxel_size,
        voxels=human_count(volume) if volume else "",
        size=f"{human_count(volume)} voxels" if volume else "",
        size_detail=(
            f"{largest.name}: {largest.extent} = {volume:,} voxels"
            if largest is not None and volume
            else ""
        ),
        thumbnail_url=thumbnail_url,
        preview_url=preview_url,
        details_url=reverse(
            "dashboard:dataset",
            kwargs={"organization": dataset.organization.name, "name": dataset.name},
        ),
        conversion=conversion if dataset.status == Status.CONVERTING else None,
    )
