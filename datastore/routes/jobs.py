"""Jobs of this node's workers that the metaserver stops.

- `POST /data/jobs/{job_id}/cancel` with `{"organization", "name"}` removes the
  staging folder of conversion job `job_id` into `binaryData/<org>/<name>`:
  queued tasks find it gone and stop, running ones stop at their next write.

Only the metaserver may call it (the secret from our last registration); it has
cancelled the job in its database already, so workers that report later get 409.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from datastore.convert import cancel_conversion
from datastore.errors import BadRequest
from datastore.routes.common import check_name
from datastore.routes.manage import require_metaserver
from datastore.state import EXECUTOR, INBOX

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _names(request: web.Request) -> tuple[str, str]:
    try:
        body: Any = await request.json()
    except ValueError:
        raise BadRequest("the body must be JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    organization, name = body.get("organization"), body.get("name")
    if not isinstance(organization, str) or not isinstance(name, str):
        raise BadRequest("organization and name are required strings")
    # Checked before they become a path: no "..", no "/", no hidden folders.
    return check_name(organization, "organization"), check_name(name, "dataset")


@routes.post(r"/data/jobs/{job_id:\d{1,19}}/cancel")
async def cancel_job(request: web.Request) -> web.Response:
    """Stop a conversion; idempotent (an unknown or finished job changes nothing,
    a dataset already moved into place stays)."""
    require_metaserver(request)
    job_id = request.match_info["job_id"]
    organization, name = await _names(request)
    target = (request.app[INBOX].binary_data / organization / name).absolute()
    await asyncio.get_running_loop().run_in_executor(
        request.app[EXECUTOR], lambda: cancel_conversion(job_id, target)
    )
    logger.info("cancelled conversion job %s into %s/%s", job_id, organization, name)
    return web.json_response({"cancelled": job_id})
