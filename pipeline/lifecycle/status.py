"""``hostlogs status``: how the store is doing, in one read-only pass, for operators and monitoring.

What it reports: the store's location, size and files; the pageviews rows, files and oldest and
newest day; the retention horizon and the partitions older than it (held, or not: those need a
purge); the active legal holds; the sources (their lag and last run, computed by the ingest stage
and passed in: ``pipeline.ingest.lag``); rejects of the last 24 hours by reason (from the manifests,
which count them exactly by commit time); the key periods and their state; the last purge, erasure
and compaction. Nothing is locked, created or written.

Past the horizon, a partition counts as *held* when an active hold covers its date; a hold scoped to
one domain keeps only that domain's rows, so such a day may still hold other expired rows:
``hostlogs purge --verify`` is the exact, row-level proof. Per-domain retention is not evaluated here.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.lifecycle import deletions
from pipeline.lifecycle.holds import Hold, active_holds
from pipeline.lifecycle.retention import Policy
from pipeline.lifecycle.rewrite import partitions
from pipeline.lifecycle.session import MAINTENANCE_WRITER, key_store, keys_expected
from pipeline.privacy.truncate import Truncator
from pipeline.store import layout
from pipeline.store.commit import Store


class SourceCheck(Protocol):
    """A source's state as the ingest stage reports it (``pipeline.ingest.lag.SourceLag``)."""

    @property
    def problem(self) -> str | None: ...

    def to_dict(self) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Usage:
    """What the store holds on disk."""

    bytes: int
    files: int
    pageview_files: int
    pageview_rows: int
    days: tuple[dt.date, ...]  # committed pageviews partitions, oldest first
    unreadable: tuple[str, ...] = ()  # committed files whose row count could not be read


@dataclass(frozen=True)
class RetentionState:
    retention: str
    horizon: dt.date  # first day kept
    expired: tuple[dt.date, ...]  # partitions before the horizon that no active hold covers
    held: tuple[dt.date, ...]  # partitions before the horizon that an active hold covers


@dataclass(frozen=True)
class Operation:
    """The last run of a maintenance operation (None fields: not recorded)."""

    time: str
    status: str | None = None
    rows_deleted: int | None = None


@dataclass(frozen=True)
class KeyState:
    period: str
    created: dt.datetime
    destroyed: dt.datetime | None


@dataclass(frozen=True)
class StatusReport:
    store: str
    now: dt.datetime
    usage: Usage
    retention: RetentionState
    holds: tuple[str, ...]  # active holds, described (case, domain, dates; never the reason)
    sources: tuple[SourceCheck, ...]
    rejects_24h: dict[str, int]
    keys: tuple[KeyState, ...]
    last: dict[str, Operation | None] = field(default_factory=dict)  # purge, erase, compact, publish
    key_dir: str | None = None  # the configured key directory when it is missing though the store has keys

    @property
    def problems(self) -> tuple[str, ...]:
        """What needs attention, one line each naming it; empty when healthy."""
        out = []
        r = self.retention
        if r.expired:
            out.append(
                f"{len(r.expired)} partition(s) older than the retention horizon ({r.horizon}) under no "
                f"hold, oldest {r.expired[0]}: run 'hostlogs purge'"
            )
        if self.usage.unreadable:
            out.append(
                f"{len(self.usage.unreadable)} committed file(s) cannot be read, first "
                f"{self.usage.unreadable[0]}: run 'hostlogs verify'"
            )
        if self.key_dir is not None:
            out.append(
                f"no key directory at {self.key_dir}, but the store was ingested with keys: check "
                "privacy.key_dir (erasure and export by address, purge and its proof need them; gone for "
                "good: purge --keys-lost)"
            )
        out += [p for s in self.sources if (p := s.problem)]
        return tuple(out)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        u, r = self.usage, self.retention
        return {
            "ok": self.ok,
            "problems": list(self.problems),
            "store": self.store,
            "now": self.now.isoformat(),
            "store_bytes": u.bytes,
            "store_files": u.files,
            "pageviews": {
                "rows": u.pageview_rows,
                "files": u.pageview_files,
                "partitions": len(u.days),
                "oldest_day": _iso(u.days[0] if u.days else None),
                "newest_day": _iso(u.days[-1] if u.days else None),
                "unreadable_files": list(u.unreadable),
            },
            "retention": {
                "retention": r.retention,
                "first_day_kept": r.horizon.isoformat(),
                "expired_partitions": [d.isoformat() for d in r.expired],
                "held_partitions": [d.isoformat() for d in r.held],
            },
            "holds": list(self.holds),
            "sources": [s.to_dict() for s in self.sources],
            "rejects_24h": self.rejects_24h,
            "keys": [
                {"period": k.period, "created": k.created.isoformat(), "destroyed": _iso(k.destroyed)}
                for k in self.keys
            ],
            "last": {op: None if o is None else vars(o) for op, o in self.last.items()},
        }


def status(
    cfg: Config, sources: Sequence[SourceCheck] = (), *, now: dt.datetime | None = None
) -> StatusReport:
    """The state of the store of ``cfg`` (which must exist); ``sources`` from ``ingest.lag``."""
    now = now or dt.datetime.now(dt.UTC)
    store = Store.existing(cfg.store)
    usage = store_usage(store)
    holds = active_holds(store)
    keys = key_store(cfg, store, unreadable_ok=True)  # (a report: it lists the keys it may see)
    return StatusReport(
        store=store.location,
        now=now,
        usage=usage,
        retention=retention_state(cfg, usage.days, holds, now.date()),
        holds=tuple(h.describe() for h in holds),
        sources=tuple(sources),
        rejects_24h=rejects_since(store, now - dt.timedelta(hours=24)),
        keys=tuple(KeyState(i.period_id, i.created, i.destroyed) for i in (keys.list() if keys else [])),
        last={
            "purge": last_deletion(store, "purge"),
            "erase": last_deletion(store, "erase"),
            "compact": last_compaction(store),
            "publish": None,  # hostlogs does not publish yet
        },
        key_dir=cfg.key_dir if keys is None and keys_expected(store) else None,
    )


def store_usage(store: Store) -> Usage:
    """Bytes and files of the whole store; rows, files and days of the committed pageviews."""
    total = files = 0
    for key in store.list(""):
        try:
            total += store.size(key)
            files += 1
        except FileNotFoundError:  # removed meanwhile (a temporary file, a retired part)
            continue
    days = partitions(store)
    rows, unreadable = 0, []
    for day_files in days.values():
        for key in day_files:
            try:
                rows += store.parquet_rows(key)
            except StoreError:
                if store.exists(key):  # (gone since the listing: retired by a compaction or purge)
                    unreadable.append(key)
    count = sum(len(f) for f in days.values())
    return Usage(total, files, count, rows, tuple(sorted(days)), tuple(unreadable))


def retention_state(
    cfg: Config, days: Sequence[dt.date], holds: list[Hold], today: dt.date
) -> RetentionState:
    policy = Policy.from_config(cfg.retention, today, Truncator.configured(cfg))
    old = [d for d in days if d < policy.horizon]
    held = tuple(d for d in old if any(h.covers_date(d) for h in holds))
    return RetentionState(
        cfg.retention.retention, policy.horizon, tuple(d for d in old if d not in held), held
    )


def rejects_since(store: Store, since: dt.datetime) -> dict[str, int]:
    """Rejected lines by reason of the batches committed since ``since`` (every writer)."""
    total: Counter[str] = Counter()
    for writer in store.folders(layout.MANIFESTS):
        for _, manifest in store.manifests_since(writer, since):
            found = manifest.get("rejects")
            if isinstance(found, dict):  # (a damaged manifest's counts that are no numbers: left out)
                total.update(
                    {str(k): v for k, v in found.items() if isinstance(v, int) and not isinstance(v, bool)}
                )
    return dict(sorted(total.items()))


def last_deletion(store: Store, operation: str) -> Operation | None:
    """The newest deletion record of ``operation`` (purge, erase)."""
    for key in reversed(deletions.record_keys(store)):
        record = store.read_json(key) or {}
        if record.get("operation") == operation:
            rows = record.get("rows_deleted")
            when = str(record.get("finished") or record.get("started") or "")
            return Operation(when, record.get("status"), None if rows is None else int(rows))
    return None


def last_compaction(store: Store) -> Operation | None:
    """The newest compaction that merged files (one that found nothing to merge commits nothing)."""
    for key in reversed(store.manifest_keys(MAINTENANCE_WRITER)):
        manifest = store.read_json(key) or {}
        if manifest.get("operation") == "compact":
            return Operation(str(manifest.get("created", "")), "complete")
    return None


def _iso(value: dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None
