"""Fixtures for the datastore: sample data, a metaserver peer, running nodes.

`MetaserverPeer` answers the datastore <-> metaserver contract of
`shared.protocol` on a real loopback socket, checking the key and, after
registration, the signature and nonce of every call as the metaserver does. It
records every call and lets a test decide which tokens may do what; the real Django
metaserver is exercised by the end-to-end tests.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from datastore.access import RedactingAccessLogger
from datastore.app import create_app
from datastore.config import DatastoreSettings
from shared.protocol import (
    DATASTORE_KEY_HEADER,
    HEARTBEAT_PATH,
    NONCE_HEADER,
    REGISTER_PATH,
    REPORT_PATH,
    SIGNATURE_HEADERS,
    VALIDATE_ACCESS_PATH,
)
from shared.tokens import verify_request
from tests.datastore.samples import Expected, write_samples

DATASTORE_KEY = "test-datastore-key-0123456789"
NODE_NAME = "testnode"
READER_TOKEN = "reader-token-abc"
ADMIN_TOKEN = "admin-token-xyz"


@dataclass
class RecordedCall:
    kind: str  # register | heartbeat | report | validate-access
    path: str
    query_string: str
    headers: dict[str, str]
    body: Any


@dataclass
class MetaserverPeer:
    """A protocol-faithful metaserver stand-in; tests set `grants` and `public`."""

    key: str = DATASTORE_KEY
    metaserver_token: str = "metaserver-token-for-callbacks"
    # Jobs the metaserver has ended (cancelled): their reports get 409.
    ended_jobs: set[int] = field(default_factory=set)
    cache_seconds: int = 10
    # (token, organization, dataset or None, mode) that validate-access allows.
    grants: set[tuple[str | None, str, str | None, str]] = field(default_factory=set)
    # (organization, dataset) readable by anyone, also without a token.
    public: set[tuple[str, str]] = field(default_factory=set)
    calls: list[RecordedCall] = field(default_factory=list)
    # Why signed calls were refused (401/403), in order; nonces accepted so far.
    refusals: list[str] = field(default_factory=list)
    nonces: set[str] = field(default_factory=set)
    url: str = ""
    server: TestServer | None = None
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def allow(
        self,
        token: str | None,
        organization: str,
        dataset: str | None,
        mode: str = "read",
    ) -> None:
        self.grants.add((token, organization, dataset, mode))

    def revoke(
        self,
        token: str | None,
        organization: str,
        dataset: str | None,
        mode: str = "read",
    ) -> None:
        self.grants.discard((token, organization, dataset, mode))

    def calls_of(self, kind: str) -> list[RecordedCall]:
        return [c for c in self.calls if c.kind == kind]

    async def wait_for(self, kind: str, count: int = 1, within: float = 5.0) -> None:
        """Wait until `count` calls of `kind` arrived (TimeoutError after `within`)."""
        async with asyncio.timeout(within):
            while len(self.calls_of(kind)) < count:
                self._arrived.clear()
                await self._arrived.wait()

    async def _record(self, kind: str, request: web.Request) -> Any:
        raw = await request.read()
        body = json.loads(raw)
        self.calls.append(
            RecordedCall(
                kind,
                request.path,
                request.query_string,
                dict(request.headers),
                body,
            )
        )
        self._arrived.set()
        if request.headers.get(DATASTORE_KEY_HEADER) != self.key:
            raise web.HTTPForbidden(
                text='{"error": "forbidden"}', content_type="application/json"
            )
        if kind != "register":
            self._check_signature(request, raw)
        return body

    def _check_signature(self, request: web.Request, raw: bytes) -> None:
        """Signed with the token of the last registration, fresh, nonce unused."""
        if not all(request.headers.get(name) for name in SIGNATURE_HEADERS):
            self.refusals.append("unsigned")
            raise web.HTTPUnauthorized(
                text='{"error": "unauthorized"}', content_type="application/json"
            )
        reason = verify_request(
            self.metaserver_token,
            request.method,
            request.raw_path,  # exactly the path and query the node sent
            raw,
            request.headers,
            now=time.time(),
        )
        nonce = request.headers[NONCE_HEADER]
        if reason is None and nonce in self.nonces:
            reason = "nonce used before (a replay)"
        if reason is not None:
            self.refusals.append(reason)
            raise web.HTTPForbidden(
                text='{"error": "forbidden"}', content_type="application/json"
            )
        self.nonces.add(nonce)

    def rotate_token(self, token: str) -> None:
        """Another registration happened elsewhere: the node's token is stale."""
        self.metaserver_token = token

    def app(self) -> web.Application:
        async def register(request: web.Request) -> web.Response:
            await self._record("register", request)
            return web.json_response(
                {
                    "name": request.match_info["name"],
                    "metaserver_token": self.metaserver_token,
                }
            )

        async def heartbeat(request: web.Request) -> web.Response:
            await self._record("heartbeat", request)
            return web.json_response({"ok": True})

        async def report(request: web.Request) -> web.Response:
            body = await self._record("report", request)
            return web.json_response(
                {
                    "created": len(body["datasets"]),
                    "updated": 0,
                    "unusable": 0,
                    "ignored": [],
                }
            )

        async def validate_access(request: web.Request) -> web.Response:
            body = await self._record("validate-access", request)
            key = (body["token"], body["organization"], body["dataset"], body["mode"])
            allowed = key in self.grants or (
                body["mode"] == "read"
                and (body["organization"], body["dataset"]) in self.public
            )
            return web.json_response(
                {"allowed": allowed, "cache_seconds": self.cache_seconds}
            )

        async def job_progress(request: web.Request) -> web.Response:
            await self._record("job-progress", request)
            job = int(request.match_info["id"])
            if job in self.ended_jobs:  # cancelled there: workers hear 409
                return web.json_response({"error": "job ended"}, status=409)
            return web.json_response({"id": job})

        app = web.Application()
        app.router.add_post(r"/api/jobs/{id:\d+}/progress", job_progress)
        route = {"name": "{name}"}
        app.router.add_post(REGISTER_PATH.format(**route), register)
        app.router.add_post(HEARTBEAT_PATH.format(**route), heartbeat)
        app.router.add_post(REPORT_PATH.format(**route), report)
        app.router.add_post(VALIDATE_ACCESS_PATH.format(**route), validate_access)
        return app

    async def stop(self) -> None:
        """Make the metaserver unreachable (connections are refused)."""
        assert self.server is not None
        await self.server.close()


@pytest.fixture(scope="session")
def samples(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Expected]:
    """(binaryData with `lab/wkw_ds` and `lab/zarr_ds`, expected mag contents)."""
    root = tmp_path_factory.mktemp("samples")
    expected = write_samples(root)
    return root / "binaryData", expected


@pytest.fixture
def expected(samples: tuple[Path, Expected]) -> Expected:
    return samples[1]


@pytest.fixture
async def metaserver(aiohttp_server: Any) -> MetaserverPeer:
    peer = MetaserverPeer()
    peer.server = await aiohttp_server(peer.app())
    peer.url = str(peer.server.make_url("")).rstrip("/")
    return peer


def make_settings(binary_data: Path, **overrides: Any) -> DatastoreSettings:
    base = DatastoreSettings(
        key=DATASTORE_KEY,
        binary_data=binary_data,
        name=NODE_NAME,
        heartbeat_interval=0.5,
        read_threads=4,
    )
    return dataclasses.replace(base, **overrides)


StartNode = Callable[..., Awaitable[TestClient[web.Request, web.Application]]]


@pytest.fixture
def start_node(
    aiohttp_server: Any,
    aiohttp_client: Any,
    metaserver: MetaserverPeer,
    samples: tuple[Path, Expected],
) -> StartNode:
    """`await start_node(binary_data=..., **setting_overrides)` -> a test client."""

    async def start(
        binary_data: Path | None = None, **overrides: Any
    ) -> TestClient[web.Request, web.Application]:
        overrides.setdefault("metaserver_url", metaserver.url)
        settings = make_settings(binary_data or samples[0], **overrides)
        # Runner options go to start_server; TestServer(**kwargs) drops them.
        server = await aiohttp_server(
            create_app(settings), access_log_class=RedactingAccessLogger
        )
        client: TestClient[web.Request, web.Application] = await aiohttp_client(server)
        return client

    return start


@pytest.fixture
async def node(
    start_node: StartNode, metaserver: MetaserverPeer
) -> TestClient[web.Request, web.Application]:
    """A node on the sample data; READER_TOKEN may read both sample datasets."""
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    metaserver.allow(READER_TOKEN, "lab", "zarr_ds")
    return await start_node()
