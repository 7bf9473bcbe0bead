"""hostlogs hold add / list / release: legal holds that stop the purge and erasure (docs/lifecycle.md)."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import click

from pipeline.cli._common import (
    TEXT,
    date_range,
    handle_errors,
    load_config,
    main,
    shown_json,
    shown_line,
    warn,
)
from pipeline.cli._lifecycle import lifecycle_options
from pipeline.lifecycle import audited, holds


@main.group("hold")
def hold_group() -> None:
    """Legal holds: stop the purge and erasure for the rows a case needs, until released.

    Example:

        hostlogs hold add --case INC-2026-042 --reason "breach at example.com" --domain example.com
    """


@hold_group.command("add")
@lifecycle_options()
@click.option("--case", required=True, help="Case id the hold is placed under (as for --case everywhere).")
@click.option("--reason", required=True, help="Why (kept in the hold record; no personal data).")
@click.option("--domain", type=TEXT, help="Only this domain's rows (default: all domains).")
@date_range(
    "First UTC event date held (default: unbounded).", "Last UTC event date held (default: unbounded)."
)
@handle_errors
def hold_add_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, case: str, reason: str,
    domain: str | None, date_from: dt.date | None, date_to: dt.date | None,
) -> None:  # fmt: skip
    """Place a legal hold (recorded with your user name and the UTC time).

    Example:

        hostlogs hold add --case INC-2026-042 --reason "breach" --domain example.com --from 2026-03-01
    """
    cfg = load_config(config_path, store)
    hold = audited.add_hold(cfg, case, reason, domain=domain, date_from=date_from, date_to=date_to, wait=wait)
    click.echo(json.dumps(hold.to_json(), indent=2) if as_json else f"hold placed: {hold.describe()}")


@hold_group.command("list")
@lifecycle_options(wait=False)
@handle_errors
def hold_list_cmd(config_path: str | None, store: str | None, as_json: bool) -> None:
    """List every hold, active and released.

    Example:

        hostlogs hold list --store /var/lib/hostlogs/store
    """
    from pipeline.store.commit import Store

    found = holds.list_holds(Store.existing(load_config(config_path, store).store))  # a typo: exit 6
    if as_json:  # (hold files as read: masked like every printed line, found by review)
        click.echo(shown_json([h.to_json() for h in found], indent=2))
        return
    click.echo(f"{'case':<20}  {'status':<8}  {'domain':<20}  {'from':<10}  {'to':<10}  by / when (UTC)")
    for h in found:
        status = "active" if h.active else "released"
        when = f"{h.created_by} {h.created:%Y-%m-%d %H:%M}"
        if h.released:
            when += f"; released by {h.released_by} {h.released:%Y-%m-%d %H:%M}"
        span = f"{h.date_from or '…'!s:<10}  {h.date_to or '…'!s:<10}"
        row = f"{h.case:<20}  {status:<8}  {h.domain or '(all)':<20}  {span}  {when}"
        click.echo(shown_line(row))  # (a hold file's text as read: one line, masked)
        if h.erasures_kept:  # (their requests stand: said at the release, and here after it)
            ids = ", ".join(h.erasures_kept)
            line = f"kept rows from the erasures of deletion records {ids}: run them again"
            click.echo(f"{'':<22}{shown_line(line)}")
        if h.records_unread:  # (the erasures above are those it could tell: these may hide more)
            line = (
                f"{len(h.records_unread)} deletion record(s) could not be read at its release: an erasure "
                "it kept rows from may be recorded there (hostlogs verify; hold list --json names them)"
            )
            click.echo(f"{'':<22}{shown_line(line)}")


@hold_group.command("release")
@click.argument("case")
@lifecycle_options()
@handle_errors
def hold_release_cmd(
    case: str, config_path: str | None, store: str | None, as_json: bool, wait: float
) -> None:
    """Release the active hold of CASE; the next purge may delete what it kept.

    Names each erasure the hold kept rows from (a warning each; ``erasures_kept`` in --json): its
    request stands now, run that erasure again.

    Example:

        hostlogs hold release INC-2026-042 --store /var/lib/hostlogs/store
    """
    released = audited.release_hold(load_config(config_path, store), case, wait=wait)
    if as_json:  # (the records' fields as read: masked like every printed line, found by review)
        click.echo(shown_json(released.to_json(), indent=2))
    else:
        click.echo(f"hold released: {released.hold.describe()}")
    for kept in released.erasures_kept:  # (on stderr with --json too: cron mail shows it)
        warn(_erasure_kept(kept))
    for problem in released.unreadable:
        warn(f"{problem}: an erasure this hold kept rows from may be recorded there (hostlogs verify)")


def _erasure_kept(kept: dict[str, Any]) -> str:
    """One line for an erasure this hold had overridden: its request stands, run it again now."""
    what = [f"domain {kept['domain']}" if kept.get("domain") else "", kept.get("visitor") or ""]
    days = (
        f"{kept.get('from') or '…'} to {kept.get('to') or '…'}" if kept.get("from") or kept.get("to") else ""
    )
    under = ", ".join(f"{k} {kept[k]}" for k in ("case", "request") if kept.get(k))
    selected = "; ".join(x for x in (*what, days) if x)
    rows = "an unknown number of" if kept["rows_kept"] is None else str(kept["rows_kept"])
    stopped = f" ({kept['status']})" if kept.get("status") != "complete" else ""
    return (
        f"this hold kept {rows} row(s) from the erasure of {str(kept.get('started'))[:10]}{stopped}"
        f" ({selected}{'; under ' + under if under else ''}; deletion record {kept['record']}): its request"
        " stands now that the hold is released; run that erasure again"
    )
