"""Legal holds: while a case is open, the purge and erasure keep the rows the hold covers.

A hold names a case, a reason, its creator and creation time, and optionally a domain and an
inclusive range of UTC event dates. Holds are JSON files under ``_holds/`` in the store, one per
hold, written atomically. Releasing a hold rewrites its file with the release time and user: holds
are never deleted, so the store keeps the record of which evidence was held, when and by whom.

``hold add`` and ``hold release`` take the maintenance lock, so a purge or erasure that is running
finishes under the holds it started with and the next one sees the change: a hold that has been
added (the command returned) is honoured by every later deletion.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import polars as pl

from pipeline.errors import StoreError, UsageError
from pipeline.investigate.audit import checked_id, text_masker
from pipeline.investigate.stops import committing
from pipeline.lifecycle import deletions
from pipeline.lifecycle.session import MAINTENANCE_WRITER, maintenance_lock
from pipeline.privacy.truncate import domain_forms, is_pattern, mask_value, normal_domain, stored_domain
from pipeline.rules import check_range, os_user
from pipeline.store import layout
from pipeline.store.commit import Store

# Characters a hold's file name keeps from its case id; a case id may hold '/', ':' and '#' (the
# ticket systems' ids the audit accepts), which no file name may carry as they are.
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Hold:
    """One legal hold. ``date_from``/``date_to`` are inclusive UTC event dates; None = unbounded."""

    case: str
    reason: str
    created: dt.datetime
    created_by: str
    domain: str | None = None
    date_from: dt.date | None = None
    date_to: dt.date | None = None
    released: dt.datetime | None = None
    released_by: str | None = None
    # the deletion records of the erasures it kept rows from, written at its release: their requests
    # stand once it is released (``hold list`` names them after the release's own warnings); None
    # while active, and for a hold released by an older hostlogs (not known)
    erasures_kept: tuple[str, ...] | None = None
    # the deletion records that could not be read at its release, one line each: an erasure it kept
    # rows from may be recorded there (``erasures_kept`` then lists only the readable ones); None
    # while active, and for a hold released by an older hostlogs
    records_unread: tuple[str, ...] | None = None
    file: str = ""  # name of its file under _holds/

    @property
    def active(self) -> bool:
        return self.released is None

    def overlaps(self, first: dt.date, last: dt.date) -> bool:
        """Whether the hold covers any day from ``first`` to ``last`` (inclusive)."""
        starts_before_end = self.date_from is None or self.date_from <= last
        return starts_before_end and (self.date_to is None or first <= self.date_to)

    def covers_date(self, day: dt.date) -> bool:
        return (self.date_from is None or day >= self.date_from) and (
            self.date_to is None or day <= self.date_to
        )

    def row_filter(self) -> pl.Expr:
        """The rows of a covered partition that the hold keeps (null domains only by a domain-less hold)."""
        if self.domain is None:
            return pl.lit(True)
        return pl.col("domain").is_in(domain_forms(self.domain)).fill_null(False)

    def describe(self) -> str:
        scope = self.domain or "all domains"
        start = self.date_from.isoformat() if self.date_from else "…"
        end = self.date_to.isoformat() if self.date_to else "…"
        return f"{self.case} ({scope}, {start} to {end})"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("file")
        data["erasures_kept"] = None if self.erasures_kept is None else list(self.erasures_kept)
        data["records_unread"] = None if self.records_unread is None else list(self.records_unread)
        return {"version": 1, **{k: _text(v) for k, v in data.items()}}

    @classmethod
    def from_json(cls, data: dict[str, Any], file: str) -> Hold:
        try:
            return cls(
                case=str(data["case"]),
                reason=str(data["reason"]),
                created=dt.datetime.fromisoformat(data["created"]),
                created_by=str(data["created_by"]),
                domain=_held_domain(data.get("domain")),
                date_from=_date(data.get("date_from")),
                date_to=_date(data.get("date_to")),
                released=_datetime(data.get("released")),
                released_by=data.get("released_by"),
                erasures_kept=_record_ids(data.get("erasures_kept")),
                records_unread=_record_ids(data.get("records_unread")),
                file=file,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StoreError(
                f"hold file {layout.hold(file)} is damaged ({exc}): restore it from backup"
            ) from None


def list_holds(store: Store | str | Path) -> list[Hold]:
    """Every hold, active and released, oldest first. Read-only: creates nothing."""
    store = store if isinstance(store, Store) else Store(store)
    holds = []
    for key in store.list(layout.HOLDS, pattern=f"*{layout.JSON}"):
        data = store.read_json(key)
        if data is not None:
            holds.append(Hold.from_json(data, key.rsplit("/", 1)[-1]))
    return holds


def _held_domain(recorded: Any) -> str | None:
    """A recorded hold's domain as it matches. Holds placed before selectors were normalised keep
    what they meant: ``host:443`` or a URL is its host, and a pattern or a selector empty without
    its port (``*``, ``:443``), which had matched nothing, covers every domain: a hold errs on the
    side of keeping (found by review: purge had deleted what such holds seemed to keep)."""
    if recorded is None:
        return None
    normal = normal_domain(str(recorded))
    return None if not normal or is_pattern(normal) else normal


def active_holds(store: Store | str | Path) -> list[Hold]:
    return [h for h in list_holds(store) if h.active]


def add_hold(
    store_root: str | Path,
    case: str,
    reason: str,
    *,
    domain: str | None = None,
    date_from: dt.date | None = None,
    date_to: dt.date | None = None,
    wait: float = 0.0,
) -> Hold:
    """Place a hold. One active hold per case id; a released case may be held again (a new record)."""
    checked_id(case, "case")
    if not reason.strip():
        raise UsageError("a hold needs a reason (--reason)")
    check_range(date_from, date_to)
    store = Store.existing(store_root, MAINTENANCE_WRITER)
    with maintenance_lock(store, wait):
        if any(h.case == case for h in active_holds(store)):
            raise UsageError(f"case {case} already has an active hold (see 'hostlogs hold list')")
        now = dt.datetime.now(dt.UTC)
        masker = text_masker(store)
        hold = Hold(
            case=case,
            reason=mask_value(reason.strip(), masker),  # free text: no address kept in it
            created=now,
            created_by=os_user(),
            domain=stored_domain(domain, masker) if domain is not None else None,
            date_from=date_from,
            date_to=date_to,
            file=hold_file_name(now, case),
        )
        with committing():  # once written the hold is placed: a stop now waits (a re-run would fail)
            store.write_json(layout.hold(hold.file), hold.to_json())
    return hold


@dataclass(frozen=True)
class Released:
    """A released hold, the erasures it had kept rows from (``erasures_kept``), and the deletion
    records that could not be read to tell (``unreadable``: one line each)."""

    hold: Hold
    erasures_kept: list[dict[str, Any]]
    unreadable: list[str]

    def to_json(self) -> dict[str, Any]:
        return {
            **self.hold.to_json(),
            "erasures_kept": self.erasures_kept,
            "unreadable_records": self.unreadable,
        }


def release_hold(store_root: str | Path, case: str, *, wait: float = 0.0) -> Released:
    """Release the active hold of a case: its file records who released it and when.

    The erasures it kept rows from are found first, under the lock: a release that fails before its
    file is written has released nothing (found by review: the list, made after, was lost for good
    when a record could not be parsed, with the hold already released)."""
    store = Store.existing(store_root, MAINTENANCE_WRITER)
    with maintenance_lock(store, wait):
        current = [h for h in active_holds(store) if h.case == case]
        if not current:
            raise UsageError(f"no active hold for case {case!r} (see 'hostlogs hold list')")
        kept, unreadable = erasures_kept(store, current[0])
        now = dt.datetime.now(dt.UTC)
        ids = tuple(str(e["record"]) for e in kept if e.get("record"))
        masker = text_masker(store)  # (a record's error names its location: no address kept in it)
        done = {
            "released": now,
            "released_by": os_user(),
            "erasures_kept": ids,
            "records_unread": tuple(mask_value(line, masker) for line in unreadable),
        }
        hold = Hold(**{**asdict(current[0]), **done})
        with committing():  # (its list of erasures kept is told once: a re-run would find no hold)
            store.write_json(layout.hold(hold.file), hold.to_json())
    return Released(hold, kept, unreadable)


def erasures_kept(store: Store, hold: Hold) -> tuple[list[dict[str, Any]], list[str]]:
    """The erasures that ``hold`` kept rows from while it was active, oldest first: what each
    selected (never the address), under which case or request, and how many rows it kept (None:
    not known, an erasure recorded by an older hostlogs that stopped mid-way); and a line for each
    deletion record that could not be read.

    Found by review: nothing remembered an erasure request a hold had overridden, so once the hold
    was released its rows stayed unless someone recalled the request. The request itself (the
    address, for an erasure by visitor) is the operator's to hand: it is never stored. An erasure
    that stopped mid-way counts too: its record holds the rows the holds were to keep from its start.
    """
    out, unreadable = [], []
    for _, record in deletions.each_record(store):
        if isinstance(record, StoreError):
            unreadable.append(str(record))
            continue
        if record.get("operation") != "erase" or _started(record) < hold.created:
            continue  # (an earlier hold of the same case id kept those: told at its release)
        kept = _rows_kept(record, hold.case)
        if kept != 0:
            params = _params(record)
            selected = {k: params.get(k) for k in ("domain", "visitor", "from", "to", "case", "request")}
            when = {
                "record": record.get("id"),
                "started": record.get("started"),
                "status": record.get("status"),
            }
            out.append({**when, "rows_kept": kept, **selected})
    return out, unreadable


def _rows_kept(record: dict[str, Any], case: str) -> int | None:
    """The rows the hold of ``case`` kept from an erasure (None: it may have kept some, not known)."""
    honoured = record.get("holds_honoured")
    if isinstance(honoured, list):
        rows = [h.get("rows") for h in honoured if isinstance(h, dict) and h.get("case") == case]
        counts = [r for r in rows if isinstance(r, int) and not isinstance(r, bool)]
        return sum(counts) if len(counts) == len(rows) else None
    # a record of an older hostlogs, stopped before its end: its holds are named by their description
    held = _params(record).get("holds")
    held = held if isinstance(held, list) else []
    named = any(str(h) == case or str(h).startswith(f"{case} (") for h in held)
    return None if named and record.get("status") != "complete" else 0


def _params(record: dict[str, Any]) -> dict[str, Any]:
    params = record.get("params")
    return params if isinstance(params, dict) else {}


def _started(record: dict[str, Any]) -> dt.datetime:
    """When a deletion record's operation started (a time without a zone is read as UTC); one
    without a readable time counts as started now: listed rather than left out, a release says too
    much rather than too little."""
    try:
        started = dt.datetime.fromisoformat(str(record["started"]))
    except (KeyError, ValueError):
        return dt.datetime.now(dt.UTC)
    return started if started.tzinfo is not None else started.replace(tzinfo=dt.UTC)


def hold_file_name(created: dt.datetime, case: str) -> str:
    """A file name for a hold that no case id can turn into a path: ``jira:SEC/17#2`` stays one name.

    Unsafe characters become ``_``; the short hash of the id keeps ids that differ only in them (``a/b``,
    ``a:b``) apart. The case itself is read from the JSON, never from the name: older hold files, named
    ``<created>-<case>.json``, load as they are.
    """
    digest = hashlib.sha256(case.encode()).hexdigest()[:8]
    return f"{created:%Y%m%dT%H%M%S%fZ}-{_UNSAFE.sub('_', case)}-{digest}.json"


def _record_ids(value: Any) -> tuple[str, ...] | None:
    """The deletion record ids (or unread records' lines) a released hold names; None when not
    known: absent (an older hostlogs) or not a list of texts. Only informative: a hold file damaged
    there still tells what it holds, and must not stop purges and erasures (found by review)."""
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    return None


def _text(value: Any) -> Any:
    return value.isoformat() if isinstance(value, dt.date) else value


def _date(value: Any) -> dt.date | None:
    return None if value is None else dt.date.fromisoformat(value)


def _datetime(value: Any) -> dt.datetime | None:
    return None if value is None else dt.datetime.fromisoformat(value)
