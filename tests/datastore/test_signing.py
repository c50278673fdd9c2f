"""The node signs every call after registration; a stale token makes it register again.

The `MetaserverPeer` verifies signatures and nonces as the metaserver does, so a
node that signs wrongly is refused here too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

import datastore.metaserver_client as metaserver_client
import tests.datastore.conftest as peer_module
from datastore.metaserver_client import MetaserverClient
from datastore.state import LINK
from shared.protocol import (
    METASERVER_TOKEN_HEADER,
    NONCE_HEADER,
    SIGNATURE_HEADER,
    SIGNATURE_HEADERS,
    TIMESTAMP_HEADER,
)
from tests.datastore.conftest import READER_TOKEN, MetaserverPeer, StartNode

Client = TestClient[web.Request, web.Application]
DATA = "/data/datasets/lab/wkw_ds/layers/color/data"
QUERY: dict[str, str | int] = {
    "mag": "1",
    "x": 0,
    "y": 0,
    "z": 0,
    "width": 4,
    "height": 4,
    "depth": 4,
}


async def read(node: Client, token: str = READER_TOKEN) -> int:
    response = await node.get(DATA, params=QUERY, headers={"X-Auth-Token": token})
    await response.read()
    return response.status


@pytest.fixture
async def quiet_node(start_node: StartNode, metaserver: MetaserverPeer) -> Client:
    """Registered and reported, with no heartbeat due while a test runs."""
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    node = await start_node(heartbeat_interval=60)
    await asyncio.wait_for(node.app[LINK].registered.wait(), 5)
    await metaserver.wait_for("report")
    return node


async def test_every_call_after_registration_is_signed_and_passes_verification(
    node: Client, metaserver: MetaserverPeer
) -> None:
    await metaserver.wait_for("report")
    await metaserver.wait_for("heartbeat")
    assert await read(node) == 200
    assert metaserver.refusals == []
    signed = [c for c in metaserver.calls if c.kind != "register"]
    assert {c.kind for c in signed} == {"heartbeat", "report", "validate-access"}
    for call in signed:
        assert all(call.headers.get(name) for name in SIGNATURE_HEADERS), call.kind
        assert abs(int(call.headers[TIMESTAMP_HEADER]) - time.time()) < 10
    nonces = [c.headers[NONCE_HEADER] for c in signed]
    assert len(set(nonces)) == len(nonces)
    for call in metaserver.calls_of("register"):
        assert not any(name in call.headers for name in SIGNATURE_HEADERS)


async def test_a_rotated_token_makes_the_node_register_again_once_and_retry(
    quiet_node: Client, metaserver: MetaserverPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetaserverClient, "MIN_REREGISTER_SECONDS", 0.0)
    node = quiet_node
    registrations = len(metaserver.calls_of("register"))
    metaserver.rotate_token("rotated-by-another-registration-0123")
    assert await read(node) == 200
    assert metaserver.refusals == ["signature does not match"]
    assert len(metaserver.calls_of("register")) == registrations + 1
    asks = metaserver.calls_of("validate-access")
    assert len(asks) == 2
    # The retry is signed anew: same body, another nonce and signature.
    assert asks[0].body == asks[1].body
    assert asks[0].headers[NONCE_HEADER] != asks[1].headers[NONCE_HEADER]
    assert asks[0].headers[SIGNATURE_HEADER] != asks[1].headers[SIGNATURE_HEADER]
    # The metaserver's calls to the node now carry the new token, which works.
    response = await node.post(
        "/data/triggers/checkInbox",
        headers={METASERVER_TOKEN_HEADER: metaserver.metaserver_token},
    )
    assert response.status == 200


async def test_concurrent_refused_calls_register_only_once(
    quiet_node: Client, metaserver: MetaserverPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(MetaserverClient, "MIN_REREGISTER_SECONDS", 0.0)
    node = quiet_node
    registrations = len(metaserver.calls_of("register"))
    metaserver.rotate_token("rotated-by-another-registration-4567")
    tokens = [f"token-{i}" for i in range(6)]
    for token in tokens:
        metaserver.allow(token, "lab", "wkw_ds")
    statuses = await asyncio.gather(*(read(node, t) for t in tokens))
    assert statuses == [200] * len(tokens)
    assert len(metaserver.calls_of("register")) == registrations + 1


async def test_a_refusal_registering_does_not_cure_is_not_retried_on_every_call(
    quiet_node: Client, metaserver: MetaserverPeer, monkeypatch: pytest.MonkeyPatch
) -> None:
    node = quiet_node
    monkeypatch.setattr(MetaserverClient, "MIN_REREGISTER_SECONDS", 0.2)
    await asyncio.sleep(0.25)  # the node's last registration is older than that
    monkeypatch.setattr(peer_module, "verify_request", lambda *a, **k: "refused")
    registrations = len(metaserver.calls_of("register"))
    assert await read(node) == 503
    assert len(metaserver.calls_of("register")) == registrations + 1
    assert len(metaserver.calls_of("validate-access")) == 2
    # Within the interval: refused again, without another registration.
    assert await read(node, "another-token") == 503
    assert len(metaserver.calls_of("register")) == registrations + 1
    assert len(metaserver.calls_of("validate-access")) == 3


async def test_a_skewed_clock_is_named_in_the_log(
    quiet_node: Client,
    metaserver: MetaserverPeer,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    node = quiet_node
    ahead = SimpleNamespace(time=lambda: time.time() + 300, monotonic=time.monotonic)
    monkeypatch.setattr(metaserver_client, "time", ahead)
    caplog.set_level(logging.WARNING, logger="datastore.metaserver_client")
    assert await read(node) == 503
    assert metaserver.refusals
    assert all("timestamp" in reason for reason in metaserver.refusals)
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert "clock is +" in messages
    assert "use NTP" in messages
