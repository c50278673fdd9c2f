"""The datastore application factory: state, lifetimes, middlewares, routes.

Lifetimes live in `cleanup_ctx`, started in order and ended in reverse:
executor + readers, metaserver session, dramatiq worker, background tasks (first
inbox scan at start, registration + heartbeat, reporter, periodic scans).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor

import aiohttp
from aiohttp import web
from aiohttp.typedefs import Handler
from dramatiq.brokers.stub import StubBroker

from datastore.access import AccessChecker
from datastore.background import MetaserverLink, run_scans, supervised
from datastore.config import DatastoreSettings
from datastore.errors import error_middleware
from datastore.inbox import Inbox
from datastore.job_reporter import MetaserverJobReporter
from datastore.metaserver_client import MetaserverClient
from datastore.reading import ReaderCache, VoxelReader
from datastore.routes import jobs as job_routes
from datastore.routes import setup_routes
from datastore.routes.upload import housekeeping, setup_uploads, uploads_ctx
from datastore.state import (
    ACCESS,
    ACTORS,
    EXECUTOR,
    INBOX,
    LINK,
    READER,
    SETTINGS,
    THUMBNAILS,
)
from datastore.thumbnails import ThumbnailCache
from datastore.worker import InProcessWorker, create_broker, declare_actors
from shared.protocol import MISSING_BUCKETS_HEADER, USER_TOKEN_HEADER
from shared.uploads import CHUNK_SHA256_HEADER

logger = logging.getLogger(__name__)

_CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, POST, PUT, DELETE, OPTIONS",
    "Access-Control-Allow-Headers": (
        f"{USER_TOKEN_HEADER}, Content-Type, Content-Range, Range, Authorization, "
        f"{CHUNK_SHA256_HEADER}"
    ),
    "Access-Control-Expose-Headers": (
        f"{MISSING_BUCKETS_HEADER}, X-Voxel-Dtype, X-Voxel-Shape"
    ),
}
_PREFLIGHT_MAX_AGE = "600"


@web.middleware
async def cors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Answer CORS preflights; the headers of other answers come in on_prepare."""
    if (
        request.method == "OPTIONS"
        and "Access-Control-Request-Method" in request.headers
    ):
        return web.Response(
            status=204, headers={"Access-Control-Max-Age": _PREFLIGHT_MAX_AGE}
        )
    return await handler(request)


async def _add_cors_headers(
    _request: web.Request, response: web.StreamResponse
) -> None:
    # A signal rather than the middleware, so errors and streamed answers get them.
    response.headers.update(_CORS_HEADERS)


async def _executor_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    executor = ThreadPoolExecutor(
        max_workers=settings.read_threads, thread_name_prefix="datastore-io"
    )
    reader = VoxelReader(ReaderCache(), executor)
    app[EXECUTOR] = executor
    app[READER] = reader

    def forget(changed: set[tuple[str, str]]) -> None:
        reader.cache.invalidate(changed)
        app[THUMBNAILS].invalidate(changed)

    app[INBOX].on_change(forget)
    yield
    await asyncio.to_thread(reader.cache.close_all)
    await asyncio.to_thread(executor.shutdown, wait=True, cancel_futures=True)


async def _metaserver_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    async with aiohttp.ClientSession() as session:
        client = MetaserverClient(session, settings)
        app[ACCESS] = AccessChecker(client, settings.access_cache_seconds)
        app[LINK] = MetaserverLink(client, app[INBOX], settings.heartbeat_interval)
        yield


async def _worker_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    broker = create_broker(settings.broker_url)
    actors = declare_actors(
        broker,
        settings.queue_name,
        reporter=MetaserverJobReporter(settings),
        binary_data=settings.binary_data,
    )
    app[ACTORS] = actors
    worker: InProcessWorker | None = None
    if isinstance(broker, StubBroker):
        # The embedded default: no broker service, tasks run in this process.
        worker = InProcessWorker(actors, settings.queue_name)
        await asyncio.to_thread(worker.start)
    yield
    if worker is not None:
        await asyncio.to_thread(worker.stop)
    else:
        await asyncio.to_thread(broker.close)


async def _prepare_binary_data(settings: DatastoreSettings) -> None:
    try:
        await asyncio.to_thread(settings.binary_data.mkdir, parents=True, exist_ok=True)
    except OSError as e:
        logger.warning("cannot create binaryData %s: %s", settings.binary_data, e)


async def _background_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    inbox, link, executor = app[INBOX], app[LINK], app[EXECUTOR]
    await _prepare_binary_data(settings)
    # The first scan finishes before we serve, so no existing dataset answers 404.
    try:
        await inbox.scan(executor)
    except Exception:
        logger.exception("first inbox scan failed")
    link.request_report()
    loops = {
        "heartbeat": link.run_registration_and_heartbeat,
        "reporter": link.run_reporter,
        "scans": lambda: run_scans(
            inbox,
            executor,
            link,
            settings.scan_interval,
            housekeeping=lambda: housekeeping(app),
        ),
    }
    tasks = [
        asyncio.create_task(supervised(name, run), name=name)
        for name, run in loops.items()
    ]
    yield
    for task in tasks:
        task.cancel()
    for task in tasks:
        with contextlib.suppress(asyncio.CancelledError):
            await task


def create_app(settings: DatastoreSettings) -> web.Application:
    """A datastore node; run it with `datastore.serve.run` or a test client."""
    app = web.Application(middlewares=[cors_middleware, error_middleware])
    app[SETTINGS] = settings
    app[INBOX] = Inbox(settings.binary_data, settings.allowed_roots)
    app[THUMBNAILS] = ThumbnailCache()
    app.cleanup_ctx.extend(
        [_executor_ctx, _metaserver_ctx, _worker_ctx, uploads_ctx, _background_ctx]
    )
    app.on_response_prepare.append(_add_cors_headers)
    setup_routes(app)
    app.add_routes(job_routes.routes)
    setup_uploads(app)
    return app
