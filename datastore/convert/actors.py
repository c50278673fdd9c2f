"""Conversion jobs on the node's dramatiq queue.

`convert` plans the conversion (input errors fail the job at once) and sends the
first stage's tasks as a dramatiq group; every worker process consuming the queue,
on this node or another sharing the storage and the broker, takes tasks from it.
The task that completes a stage (`claim_next_stage`, a claim file on the shared
storage, so the same with Redis and RabbitMQ and safe against redelivery) sends
the next stage, and after the last one `convert_finish`, which writes the
metadata last and moves the dataset into place.

Retries: input errors (`ConversionInputError`) and cancelled conversions are
never retried (`throws`); anything else (a killed worker's redelivered message, a
time limit, a full disk) is retried a few times, which is safe because tasks are
idempotent; when retries are exhausted, `convert_failed` removes the staging
folder and reports the failure. The time limit per task is
`VOXELHUB_CONVERT_TASK_TIME_LIMIT_SECONDS` (default 3600).

Progress goes to a `ConversionReporter`, wired in by the datastore (the
metaserver's job endpoint); the default only logs. A reporter raising
`ConversionCancelled` (the metaserver says the job has ended) makes the worker
drop the conversion's staging folder and send nothing more: this catches a job
cancelled while its first message was still queued, before any staging existed.
"""

from __future__ import annotations

import hashlib
import logging
import time
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import dramatiq

from shared.conversions import (
    ConversionCancelled,
    ConversionInputError,
    ConversionOptions,
    ConversionPlan,
    SourceHints,
    abort_conversion,
    cached_plan,
    claim_next_stage,
    count_done,
    finish_conversion,
    load_plan,
    plan_conversion,
    run_task,
    stage_complete,
    staging_path,
)
from shared.datasource import Category, DataFormat, VoxelSize, dumps_datasource
from shared.env import env_int

logger = logging.getLogger(__name__)

TIME_LIMIT_ENV = "VOXELHUB_CONVERT_TASK_TIME_LIMIT_SECONDS"
MAX_RETRIES = 3
PROGRESS_INTERVAL = 1.0
# Never retried: retrying cannot help.
NOT_RETRIED = (ConversionInputError, ConversionCancelled)


class ConversionReporter(Protocol):
    """Where a conversion job's progress and outcome go (the metaserver's Job)."""

    def report_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        """May raise `ConversionCancelled` when the job has ended elsewhere."""
        ...

    def report_success(self, job_id: str, result: Mapping[str, Any]) -> None: ...

    def report_failure(self, job_id: str, reason: str) -> None: ...


class LoggingReporter:
    """The default until the datastore wires in the metaserver's job endpoint."""

    def report_progress(self, job_id: str, done: int, total: int, message: str) -> None:
        logger.info("job %s: %d/%d tasks (%s)", job_id, done, total, message)

    def report_success(self, job_id: str, result: Mapping[str, Any]) -> None:
        logger.info("job %s: converted to %s", job_id, result.get("path"))

    def report_failure(self, job_id: str, reason: str) -> None:
        logger.warning("job %s failed: %s", job_id, reason)


def task_time_limit_ms() -> int:
    return env_int(TIME_LIMIT_ENV, 3600, minimum=1) * 1000


def conversion_id(job_id: str) -> str:
    """The staging folder suffix of a job (stable, so a redelivered `convert`
    replaces its own half-made staging folder)."""
    return hashlib.sha256(str(job_id).encode()).hexdigest()[:12]


def options_from_json(
    options: Mapping[str, Any],
) -> tuple[ConversionOptions, SourceHints, bool]:
    """ConversionOptions, SourceHints and `overwrite` from a job's JSON arguments.

    Keys (all optional): `data_format` (wkw | zarr3), `voxel_size` [x, y, z],
    `unit`, `category`, `layer_name`, `split_channels`, `shard_size`, `task_bytes`,
    `downsample`,
    `dtype`, `shape` [x, y, z(, c)], `order` (F | C), `header_bytes`, `overwrite`.
    """
    try:
        voxel = options.get("voxel_size")
        category = options.get("category")
        shape = options.get("shape")
        conversion = ConversionOptions(
            data_format=DataFormat(options.get("data_format", "wkw")),
            voxel_size=(
                VoxelSize(tuple(voxel), options.get("unit", "nanometer"))
                if voxel
                else None
            ),
            category=Category(category) if category else None,
            split_channels=bool(options.get("split_channels", False)),
            shard_size=int(options.get("shard_size", 256)),
            task_bytes=int(options.get("task_bytes", 64 << 20)),
            downsample=bool(options.get("downsample", True)),
        )
        hints = SourceHints(
            dtype=options.get("dtype"),
            shape=tuple(int(v) for v in shape) if shape else None,
            order=str(options.get("order", "F")),
            header_bytes=int(options.get("header_bytes", 0)),
            layer_name=options.get("layer_name"),
            category=conversion.category,
        )
    except (TypeError, ValueError) as e:
        raise ConversionInputError(f"invalid conversion options: {e}") from None
    return conversion, hints, bool(options.get("overwrite", False))


def _reason(exception_data: Mapping[str, Any], message: Mapping[str, Any]) -> str:
    """What the owner reads when retries are exhausted."""
    trace = str(message.get("options", {}).get("traceback") or "").strip()
    last = trace.splitlines()[-1] if trace else ""
    if "TimeLimitExceeded" in last or exception_data.get("type") == "TimeLimitExceeded":
        limit = task_time_limit_ms() // 1000
        return (
            f"a conversion task ran longer than its time limit of {limit} s "
            f"({MAX_RETRIES + 1} attempts); raise {TIME_LIMIT_ENV} or use smaller "
            "tasks"
        )
    return last or str(exception_data.get("message") or "conversion failed")


@dataclass(frozen=True, slots=True)
class ConversionActors:
    """The conversion actors of one broker; `start` sends a job."""

    convert: dramatiq.Actor[..., Any]
    task: dramatiq.Actor[..., Any]
    finish: dramatiq.Actor[..., Any]
    failed: dramatiq.Actor[..., Any]

    def start(
        self,
        job_id: str,
        input_path: Path,
        target: Path,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        """Queue the conversion of `input_path` into the dataset folder `target`."""
        self.convert.send(
            str(job_id), str(input_path), str(target), dict(options or {})
        )


def cancel_conversion(job_id: str, target: Path) -> None:
    """Cancel a job: its staging folder goes, queued tasks find it gone and stop,
    running ones stop at their next write. The target stays as it was."""
    abort_conversion(staging_path(Path(target), conversion_id(job_id)))


def declare_conversion_actors(
    broker: dramatiq.Broker,
    queue_name: str,
    reporter: ConversionReporter | None = None,
    after_finish: Callable[[Path], None] | None = None,
) -> ConversionActors:
    """The conversion actors on `broker`'s `queue_name`, reporting to `reporter`.

    `after_finish(target)` runs once a dataset is in place, before the success
    report (thumbnails); its errors are logged and never fail the job.
    """
    report: ConversionReporter = reporter or LoggingReporter()
    # Per process: progress goes out at most once a second per job (and when a
    # stage completes), not once per task of a conversion with 30,000 tasks.
    last_report: dict[str, float] = {}
    common: dict[str, Any] = {
        "broker": broker,
        "queue_name": queue_name,
        "throws": NOT_RETRIED,
        "max_retries": MAX_RETRIES,
        "min_backoff": 1000,
        "max_backoff": 60_000,
        "time_limit": task_time_limit_ms(),
        "on_retry_exhausted": "convert_failed",
    }

    def fail(job_id: str, staging: Path | None, reason: str) -> None:
        if staging is not None:
            abort_conversion(staging)
        report.report_failure(job_id, reason)

    def convert(
        job_id: str, input_path: str, target: str, options: dict[str, Any]
    ) -> None:
        staging = staging_path(Path(target).absolute(), conversion_id(job_id))
        abort_conversion(staging)  # a redelivered message starts afresh
        try:
            conversion, hints, overwrite = options_from_json(options)
            plan = plan_conversion(
                Path(input_path),
                Path(target),
                conversion,
                hints,
                conversion_id=conversion_id(job_id),
                overwrite=overwrite,
            )
        except ConversionInputError as e:
            fail(job_id, staging, str(e))
            raise
        try:
            report.report_progress(job_id, 0, plan.total_tasks, "planned")
        except ConversionCancelled:
            logger.info("job %s ended before its conversion started", job_id)
            abort_conversion(staging)
            return
        _send_stage(plan, job_id, 0)

    def _send_stage(plan: ConversionPlan, job_id: str, stage: int) -> None:
        if stage >= len(plan.stages):
            finish_actor.send(job_id, str(plan.staging))
            return
        # dramatiq's group has no annotations; without `broker` it would use
        # dramatiq's global default broker, not this node's.
        dramatiq.group(  # type: ignore[no-untyped-call]
            (
                task_actor.message(job_id, str(plan.staging), stage, task.index)
                for task in plan.stages[stage]
            ),
            broker=broker,
        ).run()

    def convert_task(job_id: str, staging: str, stage: int, index: int) -> None:
        try:
            plan = cached_plan(Path(staging))
            run_task(plan.staging, stage, index)
        except ConversionCancelled:
            logger.info("job %s: task %d-%d skipped (cancelled)", job_id, stage, index)
            return
        except ConversionInputError as e:
            fail(job_id, Path(staging), str(e))
            raise
        complete = stage_complete(plan, stage)
        now = time.monotonic()
        if complete or now - last_report.get(job_id, 0.0) >= PROGRESS_INTERVAL:
            if len(last_report) > 1000:
                last_report.clear()
            last_report[job_id] = now
            try:
                report.report_progress(
                    job_id,
                    count_done(plan),
                    plan.total_tasks,
                    f"stage {stage + 1} of {len(plan.stages)}",
                )
            except ConversionCancelled:
                logger.info("job %s has ended: dropping its conversion", job_id)
                abort_conversion(plan.staging)
                return
        if complete and claim_next_stage(plan, stage, f"{stage}-{index}"):
            _send_stage(plan, job_id, stage + 1)

    def convert_finish(job_id: str, staging: str) -> None:
        try:
            try:
                plan = cached_plan(Path(staging))
            except ConversionCancelled:
                # Moved into place already by an earlier run of this message?
                plan = _moved_plan(Path(staging))
            props = finish_conversion(plan)
        except ConversionCancelled:
            logger.info("job %s: nothing to finish (cancelled)", job_id)
            return
        if after_finish is not None:
            try:
                after_finish(plan.target)
            except Exception:
                logger.error(
                    "job %s: after-finish step failed:\n%s",
                    job_id,
                    traceback.format_exc(),
                )
        report.report_success(
            job_id,
            {"path": str(plan.target), "datasource": dumps_datasource(props)},
        )

    def convert_failed(message: dict[str, Any], exception_data: dict[str, Any]) -> None:
        args = list(message.get("args") or [])
        job_id = str(args[0]) if args else "?"
        staging: Path | None = None
        if message.get("actor_name") == "convert" and len(args) >= 3:
            staging = staging_path(Path(args[2]).absolute(), conversion_id(job_id))
        elif len(args) >= 2:
            staging = Path(args[1])
        try:
            fail(job_id, staging, _reason(exception_data, message))
        except Exception:
            logger.error(
                "cleaning up job %s failed:\n%s", job_id, traceback.format_exc()
            )

    convert_actor = dramatiq.actor(actor_name="convert", **common)(convert)
    task_actor = dramatiq.actor(actor_name="convert_task", **common)(convert_task)
    finish_actor = dramatiq.actor(actor_name="convert_finish", **common)(convert_finish)
    failed_actor = dramatiq.actor(
        broker=broker, queue_name=queue_name, actor_name="convert_failed", max_retries=3
    )(convert_failed)
    return ConversionActors(
        convert=convert_actor, task=task_actor, finish=finish_actor, failed=failed_actor
    )


def _moved_plan(staging: Path) -> ConversionPlan:
    """The plan of a conversion whose staging folder became the target."""
    name = staging.name.removeprefix(".").rsplit(".staging-", 1)[0]
    target = staging.parent / name
    try:
        plan = load_plan(target)
    except FileNotFoundError:
        raise ConversionCancelled(f"{name}: the conversion was cancelled") from None
    if plan.staging != staging:
        raise ConversionCancelled(f"{name}: the conversion was cancelled")
    return plan
