"""The on-disk store and its commit protocol.

Layout under the store root::

    pageviews/date=YYYY-MM-DD/part-<batch>.parquet   rows, by UTC event date, zstd, sorted by domain first
    _rejects/date=YYYY-MM-DD/rejects-<batch>.parquet quarantine (scrubbed), by UTC ingest date
    _manifests/<writer>/<seq>.json                    one commit record per batch (chain of custody)
    _state/<writer>/progress.json                     committed offsets per stream (a cache of manifests)
    _state/<writer>/pending.json                      intent record of the batch being written
    _state/<writer>/ingest.lock                       one process per writer at a time

A *writer* is an independent producer with its own progress, lock and manifest sequence: cron
ingestion of files (``files``), each piped logger (``pipe-…``), later each web server writing to shared
object storage. Writers never wait for each other; readers merge all of them.

Commit protocol for one batch (why it is exactly-once is argued in docs/ingestion.md):

1. write ``pending.json`` naming the batch's files and the sequence number it will take;
2. write every data and reject file (temporary name, fsync, rename: complete or absent);
3. write ``_manifests/<writer>/<seq>.json`` — **this is the commit**;
4. update ``progress.json`` and remove ``pending.json``.

Every file a commit adds is written through ``Store.write_bytes``/``write_parquet``, which remember its
size and the SHA-256 of the bytes written; ``Store.commit`` puts both into the manifest's ``files``
entries itself and refuses a manifest naming a file it did not write (or leaving out one the intent
record named), so no writer (ingest, purge, erase, compaction) can commit a file without its checksum.
``Store.catalogue`` reads them back: the committed files, each with its recorded size and checksum;
``Store.check_file`` checks one file against it (``hostlogs verify`` checks them all).

On start, ``recover`` applies manifests newer than ``progress.json`` and deletes the files of a
pending batch that has no manifest, for this writer and for any other writer whose process is gone
(its lock is free). Readers skip files named in any ``pending.json``.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import itertools
import json
import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import LockedError, StoreError, store_error

STATE_VERSION = 1
ROW_GROUP_ROWS = 131_072  # ≥128k rows per row group: smaller ones made files 10% larger


@dataclass
class StreamState:
    """Committed progress of one log stream (a file and its rotated/compressed successors)."""

    fp_len: int
    offset: int
    path: str
    updated: str
    # keyed fingerprints (see ingest._identify): of the first fp_len bytes without the name's scope,
    # and of the ``tail_bytes`` bytes just before ``offset`` (checked on resume); legacy: the key is a
    # keyed form of an old unkeyed fingerprint, recorded before tails existed
    content: str | None = None
    tail: str | None = None
    tail_bytes: int = 0
    legacy: bool = False


@dataclass
class Progress:
    seq: int = 0
    streams: dict[str, StreamState] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "seq": self.seq,
            "streams": {k: vars(v) for k, v in sorted(self.streams.items())},
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Progress:
        version = data.get("version")
        if version != STATE_VERSION:
            raise StoreError(f"progress state version {version} is not supported by this hostlogs")
        return cls(
            seq=int(data["seq"]),
            streams={k: StreamState(**v) for k, v in data.get("streams", {}).items()},
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        src = manifest.get("source")
        if src is None:  # a rewrite (purge, erase, compaction): no stream moves
            self.seq = manifest["seq"]
            return
        key = src["fingerprint"]
        if key is None:  # stdin batches have no stream to resume
            self.seq = manifest["seq"]
            return
        current = self.streams.get(key)
        if current is None or src["end"] >= current.offset:
            self.streams[key] = StreamState(
                fp_len=src["fingerprint_bytes"],
                offset=src["end"],
                path=src["path"],
                updated=manifest["created"],
                content=src.get("content"),
                tail=src.get("tail"),
                tail_bytes=src.get("tail_bytes", 0),
                legacy=bool(src.get("legacy_fingerprint")),
            )
        for old in src.get("replaces", []):  # a short fingerprint upgraded to a full one
            if old != key:
                self.streams.pop(old, None)
        self.seq = manifest["seq"]


WRITER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_WRITER = "files"


class Store:
    """A store rooted at a local directory. Object storage will come behind the same methods."""

    def __init__(self, root: str | os.PathLike[str], writer: str = DEFAULT_WRITER) -> None:
        if not WRITER_RE.fullmatch(writer):
            raise StoreError(f"invalid writer name {writer!r}: use letters, digits, '.', '_' or '-'")
        self.root = Path(root)
        self.writer = writer
        # size and SHA-256 of each file written since the last ``begin``: ``commit`` records them
        self._written: dict[str, dict[str, Any]] = {}

    # --- paths ---------------------------------------------------------------------------------
    @property
    def pageviews(self) -> Path:
        return self.root / "pageviews"

    @property
    def rejects(self) -> Path:
        return self.root / "_rejects"

    @property
    def manifests(self) -> Path:
        return self.root / "_manifests" / self.writer

    @property
    def state(self) -> Path:
        return self.root / "_state" / self.writer

    def manifest_path(self, seq: int) -> Path:
        return self.manifests / f"{seq:012d}.json"

    def init(self) -> None:
        try:
            for d in (self.pageviews, self.rejects, self.manifests, self.state):
                d.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise store_error(exc, "create the store at") from exc

    # --- atomic writes -------------------------------------------------------------------------
    def write_parquet(self, path: Path, table: pa.Table) -> int:
        """Write a zstd Parquet file atomically; returns its size in bytes."""
        return self.write_bytes(path, encode_parquet(table))

    def write_bytes(self, path: Path, payload: bytes | pa.Buffer) -> int:
        """Write a file atomically; its size and checksum go into the manifest that commits it."""
        digest = hashlib.sha256(payload).hexdigest()  # releases the GIL: ingest workers keep parsing
        size = _atomic_write(path, lambda f: f.write(payload), self.writer)
        self._written[self._rel(path)] = {"bytes": size, "sha256": digest}
        return size

    def _rel(self, path: Path) -> str:
        try:
            return Path(path).relative_to(self.root).as_posix()
        except ValueError:
            return Path(path).as_posix()

    def write_json(self, path: Path, data: dict[str, Any]) -> None:
        payload = (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()
        _atomic_write(path, lambda f: f.write(payload), self.writer)

    @staticmethod
    def read_json(path: Path) -> dict[str, Any] | None:
        try:
            with open(path, encoding="utf-8") as f:
                data: dict[str, Any] = json.load(f)
                return data
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise StoreError(f"cannot read {path}: {exc}") from exc

    # --- progress, commit and recovery ---------------------------------------------------------
    def load_progress(self) -> Progress:
        data = self.read_json(self.state / "progress.json")
        return Progress() if data is None else Progress.from_json(data)

    def recover(self, *, peers: bool = True) -> Progress:
        """Finish what a crashed run committed and discard what it did not (call under the lock).

        Other writers whose process is gone (lock free) are recovered too, so a piped logger killed
        mid-batch leaves nothing behind once any ingest runs again.
        """
        for other in self.writers() if peers else []:
            if other != self.writer:
                with contextlib.suppress(LockedError):
                    peer = Store(self.root, other)
                    with peer.lock():
                        peer._recover_own()
                    if other.startswith("pipe-"):  # a finished piped logger: nothing to resume
                        shutil.rmtree(peer.state, ignore_errors=True)
        return self._recover_own()

    def writers(self) -> list[str]:
        base = self.root / "_state"
        return sorted(p.name for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def _recover_own(self) -> Progress:
        progress = self.load_progress()
        applied = False
        if not (self.state / "progress.json").exists():
            # Lost (or never written) progress: rebuild it from every manifest there is. Old manifests
            # may have been purged, so the sequence need not start at 1.
            for path in sorted(self.manifests.glob("*.json")):
                manifest = self.read_json(path)
                if manifest is not None and manifest["seq"] > progress.seq:
                    progress.apply(manifest)
                    applied = True
        while (manifest := self.read_json(self.manifest_path(progress.seq + 1))) is not None:
            progress.apply(manifest)
            applied = True
        pending = self.read_json(self.state / "pending.json")
        if pending is not None:
            # Not committed: discard what was added. Committed (a rewrite): finish retiring old files.
            doomed = pending["files"] if pending["seq"] > progress.seq else pending.get("retire", [])
            for rel in doomed:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self.root / rel)
        if applied:
            self.write_json(self.state / "progress.json", progress.to_json())
        if pending is not None:
            os.unlink(self.state / "pending.json")
        _remove_temporaries(self.root, self.writer)
        return progress

    def begin(self, seq: int, files: list[str], retire: list[str] | None = None) -> None:
        """Intent record: ``files`` will be added (hidden until committed), ``retire`` removed."""
        record = {"seq": seq, "files": files, "retire": retire or [], "phase": "writing"}
        self._written = {}
        self.write_json(self.state / "pending.json", record)

    def commit(self, progress: Progress, manifest: dict[str, Any]) -> None:
        manifest = {**manifest, "files": self._checksummed(manifest.get("files", []))}
        self.write_json(self.manifest_path(manifest["seq"]), manifest)
        pending = self.read_json(self.state / "pending.json") or {}
        if pending.get("retire"):
            # The visible switch for readers: one atomic rename flips old → new for the whole rewrite.
            self.write_json(self.state / "pending.json", {**pending, "phase": "committed"})
        progress.apply(manifest)
        self.write_json(self.state / "progress.json", progress.to_json())
        for rel in pending.get("retire", []):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(self.root / rel)
        os.unlink(self.state / "pending.json")

    def _checksummed(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The manifest's file entries with the size and SHA-256 of what this store wrote.

        The one place checksums enter the chain of custody: a file this commit did not write, or one
        the intent record announced and the manifest leaves out, is a bug that must not commit.
        """
        pending = self.read_json(self.state / "pending.json") or {}
        out = []
        for entry in entries:
            written = self._written.pop(entry["path"], None)
            if written is None:
                raise StoreError(f"internal error: {entry['path']} was not written by this commit")
            out.append({**entry, **written})
        missing = sorted(set(pending.get("files", [])) - {e["path"] for e in out})
        if missing:
            raise StoreError(f"internal error: the commit leaves out {', '.join(missing)}")
        self._written = {}
        return out

    def swap(
        self, progress: Progress, retire: list[str], add: dict[str, bytes], record: dict[str, Any]
    ) -> None:
        """Replace files atomically for readers (rewrite of partitions: purge, erase, compaction).

        Readers see the old set until the commit and the new set after it, never both or neither;
        a crash before the commit leaves the old set, after it the next ``recover`` finishes the job.
        """
        seq = progress.seq + 1
        self.begin(seq, list(add), retire)
        for rel, data in add.items():
            self.write_bytes(self.root / rel, data)
        entries = [{"path": rel} for rel in add]
        self.commit(progress, {**record, "seq": seq, "files": entries, "retired": retire})

    def uncommitted_files(self) -> set[Path]:
        """Files readers must not see: added by an uncommitted batch, or retired by a committed rewrite."""
        out: set[Path] = set()
        for path in (self.root / "_state").glob("*/pending.json"):
            pending = self.read_json(path)
            if pending is not None:
                hidden = (
                    pending.get("retire", []) if pending.get("phase") == "committed" else pending["files"]
                )
                out |= {self.root / rel for rel in hidden}
        return out

    def committed_parquet(self) -> list[Path]:
        return self.committed(self.pageviews)

    def committed(self, table: Path) -> list[Path]:
        """The committed Parquet files under ``table`` (``pageviews`` or ``_rejects``), sorted.

        List the files first, then read the intent records: a file in the listing was written after
        its batch's ``pending.json``, so that record is either still there (the file is hidden) or
        gone because the batch committed. Reading the records first would miss a batch that begins
        in between and show its uncommitted files (compaction would then merge and retire them).
        """
        listed = sorted(table.glob("date=*/*.parquet"), key=str)  # str keys sort 3x faster than Paths
        skip = self.uncommitted_files()
        return [p for p in listed if p not in skip]

    def iter_manifests(self) -> Iterator[dict[str, Any]]:
        for path in sorted((self.root / "_manifests").glob("*/*.json")):
            data = self.read_json(path)
            if data is not None:
                yield data

    def catalogue(self) -> Catalogue:
        """The committed files according to the manifests of every writer (not a listing of the disk).

        A file is committed when a manifest adds it and no manifest retires it. Its record carries the
        size and SHA-256 the commit wrote (``sha256`` is None for files committed by a hostlogs that did
        not record checksums, unless ``hostlogs verify --record-legacy`` attested them later).
        Manifests that cannot be parsed are listed in ``damaged``; they are skipped, not fatal.
        """
        added: dict[str, FileRecord] = {}
        retired: dict[str, str] = {}
        attested: dict[str, tuple[int, str, str]] = {}
        damaged: dict[str, str] = {}
        for path in sorted((self.root / "_manifests").glob("*/*.json"), key=str):
            rel = path.relative_to(self.root).as_posix()
            try:
                with open(path, "rb") as f:
                    manifest = json.load(f)
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
            except FileNotFoundError:
                continue  # purged meanwhile
            except (OSError, ValueError, TypeError, KeyError, AttributeError) as exc:
                damaged[rel] = f"not a readable manifest ({type(exc).__name__})"
        files = {p: r for p, r in added.items() if p not in retired}
        for p, (size, digest, rel) in attested.items():
            r = files.get(p)
            if r is not None and r.sha256 is None and r.bytes in (None, size):
                files[p] = FileRecord(p, size, digest, r.rows, r.manifest, attested=rel)
        return Catalogue(files, retired, damaged)

    def check_file(self, rel: str, record: FileRecord | None = None, *, checksum: bool = True) -> str | None:
        """What is wrong with one committed file, or None: missing, altered, or not readable Parquet.

        ``record`` is its catalogue entry (size, SHA-256, rows as committed); without one only the
        Parquet structure is checked. ``checksum=False`` skips hashing (size and structure only).
        Maintenance operations call it before rewriting a file (a rewrite must not launder an altered
        file into a new, correctly checksummed one); queries may call it on a file DuckDB failed on.
        """
        path = self.root / rel
        try:
            size = path.stat().st_size
            if record is not None and record.bytes is not None and size != record.bytes:
                return f"altered: {size:,} bytes, committed with {record.bytes:,}"
            recorded = record.sha256 if checksum and record is not None else None
            if recorded is not None and file_sha256(path) != recorded:
                return "altered: its SHA-256 differs from the one its manifest recorded"
            rows = pq.ParquetFile(path).metadata.num_rows
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

    @contextlib.contextmanager
    def lock(self, wait_seconds: float = 0.0) -> Iterator[None]:
        """Exclusive ingest lock (flock: released by the kernel if the process dies)."""
        try:
            self.state.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.state / "ingest.lock", os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise store_error(exc, "lock the store at") from exc
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockedError(
                            f"another hostlogs ingest is running on {self.root}; "
                            "this run did nothing (use --wait SECONDS to queue behind it)"
                        ) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)


@dataclass(frozen=True)
class FileRecord:
    """One committed file as its manifest recorded it (None: not recorded by that hostlogs)."""

    path: str  # relative to the store root
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


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def _int(value: Any) -> int | None:
    return None if value is None else int(value)


def encode_parquet(table: pa.Table) -> pa.Buffer:
    """zstd Parquet in memory (so worker threads do the CPU work; writing is then a plain copy)."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        use_dictionary=True,
    )
    return sink.getvalue()


# Min/max statistics in ingest files only where a row group's range can exclude anything: time,
# the sort key and short categorical columns. A batch's free-text columns (path, query, referrer,
# user agent) and its pseudonyms and networks span nearly their whole range in every row group, and
# their statistics were a quarter of the encode time. Compacted files carry all statistics.
INGEST_STATISTICS = (
    "ts", "domain", "method", "protocol", "status", "bytes", "country", "asn", "as_org", "geo_db", "server",
)  # fmt: skip


def encode_frame(frame: pl.DataFrame) -> bytes:
    """The hot path: pyarrow's Parquet writer on a zero-copy arrow view of the batch.

    polars' own writer is faster on the wall clock (it encodes columns in parallel) but costs ~20 %
    more CPU, and ingest keeps both cores busy with two batches at a time: CPU is what counts. The
    string columns stay polars' string views (no copy); without an embedded arrow schema, readers
    see the Parquet types (``string``, like compacted files), not the writer's in-memory layout.
    """
    sink = pa.BufferOutputStream()
    table = frame.to_arrow(compat_level=pl.CompatLevel.newest())
    for i, name in enumerate(frame.columns):
        if isinstance(frame.schema[name], pl.Enum | pl.Categorical):
            table = table.set_column(i, name, _dictionary(frame.get_column(name)))
    stats = [c for c in INGEST_STATISTICS if c in table.column_names]
    pq.write_table(
        table, sink, compression="zstd", row_group_size=ROW_GROUP_ROWS, write_statistics=stats,
        store_schema=False,
    )  # fmt: skip
    return bytes(sink.getvalue())


def _dictionary(values: pl.Series) -> pa.DictionaryArray:
    """An Enum or Categorical column as the arrow dictionary the Parquet writer takes as is (no
    hashing per row).

    Only the values this column uses are kept: a date's slice of a batch must not carry other dates'
    values in its dictionary page (they would outlive their own partition's purge).
    """
    array = values.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
    dictionary = array.dictionary.cast(pa.string())
    indices = array.indices.cast(pa.int32())
    used = np.zeros(len(dictionary), dtype=bool)
    used[np.asarray(indices.drop_null())] = True
    if not used.all():  # an Enum holds all of the batch's values, a Categorical may too
        renumber = pa.array(np.cumsum(used, dtype=np.int32) - 1)
        indices = renumber.take(indices)  # null indices stay null
        dictionary = dictionary.filter(pa.array(used))
    return pa.DictionaryArray.from_arrays(indices, dictionary)


BLOOM_COLUMNS = ("client_id", "client_net")


def encode_indexed(frame: pl.DataFrame) -> pa.Buffer:
    """The compacted format: zstd, statistics on every column, balanced row groups, delta-encoded
    ``ts`` and bloom filters on ``client_id`` and ``client_net``.

    Neither column is sorted (row groups follow the domain order), so min/max statistics cannot skip
    anything; a bloom filter lets DuckDB skip every row group that lacks the pseudonyms or the network
    an investigation looks for (measured: 1 of 16 row groups read for ``=``, 3 of 16 for a two-value
    ``IN``). Sized by the distinct values actually present (~10 bits each at 1 % false positives), it
    costs a few % of file size and encode time, so ingest does not write it: compaction and other
    rewrites do.
    """
    from pipeline.store.schema import PAGEVIEWS

    table = frame.to_arrow().cast(PAGEVIEWS)
    groups = row_groups(table.num_rows)
    largest = max((n for _, n in groups), default=1)
    blooms = {
        col: {"ndv": min(max(frame.get_column(col).n_unique(), 1), largest), "fpp": 0.01}
        for col in BLOOM_COLUMNS
    }
    sink = pa.BufferOutputStream()
    # ts ascends within each run of one domain and path: delta encoding makes it ~18 % of the file
    # smaller and 2.6x faster for DuckDB to decode than dictionary/plain + zstd (investigations read ts).
    with pq.ParquetWriter(
        sink, table.schema, compression="zstd", write_statistics=True, bloom_filter_options=blooms,
        use_dictionary=[c for c in table.column_names if c != "ts"],
        column_encoding={"ts": "DELTA_BINARY_PACKED"},
    ) as writer:  # fmt: skip
        for start, length in groups:
            writer.write_table(table.slice(start, length), row_group_size=length)
    return sink.getvalue()


def row_groups(rows: int, target: int = ROW_GROUP_ROWS) -> list[tuple[int, int]]:
    """(start, length) of balanced row groups of about ``target`` rows (0.8x to 1.6x of it).

    Fixed-size groups leave a tail group of any size: a 137,000-row day became 131,072 + 5,928 rows,
    and the tail costs a reader a full set of column chunks, dictionaries and statistics for a few
    rows (measured: ~5 % of a two-year scan). Balanced groups have no tail.
    """
    count = max(1, int(rows / target + 0.375))
    bounds = [rows * i // count for i in range(count + 1)]
    return [(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


def _atomic_write(path: Path, write: Any, writer: str) -> int:
    """Temporary name in the same directory, fsync, rename, fsync the directory.

    The temporary name carries the writer (``.<name>~<writer>~<id>.tmp``; ``~`` is not allowed in a
    writer name) so that a writer's recovery removes its own leftovers only, never a file another
    writer is writing at that moment.
    """
    tmp = path.with_name(f".{path.name}~{writer}~{uuid.uuid4().hex[:8]}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            f = open(tmp, "wb")  # noqa: SIM115 (closed below)
        except FileNotFoundError:  # the purge removed an emptied date= directory meanwhile
            path.parent.mkdir(parents=True, exist_ok=True)
            f = open(tmp, "wb")  # noqa: SIM115
        with f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        size = tmp.stat().st_size
        os.replace(tmp, path)
        fsync_dir(path.parent)
        return size
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink()
        named = exc if exc.filename else OSError(exc.errno, exc.strerror, str(path))
        raise store_error(named, "write") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_TEMPORARY = re.compile(r"\..+~(?P<writer>[A-Za-z0-9._-]+)~[0-9a-f]{8}\.tmp")


def _remove_temporaries(root: Path, writer: str) -> None:
    """Remove the temporaries a crashed run of ``writer`` left (call under its lock)."""
    for tmp in root.glob("**/.*.tmp"):
        m = _TEMPORARY.fullmatch(tmp.name)
        if m is not None and m["writer"] == writer:
            with contextlib.suppress(OSError):
                tmp.unlink()
