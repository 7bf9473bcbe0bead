"""The operator's lifecycle actions as the command line runs them: each one recorded in the audit trail.

``retention.purge``, ``erase.erase_unaudited`` and ``holds.add_hold``/``release_hold`` do the work; the
functions here are the policy around them: who may act (an erasure or a key destruction needs a case or a
request), and what the audit trail records (the command, its case or request, its parameters, the
rows it deleted). ``hostlogs purge``, ``erase``, ``hold`` and ``keys destroy`` call these and render
the report, so a Python caller that uses them is held to the same rules. (``export`` needs nothing
here: it is an access to the store and goes through ``investigate.session.audited`` itself.)

A store that does not exist is never audited into existence: the action then fails on its own with
the "no store at" error (exit 6) before any case or request is asked for.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.investigate import audit
from pipeline.lifecycle import deletions, holds, retention
from pipeline.lifecycle import erase as erasure
from pipeline.lifecycle.session import MAINTENANCE_WRITER, maintenance_lock
from pipeline.privacy import key_identity
from pipeline.privacy.keys import KeyStore, period_bounds
from pipeline.rules import os_user
from pipeline.store.commit import Store


def _day(value: dt.date | None) -> str | None:
    return str(value) if value else None


def purge(
    cfg: Config, *, as_of: dt.date | None = None, dry_run: bool = False, wait: float = 0.0,
    progress: Callable[[int, int], None] | None = None, keys_lost: bool = False,
) -> retention.PurgeReport:  # fmt: skip
    """``retention.purge``, recorded with its policy (the retention run is its own reason).

    A dry run changes nothing, the audit trail included.
    """
    params = {"as_of": str(as_of or retention.today()), "dry_run": dry_run,
              "retention": cfg.retention.retention, "domains": cfg.retention.domains or None,
              **({"keys_lost": True} if keys_lost else {})}  # fmt: skip
    with audit.recorded(cfg.store, "purge", None, "retention policy", params=params, on=not dry_run) as rec:
        report = retention.purge(
            cfg, as_of=as_of, dry_run=dry_run, wait=wait, progress=progress, keys_lost=keys_lost
        )
        rec.rows = report.rows_deleted
    return report


def add_hold(
    cfg: Config,
    case: str,
    reason: str,
    *,
    domain: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    wait: float = 0.0,
) -> holds.Hold:
    """``holds.add_hold``, recorded under its case (an invalid case id is refused unrecorded)."""
    audit.checked_id(case, "case")
    params = {"domain": domain, "from": _day(date_from), "to": _day(date_to)}
    with audit.recorded(cfg.store, "hold add", case, reason, params=params):
        return holds.add_hold(
            cfg.store, case, reason, domain=domain, date_from=date_from, date_to=date_to, wait=wait
        )


def release_hold(cfg: Config, case: str, *, wait: float = 0.0) -> holds.Released:
    """``holds.release_hold``, recorded under its case with the erasures the hold had kept rows from
    (their requests stand now: the operator is told to run them again)."""
    with audit.recorded(cfg.store, "hold release", case, None) as rec:
        released = holds.release_hold(cfg.store, case, wait=wait)
        if released.erasures_kept:
            rec.params["erasures_kept"] = [e["record"] for e in released.erasures_kept]
        if released.unreadable:
            rec.warnings.extend(released.unreadable)
        return released


def erase(
    cfg: Config,
    *,
    domain: str | None = None,
    address: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    dry_run: bool = False,
    wait: float = 0.0,
    case: str | None = None,
    request: str | None = None,
    reason: str | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> erasure.EraseReport:
    """``erase.erase_unaudited`` under a case or a request id, recorded (the address itself never is)."""
    if Store(cfg.store).is_store():  # a missing store is a store error first (exit 6)
        case, request = audit.check_authority(case, request, "erase")
    params = {"domain": domain, "visitor": "one client address (not recorded)" if address else None,
              "from": _day(date_from), "to": _day(date_to), "dry_run": dry_run}  # fmt: skip
    with audit.recorded(cfg.store, "erase", case, reason, request=request, params=params) as rec:
        report = erasure.erase_unaudited(
            cfg, domain=domain, address=address, date_from=date_from, date_to=date_to, dry_run=dry_run,
            wait=wait, progress=progress, under={"case": case, "request": request},
        )  # fmt: skip
        rec.rows = report.rows_deleted
    return report


def destroy_keys(
    cfg: Config,
    before: dt.date,
    *,
    case: str | None = None,
    request: str | None = None,
    reason: str | None = None,
) -> list[str]:
    """Destroy the keys of every period that ends before ``before`` (crypto-shredding); their ids.

    Under a case or a request, recorded in the audit trail; the store's deletion log gets a record
    too, like a purge's. Only with the store the keys are of (exit 6 without one: the audit entry,
    the proof and the key directory check had all been skipped; found by review), and never the key
    of a period a legal hold covers (what it keeps must stay linkable, as purge keeps such keys).
    """
    case, request = audit.check_authority(case, request, "keys destroy")
    params = {"before": str(before)}
    store = Store.existing(cfg.store, MAINTENANCE_WRITER)
    with audit.recorded(cfg.store, "keys destroy", case, reason, request=request, params=params) as rec:
        keystore = KeyStore.configured(cfg)
        key_identity.check(store, keystore)  # never another store's keys
        with maintenance_lock(store, 0.0):  # holds change under it: none is placed meanwhile
            # the record of a key destruction that stopped mid-way (only those: a purge's or an
            # erasure's waits for the next maintenance session, which first finishes their swaps)
            deletions.recover(store, keystore.key_dir, frozenset({"destroy-keys"}))
            periods = keystore.periods_before(before)
            _refuse_held(store, periods)
            # proof of deletion, like a purge's: written before, completed after (or by ``recover``)
            started = (
                deletions.start_keys_destroyed(cfg.store, periods, before=before, by=os_user())
                if periods
                else None
            )
            destroyed = keystore.destroy_before(before)
            rec.params["destroyed"] = destroyed
            if started is not None:
                deletions.finish(*started, partitions=[], rows_deleted=0, keys_destroyed=sorted(destroyed))
    return destroyed


def _refuse_held(store: Store, periods: list[str]) -> None:
    """UsageError naming the periods among ``periods`` that an active legal hold overlaps."""
    active = holds.active_holds(store)  # (read once, not once per period)
    held = {pid: hold.case for pid in periods for hold in active if hold.overlaps(*period_bounds(pid))}
    if held:
        names = ", ".join(f"{pid} (hold {case})" for pid, case in held.items())
        raise UsageError(
            f"legal holds cover {names}: their keys stay while the hold does (release it first, "
            "'hostlogs hold release'); nothing was destroyed"
        )
