"""Long-running tasks of a node: registration, heartbeat, reports and inbox scans.

None of them may stop the node from starting: when the metaserver is down the
node keeps serving (cached) requests and retries with backoff, logging each change
between reachable and unreachable once rather than on every attempt.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import random
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor

from datastore.inbox import Inbox
from datastore.metaserver_client import (
    MetaserverClient,
    MetaserverError,
    MetaserverRejected,
)

logger = logging.getLogger(__name__)

_MAX_BACKOFF = 60.0


def _backoff(attempt: int, first: float = 1.0) -> float:
    delay = min(_MAX_BACKOFF, first * 2.0 ** min(attempt, 10))
    return float(delay * (0.75 + random.random() / 2))  # noqa: S311 (jitter, not crypto)


class MetaserverLink:
    """This node's standing with the metaserver: registration and reports."""

    def __init__(
        self, client: MetaserverClient, inbox: Inbox, heartbeat_interval: float
    ) -> None:
        self.client = client
        self._inbox = inbox
        self._heartbeat_interval = heartbeat_interval
        self.registered = asyncio.Event()
        self._report_wanted = asyncio.Event()
        self._reachable: bool | None = None
        self.reports_sent = 0

    def is_metaserver_token(self, token: str | None) -> bool:
        """True for the secret the metaserver got at our last registration."""
        expected = self.client.metaserver_token
        if not token or not expected:
            return False
        return hmac.compare_digest(token.encode(), expected.encode())

    def request_report(self) -> None:
        """Send the current scan result to the metaserver soon (latest one wins)."""
        self._report_wanted.set()

    def _note_reachable(self, reachable: bool, error: Exception | None = None) -> None:
        """Log changes between reachable and not (not every failed attempt)."""
        if reachable and self._reachable is not True:
            logger.info("metaserver reachable at %s", self.client.base_url)
        elif not reachable and self._reachable is not False:
            if isinstance(error, MetaserverRejected):
                # Usually a wrong VOXELHUB_DATASTORE_KEY or an unknown node name.
                logger.error("metaserver refuses this datastore, will retry: %s", error)
            else:
                logger.warning("metaserver not reachable, will retry: %s", error)
        self._reachable = reachable

    async def _register_until_done(self) -> None:
        attempt = 0
        while True:
            try:
                registration = await self.client.register()
            except MetaserverError as e:
                self._note_reachable(False, e)
                await asyncio.sleep(_backoff(attempt))
                attempt += 1
                continue
            self._note_reachable(True)
            logger.info("registered as datastore %r", registration.name)
            self.registered.set()
            self.request_report()  # the metaserver may have missed earlier scans
            return

    async def run_registration_and_heartbeat(self) -> None:
        """Register (retrying forever), then heartbeat; re-register when forgotten."""
        await self._register_until_done()
        while True:
            await asyncio.sleep(self._heartbeat_interval)
            try:
                await self.client.heartbeat()
            except MetaserverRejected as e:
                # Refused even after the client registered once more: start over.
                logger.warning("heartbeat refused (%s); registering again", e)
                self.registered.clear()
                await self._register_until_done()
            except MetaserverError as e:
                self._note_reachable(False, e)
            else:
                self._note_reachable(True)

    async def run_reporter(self) -> None:
        """Send the latest scan result whenever one is wanted and we are registered."""
        attempt = 0
        while True:
            await self._report_wanted.wait()
            await self.registered.wait()
            self._report_wanted.clear()
            try:
                result = await self.client.report_datasets(self._inbox.reports())
            except MetaserverRejected as e:
                # The same report would be refused again; the next scan sends anew.
                logger.error("metaserver refused the dataset report: %s", e)
                continue
            except MetaserverError as e:
                self._note_reachable(False, e)
                await asyncio.sleep(_backoff(attempt, first=2.0))
                attempt += 1
                self._report_wanted.set()
                continue
            attempt = 0
            self.reports_sent += 1
            self._note_reachable(True)
            if result.ignored:
                logger.warning(
                    "metaserver ignored datasets of unknown organizations: %s",
                    ", ".join(result.ignored),
                )
            logger.info(
                "reported datasets: %d created, %d updated, %d unusable",
                result.created,
                result.updated,
                result.unusable,
            )


async def run_scans(
    inbox: Inbox,
    executor: Executor,
    link: MetaserverLink,
    interval: float,
    housekeeping: Callable[[], Awaitable[None]] | None = None,
) -> None:
    """Scan every `interval` seconds and report after each successful scan; then
    `housekeeping` (orphaned uploads)."""
    while True:
        await asyncio.sleep(interval)
        if housekeeping is not None:
            try:
                await housekeeping()
            except Exception:
                logger.exception("housekeeping failed")
        try:
            await inbox.scan(executor, full=False)
        except Exception:
            logger.exception("inbox scan failed")
            continue
        link.request_report()


async def supervised(name: str, run: Callable[[], Awaitable[None]]) -> None:
    """Run `run()`; if it crashes with a bug, log it and start it again."""
    while True:
        try:
            await run()
        except Exception:
            logger.exception("background task %s crashed; restarting in 5 s", name)
            await asyncio.sleep(5)
        else:
            return
