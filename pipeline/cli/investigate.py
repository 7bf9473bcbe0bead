"""hostlogs investigate: the investigations responders run most, audited under a case."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pipeline.cli._common import (
    TEXT,
    date_range,
    handle_errors,
    json_option,
    load_config,
    main,
    notice,
    store_options,
    warn,
)
from pipeline.cli._progress import progress_bar
from pipeline.cli.query import terminal_width
from pipeline.errors import UsageError
from pipeline.investigate import investigations, render, report
from pipeline.investigate.scope import Investigation, Scope

F = TypeVar("F", bound=Callable[..., Any])


def scope_options(fn: F) -> F:
    """--case (required), --reason, --from/--to/--domain, --format, --json, --limit, --output."""
    for opt in reversed(
        [
            click.option("--case", required=True, help="Case id (recorded in the audit log)."),
            click.option("--reason", default=None, help="Why you are looking (recorded in the audit log)."),
            date_range("First UTC day.", "Last UTC day (inclusive)."),
            click.option("--domain", type=TEXT, default=None, help="Only this domain."),
            click.option(
                "--format",
                "out_format",
                type=click.Choice(["table", "csv", "json"]),
                default="table",
                help="table; csv: the rows; json: the whole investigation (as --json).",
            ),
            json_option,
            click.option(
                "--limit", type=click.IntRange(1), default=1000, show_default=True, help="Rows shown."
            ),
            click.option(
                "--output",
                type=click.Path(dir_okay=False),
                help="Write the rows to this file only (csv, json, jsonl or parquet: by its suffix); "
                "nothing on stdout.",
            ),
        ]
    ):
        fn = opt(fn)
    return store_options(fn)


@main.group("investigate")
def investigate_group() -> None:
    """Ready-made investigations (ip, net, path, domain, timeline, ua, attacks) and the incident report.

    Example:

        hostlogs investigate net 198.51.0.0/16 --case INC-2026-042
    """


def _scope(kw: dict[str, Any]) -> Scope:
    return Scope(kw.pop("date_from"), kw.pop("date_to"), kw.pop("domain"), kw.pop("limit"))


def _run(kw: dict[str, Any], kind: investigations.Kind, **args: Any) -> None:
    """One investigation (the library audits it under the case), printed."""
    cfg = load_config(kw.pop("config_path"), kw.pop("store"))
    case, reason = kw.pop("case"), kw.pop("reason")
    out_format, output, as_json = kw.pop("out_format"), kw.pop("output"), kw.pop("as_json")
    if as_json and out_format not in ("table", "json"):
        raise UsageError(f"--json and --format {out_format} disagree: give one of them")
    inv = investigations.run(cfg, kind, _scope(kw), case=case, reason=reason, warn=warn, **args)
    if output:  # the file only: stdout stays empty, the notice goes to stderr
        used = render.write_output(inv.rows, output, None if out_format == "table" else out_format,
                                   store=cfg.store, key_dir=cfg.key_dir)  # fmt: skip
        notice(f"{len(inv.rows.rows):,} rows written to {output} ({used})")
        return
    click.echo(show(inv, "json" if as_json else out_format, case))


def show(inv: Investigation, fmt: str, case: str) -> str:
    if fmt == "csv":
        return render.render(inv.rows, "csv")
    if fmt == "json":
        return json.dumps(
            {
                "investigation": inv.kind, "title": inv.title, "case": case, "facts": dict(inv.facts),
                "tables": {n: [dict(zip(t.columns, r, strict=True)) for r in t.rows] for n, t in inv.tables},
                "rows": [dict(zip(inv.rows.columns, r, strict=True)) for r in inv.rows.rows],
                "notes": inv.notes,
            },
            default=str, indent=1,
        )  # fmt: skip
    width = terminal_width()
    out = [f"== {inv.title} (case {case})"]
    pad = max((len(k) for k, _ in inv.facts), default=0)
    out += [f"{k.ljust(pad)}  {v}" for k, v in inv.facts]
    for name, t in inv.tables:
        out += ["", f"-- {name}", render.table(t, max_width=50, width=width)]
    if fmt == "table":
        out += [
            "",
            {"domain": "-- timeline", "timeline": "-- requests in time order"}.get(
                inv.kind, "-- matching rows"
            ),
            render.table(inv.rows, width=width),
        ]
    out += [f"note: {n}" for n in inv.notes]
    return "\n".join(out)


@investigate_group.command("ip")
@click.argument("address")
@scope_options
@handle_errors
def ip_cmd(address: str, **kw: Any) -> None:
    """Exact requests of one address (via its pseudonym in each key period) and its network.

    The audit log records the network and the pseudonyms searched, never the address.

    Example:

        hostlogs investigate ip 198.51.100.23 --case INC-2026-042 --from 2026-03-01
    """
    _run(kw, "ip", address=address)


@investigate_group.command("net")
@click.argument("cidr")
@scope_options
@handle_errors
def net_cmd(cidr: str, **kw: Any) -> None:
    """Requests from a network of any prefix length (CIDR containment over client_net).

    A /16 matches every stored /24 inside it; a /28 matches the stored /24 that contains it.

    Example:

        hostlogs investigate net 198.51.0.0/16 --case INC-2026-042
    """
    _run(kw, "net", cidr=cidr)


@investigate_group.command("path")
@click.argument("pattern", type=TEXT)
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression (RE2), not a glob.")
@scope_options
@handle_errors
def path_cmd(pattern: str, regex: bool, **kw: Any) -> None:
    """Requests whose path matches a glob ('/.env', '*/wp-config.php*') or --regex.

    Example:

        hostlogs investigate path '/.env' --case INC-2026-042
    """
    _run(kw, "path", pattern=pattern, regex=regex)


@investigate_group.command("domain")
@click.argument("name", type=TEXT)
@click.option("--by", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@scope_options
@handle_errors
def domain_cmd(name: str, by: str, **kw: Any) -> None:
    """Timeline of one domain: requests, networks, 4xx/5xx and POSTs per hour or day.

    Example:

        hostlogs investigate domain example.com --by day --case INC-2026-042 --from 2026-03-01
    """
    _run(kw, "domain", name=name, by=by)


@investigate_group.command("timeline")
@click.option("--path", "path_glob", default=None, help="Only requests whose path matches this glob.")
@click.option("--net", "cidr", default=None, help="Only requests from this network (CIDR, any prefix).")
@click.option("--ip", "address", default=None, help="Only this address's requests (via its pseudonyms).")
@click.option("--by", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@scope_options
@handle_errors
def timeline_cmd(path_glob: str | None, cidr: str | None, address: str | None, by: str, **kw: Any) -> None:
    """What happened when: requests per hour or day, then the requests themselves in time order.

    The scope is --from/--to and --domain, narrowed by any of --path, --net and --ip (an address is
    found through its pseudonyms; the audit log records the key periods searched and the network,
    never the pseudonyms nor the address).

    Example:

        hostlogs investigate timeline --domain example.com --path '/wp-login.php' --case INC-7
    """
    _run(kw, "timeline", by=by, path=path_glob, cidr=cidr, address=address)


@investigate_group.command("ua")
@click.argument("text", type=TEXT)
@click.option("--regex", is_flag=True, help="TEXT is a regular expression (RE2), not a substring.")
@scope_options
@handle_errors
def ua_cmd(text: str, regex: bool, **kw: Any) -> None:
    """Requests whose user agent contains TEXT (case-insensitive) or matches --regex.

    Example:

        hostlogs investigate ua sqlmap --case INC-2026-042
    """
    _run(kw, "ua", text=text, regex=regex)


@investigate_group.command("attacks")
@click.option("--detector", "only", multiple=True, help="Run only this detector (repeatable).")
@scope_options
@handle_errors
def attacks_cmd(only: tuple[str, ...], **kw: Any) -> None:
    """Run the attack signatures (SQLi, XSS, traversal, log4shell, web shells, scanners, brute force,
    sensitive files); see pipeline/detectors.py for the table.

    Example:

        hostlogs investigate attacks --domain example.com --case INC-2026-042
    """
    _run(kw, "attacks", only=only)


@investigate_group.command("report")
@click.option("--case", required=True, help="Case id (recorded in the audit log and shown in the report).")
@click.option("--reason", default=None, help="Why the report is made (audit log).")
@date_range("First UTC day.", "Last UTC day (inclusive).")
@click.option("--domain", type=TEXT, default=None, help="Only this domain.")
@click.option("--output", type=click.Path(dir_okay=False), required=True, help="HTML file to write.")
@store_options
@json_option
@handle_errors
def report_cmd(
    case: str, reason: str | None, date_from: dt.date | None, date_to: dt.date | None,
    domain: str | None, output: str, store: str | None, config_path: str | None, as_json: bool,
) -> None:  # fmt: skip
    """Write a self-contained HTML incident report (works offline; no external assets).

    Example:

        hostlogs investigate report --case INC-2026-042 --domain example.com --from 2026-03-01
        --to 2026-03-31 --output report.html
    """
    cfg = load_config(config_path, store)
    with progress_bar("report", "sections", quiet=as_json) as progress:
        built = report.write(
            cfg, Scope(date_from, date_to, domain, 200), output, case=case, reason=reason, warn=warn,
            progress=progress,
        )  # fmt: skip
    if as_json:
        summary = {"output": output, "case": case, "requests": built.requests, "findings": built.findings}
        click.echo(json.dumps(summary, indent=1))
    else:  # the file only on stdout's side: the summary is a notice
        notice(f"report written to {output}: {built.requests:,} requests, {built.findings:,} detector hits")
