"""Voxel reads: an LRU of open arrays and region / bucket reads in an executor.

Open `VoxelArray`s are expensive to create (headers, tensorstore specs) and cheap to
reuse, so they stay open per (organization, dataset, layer, mag) until a scan sees
the dataset change or the LRU evicts them. An evicted array is closed only after
the last read that still uses it has finished.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TypeVar

import numpy as np

from datastore.errors import Conflict, DataCorrupt, DatastoreError
from datastore.inbox import DatasetKey, ScannedDataset
from shared.datasource import LayerProperties, MagProperties
from shared.formats import CorruptData, FormatError, VoxelArray, open_mag
from shared.geometry import BoundingBox, Mag, Vec3

logger = logging.getLogger(__name__)

ArrayKey = tuple[str, str, str, Mag]
WireBytes = bytes | memoryview
T = TypeVar("T")


def http_error(error: FormatError, dataset: ScannedDataset) -> DatastoreError:
    """The HTTP error for a format error met while serving a request."""
    if isinstance(error, CorruptData):
        logger.error("corrupt data in %s/%s: %s", *dataset.key, error)
        return DataCorrupt(str(error), {"dataset": "/".join(dataset.key)})
    # The files changed since the last scan (or never matched the properties).
    return Conflict(
        f"dataset cannot be read: {error}", {"dataset": "/".join(dataset.key)}
    )


def voxels_to_wire(data: np.ndarray) -> WireBytes:
    """(c, x, y, z) voxels as little-endian bytes, channel fastest, then x, y, z."""
    if data.dtype.byteorder == ">":
        data = data.astype(data.dtype.newbyteorder("<"))
    # Fortran order puts c fastest, then x. An array that is already laid out that
    # way (the usual case for the readers) is sent without a copy.
    fortran = np.asfortranarray(data)
    return fortran.T.data.cast("B")


def wire_shape(data: np.ndarray) -> str:
    """`X-Voxel-Shape`: `x,y,z`, or `c,x,y,z` for multi-channel layers."""
    shape = data.shape if data.shape[0] > 1 else data.shape[1:]
    return ",".join(str(s) for s in shape)


def _close(array: VoxelArray) -> None:
    try:
        array.close()
    except Exception:
        logger.exception("closing a voxel array failed")


class _Entry:
    __slots__ = ("array", "evicted", "users")

    def __init__(self, array: VoxelArray) -> None:
        self.array = array
        self.users = 0
        self.evicted = False


class ReaderCache:
    """Thread-safe LRU of open arrays; used from executor threads."""

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._lock = threading.Lock()
        self._entries: OrderedDict[ArrayKey, _Entry] = OrderedDict()
        self._generation: dict[DatasetKey, int] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def _drop(self, entry: _Entry, to_close: list[VoxelArray]) -> None:
        entry.evicted = True
        if entry.users == 0:
            to_close.append(entry.array)

    def _acquire(self, key: ArrayKey, opener: Callable[[], VoxelArray]) -> _Entry:
        dataset_key = (key[0], key[1])
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None:
                self._entries.move_to_end(key)
                entry.users += 1
                return entry
            generation = self._generation.get(dataset_key, 0)
        array = opener()  # outside the lock: opening may touch the disk for a while
        to_close: list[VoxelArray] = []
        with self._lock:
            existing = self._entries.get(key)
            if existing is not None:  # another thread was faster
                existing.users += 1
                to_close.append(array)
                entry = existing
            else:
                entry = _Entry(array)
                entry.users = 1
                if self._generation.get(dataset_key, 0) == generation:
                    self._entries[key] = entry
                    while len(self._entries) > self._capacity:
                        _, old = self._entries.popitem(last=False)
                        self._drop(old, to_close)
                else:
                    entry.evicted = True  # invalidated meanwhile: use once
        for array_to_close in to_close:
            _close(array_to_close)
        return entry

    def _release(self, entry: _Entry) -> None:
        with self._lock:
            entry.users -= 1
            close = entry.evicted and entry.users == 0
        if close:
            _close(entry.array)

    @contextmanager
    def use(
        self, key: ArrayKey, opener: Callable[[], VoxelArray]
    ) -> Iterator[VoxelArray]:
        """The open array for `key`, opened with `opener()` if not cached."""
        entry = self._acquire(key, opener)
        try:
            yield entry.array
        finally:
            self._release(entry)

    def invalidate(self, datasets: set[DatasetKey]) -> None:
        """Forget arrays of these datasets (their properties changed)."""
        if not datasets:
            return
        to_close: list[VoxelArray] = []
        with self._lock:
            for dataset in datasets:
                self._generation[dataset] = self._generation.get(dataset, 0) + 1
            for key in [k for k in self._entries if (k[0], k[1]) in datasets]:
                self._drop(self._entries.pop(key), to_close)
        for array in to_close:
            _close(array)

    def close_all(self) -> None:
        to_close: list[VoxelArray] = []
        with self._lock:
            for entry in self._entries.values():
                self._drop(entry, to_close)
            self._entries.clear()
        for array in to_close:
            _close(array)


@dataclass(frozen=True, slots=True)
class BucketRequest:
    """One bucket: top-left in mag-1 voxels, its mag and edge length in mag voxels."""

    position: Vec3
    mag: Mag
    cube_size: int

    @property
    def voxels(self) -> int:
        return self.cube_size**3

    def box_in_mag(self) -> BoundingBox:
        return BoundingBox(
            self.position // self.mag.to_vec3(), Vec3.full(self.cube_size)
        )


class VoxelReader:
    """Reads for the data routes: blocking work goes to `executor`."""

    def __init__(self, cache: ReaderCache, executor: Executor) -> None:
        self.cache = cache
        self._executor = executor

    async def run(self, dataset: ScannedDataset, work: Callable[[], T]) -> T:
        """`work()` in the executor; format errors become HTTP errors."""
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, work)
        except FormatError as e:
            raise http_error(e, dataset) from None

    def read_blocking(
        self,
        dataset: ScannedDataset,
        layer: LayerProperties,
        mag: MagProperties,
        box: BoundingBox,
    ) -> np.ndarray:
        """(c, x, y, z) voxels of `box` (in `mag` voxels); zeros outside the data."""
        key = (dataset.organization, dataset.name, layer.name, mag.mag)

        def opener() -> VoxelArray:
            return open_mag(
                dataset.dataset_dir,
                layer,
                mag,
                allowed_roots=dataset.allowed_roots,
            )

        with self.cache.use(key, opener) as array:
            return array.read(box)

    async def read_region(
        self,
        dataset: ScannedDataset,
        layer: LayerProperties,
        mag: MagProperties,
        position: Vec3,
        size: Vec3,
    ) -> tuple[WireBytes, str, str]:
        """Wire bytes, `X-Voxel-Shape` and `X-Voxel-Dtype` of one region.

        `position` is the top-left in mag-1 voxels, `size` in voxels of `mag`.
        """
        box = BoundingBox(position // mag.mag.to_vec3(), size)

        def work() -> tuple[WireBytes, str, str]:
            data = self.read_blocking(dataset, layer, mag, box)
            return voxels_to_wire(data), wire_shape(data), data.dtype.name

        return await self.run(dataset, work)

    async def read_buckets(
        self,
        dataset: ScannedDataset,
        layer: LayerProperties,
        requests: Sequence[BucketRequest],
        parallelism: int,
    ) -> tuple[list[WireBytes], list[int]]:
        """The existing buckets' bytes in request order, and the missing indices.

        A bucket is missing when its mag is not in the layer or it lies completely
        outside the layer's bounding box.
        """
        todo: list[tuple[int, MagProperties, BoundingBox]] = []
        missing: list[int] = []
        for index, request in enumerate(requests):
            try:
                mag = layer.get_mag(request.mag)
            except KeyError:
                missing.append(index)
                continue
            box = request.box_in_mag()
            if not box.intersects(layer.bounding_box.in_mag(request.mag)):
                missing.append(index)
                continue
            todo.append((index, mag, box))

        def work(
            group: Sequence[tuple[int, MagProperties, BoundingBox]],
        ) -> list[tuple[int, WireBytes]]:
            return [
                (i, voxels_to_wire(self.read_blocking(dataset, layer, mag, box)))
                for i, mag, box in group
            ]

        # A few groups instead of one task per bucket: small buckets are cheap to
        # read, and each executor hop costs about as much as one of them.
        groups = max(1, min(parallelism, len(todo)))
        shares = [todo[g::groups] for g in range(groups)]
        results = await asyncio.gather(
            *(self.run(dataset, functools.partial(work, share)) for share in shares)
        )
        by_index = dict(pair for group in results for pair in group)
        return [by_index[i] for i, _, _ in todo], missing
