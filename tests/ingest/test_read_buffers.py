"""Read buffers are reused, but never while anything can still read the block read into them.

A fresh 32 MiB buffer per block is memory the kernel faults in and zeroes again; the reader reuses
a block's buffer once the last view, array or column made from the block without a copy is gone.
A buffer handed out again too early would change the bytes of a batch still being parsed.
"""

from __future__ import annotations

import gc
import io
import os
import threading
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.ingest.blocks import ReadBuffers, iter_blocks
from pipeline.ingest.lines import split_block
from pipeline.ingest.pipes import iter_pipe_blocks


def _fill(buffers: ReadBuffers, size: int, byte: bytes) -> memoryview:
    writable, readable = buffers.get(size)
    memoryview(writable).cast("B")[:size] = byte * size
    return memoryview(readable).cast("B")[:size]


def _address(view: memoryview) -> int:
    return int(np.frombuffer(view, dtype=np.uint8).ctypes.data)


def test_a_buffer_returns_only_when_nothing_refers_to_its_block() -> None:
    buffers = ReadBuffers()
    first = _fill(buffers, 1000, b"a")
    address = _address(first)
    # everything a batch makes from a block without copying it
    numpy_view = np.frombuffer(first[10:20], dtype=np.uint8)
    arrow = pa.py_buffer(first[100:200])
    text = split_block(first, 0, 10_000).text
    del first
    gc.collect()
    for holder in ("numpy", "arrow", "text"):
        other = _fill(buffers, 1000, b"b")
        assert _address(other) != address, f"reused while a {holder} view was alive"
        if holder == "numpy":
            assert bytes(numpy_view) == b"a" * 10
            del numpy_view
        elif holder == "arrow":
            assert arrow.to_pybytes() == b"a" * 100
            del arrow
        else:
            assert pl.from_arrow(text).str.len_bytes().to_list() == [1000]
            del text
        del other
    held = [_fill(buffers, 1000, b"c") for _ in range(4)]  # (the others came back too)
    assert address in {_address(v) for v in held}  # all gone: reused


def test_a_larger_read_never_gets_a_smaller_buffer() -> None:
    buffers = ReadBuffers()
    small = _fill(buffers, 10, b"x")
    del small
    big = _fill(buffers, 200_000, b"y")
    assert len(big) == 200_000 and bytes(big[-3:]) == b"yyy"


def test_blocks_kept_by_a_slow_consumer_keep_their_bytes(tmp_path: Path) -> None:
    """Blocks still held (batches in flight) are never overwritten by the reads that follow."""
    lines = [f"line {i:06d} {'z' * (i % 97)}\n".encode() for i in range(20_000)]
    data = b"".join(lines)
    kept = list(iter_blocks(io.BytesIO(data), 0, block_bytes=4096, max_line_bytes=1024, final=True))
    assert len(kept) > 100
    assert b"".join(bytes(b.data) for b in kept) == data


def test_blocks_dropped_as_they_are_read_reuse_few_buffers() -> None:
    data = b"".join(f"{i:08d}\n".encode() for i in range(50_000))
    seen = set()
    total = 0
    for block in iter_blocks(io.BytesIO(data), 0, block_bytes=4096, max_line_bytes=1024, final=True):
        seen.add(_address(memoryview(block.data)) & ~0xFFF)
        total += len(block.data)
    assert total == len(data)
    assert len(seen) <= 4  # a handful of buffers, not one per block (over 100 blocks)


def test_piped_blocks_kept_by_a_slow_consumer_keep_their_bytes() -> None:
    """The pipe reader copies each flushed block into a reused buffer: the same rule holds."""
    data = b"".join(f"piped {i:06d} {'q' * (i % 53)}\n".encode() for i in range(30_000))
    read_fd, write_fd = os.pipe()

    def feed() -> None:
        with os.fdopen(write_fd, "wb") as pipe:
            for at in range(0, len(data), 7_000):
                pipe.write(data[at : at + 7_000])

    writer = threading.Thread(target=feed)
    writer.start()
    try:
        kept = list(
            iter_pipe_blocks(
                read_fd, flush_seconds=60, flush_lines=500, block_bytes=8192, max_line_bytes=1024,
                stop=lambda: False,
            )
        )  # fmt: skip
    finally:
        writer.join()
        os.close(read_fd)
    assert len(kept) > 20
    assert b"".join(bytes(b.data) for b in kept) == data
