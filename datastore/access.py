"""Who may read what: the metaserver decides, the datastore caches a yes briefly.

A "yes" is cached for min(the answer's `cache_seconds`, the node's setting) seconds,
which bounds how long a revoked token keeps working. A "no" is never cached, so a
freshly granted permission works at once. When the metaserver cannot be reached
only a still-valid cached yes lets a request through (RELIABILITY 21).

Tokens are never logged: `RedactingAccessLogger` replaces them in access-log lines.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from datastore.errors import Forbidden, ServiceUnavailable
from datastore.metaserver_client import (
    AccessAnswer,
    MetaserverClient,
    MetaserverRejected,
    MetaserverUnavailable,
)
from shared.protocol import USER_TOKEN_HEADER, AccessMode

logger = logging.getLogger(__name__)

_MAX_CACHE_ENTRIES = 10_000
_WARNING_INTERVAL = 30.0


def request_token(request: web.BaseRequest) -> str | None:
    """The caller's token from `?token=` (or WEBKNOSSOS's `?sharingToken=`) or the
    `X-Auth-Token` header, if any."""
    token = (
        request.query.get("token")
        or request.query.get("sharingToken")
        or request.headers.get(USER_TOKEN_HEADER)
    )
    return token or None


@dataclass(frozen=True, slots=True)
class _Key:
    # A digest, so the cache does not keep raw tokens around in memory dumps.
    token_digest: bytes
    organization: str
    dataset: str | None
    mode: AccessMode


def _key(
    token: str | None, organization: str, dataset: str | None, mode: AccessMode
) -> _Key:
    digest = b"" if token is None else hashlib.sha256(token.encode()).digest()
    return _Key(digest, organization, dataset, mode)


class AccessChecker:
    """Asks validate-access, caches yes answers, shares concurrent identical asks."""

    def __init__(
        self,
        client: MetaserverClient,
        max_cache_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._max_cache_seconds = max_cache_seconds
        self._clock = clock
        self._allowed_until: dict[_Key, float] = {}
        self._inflight: dict[_Key, asyncio.Task[AccessAnswer]] = {}
        self._last_warning = -float("inf")

    def clear(self) -> None:
        self._allowed_until.clear()

    def _cached_yes(self, key: _Key) -> bool:
        until = self._allowed_until.get(key)
        if until is None:
            return False
        if self._clock() < until:
            return True
        del self._allowed_until[key]
        return False

    def _remember_yes(self, key: _Key, seconds: float) -> None:
        if seconds <= 0:
            return
        if len(self._allowed_until) >= _MAX_CACHE_ENTRIES:
            now = self._clock()
            for stale in [k for k, t in self._allowed_until.items() if t <= now]:
                del self._allowed_until[stale]
            if len(self._allowed_until) >= _MAX_CACHE_ENTRIES:
                self._allowed_until.clear()
        self._allowed_until[key] = self._clock() + seconds

    async def _ask(self, key: _Key, token: str | None) -> AccessAnswer:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.create_task(
                self._client.validate_access(
                    token, key.organization, key.dataset, key.mode
                )
            )
            self._inflight[key] = task
            task.add_done_callback(lambda _t: self._inflight.pop(key, None))
        # Shielded: one caller hanging up must not cancel the answer for the others.
        return await asyncio.shield(task)

    async def is_allowed(
        self,
        token: str | None,
        organization: str,
        dataset: str | None,
        mode: AccessMode,
    ) -> bool:
        """True if allowed; raises ServiceUnavailable if nobody can tell."""
        key = _key(token, organization, dataset, mode)
        if self._cached_yes(key):
            return True
        try:
            answer = await self._ask(key, token)
        except MetaserverUnavailable as e:
            # Once per interval: an outage must not flood the log line by request.
            if self._clock() - self._last_warning > _WARNING_INTERVAL:
                self._last_warning = self._clock()
                logger.warning("access checks failing: %s", e)
            raise ServiceUnavailable("metaserver unreachable") from None
        except MetaserverRejected as e:
            # Our key was refused: a configuration problem, not the caller's fault.
            logger.error("access check rejected: %s", e)
            raise ServiceUnavailable("metaserver refused this datastore") from None
        if answer.allowed:
            self._remember_yes(
                key, min(float(answer.cache_seconds), self._max_cache_seconds)
            )
        return answer.allowed

    async def check(
        self,
        token: str | None,
        organization: str,
        dataset: str | None,
        mode: AccessMode,
    ) -> None:
        """Raise Forbidden unless the token may use the dataset in this mode."""
        if not await self.is_allowed(token, organization, dataset, mode):
            what = f"{organization}/{dataset}" if dataset else organization
            hint = "" if token else " (no token given)"
            raise Forbidden(f"access denied{hint}", {"resource": what, "mode": mode})


# `token=`, `sharingToken=`, ... in a query string or a Referer URL.
_TOKEN_PARAM = re.compile(r"((?:^|[?&;])[^=&;?#]*token=)[^&;#]*", re.IGNORECASE)


def redact_tokens(text: str) -> str:
    """Replace the value of every `...token=` query parameter with `***`."""
    return _TOKEN_PARAM.sub(r"\1***", text)


class RedactingAccessLogger(AbstractAccessLogger):
    """aiohttp access log without secrets: tokens in URLs become `***`."""

    def log(
        self, request: web.BaseRequest, response: web.StreamResponse, time: float
    ) -> None:
        path = request.raw_path
        query_at = path.find("?")
        if query_at >= 0:
            path = path[:query_at] + redact_tokens(path[query_at:])
        referer = redact_tokens(request.headers.get("Referer", "-"))
        self.logger.info(
            '%s "%s %s HTTP/%d.%d" %d %s %.3fs "%s" "%s"',
            request.remote or "-",
            request.method,
            path,
            request.version.major,
            request.version.minor,
            response.status,
            response.body_length,
            time,
            referer,
            request.headers.get("User-Agent", "-"),
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)
