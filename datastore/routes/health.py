"""Liveness: cheap, no token, no disk access."""

from __future__ import annotations

from aiohttp import web

from datastore.state import INBOX, SETTINGS

routes = web.RouteTableDef()


@routes.get("/data/health")
async def health(request: web.Request) -> web.Response:
    """`{"ok": true, "name": ..., "datasets": n}` from the last scan."""
    return web.json_response(
        {
            "ok": True,
            "name": request.app[SETTINGS].name,
            "datasets": len(request.app[INBOX].datasets),
        }
    )
