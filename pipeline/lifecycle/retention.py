"""Retention: the purge by UTC event date and its proof (``verify``).

The horizon is the **first day kept** (``rules.first_day_kept``: calendar years and months, or days,
counted back from the as-of date): a row goes when its partition date (the UTC date of ``ts``) is
before it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import polars as pl

from pipeline.config import Config, RetentionConfig
from pipeline.errors import ConfigError, StoreError, UsageError
from pipeline.lifecycle import deletions
from pipeline.lifecycle import verify as integrity
from pipeline.lifecycle.holds import Hold, active_holds
from pipeline.lifecycle.manifests import expired_manifests
from pipeline.lifecycle.rewrite import (
    PartitionChange,
    Selection,
    apply_partition,
    held_counts,
    partitions,
    plan_partition,
)
from pipeline.lifecycle.session import (
    ADVICE,
    DamagedFile,
    Session,
    damaged_fields,
    key_store,
    keys_expected,
    keys_required,
    session,
)
from pipeline.lifecycle.verify import IntegrityReport
from pipeline.privacy.keys import CUSTODY_DIR, KeyStore, period_bounds
from pipeline.privacy.truncate import Truncator, domain_forms, is_shared, normal_domain, stored_domain

# The horizon arithmetic lives in the kernel (ingest's report warns of days written past it): re-exported.
from pipeline.rules import first_day_kept as first_day_kept
from pipeline.rules import today as today
from pipeline.store import layout


@dataclass(frozen=True)
class Policy:
    """The horizons in force on ``as_of`` (first day kept of rows, rejects and manifests)."""

    as_of: dt.date
    retention: str
    horizon: dt.date
    domains: dict[str, dt.date]  # shorter per-domain retention: first day kept per domain
    rejects: dt.date
    manifests: dt.date
    ignored: tuple[str, ...] = ()  # domains whose retention is not shorter than the global one

    @classmethod
    def from_config(cls, r: RetentionConfig, as_of: dt.date, masker: Truncator | None = None) -> Policy:
        """``masker``: the store's, to name each ``retention.domains`` domain as its rows hold it."""
        for domain in r.domains:
            try:
                stored = stored_domain(domain, masker or Truncator())
            except UsageError as exc:  # a pattern, or nothing once normalised: the config's mistake
                raise ConfigError(f"retention.domains: {exc}") from None
            if is_shared(stored):  # (found by review)
                raise ConfigError(
                    f"retention.domains.{domain}: it holds an IP address, stored with its network, which "
                    "other sites' rows may share: give the domain names the site is served as"
                )
        horizon = first_day_kept(as_of, r.retention)
        per_domain = {d: first_day_kept(as_of, v) for d, v in sorted(r.domains.items())}
        return cls(
            as_of=as_of,
            retention=r.retention,
            horizon=horizon,
            domains={d: h for d, h in per_domain.items() if h > horizon},
            rejects=first_day_kept(as_of, r.rejects),
            manifests=first_day_kept(as_of, r.manifests),
            ignored=tuple(d for d, h in per_domain.items() if h <= horizon),
        )

    @property
    def latest(self) -> dt.date:
        """Partitions from this day on hold nothing expired: they are never opened."""
        return max([self.horizon, *self.domains.values()])

    def doomed(self, day: dt.date) -> pl.Expr | None:
        if day < self.horizon:
            return pl.lit(True)
        names = [
            f for d, first in self.domains.items() if day < first for f in domain_forms(normal_domain(d))
        ]
        return pl.col("domain").is_in(names) if names else None

    def params(self, holds: list[Hold]) -> dict[str, Any]:
        return {
            "as_of": self.as_of.isoformat(),
            "retention": self.retention,
            "first_day_kept": self.horizon.isoformat(),
            "domains": [{"domain": d, "first_day_kept": h.isoformat()} for d, h in self.domains.items()],
            "rejects_first_day_kept": self.rejects.isoformat(),
            "manifests_first_day_kept": self.manifests.isoformat(),
            "holds": [h.describe() for h in holds],
        }


@dataclass(frozen=True)
class PurgeReport:
    store: str
    policy: Policy
    dry_run: bool
    partitions: tuple[PartitionChange, ...]
    rejects: tuple[PartitionChange, ...]
    manifests_deleted: dict[str, int]
    keys_destroyed: tuple[str, ...]
    keys_kept: tuple[str, ...]  # periods before the horizon whose keys held rows still need
    held: dict[str, int]  # rows kept per hold case
    holds: tuple[str, ...]  # every active hold, described
    record: str | None = None  # the deletion record (None in a dry run)
    damaged: tuple[DamagedFile, ...] = ()  # files that could not be handled as they are

    @property
    def rows_deleted(self) -> int:
        return sum(p.rows_deleted for p in self.partitions)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rows_deleted": self.rows_deleted}


@dataclass(frozen=True)
class VerifyReport:
    store: str
    policy: Policy
    expired_rows: dict[str, int]  # partition date → rows past the horizon and under no hold
    expired_rejects: tuple[str, ...]
    keys_not_destroyed: tuple[str, ...]
    held: dict[str, int]
    holds: tuple[str, ...]
    oldest: str | None = None  # oldest partition date still present
    integrity: IntegrityReport | None = None  # every committed file against its checksum
    expired_temporaries: tuple[str, ...] = ()  # files a killed write left in expired partitions

    @property
    def expired(self) -> bool:
        return bool(
            self.expired_rows or self.expired_rejects or self.keys_not_destroyed or self.expired_temporaries
        )

    @property
    def ok(self) -> bool:
        return not self.expired and (self.integrity is None or self.integrity.ok)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def purge(
    cfg: Config, *, as_of: dt.date | None = None, dry_run: bool = False, wait: float = 0.0,
    progress: Callable[[int, int], None] | None = None, keys_lost: bool = False,
) -> PurgeReport:  # fmt: skip
    """Delete everything past retention except what holds cover; destroy keys no kept row needs.

    ``keys_lost``: the operator says the store's key directory is gone for good (a store restored
    without it): its rows are purged and no key directory is used at all (not even one configured,
    which could be another store's). Without it a store whose keys cannot be found is refused.

    ``progress(done, total)`` is told the partitions rewritten or removed (not in a dry run).
    """
    policy = Policy.from_config(cfg.retention, as_of or today(), Truncator.configured(cfg))
    with session(cfg, "purge", dry_run=dry_run, wait=wait) as s:
        holds = active_holds(s.store)
        plans = _plan_rows(s, policy, holds, hidden=False)
        rejects = _plan_rejects(s, policy, holds)
        going = {f for c, _ in plans for f in c.files} | {f for c in rejects for f in c.files}
        keep_from = min([policy.manifests, *(h.date_from or dt.date.min for h in holds)])
        manifests = expired_manifests(s.store, keep_from, going)
        if keys_lost and _holds_keys(key_store(cfg)):  # (they would outlive the rows they key)
            raise UsageError(
                f"purge --keys-lost, but {cfg.key_dir} holds keys: run purge without it (and check "
                "privacy.key_dir if they are not this store's); nothing was purged"
            )
        keys = None if keys_lost else key_store(cfg, s.store)
        if not keys_lost and keys_expected(s.store) and not _holds_keys(keys):  # rows go, keys stay
            raise StoreError(
                f"no keys of this store at {cfg.key_dir} (no custody/streams.key, no key, no record of "
                "a destroyed one): purge destroys the expired pseudonym and custody keys with their "
                "rows; check privacy.key_dir (gone for good: purge --keys-lost); nothing was purged"
            )
        cutoff = _key_cutoff(policy, [c for c, _ in plans])
        doomed_keys, kept_keys = _key_plan(keys, policy, cutoff)
        report = PurgeReport(
            store=s.store.location,
            policy=policy,
            dry_run=dry_run,
            partitions=tuple(c for c, _ in plans),
            rejects=tuple(rejects),
            manifests_deleted={w: len(p) for w, p in manifests.items()},
            keys_destroyed=tuple(doomed_keys),
            keys_kept=tuple(kept_keys),
            held=held_counts(c for c, _ in plans),
            holds=tuple(h.describe() for h in holds),
            record=None if dry_run else s.store.url(s.record),
            damaged=tuple(s.damaged),
        )
        if not dry_run:
            if keys_lost:  # declared once: later purges, proofs, erasures by address go on without keys
                s.store.write_json(layout.KEYS_LOST, {"version": 1, "declared": deletions.now(), "by": s.by})
            _execute(s, report, plans, manifests, keys, cutoff, holds, progress)
    return report


def _execute(
    s: Session,
    report: PurgeReport,
    plans: list[tuple[PartitionChange, Selection]],
    manifests: dict[str, list[str]],
    keys: KeyStore | None,
    cutoff: dt.date,
    holds: list[Hold],
    progress: Callable[[int, int], None] | None = None,
) -> None:
    total = len(plans) + len(report.rejects)
    deletions.start(
        s.store, s.record, op=s.op, operation="purge", by=s.by, params=report.policy.params(holds)
    )
    for done, (change, sel) in enumerate(plans, 1):
        apply_partition(s, change, sel, drop_empty=change.date < report.policy.horizon)
        if progress is not None:
            progress(done, total)
    for done, change in enumerate(report.rejects, len(plans) + 1):
        if change.files:
            s.swap(list(change.files), {}, change.record())
            s.store.prune(layout.partition(layout.REJECTS, change.date))
        if progress is not None:
            progress(done, total)
    deletions.update(
        s.store,
        s.record,
        keys_pending=list(report.keys_destroyed),
        manifests_pending=report.manifests_deleted,
    )
    for keys_of_writer in manifests.values():
        for key in keys_of_writer:
            s.store.remove(key)
    destroyed = keys.destroy_before(cutoff) if keys else []
    for folder in _expired_folders(s, report.policy):  # folders emptied by a run that crashed
        s.store.remove_stale_temporaries(folder)  # (expired rows in a killed write's file)
        s.store.prune(folder)
    entries = [c.record() for c in (*report.partitions, *report.rejects) if c.action != "kept"]
    deletions.finish(
        s.store,
        s.record,
        partitions=entries,
        rows_deleted=report.rows_deleted,
        manifests_deleted=report.manifests_deleted,
        keys_destroyed=destroyed,
        keys_kept_for_holds=list(report.keys_kept),
        holds_honoured=deletions.counts(report.held, "case"),
        **damaged_fields(report.damaged),
    )


def verify(cfg: Config, *, as_of: dt.date | None = None) -> VerifyReport:
    """Prove (read-only) that nothing past the horizon remains on disk except rows under a hold."""
    policy = Policy.from_config(cfg.retention, as_of or today(), Truncator.configured(cfg))
    with session(cfg, "verify", dry_run=True, wait=0) as s:
        holds = active_holds(s.store)
        plans = [c for c, _ in _plan_rows(s, policy, holds, hidden=True)]
        rejects = _plan_rejects(s, policy, holds, hidden=True)
        keys = keys_required(cfg, s.store, "proving the expired keys destroyed")
        not_destroyed, _ = _key_plan(keys, policy, _key_cutoff(policy, plans))
        days = partitions(s.store, hidden=True)
        return VerifyReport(
            store=s.store.location,
            policy=policy,
            expired_rows={c.date.isoformat(): c.rows_deleted for c in plans if c.rows_deleted},
            expired_rejects=tuple(c.date.isoformat() for c in rejects if c.rows_deleted),
            keys_not_destroyed=tuple(not_destroyed),
            held=held_counts(plans),
            holds=tuple(h.describe() for h in holds),
            oldest=min(days).isoformat() if days else None,
            integrity=integrity.check(s.store),
            expired_temporaries=_expired_temporaries(s, policy),
        )


def _expired_temporaries(s: Session, policy: Policy) -> tuple[str, ...]:
    """Temporary files in partitions past their horizon: their rows, if any, are past it too."""
    return tuple(key for folder in _expired_folders(s, policy) for key in s.store.temporaries(folder))


def _expired_folders(s: Session, policy: Policy) -> list[str]:
    """The partition folders past their table's horizon (rows: the horizon; rejects: theirs)."""
    horizons = ((layout.PAGEVIEWS, policy.horizon), (layout.REJECTS, policy.rejects))
    return [
        layout.join(table, name)
        for table, first_kept in horizons
        for name in s.store.folders(table)
        if (day := layout.partition_day(name)) is not None and day < first_kept
    ]


def _plan_rows(
    s: Session, policy: Policy, holds: list[Hold], *, hidden: bool
) -> list[tuple[PartitionChange, Selection]]:
    out = []
    for day, files in partitions(s.store, hidden=hidden).items():
        doomed = policy.doomed(day) if day < policy.latest else None
        if doomed is None:
            continue
        sel = Selection(doomed, tuple(h for h in holds if h.covers_date(day)))
        whole = day < policy.horizon and not sel.holds
        left = f"left untouched: its expired rows were not purged ({ADVICE})"
        change = plan_partition(s, day, files, sel, whole=whole, committed_only=not hidden, on_damage=left)
        if change is not None:
            out.append((change, sel))
    return out


def _plan_rejects(
    s: Session, policy: Policy, holds: list[Hold], hidden: bool = False
) -> list[PartitionChange]:
    """Whole quarantine partitions by ingest date; a hold without a domain keeps the days it covers.

    A damaged rejects file of an expired day goes with its day (its rows are counted as committed).
    """
    out = []
    for day, files in partitions(s.store, layout.REJECTS, hidden=hidden).items():
        if day >= policy.rejects:
            continue
        held = {h.case: 0 for h in holds if h.domain is None and h.covers_date(day)}
        rows = 0
        for f in files:
            try:
                rows += s.store.parquet_rows(f)
            except StoreError as exc:
                record = s.catalogue.files.get(f)
                rows += record.rows or 0 if record is not None else 0
                action = "kept under hold" if held else "destroyed unread: its day is past retention"
                s.damage(f, s.store.check_file(f) or str(exc), action)
        held = {case: rows for case in held}
        if held:
            out.append(PartitionChange(layout.REJECTS, day, "kept", 0, rows, holds=held))
        else:
            out.append(PartitionChange(layout.REJECTS, day, "deleted", rows, 0, tuple(files)))
    return out


def _key_cutoff(policy: Policy, changes: list[PartitionChange]) -> dt.date:
    """Keys of periods ending before this day go: the horizon, or the oldest row kept by a hold."""
    kept = [c.date for c in changes if c.date < policy.horizon and (c.rows_left or c.damaged)]
    return min([policy.horizon, *kept])


def _holds_keys(keys: KeyStore | None) -> bool:
    """Whether a key directory is a store's: every ingest makes its stream key, and key periods
    leave a key or the record of its destruction (a wrong, empty directory has neither)."""
    if keys is None:
        return False
    return keys.has_stream_key() or any(keys.key_dir.glob("*.key")) or any(keys.key_dir.glob("*.destroyed"))


def _key_plan(keys: KeyStore | None, policy: Policy, cutoff: dt.date) -> tuple[list[str], list[str]]:
    """(keys to destroy, keys past the horizon kept for held rows)."""
    if keys is None:
        return [], []
    live = {i.period_id for i in keys.list() if i.destroyed is None}
    if (keys.key_dir / CUSTODY_DIR).is_dir():  # custody keys go with their period (chain-of-custody digests)
        live |= {i.period_id for i in keys.custody.list() if i.destroyed is None}
    ordered = sorted(live, key=lambda p: (period_bounds(p), p))
    doomed = [p for p in ordered if period_bounds(p)[1] < cutoff]
    kept = [p for p in ordered if cutoff <= period_bounds(p)[1] < policy.horizon]
    return doomed, kept
