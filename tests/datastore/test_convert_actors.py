"""Conversion jobs through dramatiq: real worker processes on Redis, and the
embedded StubBroker worker.

Redis: `VOXELHUB_TEST_REDIS_URL` (default redis://127.0.0.1:6379/15); every test
uses its own queue and removes it afterwards. Worker processes report to a file
(one JSON line per call), so the test sees which process ran which task.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import dramatiq
import numpy as np
import pytest
import wkw

from datastore.convert import (
    TIME_LIMIT_ENV,
    cancel_conversion,
    conversion_id,
    declare_conversion_actors,
)
from datastore.worker import Actors, boot, create_broker, declare_actors
from shared.conversions import (
    ConversionCancelled,
    ConversionInputError,
    close_sources,
    staging_path,
)
from shared.datasource import load_datasource
from tests.shared import conversion_inputs as inputs

REDIS_URL = os.environ.get("VOXELHUB_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


class FileReporter:
    """Appends every report as a JSON line (with the reporting process id)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()

    def _write(self, entry: dict[str, Any]) -> None:
        line = json.dumps({**entry, "pid": os.getpid()}) + "\n"
        with self._lock, self.path.open("a") as f:
            f.write(line)

    def report_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        self._write({"job": job_id, "kind": "progress", "done": done, "total": total})

    def report_success(self, job_id: str, result: Mapping[str, Any]) -> None:
        self._write({"job": job_id, "kind": "success", "path": result["path"]})

    def report_failure(self, job_id: str, reason: str) -> None:
        self._write({"job": job_id, "kind": "failure", "reason": reason})


def read_reports(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def wait_for_end(path: Path, job: str, within: float = 60.0) -> dict[str, Any]:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        ends = [
            r
            for r in read_reports(path)
            if r["job"] == job and r["kind"] in ("success", "failure")
        ]
        if ends:
            return ends[0]
        time.sleep(0.1)
    raise AssertionError(f"job {job} did not end; reports: {read_reports(path)}")


def serve(url: str, queue: str, reports: str, threads: int) -> None:
    """A worker process: the node's actors on Redis, reporting to a file."""
    broker = create_broker(url)
    declare_actors(broker, queue, reporter=FileReporter(Path(reports)))
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    worker = dramatiq.Worker(
        boot(broker), queues={queue}, worker_threads=threads, worker_timeout=100
    )
    worker.start()
    # The tests start work only once every process consumes: a process still
    # importing would otherwise leave all tasks to the first one.
    FileReporter(Path(reports))._write({"job": "", "kind": "ready"})
    stop.wait()
    worker.stop()
    broker.close()


def redis_broker() -> dramatiq.Broker:
    """A broker on the test Redis (scripts/test starts it; missing is a failure)."""
    import redis

    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError as e:
        pytest.fail(f"no Redis at {REDIS_URL}: {e}")
    return create_broker(REDIS_URL)


@pytest.fixture
def redis_queue() -> Iterator[tuple[str, Actors]]:
    queue = f"datastore.test-{uuid.uuid4().hex[:8]}"
    broker = redis_broker()
    actors = declare_actors(broker, queue)
    yield queue, actors
    broker.flush(queue)
    broker.close()


@pytest.fixture
def workers(
    redis_queue: tuple[str, Actors], tmp_path: Path
) -> Iterator[tuple[Actors, Path]]:
    """Two worker processes with one thread each on the test's queue."""
    queue, actors = redis_queue
    reports = tmp_path / "reports.jsonl"
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=serve, args=(REDIS_URL, queue, str(reports), 1))
        for _ in range(2)
    ]
    for process in processes:
        process.start()
    deadline = time.monotonic() + 60
    while sum(r["kind"] == "ready" for r in read_reports(reports)) < len(processes):
        assert time.monotonic() < deadline, "worker processes did not start"
        assert all(p.is_alive() for p in processes), "a worker process died"
        time.sleep(0.05)
    yield actors, reports
    for process in processes:
        process.terminate()
    for process in processes:
        process.join(30)
        if process.is_alive():
            process.kill()


@pytest.mark.slow
def test_two_worker_processes_share_the_tasks_and_finish_the_dataset(
    workers: tuple[Actors, Path], tmp_path: Path
) -> None:
    actors, reports = workers
    data = inputs.write_tiff(tmp_path / "em.tif", inputs.volume("uint8", (128, 96, 64)))
    target = tmp_path / "binaryData" / "lab" / "em_ds"
    actors.conversion.start(
        "job-1",
        tmp_path / "em.tif",
        target,
        {"voxel_size": [10, 10, 25], "task_bytes": 1 << 16, "data_format": "wkw"},
    )
    end = wait_for_end(reports, "job-1")
    assert end["kind"] == "success", end
    assert end["path"] == str(target)
    progress = [r for r in read_reports(reports) if r["kind"] == "progress"]
    workers_seen = {r["pid"] for r in progress}
    assert len(workers_seen) == 2, "both worker processes ran tasks"
    assert max(r["done"] for r in progress) == progress[0]["total"]
    props = load_datasource(target / "datasource-properties.json")
    layer = props.get_layer("em")
    assert [str(m.mag) for m in layer.mags] == ["1-1-1", "2-2-1", "4-4-2"]
    with wkw.Dataset.open(str(target / "em" / "1")) as dataset:
        np.testing.assert_array_equal(dataset.read((0, 0, 0), (128, 96, 64)), data)
    expected = inputs.reference_down(data, (2, 2, 1), mode=False)
    with wkw.Dataset.open(str(target / "em" / "2-2-1")) as dataset:
        np.testing.assert_array_equal(dataset.read((0, 0, 0), (64, 48, 64)), expected)
    assert sorted(p.name for p in target.parent.iterdir()) == ["em_ds"]
    assert not (target / ".conversion").exists()


@pytest.mark.slow
def test_an_input_error_fails_the_job_at_once_without_retries(
    workers: tuple[Actors, Path], tmp_path: Path
) -> None:
    actors, reports = workers
    (tmp_path / "broken.tif").write_bytes(b"II*\x00" + b"\x01" * 32)
    target = tmp_path / "binaryData" / "lab" / "broken_ds"
    started = time.monotonic()
    actors.conversion.start(
        "job-2", tmp_path / "broken.tif", target, {"voxel_size": [1, 1, 1]}
    )
    end = wait_for_end(reports, "job-2", within=20)
    assert end["kind"] == "failure"
    assert "broken.tif: not a readable TIFF file" in end["reason"]
    assert time.monotonic() - started < 10  # no retry backoff
    time.sleep(1.5)  # a retry would have reported again by now
    assert len([r for r in read_reports(reports) if r["job"] == "job-2"]) == 1
    assert not target.parent.exists() or list(target.parent.iterdir()) == []


@pytest.mark.slow
def test_a_page_failing_in_a_task_fails_the_job_and_keeps_the_previous_dataset(
    workers: tuple[Actors, Path], tmp_path: Path
) -> None:
    import tifffile

    actors, reports = workers
    inputs.write_tiff(
        tmp_path / "em.tif", inputs.volume("uint8", (64, 64, 64)), compression="zlib"
    )
    with tifffile.TiffFile(tmp_path / "em.tif") as tif:
        offset = tif.pages[40].dataoffsets[0]
    with (tmp_path / "em.tif").open("r+b") as f:
        f.seek(offset)
        f.write(b"\xff" * 64)
    target = tmp_path / "binaryData" / "lab" / "em_ds"
    target.mkdir(parents=True)
    (target / "datasource-properties.json").write_text("{}")
    actors.conversion.start(
        "job-3",
        tmp_path / "em.tif",
        target,
        {"voxel_size": [1, 1, 1], "task_bytes": 1 << 16, "overwrite": True},
    )
    end = wait_for_end(reports, "job-3")
    assert end["kind"] == "failure"
    assert "em.tif: page 40 cannot be decoded" in end["reason"]
    time.sleep(1.0)  # tasks still queued find the staging folder gone
    assert sorted(p.name for p in target.parent.iterdir()) == ["em_ds"]
    assert (target / "datasource-properties.json").read_text() == "{}"


def test_the_embedded_stub_broker_worker_converts(tmp_path: Path) -> None:
    broker = create_broker("")
    reports = tmp_path / "reports.jsonl"
    actors = declare_actors(broker, "datastore.embedded", FileReporter(reports))
    worker = dramatiq.Worker(
        broker, queues={"datastore.embedded"}, worker_threads=2, worker_timeout=100
    )
    worker.start()
    try:
        data = inputs.write_tiff(
            tmp_path / "s.tif", inputs.volume("uint16", (40, 36, 20))
        )
        target = tmp_path / "ds"
        actors.conversion.start(
            "job-4",
            tmp_path / "s.tif",
            target,
            {"voxel_size": [5, 5, 5], "data_format": "zarr3"},
        )
        assert wait_for_end(reports, "job-4", within=30)["kind"] == "success"
        layer = load_datasource(target / "datasource-properties.json").get_layer("s")
        assert layer.data_format == "zarr3"
        import tensorstore as ts

        store = ts.open(
            {
                "driver": "zarr3",
                "kvstore": {"driver": "file", "path": str(target / "s" / "1")},
            }
        ).result()
        np.testing.assert_array_equal(store.read().result(), data)
    finally:
        worker.stop()
        broker.close()
        close_sources()


def test_cancel_removes_the_staging_folder_of_a_job(tmp_path: Path) -> None:
    from shared.conversions import ConversionOptions, plan_conversion, run_task

    inputs.write_tiff(tmp_path / "s.tif", inputs.volume("uint8", (40, 36, 20)))
    target = tmp_path / "ds"
    plan = plan_conversion(
        tmp_path / "s.tif",
        target,
        ConversionOptions(voxel_size=inputs_voxel()),
        conversion_id=conversion_id("job-5"),
    )
    assert plan.staging == staging_path(target, conversion_id("job-5"))
    cancel_conversion("job-5", target)
    assert not plan.staging.exists()
    with pytest.raises(ConversionCancelled):
        run_task(plan.staging, 0, 0)
    assert list(tmp_path.iterdir()) == [tmp_path / "s.tif"]


def inputs_voxel() -> Any:
    from shared.datasource import VoxelSize

    return VoxelSize((1.0, 1.0, 1.0))


def test_actor_options_never_retry_input_errors_and_take_the_time_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(TIME_LIMIT_ENV, "7200")
    actors = declare_conversion_actors(create_broker(""), "datastore.options")
    for actor in (actors.convert, actors.task, actors.finish):
        assert actor.options["time_limit"] == 7_200_000
        assert ConversionInputError in actor.options["throws"]
        assert actor.options["max_retries"] == 3
        assert actor.options["on_retry_exhausted"] == "convert_failed"
    monkeypatch.delenv(TIME_LIMIT_ENV)
    default = declare_conversion_actors(create_broker(""), "datastore.defaults")
    assert default.task.options["time_limit"] == 3_600_000


@pytest.mark.slow
@pytest.mark.parametrize("fault", ["time_limit", "disk_full"])
def test_a_task_failing_on_every_attempt_fails_the_job_and_keeps_the_previous_dataset(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """RELIABILITY 13 with injected faults: the first task of the conversion runs
    past the time limit, or its disk is full, on every attempt. The job is retried,
    then fails with a reason; the staging folder goes and the dataset that was
    there stays."""
    import errno

    from datastore.convert import actors as actor_module

    real_run_task = actor_module.run_task
    attempts: list[float] = []

    def faulty(staging: Path, stage: int, index: int) -> Any:
        if (stage, index) == (0, 0):
            attempts.append(time.monotonic())
            if fault == "disk_full":
                raise OSError(errno.ENOSPC, "No space left on device")
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # interruptible by the time limit
                time.sleep(0.01)
        return real_run_task(staging, stage, index)

    monkeypatch.setattr(actor_module, "run_task", faulty)
    monkeypatch.setattr(actor_module, "MAX_RETRIES", 1)
    monkeypatch.setenv(TIME_LIMIT_ENV, "1")
    # Real Redis; the worker's threads run in this process, where the fault is.
    broker = redis_broker()
    queue = f"datastore.faults-{uuid.uuid4().hex[:8]}"
    reports = tmp_path / "reports.jsonl"
    actors = declare_actors(broker, queue, FileReporter(reports))
    worker = dramatiq.Worker(
        boot(broker), queues={queue}, worker_threads=2, worker_timeout=100
    )
    worker.start()
    target = tmp_path / "binaryData" / "lab" / "em_ds"
    target.mkdir(parents=True)
    (target / "datasource-properties.json").write_text('{"previous": true}')
    try:
        inputs.write_tiff(tmp_path / "em.tif", inputs.volume("uint8", (64, 64, 16)))
        actors.conversion.start(
            "job-f",
            tmp_path / "em.tif",
            target,
            {"voxel_size": [1, 1, 1], "overwrite": True},
        )
        end = wait_for_end(reports, "job-f", within=60)
    finally:
        worker.stop()
        broker.flush(queue)
        broker.close()
        close_sources()
    assert end["kind"] == "failure"
    if fault == "disk_full":
        assert "No space left on device" in end["reason"]
    else:
        assert "longer than its time limit of 1 s" in end["reason"]
        assert TIME_LIMIT_ENV in end["reason"]
    assert len(attempts) == 2, "one attempt and one retry"
    assert sorted(p.name for p in target.parent.iterdir()) == ["em_ds"]
    assert (target / "datasource-properties.json").read_text() == '{"previous": true}'


def test_the_nodes_in_process_worker_starts_the_time_limit_watchdog() -> None:
    """dramatiq starts TimeLimit's watchdog on "process boot", which only its own
    CLI announces; our workers must announce it too, or no limit ever fires."""
    from dramatiq.middleware import TimeLimit

    from datastore.worker import InProcessWorker

    broker = create_broker("")
    [limit] = [m for m in broker.middleware if isinstance(m, TimeLimit)]
    assert not limit.manager.is_alive()
    worker = InProcessWorker(declare_actors(broker, "datastore.boot"), "datastore.boot")
    assert limit.manager.is_alive()
    worker.start()
    worker.stop()
