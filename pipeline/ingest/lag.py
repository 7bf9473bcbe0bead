"""How far behind each configured source is: bytes not yet ingested, and what its last run gave.

Read-only: nothing is locked, created or written (``hostlogs status`` and the metrics call it while an
ingest may be running). A file is identified exactly as ingest identifies it (``streams.identify``
with the store's committed progress and the stream key), so the lag of a file is its size minus the
committed offset of *its* stream, whatever its name is today (a rotated ``access.log.1`` that was
read to the end as ``access.log`` has no lag). A compressed file's lag is unknown: its decompressed
size is only known by decompressing it, which a status check must not do; it is reported as unknown.

The last run of a file comes from the manifests (newest first, stopping as soon as every file is
found): time of its last commit, lines, rows and rejects by reason of that run. A source *needs
attention* when it matches no file, a file cannot be read, its last run rejected more than
``ingest.max_reject_rate`` of its lines, more than ``max_lag_bytes`` wait to be ingested, or the last
ingest failed on a file that is unchanged since (``failures.py``).
"""

from __future__ import annotations

import datetime as dt
import os
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipeline.config import Config
from pipeline.errors import HostlogsError
from pipeline.ingest import failures, globs, sources
from pipeline.ingest.failures import reject_rate_error
from pipeline.ingest.paths import source_glob
from pipeline.ingest.state import RunState
from pipeline.ingest.streams import identify, same_file_as
from pipeline.privacy import keys
from pipeline.privacy.enrich import Enricher
from pipeline.privacy.mask import ClientMasker
from pipeline.privacy.truncate import Truncator
from pipeline.store import layout
from pipeline.store.commit import DEFAULT_WRITER, Store
from pipeline.store.progress import Progress

DEFAULT_MAX_LAG_BYTES = 64 << 20
COMPRESSED = "compressed: its decompressed size is not known cheaply, so its lag is unknown"


@dataclass(frozen=True)
class LastRun:
    """What one ingest run committed for a file (or a source's files): from its manifests."""

    run: str
    time: str  # ISO 8601 UTC of the run's last commit for it
    lines: int = 0
    rows: int = 0
    rejects: dict[str, int] = field(default_factory=dict)

    @property
    def rejected(self) -> int:
        return sum(self.rejects.values())

    @property
    def reject_rate(self) -> float:
        return self.rejected / self.lines if self.lines else 0.0


@dataclass(frozen=True)
class FileLag:
    path: str
    size: int | None  # bytes on disk (of the compressed file for a compressed one)
    offset: int | None  # committed offset of its stream (None: never read, or unknown)
    lag: int | None  # bytes not yet ingested (None: unknown)
    note: str | None = None
    error: str | None = None
    last_run: LastRun | None = None


@dataclass(frozen=True)
class SourceLag:
    """One ``[[sources]]`` entry: its files, their lag, its last run and whether it needs attention."""

    pattern: str
    files: tuple[FileLag, ...]
    last_run: LastRun | None
    max_reject_rate: float
    max_lag_bytes: int
    error: str | None = None

    @property
    def lag(self) -> int:
        """Bytes known to wait (files of unknown lag count 0)."""
        return sum(f.lag or 0 for f in self.files)

    @property
    def problem(self) -> str | None:
        """Why this source needs attention, in one line naming it (None: it does not)."""
        errors = [self.error, *(f.error for f in self.files)]
        if any(errors):
            return f"source {self.pattern}: {next(e for e in errors if e)}"
        r = self.last_run
        # the rule ingest applies (a single reject never fails a run): status agrees with its exit code
        why = reject_rate_error(r.lines, r.rejects, self.max_reject_rate) if r is not None else None
        if r is not None and why is not None:
            return (
                f"source {self.pattern}: its last run rejected {r.rejected:,} of {r.lines:,} lines "
                f"({r.reject_rate:.1%}, more than ingest.max_reject_rate {self.max_reject_rate:.1%})"
            )
        if self.lag > self.max_lag_bytes:
            limit = self.max_lag_bytes
            return f"source {self.pattern}: {self.lag:,} bytes not yet ingested (more than {limit:,})"
        return None

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "lag": self.lag, "problem": self.problem}


def source_lags(cfg: Config, *, max_lag_bytes: int = DEFAULT_MAX_LAG_BYTES) -> tuple[SourceLag, ...]:
    """The lag and last run of every ``[[sources]]`` entry of ``cfg`` (piped sources are skipped)."""
    specs = [s for s in cfg.sources if s.path != sources.STDIN]
    if not specs:
        return ()
    store = Store(cfg.store, DEFAULT_WRITER)
    progress = store.load_progress()
    state = _run_state(cfg, store, progress)
    matched = [
        (spec, source_glob(spec), globs.expand_source(source_glob(spec), spec.olddir)) for spec in specs
    ]
    # how manifests name each file: its path_id, or (those of an older hostlogs) its name
    names: dict[str, tuple[str, ...]] = {}
    masked = Truncator.configured(cfg)
    for _, _, paths in matched:
        for p, _ in paths:
            shown = sources.display_name(p)
            # without the key (another user, a missing key directory): by the name as stored
            names[p] = (shown, sources.stored_name(p, masked)) if state is None else (state.path_id(p), shown)
        if state is not None:
            state.know_files(paths)
    runs = last_runs(store, names, by_id=state is not None)
    failed = failures.load(store)
    out = []
    for _, pattern, paths in matched:
        files = [_file_lag(cfg, state, progress, p, home, runs.get(p), failed) for p, home in paths]
        found = [f for f in files if f is not None]
        error = None if paths else f"no file matches {pattern} (collection has stopped: fix the path)"
        # logs glob cannot see are as unnoticed as a pattern matching nothing
        problems = [error, *(problem for _, problem in globs.blind_spots(pattern))]
        error = "; ".join(p for p in problems if p) or None
        out.append(
            SourceLag(
                pattern=pattern,
                files=tuple(found),
                last_run=_source_run([f.last_run for f in found if f.last_run]),
                max_reject_rate=cfg.ingest.max_reject_rate,
                max_lag_bytes=max_lag_bytes,
                error=error,
            )
        )
    return tuple(out)


PIPE_WINDOW = dt.timedelta(hours=1)


@dataclass(frozen=True)
class PipedStream:
    """A piped logger (``ingest -``, in a writer namespace of its own): what it committed in the last
    hour. It runs for days and reports its reject rate only when it exits, so status checks it here
    (a pipe with the wrong --format had quarantined every line for days, unnoticed by status). An
    hour, not a day: the alarm ends an hour after the pipe is fixed or stopped (found by review: a
    stopped pipe's alarm could be neither cleared nor acknowledged for 24 h)."""

    writer: str
    last_commit: str
    lines: int
    rows: int
    rejects: dict[str, int]
    max_reject_rate: float

    @property
    def problem(self) -> str | None:
        if reject_rate_error(self.lines, self.rejects, self.max_reject_rate) is None:
            return None
        rejected = sum(self.rejects.values())
        return (
            f"piped stream {self.writer}: in the last hour it rejected {rejected:,} of {self.lines:,} lines "
            f"({rejected / self.lines:.1%}, more than ingest.max_reject_rate {self.max_reject_rate:.1%}): "
            "check its --format and --domain"
        )

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "piped": True, "problem": self.problem}


def piped_streams(cfg: Config, *, now: dt.datetime | None = None) -> tuple[PipedStream, ...]:
    """Every piped logger that committed in the hour before ``now``, with what it committed."""
    store = Store(cfg.store, DEFAULT_WRITER)
    since = (now or dt.datetime.now(dt.UTC)) - PIPE_WINDOW
    out = []
    for writer in store.folders(layout.MANIFESTS):
        if not writer.startswith("pipe-"):
            continue
        last, lines, rows, rejects = None, 0, 0, Counter[str]()
        for created, manifest in store.manifests_since(writer, since):  # newest first
            last = last or created.isoformat()
            lines += _count(manifest.get("lines"))
            rows += _count(manifest.get("rows"))
            found = manifest.get("rejects")
            rejects.update({str(k): _count(v) for k, v in found.items()} if isinstance(found, dict) else {})
        if last is not None:
            out.append(
                PipedStream(
                    writer, last, lines, rows, dict(sorted(rejects.items())), cfg.ingest.max_reject_rate
                )
            )
    return tuple(out)


def _count(value: object) -> int:
    """A count from a manifest; 0 for what is none (a damaged manifest stops no status)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


def _run_state(cfg: Config, store: Store, progress: Progress) -> RunState | None:
    """A read-only run state for ``identify``; None when there is no stream key (nothing was read).

    The stream key is only read, never made: the key directory is not created by a status check.
    """
    key_file = Path(cfg.key_dir) / keys.CUSTODY_DIR / keys.STREAM_KEY_FILE
    if not key_file.is_file():
        return None
    keystore = keys.KeyStore.configured(cfg)
    return RunState(
        cfg=cfg,
        store=store,
        progress=progress,
        masker=ClientMasker.configured(cfg),
        run_id="status",
        sensitive_regex="",
        final=None,
        enricher=Enricher(None, keystore.period, None),
        keys=keystore,
        stream_key=keystore.stream_key(),
    )


def _file_lag(
    cfg: Config, r: RunState | None, progress: Progress, path: str, home: str, run: LastRun | None,
    failed: dict[str, failures.Failure],
) -> FileLag | None:  # fmt: skip
    """The lag of one file (None: another name of a file already counted)."""
    name = sources.display_name(path)
    try:
        size = os.path.getsize(path)
        if r is not None and same_file_as(r, path) is not None:
            return None
        if r is not None and (failure := failures.of(failed, r.stream_key, path)) is not None:
            # the last run failed on it and it is unchanged since: it fails again
            error = failures.named(failure.error, name, r.masker)
            why = f"its last ingest ({failure.time}) failed and it is unchanged since: {error}"
            return FileLag(name, size, None, None, error=why, last_run=run)
        if sources.is_compressed(path) or sources.compressed_by_magic(path):
            return FileLag(name, size, None, None, note=COMPRESSED, last_run=run)
        if r is None:
            if progress.streams:  # streams recorded, but no key to recognise them: say so
                nokey = "no stream key in the key directory: cannot tell which bytes were read"
                return FileLag(name, size, None, None, note=nokey, last_run=run)
            return FileLag(name, size, None, size, note="never read", last_run=run)
        final = sources.is_final(path, cfg.ingest.partial_line_grace)
        ident = identify(r, path, final, home)
        if ident is None:
            return FileLag(name, size, None, size, note="waiting: no complete line yet", last_run=run)
        ident.stream.close()
        offset = min(ident.start, size)
        note = ident.skip_note or ident.note or (None if ident.start else "never read")
        lag = 0 if ident.skip_note else size - offset
        return FileLag(name, size, ident.start, lag, note=note, last_run=run)
    except (HostlogsError, OSError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        return FileLag(name, None, None, None, error=f"cannot read {name}: {why}", last_run=run)


def last_runs(store: Store, names: dict[str, tuple[str, ...]], *, by_id: bool) -> dict[str, LastRun]:
    """The last run of each file of ``names`` (file -> how its manifests may name it: ``path_id``,
    or ``path`` in those of an older hostlogs), newest manifests first. ``by_id``: a manifest's
    ``path_id`` is what names it (without the key, its ``path`` is all there is)."""
    owners: dict[str, list[str]] = {}  # (without the key, files of one /24 share a stored name)
    for path, given in names.items():
        for name in given:
            owners.setdefault(name, []).append(path)
    found: dict[str, dict[str, Any]] = {}
    done: set[str] = set()
    for key in reversed(store.manifest_keys(DEFAULT_WRITER)):
        if len(done) == len(names):
            break
        manifest = store.read_json(key) or {}
        src = manifest.get("source") or {}
        for path in owners.get(str((by_id and src.get("path_id")) or src.get("path")), []):
            if path not in done:
                _add_run(found, done, path, manifest)
    return {
        p: LastRun(a["run"], a["time"], a["lines"], a["rows"], dict(sorted(a["rejects"].items())))
        for p, a in found.items()
    }


def _add_run(found: dict[str, dict[str, Any]], done: set[str], path: str, manifest: dict[str, Any]) -> None:
    """Count a manifest (newest first) into ``path``'s last run; an older run completes it."""
    acc = found.get(path)
    if acc is None:
        acc = found[path] = {"run": manifest.get("run", ""), "time": manifest.get("created", "")}
        acc.update(lines=0, rows=0, rejects=Counter())
    elif acc["run"] != manifest.get("run", ""):
        done.add(path)  # an older run: the last one is complete
        return
    acc["lines"] += int(manifest.get("lines") or 0)
    acc["rows"] += int(manifest.get("rows") or 0)
    acc["rejects"].update(manifest.get("rejects") or {})


def _source_run(runs: list[LastRun]) -> LastRun | None:
    """A source's last run: the newest of its files' last runs, summed over the files it read."""
    if not runs:
        return None
    newest = max(runs, key=lambda r: r.time)
    same = [r for r in runs if r.run == newest.run]
    rejects: Counter[str] = Counter()
    for r in same:
        rejects.update(r.rejects)
    return LastRun(
        newest.run,
        newest.time,
        sum(r.lines for r in same),
        sum(r.rows for r in same),
        dict(sorted(rejects.items())),
    )
