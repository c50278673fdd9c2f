"""Run a datastore node as a process: `python -m datastore` or the CLI."""

from __future__ import annotations

import logging

from aiohttp import web

from datastore.access import RedactingAccessLogger
from datastore.app import create_app
from datastore.config import DatastoreSettings

logger = logging.getLogger(__name__)

# Seconds open requests get to finish after SIGINT/SIGTERM.
SHUTDOWN_TIMEOUT = 30.0


def run(settings: DatastoreSettings) -> None:
    """Serve until SIGINT or SIGTERM, then finish open requests and stop cleanly."""
    logger.info(
        "datastore %r serving %s on %s:%d",
        settings.name,
        settings.binary_data,
        settings.bind_host,
        settings.bind_port,
    )
    web.run_app(
        create_app(settings),
        host=settings.bind_host,
        port=settings.bind_port,
        access_log_class=RedactingAccessLogger,
        shutdown_timeout=SHUTDOWN_TIMEOUT,
        handle_signals=True,
        print=None,
    )
