"""Access: tokens, the metaserver's answers and their caching, log redaction."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestClient

from datastore.access import RedactingAccessLogger, redact_tokens
from datastore.app import create_app
from tests.datastore.conftest import (
    READER_TOKEN,
    MetaserverPeer,
    StartNode,
    make_settings,
)

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


async def read(
    node: Client, token: str | None = None, *, in_query: bool = False
) -> int:
    params: dict[str, str | int] = dict(QUERY)
    headers = {}
    if token is not None and in_query:
        params["token"] = token
    elif token is not None:
        headers["X-Auth-Token"] = token
    response = await node.get(DATA, params=params, headers=headers)
    await response.read()
    return response.status


async def test_no_token_is_403(node: Client) -> None:
    response = await node.get(DATA, params=QUERY)
    assert response.status == 403
    assert (await response.json())["error"] == "access denied (no token given)"


async def test_an_invalid_token_is_403(node: Client) -> None:
    assert await read(node, "wrong-token") == 403


async def test_the_token_may_come_from_the_query_or_the_header(
    node: Client, metaserver: MetaserverPeer
) -> None:
    assert await read(node, READER_TOKEN, in_query=True) == 200
    assert await read(node, READER_TOKEN) == 200
    call = metaserver.calls_of("validate-access")[0]
    assert call.body == {
        "token": READER_TOKEN,
        "organization": "lab",
        "dataset": "wkw_ds",
        "mode": "read",
    }
    # The datastore key travels in the header only.
    assert call.headers["X-Voxelhub-Datastore-Key"] == metaserver.key
    assert call.query_string == ""


async def test_public_data_is_readable_without_a_token(
    node: Client, metaserver: MetaserverPeer
) -> None:
    metaserver.public.add(("lab", "wkw_ds"))
    assert await read(node) == 200


async def test_a_yes_is_cached_for_the_answers_cache_time_only(
    node: Client, metaserver: MetaserverPeer
) -> None:
    metaserver.cache_seconds = 1
    assert await read(node, READER_TOKEN) == 200
    assert await read(node, READER_TOKEN) == 200
    assert len(metaserver.calls_of("validate-access")) == 1
    metaserver.revoke(READER_TOKEN, "lab", "wkw_ds")
    assert await read(node, READER_TOKEN) == 200  # still cached
    await asyncio.sleep(1.1)
    assert await read(node, READER_TOKEN) == 403  # revocation took effect
    assert len(metaserver.calls_of("validate-access")) == 2


async def test_a_no_is_never_cached(node: Client, metaserver: MetaserverPeer) -> None:
    assert await read(node, "late-token") == 403
    metaserver.allow("late-token", "lab", "wkw_ds")
    assert await read(node, "late-token") == 200
    assert len(metaserver.calls_of("validate-access")) == 2


async def test_the_nodes_cache_setting_caps_the_answers_cache_time(
    start_node: StartNode, metaserver: MetaserverPeer
) -> None:
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    node = await start_node(access_cache_seconds=0)
    assert await read(node, READER_TOKEN) == 200
    assert await read(node, READER_TOKEN) == 200
    assert len(metaserver.calls_of("validate-access")) == 2


async def test_concurrent_identical_checks_ask_the_metaserver_once(
    node: Client, metaserver: MetaserverPeer
) -> None:
    statuses = await asyncio.gather(*(read(node, READER_TOKEN) for _ in range(8)))
    assert statuses == [200] * 8
    assert len(metaserver.calls_of("validate-access")) == 1


async def test_metaserver_down_is_503_unless_a_cached_yes_is_still_valid(
    node: Client, metaserver: MetaserverPeer
) -> None:
    metaserver.cache_seconds = 1
    assert await read(node, READER_TOKEN) == 200
    await metaserver.stop()
    assert await read(node, READER_TOKEN) == 200  # cached yes keeps working
    response = await node.get(DATA, params=QUERY, headers={"X-Auth-Token": "other"})
    assert response.status == 503
    assert (await response.json())["error"] == "metaserver unreachable"
    await asyncio.sleep(1.1)
    assert await read(node, READER_TOKEN) == 503  # expired: refused


class Lines(logging.Handler):
    """Collects formatted messages; `arrived` is set on the first one."""

    def __init__(self) -> None:
        super().__init__()
        self.lines: list[str] = []
        self.arrived = asyncio.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())
        self.arrived.set()


async def test_tokens_are_redacted_in_the_access_log(
    aiohttp_server: Any,
    aiohttp_client: Any,
    metaserver: MetaserverPeer,
    samples: tuple[Path, Any],
) -> None:
    # A private logger: no other handler's filter touches these records first.
    access_log = logging.getLogger("tests.datastore.access")
    access_log.propagate = False
    access_log.setLevel(logging.INFO)
    lines = Lines()
    access_log.addHandler(lines)
    metaserver.allow(READER_TOKEN, "lab", "wkw_ds")
    app = create_app(make_settings(samples[0], metaserver_url=metaserver.url))
    server = await aiohttp_server(
        app, access_log_class=RedactingAccessLogger, access_log=access_log
    )
    node = await aiohttp_client(server)
    try:
        response = await node.get(
            DATA,
            params={**QUERY, "token": READER_TOKEN},
            headers={"Referer": f"http://viewer/?sharingToken={READER_TOKEN}&a=1"},
        )
        assert response.status == 200
        await response.read()
        async with asyncio.timeout(2):  # written just after the response
            await lines.arrived.wait()
    finally:
        access_log.removeHandler(lines)
    line = lines.lines[0]
    assert "/data/datasets/lab/wkw_ds/layers/color/data?mag=1" in line
    assert "&token=*** HTTP/1.1" in line
    assert "sharingToken=***&a=1" in line
    assert READER_TOKEN not in line


def test_redaction_keeps_other_parameters() -> None:
    assert redact_tokens("?mag=1&token=abc&x=2") == "?mag=1&token=***&x=2"
    assert redact_tokens("?Token=abc") == "?Token=***"
    assert redact_tokens("?tokens=1") == "?tokens=1"


async def test_check_inbox_needs_an_administrator_or_the_metaserver(
    node: Client, metaserver: MetaserverPeer
) -> None:
    url = "/data/triggers/checkInbox"
    response = await node.post(url, headers={"X-Auth-Token": READER_TOKEN})
    assert response.status == 403
    metaserver.allow("admin-token", "lab", None, "administrate")
    response = await node.post(url, params={"token": "admin-token"})
    assert response.status == 200
    assert await response.json() == {"active": 3, "needs_review": 0, "unusable": 0}
    response = await node.post(
        url, params={"organization": "lab"}, headers={"X-Auth-Token": "admin-token"}
    )
    assert response.status == 200
    response = await node.post(
        url, params={"organization": "../x"}, headers={"X-Auth-Token": "admin-token"}
    )
    assert response.status == 400
    await metaserver.wait_for("register")
    response = await node.post(
        url, headers={"X-Voxelhub-Metaserver-Token": metaserver.metaserver_token}
    )
    assert response.status == 200
    response = await node.post(url, headers={"X-Voxelhub-Metaserver-Token": "forged"})
    assert response.status == 403
