"""The commit protocol of the store: progress, intent records, manifests, recovery, swaps and locks.

The layout (``pageviews/date=…``, ``_rejects/``, ``_manifests/<writer>/``, ``_state/<writer>/``…) is
spelled out in ``pipeline/store/layout.py``; every byte goes through ``pipeline/store/fs.py``.

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
import datetime as dt
import hashlib
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, overload

if TYPE_CHECKING:  # only writers hand tables over: a query starts without pyarrow
    import pyarrow as pa

from pipeline.errors import LockedError, StoreError
from pipeline.store import catalogue, layout
from pipeline.store.access import Key, StoreFiles
from pipeline.store.catalogue import Catalogue, FileRecord
from pipeline.store.fs import Payload, StoreFS
from pipeline.store.progress import Progress

WRITER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
DEFAULT_WRITER = "files"
NO_STORE = "no store at {}: run 'hostlogs ingest' first or give --store"


class Store(StoreFiles):
    """A store and one writer's commit protocol on it; every byte goes through ``self.fs``."""

    def __init__(
        self, root: str | os.PathLike[str], writer: str = DEFAULT_WRITER, fs: StoreFS | None = None
    ) -> None:
        if not WRITER_RE.fullmatch(writer):
            raise StoreError(f"invalid writer name {writer!r}: use letters, digits, '.', '_' or '-'")
        super().__init__(root, fs)
        self.writer = writer
        # size and SHA-256 of each file written since the last ``begin``: ``commit`` records them
        self._written: dict[str, dict[str, Any]] = {}

    @classmethod
    def existing(
        cls, root: str | os.PathLike[str], writer: str = DEFAULT_WRITER, *, ingested: bool = False,
        fs: StoreFS | None = None,
    ) -> Store:  # fmt: skip
        """The store at ``root``, which must exist (``ingested``: and hold a pageviews table).

        The one "no store at" check: readers and maintenance never create a store by accident.
        """
        store = cls(root, writer, fs)
        if not any(store.is_folder(own) for own in ((layout.PAGEVIEWS,) if ingested else layout.OWN)):
            raise StoreError(NO_STORE.format(store.location))
        return store

    def peer(self, writer: str) -> Store:
        """The same store as another writer sees it."""
        return Store(self.root, writer, self.fs)

    # --- paths (deprecated: use keys from pipeline.store.layout) -------------------------------
    @property
    def pageviews(self) -> Path:
        return self.root / layout.PAGEVIEWS

    @property
    def rejects(self) -> Path:
        return self.root / layout.REJECTS

    @property
    def manifests(self) -> Path:
        return self.root / layout.manifests(self.writer)

    @property
    def state(self) -> Path:
        return self.root / layout.state(self.writer)

    def manifest_path(self, seq: int) -> Path:
        return self.root / layout.manifest(self.writer, seq)

    def init(self) -> None:
        self.make_folders(
            layout.PAGEVIEWS, layout.REJECTS, layout.manifests(self.writer), layout.state(self.writer)
        )

    # --- atomic writes -------------------------------------------------------------------------
    def write_parquet(self, key: Key, table: pa.Table) -> int:
        """Write a zstd Parquet file atomically; returns its size in bytes."""
        from pipeline.store.parquet import encode_parquet  # (polars: writers only)

        return self.write_bytes(key, encode_parquet(table))

    def write_bytes(self, key: Key, payload: Payload) -> int:
        """Write a file atomically; its size and checksum go into the manifest that commits it."""
        digest = hashlib.sha256(payload).hexdigest()  # releases the GIL: ingest workers keep parsing
        k = self._key(key)
        size = self.fs.write_atomic(k, payload, self.writer)
        self._written[k] = {"bytes": size, "sha256": digest}
        return size

    def write_json(self, key: Key, data: dict[str, Any]) -> None:
        """Write a JSON object atomically (as this writer; not recorded for a commit)."""
        self.put_json(key, data, self.writer)

    # --- progress, commit and recovery ---------------------------------------------------------
    def load_progress(self) -> Progress:
        data = self.read_json(layout.progress(self.writer))
        return Progress() if data is None else Progress.from_json(data)

    def recover(self, *, peers: bool = True) -> Progress:
        """Finish what a crashed run committed and discard what it did not (call under the lock).

        Other writers whose process is gone (lock free) are recovered too, so a piped logger killed
        mid-batch leaves nothing behind once any ingest runs again.
        """
        for other in self.writers() if peers else []:
            if other != self.writer:
                with contextlib.suppress(LockedError):
                    peer = self.peer(other)
                    with peer.lock():
                        peer._recover_own()
                    if other.startswith("pipe-"):  # a finished piped logger: nothing to resume
                        self.remove_tree(layout.state(other))
        return self._recover_own()

    def writers(self) -> list[str]:
        """Every writer with state in the store (``_state/<writer>/``)."""
        return self.folders(layout.STATE)

    def _recover_own(self) -> Progress:
        progress = self.load_progress()
        applied = False
        if not self.exists(layout.progress(self.writer)):
            # Lost (or never written) progress: rebuild it from every manifest there is. Old manifests
            # may have been purged, so the sequence need not start at 1.
            for key in self.manifest_keys(self.writer):
                manifest = self.read_json(key)
                if manifest is not None and manifest["seq"] > progress.seq:
                    progress.apply(manifest)
                    applied = True
        while (manifest := self.read_json(layout.manifest(self.writer, progress.seq + 1))) is not None:
            progress.apply(manifest)
            applied = True
        pending = self.read_json(layout.pending(self.writer))
        if pending is not None:
            # Not committed: discard what was added. Committed (a rewrite): finish retiring old files.
            doomed = pending["files"] if pending["seq"] > progress.seq else pending.get("retire", [])
            for rel in doomed:
                self.remove(rel)
        if applied:
            self.write_json(layout.progress(self.writer), progress.to_json())
        if pending is not None:
            self.remove(layout.pending(self.writer), missing_ok=False)
        self.fs.remove_temporaries(self.writer)
        # and the audit head's, of a process killed while writing it (when no append is under way)
        self.fs.remove_temporaries(layout.AUDIT_WRITER, under=layout.AUDIT, lock=layout.AUDIT_LOG)
        return progress

    def begin(self, seq: int, files: list[str], retire: list[str] | None = None) -> None:
        """Intent record: ``files`` will be added (hidden until committed), ``retire`` removed."""
        record = {"seq": seq, "files": files, "retire": retire or [], "phase": "writing"}
        self._written = {}
        self.write_json(layout.pending(self.writer), record)

    def commit(self, progress: Progress, manifest: dict[str, Any]) -> None:
        manifest = {**manifest, "files": self._checksummed(manifest.get("files", []))}
        self.write_json(layout.manifest(self.writer, manifest["seq"]), manifest)
        pending = self.read_json(layout.pending(self.writer)) or {}
        if pending.get("retire"):
            # The visible switch for readers: one atomic rename flips old → new for the whole rewrite.
            self.write_json(layout.pending(self.writer), {**pending, "phase": "committed"})
        progress.apply(manifest)
        self.write_json(layout.progress(self.writer), progress.to_json())
        for rel in pending.get("retire", []):
            self.remove(rel)
        self.remove(layout.pending(self.writer), missing_ok=False)

    def _checksummed(self, entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The manifest's file entries with the size and SHA-256 of what this store wrote.

        The one place checksums enter the chain of custody: a file this commit did not write, or one
        the intent record announced and the manifest leaves out, is a bug that must not commit.
        """
        pending = self.read_json(layout.pending(self.writer)) or {}
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
            self.write_bytes(rel, data)
        entries = [{"path": rel} for rel in add]
        self.commit(progress, {**record, "seq": seq, "files": entries, "retired": retire})

    # --- what readers see ----------------------------------------------------------------------
    def pending_keys(self) -> list[str]:
        """Every writer's intent record (``_state/*/pending.json``)."""
        return self.list(layout.STATE, pattern=f"*/{layout.PENDING}")

    def hidden(self) -> set[str]:
        """Keys readers must not see: added by an uncommitted batch, or retired by a committed rewrite.

        A batch is committed once its manifest is written, whatever its intent record still says: a
        writer killed between the manifest and the record's removal had left its files hidden from
        status, erasure and purge (found by review: an erasure reported complete, the rows still
        queryable) until that writer ran again. The record is read before the manifest is looked
        for, so a reader sees the old set or the new one, never neither.
        """
        out: set[str] = set()
        for key in self.pending_keys():
            pending = self.read_json(key)
            if pending is not None:
                writer = key.rsplit("/", 2)[-2]
                committed = pending.get("phase") == "committed" or self.exists(
                    layout.manifest(writer, int(pending["seq"]))
                )
                out |= set(pending.get("retire", []) if committed else pending["files"])
        return out

    def committed_parquet(self) -> list[Path]:
        return self.committed(self.pageviews)

    @overload
    def committed(self, table: str) -> list[str]: ...
    @overload
    def committed(self, table: os.PathLike[str]) -> list[Path]: ...
    def committed(self, table: Key) -> list[str] | list[Path]:
        """The committed Parquet files of ``table`` (``pageviews`` or ``_rejects``), sorted keys.

        (A Path under the root, the old form, gives Paths.) List the files first, then read the intent
        records: a file in the listing was written after its batch's ``pending.json``, so that record
        is either still there (the file is hidden) or gone because the batch committed. Reading the
        records first would miss a batch that begins in between and show its uncommitted files
        (compaction would then merge and retire them).
        """
        name = self._key(table)
        listed = self.list(name, pattern=layout.partition_glob(name))
        skip = self.hidden()
        keys = [k for k in listed if k not in skip]
        return keys if isinstance(table, str) else [self.root / k for k in keys]

    def manifest_keys(self, writer: str | None = None) -> list[str]:
        """The manifests of one writer, or of every writer (None), sorted by key."""
        if writer is None:
            return catalogue.manifest_keys(self.fs)
        return self.list(layout.manifests(writer), pattern=f"*{layout.JSON}")

    def manifests_since(
        self, writer: str, since: dt.datetime
    ) -> Iterator[tuple[dt.datetime, dict[str, Any]]]:
        """The manifests one writer committed at or after ``since``, newest first, with their commit
        time. One without a readable time is skipped: a damaged manifest is no reason to stop."""
        for key in reversed(self.manifest_keys(writer)):  # (ascending commit order)
            manifest = self.read_json(key) or {}
            created = manifest_time(manifest)
            if created is None:
                continue
            if created < since:
                return
            yield created, manifest

    def iter_manifests(self) -> Iterator[dict[str, Any]]:
        for key in self.manifest_keys():
            data = self.read_json(key)
            if data is not None:
                yield data

    def catalogue(self) -> Catalogue:
        """The committed files according to the manifests of every writer (see ``catalogue.build``)."""
        return catalogue.build(self.fs)

    def check_file(self, rel: str, record: FileRecord | None = None, *, checksum: bool = True) -> str | None:
        """What is wrong with one committed file, or None (see ``catalogue.check_file``)."""
        return catalogue.check_file(self.fs, rel, record, checksum=checksum)

    def lock(self, wait_seconds: float = 0.0) -> contextlib.AbstractContextManager[None]:
        """Exclusive ingest lock of this writer (released by the kernel if the process dies)."""
        busy = (
            f"another hostlogs ingest is running on {self.location}; "
            "this run did nothing (use --wait SECONDS to queue behind it)"
        )
        return self.fs.lock(layout.ingest_lock(self.writer), wait_seconds, busy)


def manifest_time(manifest: dict[str, Any]) -> dt.datetime | None:
    """A manifest's commit time (``created``; UTC when it names no zone), or None when unreadable."""
    try:
        created = dt.datetime.fromisoformat(str(manifest.get("created")))
    except ValueError:
        return None
    return created if created.tzinfo is not None else created.replace(tzinfo=dt.UTC)
