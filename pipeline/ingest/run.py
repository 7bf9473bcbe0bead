"""The ingest stage: sources → parsed, privacy-safe batches → committed Parquet + quarantine.

``run(config, sources)`` is the library entry point; the CLI only renders its ``IngestReport``.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO

from pipeline.config import Config, IngestConfig, SourceConfig
from pipeline.errors import (
    ConfigError,
    HostlogsError,
    SourceCutShort,
    SourceError,
    SourceGone,
    SourceRewritten,
    StoreError,
)
from pipeline.ingest import failures, formats, globs, sources
from pipeline.ingest.batch import Source, Tally, consume
from pipeline.ingest.blocks import Prefixed, is_tick, iter_blocks
from pipeline.ingest.directives import state_before
from pipeline.ingest.failures import reject_rate_error
from pipeline.ingest.formats import scanner
from pipeline.ingest.migrate import migrate_store
from pipeline.ingest.paths import check_source, domain_from_path, source_glob
from pipeline.ingest.pipes import iter_pipe_blocks, stop_signals
from pipeline.ingest.privacy_record import check as check_privacy_record
from pipeline.ingest.state import RunState
from pipeline.ingest.streams import identify, same_file_as
from pipeline.ingest.ticker import Ticker
from pipeline.privacy import key_identity, keys
from pipeline.privacy import mask as privacy
from pipeline.privacy.enrich import Enricher, EnrichStatus, geo_of
from pipeline.store import layout
from pipeline.store.commit import DEFAULT_WRITER, Store


@dataclass(frozen=True)
class SourceReport:
    path: str
    format: str | None = None
    fingerprint: str | None = None
    start: int = 0
    end: int = 0
    lines: int = 0
    rows: int = 0
    rejects: dict[str, int] = field(default_factory=dict)
    directives: int = 0  # header lines of formats that have them (W3C #Fields:): no row, no reject
    batches: int = 0
    domain_unknown: int = 0
    note: str | None = None
    error: str | None = None
    gone: bool = False  # a glob listed it, and it was gone when opened (rotated or removed meanwhile)
    warning: str | None = None  # read whole, but something was left out (``--quiet`` shows it too)

    @property
    def problem(self) -> str | None:
        """The error as one line that names the source (what cron mails and ``--quiet`` still shows)."""
        if self.error is None:
            return None
        return self.error if self.path in self.error else f"{self.path}: {self.error}"


@dataclass(frozen=True)
class IngestReport:
    store: str
    sources: tuple[SourceReport, ...]
    partitions: tuple[str, ...]
    bytes_read: int
    seconds: float
    enrichment: EnrichStatus = field(default_factory=lambda: EnrichStatus(pseudonyms="off", geo=None))
    key_destroyed_rows: int = 0  # rows of periods whose key the purge destroyed: client_id null
    quarantine: str = ""  # where rejected lines are kept (scrubbed): the store's rejects table
    scanner: str = "unused"  # the native line scanner: "wasm", "unused", or "off (why)"

    @property
    def lines(self) -> int:
        return sum(s.lines for s in self.sources)

    @property
    def rows(self) -> int:
        return sum(s.rows for s in self.sources)

    @property
    def rejects(self) -> dict[str, int]:
        total: Counter[str] = Counter()
        for s in self.sources:
            total.update(s.rejects)
        return dict(sorted(total.items()))

    @property
    def failed(self) -> tuple[SourceReport, ...]:
        return tuple(s for s in self.sources if s.error)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(lines=self.lines, rows=self.rows, rejects=self.rejects)
        data["lines_per_second"] = round(self.lines / self.seconds) if self.seconds else None
        data["mb_per_second"] = round(self.bytes_read / 1e6 / self.seconds, 1) if self.seconds else None
        return data


def run(
    cfg: Config,
    source_specs: Iterable[SourceConfig] | None = None,
    *,
    stdin: BinaryIO | None = None,
    final: bool | None = None,
    progress: Callable[[int, int], None] | None = None,
    accept_privacy_change: bool = False,
) -> IngestReport:
    """Ingest every file matched by ``source_specs`` (default: the config's sources).

    ``progress(done, total)`` is told the bytes of the matched files: ``total`` is their size on
    disk (it grows as each source is expanded), ``done`` counts what was read, and a file's bytes
    read by an earlier run (or skipped) when the file is finished.

    ``final=True`` treats every file as complete (its last line is consumed even without a newline);
    ``None`` decides per file (rotated/compressed, or untouched for ``ingest.partial_line_grace``).
    Settings that would change the store's privacy record (prefixes, pseudonyms, key period) are
    refused (``ConfigError``) unless ``accept_privacy_change`` (see ``ingest/privacy_record.py``).
    """
    specs = list(cfg.sources if source_specs is None else source_specs)
    if not specs:
        raise SourceError("no sources: give log files on the command line or [[sources]] in the config")
    formats.register_config(cfg.formats)  # [formats.NAME] tables: the sources may name them
    for spec in specs:  # a bad format or olddir is an argument error: fail before touching anything
        check_source(spec, f"source {spec.path or spec.domain_from_path}")
    geo = geo_of(cfg)  # opens GeoIP databases: a bad one fails before any work
    started = time.monotonic()
    # A piped logger runs for days: it gets its own writer namespace (progress, lock, manifests) so
    # that cron ingestion of files into the same store never waits for it, nor it for cron.
    piped_only = all(spec.path == sources.STDIN for spec in specs)
    store = Store(cfg.store, writer=f"pipe-{os.getpid()}" if piped_only else DEFAULT_WRITER)
    store.init()
    # (after the store: a --store that cannot be one had left a key directory beside it; found by review)
    enricher = Enricher.from_config(cfg, geo)
    reports: list[SourceReport] = []
    # Custody keys and the fingerprint key live in the key directory whether or not pseudonyms are
    # on: nothing derived from raw log bytes is ever stored unkeyed.
    keystore = keys.KeyStore.configured(cfg)
    if not keystore.has_stream_key() and _keyed_before(store):
        # Files are known by keyed fingerprints: with a new key every file would look unread and be
        # ingested a second time (a store copied or moved without its key directory, a wrong key_dir).
        raise ConfigError(
            f"the store {store.location} was ingested before, but the key directory {cfg.key_dir} has no "
            "stream key: every log would be read again (rows twice). Restore the key directory that "
            "belongs to this store, or point privacy.key_dir at it (docs/operations.md, Restore)"
        )
    stream_key = keystore.stream_key()  # (an empty directory of a keyed store was refused above)
    with store.lock(cfg.ingest.lock_wait):
        # another store's key directory: every log would be read again; recorded at a first ingest
        key_identity.check(store, keystore, record=True)
        committed = store.recover()  # not "progress": that name is the caller's callback
        masker = privacy.ClientMasker(
            cfg.privacy.ipv4_prefix, cfg.privacy.ipv6_prefix, enricher if enricher.active else None
        )
        migrate_store(store, keystore, stream_key, committed, masker)
        check_privacy_record(store, cfg, accept_change=accept_privacy_change)  # before any row
        run_state = RunState(
            cfg=cfg,
            store=store,
            progress=committed,
            masker=masker,
            run_id=uuid.uuid4().hex[:12],
            sensitive_regex=privacy.sensitive_param_regex(cfg.privacy.sensitive_params),
            final=final,
            enricher=enricher,
            keys=keystore,
            stream_key=stream_key,
        )
        ticker = Ticker(progress) if progress is not None else None
        run_state.on_read = ticker.read if ticker is not None else None
        matched = [(spec, source_glob(spec)) for spec in specs]
        expanded = [(spec, pattern, globs.expand_source(pattern, spec.olddir)) for spec, pattern in matched]
        for _, _, paths in expanded:  # every file first: a stream's file may be another source's
            run_state.know_files(paths)
        for spec, pattern, paths in expanded:
            if not paths:
                # a source that names nothing is how collection stops unnoticed (a moved log, a
                # typo in a glob): a failed source, which makes the run exit non-zero
                stopped = (
                    f"no file matches {pattern}: collection from it has stopped; fix the path or the config"
                )
                reports.append(SourceReport(path=pattern, error=stopped))
            for folder, problem in globs.blind_spots(pattern):
                reports.append(SourceReport(path=folder, error=problem))
            if ticker is not None:
                ticker.expect(paths)
            reports.extend(_ingest_listed(run_state, spec, pattern, paths, stdin, ticker))
        failures.record(store, run_state.masker, stream_key, [(r.path, r.error) for r in reports])
    if enricher.geo:
        enricher.geo.close()
    return IngestReport(
        store=store.location,
        quarantine=store.url(layout.REJECTS),
        enrichment=enricher.status,
        key_destroyed_rows=enricher.key_destroyed_rows,
        scanner=scanner.status(),
        sources=tuple(reports),
        partitions=tuple(sorted(run_state.partitions)),
        bytes_read=run_state.bytes_read,
        seconds=time.monotonic() - started,
    )


def _ingest_listed(
    r: RunState,
    spec: SourceConfig,
    pattern: str,
    paths: list[tuple[str, str]],
    stdin: BinaryIO | None,
    ticker: Ticker | None,
) -> list[SourceReport]:
    """A source's files as listed; if logrotate renamed or removed one of them in the meantime, the
    glob is listed once more and the files it did not list before are read too (a renamed file is
    the same stream under its new name: it is read on from its offset, never twice)."""
    reports: list[SourceReport] = []
    seen: set[str] = set()
    for attempt in range(2):
        gone = False
        for path, home in paths:
            seen.add(path)
            report = _ingest_path(r, spec, path, stdin, home, listed=path != pattern)
            gone = gone or report.gone
            reports.append(report)
            if ticker is not None:
                ticker.finished(path)
        if not gone or attempt:
            break
        paths = [(p, h) for p, h in globs.expand_source(pattern, spec.olddir) if p not in seen]
        r.know_files(paths)
        if ticker is not None:
            ticker.expect(paths)
    return reports


def _keyed_before(store: Store) -> bool:
    """Whether a batch of the store was fingerprinted with a stream key (a store from before keyed
    fingerprints has none: ``migrate_store`` gives it one)."""
    for key in store.manifest_keys(None):
        if ((store.read_json(key) or {}).get("source") or {}).get("keyed"):
            return True
    return False


def _ingest_path(
    r: RunState, spec: SourceConfig, path: str, stdin: BinaryIO | None, home: str, *, listed: bool = False
) -> SourceReport:
    """One file; ``home`` is where it was written (not ``path`` when logrotate moved it to an olddir).
    ``listed``: a glob found it, so its absence when opened is a rotation in the meantime, not an error.

    A source that cannot be read is reported (the run goes on, exit 10); a store that cannot be
    written (disk full, read-only, permissions) raises ``StoreError`` and stops the run (exit 6).
    """
    try:
        if path == sources.STDIN:
            return _ingest_stdin(r, spec, stdin or sys.stdin.buffer)
        twin = same_file_as(r, path)
        if twin is not None:
            return SourceReport(path=path, note=f"same file as {twin} (another name of it): not read twice")
        final = r.final if r.final is not None else sources.is_final(path, r.cfg.ingest.partial_line_grace)
        ident = identify(r, path, final, home)
        if ident is None and final and (why := sources.empty_archive(path)):  # (had waited forever)
            raise (SourceError if r.final else SourceCutShort)(why)  # --final: no grace
        if ident is None:
            return SourceReport(path=path, note="waiting: no complete line yet")
        with ident.stream as stream:
            if ident.skip_note is not None:
                return SourceReport(
                    path=path, fingerprint=ident.key, start=ident.start, end=ident.start, note=ident.skip_note
                )
            choice = formats.choose_format(spec.format, path)
            fmt, fmt_note = choice.fmt, choice.note
            ing = r.cfg.ingest
            blocks = iter_blocks(
                stream,
                ident.start,
                block_bytes=ing.block_bytes,
                max_line_bytes=ing.max_line_bytes,
                final=final,
                size_hint=None if sources.is_compressed(path) else os.path.getsize(path),
                workers=ing.workers,
                guard=sources.rewrite_guard(stream, path),
            )
            note = "; ".join(n for n in (ident.note, fmt_note) if n) or None
            src = Source(
                path,
                fmt,
                note,
                (ident.key, ident.fp_len),
                ident.start,
                ident.replaces,
                _domain_for(spec, home),
                content=ident.content,
                tail=ident.tail,
                header=state_before(fmt, path, ident.start),  # resuming mid-file: the #Fields: in force
            )
            tally = Tally(end=ident.start)
            try:
                consume(r, src, blocks, workers=ing.workers, tally=tally)
            except SourceError as exc:  # the read failed midway: what was committed before stays
                return _read_failed(_report(src, tally, ing.max_reject_rate, choice.recognised), exc, ing)
            report = _report(src, tally, ing.max_reject_rate, choice.recognised)
            # (gzip -d: "trailing garbage ignored"; a file rewritten in place)
            return replace(
                report, warning="; ".join(w for w in (ident.warning, stream.trailing) if w) or None
            )
    except StoreError:
        raise
    except SourceGone as exc:
        if not listed:
            return _read_failed(SourceReport(path=path), exc, r.cfg.ingest)
        why = "gone since it was listed (logrotate renamed or removed it meanwhile)"
        return SourceReport(path=path, note=why, gone=True)
    except SourceError as exc:
        return _read_failed(SourceReport(path=path), exc, r.cfg.ingest)
    except HostlogsError as exc:
        return SourceReport(path=path, error=str(exc))
    except OSError as exc:  # a stat or open of the source itself (store writes raise StoreError)
        reason = exc.strerror or exc
        return SourceReport(path=path, error=f"cannot read {path}: {reason}; check it and its permissions")


def _ingest_stdin(r: RunState, spec: SourceConfig, stdin: BinaryIO) -> SourceReport:
    """Piped mode: flush every ``flush_seconds``/``flush_lines``; on EOF, SIGTERM or SIGHUP flush and stop."""
    ing = r.cfg.ingest
    try:
        fd: int | None = stdin.fileno()
    except (OSError, AttributeError, ValueError):
        fd = None  # an in-memory stream (tests, embedding): read it to the end
    with stop_signals() as stopped:
        if fd is None:
            piped = Prefixed(stdin, formats.DETECT_SAMPLE_BYTES)
            blocks = iter_blocks(
                piped, 0, block_bytes=ing.block_bytes, max_line_bytes=ing.max_line_bytes, final=True
            )
        else:
            blocks = iter_pipe_blocks(
                fd,
                flush_seconds=ing.flush_seconds,
                flush_lines=ing.flush_lines,
                block_bytes=ing.block_bytes,
                max_line_bytes=ing.max_line_bytes,
                stop=stopped,
            )
        first = next((b for b in blocks if not is_tick(b)), None)  # (a quiet start yields ticks)
        if first is None:
            return SourceReport(path=sources.display_name(sources.STDIN), note="no input")
        choice = formats.choose_format(
            spec.format, sources.STDIN, bytes(first.data[: formats.DETECT_SAMPLE_BYTES])
        )
        fmt, note = choice.fmt, choice.note
        src = Source(sources.STDIN, fmt, note, None, 0, [], spec.domain)
        # On the worker pool like a file: a pipe that delivers faster than it is parsed (``zcat
        # log.gz | hostlogs ingest -``) fills whole blocks and keeps both cores busy; a block
        # flushed by time is urgent and committed before the next read, so a line of a slow stream
        # is durable within flush_seconds plus one batch, as before.
        tally = consume(r, src, itertools.chain([first], blocks), workers=ing.workers, tally=Tally())
        return _report(src, tally, ing.max_reject_rate, choice.recognised)


def _read_failed(report: SourceReport, exc: SourceError, ing: IngestConfig) -> SourceReport:
    """``report`` (what the source committed before) with the read error. A compressed file that ends
    early and was written within ``ingest.partial_line_grace`` is being compressed (logrotate):
    it waits for the next run, like a partial last line, instead of failing the run."""
    try:
        age = time.time() - os.stat(report.path).st_mtime
    except OSError:
        age = float("inf")
    if isinstance(exc, SourceRewritten):  # copytruncate: its copy is read on from here next run
        return replace(report, note="; ".join(n for n in (report.note, str(exc)) if n))
    if isinstance(exc, SourceCutShort) and age < ing.partial_line_grace:
        wait = f"waiting: the compressed file ends early, written {age:.0f} s ago (still being compressed?)"
        return replace(report, note="; ".join(n for n in (report.note, wait) if n))
    return replace(report, error="; ".join(e for e in (report.error, str(exc)) if e))


def _domain_for(spec: SourceConfig, path: str) -> str | None:
    if spec.domain is None and spec.domain_from_path:
        return domain_from_path(spec.domain_from_path, path)
    return spec.domain


def _report(src: Source, tally: Tally, max_rate: float, recognised: bool = True) -> SourceReport:
    """What a source gave. One whose format was not recognised failed (exit 10), though its lines
    are committed as rejects: collection of that log has stopped until its format is named. So did
    one that rejected more than ``ingest.max_reject_rate`` of the lines it read in this run."""
    if not recognised and tally.lines:
        error: str | None = (
            f"{src.note}: {sum(tally.rejects.values()):,} of {tally.lines:,} lines quarantined; "
            "name its --format"
        )
    else:
        error = reject_rate_error(tally.lines, dict(tally.rejects), max_rate)
    return SourceReport(
        error=error,
        path=sources.display_name(src.path),
        format=src.fmt.name,
        fingerprint=src.ident[0] if src.ident else None,
        start=src.start,
        end=tally.end,
        lines=tally.lines,
        rows=tally.rows,
        rejects=dict(tally.rejects),
        directives=tally.directives,
        batches=tally.batches,
        domain_unknown=tally.domain_unknown,
        note=src.note,
    )
