"""Finding log files and opening them as streams (plain or compressed) read from an offset.

Offsets are positions in the *decompressed* stream, so ``access.log.1`` and its later
``access.log.1.gz`` share offsets. A file is identified by a fingerprint of its first bytes
(see ``fingerprint``), not by name or inode, which logrotate changes and the kernel reuses.
"""

from __future__ import annotations

import contextlib
import hashlib
import lzma
import os
import re
import stat
import time
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

import pyarrow as pa
from isal import igzip

from pipeline.errors import SourceError, SourceGone, SourceRewritten
from pipeline.ingest.source_stream import SourceStream, cut_short
from pipeline.ingest.xz_streams import XzStreams
from pipeline.privacy.digests import stream_digest
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.rules import escaped_text

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
STDIN = "-"


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0  # reported as unreadable when opened


def is_compressed(path: str) -> bool:
    return path.endswith(COMPRESSED_SUFFIXES)


def empty_archive(path: str) -> str | None:
    """Why a compressed file holds no stream at all, or None. Even an empty log compresses to a
    header: 0 bytes is a compressor that died or a full disk (found by review: the file had been
    "waiting: no complete line yet", exit 0, forever)."""
    if is_compressed(path) and os.path.getsize(path) == 0:
        return (
            f"{display_name(path)} is empty, though a compressed file holds at least its header: its "
            "compression failed or was cut; check what wrote it"
        )
    return None


def is_final(path: str, grace_seconds: float, now: float | None = None) -> bool:
    """A file no writer appends to any more: its last line is consumed even without a newline.

    Any file, rotated and compressed ones too, is final when untouched for ``grace_seconds`` (servers
    write whole lines; a trailing partial line that old is a file without final newline). A name says
    nothing about writers: Apache appends to ``access.log.1`` between logrotate's rename and its
    reload, copytruncate's copy and a compressor write it progressively, and a gzip or bz2 file of
    several members looks complete at each member's end. Until then its last partial line waits.
    """
    age = (now if now is not None else time.time()) - mtime(path)
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


def _cannot_open(path: str, exc: OSError) -> SourceError:
    # (a link to nowhere is there, and broken: it fails; only a name that is gone is SourceGone)
    kind = SourceGone if isinstance(exc, FileNotFoundError) and not os.path.lexists(path) else SourceError
    return kind(
        f"cannot open {path}: {exc.strerror or exc}; check the path (command line or [[sources]]) "
        "and that this user may read it"
    )


def open_stream(path: str) -> SourceStream:
    """A binary stream of the decompressed content, read errors raised as ``SourceError``.

    gzip via ISA-L (``isal``: 1.4x faster than zlib; a decompressing thread of its own measured no
    better, the two parsing workers keep both cores busy), zstd, bz2, lz4 and brotli via pyarrow,
    xz/lzma via the standard library; chosen by suffix, or by magic number when a compressed file
    carries a plain name (``access.log.1`` gzipped by hand). A compression that cannot be read
    (``.Z``, lzip, zip, 7z) fails clearly: its bytes are never parsed as log lines.
    """
    if os.path.isdir(path):
        where = os.path.join(path, "*access*log*")
        raise SourceError(
            f"cannot open {path}: it is a directory; name the log files or a glob such as '{where}'"
        )
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise _cannot_open(path, exc) from exc
    if not stat.S_ISREG(mode):  # opening a FIFO would block until a writer came: forever, under cron
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a socket" if stat.S_ISSOCK(mode) else "no regular file"
        raise SourceError(f"cannot read {path}: it is {kind}; pipe it into 'hostlogs ingest -' instead")
    try:
        with open(path, "rb") as probe:
            magic = probe.read(8)
    except OSError as exc:
        raise _cannot_open(path, exc) from exc
    codec = next((c for m, c in _MAGIC if magic.startswith(m)), None)
    by_suffix = next((c for sfx, c in _SUFFIX_CODEC.items() if path.endswith(sfx)), None)
    if codec is None and magic and any(m.startswith(magic) and c == by_suffix for m, c in _MAGIC):
        # fewer bytes than its name's magic number, and those fit it: a compressor has just begun
        raise cut_short(path)
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
            return SourceStream(XzStreams(path), path, compressed=True)
        if codec == "gzip":
            return SourceStream(igzip.open(path, "rb"), path, compressed=True, gzip=True)  # type: ignore[no-untyped-call]
        raw = pa.OSFile(os.fsencode(path), "rb")  # bytes: a name that is no UTF-8 opens too
        if codec is not None:
            return SourceStream(pa.CompressedInputStream(raw, codec), path, compressed=True)
    except (OSError, pa.ArrowException, lzma.LZMAError) as exc:
        if isinstance(exc, FileNotFoundError):  # removed since the probe
            raise _cannot_open(path, exc) from exc
        raise SourceError(f"cannot open {path}: {exc}") from exc
    return SourceStream(raw, path)


def rewrite_guard(stream: SourceStream, path: str) -> Callable[[int], None] | None:
    """For a plain file: a check, after each read up to byte ``n``, that the open file still begins
    with the bytes it began with and is not shorter than ``n``. Else ``SourceRewritten``.

    logrotate's copytruncate empties the file the run is reading, and the server writes it again:
    the run read on at its offset, into the new content, and stored it as the rest of the old stream
    (found by review: the next run then read the copy again from its start, and the new file too:
    every line of the run doubled, and one line made of two). The block read last is not kept: it
    may be of either content. What was read before is; the copy has the rest, from there.
    """
    fd = stream.fileno()
    if fd is None:
        return None
    head = os.pread(fd, FINGERPRINT_BYTES, 0)

    def check(n: int) -> None:
        if os.fstat(fd).st_size < n or os.pread(fd, len(head), 0) != head:
            raise SourceRewritten(
                f"{display_name(path)} was truncated or rewritten while read (copytruncate?): its lines "
                "up to there are kept, the rest is read from its copy next run"
            )

    return check


def read_head(path: str, length: int = FINGERPRINT_BYTES, *, final: bool = False) -> bytes | None:
    """The first ``length`` bytes (decompressed) that identify a stream, or None to wait.

    A file shorter than ``length`` is identified by what it has, cut back to its last complete line
    (so the identity is stable while the writer appends); one without a complete line yet gets None
    and waits, unless ``final`` (nobody appends any more). The caller keys these bytes (they are raw
    log lines: never stored, never hashed without a key).
    """
    with open_stream(path) as stream:
        head = read_exact(stream, length)
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
    return hashlib.sha256(os.fsencode(scope) + b"\0" + head).hexdigest()[:32]


def read_range(path: str, start: int, end: int) -> bytes | None:
    """Decompressed bytes [start, end) of a file, or None when the file is shorter."""
    with open_stream(path) as stream:
        if skip(stream, start) < start:
            return None
        data = read_exact(stream, end - start)
    return data if len(data) == end - start else None


def stream_scope(path: str) -> str:
    """What, besides content, tells two logs apart: their directory and base name without rotation suffix.

    Content alone is not enough: per-vhost logs carry no domain, and a monitor hitting every site in the
    same second right after rotation starts many files with identical bytes. ``access.log``,
    ``access.log.1``, ``access.log.2.gz`` and ``access.log-20261122`` share a scope (rename, compress,
    dateext and copytruncate keep working); logs in other directories or with other names never collide.
    A file logrotate moved into an ``olddir`` is scoped by where it was written (``globs.expand_source``).
    """
    directory, name = os.path.split(os.path.realpath(path))
    base = _ROTATED_RE.sub("", name) or name
    return f"{directory}/{base}"


def compressed_by_magic(path: str) -> bool:
    """A compressed file under a plain name (its first bytes are a compression's magic number)."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO would block the open (open_stream says so)
            return False
        with open(path, "rb") as probe:
            magic = probe.read(8)
    except OSError:
        return False
    return any(magic.startswith(m) for m, _ in _MAGIC)


def read_exact(stream: Readable, n: int) -> bytes:
    """Up to ``n`` bytes: fewer only at the end of the stream."""
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


def display_name(path: str) -> str:
    """A file's name as text: bytes that are no UTF-8 (a name is any bytes on Linux) as \\xHH."""
    return "<stdin>" if path == STDIN else escaped_text(str(Path(path)))


def stored_name(path: str, truncator: Truncator) -> str:
    """A file's name as the store, the state and the metrics keep it: every address in it masked
    (``access.log.203.0.113.77`` is a name logrotate setups use). What ingest needs to find the
    file again is its ``path_id``."""
    return mask_value(display_name(path), truncator)


# a network as ``stored_name`` writes an address (203.0.113.0/24, 2001:db8::/48), or its placeholder
_MASKED = re.compile(r"[0-9A-Fa-f.:]*[.:][0-9A-Fa-f.:]*/[0-9]{1,3}|\[ipv6\]|\[email\]")
_NEAR_ENTRIES = 200_000  # directory entries looked at, at most, for one name


def files_near(shown: str) -> list[str]:
    """The files where a file whose masked name is ``shown`` can be: under the directory before its
    first masked part, at the depth its name has there (the "/24" a mask writes is no directory).
    Their ``path_id`` tells which it is; the search stops after ``_NEAR_ENTRIES`` entries."""
    found = _MASKED.search(shown)
    if found is None:
        return []
    top = os.path.dirname(shown[: found.start()] + "x") or "."
    written = sum("/" in m.group() for m in _MASKED.finditer(shown, found.start()))
    depth = max(shown.count("/", found.start()) - written, 0) + 1
    level, budget = [top], _NEAR_ENTRIES
    for n in range(depth):
        last, deeper = n == depth - 1, list[str]()
        for folder in level:
            with contextlib.suppress(OSError), os.scandir(folder) as entries:
                for entry in entries:
                    budget -= 1
                    if budget < 0:
                        return deeper if last else []
                    if entry.is_dir(follow_symlinks=False) != last:
                        deeper.append(entry.path)
        level = deeper
    return level


def path_id(stream_key: bytes, path: str) -> str:
    """A file's absolute path as a keyed digest: how state and manifests know which file it was
    without keeping a name that may hold an address (``stored_name``)."""
    return stream_digest(stream_key, b"path", os.fsencode(os.path.abspath(path)))
