"""Which stream a file is and where to read it from: identity, resume, rotation, renames, rewrites.

A file is identified by content, keyed (``RunState.digest``): never by name or inode, which
logrotate changes and the kernel reuses. ``identify`` returns the stream key and an open stream at the
committed offset; ``batch`` then reads on from there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from pipeline.errors import HostlogsError, SourceError
from pipeline.ingest import sources
from pipeline.ingest.migrate import legacy_wrap
from pipeline.ingest.state import RunState, same_file
from pipeline.store.progress import StreamState


def same_file_as(r: RunState, path: str) -> str | None:
    """The name under which this run already read this very file (a hard link), if any."""
    try:
        st = os.stat(path)
    except OSError:
        return None  # reported when opened
    ident = (st.st_dev, st.st_ino)
    seen = r.inodes.get(ident)
    if seen is not None and os.path.realpath(seen) != os.path.realpath(path):
        return seen
    r.inodes.setdefault(ident, path)
    return None


@dataclass
class Ident:
    """How to read one file: its stream key and where to start (an open stream positioned there)."""

    key: str
    fp_len: int
    content: str  # keyed fingerprint of the first ``fp_len`` bytes, without the name's scope
    start: int
    replaces: list[str]
    stream: Any  # the open source, at ``start``
    tail: bytes  # the bytes just before ``start`` (up to sources.TAIL_BYTES)
    note: str | None = None
    skip_note: str | None = None  # set: nothing to read (an older copy of a stream read further)
    warning: str | None = None  # what ``--quiet`` shows too (a file rewritten in place)


def identify(r: RunState, path: str, final: bool, home: str) -> Ident | None:
    """Which stream a file is, and from which offset to read it; None to wait for a complete line.

    Identity is content, keyed (never an unkeyed hash of raw lines): the keyed fingerprint of the
    first KiB, scoped by directory and base name (``stream_scope``), and checked on resume against a
    keyed digest of the bytes just before the committed offset (``tail``). In order:

    1. the stream recorded under this file's scoped fingerprint (or one of its later generations),
       or under a legacy unkeyed fingerprint (migrated: ``migrate_store``), or under a fingerprint of
       fewer bytes taken while the file was short: read on from its offset if the tail matches;
    2. a stream with the same content whose recorded file no longer holds it: the file was renamed
       to a name of another scope (``access.log.gone``); read on from its offset;
    3. otherwise a new stream from the start. When (1) found the name's stream but its tail differs
       (rewritten with the same first KiB, or truncated and grown again), the new stream is a new
       *generation* of that key and the report says so: nothing is skipped silently.
    """
    head = sources.read_head(path, sources.FINGERPRINT_BYTES, final=final)
    if head is None:
        return None
    if b"\n" not in head and head[:-1].count(b"\r") >= 2:  # (found by review: the whole file was one reject;
        # two CRs at least, a last one aside: a long first line with a stray CR, a CRLF cut at the KiB)
        raise SourceError(
            f"{sources.display_name(path)} ends its lines with CR only (classic Mac): hostlogs reads lines "
            "ending in LF; convert it (tr '\\r' '\\n' < FILE > FILE.lf) and ingest that"
        )
    scope = os.fsencode(sources.stream_scope(home))
    fp_len = len(head)
    key = r.digest(b"scope", scope, head)
    content = r.digest(b"content", head)
    streams = r.progress.streams
    by_len = sorted({st.fp_len for st in streams.values() if st.fp_len <= fp_len}, reverse=True)
    # 1. the name's own stream(s)
    mismatched: list[tuple[str, StreamState]] = []
    for length in by_len:
        part = head[:length]
        legacy = _legacy_key(r, sources.legacy_fingerprint(os.fsdecode(scope), part))
        bases = [r.digest(b"scope", scope, part), legacy]
        for base in bases:
            for cand in _generations(streams, base):
                state = streams[cand]
                if state.fp_len != length:
                    continue
                opened = _open_at(r, path, cand, state)
                if isinstance(opened, _Open):
                    new_key = cand if length == fp_len and not state.legacy else _free(streams, key)
                    note = "recognised by its legacy fingerprint, now keyed" if state.legacy else None
                    return Ident(
                        new_key,
                        fp_len,
                        content,
                        state.offset,
                        [cand] if new_key != cand else [],
                        opened.stream,
                        opened.tail,
                        note,
                    )
                unchecked = None
                if opened == "older copy" and state.tail:
                    unchecked = _unchecked(r, path, cand, _length(path, state.offset))
                if opened == "older copy" and not (unchecked is not None and r.is_recorded_name(state, path)):
                    # (the stream's own file, now shorter, its end unchecked: rewritten, not a copy)
                    stream = sources.open_stream(path)
                    note = f"an older copy of stream {cand[:12]} (read to byte {state.offset:,}): nothing new"
                    if unchecked is not None:  # cut between two batches (copytruncate while a run read)
                        note += f" (its bytes after {unchecked:,} unchecked: its stream's file has changed)"
                    return Ident(cand, fp_len, content, state.offset, [], stream, b"", skip_note=note)
                mismatched.append((cand, state))
    # 2. renamed to a name of another scope: the same content, no longer under its recorded name
    renamed = _renamed_from(r, path, head, by_len)
    if renamed is not None:
        cand, state, opened = renamed
        new_key = _free(streams, key)
        recorded = r.recorded_file(state)
        if (
            recorded is not None
            and os.path.realpath(recorded) != os.path.realpath(path)
            and same_file(recorded, path)
        ):
            note = f"the same file as {state.path} (a hard link or another mount): read on from there"
        else:
            note = f"renamed: continues the stream last read as {state.path}"
        return Ident(new_key, fp_len, content, state.offset, [cand], opened.stream, opened.tail, note)
    # 3. a new stream
    note = warning = None
    if mismatched:
        cand, state = mismatched[0]
        note = (
            f"REWRITTEN: same first bytes as stream {cand[:12]}, but its content before byte "
            f"{state.offset:,} differs (rewritten, or truncated and grown again): read as a new stream "
            f"from its start"
        )
        # (found by review: silent under --quiet, though an edit in place stores its lines twice)
        warning = (
            f"its content before byte {state.offset:,} differs from what was read: read again from its "
            "start, as truncated and written anew; if it was edited in place instead, the lines it kept "
            "are stored twice (docs/ingestion.md, 'A file changed in place')"
        )
        key = _free(streams, key)
    return Ident(key, fp_len, content, 0, [], sources.open_stream(path), b"", note, warning=warning)


def _legacy_key(r: RunState, legacy: str) -> str:
    """A legacy unkeyed fingerprint as the state keeps it after migration: keyed too."""
    return legacy_wrap(r.stream_key, legacy)


def _generations(streams: dict[str, StreamState], base: str) -> list[str]:
    """``base`` and its later generations (``base~2``…: rewritten files with the same first KiB)."""
    found = [base] if base in streams else []
    n = 2
    while f"{base}~{n}" in streams:
        found.append(f"{base}~{n}")
        n += 1
    return found


def _free(streams: dict[str, StreamState], key: str) -> str:
    """``key``, or its next generation when a stream is recorded under it already."""
    if key not in streams:
        return key
    n = 2
    while f"{key}~{n}" in streams:
        n += 1
    return f"{key}~{n}"


@dataclass
class _Open:
    stream: Any
    tail: bytes


def _open_at(r: RunState, path: str, key: str, state: StreamState) -> _Open | str:
    """Open ``path`` at the stream's committed offset if the bytes before it match its recorded tail.

    Returns the open stream, or why not: "differs" (rewritten, or truncated and grown again), or
    "older copy" (shorter than the committed offset, and equal to the stream where it ends: a stale
    copy, nothing new in it; a legacy stream without a recorded tail: shorter than its offset).
    """
    offset = state.offset
    tail_len = min(state.tail_bytes, offset) if state.tail else 0
    stream = sources.open_stream(path)
    ok = False
    try:
        reached = sources.skip(stream, offset - tail_len)
        tail = sources.read_exact(stream, tail_len) if reached == offset - tail_len else b""
        if reached == offset - tail_len and len(tail) == tail_len:
            # no tail recorded (a legacy state): the file must at least reach the offset
            ok = r.digest(b"tail", tail) == state.tail if state.tail else _length(path, offset) >= offset
        if ok:
            return _Open(stream, tail)
    finally:
        if not ok:
            stream.close()
    length = _length(path, offset)
    if length < offset and (not state.tail or _is_older_copy(r, path, key, length)):
        return "older copy"
    return "differs"


def _length(path: str, at_least: int) -> int:
    """The decompressed length of a file, or ``at_least`` when it has that many bytes (cheap)."""
    if not sources.is_compressed(path) and not sources.compressed_by_magic(path):
        try:
            return os.path.getsize(path)
        except OSError:
            return 0
    with sources.open_stream(path) as stream:
        return sources.skip(stream, at_least)


def _is_older_copy(r: RunState, path: str, key: str, length: int) -> bool:
    """Is a file shorter than its stream's offset equal to the stream at the last batch end it covers?

    What it has past that end is checked against the stream's recorded file (``_unchecked``): the
    stream's own file replaced by one that begins the same, with other lines after that, had been
    taken for a stale copy and skipped without a word (found by review); it is read as rewritten.
    """
    ends = [c for c in r.checkpoints(key) if c[0] <= length]
    if not ends:
        return False
    end, tail_len, digest = max(ends)
    data = sources.read_range(path, end - tail_len, end)
    return data is not None and r.digest(b"tail", data) == digest


def _unchecked(r: RunState, path: str, key: str, length: int) -> int | None:
    """Where an older copy's check ended, when its bytes after that could not be checked (None: all)."""
    checkpoint = max(c for c in r.checkpoints(key) if c[0] <= length)  # (the one _is_older_copy checked)
    same = checkpoint[0] == length or _same_past(r, path, r.progress.streams[key], checkpoint, length)
    return None if same else checkpoint[0]


def _same_past(
    r: RunState, path: str, state: StreamState, checkpoint: tuple[int, int, str], length: int
) -> bool:
    """Does the stream's recorded file, at the same checkpoint, hold the bytes ``path`` has after it?"""
    end, tail_len, digest = checkpoint
    recorded = r.recorded_file(state)
    try:
        if recorded is None or os.path.samefile(recorded, path):
            return False
        data = sources.read_range(recorded, end - tail_len, end)
        if data is None or r.digest(b"tail", data) != digest:
            return False
        with sources.open_stream(path) as mine, sources.open_stream(recorded) as theirs:
            if sources.skip(mine, end) < end or sources.skip(theirs, end) < end:
                return False
            for at in range(end, length, 1 << 20):
                n = min(1 << 20, length - at)
                if sources.read_exact(mine, n) != sources.read_exact(theirs, n):
                    return False
        return True
    except (HostlogsError, OSError):
        return False


def _renamed_from(
    r: RunState, path: str, head: bytes, lengths: list[int]
) -> tuple[str, StreamState, _Open] | None:
    """A stream with this file's content (first bytes and tail) that its recorded file no longer holds.

    Such a file was renamed (or moved) to a name of another scope: read on from the stream's offset,
    never again from its start. A stream whose recorded file still holds it is another log that
    starts with the same bytes (an uptime monitor hitting every site at once) or a copy: not it.
    """
    streams = r.progress.streams
    index = r.content_index()
    best: tuple[str, StreamState, _Open] | None = None
    for length in lengths:
        for cand in index.get(r.digest(b"content", head[:length]), []):
            state = streams[cand]
            if state.fp_len != length or not state.tail:
                continue
            if not r.is_recorded_name(state, path) and _still_holds(r, cand, state):
                continue
            opened = _open_at(r, path, cand, state)
            if not isinstance(opened, _Open):
                continue
            if best is None or state.offset > best[1].offset:
                if best is not None:
                    best[2].stream.close()
                best = (cand, state, opened)
            else:
                opened.stream.close()
    return best


def _still_holds(r: RunState, key: str, state: StreamState) -> bool:
    """Does the file a stream was last read from still hold that stream (same content up to its offset)?

    A file this run cannot name (recorded under a masked name, and no longer among the source's
    files) holds it no longer: it was moved away, which is what a rename is.
    """
    recorded = r.recorded_file(state)
    try:
        if recorded is None or not os.path.isfile(recorded):
            return False
        head = sources.read_head(recorded, state.fp_len, final=True)
        if head is None or r.digest(b"content", head) != state.content:
            return False
        opened = _open_at(r, recorded, key, state)
    except (HostlogsError, OSError):
        return False
    if isinstance(opened, _Open):
        opened.stream.close()
        return True
    return False
