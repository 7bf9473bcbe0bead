"""Source files the last ingest could not read to their end, kept for ``hostlogs status``.

A failed source makes the run exit non-zero, but only whoever reads cron's mail learns of it;
``status`` works from the store and the files, and some failures leave no trace there: a compressed
log cut short long ago commits nothing, and its lag is unknown without decompressing it, so status
said OK while every run failed on it. Each run records, for every file it tried, its failure or that
it had none (``_state/<writer>/failures.json``, written under the ingest lock, atomically). Status
shows a recorded failure for as long as the file is unchanged (same size and modification time): a
file that changed since is tried afresh by the next run. Files are known by a keyed digest of their
absolute path and messages are masked as rejects are: an address in a file's name is not written.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

from pipeline.errors import StoreError
from pipeline.ingest import sources
from pipeline.privacy.digests import stream_digest
from pipeline.privacy.mask import ClientMasker, mask_text
from pipeline.rules import escaped_text
from pipeline.store import layout
from pipeline.store.commit import Store

VERSION = 1


@dataclass(frozen=True)
class Failure:
    error: str  # the run's message for the file
    time: str  # ISO 8601 UTC of the run
    size: int  # the file as the run found it: a failure holds while these are unchanged
    mtime_ns: int

    def holds(self, st: os.stat_result) -> bool:
        return st.st_size == self.size and st.st_mtime_ns == self.mtime_ns


def load(store: Store) -> dict[str, Failure]:
    """The recorded failures of the store's writer by file (``_id``; none recorded: empty). The
    record only informs ``status``: one that is damaged or of another version is taken as empty
    (the next run writes it anew), never an error that would stop ingest or status. One that cannot
    be read at all (permissions, I/O) is a ``StoreError``: found by review, status then hid the files
    the last ingest failed on."""
    try:
        data = store.read_json(layout.failures(store.writer))
    except StoreError as exc:
        if isinstance(exc.__cause__, OSError):
            raise
        data = None
    files = data.get("files") if isinstance(data, dict) and data.get("version") == VERSION else None
    out = {}
    for key, entry in (files if isinstance(files, dict) else {}).items():
        with contextlib.suppress(TypeError, ValueError):  # an entry not of this version: forgotten
            failure = Failure(**entry)
            if isinstance(failure.time, str) and isinstance(failure.size, int):
                out[key] = failure
    return out


def of(failures: dict[str, Failure], stream_key: bytes, path: str) -> Failure | None:
    """The recorded failure of ``path`` if it still holds (the file is unchanged since)."""
    failure = failures.get(_id(stream_key, path))
    st = _stat(path) if failure is not None else None
    return failure if failure is not None and st is not None and failure.holds(st) else None


def named(error: str, name: str, masker: ClientMasker) -> str:
    """A recorded message with the file's masked name in it as the file is named (status prints
    the names of the files it checks: this one should be found by its name, not by its network)."""
    return error.replace(sources.stored_name(name, masker), name)


def record(
    store: Store, masker: ClientMasker, stream_key: bytes, tried: Iterable[tuple[str, str | None]]
) -> None:
    """Record the outcome of every file a run tried: ``(path, error or None)``. A failure is kept
    until the file is read without one; one no run has tried for a week (a file gone, or no longer
    a source) is forgotten (call under the ingest lock)."""
    now = dt.datetime.now(dt.UTC)
    week_ago = (now - dt.timedelta(days=7)).isoformat(timespec="seconds")
    before = load(store)
    known = {k: f for k, f in before.items() if f.time >= week_ago}  # (ISO UTC: text order)
    now_text = now.isoformat(timespec="seconds")
    stdin = sources.display_name(sources.STDIN)
    outcomes = {p: e for p, e in tried if p != stdin}
    # (an error names its file: bytes of a name that are no UTF-8 written as \xHH, like the name)
    failed = {p: escaped_text(e) for p, e in outcomes.items() if e is not None}
    # only the errors are masked: a run with none (the usual case) had compiled the masker's
    # patterns on this thread for nothing, ~12 ms at the very end of every run
    texts = (
        dict(zip(failed, mask_text(_series(list(failed.values())), masker), strict=True)) if failed else {}
    )
    for path in outcomes:
        st, key = _stat(path), _id(stream_key, path)
        if path not in texts or st is None:
            known.pop(key, None)
        else:
            known[key] = Failure(str(texts[path]), now_text, st.st_size, st.st_mtime_ns)
    if known != before or (known and not store.exists(layout.failures(store.writer))):
        store.write_json(layout.failures(store.writer), {"version": VERSION, "files": _dump(known)})


def _series(values: list[str]) -> Any:
    import polars as pl  # (ingest has it loaded; status, which only reads, does not need it)

    return pl.Series(values, dtype=pl.String)


def _id(stream_key: bytes, path: str) -> str:
    return stream_digest(stream_key, b"failed file", os.fsencode(os.path.abspath(path)))


def _dump(failures: dict[str, Failure]) -> dict[str, dict[str, Any]]:
    return {p: asdict(f) for p, f in sorted(failures.items())}


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


# A single rejected line (a scanner's garbage, a line cut by a crash) never fails a run by itself:
# with cron every few minutes a quiet site's run reads a handful of lines, and 1 of 3 is not a broken
# source (the next run shows whether it goes on). From two rejects on, the share decides.
MIN_REJECTS_TO_FAIL = 2


def reject_rate_error(lines: int, rejects: dict[str, int], max_rate: float) -> str | None:
    """Why a source rejected too many of its ``lines`` in this run (None: within ``max_rate``)."""
    rejected = sum(rejects.values())
    if rejected <= max_rate * lines or rejected < MIN_REJECTS_TO_FAIL:
        return None
    worst = max(rejects.items(), key=lambda kv: (kv[1], kv[0]))[0]
    return (
        f"{rejected:,} of {lines:,} lines rejected ({rejected / lines:.1%}, mostly {worst}), above "
        f"ingest.max_reject_rate = {max_rate:g}; its rows were committed and the rest quarantined: "
        "check its --format and --domain (query the rejects table), or raise ingest.max_reject_rate"
    )
