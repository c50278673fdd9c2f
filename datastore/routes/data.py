"""Voxel data: cuboids (GET), WEBKNOSSOS bucket batches (POST), thumbnails.

Bytes on the wire are little-endian, channel fastest, then x, y, z (the
`array(c, x, y, z).tobytes(order="F")` layout). Positions are mag-1 voxels; sizes
are voxels of the requested mag.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from aiohttp import web

from datastore.errors import BadRequest, NotFound, PayloadTooLarge
from datastore.reading import BucketRequest
from datastore.routes.common import (
    MAX_COORDINATE,
    active_dataset,
    get_layer,
    get_mag,
    int_param,
    optional_int_param,
    path_names,
    require_access,
)
from datastore.routes.responses import binary_response
from datastore.state import READER, SETTINGS, THUMBNAILS
from datastore.thumbnail_files import load_thumbnail, store_thumbnail, thumbnail_path
from datastore.thumbnails import (
    DEFAULT_SIZE,
    MAX_SIZE,
    ThumbnailRequest,
    render_thumbnail,
)
from shared.geometry import GeometryError, Mag, Vec3
from shared.protocol import MISSING_BUCKETS_HEADER

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()

DATA_PATH = "/data/datasets/{org}/{dataset}/layers/{layer}/data"
MAX_CUBE_SIZE = 256


def _check_volume(request: web.Request, voxels: int) -> None:
    limit = request.app[SETTINGS].max_request_voxels
    if voxels > limit:
        raise PayloadTooLarge(
            f"request covers {voxels} voxels, more than the limit of {limit}",
            {"voxels": voxels, "max_request_voxels": limit},
        )


@routes.get(DATA_PATH)
async def get_data(request: web.Request) -> web.StreamResponse:
    """A cuboid of raw voxels at one mag."""
    organization, dataset_name, layer_name = path_names(request)
    await require_access(request, organization, dataset_name)
    dataset = active_dataset(request, organization, dataset_name)
    assert dataset.datasource is not None  # noqa: S101 (active_dataset ensures it)
    layer = get_layer(dataset.datasource, str(layer_name))
    mag = get_mag(layer, request.query.get("mag"))
    position = Vec3(*(int_param(request, axis) for axis in ("x", "y", "z")))
    size = Vec3(
        *(int_param(request, p, minimum=1) for p in ("width", "height", "depth"))
    )
    _check_volume(request, size.prod())
    body, shape, dtype = await request.app[READER].read_region(
        dataset, layer, mag, position, size
    )
    return await binary_response(
        request, [body], {"X-Voxel-Dtype": dtype, "X-Voxel-Shape": shape}
    )


def _bucket_int(
    entry: dict[str, Any], index: int, key: str, default: int | None
) -> int:
    value = entry.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise BadRequest(f"[{index}].{key}: must be an integer, got {value!r}")
    return value


def parse_bucket_requests(body: Any) -> list[BucketRequest]:
    """Validate the JSON body of a bucket request; 400 naming the entry."""
    if not isinstance(body, list):
        raise BadRequest("body must be a JSON list of bucket requests")
    requests: list[BucketRequest] = []
    for index, entry in enumerate(body):
        if not isinstance(entry, dict):
            raise BadRequest(f"[{index}]: must be an object")
        if entry.get("fourBit"):
            raise BadRequest("fourBit is not supported", {"index": index})
        raw_position = entry.get("position")
        if raw_position is None:
            raise BadRequest(f"[{index}].position: required")
        try:
            position = Vec3.of(raw_position)
        except GeometryError as e:
            raise BadRequest(f"[{index}].position: {e}") from None
        if any(p < 0 or p > MAX_COORDINATE for p in position):
            raise BadRequest(
                f"[{index}].position: each coordinate must be in 0..{MAX_COORDINATE}"
            )
        try:
            mag = Mag.parse(entry.get("mag", 1))
        except GeometryError as e:
            raise BadRequest(f"[{index}].mag: {e}") from None
        cube_size = _bucket_int(entry, index, "cubeSize", 32)
        if not 1 <= cube_size <= MAX_CUBE_SIZE:
            raise BadRequest(
                f"[{index}].cubeSize: must be between 1 and {MAX_CUBE_SIZE}, "
                f"got {cube_size}"
            )
        requests.append(BucketRequest(position, mag, cube_size))
    return requests


@routes.post(DATA_PATH)
async def post_buckets(request: web.Request) -> web.StreamResponse:
    """Buckets as WEBKNOSSOS requests them; missing ones named in a header."""
    organization, dataset_name, layer_name = path_names(request)
    await require_access(request, organization, dataset_name)
    dataset = active_dataset(request, organization, dataset_name)
    assert dataset.datasource is not None  # noqa: S101 (active_dataset ensures it)
    layer = get_layer(dataset.datasource, str(layer_name))
    try:
        body = await request.json()
    except ValueError:
        raise BadRequest("body must be a JSON list of bucket requests") from None
    buckets = parse_bucket_requests(body)
    _check_volume(request, sum(b.voxels for b in buckets))
    settings = request.app[SETTINGS]
    parts, missing = await request.app[READER].read_buckets(
        dataset, layer, buckets, parallelism=settings.read_threads
    )
    return await binary_response(
        request,
        parts,
        {
            MISSING_BUCKETS_HEADER: json.dumps(missing),
            "X-Voxel-Dtype": layer.dtype.name,
        },
    )


@routes.get("/data/datasets/{org}/{dataset}/layers/{layer}/thumbnail.jpg")
async def get_thumbnail(request: web.Request) -> web.Response:
    """A JPEG of one z plane, from the coarsest mag with enough resolution."""
    organization, dataset_name, layer_name = path_names(request)
    await require_access(request, organization, dataset_name)
    dataset = active_dataset(request, organization, dataset_name)
    assert dataset.datasource is not None  # noqa: S101 (active_dataset ensures it)
    layer = get_layer(dataset.datasource, str(layer_name))
    if not layer.mags:
        raise NotFound("layer has no mags", {"layer": layer.name})
    thumbnail = ThumbnailRequest(
        width=int_param(
            request, "width", default=DEFAULT_SIZE, minimum=1, maximum=MAX_SIZE
        ),
        height=int_param(
            request, "height", default=DEFAULT_SIZE, minimum=1, maximum=MAX_SIZE
        ),
        x=optional_int_param(request, "x"),
        y=optional_int_param(request, "y"),
        z=optional_int_param(request, "z"),
    )
    cache = request.app[THUMBNAILS]
    key = (organization, dataset_name, layer.name, thumbnail)
    jpeg = cache.get(key)
    if jpeg is None:
        reader = request.app[READER]
        kept = thumbnail_path(
            request.app[SETTINGS].binary_data,
            organization,
            dataset_name,
            layer.name,
            dataset.mtime_ns,
            thumbnail,
        )

        def render() -> bytes:
            found = load_thumbnail(kept) if kept is not None else None
            if found is not None:
                return found
            rendered = render_thumbnail(
                layer,
                thumbnail,
                lambda mag, box: reader.read_blocking(dataset, layer, mag, box),
            )
            if kept is not None:
                store_thumbnail(kept, rendered)
            return rendered

        jpeg = await reader.run(dataset, render)
        cache.put(key, jpeg)
    return web.Response(
        body=jpeg,
        content_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=60"},
    )
