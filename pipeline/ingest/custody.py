"""Chain of custody: prove that a log file holds exactly the bytes a batch was ingested from.

Each batch's manifest records ``source.digest`` = HMAC-SHA256(custody key of ``source.custody_period``,
SHA-256 of the raw bytes ``[source.start, source.end)``). The digest is keyed so that the store alone
never lets anyone test guesses of a raw line against it (a one-line batch's row gives every field but
the host byte of the address: 256 candidates). A custodian holding the key directory recomputes it
from the original file: ``prove`` (``hostlogs keys prove FILE``) finds the batches read from that file
and checks each one. Once the purge destroyed a period's keys its digests can no longer be checked,
by anyone: that is the point of destroying them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

from pipeline.config import Config
from pipeline.errors import HostlogsError, KeyDestroyedError, StoreError
from pipeline.ingest import sources
from pipeline.ingest.source_stream import SourceStream
from pipeline.privacy import digests, keys
from pipeline.store import layout
from pipeline.store.commit import Store

Status = Literal["verified", "DIFFERS", "file too short", "key destroyed", "no digest"]


@dataclass(frozen=True)
class BatchProof:
    writer: str
    seq: int
    start: int
    end: int
    period: str | None
    status: Status


def prove(cfg: Config, path: str) -> list[BatchProof]:
    """Check every batch of the store that was read from ``path`` (by content, or by its name)."""
    key_dir = Path(cfg.key_dir)
    if not key_dir.is_dir():
        raise StoreError(f"no key directory at {key_dir}: the custody keys are needed to check digests")
    keystore = keys.KeyStore(key_dir, cast(keys.Period, cfg.privacy.key_period))
    stream_key = keystore.stream_key()
    store = Store(cfg.store)
    heads: dict[int, bytes | None] = {}
    name = sources.display_name(path)
    scope = sources.stream_scope(path)
    wanted: list[tuple[str, dict[str, Any]]] = []
    for key in store.manifest_keys():  # every writer's
        manifest = store.read_json(key) or {}
        src = manifest.get("source")
        if not isinstance(src, dict) or not src.get("keyed") or src.get("fingerprint") is None:
            continue
        length = int(src.get("fingerprint_bytes") or 0)
        if length not in heads:
            heads[length] = sources.read_head(path, length, final=True)
        head = heads[length]
        ours = _named(src, path, name, stream_key)
        if head is not None and not ours:
            if src.get("content"):
                ours = digests.stream_digest(stream_key, b"content", head) == src["content"]
            elif src.get("legacy_fingerprint"):
                legacy = sources.legacy_fingerprint(scope, head)
                ours = digests.stream_digest(stream_key, b"legacy", legacy.encode()) == src["fingerprint"]
        if ours:
            wanted.append((layout.manifest_writer(key), manifest))
    reader = _ForwardReader(path)  # one pass over the file for all its batches, as re-ingest reads it
    return [_check(keystore, reader, writer, m) for writer, m in wanted]


def belongs_to(cfg: Config, path: str, scope_of: str | None = None) -> Callable[[dict[str, Any]], bool]:
    """Whether a batch (its manifest's ``source``) was read from the stream of the file at ``path``,
    by the identity ingest gives files: the keyed fingerprint of its scope and first bytes, so the
    rotated ``access_log.1.gz`` is the stream once read as ``access_log`` and the new ``access_log``
    is not. Batches of an older hostlogs (no keyed fingerprint) match by the name they were read as."""
    keystore = keys.KeyStore.configured(cfg)
    stream_key = keystore.stream_key() if keystore.has_stream_key() else None
    key = stream_key if Path(path).is_file() else None  # (a file gone is matched by its name)
    scope = os.fsencode(sources.stream_scope(scope_of or path))  # (an olddir's file: its log's scope)
    name = sources.display_name(path)
    heads: dict[int, bytes | None] = {}

    def ours(src: dict[str, Any]) -> bool:
        if key is None or not src.get("keyed") or not src.get("fingerprint"):
            return _named(src, path, name, stream_key)
        length = int(src.get("fingerprint_bytes") or 0)
        if length not in heads:
            heads[length] = sources.read_head(path, length, final=True)
        head = heads[length]
        base = str(src["fingerprint"]).split("~", 1)[0]  # a later generation of the same file
        return head is not None and digests.stream_digest(key, b"scope", scope, head) == base

    return ours


def still_holds(cfg: Config, path: str) -> Callable[[dict[str, Any]], str | None]:
    """For ``ingest --reingest``: why the file at ``path`` no longer holds the bytes a batch was read
    from (None: it still holds them), so that no row is retired that reading the file again cannot
    give back (an older, shorter copy restored; the file truncated or rewritten since; the file gone).

    Checked by the batch's custody digest where its key still exists, by length where it does not.
    Batches come in stream order: the file is read once, forward (a .gz or .bz2 is not decompressed
    again from its start for every batch); a batch before the last one reopens it.
    """
    keystore = keys.KeyStore.configured(cfg)
    stream_key = keystore.stream_key() if keystore.has_stream_key() else None
    reader = _ForwardReader(path)

    def problem(manifest: dict[str, Any]) -> str | None:
        src = manifest["source"]
        period, tail = src.get("custody_period"), int(src.get("tail_bytes") or 0)
        try:
            sha, last = reader.sha256(int(src["start"]), int(src["end"]), keep=tail)
            key = keystore.custody.key(period, create=False) if src.get("digest") and period else None
        except KeyDestroyedError:
            key = None
        except (OSError, HostlogsError) as exc:
            return f"it cannot be read ({getattr(exc, 'strerror', None) or exc})"
        if sha is None:
            return "it is shorter than where that batch was read"
        if key is not None and digests.custody_digest(key, sha) != src["digest"]:
            return "it holds other bytes where that batch was read"
        # the period's custody key destroyed: the keyed digest of the batch's last bytes (made with
        # the stream key, which is never destroyed) still tells a file rewritten at that end
        checkable = key is None and stream_key is not None and bool(src.get("tail")) and len(last) == tail
        if checkable and digests.stream_digest(stream_key or b"", b"tail", last) != src["tail"]:
            return "it holds other bytes where that batch ended"
        return None

    return problem


def edited_in_place(cfg: Config, path: str) -> Callable[[dict[str, Any]], str | None]:
    """For ``ingest --reingest --changed-in-place``: why a batch may not be retired though the file
    no longer holds its bytes. The file must be there to be read again (its name alone had matched
    every stream once read under it: all their rows retired, the file's lost for good), and no other
    file of its rotation (``access.log.1``, ``.2.gz``: the same stream scope) may begin as it does: a
    rotated copy holding the stream's earlier lines is copytruncate, not an edit (found by review:
    the copy's lines had been retired and then skipped as an older copy)."""
    if not Path(path).is_file():
        return lambda _: "it cannot be read (gone, or no file)"
    base = Path(path).name
    folder = Path(path).parent
    # its folder and the folders in it (logrotate's olddir: found by the next review), by name
    here = _entries(folder)
    nearby = [*here, *(f for d in here if d.is_dir() for f in _entries(d))]
    siblings = [
        (other, belongs_to(cfg, str(other), scope_of=path))
        for other in sorted(nearby)
        if other.is_file() and other.name != base and other.name.startswith(base)
    ]

    def problem(manifest: dict[str, Any]) -> str | None:
        for other, theirs in siblings:
            if theirs(manifest["source"]):
                return f"{other.name} begins as it does: a rotated copy of its stream (copytruncate, no edit)"
        return None

    return problem


def _entries(folder: Path) -> list[Path]:
    """What a folder holds, or nothing when it cannot be listed (another user's olddir)."""
    try:
        return list(folder.iterdir())
    except OSError:
        return []


class _ForwardReader:
    """SHA-256 of byte ranges of a (possibly compressed) file, read forward from one open stream,
    and the bytes just before a range's end (a batch's tail digest may reach into the batch before).

    The stream is closed when the reader is dropped (the re-ingest's plan holds it)."""

    RECENT = 2 * sources.TAIL_BYTES

    def __init__(self, path: str) -> None:
        self.path = path
        self.stream: SourceStream | None = None
        self.pos = 0
        self.recent = b""  # the bytes read just before ``pos`` (up to RECENT)

    def sha256(self, start: int, end: int, keep: int = 0) -> tuple[bytes | None, bytes]:
        """The digest of ``[start, end)`` (None when the file ends before ``end``) and the ``keep``
        bytes before ``end``."""
        stream = self._at(start)
        if stream is None:
            return None, b""
        digest = hashlib.sha256()
        while self.pos < end:
            chunk = self._read(stream, end - self.pos)
            if not chunk:
                return None, b""
            digest.update(chunk)
        if keep and len(self.recent) < keep:  # after a seek: read them again (a plain file)
            with sources.open_stream(self.path) as again:
                again.seek(end - keep)
                return digest.digest(), again.read(keep)
        return digest.digest(), self.recent[-keep:] if keep else b""

    def _at(self, start: int) -> SourceStream | None:
        if self.stream is None or start < self.pos:
            if self.stream is not None:
                self.stream.close()
            self.stream, self.pos, self.recent = sources.open_stream(self.path), 0, b""
        stream = self.stream
        if start == self.pos:
            return stream
        try:
            self.pos, self.recent = stream.seek(start), b""  # a plain file (past its end: reads nothing)
        except OSError:  # compressed: decompress forward
            while self.pos < start:
                if not self._read(stream, start - self.pos):
                    return None
        return stream

    def _read(self, stream: SourceStream, limit: int) -> bytes:
        chunk = stream.read(min(limit, 1 << 22))
        self.pos += len(chunk)
        self.recent = (self.recent + chunk[-self.RECENT :])[-self.RECENT :]
        return chunk


def _named(src: dict[str, Any], path: str, name: str, stream_key: bytes | None) -> bool:
    """Was a batch read from the file at ``path`` (by its name: ``path_id``, or the name itself
    in batches of an older hostlogs, which did not mask names)?"""
    if src.get("path_id"):
        return stream_key is not None and sources.path_id(stream_key, path) == src["path_id"]
    return bool(src.get("path") == name)


def _check(
    keystore: keys.KeyStore, reader: _ForwardReader, writer: str, manifest: dict[str, Any]
) -> BatchProof:
    src = manifest["source"]
    start, end, period = int(src["start"]), int(src["end"]), src.get("custody_period")
    seq = int(manifest["seq"])

    def result(status: Status) -> BatchProof:
        return BatchProof(writer, seq, start, end, period, status)

    if not src.get("digest") or not period:
        gone = period and "destroyed" in (keystore.status(period), keystore.custody.status(period))
        return result("key destroyed" if gone else "no digest")
    key = keystore.custody.key(period, create=False)
    if key is None:
        return result("key destroyed")
    sha, _ = reader.sha256(start, end)
    if sha is None:
        return result("file too short")
    return result("verified" if digests.custody_digest(key, sha) == src["digest"] else "DIFFERS")
