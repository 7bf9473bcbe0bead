"""Every path and name of the store, in one module.

Keys are posix strings relative to the store root (``pageviews/date=2024-05-01/part-ab12.parquet``);
only ``pipeline/store/`` turns them into locations (a local path today, an object key later)::

    pageviews/date=YYYY-MM-DD/part-<batch>.parquet       rows, by UTC event date
    _rejects/date=YYYY-MM-DD/rejects-<batch>.parquet     quarantine (scrubbed), by UTC ingest date
    _manifests/<writer>/<seq:012d>.json                  one commit record per batch (chain of custody)
    _state/<writer>/progress.json | pending.json | ingest.lock
    _state/keyed-digests.json                            ingest's migration marker (keyed fingerprints)
    _state/key-dir.json                                  a keyed identifier of the store's key directory
    _state/privacy.jsonl                                 privacy settings of the rows, a line per change
    _holds/<stamp>-<safe case id>-<hash>.json            legal holds (the case id itself is inside)
    _deletions/<stamp>-<op>.json                         deletion records (purge, erase)
    _audit/audit.jsonl, _audit/head.json                 the hash-chained audit trail and its head
"""

from __future__ import annotations

import datetime as dt
import re
import uuid

# --- table folders ------------------------------------------------------------------------------
PAGEVIEWS = "pageviews"
REJECTS = "_rejects"
TABLES = (PAGEVIEWS, REJECTS)

# --- bookkeeping folders ------------------------------------------------------------------------
MANIFESTS = "_manifests"
STATE = "_state"
HOLDS = "_holds"
DELETIONS = "_deletions"
AUDIT = "_audit"
# What only a store holds: a folder with none of these is no store (the audit trail is not one: a
# query of a mistyped --store had made it, and found "no rows" with exit 0; found by review).
OWN = (PAGEVIEWS, REJECTS, MANIFESTS, STATE, HOLDS, DELETIONS)
AUDIT_LOG = f"{AUDIT}/audit.jsonl"
AUDIT_HEAD = f"{AUDIT}/head.json"
AUDIT_WRITER = "audit"  # the head's atomic writes: under the log's lock (no writer state of its own)
MIGRATION_MARKER = f"{STATE}/keyed-digests.json"  # every manifest and progress state is keyed
KEY_DIR_RECORD = f"{STATE}/key-dir.json"  # which key directory is the store's (privacy.key_identity)
KEYS_LOST = f"{STATE}/keys-lost.json"  # purge --keys-lost: the operator declared the key directory gone
PRIVACY_RECORD = f"{STATE}/privacy.jsonl"  # prefixes, pseudonyms, key period: one line per change

PARQUET = ".parquet"
JSON = ".json"
PROGRESS = "progress.json"
PENDING = "pending.json"
FAILURES = "failures.json"  # source files the last ingest could not read (``ingest/failures.py``)
LOCK = "ingest.lock"

_PARTITION = "date="
_DATE_RE = re.compile(r"(?:^|/)date=([0-9]{4}-[0-9]{2}-[0-9]{2})(?:/|$)")


def join(*parts: str) -> str:
    """A key from parts (empty parts skipped): ``join("_state", "files")`` → ``_state/files``."""
    return "/".join(p.strip("/") for p in parts if p and p.strip("/"))


# --- partitions -----------------------------------------------------------------------------------
def partition(table: str, day: dt.date) -> str:
    """``pageviews/date=YYYY-MM-DD``: the folder of one day of a table."""
    return f"{table}/{_PARTITION}{day.isoformat()}"


def partition_glob(table: str) -> str:
    """The pattern of a table's data files, relative to the table: ``date=*/*.parquet``."""
    return f"{_PARTITION}*/*{PARQUET}"


def date_of(key: str) -> dt.date | None:
    """The partition date a key lies under (None: not under a ``date=`` folder, or not a date)."""
    m = _DATE_RE.search(key)
    if m is None:
        return None
    try:
        return dt.date.fromisoformat(m[1])
    except ValueError:
        return None


def partition_day(folder: str) -> dt.date | None:
    """The date of a partition folder's own name (``date=2024-05-01``), None for anything else."""
    if not folder.startswith(_PARTITION):
        return None
    try:
        return dt.date.fromisoformat(folder[len(_PARTITION) :])
    except ValueError:
        return None


def in_table(key: str, table: str) -> bool:
    """Whether ``key`` is a data file of ``table`` (``<table>/date=…/…``)."""
    return key.startswith(f"{table}/{_PARTITION}")


def data_file(day: dt.date, batch: str) -> str:
    """An ingest batch's file of one event day."""
    return f"{partition(PAGEVIEWS, day)}/part-{batch}{PARQUET}"


def reject_file(day: dt.date, batch: str) -> str:
    """An ingest batch's quarantine file (``day``: the UTC ingest date)."""
    return f"{partition(REJECTS, day)}/rejects-{batch}{PARQUET}"


def new_part(day: dt.date) -> str:
    """A fresh name for a rewritten data file (purge, erase, compaction)."""
    return f"{partition(PAGEVIEWS, day)}/part-{uuid.uuid4().hex[:16]}{PARQUET}"


# --- commit protocol ------------------------------------------------------------------------------
def manifests(writer: str) -> str:
    return f"{MANIFESTS}/{writer}"


def manifest(writer: str, seq: int) -> str:
    return f"{MANIFESTS}/{writer}/{seq:012d}{JSON}"


def manifest_seq(key: str) -> int | None:
    """The sequence number of a manifest key (None: not a numbered manifest)."""
    stem = key.rsplit("/", 1)[-1].removesuffix(JSON)
    return int(stem) if stem.isdigit() and key.endswith(JSON) else None


def manifest_writer(key: str) -> str:
    """The writer a manifest key belongs to (``_manifests/<writer>/<seq>.json``)."""
    return key.split("/")[1]


def state(writer: str) -> str:
    return f"{STATE}/{writer}"


def progress(writer: str) -> str:
    return f"{STATE}/{writer}/{PROGRESS}"


def pending(writer: str) -> str:
    return f"{STATE}/{writer}/{PENDING}"


def failures(writer: str) -> str:
    return f"{STATE}/{writer}/{FAILURES}"


def ingest_lock(writer: str) -> str:
    return f"{STATE}/{writer}/{LOCK}"


# --- holds, deletion records ----------------------------------------------------------------------
def hold(file: str) -> str:
    """A hold's record (``file``: its file name, e.g. ``<case>.json``)."""
    return f"{HOLDS}/{file}"


def deletion(stamp: str, op: str) -> str:
    """A deletion record (``stamp``: ``%Y%m%dT%H%M%S%fZ`` of its start; ``op``: the operation id)."""
    return f"{DELETIONS}/{stamp}-{op}{JSON}"
