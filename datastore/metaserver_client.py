"""The datastore's side of the wire contract in `shared.protocol`.

The datastore key travels only in `DATASTORE_KEY_HEADER`, never in a URL, and
every call has a timeout so a stalled metaserver cannot pile up requests.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any
from urllib.parse import quote

import aiohttp

from datastore.config import DatastoreSettings
from shared.protocol import (
    DATASTORE_KEY_HEADER,
    HEARTBEAT_PATH,
    REGISTER_PATH,
    REPORT_PATH,
    VALIDATE_ACCESS_PATH,
    AccessMode,
    DatasetStatus,
)

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

    def __init__(
        self, session: aiohttp.ClientSession, settings: DatastoreSettings
    ) -> None:
        self._session = session
        self._settings = settings
        self._base = settings.metaserver_url.rstrip("/")
        self._name = quote(settings.name, safe="")

    @property
    def base_url(self) -> str:
        return self._base

    def _url(self, path_template: str) -> str:
        return self._base + path_template.format(name=self._name)

    async def _post(
        self,
        path_template: str,
        body: dict[str, Any],
        client_timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
    ) -> dict[str, Any]:
        url = self._url(path_template)
        headers = {DATASTORE_KEY_HEADER: self._settings.key}
        try:
            async with self._session.post(
                url, json=body, headers=headers, timeout=client_timeout
            ) as response:
                if response.status >= 500:
                    raise MetaserverUnavailable(
                        f"metaserver answered {response.status} to {path_template}"
                    )
                if response.status >= 400:
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

    async def register(self) -> Registration:
        """Announce this node; the answer carries the token the metaserver will use."""
        data = await self._post(
            REGISTER_PATH,
            {
                "url": self._settings.url,
                "public_url": self._settings.public_url,
                "allows_upload": self._settings.allows_upload,
                "version": _our_version(),
            },
        )
        token = data.get("metaserver_token")
        if not isinstance(token, str) or not token:
            raise MetaserverUnavailable("registration answer lacks metaserver_token")
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


async def _error_text(response: aiohttp.ClientResponse) -> str:
    try:
        data = await response.json(content_type=None)
    except (ValueError, aiohttp.ClientError):
        return response.reason or ""
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return str(data["error"])[:200]
    return response.reason or ""
