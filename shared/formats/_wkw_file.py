"""The WKW file layout, for what the `wkw` package cannot do well.

libwkw reads any WKW file and writes raw ones in place, but it can only write a
compressed file as a whole, from one array the size of the file (1 GiB for 1024³
uint8). This module rewrites a compressed file block by block instead: unchanged
blocks are copied as compressed bytes, changed blocks are decoded, merged and
re-encoded, and the new file replaces the old one by an atomic rename. It also finds
which blocks of a file hold data, for bounding-box inference.

File layout (all little-endian): a 16-byte header (`WKW`, version 1, log2 of file
and block length, block type 1 raw / 2 LZ4 / 3 LZ4HC, voxel type, bytes per voxel,
data offset), for compressed files a jump table of one u64 end offset per block,
then the blocks in Morton order (x in the lowest bit). A block holds its voxels in
Fortran order with channels interleaved.
"""

from __future__ import annotations

import functools
import os
import struct
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import lz4.block
import numpy as np

from shared.formats.errors import CorruptData
from shared.geometry import BoundingBox, Vec3

_HEADER = struct.Struct("<3sBBBBBQ")
HEADER_SIZE = _HEADER.size
BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC = 1, 2, 3
VOXEL_TYPES: tuple[np.dtype[Any], ...] = tuple(
    np.dtype(t) for t in ("u1", "u2", "u4", "u8", "f4", "f8", "i1", "i2", "i4", "i8")
)
# Compressed zero blocks are tiny; only blocks this small can possibly be all zeros
# (LZ4 stores a long run in about 1/255 of its length).
_ZERO_CANDIDATE_RATIO = 128

# Writers of one file in this process take turns; distinct files proceed in parallel.
_file_locks = [threading.Lock() for _ in range(64)]


def _lock_for(path: Path) -> threading.Lock:
    return _file_locks[hash(str(path)) % len(_file_locks)]


@dataclass(frozen=True, slots=True)
class WkwHeader:
    """The 16-byte header of `header.wkw` and of every `.wkw` file."""

    block_len_log2: int
    file_len_log2: int
    block_type: int
    voxel_type: np.dtype[Any]
    voxel_size: int
    data_offset: int = 0

    @property
    def block_len(self) -> int:
        return 1 << self.block_len_log2

    @property
    def file_len(self) -> int:
        return 1 << self.file_len_log2

    @property
    def file_len_vx(self) -> int:
        return self.block_len * self.file_len

    @property
    def file_vol(self) -> int:
        return 1 << (3 * self.file_len_log2)

    @property
    def block_bytes(self) -> int:
        return self.voxel_size << (3 * self.block_len_log2)

    @property
    def num_channels(self) -> int:
        return self.voxel_size // self.voxel_type.itemsize

    @property
    def compressed(self) -> bool:
        return self.block_type in (BLOCK_LZ4, BLOCK_LZ4HC)

    def pack(self, data_offset: int) -> bytes:
        return _HEADER.pack(
            b"WKW",
            1,
            (self.file_len_log2 << 4) | self.block_len_log2,
            self.block_type,
            VOXEL_TYPES.index(self.voxel_type) + 1,
            self.voxel_size,
            data_offset,
        )

    @classmethod
    def parse(cls, raw: bytes, where: str) -> WkwHeader:
        """Parse 16 bytes; CorruptData naming `where` for anything invalid."""
        if len(raw) < HEADER_SIZE:
            raise CorruptData(f"corrupt chunk {where}: header is truncated")
        magic, version, per_dim, block_type, voxel_type, voxel_size, offset = (
            _HEADER.unpack(raw[:HEADER_SIZE])
        )
        problem = None
        if magic != b"WKW" or version != 1:
            problem = "not a WKW version 1 header"
        elif block_type not in (BLOCK_RAW, BLOCK_LZ4, BLOCK_LZ4HC):
            problem = f"unknown block type {block_type}"
        elif not 1 <= voxel_type <= len(VOXEL_TYPES):
            problem = f"unknown voxel type {voxel_type}"
        elif voxel_size == 0 or voxel_size % VOXEL_TYPES[voxel_type - 1].itemsize:
            problem = f"voxel size {voxel_size} does not fit the voxel type"
        if problem:
            raise CorruptData(f"corrupt chunk {where}: {problem}")
        return cls(
            block_len_log2=per_dim & 0x0F,
            file_len_log2=per_dim >> 4,
            block_type=block_type,
            voxel_type=VOXEL_TYPES[voxel_type - 1],
            voxel_size=voxel_size,
            data_offset=offset,
        )

    def same_layout(self, other: WkwHeader) -> bool:
        return (
            self.block_len_log2 == other.block_len_log2
            and self.file_len_log2 == other.file_len_log2
            and self.voxel_type == other.voxel_type
            and self.voxel_size == other.voxel_size
        )


def read_dataset_header(mag_dir: Path, where: str) -> WkwHeader:
    """The header of `<mag_dir>/header.wkw`."""
    with (mag_dir / "header.wkw").open("rb") as f:
        raw = f.read(HEADER_SIZE)
    try:
        return WkwHeader.parse(raw, "header.wkw")
    except CorruptData as e:
        message = str(e).replace("corrupt chunk", "corrupt metadata", 1)
        raise CorruptData(f"{where}: {message}") from None


@functools.lru_cache(maxsize=8)
def morton_coords(file_len_log2: int) -> np.ndarray:
    """Block coordinates (n, 3) of each Morton index of a file, x in the lowest bit."""
    index = np.arange(1 << (3 * file_len_log2), dtype=np.uint64)
    coords = np.zeros((index.size, 3), dtype=np.int64)
    for bit in range(file_len_log2):
        for axis in range(3):
            coords[:, axis] |= (
                (index >> np.uint64(3 * bit + axis)) & np.uint64(1)
            ).astype(np.int64) << bit
    coords.setflags(write=False)
    return coords


def morton_index(x: int, y: int, z: int, bits: int) -> int:
    out = 0
    for bit in range(bits):
        out |= ((x >> bit) & 1) << (3 * bit)
        out |= ((y >> bit) & 1) << (3 * bit + 1)
        out |= ((z >> bit) & 1) << (3 * bit + 2)
    return out


@functools.lru_cache(maxsize=16)
def _zero_block(block_bytes: int, block_type: int) -> bytes:
    return _compress(bytes(block_bytes), block_type)


def _compress(data: bytes | bytearray, block_type: int) -> bytes:
    if block_type == BLOCK_LZ4HC:
        out: bytes = lz4.block.compress(
            data, mode="high_compression", compression=9, store_size=False
        )
    else:
        out = lz4.block.compress(data, mode="default", store_size=False)
    return out


class _Blocks:
    """Sequential reader of the blocks of an existing file (any block type)."""

    def __init__(self, f: BinaryIO, expected: WkwHeader, where: str) -> None:
        self._f = f
        self._where = where
        size = os.fstat(f.fileno()).st_size
        self.header = WkwHeader.parse(f.read(HEADER_SIZE), where)
        if not self.header.same_layout(expected):
            raise CorruptData(
                f"corrupt chunk {where}: its header does not match header.wkw"
            )
        vol = self.header.file_vol
        if self.header.compressed:
            table = np.frombuffer(f.read(8 * vol), dtype="<u8")
            if table.size != vol:
                raise CorruptData(f"corrupt chunk {where}: jump table is truncated")
            ends = table.astype(np.int64)
            starts = np.concatenate(([self.header.data_offset], ends[:-1]))
        else:
            starts = self.header.data_offset + np.arange(
                vol, dtype=np.int64
            ) * np.int64(self.header.block_bytes)
            ends = starts + self.header.block_bytes
        if vol and (
            np.any(ends < starts) or ends[-1] > size or starts[0] < HEADER_SIZE
        ):
            raise CorruptData(f"corrupt chunk {where}: block offsets exceed the file")
        self.starts, self.ends = starts, ends

    def payload(self, index: int) -> bytes:
        start, end = int(self.starts[index]), int(self.ends[index])
        self._f.seek(start)
        data = self._f.read(end - start)
        if len(data) != end - start:
            raise CorruptData(f"corrupt chunk {self._where}: file is truncated")
        return data

    def has_data(self, payload: bytes, index: int) -> bool:
        raw = self._decode(payload, index)
        return bool(np.frombuffer(raw, dtype=np.uint8).any())

    def decoded(self, index: int) -> bytearray:
        return self._decode(self.payload(index), index)

    def _decode(self, data: bytes, index: int) -> bytearray:
        if not self.header.compressed:
            return bytearray(data)
        try:
            raw = lz4.block.decompress(data, uncompressed_size=self.header.block_bytes)
        except lz4.block.LZ4BlockError:
            raise CorruptData(
                f"corrupt chunk {self._where}: block {index} does not decode"
            ) from None
        if len(raw) != self.header.block_bytes:
            raise CorruptData(
                f"corrupt chunk {self._where}: block {index} has wrong size"
            )
        return bytearray(raw)


def _touched_blocks(
    header: WkwHeader, region: BoundingBox
) -> Iterator[tuple[int, BoundingBox]]:
    """(Morton index, part of `region` in it) for each block `region` touches."""
    bl = header.block_len
    for part in region.chunks(bl):
        b = part.topleft // bl
        yield morton_index(b.x, b.y, b.z, header.file_len_log2), part


def write_compressed(
    file_path: Path,
    header: WkwHeader,
    region: BoundingBox,
    data: np.ndarray,
    where: str,
) -> None:
    """Merge `data` ((c, x, y, z), covering `region` in file-local voxels) into the
    compressed file at `file_path`, creating it if needed, replacing it atomically."""
    bl = header.block_len
    touched: dict[int, list[BoundingBox]] = {}
    for index, part in _touched_blocks(header, region):
        touched.setdefault(index, []).append(part)
    vol = header.file_vol
    data_offset = HEADER_SIZE + 8 * vol
    zero = _zero_block(header.block_bytes, header.block_type)
    shape = (header.num_channels, bl, bl, bl)
    full_block = Vec3.full(bl)
    tmp = file_path.with_name(f".{file_path.name}.{uuid.uuid4().hex}.tmp")
    file_path.parent.mkdir(parents=True, exist_ok=True)
    with _lock_for(file_path):
        existing = file_path.open("rb") if file_path.exists() else None
        try:
            blocks = _Blocks(existing, header, where) if existing else None
            ends = np.empty(vol, dtype="<u8")
            with tmp.open("wb") as out:
                out.write(header.pack(data_offset))
                out.write(bytes(8 * vol))
                position = data_offset
                for index in range(vol):
                    parts = touched.get(index)
                    if parts is not None:
                        whole = parts[0].size == full_block
                        buf = (
                            blocks.decoded(index)
                            if blocks and not whole
                            else bytearray(header.block_bytes)
                        )
                        block = np.ndarray(
                            shape, dtype=header.voxel_type, buffer=buf, order="F"
                        )
                        for part in parts:
                            local = part.topleft - (part.topleft // bl) * bl
                            src = part.topleft - region.topleft
                            block[
                                :,
                                local.x : local.x + part.size.x,
                                local.y : local.y + part.size.y,
                                local.z : local.z + part.size.z,
                            ] = data[
                                :,
                                src.x : src.x + part.size.x,
                                src.y : src.y + part.size.y,
                                src.z : src.z + part.size.z,
                            ]
                        payload = _compress(buf, header.block_type)
                    elif blocks is None:
                        payload = zero
                    elif blocks.header.compressed:
                        payload = blocks.payload(index)
                    else:
                        payload = _compress(blocks.payload(index), header.block_type)
                    out.write(payload)
                    position += len(payload)
                    ends[index] = position
                out.seek(HEADER_SIZE)
                out.write(ends.tobytes())
                out.flush()
                os.fsync(out.fileno())
            tmp.replace(file_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        finally:
            if existing:
                existing.close()


def data_blocks_box(file_path: Path, expected: WkwHeader, where: str) -> BoundingBox:
    """File-local voxel box of the blocks holding non-zero data (empty if none).

    Only compressed blocks small enough to be all zeros are decoded; a raw file
    counts as full.
    """
    full = BoundingBox(Vec3(0, 0, 0), Vec3.full(expected.file_len_vx))
    with file_path.open("rb") as f:
        blocks = _Blocks(f, expected, where)
        if not blocks.header.compressed:
            return full
        sizes = blocks.ends - blocks.starts
        limit = blocks.header.block_bytes // _ZERO_CANDIDATE_RATIO + 64
        filled = sizes > limit
        # Zero blocks from one compressor are byte-identical: decode each kind once.
        seen: dict[bytes, bool] = {}
        for index in np.flatnonzero(~filled):
            payload = blocks.payload(int(index))
            known = seen.get(payload)
            if known is None:
                known = seen[payload] = blocks.has_data(payload, int(index))
            filled[index] = known
    if not filled.any():
        return BoundingBox(Vec3(0, 0, 0), Vec3(0, 0, 0))
    coords = morton_coords(expected.file_len_log2)[filled]
    low = coords.min(axis=0) * expected.block_len
    high = (coords.max(axis=0) + 1) * expected.block_len
    return BoundingBox.from_corners(Vec3(*map(int, low)), Vec3(*map(int, high)))
