"""The view configuration a viewer opens with, and the levels it is merged from.

From lowest to highest precedence (WEBKNOSSOS's hierarchy, plus the user's own):
1. computed from the datasource: centre of the first color layer, zoom 1, the
   full range of each layer's element class as its intensity range;
2. the datasource's `defaultViewConfiguration` (and each layer's own);
3. the dataset's settings (`Dataset.default_view_configuration`);
4. the user's last view of the dataset (`UserViewConfiguration`).

Levels merge key by key, `layers` layer by layer and key by key within a layer.
Every level is cleaned first: a key `view_configuration_problems` refuses, or a
layer the dataset no longer has, is dropped rather than breaking the viewer.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from metaserver.datasets.view_configuration import view_configuration_problems

Configuration = dict[str, Any]

DEFAULT_SEGMENTATION_OPACITY = 40
# The intensity range that shows a layer of each element class in full.
_FULL_RANGES: dict[str, tuple[int, int]] = {
    "uint8": (0, 255),
    "int8": (-128, 127),
    "uint16": (0, 65535),
    "int16": (-32768, 32767),
    "uint32": (0, 2**32 - 1),
    "int32": (-(2**31), 2**31 - 1),
}


def full_intensity_range(element_class: str) -> list[int] | None:
    """[min, max] of an integer element class; None where it means nothing (float)."""
    found = _FULL_RANGES.get(element_class)
    return list(found) if found else None


def _raw_layers(datasource: Any) -> list[Mapping[str, Any]]:
    if not isinstance(datasource, Mapping):
        return []
    layers = datasource.get("dataLayers")
    if not isinstance(layers, list):
        return []
    return [
        layer
        for layer in layers
        if isinstance(layer, Mapping) and isinstance(layer.get("name"), str)
    ]


def layer_names_of(datasource: Any) -> list[str]:
    return [layer["name"] for layer in _raw_layers(datasource)]


def _centre(layer: Mapping[str, Any]) -> list[int] | None:
    box = layer.get("boundingBox")
    if not isinstance(box, Mapping):
        return None
    top_left = box.get("topLeft")
    size = [box.get("width"), box.get("height"), box.get("depth")]
    numbers = [*(top_left if isinstance(top_left, list) else []), *size]
    if len(numbers) != 6 or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in numbers
    ):
        return None
    return [int(top_left[i] + size[i] // 2) for i in range(3)]


def computed_view_configuration(datasource: Any) -> Configuration:
    """Level 1: what the datasource's layers imply when nobody configured anything."""
    layers = _raw_layers(datasource)
    configuration: Configuration = {
        "zoom": 1.0,
        "interpolation": False,
        "segmentationPatternOpacity": DEFAULT_SEGMENTATION_OPACITY,
        "layers": {},
    }
    colors = [layer for layer in layers if layer.get("category") == "color"]
    for layer in [*colors, *layers]:
        centre = _centre(layer)
        if centre is not None:
            configuration["position"] = centre
            break
    for layer in layers:
        settings: dict[str, Any] = {"alpha": 100, "isDisabled": False}
        if layer.get("category") == "color":
            settings["color"] = [255, 255, 255]
            full = full_intensity_range(str(layer.get("elementClass", "")))
            if full is not None:
                settings["intensityRange"] = full
        configuration["layers"][layer["name"]] = settings
    return configuration


def datasource_view_configuration(datasource: Any) -> Configuration:
    """Level 2: `defaultViewConfiguration` of the datasource and of its layers."""
    configuration: Configuration = {}
    if isinstance(datasource, Mapping):
        top = datasource.get("defaultViewConfiguration")
        if isinstance(top, Mapping):
            configuration = copy.deepcopy(dict(top))
    per_layer = {
        layer["name"]: dict(layer["defaultViewConfiguration"])
        for layer in _raw_layers(datasource)
        if isinstance(layer.get("defaultViewConfiguration"), Mapping)
    }
    if per_layer:
        layers = configuration.get("layers")
        configuration["layers"] = merge_view_configurations(
            {"layers": per_layer},
            {"layers": layers if isinstance(layers, Mapping) else {}},
        )["layers"]
    return configuration


def clean_view_configuration(value: Any, layer_names: Collection[str]) -> Configuration:
    """`value` without the keys and layers `view_configuration_problems` refuses."""
    if not isinstance(value, Mapping):
        return {}
    clean: Configuration = {}
    for key, item in value.items():
        if key == "layers":
            continue
        if not view_configuration_problems({key: item}, layer_names):
            clean[key] = copy.deepcopy(item)
    layers = value.get("layers")
    if isinstance(layers, Mapping):
        clean_layers: dict[str, dict[str, Any]] = {}
        for name, settings in layers.items():
            if name not in layer_names or not isinstance(settings, Mapping):
                continue
            clean_layers[name] = {
                key: copy.deepcopy(item)
                for key, item in settings.items()
                if not view_configuration_problems(
                    {"layers": {name: {key: item}}}, layer_names
                )
            }
        clean["layers"] = clean_layers
    return clean


def merge_view_configurations(*levels: Mapping[str, Any] | None) -> Configuration:
    """Later levels win, key by key; `layers` merge per layer and per layer key."""
    merged: Configuration = {}
    layers: dict[str, dict[str, Any]] = {}
    for level in levels:
        if not level:
            continue
        for key, value in level.items():
            if key == "layers":
                if isinstance(value, Mapping):
                    for name, settings in value.items():
                        if isinstance(settings, Mapping):
                            layers.setdefault(name, {}).update(
                                copy.deepcopy(dict(settings))
                            )
            else:
                merged[key] = copy.deepcopy(value)
    if layers or any(level and "layers" in level for level in levels):
        merged["layers"] = layers
    return merged


@dataclass(frozen=True)
class ViewLevels:
    """The four levels of one dataset for one user, each already cleaned."""

    computed: Configuration
    datasource: Configuration
    dataset: Configuration
    user: Configuration | None

    @property
    def dataset_default(self) -> Configuration:
        """What everyone without a view of their own opens with."""
        return merge_view_configurations(self.computed, self.datasource, self.dataset)

    @property
    def effective(self) -> Configuration:
        """What this user opens with."""
        return merge_view_configurations(self.dataset_default, self.user)


def view_levels(
    datasource: Any, dataset_default: Any, user_configuration: Any | None
) -> ViewLevels:
    """The cleaned levels of a dataset (`datasource`, `dataset_default`) and a user."""
    names = layer_names_of(datasource)
    return ViewLevels(
        computed=computed_view_configuration(datasource),
        datasource=clean_view_configuration(
            datasource_view_configuration(datasource), names
        ),
        dataset=clean_view_configuration(dataset_default, names),
        user=(
            None
            if user_configuration is None
            else clean_view_configuration(user_configuration, names)
        ),
    )
