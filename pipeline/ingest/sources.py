"""Finding log files and reading them as blocks of complete lines, from a committed offset.

Offsets are positions in the *decompressed* stream, so ``access.log.1`` and its later
``access.log.1.gz`` share offsets. A file is identified by a fingerprint of its first bytes
(see ``fingerprint``), not by name or inode, which logrotate changes and the kernel reuses.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import lzma
import os
import re
import select
import time
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import pyarrow as pa

from pipeline.errors import SourceError

FINGERPRINT_BYTES = 1024
TAIL_BYTES = 4096  # the bytes before a committed offset whose keyed digest is checked on resume
# Compressions open_stream reads (by suffix, and by magic number whatever the name says) ...
COMPRESSED_SUFFIXES = (".gz", ".zst", ".bz2", ".xz", ".lzma", ".lz4", ".br")
# ... and ones it cannot: such a file fails with a clear message instead of being read as garbage.
UNREADABLE_SUFFIXES = (".Z", ".lz", ".zip", ".7z", ".rar", ".sz", ".lzo")
_ANY_COMPRESSION = r"(?:\.(?:gz|zst|bz2|xz|lzma|lz4|br|Z|lz|zip|7z|rar|sz|lzo))"
# One rotation token: logrotate's count (.1), dateext in any dateformat (-20261122, -2026112213,
# -20261122-1763800000, -2026-11-22-13, .2026-11-22), epoch seconds, or a backup word (.old, .bak).
_ROTATION_TOKEN = (
    r"(?:\.[0-9]+"
    r"|[-_.][0-9]{8,14}"
    r"|[-_.][0-9]{4}-[0-9]{2}-[0-9]{2}(?:[-_T.][0-9]{2}(?:[-:.]?[0-9]{2}){0,2})?"
    r"|[-_.](?:old|bak|orig|save|prev|rotated|backup|tmp)"
    r")"
)
# logrotate names: access.log.1, access.log.2.gz, access.log-20261122, access_log.2026-11-22.gz,
# access.log-2026112213.xz, access.log-20261122-1763800000, access.log.old, access.log.1.bak
_ROTATED_RE = re.compile(rf"(?:{_ROTATION_TOKEN}+{_ANY_COMPRESSION}?|{_ANY_COMPRESSION})$")
_ROTATED_ONLY_RE = re.compile(rf"{_ROTATION_TOKEN}+{_ANY_COMPRESSION}?$")
STDIN = "-"


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


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
    sha256: str  # of every byte in [start, end), skipped oversized lines included
    oversized: tuple[tuple[int, int, bytes], ...] = ()


def expand(patterns: list[str]) -> list[str]:
    """Glob patterns → existing files, oldest first (rotated files before the live one)."""
    found: dict[str, float] = {}
    for pattern in patterns:
        if pattern == STDIN:
            found[STDIN] = 0.0
            continue
        matches = glob.glob(os.path.expanduser(pattern)) if glob.has_magic(pattern) else [pattern]
        for m in matches:
            if glob.has_magic(pattern) and not os.path.isfile(m):
                continue
            found[m] = _mtime(m)
    return sorted(found, key=lambda p: (found[p], p))


def expand_source(pattern: str, olddir: str | None = None) -> list[tuple[str, str]]:
    """(file, where it was written) for one source glob, oldest first.

    With logrotate's ``olddir``, rotated files are moved out of the log's directory. Each one maps back
    to the log's directory (``<dir>/<olddir>/access.log.1`` → ``<dir>/access.log.1``), so it keeps
    the stream scope (and the domain from the path) it had while it was written: its unread tail is
    read on from the committed offset, never again from its start.
    """
    homes: dict[str, str] = {}
    if olddir:
        directory, name = os.path.split(os.path.expanduser(pattern))
        for d in glob.glob(directory) if glob.has_magic(directory) else [directory]:
            old = olddir if os.path.isabs(olddir) else os.path.join(d, olddir)
            for moved in glob.glob(os.path.join(glob.escape(old), name)):
                if os.path.isfile(moved):
                    homes[moved] = os.path.join(d, os.path.basename(moved))
    return [(p, homes.get(p, p)) for p in expand([pattern, *homes])]


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0  # reported as unreadable when opened


def is_compressed(path: str) -> bool:
    return path.endswith(COMPRESSED_SUFFIXES)


def is_final(path: str, grace_seconds: float, now: float | None = None) -> bool:
    """A file no writer appends to any more: its last line is consumed even without a newline.

    Rotated or compressed files are final. A live file is final when untouched for ``grace_seconds``
    (servers write whole lines; a trailing partial line that old is a file without final newline).
    """
    if is_compressed(path) or _ROTATED_ONLY_RE.search(os.path.basename(path)):
        return True
    age = (now if now is not None else time.time()) - _mtime(path)
    return grace_seconds >= 0 and age >= grace_seconds


# magic numbers of compressed files: a rotated file is sometimes compressed under a plain name
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"BZh", "bz2"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\x04\x22\x4d\x18", "lz4"),
    (b"\x1f\x9d", "compress (.Z)"),
    (b"LZIP", "lzip"),
    (b"PK\x03\x04", "zip"),
    (b"7z\xbc\xaf\x27\x1c", "7-zip"),
)
_SUFFIX_CODEC = {
    ".gz": "gzip", ".zst": "zstd", ".bz2": "bz2", ".xz": "xz", ".lzma": "xz", ".lz4": "lz4", ".br": "brotli",
}  # fmt: skip
_READABLE = {"gzip", "bz2", "xz", "zstd", "lz4", "brotli"}


def open_stream(path: str) -> SourceStream:
    """A binary stream of the decompressed content, read errors raised as ``SourceError``.

    gzip, zstd, bz2, lz4 and brotli via pyarrow, xz/lzma via the standard library; chosen by suffix,
    or by magic number when a compressed file carries a plain name (``access.log.1`` gzipped by
    hand). A compression that cannot be read (``.Z``, lzip, zip, 7z) fails clearly: its bytes are
    never parsed as log lines.
    """
    if os.path.isdir(path):
        where = os.path.join(path, "*access*log*")
        raise SourceError(
            f"cannot open {path}: it is a directory; name the log files or a glob such as '{where}'"
        )
    try:
        with open(path, "rb") as probe:
            magic = probe.read(8)
    except OSError as exc:
        raise SourceError(f"cannot open {path}: {exc.strerror or exc}") from exc
    codec = next((c for m, c in _MAGIC if magic.startswith(m)), None)
    by_suffix = next((c for sfx, c in _SUFFIX_CODEC.items() if path.endswith(sfx)), None)
    if codec is None and path.endswith(UNREADABLE_SUFFIXES):
        codec = os.path.splitext(path)[1]
    if codec is None and by_suffix in ("brotli", "xz") and magic:
        codec = by_suffix  # brotli has no magic number; .lzma (legacy "alone" format) neither
    if codec is not None and codec not in _READABLE:
        raise SourceError(
            f"cannot read {path}: it is compressed with {codec}, which hostlogs cannot decompress; "
            f"decompress it (or recompress with gzip, xz or zstd) and ingest that file"
        )
    try:
        if codec == "xz":
            return SourceStream(lzma.open(path, "rb"), path)
        raw = pa.OSFile(path, "rb")
        if codec is not None:
            return SourceStream(pa.CompressedInputStream(raw, codec), path)
    except (OSError, pa.ArrowException, lzma.LZMAError) as exc:
        raise SourceError(f"cannot open {path}: {exc}") from exc
    return SourceStream(raw, path)


_READ_ERRORS = (OSError, EOFError, ValueError, pa.ArrowException, lzma.LZMAError, zlib.error)


class SourceStream:
    """A source stream whose read errors (I/O, corrupt compression) are ``SourceError``s.

    Reading a source and writing the store fail differently: a source that cannot be read is
    reported and retried next run (exit 10), a store that cannot be written stops the run (exit 6).
    Wrapping the reads makes the difference explicit instead of guessing from an ``OSError``.
    """

    def __init__(self, stream: Any, path: str) -> None:
        self._stream = stream
        self._path = path

    def _fail(self, exc: BaseException) -> SourceError:
        detail = getattr(exc, "strerror", None) or exc
        return SourceError(f"cannot read {self._path}: {detail}")

    def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        try:
            return method(*args)
        except _READ_ERRORS as exc:
            raise self._fail(exc) from exc

    def read(self, n: int = -1, /) -> bytes:
        return bytes(self._call(self._stream.read, n))

    def readinto(self, view: memoryview) -> int:
        return int(self._call(self._stream.readinto, view))

    def seek(self, offset: int) -> int:
        if isinstance(self._stream, pa.CompressedInputStream) or not self._stream.seekable():
            raise OSError("not seekable")
        return int(self._call(self._stream.seek, offset))

    def close(self) -> None:
        with contextlib.suppress(*_READ_ERRORS):
            self._stream.close()

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def read_head(path: str, length: int = FINGERPRINT_BYTES, *, final: bool = False) -> bytes | None:
    """The first ``length`` bytes (decompressed) that identify a stream, or None to wait.

    A file shorter than ``length`` is identified by what it has, cut back to its last complete line
    (so the identity is stable while the writer appends); one without a complete line yet gets None
    and waits, unless ``final`` (nobody appends any more). The caller keys these bytes (they are raw
    log lines: never stored, never hashed without a key).
    """
    with open_stream(path) as stream:
        head = _read_exact(stream, length)
    if not head:
        return None
    if len(head) < length and not final:
        cut = head.rfind(b"\n")
        if cut < 0:
            return None
        head = head[: cut + 1]
    return head


def legacy_fingerprint(scope: str, head: bytes) -> str:
    """The unkeyed stream key of hostlogs before keyed fingerprints (only to recognise old state)."""
    return hashlib.sha256(scope.encode() + b"\0" + head).hexdigest()[:32]


def read_range(path: str, start: int, end: int) -> bytes | None:
    """Decompressed bytes [start, end) of a file, or None when the file is shorter."""
    with open_stream(path) as stream:
        if skip(stream, start) < start:
            return None
        data = _read_exact(stream, end - start)
    return data if len(data) == end - start else None


def stream_scope(path: str) -> str:
    """What, besides content, tells two logs apart: their directory and base name without rotation suffix.

    Content alone is not enough: per-vhost logs carry no domain, and a monitor hitting every site in the
    same second right after rotation starts many files with identical bytes. ``access.log``,
    ``access.log.1``, ``access.log.2.gz`` and ``access.log-20261122`` share a scope (rename, compress,
    dateext and copytruncate keep working); logs in other directories or with other names never collide.
    A file logrotate moved into an ``olddir`` is scoped by where it was written (``expand_source``).
    """
    directory, name = os.path.split(os.path.realpath(path))
    base = _ROTATED_RE.sub("", name) or name
    return f"{directory}/{base}"


def compressed_by_magic(path: str) -> bool:
    """A compressed file under a plain name (its first bytes are a compression's magic number)."""
    try:
        with open(path, "rb") as probe:
            magic = probe.read(8)
    except OSError:
        return False
    return any(magic.startswith(m) for m, _ in _MAGIC)


def read_exact(stream: Readable, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
    return _read_exact(stream, n)


def _read_exact(stream: Readable, n: int) -> bytes:
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        chunk = stream.read(remaining)
        if not chunk:
            break
        parts.append(chunk)
        remaining -= len(chunk)
    return b"".join(parts)


def skip(stream: Readable, offset: int, chunk: int = 1 << 22) -> int:
    """Advance a (possibly compressed) stream to ``offset``; returns the offset actually reached."""
    pos = 0
    seek = getattr(stream, "seek", None)
    if seek is not None:
        try:
            seek(offset)
            return offset
        except (OSError, pa.ArrowException):
            pass
    while pos < offset:
        data = stream.read(min(chunk, offset - pos))
        if not data:
            break
        pos += len(data)
    return pos


def iter_blocks(
    stream: Readable,
    start: int,
    *,
    block_bytes: int,
    max_line_bytes: int,
    final: bool,
    size_hint: int | None = None,
    workers: int = 1,
) -> Iterator[Block]:
    """Yield blocks of complete lines from ``start``; memory ≤ block_bytes + max_line_bytes.

    When ``final`` is false an incomplete trailing line is not consumed: it waits for the next run.
    Each block is read straight into one buffer from Arrow's memory pool (no copies, and the pool
    reuses pages: fresh 32 MiB allocations per block cost more in page faults than the parse of
    a whole block's timestamps). With the stream's length known (``size_hint``), blocks are sized
    so that the workers finish together (``_even_chunk``).
    """
    carry = b""
    offset = range_start = start
    oversized: list[tuple[int, int, bytes]] = []
    digest = hashlib.sha256()
    chunk = _even_chunk(size_hint - start, block_bytes, workers) if size_hint is not None else block_bytes
    while True:
        buf = _read_block(stream, carry, chunk)
        if len(buf) == len(carry):  # end of stream
            if carry and final:
                digest.update(carry)
                end = offset + len(carry)
                yield Block(range_start, offset, end, carry, digest.hexdigest(), tuple(oversized))
            elif oversized:
                yield Block(range_start, offset, offset, b"", digest.hexdigest(), tuple(oversized))
            return
        cut = _last_newline(buf)
        if cut < 0 and len(buf) > max_line_bytes:
            skipped = _skip_line(stream, buf, block_bytes, digest)
            oversized.append((offset, skipped.length, bytes(buf[:REJECT_PREFIX])))
            offset += skipped.consumed
            carry = skipped.rest
            continue
        if cut < 0:
            carry = bytes(buf)
            continue
        data = buf[: cut + 1]
        digest.update(data)
        yield Block(range_start, offset, offset + cut + 1, data, digest.hexdigest(), tuple(oversized))
        digest = hashlib.sha256()
        oversized = []
        offset += cut + 1
        range_start = offset
        carry = bytes(buf[cut + 1 :])


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


def _read_block(stream: Readable, carry: bytes, block_bytes: int) -> memoryview:
    """``carry`` followed by up to ``block_bytes`` read from the stream, in one pooled buffer."""
    view = memoryview(pa.allocate_buffer(len(carry) + block_bytes)).cast("B")
    view[: len(carry)] = carry
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        n = readinto(view[len(carry) :])
    else:  # a plain Readable (stdin wrapper, tests): one copy
        chunk = stream.read(block_bytes)
        n = len(chunk)
        view[len(carry) : len(carry) + n] = chunk
    return view[: len(carry) + n]


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


REJECT_PREFIX = 2048


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
    ``flush_seconds``. At EOF or when ``stop()`` turns true (SIGTERM/SIGHUP) everything read is
    flushed, a last line without newline included: nothing read is lost on a clean stop.
    """
    buf = bytearray()
    offset = 0
    lines = 0
    oversized: list[tuple[int, int, bytes]] = []
    skipping: tuple[int, int, bytes] | None = None  # an oversized line being discarded
    deadline = time.monotonic() + flush_seconds
    while True:
        eof = False
        ready, _, _ = select.select([fd], [], [], max(0.0, min(deadline - time.monotonic(), 0.25)))
        if ready:
            chunk = os.read(fd, 1 << 20)
            eof = not chunk
            if skipping is not None and chunk:
                nl = chunk.find(b"\n")
                if nl < 0:
                    skipping = (skipping[0], skipping[1] + len(chunk), skipping[2])
                    chunk = b""
                else:
                    oversized.append((skipping[0], skipping[1] + nl, skipping[2]))
                    offset = skipping[0] + skipping[1] + nl + 1
                    skipping, chunk = None, chunk[nl + 1 :]
            buf += chunk
            lines += chunk.count(b"\n")
            if skipping is None and b"\n" not in buf and len(buf) > max_line_bytes:
                skipping, buf = (offset, len(buf), bytes(buf[:REJECT_PREFIX])), bytearray()
        stopping = eof or stop()
        if stopping and skipping is not None:  # an unterminated oversized last line
            oversized.append(skipping)
            offset, skipping = skipping[0] + skipping[1], None
        if stopping or lines >= flush_lines or len(buf) >= block_bytes or time.monotonic() >= deadline:
            cut = len(buf) if stopping else buf.rfind(b"\n") + 1
            if cut or oversized:
                data = bytes(buf[:cut])
                start = oversized[0][0] if oversized else offset
                yield Block(
                    start, offset, offset + cut, data, hashlib.sha256(data).hexdigest(), tuple(oversized)
                )
                del buf[:cut]
                offset += cut
                oversized = []
            lines = buf.count(b"\n")
            deadline = time.monotonic() + flush_seconds
        if stopping:
            return


class Prefixed:
    """A non-seekable stream (stdin) whose first bytes can be looked at before reading it."""

    def __init__(self, stream: Readable, peek: int) -> None:
        self._stream = stream
        self.head = _read_exact(stream, peek)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        if self._pos < len(self.head):
            out = self.head[self._pos : self._pos + n] if n >= 0 else self.head[self._pos :]
            self._pos += len(out)
            return out
        return self._stream.read(n)


def display_name(path: str) -> str:
    return "<stdin>" if path == STDIN else str(Path(path))
