"""What the manifests say is committed, and whether a file on the store still matches it.

The catalogue is read from the manifests of every writer, not from a listing of the store: a file is
committed when a manifest adds it and no manifest retires it. Its record carries the size and SHA-256
the commit wrote, so ``check_file`` can tell a missing, altered or unreadable file from a sound one.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
from dataclasses import dataclass, field
from typing import IO, Any

from pipeline.store import layout
from pipeline.store.fs import StoreFS


@dataclass(frozen=True)
class FileRecord:
    """One committed file as its manifest recorded it (None: not recorded by that hostlogs)."""

    path: str  # key, relative to the store root
    bytes: int | None
    sha256: str | None
    rows: int | None
    manifest: str  # the manifest that committed it
    attested: str | None = None  # the record-legacy manifest that recorded its checksum later


@dataclass(frozen=True)
class Catalogue:
    files: dict[str, FileRecord]  # committed and not retired
    retired: dict[str, str]  # file → manifest that retired it
    damaged: dict[str, str]  # manifest → why it could not be read
    # maintenance operation id → (its kind, a manifest that committed a rewrite or retirement of it)
    operations: dict[str, tuple[str, str]] = field(default_factory=dict)


def manifest_keys(fs: StoreFS) -> list[str]:
    """Every writer's manifests (``_manifests/<writer>/*.json``), sorted by key."""
    return fs.list(layout.MANIFESTS, pattern=f"*/*{layout.JSON}")


def build(fs: StoreFS) -> Catalogue:
    """The catalogue of the store (manifests that cannot be parsed are ``damaged``, not fatal).

    ``sha256`` is None for files committed by a hostlogs that did not record checksums, unless
    ``hostlogs verify --record-legacy`` attested them later.
    """
    added: dict[str, FileRecord] = {}
    retired: dict[str, str] = {}
    attested: dict[str, tuple[int, str, str]] = {}
    damaged: dict[str, str] = {}
    operations: dict[str, tuple[str, str]] = {}
    for rel in manifest_keys(fs):
        try:
            manifest = json.loads(fs.read_bytes(rel))
            entries = manifest.get("files", [])
            gone = manifest.get("retired", [])
            checks = manifest.get("checksums", [])
            for e in entries:
                added[e["path"]] = FileRecord(
                    e["path"], _int(e.get("bytes")), e.get("sha256"), _int(e.get("rows")), rel
                )
            for r in gone:
                retired[str(r)] = rel
            for c in checks:
                attested[c["path"]] = (int(c["bytes"]), str(c["sha256"]), rel)
            if manifest.get("op"):
                operations[str(manifest["op"])] = (str(manifest.get("operation")), rel)
        except FileNotFoundError:
            continue  # purged meanwhile
        except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
            damaged[rel] = f"not a readable manifest ({type(exc).__name__})"
    files = {p: r for p, r in added.items() if p not in retired}
    for p, (size, digest, rel) in attested.items():
        r = files.get(p)
        if r is not None and r.sha256 is None and r.bytes in (None, size):
            files[p] = FileRecord(p, size, digest, r.rows, r.manifest, attested=rel)
    return Catalogue(files, retired, damaged, operations)


def sha256(fs: StoreFS, key: str) -> str:
    """SHA-256 of a store file, streamed (OSError when missing or unreadable)."""
    with fs.open_read(key) as f:
        return _digest(f)


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a local file outside the store (benchmarks, tests, export output)."""
    with open(path, "rb") as f:
        return _digest(f)


def _digest(stream: IO[bytes]) -> str:
    h = hashlib.sha256()
    while chunk := stream.read(1 << 20):
        h.update(chunk)
    return h.hexdigest()


def check_file(
    fs: StoreFS, key: str, record: FileRecord | None = None, *, checksum: bool = True
) -> str | None:
    """What is wrong with one committed file, or None: missing, altered, or not readable Parquet.

    ``record`` is its catalogue entry (size, SHA-256, rows as committed); without one only the
    Parquet structure is checked. ``checksum=False`` skips hashing (size and structure only).
    Maintenance operations call it before rewriting a file (a rewrite must not launder an altered
    file into a new, correctly checksummed one); queries may call it on a file DuckDB failed on.
    """
    try:
        if fs.is_folder(key):  # (its "size" is the folder entry's)
            return "altered: a folder, not a file"
        size = fs.size(key)
        if record is not None and record.bytes is not None and size != record.bytes:
            return f"altered: {size:,} bytes, committed with {record.bytes:,}"
        recorded = record.sha256 if checksum and record is not None else None
        if recorded is not None and sha256(fs, key) != recorded:
            return "altered: its SHA-256 differs from the one its manifest recorded"
        from pipeline.store.parquet import parquet_rows  # (polars: only when a file is checked)

        rows = parquet_rows(fs.url(key))
    except FileNotFoundError:
        return "missing"
    except OSError as exc:
        if exc.errno in (errno.EACCES, errno.EPERM, errno.EIO):
            return f"unreadable: {exc.strerror or exc}"
        return f"not readable Parquet: {exc}"
    except Exception as exc:  # pyarrow raises several kinds on garbage
        return f"not readable Parquet: {exc}"
    if record is not None and record.rows is not None and rows != record.rows:
        return f"altered: {rows:,} rows, committed with {record.rows:,}"
    return None


def _int(value: Any) -> int | None:
    return None if value is None else int(value)
