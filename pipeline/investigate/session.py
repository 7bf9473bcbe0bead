"""The one way into the store's rows: an audited session.

"Every access to the store is audited under a case" is enforced here, not in the CLI: the sandbox
(``sandbox.py``) cannot be constructed elsewhere, and every door below first checks that the store
exists and that the case (or request) is valid, then writes the audit entry, and only then opens the
sandbox. Python code calling the library gets the same audit trail as ``hostlogs query``.

- ``audited``: the context manager every access is built on: a ``started`` entry before the block,
  its outcome (ok / refused / error / timeout, rows, seconds) after; the sandbox opens on first use
  (an export, which reads the store under the maintenance lock, never opens it).
- ``with_connection``: ``work(sandbox)`` inside ``audited``, once more on fresh views when a
  compaction, purge or erase retired files meanwhile (investigations, reports).
- ``run``: one checked statement (``hostlogs query``).
- ``Session``: the shell: one entry pair per statement on one sandbox.
- ``connect``: a sandbox for Python code (benchmarks, tests): one ``opened`` entry.

The case is required through a config (``query.require_case``: always true); a bare store path, the
door for tests and scripts, records the case it is given and requires none.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from pipeline.config import Config
from pipeline.errors import StoreChangedError
from pipeline.investigate import audit
from pipeline.investigate.limits import Limits
from pipeline.investigate.result import QueryResult
from pipeline.investigate.sandbox import Sandbox, _open
from pipeline.investigate.statement import check_statement
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.store.commit import Store

T = TypeVar("T")
Source = Config | str | Path  # a Config (store, limits, require_case, masker) or a store root


@dataclass(frozen=True)
class _Door:
    """What every access needs to know about the store it opens, resolved from the source."""

    store: Store
    limits: Limits
    masker: Truncator
    require_case: bool


def _door(source: Source, require_case: bool | None, limits: Limits | None) -> _Door:
    """The store and its policy; a missing store is a store error, before the case is asked for."""
    if isinstance(source, Config):
        require = source.query.require_case if require_case is None else require_case
        return _Door(
            Store.existing(source.store), limits or Limits.of(source.query), masker_of(source), require
        )
    return _Door(Store.existing(source), limits or Limits(), masker_of(source), bool(require_case))


def masker_of(source: Source) -> Truncator:
    """The config's address truncation (the defaults for a bare store path): SQL in the audit trail
    and the investigations show a full client address only as its network, cut as the config says."""
    if isinstance(source, Config):
        return Truncator.configured(source)
    return Truncator()


def _admit(
    door: _Door, case: str | None, authority: str | None, request: str | None
) -> tuple[str | None, str | None]:
    """The case (and request), validated: under ``authority`` a case or a request is needed."""
    if authority is not None:
        return audit.check_authority(case, request, authority)
    return audit.check_case(case, door.require_case), None


def masked_sql(sql: str, masker: Truncator | None = None) -> str:
    """SQL as the audit trail keeps it: full client addresses typed into it become their network."""
    return mask_value(sql, masker or Truncator())


class Access:
    """An audited access in progress: its outcome record and its sandbox (opened on first use)."""

    def __init__(self, door: _Door, record: audit.Record, warn: Callable[[str], None] | None) -> None:
        self.record = record
        self._door, self._warn = door, warn
        self._sandbox: Sandbox | None = None

    @property
    def sandbox(self) -> Sandbox:
        if self._sandbox is None:
            self._sandbox = _open(self._door.store, self._door.limits)
        return self._sandbox

    def reopen(self) -> Sandbox:
        """Fresh views (the store changed: a maintenance run retired files), same audit entry."""
        self.close()
        return self.sandbox

    def close(self) -> None:
        """Close the sandbox; its warnings (unreadable files left out) go into the outcome entry."""
        sb, self._sandbox = self._sandbox, None
        if sb is None:
            return
        for w in sb.warnings:
            self.record.warnings.append(w)
            if self._warn is not None:
                self._warn(w)
        sb.close()


@contextlib.contextmanager
def audited(
    source: Source, command: str, case: str | None = None, reason: str | None = None, *,
    require_case: bool | None = None, authority: str | None = None, request: str | None = None,
    limits: Limits | None = None, params: dict[str, Any] | None = None,
    warn: Callable[[str], None] | None = None, **what: Any,
) -> Iterator[Access]:  # fmt: skip
    """An audited access to the store (see the module doc); ``what`` goes on the started entry.

    ``authority`` (an action's name, e.g. ``"export"``): the action acts under a case or a request id,
    and the request is recorded on both entries.
    """
    door = _door(source, require_case, limits)
    case, request = _admit(door, case, authority, request)
    if authority is not None:
        what["request"] = request
    with audit.AuditLog(door.store).record(command, case, reason, params=params, **what) as rec:
        access = Access(door, rec, warn)
        try:
            yield access
        finally:
            access.close()  # before the outcome entry: it carries the warnings


def with_connection(
    source: Source, work: Callable[[Sandbox], T], *, case: str | None = None, reason: str | None = None,
    command: str = "with_connection", require_case: bool | None = None, limits: Limits | None = None,
    params: dict[str, Any] | None = None, describe: Callable[[T], tuple[dict[str, Any], int]] | None = None,
    warn: Callable[[str], None] | None = None, **what: Any,
) -> T:  # fmt: skip
    """``work`` on a fresh sandbox, audited, once more on a new one if the store changed meanwhile (a
    compaction, purge or erase that commits during the query retires files the first one lists).
    ``describe(result)`` gives the outcome's extra params and row count."""
    with audited(
        source, command, case, reason, require_case=require_case, limits=limits, params=params,
        warn=warn, **what,
    ) as access:  # fmt: skip
        for attempt in (1, 2):
            try:
                result = work(access.sandbox)
            except StoreChangedError:
                if attempt == 2:
                    raise
                access.reopen()
                continue
            if describe is not None:
                extra, access.record.rows = describe(result)
                access.record.params.update(extra)
            return result
    raise AssertionError("unreachable")


def run(
    source: Source, sql: str, *, case: str | None = None, reason: str | None = None,
    command: str = "query", require_case: bool | None = None, limits: Limits | None = None,
    masker: Truncator | None = None, warn: Callable[[str], None] | None = None, arrow: bool = False,
) -> QueryResult:  # fmt: skip
    """One read-only statement over the sandboxed views, audited (``arrow``: see ``Sandbox.execute``)."""

    def work(sb: Sandbox) -> QueryResult:
        check_statement(sb, sql)
        return sb.execute(sql, arrow=arrow)

    return with_connection(
        source, work, case=case, reason=reason, command=command, require_case=require_case,
        limits=limits, warn=warn, describe=lambda r: ({}, len(r.rows)),
        sql=masked_sql(sql, masker or masker_of(source)),
    )  # fmt: skip


def connect(
    source: Source, *, case: str | None = None, reason: str | None = None, command: str = "connect",
    require_case: bool | None = None, limits: Limits | None = None,
) -> Sandbox:  # fmt: skip
    """A sandbox for Python code; its opening is recorded in the audit trail (with the case)."""
    door = _door(source, require_case, limits)
    case, _ = _admit(door, case, None, None)
    sb = _open(door.store, door.limits)
    try:
        audit.AuditLog(door.store).append(case=case, reason=reason, command=command, status="opened")
    except BaseException:
        sb.close()
        raise
    return sb


class Session:
    """The shell's connection: every statement is checked and audited on its own."""

    def __init__(
        self, source: Source, *, case: str | None, reason: str | None = None, command: str = "shell",
        require_case: bool | None = None, limits: Limits | None = None, masker: Truncator | None = None,
    ) -> None:  # fmt: skip
        self._door = _door(source, require_case, limits)
        self.case, _ = _admit(self._door, case, None, None)
        self.reason, self.command = reason, command
        self.masker = masker or self._door.masker
        self.log = audit.AuditLog(self._door.store)
        self.sandbox = _open(self._door.store, self._door.limits)
        self.notices: list[str] = []  # for the user: reopened views, unreadable files left out
        # sandbox warnings passed on so far: those of opening the views (a missing file) go with the
        # first statement, whose result misses those rows
        self._passed = 0

    def execute(self, sql: str) -> QueryResult:
        with self.log.record(self.command, self.case, self.reason, sql=masked_sql(sql, self.masker)) as rec:
            check_statement(self.sandbox, sql)
            try:
                result = self.sandbox.execute(sql)
            except StoreChangedError:
                # A compaction, purge or erase retired files the views list: new views, same SQL.
                self.sandbox.close()
                self.sandbox = _open(self._door.store, self._door.limits)
                self.notices.append("the store changed (compaction, purge or erase): views reopened")
                self._passed = 0
                result = self.sandbox.execute(sql)
            finally:
                new = self.sandbox.warnings[self._passed :]
                self._passed = len(self.sandbox.warnings)
                rec.warnings.extend(new)
                self.notices.extend(new)
            rec.rows = len(result.rows)
        return result

    def close(self) -> None:
        self.sandbox.close()
