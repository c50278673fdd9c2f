"""The datastore's side of the wire contract in `shared.protocol`.

The datastore key travels only in `DATASTORE_KEY_HEADER`, never in a URL, and
every call has a timeout so a stalled metaserver cannot pile up requests. Every
call after registration is also signed (`shared.tokens`) with the metaserver token
the registration answered; the client holds that token, registers on demand when
it has none, and registers again once when a signed call is refused (another
registration may have rotated the token).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import aiohttp

from datastore.config import DatastoreSettings
from datastore.job_reporter import save_token
from shared.protocol import (
    DATASTORE_KEY_HEADER,
    HEARTBEAT_PATH,
    MAX_CLOCK_SKEW_SECONDS,
    REGISTER_PATH,
    REPORT_PATH,
    VALIDATE_ACCESS_PATH,
    AccessMode,
    DatasetStatus,
)
from shared.tokens import sign_request

logger = logging.getLogger(__name__)

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=15, connect=5)
# Access checks sit on the hot path of every uncached data request.
ACCESS_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=2)


def _our_version() -> str:
    try:
        return version("voxelhub")
    except PackageNotFoundError:
        return "unknown"


class MetaserverError(Exception):
    """A call to the metaserver did not give a usable answer."""


class MetaserverUnavailable(MetaserverError):
    """Connection refused, timeout, or a 5xx: worth retrying later."""


class MetaserverRejected(MetaserverError):
    """A 4xx answer, e.g. a wrong datastore key: retrying the same call won't help."""

    def __init__(self, message: str, status: int) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True, slots=True)
class Registration:
    name: str
    metaserver_token: str


@dataclass(frozen=True, slots=True)
class AccessAnswer:
    allowed: bool
    cache_seconds: int


@dataclass(frozen=True, slots=True)
class DatasetReport:
    """One dataset as found on disk, in the shape the report endpoint expects."""

    organization: str
    name: str
    status: DatasetStatus
    reason: str
    datasource: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "organization": self.organization,
            "name": self.name,
            "status": self.status.value,
            "reason": self.reason,
            "datasource": self.datasource,
        }


@dataclass(frozen=True, slots=True)
class ReportResult:
    created: int
    updated: int
    unusable: int
    ignored: tuple[str, ...]


class MetaserverClient:
    """Calls from this datastore to the metaserver, over one shared session."""

    # A refused signed call re-registers at most this often: a cause that
    # registering does not cure (a skewed clock) must not rotate the token on
    # every access check.
    MIN_REREGISTER_SECONDS = 5.0

    def __init__(
        self, session: aiohttp.ClientSession, settings: DatastoreSettings
    ) -> None:
        self._session = session
        self._settings = settings
        self._base = settings.metaserver_url.rstrip("/")
        self._name = quote(settings.name, safe="")
        self._metaserver_token: str | None = None
        self._registered_at = -float("inf")
        # One registration at a time: each one rotates the token.
        self._registering = asyncio.Lock()

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def metaserver_token(self) -> str | None:
        """The secret of the last registration: signs our calls, proves theirs."""
        return self._metaserver_token

    async def _post(
        self,
        path_template: str,
        body: dict[str, Any],
        client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        """A signed call; registers first if needed, and once more if refused."""
        # Serialized once: the signature covers exactly the bytes sent.
        raw = json.dumps(body).encode()
        token = self._metaserver_token or await self._renew_token(None, None)
        try:
            return await self._send(path_template, raw, client_timeout, token)
        except MetaserverRejected as e:
            if e.status not in (401, 403):
                raise
            logger.warning("metaserver refused a signed call (%s); registering", e)
            token = await self._renew_token(token, e)
        return await self._send(path_template, raw, client_timeout, token)

    async def _send(
        self,
        path_template: str,
        raw: bytes,
        client_timeout: aiohttp.ClientTimeout,
        token: str | None,
    ) -> dict[str, Any]:
        """POST `raw`; signed with `token` unless it is None (registration)."""
        path = path_template.format(name=self._name)
        headers = {
            DATASTORE_KEY_HEADER: self._settings.key,
            "Content-Type": "application/json",
        }
        if token is not None:
            headers |= sign_request(
                token, "POST", path, raw, timestamp=int(time.time())
            )
        try:
            async with self._session.post(
                self._base + path, data=raw, headers=headers, timeout=client_timeout
            ) as response:
                if response.status >= 500:
                    raise MetaserverUnavailable(
                        f"metaserver answered {response.status} to {path_template}"
                    )
                if response.status >= 400:
                    if token is not None and response.status in (401, 403):
                        _warn_about_clock_skew(response)
                    raise MetaserverRejected(
                        f"metaserver refused {path_template} with {response.status}: "
                        f"{await _error_text(response)}",
                        response.status,
                    )
                data = await response.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError) as e:
            raise MetaserverUnavailable(
                f"metaserver unreachable at {self._base}: {type(e).__name__} {e}"
            ) from None
        except ValueError as e:  # body is not JSON
            raise MetaserverUnavailable(f"metaserver sent junk: {e}") from None
        if not isinstance(data, dict):
            raise MetaserverUnavailable("metaserver answer is not a JSON object")
        return data

    async def _renew_token(
        self, stale: str | None, refused: MetaserverRejected | None
    ) -> str:
        """A token newer than `stale`: registers unless another call just did."""
        async with self._registering:
            current = self._metaserver_token
            if current is not None and current != stale:
                return current
            recently = time.monotonic() - self._registered_at
            if refused is not None and recently < self.MIN_REREGISTER_SECONDS:
                raise refused
            registration = await self._register_locked()
            return registration.metaserver_token

    async def register(self) -> Registration:
        """Announce this node; the answer carries the token the metaserver will use."""
        async with self._registering:
            return await self._register_locked()

    async def _register_locked(self) -> Registration:
        # The key alone: before this answer there is no shared secret to sign with.
        body = {
            "url": self._settings.url,
            "public_url": self._settings.public_url,
            "allows_upload": self._settings.allows_upload,
            "version": _our_version(),
        }
        data = await self._send(
            REGISTER_PATH, json.dumps(body).encode(), DEFAULT_TIMEOUT, None
        )
        token = data.get("metaserver_token")
        if not isinstance(token, str) or not token:
            raise MetaserverUnavailable("registration answer lacks metaserver_token")
        self._metaserver_token = token
        self._registered_at = time.monotonic()
        # Worker processes sign their job reports with it (datastore.job_reporter).
        await asyncio.to_thread(save_token, self._settings, token)
        return Registration(
            name=str(data.get("name", self._settings.name)), metaserver_token=token
        )

    async def heartbeat(self) -> None:
        await self._post(HEARTBEAT_PATH, {})

    async def report_datasets(self, reports: list[DatasetReport]) -> ReportResult:
        """Send the complete list of datasets found on disk in one scan."""
        data = await self._post(
            REPORT_PATH, {"datasets": [r.to_json() for r in reports]}
        )
        ignored = data.get("ignored") or []
        return ReportResult(
            created=int(data.get("created", 0)),
            updated=int(data.get("updated", 0)),
            unusable=int(data.get("unusable", 0)),
            ignored=tuple(str(i) for i in ignored),
        )

    async def validate_access(
        self,
        token: str | None,
        organization: str,
        dataset: str | None,
        mode: AccessMode,
    ) -> AccessAnswer:
        data = await self._post(
            VALIDATE_ACCESS_PATH,
            {
                "token": token,
                "organization": organization,
                "dataset": dataset,
                "mode": mode.value,
            },
            client_timeout=ACCESS_TIMEOUT,
        )
        allowed = data.get("allowed")
        if not isinstance(allowed, bool):
            raise MetaserverUnavailable("validate-access answer lacks 'allowed'")
        cache_seconds = data.get("cache_seconds", 0)
        if isinstance(cache_seconds, bool) or not isinstance(
            cache_seconds, (int, float)
        ):
            cache_seconds = 0
        return AccessAnswer(allowed=allowed, cache_seconds=max(0, int(cache_seconds)))


def _warn_about_clock_skew(response: aiohttp.ClientResponse) -> None:
    """Signed calls fail silently on a skewed clock; the answer's Date tells."""
    try:
        their_time = parsedate_to_datetime(response.headers["Date"]).timestamp()
    except (KeyError, TypeError, ValueError):
        return
    skew = time.time() - their_time
    if abs(skew) > MAX_CLOCK_SKEW_SECONDS / 2:
        logger.warning(
            "this node's clock is %+.0f s off the metaserver's; signed calls need "
            "less than %d s (use NTP)",
            skew,
            MAX_CLOCK_SKEW_SECONDS,
        )


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]
    return response.reason or ""
