"""Shared machinery of the maintenance operations (purge, erase, compact): sessions and rewrites.

Maintenance runs as its own store writer, ``maintenance``: its own lock, manifests and pending record,
so it never waits for cron ingestion or piped loggers, nor they for it. Every change to data files is
one ``Store.swap`` per partition: readers see the partition's old files until the commit and its new
files after it, never both or neither; a crash before the commit leaves the old files (the next run's
``recover`` removes the half-written new ones) and after it the next ``recover`` finishes retiring the
old ones. Only files listed at the start are ever retired: files an ingest adds meanwhile stay.

Within a partition the unit of work is a file: a file none of whose rows go is not touched, a file all
of whose rows go is retired, any other file is rewritten without those rows (``encode_sorted``: the
compacted format, a new ``part-<id>.parquet`` name).

Damaged files (not readable Parquet, altered against their manifest's checksum, or named in no
manifest) are never rewritten: a rewrite would launder them into a new, correctly checksummed file.
Each operation reports them (``DamagedFile``) and carries on with the rest; what it does with one is its
own rule (compaction and export skip it, erasure stops that day, the purge destroys it unread when its
whole day is past retention and under no hold, and leaves it otherwise).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline import __version__
from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.lifecycle import deletions
from pipeline.lifecycle.holds import MAINTENANCE_WRITER, Hold, current_user, maintenance_lock
from pipeline.privacy.keys import KeyStore, Period
from pipeline.store.commit import Catalogue, Progress, Store, encode_indexed, row_groups
from pipeline.store.schema import PAGEVIEW_COLUMNS, PAGEVIEWS

_DAY_DIR = re.compile(r"date=([0-9]{4}-[0-9]{2}-[0-9]{2})")
UNKNOWN_DOMAIN = "-"
Action = Literal["deleted", "rewritten", "kept"]


@dataclass
class Session:
    """One maintenance operation; ``progress`` is None in a dry run (no lock taken, nothing written)."""

    store: Store
    cfg: Config
    kind: str
    progress: Progress | None
    op: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    by: str = field(default_factory=current_user)
    damaged: list[DamagedFile] = field(default_factory=list)  # reported by the operation
    _catalogue: Catalogue | None = None

    @property
    def dry_run(self) -> bool:
        return self.progress is None

    @property
    def catalogue(self) -> Catalogue:
        """The committed files with their recorded checksums (read once per operation)."""
        if self._catalogue is None:
            self._catalogue = self.store.catalogue()
        return self._catalogue

    def check(self, rel: str, *, checksum: bool = True) -> str | None:
        """What is wrong with a file this operation is about to read or rewrite (None: nothing)."""
        record = self.catalogue.files.get(rel)
        if record is None:
            return "named in no manifest (planted, or its manifest is lost)"
        return self.store.check_file(rel, record, checksum=checksum)

    def damage(self, rel: str, problem: str, action: str) -> None:
        self.damaged.append(DamagedFile(rel, problem, action))

    @property
    def record(self) -> Path:
        return deletions.record_path(self.store, self.started, self.op)

    def swap(self, retire: list[str], add: dict[str, bytes], record: dict[str, Any]) -> None:
        assert self.progress is not None, "no writes in a dry run"
        meta = {"operation": self.kind, "op": self.op, "created": _now(), "hostlogs": __version__}
        self.store.swap(self.progress, retire, add, {**meta, **record})


@contextlib.contextmanager
def session(cfg: Config, kind: str, *, dry_run: bool, wait: float) -> Iterator[Session]:
    """Open the store as the maintenance writer: lock, finish what a crashed run left, then work."""
    store = open_store(cfg.store)
    if dry_run:  # read-only: no lock file, no recovery, no record
        yield Session(store, cfg, kind, None)
        return
    with maintenance_lock(store, wait):
        # Own state only: recovering other writers (Store.recover) would take their locks, and a cron
        # ingest or piped logger starting at that instant would exit 75. Ingest recovers them itself,
        # and readers (and so every maintenance operation) never see their uncommitted files.
        progress = store.recover(peers=False)  # never take an ingest writer's lock
        key_dir = Path(cfg.key_dir)
        deletions.recover(store, key_dir if key_dir.is_dir() else None)
        yield Session(store, cfg, kind, progress)


def open_store(root: str | Path) -> Store:
    store = Store(root, writer=MAINTENANCE_WRITER)
    if not store.pageviews.is_dir():
        raise StoreError(f"no store at {store.root}: run 'hostlogs ingest' first or give --store")
    return store


def key_store(cfg: Config) -> KeyStore | None:
    """The pseudonym keys, or None when there are none (never creates the key directory)."""
    key_dir = Path(cfg.key_dir)
    return KeyStore(key_dir, cast(Period, cfg.privacy.key_period)) if key_dir.is_dir() else None


def partitions(store: Store, table: str = "pageviews", *, hidden: bool = False) -> dict[dt.date, list[str]]:
    """Committed files per partition date (``hidden=True``: every file on disk, for verification)."""
    base = store.root / table
    listed = sorted(base.glob("date=*/*.parquet")) if hidden else store.committed(base)
    out: dict[dt.date, list[str]] = {}
    for path in listed:
        m = _DAY_DIR.fullmatch(path.parent.name)
        if m is None:
            continue
        with contextlib.suppress(ValueError):
            out.setdefault(dt.date.fromisoformat(m[1]), []).append(path.relative_to(store.root).as_posix())
    return out


@dataclass(frozen=True)
class DamagedFile:
    """A file an operation could not use as it is, and what the operation did about it."""

    path: str  # relative to the store root
    problem: str
    action: str

    def describe(self) -> str:
        return f"{self.path}: {self.problem}; {self.action}"


ADVICE = "run 'hostlogs verify' and treat it as an incident"


def damaged_fields(damaged: Iterable[DamagedFile]) -> dict[str, Any]:
    """The deletion record's ``damaged_files`` (only when there are any: older records stay alike)."""
    entries = [{"file": d.path, "problem": d.problem, "action": d.action} for d in damaged]
    return {"damaged_files": entries} if entries else {}


def file_rows(path: Path) -> int:
    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except OSError as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc


def held_counts(changes: Iterable[PartitionChange]) -> dict[str, int]:
    """Rows kept per hold case, over partitions."""
    out: dict[str, int] = {}
    for change in changes:
        for case, n in change.holds.items():
            out[case] = out.get(case, 0) + n
    return out


def remove_empty_dir(path: Path) -> None:
    """Drop a partition directory once it has no files (an ingest writing into it keeps it)."""
    with contextlib.suppress(OSError):
        os.rmdir(path)


# ----------------------------------------------------------------------------------------------------
# Row selection within one partition


@dataclass(frozen=True)
class Selection:
    """Rows an operation removes from one partition (``doomed``), and the holds covering that date."""

    doomed: pl.Expr
    holds: tuple[Hold, ...] = ()

    def delete(self) -> pl.Expr:
        held = pl.any_horizontal([h.row_filter() for h in self.holds]) if self.holds else pl.lit(False)
        return self.doomed.fill_null(False) & ~held


@dataclass(frozen=True)
class PartitionChange:
    """What an operation does (or, in a dry run, would do) to one partition."""

    table: str
    date: dt.date
    action: Action
    rows_deleted: int
    rows_left: int
    files: tuple[str, ...] = ()  # files retired or rewritten
    domains: dict[str, int] = field(default_factory=dict)  # rows deleted per domain
    holds: dict[str, int] = field(default_factory=dict)  # rows kept per hold case
    dropped: tuple[str, ...] = ()  # files of ``files`` all of whose rows go: retired, not rewritten
    damaged: tuple[str, ...] = ()  # damaged files left as they are (see ``Session.damaged``)

    def record(self) -> dict[str, Any]:
        """The JSON form (commit record and deletion log): counts, no file or personal data."""
        return {
            "table": self.table,
            "date": self.date.isoformat(),
            "action": self.action,
            "rows_deleted": self.rows_deleted,
            "rows_left": self.rows_left,
            "domains": deletions.counts(self.domains, "domain"),
            "holds": deletions.counts(self.holds, "case"),
        }


def plan_partition(
    s: Session, day: dt.date, files: list[str], sel: Selection, *, whole: bool = False,
    committed_only: bool = True, on_damage: str = "left untouched",
) -> PartitionChange | None:  # fmt: skip
    """Count what ``sel`` removes and what holds keep, reading only the columns it needs.

    ``whole``: every row of the day goes whatever it holds (past retention, under no hold), so a damaged
    file is retired unread. Otherwise a damaged file is left as it is (``on_damage`` says so in the
    report), and so is a file to be rewritten whose bytes differ from its committed checksum.
    ``committed_only=False`` (verification of every file on disk) skips the manifest checks.
    """
    store = s.store
    rows = deleted = 0
    touched: list[str] = []
    dropped: list[str] = []
    bad: list[str] = []
    domains: dict[str, int] = {}
    kept: dict[str, int] = {}
    for rel in files:
        problem = s.check(rel, checksum=False) if committed_only else None
        frame = None
        if problem is None:
            try:
                frame = read_rows(store.root / rel, ["domain", "client_id"])
            except StoreError as exc:
                problem = store.check_file(rel) or str(exc)
        if frame is None:
            record = s.catalogue.files.get(rel) if committed_only else None
            n = record.rows if record is not None and record.rows is not None else 0
            rows += n
            if whole:
                touched.append(rel)
                dropped.append(rel)
                deleted += n
                s.damage(rel, str(problem), "destroyed unread: its day is past retention, under no hold")
            else:
                bad.append(rel)
                s.damage(rel, str(problem), on_damage)
            continue
        doomed = sel.doomed.fill_null(False)
        flags = frame.select(
            pl.col("domain").fill_null(UNKNOWN_DOMAIN),
            doomed.alias("_doomed"),
            sel.delete().alias("_delete"),
            *[(doomed & h.row_filter()).alias(f"_hold{i}") for i, h in enumerate(sel.holds)],
        )
        rows += frame.height
        gone = flags.filter(pl.col("_delete"))
        if committed_only and 0 < gone.height < frame.height and (problem := s.check(rel)) is not None:
            bad.append(rel)  # a rewrite would launder it into a new, correctly checksummed file
            s.damage(rel, problem, on_damage)
            continue
        if gone.height:
            touched.append(rel)
            deleted += gone.height
            if gone.height == frame.height:
                dropped.append(rel)
            for name, n in gone.group_by("domain").len().iter_rows():
                domains[name] = domains.get(name, 0) + n
        for i, hold in enumerate(sel.holds):
            if n_held := int(flags.get_column(f"_hold{i}").sum()):
                kept[hold.case] = kept.get(hold.case, 0) + n_held
    if not deleted and not kept and not bad:
        return None
    action: Action = "kept" if not deleted else "deleted" if deleted == rows else "rewritten"
    return PartitionChange(
        "pageviews", day, action, deleted, rows - deleted, tuple(touched), domains, kept, tuple(dropped),
        tuple(bad),
    )  # fmt: skip


def apply_partition(s: Session, change: PartitionChange, sel: Selection, *, drop_empty: bool = False) -> None:
    """Retire or rewrite the files ``change`` touches, in one swap.

    ``drop_empty`` (purge: expired days only) then removes the emptied ``date=`` directory. Erasure
    leaves it: it may empty today's partition, and an ingest about to write there needs the directory.
    """
    if not change.files:
        return
    add: dict[str, bytes] = {}
    for rel in change.files:
        if rel in change.dropped:  # every row goes: nothing to read (it may be unreadable)
            continue
        frame = read_rows(s.store.root / rel)
        left = frame.filter(~sel.delete())
        if left.height:
            add[new_part_name(change.date)] = encode_sorted(left)
    s.swap(list(change.files), add, change.record())
    if drop_empty:
        remove_empty_dir(s.store.root / "pageviews" / f"date={change.date.isoformat()}")


def new_part_name(day: dt.date) -> str:
    return f"pageviews/date={day.isoformat()}/part-{uuid.uuid4().hex[:16]}.parquet"


def encode_sorted(frame: pl.DataFrame) -> pa.Buffer:
    """The compacted file format (see ``store.encode_indexed`` for its bloom filters and encodings).

    Row groups split the rows in domain order, so each covers a contiguous range of domains and a
    one-domain query prunes the others by their min/max statistics. Inside a row group the rows are
    ordered by (path, domain, ts): a path is the predicate investigations use most, and with all rows
    of a path adjacent the matches of a pattern form a few long runs, so DuckDB skips decoding the
    other columns of every row batch without a match. Domain-major order inside the group left one
    short run per domain (2,000 a day), a match in nearly every batch. Measured on a two-year store of
    100M rows (``scripts/bench_query.py``): a path pattern 2.09 → 1.42 s, same file size.
    """
    ordered = frame.sort(["domain", "path", "ts"], nulls_last=True)
    groups = [
        ordered.slice(start, length).sort(["path", "domain", "ts"], nulls_last=True)
        for start, length in row_groups(ordered.height)
    ]
    return encode_indexed(pl.concat(groups) if groups else ordered)


def read_rows(path: Path, columns: list[str] | None = None) -> pl.DataFrame:
    """A data file in the current schema: columns it predates (older hostlogs) come back as nulls."""
    try:
        present = set(pq.read_schema(path).names)
        wanted = columns or PAGEVIEW_COLUMNS
        frame = pl.read_parquet(path, columns=[c for c in wanted if c in present])
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StoreError(f"cannot read {path}: {exc}") from exc
    schema = _SCHEMA.schema
    return frame.select(
        pl.col(c).cast(schema[c]) if c in present else pl.lit(None, schema[c]).alias(c) for c in wanted
    )


_SCHEMA = cast(pl.DataFrame, pl.from_arrow(PAGEVIEWS.empty_table()))


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat()
