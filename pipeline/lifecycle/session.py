"""The maintenance session: the one writer (and lock) of purge, erase, compact, export and holds.

Maintenance runs as its own store writer, ``maintenance``: its own lock, manifests and pending record,
so it never waits for cron ingestion or piped loggers, nor they for it. A session takes that lock,
finishes what a crashed maintenance run left (its half-written files, its deletion record), and then
hands the operation a ``Session``: the store, the operation's id and start time, and the list of
damaged files the operation reports.

Damaged files (not readable Parquet, altered against their manifest's checksum, or named in no
manifest) are never rewritten: a rewrite would launder them into a new, correctly checksummed file.
Each operation reports them (``DamagedFile``) and carries on with the rest; what it does with one is its
own rule (compaction and export skip it, erasure stops that day, the purge destroys it unread when its
whole day is past retention and under no hold, and leaves it otherwise).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import __version__
from pipeline.config import Config
from pipeline.errors import LockedError, StoreError, store_error
from pipeline.lifecycle import deletions
from pipeline.privacy import key_identity
from pipeline.privacy.keys import KeyStore
from pipeline.rules import os_user
from pipeline.store import layout
from pipeline.store.catalogue import Catalogue
from pipeline.store.commit import Store
from pipeline.store.progress import Progress

MAINTENANCE_WRITER = "maintenance"
# An ingest that recovers a crashed maintenance run holds the maintenance lock for milliseconds.
LOCK_GRACE_SECONDS = 0.5
ADVICE = "run 'hostlogs verify' and treat it as an incident"


@contextlib.contextmanager
def maintenance_lock(store: Store, wait: float) -> Iterator[None]:
    """The one lock of purge, erase, compact, export and hold changes (never an ingest writer's)."""
    try:
        lock = store.lock(max(wait, LOCK_GRACE_SECONDS))
        lock.__enter__()
    except LockedError:
        raise LockedError(
            f"another hostlogs maintenance run (purge, erase, compact, export or hold) is running on "
            f"{store.location}; this run did nothing (use --wait SECONDS to queue behind it)"
        ) from None
    try:
        yield
    finally:
        lock.__exit__(None, None, None)


@dataclass(frozen=True)
class DamagedFile:
    """A file an operation could not use as it is, and what the operation did about it."""

    path: str  # relative to the store root
    problem: str
    action: str

    def describe(self) -> str:
        return f"{self.path}: {self.problem}; {self.action}"


def damaged_fields(damaged: Iterable[DamagedFile]) -> dict[str, Any]:
    """The deletion record's ``damaged_files`` (only when there are any: older records stay alike)."""
    entries = [{"file": d.path, "problem": d.problem, "action": d.action} for d in damaged]
    return {"damaged_files": entries} if entries else {}


@dataclass
class Session:
    """One maintenance operation; ``progress`` is None in a dry run (no lock taken, nothing written)."""

    store: Store
    cfg: Config
    kind: str
    progress: Progress | None
    op: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    started: dt.datetime = field(default_factory=lambda: dt.datetime.now(dt.UTC))
    by: str = field(default_factory=os_user)
    damaged: list[DamagedFile] = field(default_factory=list)  # reported by the operation
    _catalogue: Catalogue | None = None

    @property
    def dry_run(self) -> bool:
        return self.progress is None

    @property
    def catalogue(self) -> Catalogue:
        """The committed files with their recorded checksums (read once per operation)."""
        if self._catalogue is None:
            self._catalogue = self.store.catalogue()
        return self._catalogue

    def check(self, rel: str, *, checksum: bool = True) -> str | None:
        """What is wrong with a file this operation is about to read or rewrite (None: nothing)."""
        record = self.catalogue.files.get(rel)
        if record is None:
            return "named in no manifest (planted, or its manifest is lost)"
        return self.store.check_file(rel, record, checksum=checksum)

    def damage(self, rel: str, problem: str, action: str) -> None:
        self.damaged.append(DamagedFile(rel, problem, action))

    @property
    def record(self) -> str:
        """The key of this operation's deletion record (``store.url(record)`` says where it is)."""
        return deletions.record_key(self.started, self.op)

    def swap(self, retire: list[str], add: dict[str, bytes], record: dict[str, Any]) -> None:
        assert self.progress is not None, "no writes in a dry run"
        meta = {"operation": self.kind, "op": self.op, "created": deletions.now(), "hostlogs": __version__}
        self.store.swap(self.progress, retire, add, {**meta, **record})


@contextlib.contextmanager
def session(cfg: Config, kind: str, *, dry_run: bool, wait: float) -> Iterator[Session]:
    """Open the store as the maintenance writer: lock, finish what a crashed run left, then work."""
    store = open_store(cfg)
    if dry_run:  # read-only: no lock file, no recovery, no record
        yield Session(store, cfg, kind, None)
        return
    with maintenance_lock(store, wait):
        # Own state only: recovering other writers (Store.recover) would take their locks, and a cron
        # ingest or piped logger starting at that instant would exit 75. Ingest recovers them itself,
        # and readers (and so every maintenance operation) never see their uncommitted files.
        progress = store.recover(peers=False)  # never take an ingest writer's lock
        key_dir = Path(cfg.key_dir)
        deletions.recover(store, key_dir if key_dir.is_dir() else None)
        yield Session(store, cfg, kind, progress)


def open_store(cfg: Config) -> Store:
    """The store as the maintenance writer sees it: it must exist and hold ingested rows."""
    return Store.existing(cfg.store, MAINTENANCE_WRITER, ingested=True)


def key_store(cfg: Config, store: Store | None = None, *, unreadable_ok: bool = False) -> KeyStore | None:
    """The pseudonym keys, or None when there are none (never creates the key directory); with the
    ``store``, refused (exit 3) when they are another store's (``privacy.key_identity``; one this
    user may not read is an error unless ``unreadable_ok``: a report that only lists them)."""
    key_dir = Path(cfg.key_dir)
    keys = KeyStore.configured(cfg) if key_dir.is_dir() else None
    if keys is not None and store is not None:
        key_identity.check(store, keys, unreadable_ok=unreadable_ok)
    return keys


def keys_required(cfg: Config, store: Store, doing: str) -> KeyStore | None:
    """``key_store``, refused (``StoreError``, exit 6) when the store was ingested with keys and the
    key directory is not there (a typo, a volume not mounted): ``doing`` would find no pseudonym in
    any period and report success (found by review: an erasure by address recorded as complete)."""
    keys = key_store(cfg, store)
    if keys is None and keys_expected(store):
        raise StoreError(
            f"no key directory at {cfg.key_dir}, but the store {store.location} was ingested with keys: "
            f"{doing} needs them; check privacy.key_dir (gone for good: purge --keys-lost); "
            "nothing was changed"
        )
    return keys


def keys_expected(store: Store) -> bool:
    """Whether the store was ingested with keys: its privacy record (written by every ingest that
    keys its custody digests, whatever ``pseudonym`` says) exists. Then a key directory without
    them is a wrong ``privacy.key_dir``, not a store without keys."""
    try:
        # ``purge --keys-lost`` declared them gone for good: from then on the store is one without keys
        return store.exists(layout.PRIVACY_RECORD) and not store.exists(layout.KEYS_LOST)
    except OSError as exc:  # not "no record": that would let the purge go on without the keys
        raise store_error(exc, "read") from exc
