"""Run a conversion on this machine: the same tasks the datastore's workers run, in
this process (1) or in a pool of worker processes, stage by stage.

Any failure or interruption (Ctrl-C) removes the staging folder and leaves the
target as it was.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.context
import time
from collections.abc import Callable, Iterator
from concurrent.futures import (
    FIRST_COMPLETED,
    Executor,
    Future,
    ProcessPoolExecutor,
    ThreadPoolExecutor,
    wait,
)
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from shared.conversions.execute import (
    TaskResult,
    abort_conversion,
    execute_task,
    finish_conversion,
    run_task,
)
from shared.conversions.model import ConversionOptions, ConversionPlan, ConversionTask
from shared.conversions.plan import plan_conversion
from shared.conversions.sources import SourceHints
from shared.datasource import DatasourceProperties

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Progress:
    """Where a running conversion stands."""

    done: int
    total: int
    voxel_bytes: int
    """Uncompressed bytes produced so far (all mags)."""
    seconds: float
    stage: int
    stages: int


ProgressCallback = Callable[[Progress], None]


def _warm_up() -> None:
    """Imports done once per worker process, while the main process plans."""
    import shared.conversions.execute  # noqa: F401


@dataclass(frozen=True, slots=True)
class Workers:
    """`processes` workers: this process (a thread) plus `processes - 1` children."""

    processes: int
    pool: Executor | None


def _os_threads() -> int:
    try:
        return sum(1 for _ in Path("/proc/self/task").iterdir())
    except OSError:
        return 0


def _start_method() -> multiprocessing.context.BaseContext:
    """`fork` while this process has a single thread (workers start at once, with
    everything imported), else `spawn` (forking threads can deadlock)."""
    if _os_threads() == 1 and "fork" in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("fork")
    return multiprocessing.get_context("spawn")


@contextmanager
def worker_pool(processes: int) -> Iterator[Workers]:
    """Workers for `run_plan`: this process runs tasks too, so only
    `processes - 1` worker processes are started, before any planning (call it
    before TensorStore or other threads start, so they can be forked)."""
    if processes <= 1:
        yield Workers(1, None)
        return
    pool = ProcessPoolExecutor(max_workers=processes - 1, mp_context=_start_method())
    try:
        for _ in range(processes - 1):
            pool.submit(_warm_up)
        yield Workers(processes, pool)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def run_plan(
    plan: ConversionPlan,
    *,
    workers: Workers | None = None,
    on_progress: ProgressCallback | None = None,
) -> DatasourceProperties:
    """Run every task of `plan` with `workers` (default: inline), then finish it."""
    started = time.perf_counter()
    total = plan.total_tasks
    done = 0
    voxel_bytes = 0
    pool = workers.pool if workers is not None else None
    inline = ThreadPoolExecutor(1, thread_name_prefix="convert") if pool else None

    def report(stage: int, result: TaskResult | None) -> None:
        nonlocal done, voxel_bytes
        if result is not None:
            done += 1
            voxel_bytes += result.voxel_bytes
        if on_progress is not None:
            on_progress(
                Progress(
                    done,
                    total,
                    voxel_bytes,
                    time.perf_counter() - started,
                    stage,
                    len(plan.stages),
                )
            )

    def run_stage(
        s: int,
        stage: tuple[ConversionTask, ...],
        pool: Executor,
        inline: Executor,
        children: int,
    ) -> None:
        pending = list(stage)
        running: dict[Future[TaskResult], Executor] = {}

        def submit(executor: Executor) -> None:
            if not pending:
                return
            task = pending.pop(0)
            if executor is pool:
                future = pool.submit(run_task, plan.staging, s, task.index)
            else:
                future = executor.submit(execute_task, plan, task)
            running[future] = executor

        for _ in range(children):
            submit(pool)
        submit(inline)
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                executor = running.pop(future)
                report(s, future.result())
                submit(executor)

    try:
        report(0, None)
        for s, stage in enumerate(plan.stages):
            if pool is None or inline is None or workers is None:
                for task in stage:
                    report(s, execute_task(plan, task))
            else:
                run_stage(s, stage, pool, inline, workers.processes - 1)
        return finish_conversion(plan)
    except BaseException:
        abort_conversion(plan)
        raise
    finally:
        if inline is not None:
            inline.shutdown(wait=True, cancel_futures=True)


def convert(
    input_path: Path,
    target: Path,
    options: ConversionOptions | None = None,
    hints: SourceHints | None = None,
    *,
    processes: int = 1,
    overwrite: bool = False,
    on_progress: ProgressCallback | None = None,
    on_plan: Callable[[ConversionPlan], None] | None = None,
) -> DatasourceProperties:
    """Convert `input_path` into a dataset at `target` with `processes` processes."""
    with worker_pool(processes) as workers:
        plan = plan_conversion(
            Path(input_path), Path(target), options, hints, overwrite=overwrite
        )
        if on_plan is not None:
            on_plan(plan)
        return run_plan(plan, workers=workers, on_progress=on_progress)
