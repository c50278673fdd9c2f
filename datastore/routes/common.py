"""Request parsing shared by the route modules: names, integers, datasets, access.

Names from the URL are checked against `NAME_PATTERN` before anything touches the
disk, so `..`, encoded slashes or backslashes can never reach a path.
"""

from __future__ import annotations

import re

from aiohttp import web

from datastore.access import request_token
from datastore.errors import BadRequest, Conflict, NotFound
from datastore.inbox import ScannedDataset
from datastore.state import ACCESS, INBOX
from shared.datasource import DatasourceProperties, LayerProperties, MagProperties
from shared.geometry import GeometryError, Mag
from shared.protocol import NAME_PATTERN, AccessMode, DatasetStatus

NAME = re.compile(NAME_PATTERN)
_INTEGER = re.compile(r"[+-]?\d{1,19}")
# Far beyond any real dataset, small enough that products of three stay exact
# and cheap to compare.
MAX_COORDINATE = 2**31 - 1


def _shorten(value: str) -> str:
    return value if len(value) <= 80 else value[:77] + "..."


def check_name(value: str, what: str) -> str:
    """`value` if it is a valid technical name, else 400 naming `what`."""
    if not NAME.fullmatch(value):
        raise BadRequest(
            f"invalid {what} name",
            {"name": _shorten(value), "pattern": NAME_PATTERN},
        )
    return value


def path_names(request: web.Request) -> tuple[str, str, str | None]:
    """(organization, dataset, layer or None) from the URL, all validated."""
    info = request.match_info
    organization = check_name(info["org"], "organization")
    dataset = check_name(info["dataset"], "dataset")
    layer = info.get("layer")
    return organization, dataset, None if layer is None else check_name(layer, "layer")


def int_param(
    request: web.Request,
    name: str,
    *,
    default: int | None = None,
    minimum: int = 0,
    maximum: int = MAX_COORDINATE,
) -> int:
    """A query parameter as int in [minimum, maximum]; 400 naming it otherwise."""
    raw = request.query.get(name)
    if raw is None or raw == "":
        if default is None:
            raise BadRequest(f"{name}: required query parameter is missing")
        return default
    if not _INTEGER.fullmatch(raw.strip()):
        raise BadRequest(f"{name}: must be an integer, got {_shorten(raw)!r}")
    value = int(raw.strip())
    if value < minimum:
        raise BadRequest(f"{name}: must be >= {minimum}, got {value}")
    if value > maximum:
        raise BadRequest(f"{name}: must be <= {maximum}, got {value}")
    return value


def optional_int_param(
    request: web.Request, name: str, *, maximum: int = MAX_COORDINATE
) -> int | None:
    if request.query.get(name) in (None, ""):
        return None
    return int_param(request, name, maximum=maximum)


async def require_access(
    request: web.Request,
    organization: str,
    dataset: str | None,
    mode: AccessMode = AccessMode.READ,
) -> None:
    """403 unless the caller's token (or no token) may use the dataset."""
    await request.app[ACCESS].check(request_token(request), organization, dataset, mode)


def active_dataset(
    request: web.Request, organization: str, name: str
) -> ScannedDataset:
    """The dataset from the last scan; 404 if unknown, 409 if not active."""
    scanned = request.app[INBOX].get(organization, name)
    if scanned is None:
        raise NotFound("dataset not found", {"dataset": f"{organization}/{name}"})
    if scanned.status != DatasetStatus.ACTIVE or scanned.datasource is None:
        reason = scanned.reason or scanned.status.value.replace("_", " ")
        raise Conflict(f"dataset is not active: {reason}", {"status": scanned.status})
    return scanned


def get_layer(datasource: DatasourceProperties, name: str) -> LayerProperties:
    try:
        return datasource.get_layer(name)
    except KeyError:
        raise NotFound(
            "layer not found",
            {"layer": name, "available": [layer.name for layer in datasource.layers]},
        ) from None


def available_mags(layer: LayerProperties) -> list[str]:
    return [m.mag.to_long_name() for m in sorted(layer.mags, key=lambda m: m.mag)]


def get_mag(layer: LayerProperties, raw: str | None) -> MagProperties:
    """The layer's mag for `?mag=` (`2-2-1`, `2` or `2,2,1`); 400 listing the mags."""
    if raw is None or raw == "":
        raise BadRequest("mag: required query parameter is missing")
    text = raw.strip()
    try:
        mag = Mag.parse(text.split(",") if "," in text else text)
    except GeometryError as e:
        raise BadRequest(f"mag: {e}", {"available": available_mags(layer)}) from None
    try:
        return layer.get_mag(mag)
    except KeyError:
        available = available_mags(layer)
        raise BadRequest(
            f"mag {mag.to_long_name()} not found; available mags: "
            f"{', '.join(available)}",
            {"available": available},
        ) from None
