"""WKW output: WEBKNOSSOS' layout (1024³ files of 32³ LZ4HC blocks in Morton order).

A task compresses the 32³ blocks of its box (see `_compress`) and stores them with
their Morton indices as a part file `.parts/z*/y*/x*/*.part`; the assemble task of a
file writes the header and jump table and copies the blocks from the parts in
Morton order (zero blocks where there are none, runs of blocks copied in the
kernel) under a temporary name that is renamed into place. Parts are written the
same way, so a task killed midway leaves nothing or a whole part.

The next mag's downsampling reads a mag from its parts while its files are being
assembled (same stage), so assembling is off the critical path; the parts go when
the next mag's files are assembled (`finish`).
"""

from __future__ import annotations

import os
import shutil
import struct
import threading
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import lz4.block
import numpy as np

from shared.conversions.errors import ConversionError
from shared.conversions.writers import (
    CHUNK,
    WKW_FILE,
    Pieces,
    replace_file,
    require_dir,
)
from shared.datasource import DataFormat
from shared.formats import VoxelArray, create_mag
from shared.formats._wkw_file import (
    HEADER_SIZE,
    WkwHeader,
    morton_index,
    read_dataset_header,
)
from shared.geometry import BoundingBox, Vec3

PARTS_DIR: Final = ".parts"
# LZ4HC level for WKW blocks; every level decodes the same way.
LZ4HC_LEVEL: Final = 9
INCOMPRESSIBLE: Final = 0.97
_PART_MAGIC: Final = b"VXH2"


class WkwOutput:
    """WEBKNOSSOS' WKW layout: 1024³ files of 32³ LZ4HC blocks.

    Part file of a task: `VXH2`, block count n, n Morton indices (u32, sorted), n
    sizes (u32), then the n compressed blocks.
    """

    data_format = DataFormat.WKW
    needs_assembly = True

    def __init__(self) -> None:
        self._headers: dict[Path, WkwHeader] = {}
        self._arrays: dict[Path, VoxelArray] = {}
        self._zero: dict[int, bytes] = {}
        self._indexes: dict[Path, _PartIndex] = {}
        self._lock = threading.Lock()

    def create(
        self,
        path: Path,
        dtype: np.dtype[Any],
        channels: int,
        *,
        shard_size: int,
        extent: Vec3,
    ) -> None:
        create_mag(
            path,
            DataFormat.WKW,
            dtype,
            channels,
            chunk_shape=CHUNK,
            shard_shape=WKW_FILE,
            compress=True,
        ).close()
        (path / PARTS_DIR).mkdir(exist_ok=True)

    def _header(self, path: Path) -> WkwHeader:
        with self._lock:
            header = self._headers.get(path)
        if header is None:
            require_dir(path)
            header = read_dataset_header(path, path.name)
            with self._lock:
                if len(self._headers) > 256:
                    self._headers.clear()
                self._headers[path] = header
        return header

    def _zero_block(self, header: WkwHeader) -> bytes:
        payload = self._zero.get(header.block_bytes)
        if payload is None:
            payload = _compress(bytes(header.block_bytes), None)
            self._zero[header.block_bytes] = payload
        return payload

    @staticmethod
    def _parts_of(path: Path, file: Vec3) -> Path:
        return path / PARTS_DIR / f"z{file.z}" / f"y{file.y}" / f"x{file.x}"

    def write(self, path: Path, box: BoundingBox, pieces: Pieces) -> int:
        header = self._header(path)
        file = box.topleft // WKW_FILE
        origin = file * WKW_FILE
        if (path / f"z{file.z}" / f"y{file.y}" / f"x{file.x}.wkw").exists():
            # A late re-run: its file was assembled from these very blocks. The
            # pieces are still read, so the task reports the same statistics.
            for _ in pieces:
                pass
            return 0
        blocks_box = box.align_with(CHUNK)
        bits = header.file_len_log2
        zero = self._zero_block(header)
        payloads: dict[int, bytes] = {}
        channels, dtype = header.num_channels, header.voxel_type
        for piece_box, data in pieces:
            slab_box = BoundingBox(
                Vec3(blocks_box.topleft.x, blocks_box.topleft.y, piece_box.topleft.z)
                // CHUNK
                * CHUNK,
                Vec3(blocks_box.size.x, blocks_box.size.y, CHUNK),
            )
            if slab_box == piece_box:
                slab = data
            else:  # the layer's border: pad with zeros to whole blocks
                slab = np.zeros((channels, *slab_box.size), dtype, order="F")
                at = piece_box.topleft - slab_box.topleft
                end = at + piece_box.size
                slab[:, at.x : end.x, at.y : end.y, at.z : end.z] = data
            block0 = (slab_box.topleft - origin) // CHUNK
            for by in range(slab_box.size.y // CHUNK):
                for bx in range(slab_box.size.x // CHUNK):
                    block = slab[
                        :, bx * CHUNK : (bx + 1) * CHUNK, by * CHUNK : (by + 1) * CHUNK
                    ]
                    index = morton_index(block0.x + bx, block0.y + by, block0.z, bits)
                    payloads[index] = _compress(block.tobytes(order="F"), zero)
        order = sorted(payloads)
        blobs = [payloads[i] for i in order]
        table = struct.pack(
            f"<4sI{len(order)}I{len(order)}I",
            _PART_MAGIC,
            len(order),
            *order,
            *map(len, blobs),
        )
        local = (box.topleft - origin) // CHUNK
        part = self._parts_of(path, file) / f"{local.x}-{local.y}-{local.z}.part"
        require_dir(path)
        part.parent.mkdir(parents=True, exist_ok=True)
        tmp = part.with_name(f".{part.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as f:
                f.write(table)
                f.writelines(blobs)
            replace_file(tmp, part)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return len(table) + sum(map(len, blobs))

    def assemble(self, path: Path, file_box: BoundingBox) -> int:
        """Build the WKW file covering `file_box` from its tasks' parts."""
        header = self._header(path)
        file = file_box.topleft // WKW_FILE
        final = path / f"z{file.z}" / f"y{file.y}" / f"x{file.x}.wkw"
        parts_dir = self._parts_of(path, file)
        if final.exists():
            return 0  # complete: it was renamed into place in one step
        index = self._index(path, parts_dir, len(self._zero_block(header)), header)
        handles = [part.open("rb") for part in index.parts]
        try:
            return self._write_file(
                path, final, header, handles, index.owner, index.offset, index.sizes
            )
        finally:
            for f in handles:
                f.close()

    def _index(
        self, path: Path, parts_dir: Path, zero_size: int, header: WkwHeader
    ) -> _PartIndex:
        """Where each block of a file is among its parts (read once per process;
        parts do not change once their stage is complete)."""
        with self._lock:
            found = self._indexes.get(parts_dir)
        if found is not None:
            return found
        try:
            parts = sorted(p for p in parts_dir.iterdir() if p.name.endswith(".part"))
        except FileNotFoundError:
            require_dir(path)
            parts = []
        vol = header.file_vol
        owner = np.full(vol, -1, dtype=np.int64)
        offset = np.zeros(vol, dtype=np.int64)
        sizes = np.full(vol, zero_size, dtype=np.int64)
        for number, part in enumerate(parts):
            with part.open("rb") as f:
                indices, lengths, start = _read_part_table(f, part.name)
            owner[indices] = number
            offset[indices] = start + np.cumsum(lengths) - lengths
            sizes[indices] = lengths
        index = _PartIndex(parts, owner, offset, sizes)
        with self._lock:
            if len(self._indexes) > 64:
                self._indexes.clear()
            self._indexes[parts_dir] = index
        return index

    def _write_file(
        self,
        path: Path,
        final: Path,
        header: WkwHeader,
        handles: list[Any],
        owner: np.ndarray,
        offset: np.ndarray,
        sizes: np.ndarray,
    ) -> int:
        vol = header.file_vol
        zero = self._zero_block(header)
        data_offset = HEADER_SIZE + 8 * vol
        # Runs of blocks stored one after another in the same part (or all zero).
        breaks = (owner[1:] != owner[:-1]) | (
            (owner[1:] >= 0) & (offset[1:] != offset[:-1] + sizes[:-1])
        )
        starts = np.concatenate(([0], np.flatnonzero(breaks) + 1, [vol]))
        ends = data_offset + np.cumsum(sizes)
        require_dir(path)
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = final.with_name(f".{final.name}.{uuid.uuid4().hex}.tmp")
        try:
            with tmp.open("wb") as out:
                out.write(header.pack(data_offset))
                out.write(ends.astype("<u8").tobytes())
                out.flush()
                for a, b in zip(starts[:-1].tolist(), starts[1:].tolist(), strict=True):
                    number = int(owner[a])
                    if number < 0:
                        out.write(zero * (b - a))
                        out.flush()
                        continue
                    _copy_range(
                        handles[number].fileno(),
                        out.fileno(),
                        int(offset[a]),
                        int(sizes[a:b].sum()),
                    )
            replace_file(tmp, final)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return int(ends[-1])

    def read(self, path: Path, box: BoundingBox) -> np.ndarray:
        """Voxels of `box`: from the finished files, or from the parts of files
        not assembled yet (the next mag is computed while this one assembles)."""
        header = self._header(path)
        out = np.zeros((header.num_channels, *box.size), header.voxel_type, "F")
        for part_box in box.chunks(WKW_FILE):
            file = part_box.topleft // WKW_FILE
            at = part_box.topleft - box.topleft
            end = at + part_box.size
            target = out[:, at.x : end.x, at.y : end.y, at.z : end.z]
            final = path / f"z{file.z}" / f"y{file.y}" / f"x{file.x}.wkw"
            if final.exists():
                target[...] = self._array(path, header).read(part_box)
            else:
                self._read_parts(path, header, file, part_box, target)
        return out

    def _array(self, path: Path, header: WkwHeader) -> VoxelArray:
        with self._lock:
            array = self._arrays.get(path)
        if array is None:
            array = create_mag(
                path,
                DataFormat.WKW,
                header.voxel_type,
                header.num_channels,
                chunk_shape=CHUNK,
                shard_shape=WKW_FILE,
                compress=True,
            )
            with self._lock:
                if len(self._arrays) > 64:
                    for old in self._arrays.values():
                        old.close()
                    self._arrays.clear()
                self._arrays[path] = array
        return array

    def _read_parts(
        self,
        path: Path,
        header: WkwHeader,
        file: Vec3,
        box: BoundingBox,
        out: np.ndarray,
    ) -> None:
        zero = self._zero_block(header)
        index = self._index(path, self._parts_of(path, file), len(zero), header)
        origin = file * WKW_FILE
        shape = (header.num_channels, CHUNK, CHUNK, CHUNK)
        handles: dict[int, Any] = {}
        try:
            for block_box in box.align_with(CHUNK).chunks(CHUNK):
                b = (block_box.topleft - origin) // CHUNK
                morton = morton_index(b.x, b.y, b.z, header.file_len_log2)
                number = int(index.owner[morton])
                if number < 0:
                    continue
                f = handles.get(number)
                if f is None:
                    f = handles[number] = index.parts[number].open("rb")
                size = int(index.sizes[morton])
                payload = os.pread(f.fileno(), size, int(index.offset[morton]))
                if payload == zero:
                    continue
                try:
                    raw = lz4.block.decompress(
                        payload, uncompressed_size=header.block_bytes
                    )
                except lz4.block.LZ4BlockError:
                    raise ConversionError(
                        f"{index.parts[number].name}: block {morton} does not decode"
                    ) from None
                block = np.frombuffer(raw, dtype=header.voxel_type).reshape(
                    shape, order="F"
                )
                inner = block_box.intersection(box)
                src = inner.topleft - block_box.topleft
                dst = inner.topleft - box.topleft
                size3 = inner.size
                out[
                    :,
                    dst.x : dst.x + size3.x,
                    dst.y : dst.y + size3.y,
                    dst.z : dst.z + size3.z,
                ] = block[
                    :,
                    src.x : src.x + size3.x,
                    src.y : src.y + size3.y,
                    src.z : src.z + size3.z,
                ]
        finally:
            for f in handles.values():
                f.close()

    def finish(self, path: Path) -> None:
        """Remove the mag's parts (once its files are assembled and the next mag
        no longer reads them) and forget its handles."""
        shutil.rmtree(path / PARTS_DIR, ignore_errors=True)
        with self._lock:
            array = self._arrays.pop(path, None)
            self._headers.pop(path, None)
            for key in [k for k in self._indexes if k.is_relative_to(path)]:
                self._indexes.pop(key)
        if array is not None:
            array.close()


@dataclass(frozen=True, slots=True)
class _PartIndex:
    """For every block of a file: which part holds it (-1: none, all zero), where."""

    parts: list[Path]
    owner: np.ndarray
    offset: np.ndarray
    sizes: np.ndarray


def _read_part_table(f: Any, name: str) -> tuple[np.ndarray, np.ndarray, int]:
    """(Morton indices, sizes, offset of the first block) of a part file."""
    head = f.read(8)
    if len(head) != 8:
        raise ConversionError(f"{name}: part file is truncated")
    magic, count = struct.unpack("<4sI", head)
    if magic != _PART_MAGIC:
        raise ConversionError(f"{name}: not a part file")
    table = f.read(8 * count)
    if len(table) != 8 * count:
        raise ConversionError(f"{name}: part file is truncated")
    values = np.frombuffer(table, dtype="<u4").astype(np.int64)
    return values[:count], values[count:], 8 + 8 * count


def _copy_range(src: int, dst: int, start: int, length: int) -> None:
    """Append `length` bytes of `src` from `start` to `dst` (in the kernel)."""
    while length:
        copied = os.copy_file_range(src, dst, length, start)
        if copied == 0:
            raise ConversionError("part file is truncated")
        length -= copied
        start += copied


def _compress(raw: bytes, zero: bytes | None) -> bytes:
    """One LZ4 block: LZ4HC, unless fast LZ4 already shows the block is noise.

    LZ4HC is ~30x slower than LZ4 on noise-like data (raw EM) and saves under 1%
    there; where fast LZ4 cannot shrink a block below `INCOMPRESSIBLE` of its size,
    its output is kept (the same block format, decoded the same way). All-zero
    blocks get `zero`, the compressed zero block.
    """
    fast: bytes = lz4.block.compress(raw, mode="default", store_size=False)
    if len(fast) >= INCOMPRESSIBLE * len(raw):
        return fast
    if zero is not None and len(fast) < 1024 and raw.count(0) == len(raw):
        return zero
    out: bytes = lz4.block.compress(
        raw, mode="high_compression", compression=LZ4HC_LEVEL, store_size=False
    )
    return out
