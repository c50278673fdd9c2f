"""Run one task of a plan, finish a conversion, or abort it.

`execute_task` is idempotent: run twice, it writes the same bytes to the same
places. It records its result (bytes, largest value, which process ran it) in
`.conversion/done/<stage>-<index>.json`, which the finishing step and progress
reports read. A task that finds the plan gone (cancelled, failed) raises
ConversionCancelled, and removes what its own writes may have re-created.

`finish_conversion` writes `datasource-properties.json` last and moves the staging
folder into place with one rename (an existing dataset, when the plan allows
overwriting, is first renamed aside and removed only after the new one is in
place). `abort_conversion` removes the staging folder and restores a dataset
renamed aside, so the target is left absent or as it was.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import numpy as np

from shared.conversions.downsample import downsample_mean, downsample_mode
from shared.conversions.errors import ConversionCancelled, ConversionError
from shared.conversions.model import (
    CHUNK,
    PLAN_DIR,
    PLAN_FILE,
    ConversionPlan,
    ConversionTask,
    LayerPlan,
    TaskKind,
    load_plan,
)
from shared.conversions.plan import fsync_dir
from shared.conversions.sources import Source, open_source
from shared.conversions.writers import forget_handles, output_for
from shared.datasource import (
    Category,
    DatasourceProperties,
    load_datasource,
    save_datasource,
)
from shared.geometry import BoundingBox, Mag, Vec3

logger = logging.getLogger(__name__)

DONE_DIR: Final = "done"
_lock = threading.Lock()
_plans: dict[Path, tuple[tuple[int, int], ConversionPlan]] = {}
_sources: OrderedDict[tuple[str, str], Source] = OrderedDict()
_MAX_SOURCES = 8


@dataclass(frozen=True, slots=True)
class TaskResult:
    """What one task did; stored as its done marker."""

    key: str
    voxel_bytes: int
    """Uncompressed bytes of the voxels it produced."""
    written_bytes: int
    max_value: int | None
    """Largest value written (segmentation layers' mag-1 tasks only)."""
    seconds: float
    pid: int
    host: str

    def to_json(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "voxelBytes": self.voxel_bytes,
            "writtenBytes": self.written_bytes,
            "max": self.max_value,
            "seconds": self.seconds,
            "pid": self.pid,
            "host": self.host,
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskResult:
        return cls(
            key=d["key"],
            voxel_bytes=int(d["voxelBytes"]),
            written_bytes=int(d["writtenBytes"]),
            max_value=None if d.get("max") is None else int(d["max"]),
            seconds=float(d["seconds"]),
            pid=int(d["pid"]),
            host=str(d["host"]),
        )


def cached_plan(staging: Path) -> ConversionPlan:
    """The plan in `staging`, parsed once per process (ConversionCancelled if gone)."""
    staging = Path(staging)
    try:
        stat = (staging / PLAN_DIR / PLAN_FILE).stat()
    except FileNotFoundError:
        raise ConversionCancelled(
            f"{staging.name}: the conversion was cancelled or has failed"
        ) from None
    key = (stat.st_ino, stat.st_mtime_ns)
    with _lock:
        found = _plans.get(staging)
    if found is not None and found[0] == key:
        return found[1]
    try:
        plan = load_plan(staging)
    except FileNotFoundError:
        raise ConversionCancelled(
            f"{staging.name}: the conversion was cancelled or has failed"
        ) from None
    with _lock:
        if len(_plans) > 32:
            _plans.clear()
        _plans[staging] = (key, plan)
    return plan


def _source(plan: ConversionPlan, layer: LayerPlan) -> Source:
    key = (plan.id, json.dumps(layer.source, sort_keys=True))
    with _lock:
        source = _sources.get(key)
        if source is not None:
            _sources.move_to_end(key)
            return source
    source = open_source(layer.source)
    with _lock:
        kept = _sources.get(key)
        if kept is not None:  # another thread opened it meanwhile: use that one
            source.close()
            return kept
        _sources[key] = source
        while len(_sources) > _MAX_SOURCES:
            _sources.popitem(last=False)[1].close()
    return source


def close_sources() -> None:
    """Close every input this process keeps open for conversions (a worker that
    stops; tests)."""
    with _lock:
        while _sources:
            _sources.popitem(last=False)[1].close()
        _plans.clear()


def _forget(plan_id: str) -> None:
    with _lock:
        for key in [k for k in _sources if k[0] == plan_id]:
            _sources.pop(key).close()
        for staging in [s for s, (_, p) in _plans.items() if p.id == plan_id]:
            _plans.pop(staging)


def z_slabs(box: BoundingBox) -> Iterator[BoundingBox]:
    """`box` cut at multiples of 32 in z (the block layers)."""
    z, end = box.topleft.z, box.end.z
    while z < end:
        nz = min((z // CHUNK + 1) * CHUNK, end)
        yield BoundingBox(
            Vec3(box.topleft.x, box.topleft.y, z),
            Vec3(box.size.x, box.size.y, nz - z),
        )
        z = nz


def _write_pieces(
    plan: ConversionPlan, task: ConversionTask, stats: dict[str, int]
) -> Iterator[tuple[BoundingBox, np.ndarray]]:
    layer = plan.layers[task.layer]
    source = _source(plan, layer)
    dtype = np.dtype(layer.dtype)
    take = list(layer.channels)
    every = take == list(range(source.channels))
    segmentation = layer.category == Category.SEGMENTATION
    for piece in z_slabs(task.box):
        data = source.read(piece)
        if not every:
            data = np.asfortranarray(data[take])
        if data.dtype != dtype:
            data = data.astype(dtype)
        if segmentation and data.size:
            stats["max"] = max(stats.get("max", 0), int(data.max()))
        stats["voxels"] += data.nbytes
        yield piece, data


def _downsample_pieces(
    plan: ConversionPlan, task: ConversionTask, stats: dict[str, int]
) -> Iterator[tuple[BoundingBox, np.ndarray]]:
    layer = plan.layers[task.layer]
    level = layer.mags.index(task.mag)
    previous = layer.mags[level - 1]
    factor = Vec3(*(a // b for a, b in zip(task.mag, previous, strict=True)))
    source_end = layer.bounding_box.in_mag(previous).end
    path = plan.mag_path(task.layer, previous)
    output = output_for(plan.data_format)
    reduce = (
        downsample_mode if layer.category == Category.SEGMENTATION else downsample_mean
    )
    for piece in z_slabs(task.box):
        start = piece.topleft * factor
        end = (piece.end * factor).pairmin(source_end)
        data = output.read(path, BoundingBox.from_corners(start, end))
        down = reduce(data, factor)
        if down.shape[1:] != piece.size.to_tuple():
            raise ConversionError(
                f"downsampling {layer.name} to {task.mag} gave {down.shape[1:]} "
                f"for {piece.size}"
            )
        stats["voxels"] += down.nbytes
        yield piece, np.asfortranarray(down)


def _check_live(plan: ConversionPlan) -> None:
    if not (plan.plan_dir / PLAN_FILE).is_file():
        _forget(plan.id)
        if plan.staging.exists() and not (plan.plan_dir / PLAN_FILE).exists():
            # Our own writes re-created folders of a removed staging folder.
            shutil.rmtree(plan.staging, ignore_errors=True)
        raise ConversionCancelled(
            f"{plan.name}: the conversion was cancelled or has failed"
        )


def execute_task(plan: ConversionPlan, task: ConversionTask) -> TaskResult:
    """Run `task` of `plan` (idempotent) and record its result."""
    _check_live(plan)
    started = time.perf_counter()
    stats = {"voxels": 0}
    output = output_for(plan.data_format)
    path = plan.mag_path(task.layer, task.mag)
    try:
        if task.kind == TaskKind.ASSEMBLE:
            layer = plan.layers[task.layer]
            level = layer.mags.index(task.mag)
            if level:  # the mag above is assembled and read by no task any more
                output.finish(plan.mag_path(task.layer, layer.mags[level - 1]))
            written = output.assemble(path, task.box)
        elif task.kind == TaskKind.WRITE:
            pieces = _write_pieces(plan, task, stats)
            written = output.write(path, task.box, pieces)
        else:
            pieces = _downsample_pieces(plan, task, stats)
            written = output.write(path, task.box, pieces)
    except (ConversionCancelled, FileNotFoundError):
        _check_live(plan)
        raise
    result = TaskResult(
        key=task.key,
        voxel_bytes=stats["voxels"],
        written_bytes=written,
        max_value=stats.get("max"),
        seconds=round(time.perf_counter() - started, 4),
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    _record(plan, result)
    _check_live(plan)
    return result


def run_task(staging: Path, stage: int, index: int) -> TaskResult:
    """`execute_task` for a task named by its plan's folder and position."""
    plan = cached_plan(staging)
    return execute_task(plan, plan.task(stage, index))


def _stage_dir(plan: ConversionPlan, stage: int) -> Path:
    return plan.plan_dir / DONE_DIR / str(stage)


def _record(plan: ConversionPlan, result: TaskResult) -> None:
    stage = int(result.key.split("-", 1)[0])
    done = _stage_dir(plan, stage)
    marker = done / f"{result.key}.json"
    tmp = done / f".{result.key}.{uuid.uuid4().hex}.tmp"
    try:
        done.mkdir(exist_ok=True)
        tmp.write_text(json.dumps(result.to_json()))
        tmp.replace(marker)
    except FileNotFoundError:
        tmp.unlink(missing_ok=True)
        _check_live(plan)
        raise


def _markers(plan: ConversionPlan, stage: int) -> list[os.DirEntry[str]]:
    try:
        entries = list(os.scandir(_stage_dir(plan, stage)))
    except FileNotFoundError:
        return []
    return [e for e in entries if e.name.endswith(".json") and e.name[0] != "."]


def done_results(plan: ConversionPlan) -> dict[str, TaskResult]:
    """The recorded results of finished tasks, by task key."""
    results: dict[str, TaskResult] = {}
    for stage in range(len(plan.stages)):
        for entry in _markers(plan, stage):
            try:
                with open(entry.path, "rb") as f:
                    result = TaskResult.from_json(json.load(f))
            except (OSError, ValueError, KeyError):
                continue
            results[result.key] = result
    return results


def count_done(plan: ConversionPlan, stage: int | None = None) -> int:
    """How many tasks (of `stage`, or of all stages) have recorded a result.

    Markers live in one folder per stage, and stages known to be complete (their
    successor was claimed) are not listed again.
    """
    if stage is not None:
        return len(_markers(plan, stage))
    total = 0
    for s, tasks in enumerate(plan.stages):
        if (plan.plan_dir / _claim_name(s)).exists():
            total += len(tasks)
        else:
            total += len(_markers(plan, s))
    return total


def _claim_name(stage: int) -> str:
    return f"after-stage-{stage}.claim"


def stage_complete(plan: ConversionPlan, stage: int) -> bool:
    return count_done(plan, stage) >= len(plan.stages[stage])


def claim_next_stage(plan: ConversionPlan, stage: int, claimer: str) -> bool:
    """Whether `claimer` (a task key) is the one to start what follows `stage`.

    The first task to see its stage complete creates a claim file (O_EXCL on the
    shared file system); a redelivered run of that same task claims again, so a
    worker killed between claiming and sending does not stall the conversion.
    """
    claim = plan.plan_dir / _claim_name(stage)
    try:
        fd = os.open(claim, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        try:
            return claim.read_text() == claimer
        except FileNotFoundError:
            return False
    except FileNotFoundError:
        _check_live(plan)
        raise
    with os.fdopen(fd, "w") as f:
        f.write(claimer)
    return True


def largest_segment_ids(
    plan: ConversionPlan, results: Mapping[str, TaskResult]
) -> dict[int, int]:
    """Largest id of each segmentation layer: the maximum over its write tasks."""
    largest: dict[int, int] = {}
    for task in plan.stages[0] if plan.stages else ():
        layer = plan.layers[task.layer]
        if task.kind != TaskKind.WRITE or layer.category != Category.SEGMENTATION:
            continue
        value = results[task.key].max_value or 0
        largest[task.layer] = max(largest.get(task.layer, 0), value)
    return largest


def old_path(plan: ConversionPlan) -> Path:
    return plan.target.parent / f".{plan.target.name}.old-{plan.id}"


def finish_conversion(plan: ConversionPlan) -> DatasourceProperties:
    """Write the metadata last and move the dataset into place (idempotent)."""
    target, staging = plan.target, plan.staging
    if not staging.exists():
        moved = target / PLAN_DIR / PLAN_FILE
        if moved.is_file() and load_plan(target).id == plan.id:
            shutil.rmtree(target / PLAN_DIR, ignore_errors=True)
            return load_datasource(target / "datasource-properties.json")
        raise ConversionCancelled(f"{plan.name}: the conversion was cancelled")
    _check_live(plan)
    results = done_results(plan)
    missing = [
        task.key for stage in plan.stages for task in stage if task.key not in results
    ]
    if missing:
        raise ConversionError(
            f"{plan.name}: {len(missing)} task(s) have not finished "
            f"({', '.join(missing[:5])})"
        )
    output = output_for(plan.data_format)
    for i, layer in enumerate(plan.layers):
        for mag in layer.mags:
            output.finish(plan.mag_path(i, mag))
    shutil.rmtree(plan.plan_dir / "sources", ignore_errors=True)
    props = plan.datasource(largest_segment_ids(plan, results))
    save_datasource(staging / "datasource-properties.json", props)
    _move_into_place(plan)
    shutil.rmtree(target / PLAN_DIR, ignore_errors=True)
    _forget(plan.id)
    forget_handles()
    logger.info("conversion %s finished: %s", plan.id, target)
    return props


def _move_into_place(plan: ConversionPlan) -> None:
    target, staging, old = plan.target, plan.staging, old_path(plan)
    if target.exists() and not old.exists():
        if not plan.overwrite:
            raise ConversionError(f"{target.name}: the target exists already")
        target.rename(old)
    try:
        staging.rename(target)
    except BaseException:
        if old.exists() and not target.exists():
            old.rename(target)
        raise
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


def abort_conversion(plan: ConversionPlan | Path) -> None:
    """Remove the staging folder; leave the target absent or as it was. Idempotent."""
    if not isinstance(plan, ConversionPlan):
        staging = Path(plan)
        try:
            plan = load_plan(staging)
        except (FileNotFoundError, ValueError, KeyError):
            _remove(staging)
            return
    _forget(plan.id)
    forget_handles()
    old = old_path(plan)
    if old.exists() and not plan.target.exists():
        old.rename(plan.target)
    _remove(plan.staging)
    logger.info("conversion %s removed its staging folder", plan.id)


def _remove(staging: Path) -> None:
    if not staging.exists():
        return
    trash = staging.with_name(f"{staging.name}.removing-{uuid.uuid4().hex[:8]}")
    try:
        staging.rename(trash)
    except FileNotFoundError:
        return
    shutil.rmtree(trash, ignore_errors=True)


def mag_pairs(plan: ConversionPlan) -> Iterator[tuple[int, Mag]]:
    for i, layer in enumerate(plan.layers):
        for mag in layer.mags:
            yield i, mag
