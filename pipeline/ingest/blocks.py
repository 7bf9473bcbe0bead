"""Reading a source as blocks of complete lines, from a committed offset: files and pipes.

A block is what one batch parses and commits: whole lines only (a partial last line waits for the
next run unless the file is final), a SHA-256 of every byte it covers (chain of custody), and the
lines too long to load whole, skipped chunk by chunk with their first bytes kept for the quarantine.
"""

from __future__ import annotations

import hashlib
import weakref
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.ingest.sources import Readable, read_exact
from pipeline.rules import REJECT_TEXT_LIMIT


@dataclass(frozen=True)
class Block:
    """Complete lines ``data`` starting at decompressed offset ``start``; ``end`` is one past them.

    ``oversized`` lists lines longer than the block that were skipped without being loaded whole:
    (offset, length, first bytes).
    """

    start: int  # where this block's byte range begins (including skipped oversized lines)
    data_start: int  # offset of data[0]
    end: int
    data: bytes | memoryview
    oversized: tuple[tuple[int, int, bytes], ...] = ()
    # flushed because time passed or the stream stopped, not because it was full: commit it (and
    # everything before it) before reading on, or a slow stream would wait a whole flush for it
    urgent: bool = False
    # the SHA-256 state of [start, data_start) (the skipped oversized lines); None: an empty state
    # (a pipe's digest covers its data only). Never updated once the block is made.
    prefix: Any = None

    def sha256(self) -> str:
        """The SHA-256 of every byte in [start, end): the skipped oversized lines, then ``data``.

        Computed by the worker that parses the block (hashlib releases the GIL), not by the reading
        thread: each block reaches a worker ~20 ms sooner per 32 MiB (the first two delayed the
        start of both workers) and the reading thread keeps up with less of a core."""
        digest = self.prefix.copy() if self.prefix is not None else hashlib.sha256()
        digest.update(self.data)
        return digest.hexdigest()


def iter_blocks(
    stream: Readable,
    start: int,
    *,
    block_bytes: int,
    max_line_bytes: int,
    final: bool,
    size_hint: int | None = None,
    workers: int = 1,
    guard: Callable[[int], None] | None = None,
) -> Iterator[Block]:
    """Yield blocks of complete lines from ``start``; memory ≤ block_bytes + max_line_bytes.

    When ``final`` is false an incomplete trailing line is not consumed: it waits for the next run.
    Each block is read straight into one buffer from Arrow's memory pool (no copies, and the pool
    reuses pages: fresh 32 MiB allocations per block cost more in page faults than the parse of
    a whole block's timestamps). With the stream's length known (``size_hint``), blocks are sized
    so that the workers finish together (``_even_chunk``). ``guard(n)`` is called after each read
    up to byte ``n`` of the stream, before its lines are handed on (``sources.rewrite_guard``).
    """
    carry = b""
    offset = range_start = start
    oversized: list[tuple[int, int, bytes]] = []
    digest = hashlib.sha256()
    chunk = _even_chunk(size_hint - start, block_bytes, workers) if size_hint is not None else block_bytes
    buffers = ReadBuffers()
    while True:
        buf = _read_block(stream, carry, chunk, buffers)
        if guard is not None:  # (also at the end: a file cut below what was read ends early)
            guard(offset + len(buf))
        if len(buf) == len(carry):  # end of stream
            if carry and final:
                yield Block(range_start, offset, offset + len(carry), carry, tuple(oversized), prefix=digest)
            elif oversized:
                yield Block(range_start, offset, offset, b"", tuple(oversized), prefix=digest)
            return
        cut = _last_newline(buf)
        if cut < 0 and len(buf) > max_line_bytes:
            skipped = _skip_line(stream, buf, block_bytes, digest)
            oversized.append((offset, skipped.length, bytes(buf[:REJECT_TEXT_LIMIT])))
            offset += skipped.consumed
            carry = skipped.rest
            continue
        if cut < 0:
            carry = bytes(buf)
            continue
        # One block per read, however many lines it holds: a worker cuts one of more than
        # ``max_lines(block_bytes)`` lines into pieces (``pieces``), where its lines are counted
        # anyway (counted here too, the reading thread had spent ~9 ms a 32 MiB block on it).
        data = buf[: cut + 1]
        yield Block(range_start, offset, offset + len(data), data, tuple(oversized), prefix=digest)
        digest = hashlib.sha256()  # (the block's prefix is never updated again)
        oversized = []
        offset += len(data)
        range_start = offset
        carry = bytes(buf[cut + 1 :])


# A batch holds at most block_bytes / MIN_LINE_BYTES lines (167,772 for 32 MiB: blocks of lines under
# 200 bytes on average, such as common-format logs, are cut into several batches). A batch's memory
# grows with its lines, not its bytes: 32 MiB of "\0\n" (16.7M binary lines) took 4 GB and 77 s as
# one batch; 3M common lines of ~75 bytes peaked at 1.09 GB with 1/64 as many lines as bytes, 0.65 GB
# with 1/200.
MIN_LINE_BYTES = 200


def max_lines(block_bytes: int) -> int:
    """The most lines one batch holds, for blocks of ``block_bytes``."""
    return max(block_bytes // MIN_LINE_BYTES, 1)


def pieces(block: Block, most: int) -> Iterator[Block]:
    """``block`` as consecutive blocks of at most ``most`` lines each: the batches it is committed
    as, as if they had been read one by one (the first one's range and digest cover the skipped
    oversized lines before it too); the last keeps ``urgent``."""
    start = block.start
    parts = list(_pieces(memoryview(block.data).cast("B"), most))
    for i, part in enumerate(parts):
        data_start = block.data_start if i == 0 else start
        first, last = i == 0, i == len(parts) - 1
        yield Block(
            start, data_start, data_start + len(part), part, block.oversized if first else (),
            urgent=block.urgent and last, prefix=block.prefix if first else None,
        )  # fmt: skip
        start = data_start + len(part)


def _pieces(data: memoryview, max_lines: int) -> Iterator[memoryview]:
    """``data`` (complete lines) cut into runs of at most ``max_lines`` lines, zero-copy."""
    if len(data) <= max_lines:  # fewer bytes than that: fewer lines
        yield data
        return
    arr = np.frombuffer(data, dtype=np.uint8)
    start = seen = 0  # seen: newlines since ``start``
    for at in range(0, len(arr), _COUNT_BYTES):
        part = arr[at : at + _COUNT_BYTES] == 10
        count = int(np.count_nonzero(part))
        if seen + count < max_lines:
            seen += count
            continue
        newlines = np.flatnonzero(part)  # (only in the slices where a piece ends)
        k = max_lines - seen - 1
        for i in newlines[k::max_lines]:
            end = at + int(i) + 1
            yield data[start:end]
            start = end
        seen = (len(newlines) - 1 - k) % max_lines
    if start < len(data):
        yield data[start:]


_COUNT_BYTES = 1 << 20  # scanned in 1 MiB slices: the temporaries stay in cache


def _even_chunk(length: int, block_bytes: int, workers: int) -> int:
    """A read size ≤ ``block_bytes`` that cuts ``length`` into a multiple of ``workers`` equal blocks.

    15 blocks on 2 workers leave one worker parsing the last block alone (measured ~0.3 s of one
    idle core on 2M lines); 16 slightly smaller ones end together. Input that fits one block stays
    one block (a cron run's small increment must not become several files).
    """
    if workers < 2 or length <= block_bytes:
        return block_bytes
    n = -(-length // block_bytes)
    n = -(-n // workers) * workers
    return min(block_bytes, -(-length // n))


def _read_block(stream: Readable, carry: bytes, block_bytes: int, buffers: ReadBuffers) -> memoryview:
    """``carry`` followed by up to ``block_bytes`` read from the stream, in one reused buffer."""
    size = len(carry) + block_bytes
    writable, readable = buffers.get(size)
    view = memoryview(writable).cast("B")[:size]
    view[: len(carry)] = carry
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(view[len(carry) :])
    else:  # a plain Readable (stdin wrapper, tests): one copy
        chunk = stream.read(block_bytes)
        n = len(chunk)
        view[len(carry) : len(carry) + n] = chunk
    return memoryview(readable).cast("B")[: len(carry) + n]


class ReadBuffers:
    """Read buffers, each reused once nothing refers to the block read into it any more.

    A fresh 32 MiB buffer per block is memory the kernel must fault in and zero again (~2 % of a
    run's CPU in ``perf``, measured with huge pages). A block is handed out as a read-only Arrow
    buffer whose owner is a token: every memoryview, Arrow array or column made from the block
    without a copy keeps the token alive, and only when the last of them is gone does the buffer
    return to the free list.
    Nothing is ever reused while something can still read it; a block kept longer (a reject's text,
    say) just means one more buffer.
    """

    SLACK = 1 << 16  # room for a longer carried partial line next time

    def __init__(self) -> None:
        self._free: list[pa.Buffer] = []

    def get(self, size: int) -> tuple[pa.Buffer, pa.Buffer]:
        """(the writable buffer to read into, the read-only view of it to hand out)."""
        buf = None
        while self._free:  # (list.pop/append are atomic: tokens die on worker threads too)
            candidate = self._free.pop()
            if candidate.size >= size:
                buf = candidate
                break
        if buf is None:
            buf = pa.allocate_buffer(size + self.SLACK)
        token = _Token()
        weakref.finalize(token, self._free.append, buf)
        return buf, pa.foreign_buffer(buf.address, buf.size, base=token)


class _Token:
    __slots__ = ("__weakref__",)


def _last_newline(buf: memoryview, window: int = 1 << 16) -> int:
    """Index of the last b"\n" in ``buf`` or -1 (looks at the tail first: lines are short)."""
    arr = np.frombuffer(buf, dtype=np.uint8)
    while True:
        tail = arr[-window:]
        hits = np.flatnonzero(tail == 10)
        if len(hits):
            return len(arr) - len(tail) + int(hits[-1])
        if len(tail) == len(arr):
            return -1
        window *= 16


@dataclass(frozen=True)
class _Skipped:
    length: int  # bytes of the line, without terminator (may stop at EOF)
    consumed: int  # bytes consumed including the newline
    rest: bytes  # what followed the newline in the last chunk read


def _skip_line(stream: Readable, buf: memoryview, block_bytes: int, digest: Any) -> _Skipped:
    """Discard an oversized line chunk by chunk until its newline (never holding it whole)."""
    consumed = len(buf)
    digest.update(buf)
    while True:
        chunk = stream.read(block_bytes)
        if not chunk:
            return _Skipped(length=consumed, consumed=consumed, rest=b"")
        nl = chunk.find(b"\n")
        if nl >= 0:
            digest.update(memoryview(chunk)[: nl + 1])
            return _Skipped(length=consumed + nl, consumed=consumed + nl + 1, rest=chunk[nl + 1 :])
        digest.update(chunk)
        consumed += len(chunk)


def tick(offset: int) -> Block:
    """An empty urgent block: no lines, only "commit what is in flight" (``is_tick``)."""
    return Block(offset, offset, offset, b"", (), True)


def is_tick(block: Block) -> bool:
    return block.urgent and not block.data and not block.oversized and block.start == block.end


class Prefixed:
    """A non-seekable stream (stdin) whose first bytes can be looked at before reading it."""

    def __init__(self, stream: Readable, peek: int) -> None:
        self._stream = stream
        self.head = read_exact(stream, peek)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if self._pos < len(self.head):
            out = self.head[self._pos : self._pos + n] if n >= 0 else self.head[self._pos :]
            self._pos += len(out)
            return out
        return self._stream.read(n)
