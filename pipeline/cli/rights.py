"""hostlogs erase / export: a data subject's or a customer's rights (erasure, access, portability)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from pipeline.cli._common import (
    TEXT,
    authority_options,
    date_range,
    handle_errors,
    load_config,
    main,
    notice,
    warn,
)
from pipeline.cli._lifecycle import damage_exit, emit, held_lines, lifecycle_options, partition_lines
from pipeline.cli._progress import progress_bar
from pipeline.errors import IntegrityError
from pipeline.lifecycle import audited
from pipeline.lifecycle.erase import EraseReport
from pipeline.lifecycle.export import EXPORT_FORMATS, export


@main.command("erase")
@lifecycle_options()
@click.option("--domain", type=TEXT, help="Erase this domain's rows (a customer leaving).")
@click.option("--ip", "address", help="Erase one visitor's rows, found through the pseudonym keys.")
@date_range()
@click.option("--dry-run", is_flag=True, help="Change nothing; report exactly what would go.")
@authority_options
@handle_errors
def erase_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, domain: str | None,
    address: str | None, date_from: dt.date | None, date_to: dt.date | None, dry_run: bool,
    case: str | None, request: str | None, reason: str | None,
) -> None:  # fmt: skip
    """Erase a domain's or a visitor's rows everywhere, now (held rows stay; see the report).

    Example:

        hostlogs erase --domain example.com --request DSR-17 --store /var/lib/hostlogs/store --dry-run
    """
    with progress_bar("erase", "partitions", quiet=as_json) as progress:
        report = audited.erase(
            load_config(config_path, store), domain=domain, address=address, date_from=date_from,
            date_to=date_to, dry_run=dry_run, wait=wait, case=case, request=request, reason=reason,
            progress=progress,
        )  # fmt: skip
    emit(report, as_json, render_erase)
    if report.not_erased:
        first = report.damaged[0] if report.damaged else None
        why = f": {first.path}: {first.problem}" if first else ""
        raise IntegrityError(
            f"erasure incomplete: {len(report.not_erased)} day(s) NOT erased ({', '.join(report.not_erased)})"
            f" because a file of theirs is damaged{why}; the other days were erased; run 'hostlogs verify', "
            "restore or remove the damaged file, then erase again"
        )


def render_erase(r: EraseReport) -> str:
    what = " and ".join(x for x in (r.domain, "one visitor's address" if r.by_address else None) if x)
    verb = "would delete" if r.dry_run else "deleted"
    out = [f"store: {r.store}{'  (dry run: nothing changed)' if r.dry_run else ''}", f"erase: {what}"]
    out.append(
        f"{verb}: {r.rows_deleted:,} rows in {sum(1 for c in r.partitions if c.rows_deleted)} partitions"
    )
    out += partition_lines(r.partitions)
    out += held_lines(r.held, r.holds)
    for n in r.not_erasable:
        out.append(
            f"NOT erasable: period {n.period} ({n.reason}; {n.partitions} partitions): its rows cannot be "
            "linked to the address, and erasing by network would hit other visitors"
        )
    if r.record:
        out.append(f"deletion record: {r.record}")
    return "\n".join(out)


@main.command("export")
@lifecycle_options()
@click.option(
    "--domain", type=TEXT, help="The domain whose rows are exported (a customer's portability request)."
)
@click.option(
    "--ip", "address",
    help="One visitor's rows (an access request), found through the pseudonym keys as erase --ip finds them.",
)  # fmt: skip
@click.option("--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True)
@click.option(
    "--output", required=True, type=click.Path(dir_okay=False),
    help="File to write (atomically); only --json prints on stdout, a notice goes to stderr.",
)  # fmt: skip
@date_range()
@authority_options
@handle_errors
def export_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, domain: str | None,
    address: str | None, fmt: Any, output: str, date_from: dt.date | None, date_to: dt.date | None,
    case: str | None, request: str | None, reason: str | None,
) -> None:  # fmt: skip
    """Export a domain's or a visitor's rows as CSV, JSON lines or Parquet (access and portability
    requests). Audited under --case or --request; the address itself is never recorded.

    Rows of key periods whose key was destroyed cannot be linked to the address: the notice names
    those periods (``not_linkable`` in --json).

    Example:

        hostlogs export --domain example.com --request DSR-17 --output example.com.csv --store ./store
        hostlogs export --ip 203.0.113.7 --request DSR-18 --format csv --output visitor.csv --store ./store
    """
    # the audited session checks the store, then --case/--request, before anything is read
    with progress_bar("export", "days", quiet=as_json) as progress:
        report = export(
            load_config(config_path, store), domain=domain, address=address, fmt=fmt, output=output,
            date_from=date_from, date_to=date_to, wait=wait, case=case, request=request, reason=reason,
            progress=progress,
        )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.to_dict(), indent=2, default=str))
    elif not report.damaged:  # else the one error line below says what the file lacks
        whose = " and ".join(x for x in (report.domain, "one visitor" if report.by_address else None) if x)
        notice(f"exported {report.rows:,} rows of {whose} ({report.partitions} days) to {report.output}")
    if report.not_linkable:
        warn(
            f"key periods {', '.join(report.not_linkable)}: key destroyed or absent, "
            "their rows cannot be linked to the address and are not in the export"
        )
    damage_exit(report.damaged, f"{report.output} holds every other row: it is incomplete")
