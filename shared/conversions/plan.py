"""Plan a conversion: input -> layers -> shard-aligned tasks in stages.

A plan is a list of stages; every task of a stage may run at the same time, in
any process on any node that shares the file system, and a stage starts when the
previous one is complete:

    stage 0   write mag 1: one task per aligned box of the task grid
    stage 1   downsample mag 2 from mag 1: one task per box of mag 2's grid
              (WKW: and assemble each 1024³ file of mag 1 from its tasks' parts)
    ...       and so on down the pyramid (each level reads only the one above)
   (last      WKW: assemble the files of the coarsest mag)

Task boxes are whole write units (a 32³ WKW block, a Zarr3 shard of
`shard_size`³ with 32³ chunks) grown along x, then y, while they stay within the
layer, within one 1024³ WKW file and within `task_bytes`, and while the mag keeps
at least `MIN_TASKS` tasks: wide, flat boxes, so inputs stored slice by slice are
read about once, and every task writes whole shards (no two tasks touch one Zarr3
file). A WKW file's blocks must be stored in Morton
order, so each task writes its compressed blocks to a part file and an assemble
task merges the parts of a file. Every task is idempotent.

Everything is written into a staging folder `.<target name>.staging-<id>` next to
the target (same file system); the plan itself is `.conversion/plan.json` there.
See `execute` for running tasks and moving the result into place.
"""

from __future__ import annotations

import logging
import os
import re
import secrets
import shutil
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from shared.conversions.downsample import mag_pyramid_factors
from shared.conversions.errors import ConversionInputError
from shared.conversions.model import (
    CHUNK,
    PLAN_DIR,
    WKW_FILE,
    ConversionOptions,
    ConversionPlan,
    ConversionTask,
    LayerPlan,
    TaskKind,
    save_plan,
    staging_path,
)
from shared.conversions.sources import (
    Source,
    SourceHints,
    detect_layers,
    looks_like_segmentation,
    with_spec,
)
from shared.datasource import Category, DataFormat, ElementClass, VoxelSize
from shared.geometry import BoundingBox, Mag, Vec3
from shared.protocol import NAME_PATTERN

logger = logging.getLogger(__name__)

OUTPUT_FORMATS = (DataFormat.WKW, DataFormat.ZARR3)
# Task boxes stop growing before a mag has fewer tasks than this.
MIN_TASKS = 8


def _check_sizes(options: ConversionOptions) -> None:
    shard = options.shard_size
    if shard < CHUNK or shard > WKW_FILE or shard & (shard - 1):
        raise ConversionInputError(
            f"shard size must be a power of two from {CHUNK} to {WKW_FILE}, got {shard}"
        )
    if options.task_bytes < 1:
        raise ConversionInputError("task bytes must be positive")


def _category(
    source: Source, name: str, channels: int, options: ConversionOptions
) -> Category:
    integer_single = source.dtype.kind in "ui" and channels == 1
    if options.category is not None:
        if options.category == Category.SEGMENTATION and not integer_single:
            raise ConversionInputError(
                f"{name}: a segmentation layer needs one channel of integers, the "
                f"input has {channels} channel(s) of {source.dtype.name}"
            )
        return options.category
    if not integer_single:
        return Category.COLOR
    if source.category is not None:
        return source.category
    if looks_like_segmentation(name):
        return Category.SEGMENTATION
    return Category.COLOR


def _layers_of(
    source: Source, options: ConversionOptions, voxel_size: VoxelSize
) -> list[LayerPlan]:
    """The output layers of one input volume (RGB rule, channel split, category)."""
    rgb = source.channels == 3 and source.dtype == np.dtype(np.uint8)
    if source.channels == 1 or (rgb and not options.split_channels):
        groups = [(source.name, tuple(range(source.channels)))]
    else:
        groups = [(f"{source.name}_{c}", (c,)) for c in range(source.channels)]
    box = source.bounding_box
    factors = (
        mag_pyramid_factors(box.size, voxel_size.factor, min_side=CHUNK)
        if options.downsample
        else []
    )
    mags = [Mag(1, 1, 1)]
    for factor in factors:
        mags.append(Mag(*(m * f for m, f in zip(mags[-1], factor, strict=True))))
    layers = []
    for name, channels in groups:
        element_class = ElementClass.from_dtype(source.dtype, len(channels))
        layers.append(
            LayerPlan(
                name=name,
                category=_category(source, name, len(channels), options),
                element_class=element_class,
                dtype=source.dtype.str,
                num_channels=len(channels),
                channels=channels,
                bounding_box=box,
                mags=tuple(mags),
                source=source.spec,
            )
        )
    return layers


def task_shape(
    extent: BoundingBox,
    voxel_bytes: int,
    data_format: DataFormat,
    shard_size: int,
    budget: int,
    factor: Vec3,
    *,
    min_tasks: int = MIN_TASKS,
) -> Vec3:
    """The task box of a mag: whole write units grown along x, then y, while the
    box stays within the layer (and a WKW file), its memory within `budget`, and
    the mag keeps at least `min_tasks` tasks to share among workers.

    Wide boxes let inputs stored slice by slice be read once per slice. WKW tasks
    stream 32-deep slabs, so a slab of the source (`factor` times the target)
    counts; Zarr3 tasks hold their whole box (whole shards).
    """
    wkw = data_format == DataFormat.WKW
    unit = CHUNK if wkw else shard_size
    limit = WKW_FILE if wkw else 1 << 30
    source_slab = factor.prod() * CHUNK * voxel_bytes

    def fits(shape: list[int]) -> bool:
        slab = shape[0] * shape[1] * source_slab
        memory = (
            slab if wkw else max(slab, shape[0] * shape[1] * shape[2] * voxel_bytes)
        )
        tasks = 1
        for size, side in zip(extent.size, shape, strict=True):
            tasks *= -(-size // side)
        return memory <= budget and tasks >= min_tasks

    shape = [unit, unit, unit]
    for axis in (0, 1):
        while shape[axis] < extent.size[axis] and shape[axis] * 2 <= limit:
            grown = [*shape[:axis], shape[axis] * 2, *shape[axis + 1 :]]
            if not fits(grown):
                break
            shape = grown
    return Vec3(*shape)


def _stages(
    layers: Sequence[LayerPlan], data_format: DataFormat, options: ConversionOptions
) -> tuple[tuple[ConversionTask, ...], ...]:
    stages: list[tuple[ConversionTask, ...]] = []
    pending: list[tuple[TaskKind, int, Mag, BoundingBox]] = []
    levels = max(len(layer.mags) for layer in layers)
    for level in range(levels):
        kind = TaskKind.WRITE if level == 0 else TaskKind.DOWNSAMPLE
        work: list[tuple[TaskKind, int, Mag, BoundingBox]] = []
        files: list[tuple[TaskKind, int, Mag, BoundingBox]] = []
        for i, layer in enumerate(layers):
            if level >= len(layer.mags):
                continue
            mag = layer.mags[level]
            previous = layer.mags[level - 1] if level else mag
            factor = Vec3(*(a // b for a, b in zip(mag, previous, strict=True)))
            extent = layer.bounding_box.in_mag(mag)
            voxel_bytes = np.dtype(layer.dtype).itemsize * layer.num_channels
            shape = task_shape(
                extent,
                voxel_bytes,
                data_format,
                options.shard_size,
                options.task_bytes,
                factor,
            )
            work.extend((kind, i, mag, box) for box in extent.chunks(shape))
            if data_format == DataFormat.WKW:
                files.extend(
                    (TaskKind.ASSEMBLE, i, mag, box.align_with(WKW_FILE))
                    for box in extent.chunks(WKW_FILE)
                )
        # A mag's files are assembled in the stage that downsamples it (the
        # next mag reads its parts), so each stage is `files` of the level above
        # plus this level's work.
        group = pending + work
        if group:
            s = len(stages)
            stages.append(
                tuple(
                    ConversionTask(s, index, k, layer, mag, box)
                    for index, (k, layer, mag, box) in enumerate(group)
                )
            )
        pending = files
    if pending:
        s = len(stages)
        stages.append(
            tuple(
                ConversionTask(s, index, k, layer, mag, box)
                for index, (k, layer, mag, box) in enumerate(pending)
            )
        )
    return tuple(stages)


def _unique_names(layers: list[LayerPlan]) -> list[LayerPlan]:
    seen: set[str] = set()
    out = []
    for layer in layers:
        if not re.fullmatch(NAME_PATTERN, layer.name):
            raise ConversionInputError(f"{layer.name!r} is not a valid layer name")
        name, n = layer.name, 2
        while name in seen:
            name, n = f"{layer.name}_{n}", n + 1
        seen.add(name)
        out.append(replace(layer, name=name) if name != layer.name else layer)
    return out


def _close(sources: Sequence[Source]) -> None:
    for source in sources:
        source.close()


def plan_conversion(
    input_path: Path,
    target: Path,
    options: ConversionOptions | None = None,
    hints: SourceHints | None = None,
    *,
    conversion_id: str | None = None,
    overwrite: bool = False,
) -> ConversionPlan:
    """Detect the input, create the staging folder with empty mags and the plan.

    Input problems raise ConversionInputError before anything is written. Any
    failure after that removes the staging folder again.
    """
    from shared.conversions.writers import output_for

    options = options or ConversionOptions()
    target = Path(target).absolute()
    if options.data_format not in OUTPUT_FORMATS:
        raise ConversionInputError(
            f"output format {options.data_format} is not supported (wkw or zarr3)"
        )
    _check_sizes(options)
    if not re.fullmatch(NAME_PATTERN, target.name):
        raise ConversionInputError(f"{target.name!r} is not a valid dataset name")
    if target.exists() and not overwrite:
        raise ConversionInputError(f"{target.name}: the target exists already")
    sources = detect_layers(Path(input_path), hints)
    try:
        voxel_size = options.voxel_size or next(
            s.voxel_size for s in sources if s.voxel_size is not None
        )
    except StopIteration:
        _close(sources)
        raise ConversionInputError(
            f"{Path(input_path).name}: the input declares no voxel size; give one"
        ) from None
    conversion_id = conversion_id or secrets.token_hex(6)
    staging = staging_path(target, conversion_id)
    opened = list(sources)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        staging.mkdir()
    except BaseException:
        _close(opened)
        raise
    try:
        prepared = []
        for source in sources:
            prepare = getattr(source, "prepare", None)
            spec = prepare(staging / PLAN_DIR / "sources") if prepare else None
            if spec is not None:
                source = with_spec(source, spec)
                opened.append(source)
            prepared.append(source)
        layers = _unique_names(
            [
                layer
                for source in prepared
                for layer in _layers_of(source, options, voxel_size)
            ]
        )
        plan = ConversionPlan(
            id=conversion_id,
            name=target.name,
            target=target,
            staging=staging,
            data_format=options.data_format,
            voxel_size=voxel_size,
            shard_size=options.shard_size,
            layers=tuple(layers),
            stages=_stages(layers, options.data_format, options),
            overwrite=overwrite,
        )
        output = output_for(plan.data_format)
        for i, layer in enumerate(plan.layers):
            for mag in layer.mags:
                output.create(
                    plan.mag_path(i, mag),
                    np.dtype(layer.dtype),
                    layer.num_channels,
                    shard_size=plan.shard_size,
                    extent=layer.bounding_box.in_mag(mag).end,
                )
        (plan.plan_dir / "done").mkdir(parents=True, exist_ok=True)
        save_plan(plan)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    finally:
        _close(opened)
    logger.info(
        "planned conversion %s: %d layer(s), %d tasks in %d stages",
        conversion_id,
        len(plan.layers),
        plan.total_tasks,
        len(plan.stages),
    )
    return plan


def fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
