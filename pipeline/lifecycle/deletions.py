"""Proof of deletion: one JSON record per purge or erasure under ``_deletions/`` in the store.

A record says when, who (the OS user), what (table, partition dates, rows deleted per partition and
per domain, keys destroyed, holds honoured and the rows they kept) — never personal data: no
addresses, no pseudonyms, no request paths, no hold reasons (free text typed by an operator).

Crash safety: the record is written (status ``running``) before the first deletion, and every
partition rewrite carries the operation id in its commit record (``_manifests/maintenance/``). If the
process dies, the next maintenance run rebuilds the record from those commit records and marks it
``interrupted``; keys the run was about to destroy are listed as destroyed only if their tombstone
exists. So every deletion that happened is in some record, and no record claims one that did not.
Records are kept forever: they are the proof, and they hold nothing that retention must remove.
Every write seals the record (``sha256`` of its canonical JSON without that field, see ``seal``):
``hostlogs verify`` reports a record whose content no longer matches its seal.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.errors import StoreError
from pipeline.privacy.keys import CUSTODY_DIR, KEY_SUFFIX, TOMBSTONE_SUFFIX
from pipeline.store import layout
from pipeline.store.commit import Store


def record_key(started: dt.datetime, op: str) -> str:
    """The key of an operation's record: sorted by start time, unique by operation id."""
    return layout.deletion(f"{started:%Y%m%dT%H%M%S%fZ}", op)


def record_keys(store: Store) -> list[str]:
    """Every deletion record's key, oldest first."""
    return store.list(layout.DELETIONS, pattern=f"*{layout.JSON}")


def start(
    store: Store, key: str, *, op: str, operation: str, by: str, params: dict[str, Any], **known: Any
) -> None:
    """Write the record of an operation about to delete (status ``running``); ``known``: fields known
    before it deletes (an erasure's ``holds_honoured``), kept when ``recover`` completes the record."""
    write(
        store,
        key,
        {
            "version": 1,
            "id": op,
            "operation": operation,
            "status": "running",
            "started": now(),
            "by": by,
            "hostlogs": __version__,
            "params": params,
            **known,
        },
    )


def update(store: Store, key: str, **fields: Any) -> None:
    record = store.read_json(key) or {}
    write(store, key, {**record, **fields})


def write(store: Store, key: str, record: dict[str, Any]) -> None:
    """Write a record with its seal (the one way records are written)."""
    store.write_json(key, seal(record))


def seal(record: dict[str, Any]) -> dict[str, Any]:
    """The record with ``sha256``: the SHA-256 of its canonical JSON without that field."""
    body = {k: v for k, v in record.items() if k != "sha256"}
    return {**body, "sha256": _digest(body)}


def seal_ok(record: dict[str, Any]) -> bool | None:
    """True if the record matches its seal, False if it was changed, None if it has none (legacy)."""
    if "sha256" not in record:
        return None
    return bool(record["sha256"] == _digest({k: v for k, v in record.items() if k != "sha256"}))


def _digest(body: dict[str, Any]) -> str:
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def finish(store: Store, key: str, status: str = "complete", **fields: Any) -> None:
    update(store, key, status=status, finished=now(), **fields)


def records(store_root: str | Path) -> list[dict[str, Any]]:
    """Every deletion record, oldest first."""
    store = Store(store_root)
    out = []
    for key in record_keys(store):
        data = store.read_json(key)
        if data is not None:
            out.append(data)
    return out


def each_record(store: Store) -> Iterator[tuple[str, dict[str, Any] | StoreError]]:
    """Every deletion record, oldest first, as (its key, its JSON or the ``StoreError`` of reading it):
    a damaged record stops none of the readers that go on without it (found by review)."""
    for key in record_keys(store):
        try:
            record = store.read_json(key)
        except StoreError as exc:
            yield key, exc
            continue
        if record is not None:  # (gone since it was listed)
            yield key, record


def recover(store: Store, key_dir: Path | None, operations: frozenset[str] | None = None) -> list[str]:
    """Complete the records of operations that died mid-way (call under the maintenance lock, after
    ``Store.recover`` has finished their swaps; ``operations``: only records of these).

    A record that cannot be read is left to ``hostlogs verify``, which reports it (found by review:
    one damaged record had stopped every ``keys destroy``)."""
    done = []
    for key, record in each_record(store):
        if isinstance(record, StoreError) or record.get("status") != "running":
            continue
        if operations is not None and record.get("operation") not in operations:
            continue
        parts = partitions_of(store, str(record.get("id")))
        pending = [str(p) for p in record.get("keys_pending") or ()]
        destroyed = [p for p in pending if key_dir is not None and _destroyed(key_dir, p)]
        left = [p for p in pending if p not in destroyed]
        how = (
            "from the key directory by the next run"
            if record.get("operation") == "destroy-keys"
            else "from the commit records by the next maintenance run, which finished the work"
        )
        note = f"the process stopped before the end; this record was completed {how}"
        if left:
            note += "; the keys of keys_not_destroyed are still there: run keys destroy again"
        finish(
            store,
            key,
            status="interrupted",
            partitions=parts,
            rows_deleted=sum(p["rows_deleted"] for p in parts),
            keys_destroyed=destroyed,
            **({"keys_not_destroyed": left} if left else {}),
            note=note,
        )
        done.append(str(record.get("id")))
    return done


def _destroyed(key_dir: Path, period: str) -> bool:
    """A period's keys are destroyed: a tombstone left (pseudonym or custody key), and no key file of
    it remains (found by review: the tombstone is written before the key is shredded, so a shred
    that failed had been recorded as a destruction; custody tombstones had not been looked at)."""
    folders = (key_dir, key_dir / CUSTODY_DIR)
    tombstone = any((d / f"{period}{TOMBSTONE_SUFFIX}").exists() for d in folders)
    return tombstone and not any((d / f"{period}{KEY_SUFFIX}").exists() for d in folders)


def start_keys_destroyed(
    store_root: str | Path, periods: list[str], *, before: dt.date, by: str
) -> tuple[Store, str]:
    """The record of a key destruction outside a purge (``hostlogs keys destroy``), written before it
    (status ``running``, ``keys_pending``): if the process stops once a key is gone, ``recover``
    completes the record from the tombstones (found by review: the record was written after, so a
    stop in between left a destroyed key without proof, and the re-run destroyed nothing to record).
    Returns (the store as the record's writer, the record's key) for ``finish``."""
    # Its own writer name: a maintenance run's recovery removes only the maintenance writer's
    # temporary files, never this record's.
    store = Store(store_root, "keys")
    started = dt.datetime.now(dt.UTC)
    op = uuid.uuid4().hex[:12]
    key = record_key(started, op)
    params = {"before": before.isoformat()}
    start(store, key, op=op, operation="destroy-keys", by=by, params=params, keys_pending=sorted(periods))
    return store, key


def partitions_of(store: Store, op: str) -> list[dict[str, Any]]:
    """The partition entries committed by one operation, from the maintenance commit records."""
    fields = ("table", "date", "action", "rows_deleted", "rows_left", "domains", "holds")
    out = []
    for key in store.manifest_keys(store.writer):
        manifest = store.read_json(key)
        if manifest is not None and manifest.get("op") == op:
            out.append({k: manifest.get(k) for k in fields})
    return out


def counts(mapping: dict[str, int], key: str) -> list[dict[str, Any]]:
    """{name: rows} as a list of {key: name, "rows": n} (uniform JSON for DuckDB's ingest_runs view)."""
    return [{key: name, "rows": n} for name, n in sorted(mapping.items())]


def total(entries: Iterable[dict[str, Any]], field: str) -> int:
    return sum(int(e.get(field) or 0) for e in entries)


def now() -> str:
    """The time stamps of deletion records and rewrite manifests (UTC, ISO 8601)."""
    return dt.datetime.now(dt.UTC).isoformat()
