"""The plan's value types and their JSON form (`.conversion/plan.json`).

A plan is what every worker needs to run any task: the layers with their source
specs and mags, and the stages of tasks. Task messages carry only (staging
folder, stage, index); workers load the plan from the staging folder.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any, Final

from shared.conversions.errors import ConversionError
from shared.datasource import (
    Category,
    DataFormat,
    DatasourceProperties,
    ElementClass,
    LayerProperties,
    MagProperties,
    VoxelSize,
)
from shared.geometry import BoundingBox, Mag

CHUNK: Final = 32
WKW_FILE: Final = 1024
DEFAULT_SHARD_SIZE: Final = 256
DEFAULT_TASK_BYTES: Final = 64 << 20
PLAN_DIR: Final = ".conversion"
PLAN_FILE: Final = "plan.json"


class TaskKind(StrEnum):
    WRITE = "write"
    DOWNSAMPLE = "downsample"
    ASSEMBLE = "assemble"


@dataclass(frozen=True, slots=True)
class ConversionOptions:
    """How to convert. `voxel_size` None: take the one the input declares.

    `category` None: segmentation when the data is integer with one channel and the
    layer name contains `seg` or `label`, or the input's metadata says so; else
    color. RGB (3 x uint8) becomes one `uint24` color layer unless
    `split_channels`, which (like any other multi-channel input) gives one layer
    per channel named `<layer>_<i>`. `shard_size` (32..1024, a power of two) is the
    side of a Zarr3 shard; `task_bytes` bounds the voxels one task holds at once.
    """

    data_format: DataFormat = DataFormat.WKW
    voxel_size: VoxelSize | None = None
    category: Category | None = None
    split_channels: bool = False
    shard_size: int = DEFAULT_SHARD_SIZE
    task_bytes: int = DEFAULT_TASK_BYTES
    downsample: bool = True


@dataclass(frozen=True, slots=True)
class ConversionTask:
    """One idempotent unit of work. `box` is in voxels of `mag`: the region a
    write/downsample task produces, or the file an assemble task builds."""

    stage: int
    index: int
    kind: TaskKind
    layer: int
    mag: Mag
    box: BoundingBox

    @property
    def key(self) -> str:
        return f"{self.stage}-{self.index}"

    def to_json(self) -> list[Any]:
        return [
            self.kind.value,
            self.layer,
            self.mag.to_list(),
            [*self.box.topleft, *self.box.size],
        ]

    @classmethod
    def from_json(cls, stage: int, index: int, value: Sequence[Any]) -> ConversionTask:
        kind, layer, mag, box = value
        return cls(
            stage,
            index,
            TaskKind(kind),
            int(layer),
            Mag.parse(mag),
            BoundingBox.of(box[:3], box[3:]),
        )


@dataclass(frozen=True, slots=True)
class LayerPlan:
    """One output layer: where its voxels come from and which mags it gets."""

    name: str
    category: Category
    element_class: ElementClass
    dtype: str
    """numpy dtype of one channel."""
    num_channels: int
    channels: tuple[int, ...]
    """The input's channels this layer takes, in order."""
    bounding_box: BoundingBox
    mags: tuple[Mag, ...]
    source: Mapping[str, Any] = field(hash=False)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "category": self.category.value,
            "elementClass": self.element_class.value,
            "dtype": self.dtype,
            "numChannels": self.num_channels,
            "channels": list(self.channels),
            "boundingBox": [*self.bounding_box.topleft, *self.bounding_box.size],
            "mags": [m.to_list() for m in self.mags],
            "source": dict(self.source),
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> LayerPlan:
        box = d["boundingBox"]
        return cls(
            name=d["name"],
            category=Category(d["category"]),
            element_class=ElementClass(d["elementClass"]),
            dtype=d["dtype"],
            num_channels=int(d["numChannels"]),
            channels=tuple(int(c) for c in d["channels"]),
            bounding_box=BoundingBox.of(box[:3], box[3:]),
            mags=tuple(Mag.parse(m) for m in d["mags"]),
            source=d["source"],
        )


@dataclass(frozen=True)
class ConversionPlan:
    """Everything a worker needs to run any task; stored as JSON in the staging
    folder so task messages only carry (staging folder, stage, index)."""

    id: str
    name: str
    target: Path
    staging: Path
    data_format: DataFormat
    voxel_size: VoxelSize
    shard_size: int
    layers: tuple[LayerPlan, ...]
    stages: tuple[tuple[ConversionTask, ...], ...]
    overwrite: bool = False
    """Whether the finished dataset may replace an existing one at `target`."""

    @property
    def total_tasks(self) -> int:
        return sum(len(stage) for stage in self.stages)

    @property
    def plan_dir(self) -> Path:
        return self.staging / PLAN_DIR

    def mag_path(self, layer: int, mag: Mag, root: Path | None = None) -> Path:
        return (root or self.staging) / self.layers[layer].name / mag.to_layer_name()

    def task(self, stage: int, index: int) -> ConversionTask:
        try:
            return self.stages[stage][index]
        except IndexError:
            raise ConversionError(f"no task {stage}-{index} in the plan") from None

    def datasource(self, largest_ids: Mapping[int, int]) -> DatasourceProperties:
        """The datasource-properties of the finished dataset."""
        layers = []
        for i, layer in enumerate(self.layers):
            segmentation = layer.category == Category.SEGMENTATION
            layers.append(
                LayerProperties(
                    name=layer.name,
                    category=layer.category,
                    bounding_box=layer.bounding_box,
                    element_class=layer.element_class,
                    data_format=self.data_format,
                    mags=tuple(
                        MagProperties(mag=m, path=f"./{layer.name}/{m.to_layer_name()}")
                        for m in layer.mags
                    ),
                    largest_segment_id=largest_ids.get(i, 0) if segmentation else None,
                    num_channels=layer.num_channels,
                )
            )
        return DatasourceProperties(
            name=self.name, team="", voxel_size=self.voxel_size, layers=tuple(layers)
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "id": self.id,
            "name": self.name,
            "target": str(self.target),
            "staging": str(self.staging),
            "dataFormat": self.data_format.value,
            "voxelSize": {
                "factor": list(self.voxel_size.factor),
                "unit": self.voxel_size.unit,
            },
            "shardSize": self.shard_size,
            "overwrite": self.overwrite,
            "layers": [layer.to_json() for layer in self.layers],
            "stages": [[task.to_json() for task in stage] for stage in self.stages],
        }

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ConversionPlan:
        voxel = d["voxelSize"]
        return cls(
            id=d["id"],
            name=d["name"],
            target=Path(d["target"]),
            staging=Path(d["staging"]),
            data_format=DataFormat(d["dataFormat"]),
            voxel_size=VoxelSize(tuple(voxel["factor"]), voxel["unit"]),
            shard_size=int(d["shardSize"]),
            layers=tuple(LayerPlan.from_json(layer) for layer in d["layers"]),
            stages=tuple(
                tuple(
                    ConversionTask.from_json(s, i, task) for i, task in enumerate(stage)
                )
                for s, stage in enumerate(d["stages"])
            ),
            overwrite=bool(d.get("overwrite", False)),
        )


def staging_path(target: Path, conversion_id: str) -> Path:
    """The hidden staging folder next to `target` (hidden: inbox scans skip it)."""
    return target.parent / f".{target.name}.staging-{conversion_id}"


def save_plan(plan: ConversionPlan) -> None:
    plan.plan_dir.mkdir(parents=True, exist_ok=True)
    path = plan.plan_dir / PLAN_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan.to_json(), separators=(",", ":")))
    tmp.replace(path)


def load_plan(staging: Path) -> ConversionPlan:
    """The plan stored in `staging`; FileNotFoundError once it is gone."""
    with (Path(staging) / PLAN_DIR / PLAN_FILE).open("rb") as f:
        return ConversionPlan.from_json(json.load(f))
