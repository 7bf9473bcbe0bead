"""The audit trail: who looked at what, under which case. Append-only, hash-chained JSON lines.

``<store>/_audit/audit.jsonl`` holds one entry per line: ``seq`` (1, 2, ...), UTC ``time``, OS
``user``, ``case``, ``reason``, ``command``, the ``sql`` or ``investigation`` with its ``params``,
``rows``, ``seconds``, ``status`` (ok / refused / error) and ``error``, then ``prev_hash`` and
``hash`` = SHA-256 of the canonical JSON of every other field (``prev_hash`` included). Editing,
deleting or reordering a line breaks the chain at that entry, which ``verify`` names.

Every audited action writes two linked entries: ``status = started`` *before* it runs (with the
statement or investigation and the case), then its outcome (ok / refused / error / timeout, rows,
seconds) with ``of`` = the seq of its start. Ctrl-C and SIGTERM end an action with an ``error``
outcome (``KeyboardInterrupt``, ``Terminated``); one killed outright (``kill -9``, a power cut) leaves
its start entry without an outcome: the attempt is on record either way.

Deleting the *last* lines leaves a shorter but valid chain, so every append also rewrites
``head.json`` (entry count, seq and hash of the newest entry) and ``verify`` compares the two: a
missing head is a failure as soon as the trail has an entry (or its ``_audit`` directory exists), a
head that records more entries than the log holds is a truncated tail. Someone who can write the
store can still cut the log *and* rewrite the head consistently, or recompute every hash after an
edit: against that, ``verify`` prints the head hash to copy into the case file, where nobody with
store access can change it, and ``verify --expect HASH`` later proves that entry is still in the chain.

Appends go through the store's ``append_line`` (an exclusive lock on the log, one line appended and
synced), so concurrent investigators never interleave or fork the chain. Every byte of the trail is
read and written through the store (``pipeline/store``): the trail lives wherever the store does.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

from pipeline.errors import StoreError, UsageError, store_error
from pipeline.investigate.stops import stops_raise
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.rules import check_id, escaped_text, os_user, undecodable
from pipeline.store import layout, settings_record
from pipeline.store.commit import Store

StoreLike = Store | str | os.PathLike[str]

GENESIS = "0" * 64
Status = Literal["started", "ok", "refused", "error", "timeout"]


def canonical(entry: dict[str, Any]) -> bytes:
    """The bytes that are hashed: every field but ``hash``, sorted keys, no whitespace."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def entry_hash(entry: dict[str, Any]) -> str:
    return hashlib.sha256(canonical(entry)).hexdigest()


def check_case(case: str | None, require: bool) -> str | None:
    """The case id, validated; refuses a missing one when the config requires it (exit 2)."""
    if case is None or case == "":
        if require:
            raise UsageError("every query runs under a case: give --case CASE-ID")
        return None
    return checked_id(case, "case")


def check_authority(case: str | None, request: str | None, action: str) -> tuple[str | None, str | None]:
    """``export``, ``erase`` and ``keys destroy`` act under a case or a request id (exit 2 without)."""
    if not case and not request:
        raise UsageError(
            f"{action} needs --case CASE-ID or --request REQUEST-ID (recorded in the audit trail)"
        )
    return check_case(case, False), checked_id(request, "request") if request else None


def checked_id(value: str, kind: str) -> str:
    """A case or request id (``rules.check_id``) that holds no IP address: ids are kept as typed
    (entries, holds and their file names are found by them), so a visitor's address cannot be one."""
    check_id(value, kind)
    if mask_value(value, _TRUNCATOR) != value:
        raise UsageError(f"invalid {kind} id {value!r}: it holds an IP address; name the {kind} otherwise")
    return value


@contextlib.contextmanager
def recorded(
    store: StoreLike, command: str, case: str | None = None, reason: str | None = None, *,
    on: bool = True, **what: Any,
) -> Iterator[Record]:  # fmt: skip
    """``AuditLog.record`` on a store that exists (a missing store fails on its own, unaudited)."""
    log = AuditLog(store)
    if not on or not log.store.is_store():
        yield Record()
        return
    with log.record(command, case, reason, **what) as rec:
        yield rec


# Case and request ids are the keys investigators look entries up by (validated, ``rules.ID_RE``); SQL
# was masked with the config's prefixes already.
_VERBATIM = frozenset({"case", "request", "sql"})
_TRUNCATOR = Truncator()


def text_masker(store: Store) -> Truncator:
    """How free text about a store is masked: at the prefixes its rows were ingested with
    (``layout.PRIVACY_RECORD``, its last line) where they are coarser than /24 and /48.

    A record that cannot be read or parsed is a ``StoreError`` (exit 6), as it is for ingest. Found by
    review: it fell back to /24, so an erasure, an export or a hold of an IP-literal domain stored at
    /16 named a domain no row has, found nothing, and reported success.
    """
    try:
        entry = settings_record.current(store)
    except OSError as exc:
        raise store_error(exc, "read") from exc
    if entry is None:
        return _TRUNCATOR  # a store ingested before the record existed, or not yet
    try:
        v4, v6 = int(entry["settings"]["ipv4_prefix"]), int(entry["settings"]["ipv6_prefix"])
        return Truncator(min(v4, _TRUNCATOR.ipv4_prefix), min(v6, _TRUNCATOR.ipv6_prefix))
    except (ValueError, TypeError, KeyError, OverflowError) as exc:  # (1e400: JSON reads infinity)
        raise settings_record.damaged(store, exc) from exc


def _each_text(value: Any, fn: Callable[[str], str]) -> Any:
    """``value`` with ``fn`` applied to every string in it (and in its lists, tuples and dicts)."""
    if isinstance(value, str):
        return fn(value)
    if isinstance(value, dict):
        return {k: _each_text(v, fn) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_each_text(v, fn) for v in value]
    return value


def _undecodable(fields: dict[str, Any]) -> str | None:
    """The name of the first field that holds text that is not UTF-8 (None: all are)."""
    bad = next((n for n, v in fields.items() if isinstance(v, str) and undecodable(v) is not None), None)
    return None if bad is None else {"sql": "the SQL"}.get(bad, f"the {bad}")


@dataclass(frozen=True)
class VerifyReport:
    entries: int
    ok: bool
    bad_entry: int | None = None
    problem: str | None = None
    head_hash: str = GENESIS


@dataclass
class Record:
    """Filled in by the caller while an audited action runs (see ``AuditLog.record``)."""

    params: dict[str, Any] = field(default_factory=dict)
    rows: int | None = None
    warnings: list[str] = field(default_factory=list)


class AuditLog:
    """The trail of one store (a ``Store``, or the root of a local one)."""

    def __init__(self, store: StoreLike) -> None:
        self.store = store if isinstance(store, Store) else Store(store)

    # --- writing -------------------------------------------------------------------------------
    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one entry (seq, time, user, prev_hash and hash are filled in here).

        Free text in it (a reason, an error naming a file, an output path, parameters) has every
        address masked, as SQL has (``session.masked_sql``): an investigator types addresses.
        """
        masker = text_masker(self.store)
        # undecodable bytes as \xff (never an unwritable entry), then every address masked

        def masked(text: str) -> str:
            return mask_value(escaped_text(text), masker)

        fields = {k: _each_text(v, escaped_text if k in _VERBATIM else masked) for k, v in fields.items()}
        written: list[dict[str, Any]] = []

        def build(last: bytes | None) -> bytes:  # runs under the log's lock
            prev = json.loads(last) if last else None
            # A head that does not match the log's end (a cut tail, a deleted head) stays as it is:
            # rewriting it here would turn the damage into a valid shorter chain. verify keeps failing.
            head = self._read_head(strict=False)
            intact = (head is None and prev is None) or (
                head is not None
                and prev is not None
                and (head.get("seq"), head.get("hash")) == (prev["seq"], prev["hash"])
            )
            entry: dict[str, Any] = {
                "seq": (int(prev["seq"]) + 1) if prev else 1,
                "time": dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "user": os_user(),
                **fields,
                "prev_hash": prev["hash"] if prev else GENESIS,
            }
            entry["hash"] = entry_hash(entry)
            line = json.dumps(entry, sort_keys=True, ensure_ascii=False, default=str) + "\n"
            # The head is written here, under the lock, just before its line: written after the lock
            # is released, two appenders could leave the older head last (a false "cut tail").
            if intact:
                self._write_head(entry)
            written.append(entry)
            return line.encode()

        try:
            self.store.append_line(layout.AUDIT_LOG, build, label="audit log")
        except StoreError:
            raise
        except (OSError, ValueError, KeyError) as exc:
            where = self.store.url(layout.AUDIT_LOG)
            raise StoreError(f"cannot append to the audit log {where}: {exc}") from exc
        return written[0]

    def _write_head(self, entry: dict[str, Any]) -> None:
        head = {"entries": entry["seq"], "seq": entry["seq"], "hash": entry["hash"]}
        # (under the log's lock) what a process killed while writing the head left goes first
        self.store.fs.remove_temporaries(layout.AUDIT_WRITER, under=layout.AUDIT)
        self.store.put_bytes(layout.AUDIT_HEAD, json.dumps(head).encode(), writer=layout.AUDIT_WRITER)

    @contextlib.contextmanager
    def record(
        self, command: str, case: str | None, reason: str | None, *, params: dict[str, Any] | None = None,
        **what: Any,
    ) -> Iterator[Record]:  # fmt: skip
        """Audit the block: a ``started`` entry before it runs, its outcome when it ends.

        The outcome (``of`` = the start's seq) carries row count, duration, status and error. A
        refused or failing action is recorded too (status refused/error/timeout): attempts matter.
        """
        rec = Record(params=dict(params or {}))
        first = self.append(
            case=case, reason=reason, command=command, **what, params=rec.params or None, status="started"
        )
        start = time.monotonic()
        status: Status = "ok"
        error: str | None = None
        try:
            # free text typed as text (a file name is recorded with \xHH: it may be any bytes)
            if bad := _undecodable({"reason": reason, "sql": what.get("sql")}):  # recorded as an attempt
                raise UsageError(f"{bad} is not valid UTF-8 text (check the terminal's encoding): not run")
            with stops_raise() as stops:
                yield rec
            if stops.pending:
                rec.warnings.append(
                    f"{' and '.join(dict.fromkeys(stops.pending))} came once it was committed: it completed"
                )
        except UsageError as exc:
            status, error = ("refused" if "refused by the sandbox" in str(exc) else "error"), str(exc)
            raise
        except BaseException as exc:
            timeout = type(exc).__name__ == "QueryLimitError" and "query.timeout" in str(exc)
            status = "timeout" if timeout else "error"
            error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise
        finally:
            linked = {k: what[k] for k in ("request",) if k in what}  # the case's peer, on both entries
            self.append(
                case=case, command=command, **linked, of=first["seq"], params=rec.params or None,
                rows=rec.rows, seconds=round(time.monotonic() - start, 3), status=status, error=error,
                warnings=rec.warnings or None,
            )  # fmt: skip

    # --- reading -------------------------------------------------------------------------------
    def entries(self) -> Iterator[tuple[int, dict[str, Any] | None, str]]:
        """(line number, entry or None when not JSON, raw line)."""
        try:
            raw = self.store.open_read(layout.AUDIT_LOG)
        except FileNotFoundError:
            return
        with io.TextIOWrapper(raw, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    data = json.loads(line)
                except ValueError:
                    data = None
                yield n, data if isinstance(data, dict) else None, line

    def list(self, case: str | None = None) -> list[dict[str, Any]]:
        return [e for _, e, _ in self.entries() if e is not None and (case is None or e.get("case") == case)]

    def verify(self, expect: str | None = None) -> VerifyReport:
        """Check the chain and the head; ``expect``: a head hash copied earlier must still be in it."""
        prev_hash, n, seen = GENESIS, 0, expect in (None, GENESIS)  # (the head an empty trail prints)
        for n, entry, _ in self.entries():
            problem = _check(n, entry, prev_hash)
            if problem:
                return VerifyReport(entries=n, ok=False, bad_entry=n, problem=problem, head_hash=prev_hash)
            assert entry is not None
            prev_hash = entry["hash"]
            seen = seen or prev_hash == expect
        head = self._read_head()
        if head is None and (n or self.store.is_folder(layout.AUDIT)):
            return VerifyReport(
                entries=n, ok=False, head_hash=prev_hash,
                problem=f"head.json is missing ({n} entries in the log): the head was deleted, and with it "
                "the proof that no entry was cut from the end",
            )  # fmt: skip
        if head is not None:
            count = head.get("entries", head.get("seq"))
            if head.get("seq") != n or count != n or head.get("hash") != prev_hash:
                return VerifyReport(
                    entries=n, ok=False, bad_entry=min(n + 1, int(head.get("seq") or 0)) or None,
                    head_hash=prev_hash,
                    problem=f"the log ends at entry {n} but head.json records entry {head.get('seq')}: "
                    "entries were deleted from the end (or head.json was changed)",
                )  # fmt: skip
        if not seen:
            return VerifyReport(
                entries=n,
                ok=False,
                head_hash=prev_hash,
                problem=f"no entry has the expected hash {expect}: the log was cut or rewritten after it",
            )
        return VerifyReport(entries=n, ok=True, head_hash=prev_hash)

    def _read_head(self, strict: bool = True) -> dict[str, Any] | None:
        try:
            data = json.loads(self.store.read_bytes(layout.AUDIT_HEAD).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:
            # Not strict (appending): a head whose content is damaged stays as it is (see ``build``);
            # one that cannot be read at all is an error. Found by review: entries were appended
            # without moving the head, and ``audit verify`` later reported entries deleted.
            if not strict and not isinstance(exc, OSError):
                return {"seq": None}
            raise StoreError(f"cannot read {self.store.url(layout.AUDIT_HEAD)}: {exc}") from exc
        return data if isinstance(data, dict) else {"seq": None}


def _check(n: int, entry: dict[str, Any] | None, prev_hash: str) -> str | None:
    if entry is None:
        return f"entry {n} is not a JSON object (the line was edited or cut)"
    if entry.get("seq") != n:
        return (
            f"entry {n} has seq {entry.get('seq')} where {n} was expected: "
            "an entry was deleted, inserted or moved"
        )
    if entry.get("prev_hash") != prev_hash:
        return (
            f"entry {n} does not follow entry {n - 1} (prev_hash differs): entries were deleted or reordered"
        )
    if entry.get("hash") != entry_hash(entry):
        return f"entry {n} was modified after it was written (its hash does not match its content)"
    return None
