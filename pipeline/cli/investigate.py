"""hostlogs investigate: the investigations responders run most, audited under a case."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline.cli._common import handle_errors, main
from pipeline.cli.query import load_config, store_options, terminal_width, warn
from pipeline.config import Config
from pipeline.errors import UsageError
from pipeline.investigate import audit, report
from pipeline.investigate import investigations as investigate
from pipeline.investigate import sandbox as query
from pipeline.investigate.investigations import Investigation, Scope
from pipeline.privacy import keys
from pipeline.privacy.mask import ClientMasker

F = TypeVar("F", bound=Callable[..., Any])


def scope_options(fn: F) -> F:
    """--case (required), --reason, --from/--to/--domain, --format, --limit, --output."""
    for opt in reversed(
        [
            click.option("--case", required=True, help="Case id (recorded in the audit log)."),
            click.option("--reason", default=None, help="Why you are looking (recorded in the audit log)."),
            click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First UTC day."),
            click.option(
                "--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (inclusive)."
            ),
            click.option("--domain", default=None, help="Only this domain."),
            click.option(
                "--format", "out_format", type=click.Choice(["table", "csv", "json"]), default="table"
            ),
            click.option(
                "--limit", type=click.IntRange(1), default=1000, show_default=True, help="Rows shown."
            ),
            click.option("--output", type=click.Path(dir_okay=False), help="Write the rows to a file."),
        ]
    ):
        fn = opt(fn)
    return store_options(fn)


@main.group("investigate")
def investigate_group() -> None:
    """Ready-made investigations (ip, net, path, domain, ua, attacks) and the incident report.

    Example:

        hostlogs investigate net 198.51.0.0/16 --case INC-2026-042
    """


def _scope(kw: dict[str, Any]) -> Scope:
    start = kw.pop("date_from")
    end = kw.pop("date_to")
    scope = Scope(
        start.date() if start else None, end.date() if end else None, kw.pop("domain"), kw.pop("limit")
    )
    if scope.start and scope.end and scope.start > scope.end:
        raise UsageError("--from is after --to")
    return scope


def _run(kw: dict[str, Any], kind: str, fn: Callable[[Any, Scope, Config], Investigation]) -> None:
    """Open the sandbox, run one investigation under the audit log, print it."""
    cfg = load_config(kw.pop("config_path"), kw.pop("store"))
    case = str(audit.check_case(kw.pop("case"), True))
    reason, out_format, output = kw.pop("reason"), kw.pop("out_format"), kw.pop("output")
    scope = _scope(kw)
    inv = query.with_connection(
        cfg.store, lambda con: fn(con, scope, cfg), case=case, reason=reason,
        command=f"investigate {kind}", limits=query.Limits.of(cfg.query), investigation=kind,
        params={"scope": scope.describe()}, describe=lambda inv: (inv.audit, len(inv.rows.rows)), warn=warn,
    )  # fmt: skip
    if output:
        used = query.write_output(inv.rows, output)
        click.echo(f"{len(inv.rows.rows):,} rows written to {output} ({used})", err=True)
    click.echo(render(inv, out_format if not output or out_format != "table" else "summary", case))


def render(inv: Investigation, fmt: str, case: str) -> str:
    if fmt == "csv":
        return query.render(inv.rows, "csv")
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
        out += ["", f"-- {name}", query.table(t, max_width=50, width=width)]
    if fmt == "table":
        out += [
            "",
            "-- matching rows" if inv.kind != "domain" else "-- timeline",
            query.table(inv.rows, width=width),
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

    def run(con: Any, scope: Scope, cfg: Config) -> Investigation:
        p = cfg.privacy
        store = keys.KeyStore(Path(cfg.key_dir), p.key_period)  # type: ignore[arg-type]
        return investigate.ip(con, scope, address, store, ClientMasker(p.ipv4_prefix, p.ipv6_prefix))

    _run(kw, "ip", run)


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

    def run(con: Any, scope: Scope, cfg: Config) -> Investigation:
        p = cfg.privacy
        return investigate.net(con, scope, cidr, ClientMasker(p.ipv4_prefix, p.ipv6_prefix))

    _run(kw, "net", run)


@investigate_group.command("path")
@click.argument("pattern")
@click.option("--regex", is_flag=True, help="PATTERN is a regular expression (RE2), not a glob.")
@scope_options
@handle_errors
def path_cmd(pattern: str, regex: bool, **kw: Any) -> None:
    """Requests whose path matches a glob ('/.env', '*/wp-config.php*') or --regex.

    Example:

        hostlogs investigate path '/.env' --case INC-2026-042
    """
    _run(kw, "path", lambda con, scope, cfg: investigate.path(con, scope, pattern, regex))


@investigate_group.command("domain")
@click.argument("name")
@click.option("--by", type=click.Choice(["hour", "day"]), default="hour", show_default=True)
@scope_options
@handle_errors
def domain_cmd(name: str, by: str, **kw: Any) -> None:
    """Timeline of one domain: requests, networks, 4xx/5xx and POSTs per hour or day.

    Example:

        hostlogs investigate domain example.com --by day --case INC-2026-042 --from 2026-03-01
    """
    _run(kw, "domain", lambda con, scope, cfg: investigate.domain(con, scope, name, by))  # type: ignore[arg-type]


@investigate_group.command("ua")
@click.argument("text")
@click.option("--regex", is_flag=True, help="TEXT is a regular expression (RE2), not a substring.")
@scope_options
@handle_errors
def ua_cmd(text: str, regex: bool, **kw: Any) -> None:
    """Requests whose user agent contains TEXT (case-insensitive) or matches --regex.

    Example:

        hostlogs investigate ua sqlmap --case INC-2026-042
    """
    _run(kw, "ua", lambda con, scope, cfg: investigate.ua(con, scope, text, regex))


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
    _run(kw, "attacks", lambda con, scope, cfg: investigate.attacks(con, scope, list(only)))


@investigate_group.command("report")
@click.option("--case", required=True, help="Case id (recorded in the audit log and shown in the report).")
@click.option("--reason", default=None, help="Why the report is made (audit log).")
@click.option("--from", "date_from", type=click.DateTime(["%Y-%m-%d"]), help="First UTC day.")
@click.option("--to", "date_to", type=click.DateTime(["%Y-%m-%d"]), help="Last UTC day (inclusive).")
@click.option("--domain", default=None, help="Only this domain.")
@click.option("--output", type=click.Path(dir_okay=False), required=True, help="HTML file to write.")
@store_options
@handle_errors
def report_cmd(
    case: str, reason: str | None, date_from: dt.datetime | None, date_to: dt.datetime | None,
    domain: str | None, output: str, store: str | None, config_path: str | None,
) -> None:  # fmt: skip
    """Write a self-contained HTML incident report (works offline; no external assets).

    Example:

        hostlogs investigate report --case INC-2026-042 --domain example.com --from 2026-03-01
        --to 2026-03-31 --output report.html
    """
    cfg = load_config(config_path, store)
    case = str(audit.check_case(case, True))
    scope = _scope({"date_from": date_from, "date_to": date_to, "domain": domain, "limit": 200})
    log = audit.AuditLog(cfg.store)
    built = query.with_connection(
        cfg.store, lambda con: report.build(con, cfg.store, scope, case, log.list(case)), case=case,
        reason=reason, command="investigate report", limits=query.Limits.of(cfg.query),
        investigation="report", params={"scope": scope.describe(), "output": str(output)},
        describe=lambda b: ({}, b.requests), warn=warn,
    )  # fmt: skip
    try:
        Path(output).write_text(built.html, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"report written to {output}: {built.requests:,} requests, {built.findings:,} detector hits")
