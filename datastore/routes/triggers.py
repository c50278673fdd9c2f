"""`POST /data/triggers/checkInbox`: scan binaryData now.

Allowed for the metaserver (its token from our last registration, in
`METASERVER_TOKEN_HEADER`) and for user tokens that may `administrate` an
organization. With `?organization=<org>` the token must administrate that
organization. Without it, the token must administrate at least one organization
that has a folder in binaryData (asked one by one in name order); with no
organization folder at all, only the metaserver may trigger a scan.
"""

from __future__ import annotations

import logging

from aiohttp import web

from datastore.access import request_token
from datastore.errors import Forbidden
from datastore.routes.common import check_name
from datastore.state import ACCESS, EXECUTOR, INBOX, LINK
from shared.protocol import METASERVER_TOKEN_HEADER, AccessMode

logger = logging.getLogger(__name__)

routes = web.RouteTableDef()


async def _may_trigger_scan(request: web.Request) -> bool:
    if request.app[LINK].is_metaserver_token(
        request.headers.get(METASERVER_TOKEN_HEADER)
    ):
        return True
    access = request.app[ACCESS]
    token = request_token(request)
    organization = request.query.get("organization")
    if organization is not None:
        candidates = [check_name(organization, "organization")]
    else:
        candidates = _organization_folders(request)
    for candidate in candidates:
        if await access.is_allowed(token, candidate, None, AccessMode.ADMINISTRATE):
            return True
    return False


def _organization_folders(request: web.Request) -> list[str]:
    # Organizations of the last scan: listing binaryData again would block.
    return request.app[INBOX].organizations()


@routes.post("/data/triggers/checkInbox")
async def check_inbox(request: web.Request) -> web.Response:
    """Scan now; answer the counts per status; report to the metaserver afterwards."""
    if not await _may_trigger_scan(request):
        raise Forbidden("access denied: administrate permission required")
    counts = await request.app[INBOX].scan(request.app[EXECUTOR])
    # Reported in the background: the metaserver may be the caller, waiting on us.
    request.app[LINK].request_report()
    return web.json_response(counts.to_json())
