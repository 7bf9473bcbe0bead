"""hostlogs purge / hold / erase / export / compact: the store lifecycle (see docs/lifecycle.md)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from pipeline import config
from pipeline.cli._common import handle_errors, main
from pipeline.errors import IntegrityError, StoreError
from pipeline.investigate import audit
from pipeline.lifecycle import holds, retention, verify
from pipeline.lifecycle.compact import DEFAULT_TARGET_MB, CompactReport, compact
from pipeline.lifecycle.erase import EraseReport, erase
from pipeline.lifecycle.export import EXPORT_FORMATS, export
from pipeline.lifecycle.rewrite import PartitionChange
from pipeline.lifecycle.session import DamagedFile

F = TypeVar("F", bound=Callable[..., Any])
SHOWN = 12  # partitions listed one per line before the rest are summarised


# click.ParamType is generic only in newer click releases: not subscripted, so older ones still work
class _Date(click.ParamType):  # type: ignore[type-arg]
    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value
        try:
            return dt.date.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


DATE = _Date()


def _options(*, wait: bool = True) -> Callable[[F], F]:
    """--config, --store, --json (and --wait): shared by every lifecycle command."""
    opts = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False), help="TOML config."),
        click.option("--store", help="Store directory (overrides the config)."),
        click.option("--json", "as_json", is_flag=True, help="Print the report as JSON."),
    ]
    if wait:
        help_text = "Seconds to wait for another maintenance run (default 0: exit 75)."
        opts.append(click.option("--wait", type=click.FloatRange(min=0), default=0.0, help=help_text))

    def decorate(fn: F) -> F:
        for opt in reversed(opts):
            fn = opt(fn)
        return fn

    return decorate


def _cfg(config_path: str | None, store: str | None) -> config.Config:
    return config.load(config_path).with_overrides(store=store)


def _emit(report: Any, as_json: bool, render: Callable[[Any], str]) -> None:
    text = json.dumps(report.to_dict(), indent=2, default=str) if as_json else render(report)
    damaged = getattr(report, "damaged", ())
    if damaged and not as_json:
        lines = [f"DAMAGED ({len(damaged)} files):", *(f"  {d.describe()}" for d in damaged)]
        text += "\n" + "\n".join(lines)
    click.echo(text)


def _damage_exit(damaged: tuple[DamagedFile, ...], rest: str) -> None:
    """After the report: a damaged file is an incident (exit 8), even though the rest was done."""
    if damaged:
        first = damaged[0]
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise IntegrityError(
            f"damaged file {first.path}{more}: {first.problem}; {first.action}; {rest}; "
            "run 'hostlogs verify' and treat it as an incident"
        )


def _authority(fn: F) -> F:
    """--case / --request (one is required) and --reason: recorded in the audit trail."""
    fn = click.option("--reason", default=None, help="Why (recorded in the audit trail).")(fn)
    fn = click.option("--request", default=None, help="Request id (access/erasure request), if no case.")(fn)
    return click.option("--case", default=None, help="Case id the action is recorded under.")(fn)


# ----------------------------------------------------------------------------------------------------
# purge


@main.command("purge")
@_options()
@click.option("--as-of", type=DATE, help="Evaluate the horizon at this UTC date (default: today).")
@click.option("--dry-run", is_flag=True, help="Change nothing; report exactly what would go.")
@click.option("--verify", is_flag=True, help="Change nothing; prove nothing past the horizon remains.")
@handle_errors
def purge_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, as_of: dt.date | None,
    dry_run: bool, verify: bool,
) -> None:  # fmt: skip
    """Delete rows past retention (by UTC event date), old rejects and manifests, and expired keys.

    Rows under a legal hold are kept; every run appends a record to the store's deletion log.

    Example:

        hostlogs purge --config /etc/hostlogs/hostlogs.toml --dry-run --as-of 2026-12-31
    """
    cfg = _cfg(config_path, store)
    if verify:
        checked = retention.verify(cfg, as_of=as_of)
        _emit(checked, as_json, render_verify)
        if checked.integrity is not None and not checked.integrity.ok:
            raise IntegrityError(_integrity_failure(checked.integrity))
        if not checked.ok:
            raise StoreError("verification failed: data past the horizon remains; run 'hostlogs purge'")
        return
    # the retention run is its own reason: the audit trail records it with its policy
    params = {"as_of": str(as_of or dt.datetime.now(dt.UTC).date()), "dry_run": dry_run,
              "retention": cfg.retention.retention, "domains": cfg.retention.domains or None}  # fmt: skip
    # (a dry run changes nothing, the audit trail included)
    with audit.recorded(cfg.store, "purge", None, "retention policy", params=params, on=not dry_run) as rec:
        report = retention.purge(cfg, as_of=as_of, dry_run=dry_run, wait=wait)
        rec.rows = report.rows_deleted
    _emit(report, as_json, render_purge)
    _damage_exit(report.damaged, "the purge did the rest")


def render_purge(r: retention.PurgeReport) -> str:
    p = r.policy
    out = [
        f"store: {r.store}{'  (dry run: nothing changed)' if r.dry_run else ''}",
        f"as of {p.as_of}: retention {p.retention}, first day kept {p.horizon}"
        + "".join(f"; {d} from {h}" for d, h in p.domains.items()),
    ]
    if p.ignored:
        out.append(f"  note: retention of {', '.join(p.ignored)} is not shorter than {p.retention}: ignored")
    verb = "would delete" if r.dry_run else "deleted"
    out.append(
        f"{verb}: {r.rows_deleted:,} rows in {sum(1 for c in r.partitions if c.rows_deleted)} partitions"
    )
    out += _partition_lines(r.partitions)
    out += _held_lines(r.held, r.holds)
    rej = [c for c in r.rejects if c.rows_deleted]
    out.append(f"rejects {verb}: {sum(c.rows_deleted for c in rej):,} rows in {len(rej)} partitions")
    out.append(f"manifests {verb}: {sum(r.manifests_deleted.values()):,}")
    out.append(f"keys {'to destroy' if r.dry_run else 'destroyed'}: {', '.join(r.keys_destroyed) or '-'}")
    if r.keys_kept:
        out.append(f"keys kept for held rows: {', '.join(r.keys_kept)}")
    if r.record:
        out.append(f"deletion record: {r.record}")
    return "\n".join(out)


def render_verify(r: retention.VerifyReport) -> str:
    p = r.policy
    head = "verified" if not r.expired else "FAILED"
    out = [f"{head}: as of {p.as_of}, nothing before {p.horizon} remains in {r.store} except under hold"]
    if r.expired:
        out[0] = f"FAILED: as of {p.as_of}, data past the horizon ({p.horizon}) remains in {r.store}"
        out += [f"  {day}: {n:,} rows not under any hold" for day, n in r.expired_rows.items()]
        out += [f"  rejects {day}: past their retention" for day in r.expired_rejects]
        out += [f"  key {k}: not destroyed" for k in r.keys_not_destroyed]
    out += _held_lines(r.held, r.holds)
    out.append(f"oldest partition: {r.oldest or '-'}")
    if r.integrity is not None:
        out += _integrity_lines(r.integrity)
    return "\n".join(out)


def _integrity_lines(r: verify.IntegrityReport) -> list[str]:
    head = "integrity verified" if r.ok else "integrity FAILED"
    out = [f"{head}: {r.files_checked:,} committed files, {r.records_checked:,} deletion records checked"]
    out += [f"  {p.describe()}" for p in r.problems]
    if r.recorded:
        out.append(f"checksums recorded now for {len(r.recorded):,} legacy files (as they are on disk today)")
    if r.legacy:
        out.append(
            f"unverifiable (legacy): {len(r.legacy):,} files committed without a checksum "
            "('hostlogs verify --record-legacy' records what is there now)"
        )
        out += [f"  {f}" for f in r.legacy[:SHOWN]]
        if len(r.legacy) > SHOWN:
            out.append(f"  … {len(r.legacy) - SHOWN:,} more")
    return out


def _integrity_failure(r: verify.IntegrityReport) -> str:
    first = r.problems[0].describe()
    more = f" and {len(r.problems) - 1} more" if len(r.problems) > 1 else ""
    return f"integrity check failed: {first}{more}; treat it as an incident (the report lists every one)"


@main.command("verify")
@_options()
@click.option(
    "--record-legacy", is_flag=True,
    help="Record checksums for files committed without one (only what is on disk now; see docs).",
)  # fmt: skip
@handle_errors
def verify_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, record_legacy: bool
) -> None:
    """Check every committed file against the checksum its manifest recorded.

    Reports altered, missing and planted files, damaged manifests and deletion records; exits 8 if
    anything is wrong. Read-only unless --record-legacy.

    Example:

        hostlogs verify --store /var/lib/hostlogs/store --json
    """
    report = verify.verify(_cfg(config_path, store), record_legacy=record_legacy, wait=wait)
    _emit(report, as_json, lambda r: "\n".join([f"store: {r.store}", *_integrity_lines(r)]))
    if not report.ok:
        raise IntegrityError(_integrity_failure(report))


def _partition_lines(changes: tuple[PartitionChange, ...]) -> list[str]:
    lines = []
    for c in changes[:SHOWN]:
        kept = f", {c.rows_left:,} kept" if c.rows_left else ""
        why = f" (hold {', '.join(c.holds)})" if c.holds else ""
        lines.append(f"  {c.date}  {c.action:<9}  {c.rows_deleted:,} rows{kept}{why}")
    if len(changes) > SHOWN:
        rest = changes[SHOWN:]
        lines.append(f"  … {len(rest)} more partitions, {sum(c.rows_deleted for c in rest):,} rows")
    return lines


def _held_lines(held: dict[str, int], described: tuple[str, ...]) -> list[str]:
    lines = [f"kept under hold {case}: {n:,} rows" for case, n in held.items()]
    return lines + [f"active hold: {d}" for d in described]


# ----------------------------------------------------------------------------------------------------
# hold


@main.group("hold")
def hold_group() -> None:
    """Legal holds: stop the purge and erasure for the rows a case needs, until released.

    Example:

        hostlogs hold add --case INC-2026-042 --reason "breach at example.com" --domain example.com
    """


@hold_group.command("add")
@_options()
@click.option("--case", required=True, help="Case id (letters, digits, '.', '_', '-').")
@click.option("--reason", required=True, help="Why (kept in the hold record; no personal data).")
@click.option("--domain", help="Only this domain's rows (default: all domains).")
@click.option("--from", "date_from", type=DATE, help="First UTC event date held (default: unbounded).")
@click.option("--to", "date_to", type=DATE, help="Last UTC event date held (default: unbounded).")
@handle_errors
def hold_add_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, case: str, reason: str,
    domain: str | None, date_from: dt.date | None, date_to: dt.date | None,
) -> None:  # fmt: skip
    """Place a legal hold (recorded with your user name and the UTC time).

    Example:

        hostlogs hold add --case INC-2026-042 --reason "breach" --domain example.com --from 2026-03-01
    """
    cfg = _cfg(config_path, store)
    params = {"domain": domain, "from": str(date_from or "") or None, "to": str(date_to or "") or None}
    with audit.recorded(cfg.store, "hold add", case, reason, params=params):
        hold = holds.add_hold(
            cfg.store, case, reason, domain=domain, date_from=date_from, date_to=date_to, wait=wait
        )
    click.echo(json.dumps(hold.to_json(), indent=2) if as_json else f"hold placed: {hold.describe()}")


@hold_group.command("list")
@_options(wait=False)
@handle_errors
def hold_list_cmd(config_path: str | None, store: str | None, as_json: bool) -> None:
    """List every hold, active and released.

    Example:

        hostlogs hold list --store /var/lib/hostlogs/store
    """
    found = holds.list_holds(_cfg(config_path, store).store)
    if as_json:
        click.echo(json.dumps([h.to_json() for h in found], indent=2))
        return
    click.echo(f"{'case':<20}  {'status':<8}  {'domain':<20}  {'from':<10}  {'to':<10}  by / when (UTC)")
    for h in found:
        status = "active" if h.active else "released"
        when = f"{h.created_by} {h.created:%Y-%m-%d %H:%M}"
        if h.released:
            when += f"; released by {h.released_by} {h.released:%Y-%m-%d %H:%M}"
        span = f"{h.date_from or '…'!s:<10}  {h.date_to or '…'!s:<10}"
        click.echo(f"{h.case:<20}  {status:<8}  {h.domain or '(all)':<20}  {span}  {when}")


@hold_group.command("release")
@click.argument("case")
@_options()
@handle_errors
def hold_release_cmd(
    case: str, config_path: str | None, store: str | None, as_json: bool, wait: float
) -> None:
    """Release the active hold of CASE; the next purge may delete what it kept.

    Example:

        hostlogs hold release INC-2026-042 --store /var/lib/hostlogs/store
    """
    root = _cfg(config_path, store).store
    with audit.recorded(root, "hold release", case, None):
        hold = holds.release_hold(root, case, wait=wait)
    click.echo(json.dumps(hold.to_json(), indent=2) if as_json else f"hold released: {hold.describe()}")


# ----------------------------------------------------------------------------------------------------
# erase, export, compact


@main.command("erase")
@_options()
@click.option("--domain", help="Erase this domain's rows (a customer leaving).")
@click.option("--ip", "address", help="Erase one visitor's rows, found through the pseudonym keys.")
@click.option("--from", "date_from", type=DATE, help="First UTC event date (default: all).")
@click.option("--to", "date_to", type=DATE, help="Last UTC event date (default: all).")
@click.option("--dry-run", is_flag=True, help="Change nothing; report exactly what would go.")
@_authority
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
    cfg = _cfg(config_path, store)
    if Path(cfg.store).is_dir():  # a missing store is a store error first (exit 6)
        case, request = audit.check_authority(case, request, "erase")
    params = {"domain": domain, "visitor": "one client address (not recorded)" if address else None,
              "from": str(date_from or "") or None, "to": str(date_to or "") or None,
              "dry_run": dry_run}  # fmt: skip
    with audit.recorded(cfg.store, "erase", case, reason, request=request, params=params) as rec:
        report = erase(
            cfg, domain=domain, address=address, date_from=date_from, date_to=date_to, dry_run=dry_run,
            wait=wait,
        )  # fmt: skip
        rec.rows = report.rows_deleted
    _emit(report, as_json, render_erase)
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
    out += _partition_lines(r.partitions)
    out += _held_lines(r.held, r.holds)
    for n in r.not_erasable:
        out.append(
            f"NOT erasable: period {n.period} ({n.reason}; {n.partitions} partitions): its rows cannot be "
            "linked to the address, and erasing by network would hit other visitors"
        )
    if r.record:
        out.append(f"deletion record: {r.record}")
    return "\n".join(out)


@main.command("export")
@_options()
@click.option("--domain", required=True, help="The domain whose rows are exported.")
@click.option(
    "--format", "fmt", type=click.Choice(EXPORT_FORMATS), default="csv", show_default=True
)
@click.option("--output", required=True, type=click.Path(dir_okay=False), help="File to write (atomically).")
@click.option("--from", "date_from", type=DATE, help="First UTC event date (default: all).")
@click.option("--to", "date_to", type=DATE, help="Last UTC event date (default: all).")
@_authority
@handle_errors
def export_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, domain: str, fmt: Any,
    output: str, date_from: dt.date | None, date_to: dt.date | None, case: str | None,
    request: str | None, reason: str | None,
) -> None:  # fmt: skip
    """Export a domain's rows as CSV, JSON lines or Parquet (access and portability requests).

    Example:

        hostlogs export --domain example.com --request DSR-17 --output example.com.csv --store ./store
    """
    cfg = _cfg(config_path, store)
    if Path(cfg.store).is_dir():  # a missing store is a store error first (exit 6)
        case, request = audit.check_authority(case, request, "export")
    report = export(
        cfg, domain=domain, fmt=fmt, output=output, date_from=date_from,
        date_to=date_to, wait=wait, case=case, request=request, reason=reason,
    )  # fmt: skip
    _emit(
        report,
        as_json,
        lambda r: f"exported {r.rows:,} rows of {r.domain} ({r.partitions} days) to {r.output}",
    )
    _damage_exit(report.damaged, f"{report.output} holds every other row: it is incomplete")


@main.command("compact")
@_options()
@click.option("--date", "day", type=DATE, help="Only this partition (default: every day).")
@click.option("--target-mb", type=click.FloatRange(min=0.001), default=DEFAULT_TARGET_MB, show_default=True)
@click.option("--dry-run", is_flag=True, help="Change nothing; report what would be merged.")
@handle_errors
def compact_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, day: dt.date | None,
    target_mb: float, dry_run: bool,
) -> None:  # fmt: skip
    """Merge each day's small files into few large, indexed ones (safe during ingest).

    Example:

        hostlogs compact --store /var/lib/hostlogs/store --target-mb 128
    """
    cfg = _cfg(config_path, store)
    report = compact(cfg, day=day, target_mb=target_mb, dry_run=dry_run, wait=wait)
    _emit(report, as_json, render_compact)
    _damage_exit(report.damaged, "the other files were compacted")


def render_compact(r: CompactReport) -> str:
    verb = "would merge" if r.dry_run else "merged"
    out = [f"store: {r.store}{'  (dry run: nothing changed)' if r.dry_run else ''}"]
    for d in r.days:
        out.append(
            f"  {d.date}  {verb} {d.files_merged} of {d.files_before} files ({d.rows_merged:,} rows) "
            f"→ {d.files_after} files"
        )
    out.append(f"days {verb}: {len(r.days)}  already compact: {r.days_unchanged}")
    return "\n".join(out)
