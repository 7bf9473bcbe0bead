"""The audit trail: who looked at what, under which case. Append-only, hash-chained JSON lines.

``<store>/_audit/audit.jsonl`` holds one entry per line: ``seq`` (1, 2, ...), UTC ``time``, OS
``user``, ``case``, ``reason``, ``command``, the ``sql`` or ``investigation`` with its ``params``,
``rows``, ``seconds``, ``status`` (ok / refused / error) and ``error``, then ``prev_hash`` and
``hash`` = SHA-256 of the canonical JSON of every other field (``prev_hash`` included). Editing,
deleting or reordering a line breaks the chain at that entry, which ``verify`` names.

Every audited action writes two linked entries: ``status = started`` *before* it runs (with the
statement or investigation and the case), then its outcome (ok / refused / error / timeout, rows,
seconds) with ``of`` = the seq of its start. A query killed by a signal (even ``kill -9``) leaves its
start entry without an outcome: the attempt is on record.

Deleting the *last* lines leaves a shorter but valid chain, so every append also rewrites
``head.json`` (entry count, seq and hash of the newest entry) and ``verify`` compares the two: a
missing head is a failure as soon as the trail has an entry (or its ``_audit`` directory exists), a
head that records more entries than the log holds is a truncated tail. Someone who can write the
store can still cut the log *and* rewrite the head consistently, or recompute every hash after an
edit: against that, ``verify`` prints the head hash to copy into the case file, where nobody with
store access can change it, and ``verify --expect HASH`` later proves that entry is still in the chain.

Appends take an exclusive ``flock`` on the log, write one line with O_APPEND and fsync it, so
concurrent investigators never interleave or fork the chain.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pipeline.errors import StoreError, UsageError
from pipeline.rules import check_id, os_user

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
            raise UsageError(
                "every query runs under a case: give --case CASE-ID "
                "(or set query.require_case = false in the config)"
            )
        return None
    return check_id(case, "case")


def check_authority(case: str | None, request: str | None, action: str) -> tuple[str | None, str | None]:
    """``export``, ``erase`` and ``keys destroy`` act under a case or a request id (exit 2 without)."""
    if not case and not request:
        raise UsageError(
            f"{action} needs --case CASE-ID or --request REQUEST-ID (recorded in the audit trail)"
        )
    return check_case(case, False), check_id(request, "request") if request else None


@contextlib.contextmanager
def recorded(
    store_root: str | Path, command: str, case: str | None = None, reason: str | None = None, *,
    on: bool = True, **what: Any,
) -> Iterator[Record]:  # fmt: skip
    """``AuditLog.record`` on a store that exists (a missing store fails on its own, unaudited)."""
    if not on or not Path(store_root).is_dir():
        yield Record()
        return
    with AuditLog(store_root).record(command, case, reason, **what) as rec:
        yield rec


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
    def __init__(self, store_root: str | Path) -> None:
        self.dir = Path(store_root) / "_audit"
        self.path = self.dir / "audit.jsonl"
        self.head = self.dir / "head.json"

    # --- writing -------------------------------------------------------------------------------
    def append(self, **fields: Any) -> dict[str, Any]:
        """Append one entry (seq, time, user, prev_hash and hash are filled in here)."""
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise StoreError(f"cannot open the audit log {self.path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            last = _last_line(fd)
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
            os.write(fd, line.encode())
            os.fsync(fd)
            if intact:
                self._write_head(entry)
            return entry
        except (OSError, ValueError, KeyError) as exc:
            raise StoreError(f"cannot append to the audit log {self.path}: {exc}") from exc
        finally:
            os.close(fd)  # releases the flock

    def _write_head(self, entry: dict[str, Any]) -> None:
        tmp = self.head.with_name(f".head.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump({"entries": entry["seq"], "seq": entry["seq"], "hash": entry["hash"]}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.head)

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
            yield rec
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
            with open(self.path, encoding="utf-8", errors="replace") as f:
                for n, line in enumerate(f, 1):
                    try:
                        data = json.loads(line)
                    except ValueError:
                        data = None
                    yield n, data if isinstance(data, dict) else None, line
        except FileNotFoundError:
            return

    def list(self, case: str | None = None) -> list[dict[str, Any]]:
        return [e for _, e, _ in self.entries() if e is not None and (case is None or e.get("case") == case)]

    def verify(self, expect: str | None = None) -> VerifyReport:
        """Check the chain and the head; ``expect``: a head hash copied earlier must still be in it."""
        prev_hash, n, seen = GENESIS, 0, expect is None
        for n, entry, _ in self.entries():
            problem = _check(n, entry, prev_hash)
            if problem:
                return VerifyReport(entries=n, ok=False, bad_entry=n, problem=problem, head_hash=prev_hash)
            assert entry is not None
            prev_hash = entry["hash"]
            seen = seen or prev_hash == expect
        head = self._read_head()
        if head is None and (n or self.dir.is_dir()):
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
            data = json.loads(self.head.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            if not strict:
                return {"seq": None}
            raise StoreError(f"cannot read {self.head}: {exc}") from exc
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


def _last_line(fd: int) -> str | None:
    """The last complete line of the file (read backwards in blocks)."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if end == 0:
        return None
    block, pos, tail = 1 << 16, end, b""
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        tail = chunk + tail
        pos = start
        stripped = tail.rstrip(b"\n")
        if b"\n" in stripped or pos == 0:
            return stripped.rsplit(b"\n", 1)[-1].decode("utf-8")
    return None
