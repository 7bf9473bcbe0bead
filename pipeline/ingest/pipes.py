"""Reading a pipe (Apache ``CustomLog "|hostlogs ingest -"``) as blocks of complete lines, flushed
by time or line count, and the clean stop on SIGTERM/SIGHUP (``blocks`` reads files)."""

from __future__ import annotations

import contextlib
import os
import select
import signal
import stat
import threading
import time
from collections.abc import Callable, Iterator

from pipeline.ingest.blocks import Block, ReadBuffers, tick
from pipeline.rules import REJECT_TEXT_LIMIT

Skipping = tuple[int, int, bytes]  # an oversized line being discarded: (offset, bytes so far, first bytes)


def iter_pipe_blocks(
    fd: int,
    *,
    flush_seconds: float,
    flush_lines: int,
    block_bytes: int,
    max_line_bytes: int,
    stop: Callable[[], bool],
) -> Iterator[Block]:
    """Blocks from a pipe (Apache ``CustomLog "|hostlogs ingest -"``), flushed by time or line count.

    Reads whatever is available (never waits for a full block), so lines reach the store within
    ``flush_seconds``. A block is urgent (committed before the next read) unless more input arrives
    within ``PIPE_QUIET_SECONDS``: a quiet pipe's last block must not wait for the next line; at each flush
    time with nothing to cut, an empty urgent block (a ``tick``) commits what is still in flight. At
    EOF or when ``stop()`` turns true (SIGTERM/SIGHUP) what the writer already put into the pipe is
    read too (for at most ``STOP_DRAIN_SECONDS``), then everything read is flushed, a last line without
    newline included: nothing read is lost on a clean stop.
    """
    buf = bytearray()
    offset = 0
    lines = 0
    oversized: list[Skipping] = []
    skipping: Skipping | None = None  # an oversized line being discarded
    deadline = time.monotonic() + flush_seconds
    drain_until: float | None = None  # set when a stop is asked for: read what is left, then stop
    buffers = ReadBuffers()
    while True:
        if drain_until is None and stop():
            drain_until = time.monotonic() + STOP_DRAIN_SECONDS
        # stopping: read on until the writer has been quiet a moment (it may still be writing what it
        # had: lines arriving right after the signal were lost, found by review)
        wait = (
            STOP_QUIET_SECONDS
            if drain_until is not None
            else max(0.0, min(deadline - time.monotonic(), 0.25))
        )
        ready, _, _ = select.select([fd], [], [], wait)
        eof = False
        if ready:
            chunk = os.read(fd, 1 << 20)
            eof = not chunk
            if skipping is not None and chunk:
                skipping, chunk, offset = _skip_more(skipping, chunk, oversized, offset)
            buf += chunk
            lines += chunk.count(b"\n")
            # (``lines`` counts the newlines in ``buf``: scanning all of it per read was quadratic)
            if skipping is None and lines == 0 and len(buf) > max_line_bytes:
                skipping, buf = (offset, len(buf), bytes(buf[:REJECT_TEXT_LIMIT])), bytearray()
        drained = drain_until is not None and (not ready or time.monotonic() >= drain_until)
        if drained and not eof:  # what is in the pipe now, then no more:
            rest = _last_reads(fd)  # a write after this fails (EPIPE) instead of being lost
            # (also while an oversized line is skipped: found by review, the pipe had stayed open)
            if skipping is not None and rest:
                skipping, rest, offset = _skip_more(skipping, rest, oversized, offset)
            buf += rest
            lines += rest.count(b"\n")
        stopping = eof or drained
        if stopping and skipping is not None:  # an unterminated oversized last line
            oversized.append(skipping)
            offset, skipping = skipping[0] + skipping[1], None
        full = lines >= flush_lines or len(buf) >= block_bytes
        if stopping or full or time.monotonic() >= deadline:
            cut = len(buf) if stopping else buf.rfind(b"\n") + 1
            if cut or oversized:
                data = _copy_out(buf, cut, buffers)
                start = oversized[0][0] if oversized else offset
                # more input within a moment: a busy writer, keep the workers busy (an empty pipe
                # buffer at this very instant is common even under `cat big.log |`)
                waiting = not stopping and bool(select.select([fd], [], [], PIPE_QUIET_SECONDS)[0])
                urgent = stopping or not waiting
                yield Block(start, offset, offset + cut, data, tuple(oversized), urgent)
                del buf[:cut]
                offset += cut
                oversized = []
            elif not full:
                yield tick(offset)  # nothing new: commit what is in flight
            lines = buf.count(b"\n")
            deadline = time.monotonic() + flush_seconds
        if stopping:
            return


def _skip_more(
    skipping: Skipping, chunk: bytes, oversized: list[Skipping], offset: int
) -> tuple[Skipping | None, bytes, int]:
    """``chunk`` read while an oversized line is skipped: (the line still being skipped, or None when
    it ended in ``chunk`` and was added to ``oversized``; what follows its end; the offset of that)."""
    nl = chunk.find(b"\n")
    if nl < 0:
        return (skipping[0], skipping[1] + len(chunk), skipping[2]), b"", offset
    oversized.append((skipping[0], skipping[1] + nl, skipping[2]))
    return None, chunk[nl + 1 :], skipping[0] + skipping[1] + nl + 1


def _last_reads(fd: int) -> bytes:
    """Everything the pipe holds now, then its reading end closed (``/dev/null`` in its place).

    Only a pipe: a file as stdin is always readable, and had been read to its end into memory
    (3 GB for a 1.3 GB log: found by review); it has no writer to refuse. At most ``_LAST_BYTES``:
    a writer that never pauses is cut there, as it is by the drain's time limit.
    """
    if not stat.S_ISFIFO(os.fstat(fd).st_mode):
        return b""
    chunks: list[bytes] = []
    got = 0
    while got < _LAST_BYTES and select.select([fd], [], [], 0)[0] and (chunk := os.read(fd, 1 << 20)):
        chunks.append(chunk)
        got += len(chunk)
    with contextlib.suppress(OSError):
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, fd)
        os.close(null)
    return b"".join(chunks)


def _copy_out(buf: bytearray, cut: int, buffers: ReadBuffers) -> memoryview:
    """The first ``cut`` bytes of ``buf``, copied once into a reused buffer (``ReadBuffers``)."""
    writable, readable = buffers.get(cut)
    with memoryview(buf) as view:  # (a slice of the bytearray would be a second copy)
        memoryview(writable).cast("B")[:cut] = view[:cut]
    return memoryview(readable).cast("B")[:cut]


STOP_DRAIN_SECONDS = 5.0  # after SIGTERM/SIGHUP: how long a writer may still fill the pipe
_LAST_BYTES = 16 << 20  # what the last reads take at most (a pipe buffer holds 64 KiB to 1 MiB)
STOP_QUIET_SECONDS = 0.5  # ... and how long it must have been quiet before the pipe is closed
PIPE_QUIET_SECONDS = 0.05  # no input for this long after a full batch: the pipe has gone quiet


@contextlib.contextmanager
def stop_signals() -> Iterator[Callable[[], bool]]:
    """SIGTERM/SIGHUP (Apache restarting its piped loggers) and Ctrl-C ask for a clean flush-and-exit."""
    flag = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield flag.is_set
        return
    # Ctrl-C too (found by review: it had dropped the lines read and not yet committed, exit 130)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)}
    for sig in previous:
        signal.signal(sig, lambda *_: flag.set())
    try:
        yield flag.is_set
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
