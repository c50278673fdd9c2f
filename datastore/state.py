"""Typed keys of the application state (`app[KEY]`), shared by app and routes."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from aiohttp import web

from datastore.access import AccessChecker
from datastore.background import MetaserverLink
from datastore.config import DatastoreSettings
from datastore.inbox import Inbox
from datastore.reading import VoxelReader
from datastore.thumbnails import ThumbnailCache
from datastore.worker import Actors

SETTINGS = web.AppKey("settings", DatastoreSettings)
INBOX = web.AppKey("inbox", Inbox)
THUMBNAILS = web.AppKey("thumbnails", ThumbnailCache)
# Set while the app runs (created in cleanup_ctx, where a loop exists):
EXECUTOR = web.AppKey("executor", ThreadPoolExecutor)
READER = web.AppKey("reader", VoxelReader)
LINK = web.AppKey("metaserver_link", MetaserverLink)
ACCESS = web.AppKey("access", AccessChecker)
ACTORS = web.AppKey("actors", Actors)
