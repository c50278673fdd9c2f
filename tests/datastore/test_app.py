"""The node as a whole: health, errors, CORS, metaserver liaison, worker, no Django."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient

from datastore.config import DatastoreSettings
from datastore.errors import Conflict, error_middleware
from datastore.state import ACTORS, SETTINGS
from datastore.worker import run_worker
from shared.env import SettingError
from tests.datastore.conftest import (
    DATASTORE_KEY,
    NODE_NAME,
    READER_TOKEN,
    MetaserverPeer,
    StartNode,
)

Client = TestClient[web.Request, web.Application]


async def test_health_names_the_node_and_counts_datasets(node: Client) -> None:
    response = await node.get("/data/health")
    assert response.status == 200
    assert await response.json() == {"ok": True, "name": NODE_NAME, "datasets": 3}


async def test_unknown_routes_and_methods_answer_json(node: Client) -> None:
    response = await node.get("/data/nothing-here")
    assert response.status == 404
    assert await response.json() == {"error": "not found", "detail": None}
    response = await node.delete("/data/health")
    assert response.status == 405
    assert (await response.json())["error"] == "method not allowed"


async def test_unexpected_exceptions_become_a_500_without_traceback(
    aiohttp_client: object, caplog: pytest.LogCaptureFixture
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise RuntimeError("secret internals")

    async def conflict(_request: web.Request) -> web.Response:
        raise Conflict("busy", {"why": "testing"})

    app = web.Application(middlewares=[error_middleware])
    app.router.add_get("/broken", broken)
    app.router.add_get("/conflict", conflict)
    client = await aiohttp_client(app)  # type: ignore[operator]
    response = await client.get("/broken")
    assert response.status == 500
    body = await response.text()
    assert "secret internals" not in body
    assert "Traceback" not in body
    assert "secret internals" in caplog.text  # but it is logged
    response = await client.get("/conflict")
    assert response.status == 409
    assert await response.json() == {"error": "busy", "detail": {"why": "testing"}}


async def test_cors_preflight_and_exposed_headers(node: Client) -> None:
    response = await node.options(
        "/data/datasets/lab/wkw_ds/layers/color/data",
        headers={
            "Origin": "http://viewer.example",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "x-auth-token, content-type",
        },
    )
    assert response.status == 204
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    allowed = response.headers["Access-Control-Allow-Headers"].lower()
    assert "x-auth-token" in allowed
    assert "content-type" in allowed
    response = await node.get("/data/nothing", headers={"Origin": "http://x"})
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    assert "MISSING-BUCKETS" in response.headers["Access-Control-Expose-Headers"]


async def test_the_node_registers_heartbeats_and_reports_with_its_key_in_a_header(
    node: Client, metaserver: MetaserverPeer
) -> None:
    await metaserver.wait_for("register")
    await metaserver.wait_for("report")
    await metaserver.wait_for("heartbeat")
    register = metaserver.calls_of("register")[0]
    assert register.path == f"/api/datastores/{NODE_NAME}/register"
    assert register.body["url"] == "http://127.0.0.1:8080"
    assert set(register.body) == {"url", "public_url", "allows_upload", "version"}
    for call in metaserver.calls:
        assert call.headers["X-Voxelhub-Datastore-Key"] == DATASTORE_KEY
        assert DATASTORE_KEY not in call.query_string
    report = metaserver.calls_of("report")[0].body["datasets"]
    by_name = {(d["organization"], d["name"]): d for d in report}
    assert set(by_name) == {("lab", "wkw_ds"), ("lab", "zarr_ds"), ("lab", "ours_ds")}
    wkw = by_name[("lab", "wkw_ds")]
    assert wkw["status"] == "active"
    assert wkw["reason"] == ""
    assert wkw["datasource"]["dataLayers"][0]["name"] == "color"


async def test_a_scan_trigger_reports_again(
    node: Client, metaserver: MetaserverPeer
) -> None:
    await metaserver.wait_for("report")
    await metaserver.wait_for("register")
    response = await node.post(
        "/data/triggers/checkInbox",
        headers={"X-Voxelhub-Metaserver-Token": metaserver.metaserver_token},
    )
    assert response.status == 200
    await metaserver.wait_for("report", count=2)


async def test_periodic_scans_pick_up_new_datasets(
    start_node: StartNode, metaserver: MetaserverPeer, tmp_path: Path
) -> None:
    binary_data = tmp_path / "binaryData"
    (binary_data / "lab").mkdir(parents=True)
    node = await start_node(binary_data, scan_interval=0.2)
    assert (await (await node.get("/data/health")).json())["datasets"] == 0
    await metaserver.wait_for("report")
    (binary_data / "lab" / "new").mkdir()
    await metaserver.wait_for("report", count=2)
    assert (await (await node.get("/data/health")).json())["datasets"] == 1
    last = metaserver.calls_of("report")[-1].body["datasets"]
    assert [(d["name"], d["status"]) for d in last] == [("new", "unusable")]


async def test_the_node_starts_while_the_metaserver_is_down_and_registers_later(
    aiohttp_server: object, start_node: StartNode
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    node = await start_node(metaserver_url=f"http://127.0.0.1:{port}")
    assert (await node.get("/data/health")).status == 200
    late = MetaserverPeer()
    await aiohttp_server(late.app(), port=port)  # type: ignore[operator]
    await late.wait_for("register", within=10)
    await late.wait_for("report", within=10)


async def test_the_embedded_worker_runs_tasks(node: Client) -> None:
    actors = node.app[ACTORS]
    queue = node.app[SETTINGS].queue_name
    actors.ping.send("hello")
    # join blocks (and raises if the task failed): not on the event loop.
    await asyncio.to_thread(actors.broker.join, queue, timeout=5000)


async def test_handlers_never_block_the_event_loop(
    node: Client, caplog: pytest.LogCaptureFixture
) -> None:
    loop = asyncio.get_running_loop()
    loop.set_debug(True)
    # 0.5 s: executor threads decoding data contend for the GIL on a busy 2-core
    # machine; a handler doing the reads itself blocks for far longer.
    loop.slow_callback_duration = 0.5
    caplog.set_level(logging.WARNING, logger="asyncio")
    headers = {"X-Auth-Token": READER_TOKEN}
    try:
        requests = [
            node.get(
                "/data/datasets/lab/wkw_ds/layers/color/data",
                params={
                    "mag": "1",
                    "x": 0,
                    "y": 0,
                    "z": 0,
                    "width": 256,
                    "height": 256,
                    "depth": 64,
                },
                headers=headers,
            ),
            node.post(
                "/data/datasets/lab/zarr_ds/layers/seg/data",
                json=[
                    {"position": [x, y, 0], "mag": [1, 1, 1], "cubeSize": 32}
                    for x in range(0, 96, 32)
                    for y in range(0, 96, 32)
                ],
                headers=headers,
            ),
            node.get(
                "/data/datasets/lab/wkw_ds/layers/color/thumbnail.jpg",
                params={"width": 1024, "height": 1024},
                headers=headers,
            ),
        ]
        for response in await asyncio.gather(*requests):
            assert response.status == 200
            await response.read()
    finally:
        loop.set_debug(False)
    slow = [r.getMessage() for r in caplog.records if "Executing" in r.getMessage()]
    assert slow == []


def test_the_datastore_imports_and_builds_its_app_without_django(
    tmp_path: Path,
) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["django"] = None  # any import of Django now fails
        sys.modules["rest_framework"] = None
        from pathlib import Path
        from datastore.app import create_app
        from datastore.config import DatastoreSettings
        import datastore.serve, datastore.worker, datastore.__main__
        settings = DatastoreSettings(key="k", binary_data=Path({str(tmp_path)!r}))
        app = create_app(settings)
        assert not [m for m in sys.modules if m.startswith("django") and sys.modules[m]]
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_python_m_datastore_serves_and_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {
        **os.environ,
        "VOXELHUB_DATASTORE_KEY": "k",
        "VOXELHUB_DATASTORE_URL": f"http://127.0.0.1:{port}",
        "VOXELHUB_DATASTORE_BINARY_DATA": str(tmp_path / "binaryData"),
        # Nobody listens there: the node must start anyway.
        "VOXELHUB_DATASTORE_METASERVER_URL": "http://127.0.0.1:9",
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "datastore"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/data/health", timeout=2
                ) as answer:
                    assert json.load(answer)["ok"] is True
                    break
            except OSError:
                assert process.poll() is None, process.stdout.read()  # type: ignore[union-attr]
                assert time.monotonic() < deadline, "datastore did not come up"
                time.sleep(0.1)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        output = process.stdout.read()  # type: ignore[union-attr]
        process.stdout.close()  # type: ignore[union-attr]
    assert "Traceback" not in output


def test_brokers_follow_the_url_scheme() -> None:
    from dramatiq.brokers.rabbitmq import RabbitmqBroker
    from dramatiq.brokers.redis import RedisBroker
    from dramatiq.brokers.stub import StubBroker

    from datastore.worker import create_broker

    for url, kind in (
        ("", StubBroker),
        (
            os.environ.get("VOXELHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
            RedisBroker,
        ),
        (
            os.environ.get(
                "VOXELHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"
            ),
            RabbitmqBroker,
        ),
    ):
        broker = create_broker(url)
        assert isinstance(broker, kind)
        broker.close()
    with pytest.raises(SettingError, match="VOXELHUB_BROKER_URL"):
        create_broker("kafka://x")


def test_separate_workers_need_a_broker_url(tmp_path: Path) -> None:
    settings = DatastoreSettings(key="k", binary_data=tmp_path)
    with pytest.raises(SettingError, match="VOXELHUB_BROKER_URL is empty"):
        run_worker(settings)


@pytest.mark.parametrize(
    "url",
    [
        os.environ.get("VOXELHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15"),
        os.environ.get("VOXELHUB_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/"),
    ],
    ids=["redis", "rabbitmq"],
)
def test_a_worker_runs_the_nodes_actors_through_a_real_broker(url: str) -> None:
    """A message sent to the node's queue on Redis and on RabbitMQ (the running
    servers) is taken and run by a worker of the node."""
    import dramatiq

    from datastore.worker import boot, create_broker, declare_actors

    broker = create_broker(url)
    # One fixed queue: RabbitMQ keeps declared queues, so unique names would pile up.
    queue = "datastore.roundtrip-test"
    ran: list[str] = []
    actors = declare_actors(broker, queue)
    echo = dramatiq.actor(broker=broker, queue_name=queue, actor_name="echo")(
        ran.append
    )
    broker.flush(queue)  # left over from an interrupted run
    worker = dramatiq.Worker(boot(broker), queues={queue}, worker_timeout=100)
    worker.start()
    try:
        actors.ping.send("hello")
        echo.send("through the broker")
        broker.join(queue, timeout=30_000)
        worker.join()
    finally:
        worker.stop()
        broker.flush(queue)
        broker.close()
    assert ran == ["through the broker"]
