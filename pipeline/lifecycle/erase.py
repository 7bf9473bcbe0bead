"""Erasure of a customer's (domain's) or a visitor's (address's) rows, wherever they are.

``erase`` works partition by partition (an atomic swap each: readers see the old or the new files, never
both or neither). A visitor is found through the keyed pseudonym ``client_id``: the address is keyed
with each period's key and matched only against rows whose date lies in that period. Where a period's
key is destroyed (or never existed) its rows cannot be linked to the address any more; they are reported
as not erasable and left alone — in particular nothing is erased by network (``client_net`` holds a
whole /24 or /48: many visitors).

A legal hold overrides an erasure request (GDPR Art. 17(3)(e): rows needed for legal claims): held
rows stay and the report names the holds and counts the rows they kept.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any, Literal, cast

import polars as pl

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.investigate.audit import text_masker
from pipeline.lifecycle import deletions
from pipeline.lifecycle.holds import active_holds
from pipeline.lifecycle.rewrite import (
    PartitionChange,
    Selection,
    apply_partition,
    held_counts,
    partitions,
    plan_partition,
)
from pipeline.lifecycle.session import ADVICE, DamagedFile, damaged_fields, keys_required, session
from pipeline.privacy.digests import checked_address, lookup_pseudonyms
from pipeline.privacy.keys import Period, period_id
from pipeline.privacy.truncate import SHARED_DOMAIN, domain_forms, is_shared, stored_domain
from pipeline.rules import check_range
from pipeline.store.commit import Store


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


def erase_unaudited(
    cfg: Config,
    *,
    domain: str | None = None,
    address: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    dry_run: bool = False,
    wait: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    under: dict[str, str | None] | None = None,
) -> EraseReport:
    """Remove a domain's rows, or one visitor's rows (optionally within a domain), in a date range.

    ``progress(done, total)`` is told the partitions examined, then the partitions rewritten.
    ``under``: the case and request ids the erasure acts under, for its deletion record (the release
    of a hold that kept rows from it names them: ``holds.erasures_kept``).

    Not audited, and a dry run reveals whether a visitor is in the store: callers go through
    ``lifecycle.audited.erase`` (a case or request, an audit entry); this is the work it records.
    """
    if domain is None and address is None:
        raise UsageError("say what to erase: --domain DOMAIN and/or --ip ADDRESS")
    check_range(date_from, date_to)
    if address is not None:
        checked_address(address)
    # (an empty one, also once normalised (':443'), is refused there: it had selected every row)
    domain = stored_domain(domain, text_masker(Store(cfg.store))) if domain is not None else None
    if domain is not None and is_shared(domain):
        raise UsageError(SHARED_DOMAIN.format(what="erase"))
    period = cast(Period, cfg.privacy.key_period)
    with session(cfg, "erase", dry_run=dry_run, wait=wait) as s:
        # (the keys: only an erasure by address reads them; a missing key directory then is an error)
        keys = keys_required(cfg, s.store, "erasing by address") if address is not None else None
        ids = lookup_pseudonyms(address, keys) if address is not None and keys is not None else {}
        holds = active_holds(s.store)
        plans: list[tuple[PartitionChange, Selection]] = []
        lost: dict[str, NotErasable] = {}
        blocked: list[str] = []
        stop = f"the erasure of its day was stopped: nothing of that day was erased ({ADVICE})"
        days = {
            day: files
            for day, files in partitions(s.store).items()
            if not ((date_from and day < date_from) or (date_to and day > date_to))
        }
        for seen, (day, files) in enumerate(days.items(), 1):
            if progress is not None:
                progress(seen - 1, len(days))
            doomed = pl.col("domain").is_in(domain_forms(domain)) if domain else pl.lit(True)
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
                # by address, no per-domain counts in the records kept forever: they were the erased
                # visitor's sites, day by day (found by review); totals prove the erasure
                plans.append((replace(change, domains={}) if address is not None else change, sel))
        report = EraseReport(
            store=s.store.location,
            domain=domain,
            by_address=address is not None,
            date_from=date_from,
            date_to=date_to,
            dry_run=dry_run,
            partitions=tuple(c for c, _ in plans),
            held=held_counts(c for c, _ in plans),
            holds=tuple(h.describe() for h in holds),
            not_erasable=tuple(lost.values()),
            record=None if dry_run else s.store.url(s.record),
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
                **{k: v for k, v in (under or {}).items() if v is not None},
            }
            # the rows the holds keep, from the start: a release names this erasure even when it
            # stops mid-way (found by review: only its end had written them)
            held = deletions.counts(report.held, "case")
            deletions.start(
                s.store, s.record, op=s.op, operation="erase", by=s.by, params=params, holds_honoured=held
            )
            for done, (change, sel) in enumerate(plans, 1):
                apply_partition(s, change, sel)
                if progress is not None:
                    progress(len(days) + done, len(days) + len(plans))
            extra: dict[str, Any] = damaged_fields(report.damaged)
            if report.not_erased:
                extra["days_not_erased"] = list(report.not_erased)
            deletions.finish(
                s.store,
                s.record,
                partitions=[c.record() for c in report.partitions if c.action != "kept"],
                rows_deleted=report.rows_deleted,  # (holds_honoured: written at its start)
                not_erasable=[asdict(n) for n in report.not_erasable],
                **extra,
            )
    return report
