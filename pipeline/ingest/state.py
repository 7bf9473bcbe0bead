"""What one ingest run shares between its stages: config, store, progress, keys, caches."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from pipeline.config import Config
from pipeline.errors import HostlogsError
from pipeline.ingest import globs, sources
from pipeline.ingest.paths import source_glob
from pipeline.privacy import digests, keys
from pipeline.privacy import mask as privacy
from pipeline.privacy.enrich import Enricher
from pipeline.store.commit import Store
from pipeline.store.progress import Progress, StreamState


@dataclass
class RunState:
    """The run under the store lock: read by ``streams`` (identity), ``batch`` (commits), ``run``."""

    cfg: Config
    store: Store
    progress: Progress
    masker: privacy.ClientMasker
    run_id: str
    sensitive_regex: str
    final: bool | None
    enricher: Enricher
    keys: keys.KeyStore  # the key directory: custody keys per period, the stream fingerprint key
    stream_key: bytes
    partitions: set[str] = field(default_factory=set)
    bytes_read: int = 0
    on_read: Callable[[int], None] | None = None  # told each committed batch's bytes (progress)
    inodes: dict[tuple[int, int], str] = field(default_factory=dict)  # files read this run
    files: dict[str, str] = field(default_factory=dict)  # the run's source files by ``path_id``
    _all_known: bool = False  # the configured sources' files are in ``files`` too
    _near: set[str] = field(default_factory=set)  # masked names whose neighbourhood was searched
    _checkpoints: dict[str, list[tuple[int, int, str]]] | None = None
    _content: tuple[int, dict[str, list[str]]] | None = None

    def content_index(self) -> dict[str, list[str]]:
        """Stream keys by their unscoped content fingerprint (rebuilt when progress moved)."""
        if self._content is None or self._content[0] != self.progress.seq:
            index: dict[str, list[str]] = {}
            for k, st in self.progress.streams.items():
                if st.content:
                    index.setdefault(st.content, []).append(k)
            self._content = (self.progress.seq, index)
        return self._content[1]

    def know_files(self, paths: list[tuple[str, str]]) -> None:
        """The source files this run matched (``expand_source``'s pairs), so ``recorded_file`` can
        name a stream's file from its digest."""
        self.files.update((self.path_id(p), p) for p, _ in paths if p != sources.STDIN)

    def path_id(self, path: str) -> str:
        return sources.path_id(self.stream_key, path)

    def recorded_file(self, state: StreamState) -> str | None:
        """The file a stream was last read from, when it can be named: its name as recorded when no
        address was masked in it, else the matched source file with its ``path_id``."""
        if state.path_id is None:  # recorded before names were masked: the name as it was
            return state.path
        if self.path_id(state.path) == state.path_id:
            return state.path
        if state.path_id not in self.files and not self._all_known:
            # a run of some files only (``ingest PATH``, ``--reingest``): the configured ones too,
            # or another source's log would look moved away and be taken for a renamed file
            self._all_known = True
            for spec in self.cfg.sources:
                with contextlib.suppress(HostlogsError, OSError):
                    if spec.path != sources.STDIN:
                        self.know_files(globs.expand_source(source_glob(spec), spec.olddir))
        if state.path_id not in self.files and state.path not in self._near:
            self._near.add(state.path)  # (a file named on the command line once, say)
            self.files.update((self.path_id(p), p) for p in sources.files_near(state.path))
        return self.files.get(state.path_id)

    def is_recorded_name(self, state: StreamState, path: str) -> bool:
        """Was the stream last read from the file at ``path``, by this name or another spelling of it
        (a link to its folder: found by review), or another name of that very file (a hard link)?"""
        if state.path_id is None:
            return state.path == sources.display_name(path)
        if state.path_id in (self.path_id(path), self.path_id(os.path.realpath(path))):
            return True
        recorded = self.recorded_file(state)
        if recorded is None:
            return False
        if os.path.realpath(recorded) == os.path.realpath(path):
            return True
        # a hard link or a bind mount: the very file under another name (found by review: its lines
        # were stored again, run after run)
        return same_file(recorded, path)

    def digest(self, *parts: bytes) -> str:
        return digests.stream_digest(self.stream_key, *parts)

    def checkpoints(self, key: str) -> list[tuple[int, int, str]]:
        """(end, tail bytes, tail digest) of every batch this writer committed for stream ``key``."""
        if self._checkpoints is None:
            found: dict[str, list[tuple[int, int, str]]] = {}
            for manifest in self.store.manifest_keys(self.store.writer):
                src = (self.store.read_json(manifest) or {}).get("source") or {}
                if src.get("fingerprint") and src.get("tail"):
                    entry = (int(src["end"]), int(src["tail_bytes"]), str(src["tail"]))
                    found.setdefault(src["fingerprint"], []).append(entry)
            self._checkpoints = found
        return self._checkpoints.get(key, [])


def same_file(a: str, b: str) -> bool:
    """Two names of one file (a hard link, a bind mount); False when either cannot be looked at."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
