"""hostlogs query / shell / audit: sandboxed, audited DuckDB SQL over the store."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sys
from collections.abc import Iterator
from typing import Any

import click

from pipeline.cli._common import (
    case_options,
    echo_error,
    exit_with,
    handle_errors,
    json_option,
    load_config,
    main,
    notice,
    store_options,
    warn,
)
from pipeline.errors import HostlogsError, IntegrityError, StoreError, Terminated, UsageError
from pipeline.investigate import audit, render, session
from pipeline.investigate.result import QueryResult


def terminal_width() -> int | None:
    return shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else None


@main.command("query")
@click.argument("sql")
@store_options
@case_options
@click.option("--format", "out_format", type=click.Choice(["table", "csv", "json", "jsonl", "parquet"]),
              default=None, help="Output format (default: table, or from the --output file's extension); "
              "json is one document (as --json), jsonl one row per line.")  # fmt: skip
@click.option(
    "--output", type=click.Path(dir_okay=False),
    help="Write the result to this file only (csv/json/jsonl/parquet); nothing on stdout.",
)  # fmt: skip
@json_option
@handle_errors
def query_cmd(
    sql: str, store: str | None, config_path: str | None, case: str | None, reason: str | None,
    out_format: str | None, output: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Run one read-only DuckDB SELECT over the store (views: pageviews, rejects, ingest_runs).

    The query can read only the store (no other files, no COPY/ATTACH/INSTALL/SET); every run is
    recorded in the audit log under --case. See docs/investigation.md for a cookbook.

    Example:

        hostlogs query --case INC-2026-042 "SELECT client_net, count(*) FROM pageviews
        WHERE path LIKE '%/wp-login.php' GROUP BY 1 ORDER BY 2 DESC LIMIT 20"
    """
    if out_format == "parquet" and not output:
        raise UsageError("--format parquet needs --output FILE")
    if as_json and out_format not in (None, "json"):
        raise UsageError(f"--json and --format {out_format} disagree: give one of them")
    out_format = "json" if as_json else out_format
    cfg = load_config(config_path, store)
    typed = output is not None and render.output_format(output, out_format) == "parquet"
    result = session.run(cfg, sql, case=case, reason=reason, warn=warn, arrow=typed)
    if output:
        used = render.write_output(result, output, out_format, store=cfg.store, key_dir=cfg.key_dir)
        notice(f"{len(result.rows):,} rows written to {output} ({used})")
        return
    click.echo(render.render(result, out_format or "table", width=terminal_width()))


@main.command("shell")
@store_options
@case_options
@handle_errors
def shell_cmd(store: str | None, config_path: str | None, case: str | None, reason: str | None) -> None:
    """Interactive SQL over the same sandboxed views; every statement is audited under --case.

    End a statement with ';'. '.tables' lists the views, '.quit' (or Ctrl-D) leaves; Ctrl-C stops
    the running statement (with DuckDB's own reader; through pyarrow, once it ends).

    Example:

        hostlogs shell --case INC-2026-042 --reason "wp-login brute force"
    """
    cfg = load_config(config_path, store)
    shell = session.Session(cfg, case=case, reason=reason)
    interactive = sys.stdin.isatty()
    failed = 0
    if interactive:
        click.echo(
            f"hostlogs shell on {cfg.store} (case {shell.case}); views: pageviews, rejects, ingest_runs"
        )
    for sql in _statements(interactive):
        if sql in (".quit", ".exit"):
            break
        if sql == ".tables":
            sql = "SELECT view_name FROM duckdb_views() WHERE NOT internal ORDER BY 1"
        try:
            try:
                result = shell.execute(sql)
            finally:
                for message in shell.notices:
                    notice(f"hostlogs: {message}")
                shell.notices.clear()
            click.echo(render.render(result, "table", width=terminal_width()))
        except KeyboardInterrupt as exc:  # at a prompt, Ctrl-C stops the statement, not the session
            if not interactive or isinstance(exc, Terminated):  # (found by review: SIGTERM had
                raise  # been taken for a Ctrl-C, and the session went on at the prompt)
            echo_error(UsageError("statement interrupted (Ctrl-C)"))
        except HostlogsError as exc:
            if isinstance(exc, StoreError):
                raise
            failed = max(failed, echo_error(exc))
    shell.close()
    if failed and not interactive:
        exit_with(failed)


def _statements(interactive: bool) -> Iterator[str]:
    """Statements ending in ';' (or dot commands), from a prompt or from piped input."""
    buf: list[str] = []
    while True:
        try:
            if interactive:
                line = input("     ...> " if buf else "hostlogs> ")
            elif not (line := sys.stdin.readline()):
                break
        except EOFError:
            break
        except KeyboardInterrupt:  # at the prompt: drop what was typed (Ctrl-D or .quit leave)
            if not interactive:
                raise
            click.echo("")
            buf = []
            continue
        stripped = line.strip()
        if not buf and stripped.startswith("."):
            yield stripped
            continue
        if stripped:
            buf.append(line.rstrip("\n"))
        if stripped.endswith(";"):
            yield "\n".join(buf).strip().rstrip(";").strip()
            buf = []
    if buf:
        yield "\n".join(buf).strip().rstrip(";").strip()


@main.group("audit")
def audit_group() -> None:
    """The audit log of every query, shell statement and investigation (hash-chained).

    Example:

        hostlogs audit list --case INC-2026-042
    """


@audit_group.command("list")
@store_options
@click.option("--case", default=None, help="Only entries of this case.")
@click.option(
    "--format", "out_format", type=click.Choice(["table", "json", "jsonl"]), default="table",
    help="table; json: one document (as --json); jsonl: one entry per line.",
)  # fmt: skip
@json_option
@handle_errors
def audit_list(
    store: str | None, config_path: str | None, case: str | None, out_format: str, as_json: bool
) -> None:
    """List audit entries (oldest first), optionally of one case.

    --json prints them as one JSON array of entries (each as recorded: seq, time, user, case,
    command, status, and the SQL or parameters); the table shows every identifier whole.

    Example:

        hostlogs audit list --case INC-2026-042 --json
    """
    from pipeline.rules import check_id
    from pipeline.store.commit import Store

    cfg = load_config(config_path, store)
    case = check_id(case) if case is not None else None  # no entry has an id that is none: exit 2
    entries = audit.AuditLog(Store.existing(cfg.store)).list(case)  # a mistyped store: exit 6
    if as_json or out_format == "json":
        click.echo(json.dumps(entries, sort_keys=True, default=str, indent=1))
        return
    if out_format == "jsonl":
        for e in entries:
            click.echo(json.dumps(e, sort_keys=True, default=str))
        return
    rows = [
        (e["seq"], e["time"], e["user"], e.get("case"), e["command"], e.get("status"), e.get("rows"),
         e.get("seconds"), _what(e))
        for e in entries
    ]  # fmt: skip
    cols = ["seq", "time", "user", "case", "command", "status", "rows", "seconds", "what"]
    click.echo(render.table(QueryResult(cols, rows), max_width=80, width=terminal_width()))


def _what(e: dict[str, Any]) -> str:
    if e.get("sql"):
        return " ".join(str(e["sql"]).split())
    params = {k: v for k, v in (e.get("params") or {}).items() if v not in (None, [], {})}
    return f"{e.get('investigation', '')} {json.dumps(params, sort_keys=True, default=str)}".strip()


def _head_hash(value: str | None) -> str | None:
    """A hash as ``audit verify`` prints it; anything else is a typo (exit 2), not a damaged trail
    (exit 8: an incident)."""
    if value is None:
        return None
    text = value.strip().lower()
    if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise click.BadParameter(f"{value!r} is no head hash: 64 hex digits, as 'audit verify' prints it")
    return text


@audit_group.command("verify")
@store_options
@click.option(
    "--expect",
    default=None,
    metavar="HASH",
    callback=lambda _ctx, _param, value: _head_hash(value),
    help="A head hash printed earlier (64 hex digits): must still be in the chain.",
)
@json_option
@handle_errors
def audit_verify(store: str | None, config_path: str | None, expect: str | None, as_json: bool) -> None:
    """Check the hash chain and its head: exit 8 naming the first modified, deleted or reordered
    entry, a missing head.json, or a cut tail (exit 6: the store or its head cannot be read).

    Example:

        hostlogs audit verify --store /var/lib/hostlogs/store --expect HEAD_HASH_PRINTED_EARLIER
    """
    from pipeline.store.commit import Store

    cfg = load_config(config_path, store)
    report = audit.AuditLog(Store.existing(cfg.store)).verify(expect)
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(report), default=str, indent=2))
    if not report.ok:
        raise IntegrityError(f"audit log damaged: {report.problem}")
    if not as_json:
        click.echo(f"audit log OK: {report.entries} entries; head hash {report.head_hash}")
        if not report.entries and expect is None:  # (what tells "never audited" from "all deleted")
            notice("no entry: this store was never queried, or its trail was removed; --expect tells")
