"""HTTP routes of a datastore, one module per route group."""

from __future__ import annotations

from aiohttp import web

from datastore.routes import data, health, manage, samples, triggers


def setup_routes(app: web.Application) -> None:
    app.add_routes(health.routes)
    app.add_routes(data.routes)
    app.add_routes(triggers.routes)
    app.add_routes(manage.routes)
    app.add_routes(samples.routes)
