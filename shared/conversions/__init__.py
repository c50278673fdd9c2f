"""Conversion of microscopy inputs into WKW or Zarr3 datasets with a mag pyramid.

`sources` reads the inputs (one `Source` interface, detected from the path);
`plan` splits a conversion into shard-aligned, idempotent tasks in stages;
`execute` runs one task, finishes (metadata last, atomic move) or aborts;
`local` runs a whole plan on this machine; `downsample` holds the reductions.
"""

from shared.conversions.errors import (
    ConversionCancelled,
    ConversionError,
    ConversionInputError,
)
from shared.conversions.execute import (
    TaskResult,
    abort_conversion,
    cached_plan,
    claim_next_stage,
    close_sources,
    count_done,
    execute_task,
    finish_conversion,
    run_task,
    stage_complete,
)
from shared.conversions.local import Progress, Workers, convert, run_plan, worker_pool
from shared.conversions.model import (
    ConversionOptions,
    ConversionPlan,
    ConversionTask,
    LayerPlan,
    TaskKind,
    load_plan,
    staging_path,
)
from shared.conversions.plan import plan_conversion
from shared.conversions.sources import (
    Source,
    SourceHints,
    detect_layers,
    detect_source,
    open_source,
)

__all__ = [
    "ConversionCancelled",
    "ConversionError",
    "ConversionInputError",
    "ConversionOptions",
    "ConversionPlan",
    "ConversionTask",
    "LayerPlan",
    "Progress",
    "Source",
    "SourceHints",
    "TaskKind",
    "TaskResult",
    "Workers",
    "abort_conversion",
    "cached_plan",
    "claim_next_stage",
    "close_sources",
    "convert",
    "count_done",
    "detect_layers",
    "detect_source",
    "execute_task",
    "finish_conversion",
    "load_plan",
    "open_source",
    "plan_conversion",
    "run_plan",
    "run_task",
    "stage_complete",
    "staging_path",
    "worker_pool",
]
