"""Compaction: merge each day's small files (cron and piped ingest write many) into few large ones.

A file is *small* when it is under half the target size; files at or above it are never rewritten. A
day's small files are read in order and merged into outputs of about the target size in the format of
``rewrite.encode_sorted`` (balanced ~131,072-row groups in domain order, path order inside), each output
replacing exactly the files it was made from in one ``Store.swap`` (readers see the old files or the new
one; a crash leaves one or the other and the next run carries on). Files an ingest adds meanwhile are
not in the list and stay. Every output but the last of a day reaches half the target, so after a run a
day has at most one small file and a second run does nothing.

A damaged small file (unreadable, altered against its committed checksum, or named in no manifest) is
not merged (merging would launder it into a new, correctly checksummed file): it stays as it is and the
report names it; the day's other files are compacted.

The first output of a day is packed by input bytes; its measured compression then sizes the next
ones (tiny ingest files carry footers and compress worse than one merged file). An output that came
out under half the target takes more input and is encoded again, up to 8x the target of input.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from pipeline.config import Config
from pipeline.lifecycle.rewrite import encode_sorted, partitions
from pipeline.lifecycle.session import ADVICE, DamagedFile, Session, session
from pipeline.store import layout

DEFAULT_TARGET_MB = 128.0
MAX_INPUT_FACTOR = 8  # bounds memory: one output is built from at most 8x the target of input


@dataclass(frozen=True)
class DayCompaction:
    date: dt.date
    files_before: int
    files_after: int
    files_merged: int
    rows_merged: int
    bytes_merged: int  # input bytes of the merged files
    bytes_written: int | None  # None in a dry run


@dataclass(frozen=True)
class CompactReport:
    store: str
    target_bytes: int
    dry_run: bool
    days: tuple[DayCompaction, ...]
    days_unchanged: int
    damaged: tuple[DamagedFile, ...] = ()  # small files left out of the merge

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def compact(
    cfg: Config,
    *,
    day: dt.date | None = None,
    target_mb: float = DEFAULT_TARGET_MB,
    dry_run: bool = False,
    wait: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
) -> CompactReport:
    """Merge the small files of every day (or of ``day``); idempotent.

    ``progress(done, total)`` is told the partitions (days) looked at.
    """
    target = max(1, int(target_mb * (1 << 20)))
    done: list[DayCompaction] = []
    unchanged = 0
    with session(cfg, "compact", dry_run=dry_run, wait=wait) as s:
        days = {d: files for d, files in partitions(s.store).items() if day is None or d == day}
        for n, (d, files) in enumerate(days.items(), 1):
            result = _compact_day(s, d, files, target)
            if progress is not None:
                progress(n, len(days))
            if result is None:
                unchanged += 1
            else:
                done.append(result)
        return CompactReport(s.store.location, target, dry_run, tuple(done), unchanged, tuple(s.damaged))


def _compact_day(s: Session, day: dt.date, files: list[str], target: int) -> DayCompaction | None:
    sizes = {f: s.store.size(f) for f in files}
    small = [f for f in files if sizes[f] < target / 2]
    if len(small) < 2:
        return None
    damaged = set()
    for f in small:
        if (problem := s.check(f)) is not None:
            s.damage(f, problem, f"not merged: left as it is ({ADVICE})")
            damaged.add(f)
    small = [f for f in small if f not in damaged]
    if len(small) < 2:
        return None
    rows = sum(s.store.parquet_rows(f) for f in small)
    outputs, written, merged = _merge(s, day, small, sizes, target)
    after = len(files) - merged + outputs
    merged_bytes = sum(sizes[f] for f in small)
    return DayCompaction(day, len(files), after, merged, rows, merged_bytes, None if s.dry_run else written)


def _merge(
    s: Session, day: dt.date, small: list[str], sizes: dict[str, int], target: int
) -> tuple[int, int, int]:
    """Merge ``small`` in order into outputs of about ``target`` bytes.

    Returns (outputs, bytes written, files merged).
    """
    ratio = 1.0  # output bytes per input byte, learned from this day's first encoding
    group: list[str] = []
    frames: list[pl.DataFrame] = []
    outputs = written = merged = 0
    for i, rel in enumerate(small):
        group.append(rel)
        frames.append(s.store.read_parquet(rel))
        size_in = sum(sizes[f] for f in group)
        last = i == len(small) - 1
        if size_in * ratio < target and not last:
            continue
        data = encode_sorted(pl.concat(frames))
        ratio = len(data) / size_in
        if len(data) < target / 2 and not last and size_in < MAX_INPUT_FACTOR * target:
            continue  # compressed better than expected: take more input, encode again
        if len(group) > 1:
            rows = sum(f.height for f in frames)
            record = {
                "table": layout.PAGEVIEWS,
                "date": day.isoformat(),
                "action": "compacted",
                "rows_moved": rows,
            }
            if not s.dry_run:  # a dry run encodes too: what it reports is exactly what a run does
                s.swap(list(group), {layout.new_part(day): data}, record)
            outputs, written, merged = outputs + 1, written + len(data), merged + len(group)
        group, frames = [], []
    return outputs, written, merged
