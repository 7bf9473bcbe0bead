"""Committed progress of a writer: one state per log stream, and the sequence of its last manifest.

``progress.json`` is a cache of the manifests: ``Progress.apply`` replays one, and recovery rebuilds
the whole state from them when it is lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import StoreError

# 2: streams know their file by ``path_id`` (names masked). An older hostlogs refuses a state of a
# newer one with a clear error; this one reads both.
STATE_VERSION = 2
READABLE_VERSIONS = (1, 2)


@dataclass
class StreamState:
    """Committed progress of one log stream (a file and its rotated/compressed successors)."""

    fp_len: int
    offset: int
    path: str  # the file last read, as shown (``sources.stored_name``: an address in it masked)
    updated: str
    # keyed fingerprints (see ingest._identify): of the first fp_len bytes without the name's scope,
    # and of the ``tail_bytes`` bytes just before ``offset`` (checked on resume); legacy: the key is a
    # keyed form of an old unkeyed fingerprint, recorded before tails existed
    content: str | None = None
    tail: str | None = None
    tail_bytes: int = 0
    legacy: bool = False
    # a keyed digest of that file's absolute path (``sources.path_id``): how ingest finds the file
    # again when its name held an address; None in states recorded before names were masked
    path_id: str | None = None


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
        if version not in READABLE_VERSIONS:
            raise StoreError(f"progress state version {version} is not supported by this hostlogs")
        return cls(
            seq=int(data["seq"]),
            streams={k: StreamState(**v) for k, v in data.get("streams", {}).items()},
        )

    def apply(self, manifest: dict[str, Any]) -> None:
        src = manifest.get("source")
        if src is None:  # a rewrite (purge, erase, compaction): no stream moves
            for key in manifest.get("reset_streams", []):  # ingest --reingest: read it from 0 again
                self.streams.pop(key, None)
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
                path_id=src.get("path_id"),
            )
        for old in src.get("replaces", []):  # a short fingerprint upgraded to a full one
            if old != key:
                self.streams.pop(old, None)
        self.seq = manifest["seq"]
