"""hostlogs status: how the store and its sources are doing (read-only); exit 11 when they need attention."""

from __future__ import annotations

import json

import click

from pipeline.cli._common import (
    Finite,
    handle_errors,
    json_option,
    load_config,
    main,
    printable,
    shown,
    store_options,
)
from pipeline.errors import AttentionNeeded
from pipeline.ingest import lag
from pipeline.lifecycle import status as store_status
from pipeline.privacy.truncate import Truncator


@main.command("status")
@store_options
@click.option(
    "--max-lag-mb",
    type=Finite(min=0),
    default=lag.DEFAULT_MAX_LAG_BYTES / (1 << 20),
    show_default=True,
    help="A source with more MiB not yet ingested needs attention.",
)
@json_option
@handle_errors
def status_cmd(config_path: str | None, store: str | None, max_lag_mb: float, as_json: bool) -> None:
    """Show the store, its retention, holds, keys, sources' lag and last runs, and recent rejects.

    Read-only. Exits 11 when something needs attention (data past the retention horizon under no
    hold; a source that matches no file, cannot be read, lags or rejected too much in its last run;
    a file the last ingest failed on, unchanged since), so monitoring can run it as a check.

    Example:

        hostlogs status --config /etc/hostlogs/hostlogs.toml --json
    """
    cfg = load_config(config_path, store)
    sources = lag.source_lags(cfg, max_lag_bytes=int(max_lag_mb * (1 << 20))) + lag.piped_streams(cfg)
    report = store_status.status(cfg, sources)
    text = json.dumps(report.to_dict(), indent=2, default=str) if as_json else render_status(report)
    click.echo(shown(text, Truncator.configured(cfg)))  # (the sources' file names: addresses masked)
    if report.problems:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        raise AttentionNeeded(f"status: needs attention: {first}{more}", details=report.problems[1:])


def render_status(r: store_status.StatusReport) -> str:
    u, ret = r.usage, r.retention
    span = f"{u.days[0]} to {u.days[-1]}" if u.days else "no days yet"
    out = [
        f"store: {r.store}  ({u.bytes:,} bytes in {u.files:,} files)",
        f"pageviews: {u.pageview_rows:,} rows in {u.pageview_files:,} files, {len(u.days):,} days: {span}",
    ]
    past = ", ".join(str(d) for d in ret.expired) or "none"
    out.append(f"retention: {ret.retention}, first day kept {ret.horizon}; older, under no hold: {past}")
    if ret.held:
        out.append(f"  older, kept by a hold: {', '.join(str(d) for d in ret.held)}")
    out.append(f"holds: {len(r.holds)} active" + "".join(f"\n  {h}" for h in r.holds))
    out.append(f"sources: {len(r.sources)}" + ("" if r.sources else " (none in the config)"))
    for s in r.sources:
        out += _source_lines(s)
    rejects = ", ".join(f"{k} {v:,}" for k, v in r.rejects_24h.items()) or "none"
    out.append(f"rejects in the last 24 h: {rejects}")
    keys = ", ".join(f"{k.period} {'destroyed' if k.destroyed else 'live'}" for k in r.keys) or "none"
    out.append(f"key periods: {keys}")
    for op, last in r.last.items():
        detail = "" if last is None else f" ({last.status})" if last.status else ""
        out.append(f"last {op}: {'never' if last is None else last.time}{detail}")
    out.append("status: OK" if r.ok else f"status: NEEDS ATTENTION ({len(r.problems)})")
    return "\n".join(out)


def _source_lines(s: store_status.SourceCheck) -> list[str]:
    d = s.to_dict()
    if d.get("piped"):
        out = [
            f"  piped stream {d['writer']}: last hour {d['lines']:,} lines → {d['rows']:,} rows, "
            f"{sum(d['rejects'].values()):,} rejected; last commit {d['last_commit']}"
        ]
        return out + ([f"    NEEDS ATTENTION: {d['problem']}"] if d["problem"] else [])
    run = d["last_run"]
    last = "never ingested" if run is None else (
        f"last run {run['time']}: {run['lines']:,} lines → {run['rows']:,} rows, "
        f"{sum(run['rejects'].values()):,} rejected"
    )  # fmt: skip
    out = [f"  {d['pattern']}: {len(d['files'])} file(s), lag {d['lag']:,} bytes; {last}"]
    for f in d["files"]:
        size = "?" if f["size"] is None else f"{f['size']:,}"
        lag_text = "unknown" if f["lag"] is None else f"{f['lag']:,} bytes"
        why = f["error"] or f["note"]
        out.append(f"    {printable(f['path'])}: {size} bytes, lag {lag_text}{f' ({why})' if why else ''}")
    if d["problem"]:
        out.append(f"    NEEDS ATTENTION: {d['problem']}")
    return out
