"""Erasure and export of a customer's (domain's) or a visitor's (address's) rows.

``erase`` removes rows everywhere they are, partition by partition (an atomic swap each: readers see
the old or the new files, never both or neither). A visitor is found through the keyed pseudonym
``client_id``: the address is keyed with each period's key and matched only against rows whose date
lies in that period. Where a period's key is destroyed (or never existed) its rows cannot be linked
to the address any more; they are reported as not erasable and left alone — in particular nothing is
erased by network (``client_net`` holds a whole /24 or /48: many visitors).

A legal hold overrides an erasure request (GDPR Art. 17(3)(e): rows needed for legal claims): held
rows stay and the report names the holds and counts the rows they kept.

``export`` writes a domain's rows (data portability, access requests) as CSV with a header, JSON
lines, or Parquet; timestamps are ISO 8601 UTC (``2026-11-01T10:00:00Z``); written atomically.
"""

from __future__ import annotations

import datetime as dt
import os
import uuid
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import polars as pl
import pyarrow.parquet as pq

from pipeline.config import Config
from pipeline.errors import StoreError, UsageError
from pipeline.investigate import audit
from pipeline.lifecycle import deletions
from pipeline.lifecycle.holds import active_holds
from pipeline.lifecycle.rewrite import (
    ADVICE,
    DamagedFile,
    PartitionChange,
    Selection,
    apply_partition,
    damaged_fields,
    held_counts,
    key_store,
    partitions,
    plan_partition,
    read_rows,
    session,
)
from pipeline.privacy.keys import Period, canonical_address, lookup_pseudonyms, period_id
from pipeline.store.commit import fsync_dir
from pipeline.store.schema import PAGEVIEWS

ExportFormat = Literal["csv", "jsonl", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "parquet")
ISO_UTC = "%Y-%m-%dT%H:%M:%S%.fZ"


@dataclass(frozen=True)
class NotErasable:
    """A key period whose rows cannot be matched to the address."""

    period: str
    reason: Literal["key destroyed", "no key"]
    partitions: int  # partitions of that period (in the date range) holding rows


@dataclass(frozen=True)
class EraseReport:
    store: str
    domain: str | None
    by_address: bool  # the address itself is never reported or recorded
    date_from: dt.date | None
    date_to: dt.date | None
    dry_run: bool
    partitions: tuple[PartitionChange, ...]
    held: dict[str, int]  # rows kept per hold case
    holds: tuple[str, ...]
    not_erasable: tuple[NotErasable, ...]
    record: str | None = None
    damaged: tuple[DamagedFile, ...] = ()  # their days were NOT erased
    not_erased: tuple[str, ...] = ()  # days left as they are because a file of theirs is damaged

    @property
    def rows_deleted(self) -> int:
        return sum(p.rows_deleted for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_deleted": self.rows_deleted}


def erase(
    cfg: Config,
    *,
    domain: str | None = None,
    address: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    dry_run: bool = False,
    wait: float = 0.0,
) -> EraseReport:
    """Remove a domain's rows, or one visitor's rows (optionally within a domain), in a date range."""
    if domain is None and address is None:
        raise UsageError("say what to erase: --domain DOMAIN and/or --ip ADDRESS")
    _check_range(date_from, date_to)
    if address is not None and canonical_address(address) is None:
        raise UsageError(f"not an IP address: {address!r}")
    domain = domain.lower() if domain else None
    period = cast(Period, cfg.privacy.key_period)
    with session(cfg, "erase", dry_run=dry_run, wait=wait) as s:
        keys = key_store(cfg)
        ids = lookup_pseudonyms(address, keys) if address is not None and keys is not None else {}
        holds = active_holds(s.store.root)
        plans: list[tuple[PartitionChange, Selection]] = []
        lost: dict[str, NotErasable] = {}
        blocked: list[str] = []
        stop = f"the erasure of its day was stopped: nothing of that day was erased ({ADVICE})"
        for day, files in partitions(s.store).items():
            if (date_from and day < date_from) or (date_to and day > date_to):
                continue
            doomed = pl.col("domain") == domain if domain else pl.lit(True)
            if address is not None:
                pid = period_id(day, period)
                pseudonym = ids.get(pid)
                if not isinstance(pseudonym, int):
                    why: Literal["key destroyed", "no key"] = "key destroyed" if pseudonym else "no key"
                    lost[pid] = NotErasable(pid, why, lost[pid].partitions + 1 if pid in lost else 1)
                    continue
                doomed = doomed & (pl.col("client_id") == pseudonym)
            sel = Selection(doomed, tuple(h for h in holds if h.covers_date(day)))
            change = plan_partition(s, day, files, sel, on_damage=stop)
            if change is not None and change.damaged:
                blocked.append(day.isoformat())  # its rows may hold what is to be erased: stop the day
            elif change is not None:
                plans.append((change, sel))
        report = EraseReport(
            store=str(s.store.root),
            domain=domain,
            by_address=address is not None,
            date_from=date_from,
            date_to=date_to,
            dry_run=dry_run,
            partitions=tuple(c for c, _ in plans),
            held=held_counts(c for c, _ in plans),
            holds=tuple(h.describe() for h in holds),
            not_erasable=tuple(lost.values()),
            record=None if dry_run else str(s.record),
            damaged=tuple(s.damaged),
            not_erased=tuple(blocked),
        )
        if not dry_run:
            params = {
                "domain": domain,
                "visitor": "one client address (not recorded)" if address else None,
                "from": date_from.isoformat() if date_from else None,
                "to": date_to.isoformat() if date_to else None,
                "holds": list(report.holds),
            }
            deletions.start(s.store, s.record, op=s.op, operation="erase", by=s.by, params=params)
            for change, sel in plans:
                apply_partition(s, change, sel)
            extra: dict[str, Any] = damaged_fields(report.damaged)
            if report.not_erased:
                extra["days_not_erased"] = list(report.not_erased)
            deletions.finish(
                s.store,
                s.record,
                partitions=[c.record() for c in report.partitions if c.action != "kept"],
                rows_deleted=report.rows_deleted,
                holds_honoured=deletions.counts(report.held, "case"),
                not_erasable=[asdict(n) for n in report.not_erasable],
                **extra,
            )
    return report


@dataclass(frozen=True)
class ExportReport:
    output: str
    domain: str
    format: ExportFormat
    rows: int
    partitions: int
    bytes: int
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    damaged: tuple[DamagedFile, ...] = ()  # skipped: the export lacks their rows

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(
    cfg: Config,
    *,
    domain: str,
    fmt: ExportFormat,
    output: str | Path,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    wait: float = 0.0,
    case: str | None = None,
    request: str | None = None,
    reason: str | None = None,
) -> ExportReport:
    """``_export``, recorded in the audit trail (started, then the outcome) under the case or request."""
    run = partial(_export, cfg, domain=domain, fmt=fmt, output=output, date_from=date_from,
                  date_to=date_to, wait=wait)  # fmt: skip
    if not Path(cfg.store).is_dir():
        return run()  # no store: its error, and no audit trail to create
    params = {"domain": domain.lower(), "format": fmt, "output": str(output),
              "from": str(date_from or "") or None, "to": str(date_to or "") or None}  # fmt: skip
    with audit.AuditLog(cfg.store).record("export", case, reason, request=request, params=params) as rec:
        report = run()
        rec.rows = report.rows
    return report


def _export(
    cfg: Config,
    *,
    domain: str,
    fmt: ExportFormat,
    output: str | Path,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    wait: float = 0.0,
) -> ExportReport:
    """Write every row of ``domain`` (by date, then time) to ``output``: complete or absent."""
    if fmt not in EXPORT_FORMATS:
        raise UsageError(f"unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}")
    _check_range(date_from, date_to)
    domain = domain.lower()
    out = Path(output)
    tmp = out.with_name(f".{out.name}.{uuid.uuid4().hex[:8]}.tmp")
    rows = days = 0
    # Under the maintenance lock: no purge, erasure or compaction retires a file while it is read.
    with session(cfg, "export", dry_run=False, wait=wait) as s:
        try:
            with open(tmp, "wb") as f:
                writer = _Writer(f, fmt)
                for day, files in partitions(s.store).items():
                    if (date_from and day < date_from) or (date_to and day > date_to):
                        continue
                    frames = []
                    for rel in files:
                        # an altered or unreadable file is skipped and reported: the rest is exported
                        if (problem := s.check(rel)) is not None:
                            s.damage(rel, problem, f"skipped: the export lacks its rows ({ADVICE})")
                            continue
                        frames.append(read_rows(s.store.root / rel).filter(pl.col("domain") == domain))
                    if not frames:
                        continue
                    frame = pl.concat(frames).sort("ts")
                    if frame.height:
                        writer.write(frame)
                        rows, days = rows + frame.height, days + 1
                writer.close()
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, out)
            fsync_dir(out.parent)
        except OSError as exc:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {out}: {exc.strerror or exc}") from exc
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    size = out.stat().st_size
    return ExportReport(str(out), domain, fmt, rows, days, size, date_from, date_to, tuple(s.damaged))


class _Writer:
    """Appends day by day: memory holds one day of one domain, whatever the export's size."""

    def __init__(self, f: BinaryIO, fmt: ExportFormat) -> None:
        self.f, self.fmt = f, fmt
        self.header = True
        self.parquet = pq.ParquetWriter(f, PAGEVIEWS, compression="zstd") if fmt == "parquet" else None

    def write(self, frame: pl.DataFrame) -> None:
        if self.parquet is not None:
            self.parquet.write_table(frame.to_arrow().cast(PAGEVIEWS))
            return
        text = frame.with_columns(pl.col("ts").dt.strftime(ISO_UTC))
        if self.fmt == "csv":
            text.write_csv(self.f, include_header=self.header)
        else:
            text.write_ndjson(self.f)
        self.header = False

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.fmt == "csv" and self.header:  # no rows: still a header
            pl.DataFrame(schema=PAGEVIEWS.names).write_csv(self.f)


def _check_range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    if date_from and date_to and date_from > date_to:
        raise UsageError(f"--from {date_from} is after --to {date_to}")
