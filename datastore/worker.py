"""dramatiq workers of a datastore node: queue `datastore.<name>`.

`VOXELHUB_BROKER_URL` picks the broker: `redis://...` or `amqp://...` for real
worker processes (`run_worker`, possibly on other cluster nodes), empty for the
embedded default, where a `StubBroker` and a thread-based `Worker` live inside the
datastore process.

Actors are declared per broker (`declare_actors`), not with module-level
decorators, so no import binds them to dramatiq's global default broker.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import dramatiq
from dramatiq.brokers.stub import StubBroker

from datastore.config import DatastoreSettings
from datastore.convert import (
    ConversionActors,
    ConversionReporter,
    declare_conversion_actors,
)
from datastore.sample_jobs import declare_sample_actor
from datastore.thumbnail_files import pregenerate_thumbnails
from shared.conversions import close_sources
from shared.env import SettingError

logger = logging.getLogger(__name__)

# How often idle consumer threads look for a stop request (ms): short, so the
# embedded worker stops quickly with the node.
_CONSUMER_POLL_MS = 100


def create_broker(url: str) -> dramatiq.Broker:
    """RedisBroker, RabbitmqBroker or (empty url) an in-process StubBroker."""
    if not url:
        return StubBroker()
    if url.startswith(("redis://", "rediss://", "unix://")):
        from dramatiq.brokers.redis import RedisBroker

        # dramatiq's RedisBroker has no annotations.
        return RedisBroker(url=url)  # type: ignore[no-untyped-call]
    if url.startswith(("amqp://", "amqps://")):
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        return RabbitmqBroker(url=url)
    raise SettingError(
        "VOXELHUB_BROKER_URL must start with redis:// or amqp:// (or be empty)"
    )


def ping(message: str = "ping") -> str:
    """A trivial task to check that workers consume the node's queue."""
    logger.info("worker got %s", message)
    return "pong"


@dataclass(frozen=True, slots=True)
class Actors:
    """The actors of one broker; send with e.g. `actors.ping.send()`."""

    broker: dramatiq.Broker
    ping: dramatiq.Actor[..., Any]
    conversion: ConversionActors
    # write_sample(job_id, binary_data, organization, name, kind)
    sample: dramatiq.Actor[..., Any]


def declare_actors(
    broker: dramatiq.Broker,
    queue_name: str,
    reporter: ConversionReporter | None = None,
    binary_data: Path | None = None,
) -> Actors:
    """The node's actors; conversion progress goes to `reporter` (default: logs).

    With `binary_data`, a conversion into `<binary_data>/<org>/<name>` also
    renders the dashboard's thumbnails once the dataset is in place.
    """
    after_finish = None
    if binary_data is not None:
        root = binary_data

        def after_finish(target: Path) -> None:
            if target.parent.parent.resolve() == root.resolve():
                pregenerate_thumbnails(root, target.parent.name, target.name, target)

    return Actors(
        broker=broker,
        ping=dramatiq.actor(broker=broker, queue_name=queue_name, actor_name="ping")(
            ping
        ),
        conversion=declare_conversion_actors(
            broker, queue_name, reporter, after_finish=after_finish
        ),
        sample=declare_sample_actor(broker, queue_name, reporter),
    )


def boot(broker: dramatiq.Broker) -> dramatiq.Broker:
    """Tell the broker's middleware that this process is a worker, as dramatiq's
    own CLI does: without it the TimeLimit middleware never starts its watchdog
    and tasks run past their time limit."""
    broker.emit_after("process_boot")
    return broker


class InProcessWorker:
    """A dramatiq Worker in threads of this process (the embedded default)."""

    def __init__(self, actors: Actors, queue_name: str, threads: int = 2) -> None:
        self.actors = actors
        self._worker = dramatiq.Worker(
            boot(actors.broker),
            queues={queue_name},
            worker_threads=threads,
            worker_timeout=_CONSUMER_POLL_MS,
        )

    def start(self) -> None:
        self._worker.start()

    def stop(self) -> None:
        """Blocking: waits for running tasks (run it in an executor)."""
        self._worker.stop(timeout=30_000)
        self.actors.broker.close()
        close_sources()


def _serve_worker(settings: DatastoreSettings, threads: int) -> None:
    """One worker process: consume until SIGINT or SIGTERM."""
    from datastore.job_reporter import MetaserverJobReporter

    broker = create_broker(settings.broker_url)
    actors = declare_actors(
        broker,
        settings.queue_name,
        reporter=MetaserverJobReporter(settings),
        binary_data=settings.binary_data,
    )
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logger.info("worker got signal %d, stopping", signum)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    # An idle consumer polls at most this far apart: a conversion's next stage
    # is sent when the last task of the previous one ends, and a worker still
    # backing off towards dramatiq's default (1 s) would start it that much later.
    worker = dramatiq.Worker(
        boot(actors.broker),
        queues={settings.queue_name},
        worker_threads=threads,
        worker_timeout=_CONSUMER_POLL_MS,
    )
    worker.start()
    logger.info("worker consuming %s with %d threads", settings.queue_name, threads)
    stop.wait()
    worker.stop()
    broker.close()
    close_sources()


def run_worker(
    settings: DatastoreSettings, processes: int = 1, threads: int = 8
) -> None:
    """Run worker processes for this node's queue until SIGINT or SIGTERM."""
    if not settings.broker_url:
        raise SettingError(
            "VOXELHUB_BROKER_URL is empty: the embedded worker runs inside the "
            "datastore process; set a redis:// or amqp:// URL for separate workers"
        )
    if processes < 1 or threads < 1:
        raise ValueError("processes and threads must be >= 1")
    if processes == 1:
        _serve_worker(settings, threads)
        return
    context = multiprocessing.get_context("spawn")
    children = [
        context.Process(
            target=_serve_worker, args=(settings, threads), name=f"worker-{i}"
        )
        for i in range(processes)
    ]
    for child in children:
        child.start()
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    while not stop.is_set() and any(c.is_alive() for c in children):
        stop.wait(1.0)
    for child in children:
        if child.is_alive():
            child.terminate()  # SIGTERM: the child stops gracefully
    for child in children:
        child.join()
