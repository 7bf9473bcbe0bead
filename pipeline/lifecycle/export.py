"""Export of a domain's or a visitor's rows (data portability, access requests): complete or absent.

``export`` writes every row of a domain, or of one client address (a visitor's access request: found
through its keyed pseudonym in each key period, as ``erase --ip`` finds it; the address itself is
never recorded or reported), by date then time, as CSV with a header, JSON lines, or
Parquet; timestamps are ISO 8601 UTC (``2026-11-01T10:00:00Z``). The file is written under a temporary
name and renamed when complete. An export is an access to the store: it is recorded in the audit trail
(started, then the outcome) under a case or request.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Literal, cast

import polars as pl
import pyarrow.parquet as pq

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.investigate.audit import text_masker
from pipeline.lifecycle.rewrite import partitions
from pipeline.lifecycle.session import ADVICE, DamagedFile, Session, keys_required, session
from pipeline.privacy.digests import checked_address, lookup_pseudonyms
from pipeline.privacy.keys import Period, period_id
from pipeline.privacy.truncate import SHARED_DOMAIN, domain_forms, is_shared, stored_domain
from pipeline.rules import check_range
from pipeline.store.commit import Store
from pipeline.store.output import refuse_inside, write_outside
from pipeline.store.schema import PAGEVIEWS

ExportFormat = Literal["csv", "jsonl", "parquet"]
EXPORT_FORMATS: tuple[ExportFormat, ...] = ("csv", "jsonl", "parquet")
ISO_UTC = "%Y-%m-%dT%H:%M:%S%.fZ"
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ExportReport:
    output: str
    domain: str | None
    format: ExportFormat
    rows: int
    partitions: int
    bytes: int
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    damaged: tuple[DamagedFile, ...] = ()  # skipped: the export lacks their rows
    by_address: bool = False  # one visitor's rows (the address is never reported)
    not_linkable: tuple[str, ...] = ()  # key periods whose key is gone: their rows cannot be found

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def export(
    cfg: Config,
    *,
    domain: str | None = None,
    fmt: ExportFormat,
    output: str | Path,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    wait: float = 0.0,
    case: str | None = None,
    request: str | None = None,
    reason: str | None = None,
    address: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> ExportReport:
    """Write every row of ``domain`` and/or of the client ``address`` (by date, then time) to
    ``output``: complete or absent. ``progress(done, total)`` is told the days read.

    An export reads the store, so it goes through the audited session like every query: a missing
    store fails first (exit 6, nothing recorded), then a missing or invalid case/request (exit 2),
    then the ``started`` entry; the outcome entry carries the rows written. The rows are read from
    the store's files under the maintenance lock, not through the SQL sandbox.
    """
    refuse_inside(output, store=Store(cfg.store), key_dir=cfg.key_dir)  # (checked again when written)
    # imported here: the session loads the query engine (DuckDB), which erase and hold never need
    from pipeline.investigate.session import audited

    domain = stored_domain(domain, text_masker(Store(cfg.store))) if domain is not None else None
    params = {"domain": domain, "format": fmt, "output": str(output),
              "visitor": "one client address (not recorded)" if address is not None else None,
              "from": str(date_from or "") or None, "to": str(date_to or "") or None}  # fmt: skip
    with audited(cfg, "export", case, reason, authority="export", request=request, params=params) as access:
        if fmt not in EXPORT_FORMATS:
            raise UsageError(f"unknown export format {fmt!r}: use {', '.join(EXPORT_FORMATS)}")
        check_range(date_from, date_to)
        if domain is None and address is None:
            raise UsageError("say what to export: --domain DOMAIN and/or --ip ADDRESS")
        if domain is not None and is_shared(domain):
            raise UsageError(SHARED_DOMAIN.format(what="export"))
        if address is not None:
            checked_address(address)
        out = Path(output)
        rule = _Rule(domain, _pseudonyms(cfg, address) if address is not None else None, date_from, date_to)
        # Under the maintenance lock: no purge, erasure or compaction retires a file while it is read.
        with session(cfg, "export", dry_run=False, wait=wait) as s:
            rows, days = _atomically(cfg, out, fmt, lambda w: _copy_days(s, w, rule, progress))
        access.record.rows = rows  # the outcome entry: how many rows left the store
    size = out.stat().st_size
    return ExportReport(
        str(out), domain, fmt, rows, days, size, date_from, date_to, tuple(s.damaged),
        by_address=address is not None, not_linkable=tuple(sorted(rule.lost)),
    )  # fmt: skip


def _pseudonyms(cfg: Config, address: str) -> dict[str, int | str]:
    """The address's pseudonym per key period ("destroyed" where its key is gone)."""
    keys = keys_required(cfg, Store.existing(cfg.store), "exporting by address")
    return dict(lookup_pseudonyms(address, keys)) if keys is not None else {}


@dataclass
class _Rule:
    """Which rows of a day go out: the domain's, the visitor's (its pseudonym in the day's period)."""

    domain: str | None
    ids: dict[str, int | str] | None  # None: not by address
    date_from: dt.date | None
    date_to: dt.date | None
    lost: set[str] = field(default_factory=set)  # periods whose rows cannot be linked to the address

    def wants(self, day: dt.date) -> bool:
        return not ((self.date_from and day < self.date_from) or (self.date_to and day > self.date_to))

    def of_day(self, day: dt.date, period: Period) -> pl.Expr | None:
        """The day's filter, or None when nothing of that day can be the visitor's."""
        cond = pl.col("domain").is_in(domain_forms(self.domain)) if self.domain else pl.lit(True)
        if self.ids is None:
            return cond
        pid = period_id(day, period)
        pseudonym = self.ids.get(pid)
        if not isinstance(pseudonym, int):
            self.lost.add(pid)
            return None
        return cond & (pl.col("client_id") == pseudonym)


def _copy_days(s: Session, writer: _Writer, rule: _Rule, progress: Progress | None) -> tuple[int, int]:
    """The selected rows, day by day, into ``writer``: (rows, days with rows)."""
    rows = days = 0
    period = cast(Period, s.cfg.privacy.key_period)
    chosen = {d: f for d, f in partitions(s.store).items() if rule.wants(d)}
    for n, (day, files) in enumerate(chosen.items(), 1):
        if progress is not None:
            progress(n - 1, len(chosen))
        cond = rule.of_day(day, period)
        if cond is None:
            continue
        frames = []
        for rel in files:
            # an altered or unreadable file is skipped and reported: the rest is exported
            if (problem := s.check(rel)) is not None:
                s.damage(rel, problem, f"skipped: the export lacks its rows ({ADVICE})")
                continue
            frames.append(s.store.read_parquet(rel).filter(cond))
        if not frames:
            continue
        frame = pl.concat(frames).sort("ts")
        if frame.height:
            writer.write(frame)
            rows, days = rows + frame.height, days + 1
    if progress is not None:
        progress(len(chosen), len(chosen))
    return rows, days


def _atomically(
    cfg: Config, out: Path, fmt: ExportFormat, fill: Callable[[_Writer], tuple[int, int]]
) -> tuple[int, int]:
    """``fill`` a temporary file beside ``out``, fsync it and rename it: ``out`` is complete or absent
    (and never in the store or the key directory: ``store/output.py``)."""

    def written(f: BinaryIO) -> tuple[int, int]:
        writer = _Writer(f, fmt)
        counts = fill(writer)
        writer.close()
        return counts

    try:
        return write_outside(out, written, store=Store(cfg.store), key_dir=cfg.key_dir)
    except OSError as exc:
        raise UsageError(f"cannot write {out}: {exc.strerror or exc}") from exc  # as query --output: exit 2


# A CSV cell a spreadsheet would take for a formula (a user agent ``=cmd|' /C calc'!A0``, a referrer
# ``=HYPERLINK(…)``): an access request's file is opened in one. Prefixed with ' as OWASP advises
# ("CSV injection"); JSON lines and Parquet keep every value as it is (found by review).
_FORMULA = r"^[=+\-@\t\r]"


def _spreadsheet_safe(frame: pl.DataFrame) -> pl.DataFrame:
    text = [c for c, t in frame.schema.items() if t == pl.String or isinstance(t, pl.Categorical | pl.Enum)]
    return frame.with_columns(
        pl.when(pl.col(c).cast(pl.String).str.contains(_FORMULA))
        .then("'" + pl.col(c).cast(pl.String))
        .otherwise(pl.col(c).cast(pl.String))
        .alias(c)
        for c in text
    )


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
            _spreadsheet_safe(text).write_csv(self.f, include_header=self.header)
        else:
            text.write_ndjson(self.f)
        self.header = False

    def close(self) -> None:
        if self.parquet is not None:
            self.parquet.close()
        elif self.fmt == "csv" and self.header:  # no rows: still a header
            pl.DataFrame(schema=PAGEVIEWS.names).write_csv(self.f)
