"""The View Configuration tab's form: position, zoom, interpolation, opacity, layers.

Keys the form does not show (rotation, loadingStrategy, ...) are kept as they
were. Checked by `metaserver.datasets.view_configuration` through the API's
serializer; its JSON paths are mapped back to the inputs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from metaserver.dashboard.datasource_forms import (
    AXES,
    Field,
    JsonSyntaxError,
    Problem,
    parse_json_text,
    parse_number,
    show_number,
)
from metaserver.dashboard.json_text import pretty_json

POSITION: Final = "position"
ZOOM: Final = "zoom"
INTERPOLATION: Final = "interpolation"
OPACITY: Final = "segmentationPatternOpacity"
LAYERS: Final = "layers"
_EDITED: Final = (POSITION, ZOOM, INTERPOLATION, OPACITY, LAYERS)


@dataclass
class ViewConfigForm:
    position: list[Field]
    zoom: Field
    opacity: Field
    interpolation: bool
    layers_json: str
    # Keys of the stored configuration this form keeps without showing them.
    kept: list[str] = field(default_factory=list)
    position_errors: list[str] = field(default_factory=list)
    interpolation_errors: list[str] = field(default_factory=list)
    layer_problems: list[Problem] = field(default_factory=list)
    json_error: JsonSyntaxError | None = None
    other: list[Problem] = field(default_factory=list)

    @property
    def error_count(self) -> int:
        fields = [*self.position, self.zoom, self.opacity]
        return (
            sum(len(f.errors) for f in fields)
            + len(self.position_errors)
            + len(self.interpolation_errors)
            + len(self.layer_problems)
            + (1 if self.json_error else 0)
            + len(self.other)
        )

    def attach(self, problems: list[Problem]) -> None:
        for problem in problems:
            path = problem.get("path", "")
            message = problem.get("message", "")
            top = path.split(".", 1)[0].split("[", 1)[0]
            if top == POSITION:
                self.position_errors.append(message)
            elif top == ZOOM:
                self.zoom.errors.append(message)
            elif top == OPACITY:
                self.opacity.errors.append(message)
            elif top == INTERPOLATION:
                self.interpolation_errors.append(message)
            elif top == LAYERS:
                self.layer_problems.append(problem)
            else:
                self.other.append(problem)


def _config(value: Any) -> dict[str, Any]:
    return dict(value) if isinstance(value, Mapping) else {}


def view_form_from_config(value: Any) -> ViewConfigForm:
    """The form showing a stored default view configuration (None: empty form)."""
    config = _config(value)
    position = config.get(POSITION)
    corner = position if isinstance(position, list) and len(position) == 3 else []
    layers = config.get(LAYERS)
    return ViewConfigForm(
        position=[
            Field(
                f"position_{axis}",
                axis,
                show_number(corner[k]) if corner else "",
                inputmode="numeric",
            )
            for k, axis in enumerate(AXES)
        ],
        zoom=Field(
            "zoom", "Zoom", show_number(config.get(ZOOM)), placeholder="default"
        ),
        opacity=Field(
            "opacity",
            "Segmentation pattern opacity",
            show_number(config.get(OPACITY)),
            inputmode="numeric",
            placeholder="default",
        ),
        interpolation=config.get(INTERPOLATION) is True,
        layers_json=pretty_json(layers) if layers is not None else "",
        kept=sorted(key for key in config if key not in _EDITED),
    )


def view_form_from_post(value: Any, post: Mapping[str, Any]) -> ViewConfigForm:
    form = view_form_from_config(value)
    for f in [*form.position, form.zoom, form.opacity]:
        typed = post.get(f.name)
        f.value = typed[:1000] if isinstance(typed, str) else ""
    form.interpolation = post.get(INTERPOLATION) == "on"
    typed_json = post.get("layers_json")
    form.layers_json = typed_json if isinstance(typed_json, str) else ""
    return form


def build_view_config(value: Any, form: ViewConfigForm) -> dict[str, Any] | None:
    """The configuration to validate and store: None when nothing is set.

    A layer JSON that does not parse sets `form.json_error` and keeps the stored
    layers, so the other fields are still checked.
    """
    config = _config(value)
    typed = [f.value.strip() for f in form.position]
    if any(typed):
        config[POSITION] = [parse_number(text) for text in typed]
    else:
        config.pop(POSITION, None)
    for key, f in ((ZOOM, form.zoom), (OPACITY, form.opacity)):
        if f.value.strip():
            config[key] = parse_number(f.value)
        else:
            config.pop(key, None)
    if form.interpolation:
        config[INTERPOLATION] = True
    elif INTERPOLATION in config:
        config[INTERPOLATION] = False
    if form.layers_json.strip():
        layers, error = parse_json_text(form.layers_json)
        if error is None:
            config[LAYERS] = layers
        else:
            form.json_error = error
    else:
        config.pop(LAYERS, None)
    return config or None
