"""Prometheus metrics for node_exporter's textfile collector, written after each ingest, purge and compact.

One file (``metrics.textfile``) holds the series of every command: a run reads the previous file and
replaces only what it knows now — its own ``command`` series (duration, exit code, run time, and the
last success time when it succeeded), the last ingest's per-file counts when it is an ingest, and the
state of the store and sources (size, oldest day, partitions held or past the horizon, lag), which
every run measures again. The other commands' series are kept as they were.

The file is written atomically (a temporary name in the same directory that does not end in
``.prom``, so the collector never reads a half-written file; fsync; rename), mode 0644 so that
node_exporter, which usually runs as another user, can read it. Labels: ``command``, ``source`` (a
log file's path, an address in it masked), ``pattern`` (a ``[[sources]]`` glob) and ``reason`` (a reject
reason). Nothing here holds an address: the counts come from the manifests and the progress state.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import tempfile
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.config import Config
from pipeline.errors import ConfigError, HostlogsError
from pipeline.lifecycle import status as store_status
from pipeline.lifecycle.holds import active_holds
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.store import layout
from pipeline.store.commit import DEFAULT_WRITER, Store, manifest_time

Labels = tuple[tuple[str, str], ...]
Series = dict[str, dict[Labels, float]]  # family name -> labels -> value

# name: (type, help). The order is the file's order.
FAMILIES: dict[str, tuple[str, str]] = {
    "hostlogs_last_run_timestamp_seconds": ("gauge", "Unix time the last run of the command ended."),
    "hostlogs_last_success_timestamp_seconds": ("gauge", "Unix time the last successful run (exit 0) ended."),
    "hostlogs_last_exit_code": ("gauge", "Exit code of the command's last run (docs/exit-codes.md)."),
    "hostlogs_run_duration_seconds": ("gauge", "Wall-clock seconds of the command's last run."),
    "hostlogs_ingest_lines_read": ("gauge", "Lines the last ingest read from the file."),
    "hostlogs_ingest_rows_written": ("gauge", "Rows the last ingest wrote from the file."),
    "hostlogs_ingest_lines_rejected": ("gauge", "Lines the last ingest rejected from the file, by reason."),
    "hostlogs_ingest_bytes_read": ("gauge", "Bytes (decompressed) the last ingest read from the file."),
    "hostlogs_source_lag_bytes": ("gauge", "Bytes of the file not yet ingested (absent when unknown)."),
    "hostlogs_source_files_matched": ("gauge", "Files a [[sources]] glob matches (0: collection stopped)."),
    "hostlogs_store_size_bytes": ("gauge", "Bytes of every file of the store."),
    "hostlogs_store_files": ("gauge", "Files of the store."),
    "hostlogs_store_rows": ("gauge", "Rows of the committed pageviews."),
    "hostlogs_store_oldest_day_timestamp_seconds": ("gauge", "Unix time of the oldest pageviews day."),
    "hostlogs_store_horizon_timestamp_seconds": ("gauge", "Unix time of the first day retention keeps."),
    "hostlogs_store_held_partitions": (
        "gauge",
        "Partitions past the retention horizon kept by a legal hold.",
    ),
    "hostlogs_store_expired_partitions": ("gauge", "Partitions past the retention horizon under no hold."),
    "hostlogs_store_read_ok": (
        "gauge",
        "1: the last run read the store for the store and ingest series; 0: they are older.",
    ),
}
PER_COMMAND = ("hostlogs_last_run_timestamp_seconds", "hostlogs_last_success_timestamp_seconds",
               "hostlogs_last_exit_code", "hostlogs_run_duration_seconds")  # fmt: skip
INGEST = ("hostlogs_ingest_lines_read", "hostlogs_ingest_rows_written", "hostlogs_ingest_lines_rejected",
          "hostlogs_ingest_bytes_read")  # fmt: skip


@dataclass(frozen=True)
class Run:
    """One command's run, as the CLI saw it."""

    command: str  # ingest, purge, compact
    exit_code: int
    started: dt.datetime  # UTC
    seconds: float
    lags: Mapping[str, int | None] = field(default_factory=dict)  # file path -> lag (None: unknown)
    matched: Mapping[str, int] = field(default_factory=dict)  # [[sources]] glob -> files it matches


def record(cfg: Config, run: Run, on_problem: Callable[[str], None] | None = None) -> Path | None:
    """Update ``cfg.metrics.textfile`` with this run (None: metrics are off); ``on_problem`` is told
    when the store could not be read, so the file keeps an earlier run's store series."""
    if not cfg.metrics.textfile:
        return None
    target = Path(cfg.metrics.textfile)
    store = Store(cfg.store)
    if store.fs.holds(target):
        raise ConfigError(f"metrics.textfile {target} is inside the store: write it elsewhere")
    check_textfile(target)
    series = parse(_read(target))
    for name, values in measure(cfg, store, run, on_problem).items():
        if name in PER_COMMAND:
            if not values:  # a failed run: the last success stays what it was
                continue
            kept = {k: v for k, v in series.get(name, {}).items() if ("command", run.command) not in k}
            series[name] = {**kept, **values}
        else:
            series[name] = values
    write_atomic(target, render(series))
    return target


def measure(cfg: Config, store: Store, run: Run, on_problem: Callable[[str], None] | None = None) -> Series:
    """The series this run replaces (families absent from the result are kept from the file)."""
    ended = run.started.timestamp() + run.seconds
    me: Labels = (("command", run.command),)
    out: Series = {
        "hostlogs_last_run_timestamp_seconds": {me: ended},
        "hostlogs_last_success_timestamp_seconds": {me: ended} if run.exit_code == 0 else {},
        "hostlogs_last_exit_code": {me: float(run.exit_code)},
        "hostlogs_run_duration_seconds": {me: run.seconds},
    }
    try:
        out.update(_store_series(cfg, store, run))
        out["hostlogs_store_read_ok"] = {(): 1.0}
    except (OSError, HostlogsError) as exc:  # a store that cannot be read: the run's own series (exit
        # code, times) still count, and the store's stay as an earlier run wrote them: said, not silent
        out["hostlogs_store_read_ok"] = {(): 0.0}
        if on_problem is not None and run.exit_code == 0:  # (a failed run said why already)
            where = cfg.metrics.textfile
            on_problem(f"metrics: cannot read the store ({exc}): its series in {where} are older")
    return out


def _store_series(cfg: Config, store: Store, run: Run) -> Series:
    """What the store says: this ingest's counts, lags, size, days, horizon, held partitions."""
    out: Series = {}
    # file names and globs as the store shows them: an address in one masked (two files can then
    # share a label: their figures add up)
    shown = Truncator.configured(cfg)
    lags: dict[str, int | None] = {}
    for path, lag in run.lags.items():
        name = mask_value(path, shown)
        before = lags.get(name, 0)
        lags[name] = None if lag is None or before is None else before + lag
    if run.command == "ingest":
        out.update(ingest_counts(store, run.started, lags, shown))
    if run.lags or run.matched:
        out["hostlogs_source_lag_bytes"] = {_src(p): float(v) for p, v in lags.items() if v is not None}
        matched: Counter[str] = Counter()
        for pattern, n in run.matched.items():
            matched[mask_value(pattern, shown)] += n
        out["hostlogs_source_files_matched"] = {(("pattern", p),): float(n) for p, n in matched.items()}
    if store.is_folder(""):
        usage = store_status.store_usage(store)
        today = dt.datetime.now(dt.UTC).date()
        ret = store_status.retention_state(cfg, usage.days, active_holds(store), today)
        out["hostlogs_store_size_bytes"] = {(): float(usage.bytes)}
        out["hostlogs_store_files"] = {(): float(usage.files)}
        out["hostlogs_store_rows"] = {(): float(usage.pageview_rows)}
        out["hostlogs_store_oldest_day_timestamp_seconds"] = {(): _day(usage.days[0])} if usage.days else {}
        out["hostlogs_store_horizon_timestamp_seconds"] = {(): _day(ret.horizon)}
        out["hostlogs_store_held_partitions"] = {(): float(len(ret.held))}
        out["hostlogs_store_expired_partitions"] = {(): float(len(ret.expired))}
    return out


def ingest_counts(
    store: Store, since: dt.datetime, files: Mapping[str, int | None], shown: Truncator
) -> Series:
    """Per file: lines, rows, rejects by reason and bytes of the batches committed since ``since``.

    From the manifests of the cron writer and of this process's piped writer; configured files that
    gave nothing new count 0 lines.
    """
    writers = {DEFAULT_WRITER, f"pipe-{os.getpid()}"}
    lines: Counter[str] = Counter({p: 0 for p in files})
    rows: Counter[str] = Counter({p: 0 for p in files})
    data: Counter[str] = Counter({p: 0 for p in files})
    rejects: Counter[tuple[str, str]] = Counter()
    for writer in sorted(writers & set(store.folders(layout.MANIFESTS))):
        for key in reversed(store.manifest_keys(writer)):
            manifest = store.read_json(key) or {}
            created = manifest_time(manifest)
            if created is None or created < since:
                break
            src = manifest.get("source") or {}
            path = mask_value(str(src.get("path", "")), shown)  # (an older hostlogs did not mask)
            lines[path] += int(manifest.get("lines") or 0)
            rows[path] += int(manifest.get("rows") or 0)
            data[path] += int(src.get("end") or 0) - int(src.get("start") or 0)
            for reason, n in (manifest.get("rejects") or {}).items():
                rejects[(path, reason)] += int(n)
    return {
        "hostlogs_ingest_lines_read": {_src(p): float(n) for p, n in lines.items()},
        "hostlogs_ingest_rows_written": {_src(p): float(n) for p, n in rows.items()},
        "hostlogs_ingest_lines_rejected": {
            (("reason", r), ("source", p)): float(n) for (p, r), n in rejects.items()
        },
        "hostlogs_ingest_bytes_read": {_src(p): float(n) for p, n in data.items()},
    }


# ----------------------------------------------------------------------------------------------------
# the text format (https://prometheus.io/docs/instrumenting/exposition_formats/)

_SAMPLE = re.compile(r"([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?")
_LABEL = re.compile(r'\s*([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"\s*,?')
_UNESCAPE = {"\\\\": "\\", '\\"': '"', "\\n": "\n"}


def render(series: Series) -> str:
    """The families of ``series`` that have samples, each with HELP and TYPE, in a fixed order."""
    out = []
    for name, (kind, help_text) in FAMILIES.items():
        samples = series.get(name) or {}
        if not samples:
            continue
        out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
        for labels in sorted(samples):
            inner = ",".join(f'{k}="{_escape(v)}"' for k, v in labels)
            out.append(
                f"{name}{{{inner}}} {_number(samples[labels])}"
                if inner
                else f"{name} {_number(samples[labels])}"
            )
    return "\n".join(out) + "\n"


def parse(text: str) -> Series:
    """The samples of a file ``render`` wrote (families it does not know, and bad lines, are dropped)."""
    out: Series = {}
    for line in text.splitlines():
        m = _SAMPLE.fullmatch(line.strip())
        if line.startswith("#") or m is None or m[1] not in FAMILIES:
            continue
        labels = _labels(m[2] or "")
        try:
            value = float(m[3])
        except ValueError:
            continue
        if labels is not None:
            out.setdefault(m[1], {})[labels] = value
    return out


def _labels(text: str) -> Labels | None:
    pairs, pos = [], 0
    while pos < len(text):
        m = _LABEL.match(text, pos)
        if m is None or m.end() == pos:
            return None
        pairs.append((m[1], re.sub(r"\\[\\\"n]", lambda e: _UNESCAPE[e[0]], m[2])))
        pos = m.end()
    return tuple(sorted(pairs))


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _number(value: float) -> str:
    return str(int(value)) if value.is_integer() and abs(value) < 2**53 else repr(value)


def _src(path: str) -> Labels:
    return (("source", path),)


def _day(day: dt.date) -> float:
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp()


def check_textfile(target: Path) -> None:
    """The metrics file is a regular file or none yet: reading a FIFO there hung the run after its
    commit (cron runs piled up), and a device such as /dev/zero is read without end."""
    if target.exists() and not target.is_file():
        raise ConfigError(f"metrics.textfile {target} is not a regular file: name a file (*.prom)")


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return ""
    except (OSError, UnicodeDecodeError):
        return ""  # unreadable or garbage: written anew


def write_atomic(path: Path, text: str) -> None:
    """Temporary file in the same directory (not ending in .prom), fsync, mode 0644, rename."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # node_exporter runs as another user
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
