"""hostlogs purge / verify / compact: retention, integrity and compaction of the store (docs/lifecycle.md)."""

from __future__ import annotations

import datetime as dt

import click

from pipeline.cli._common import DATE, Finite, handle_errors, load_config, main, quiet_option
from pipeline.cli._lifecycle import SHOWN, damage_exit, emit, held_lines, lifecycle_options, partition_lines
from pipeline.cli._metrics import recorded
from pipeline.cli._progress import progress_bar
from pipeline.errors import IntegrityError, StoreError
from pipeline.lifecycle import audited, retention, verify
from pipeline.lifecycle.compact import DEFAULT_TARGET_MB, CompactReport, compact


@main.command("purge")
@lifecycle_options()
@click.option("--as-of", type=DATE, help="Evaluate the horizon at this UTC date (default: today).")
@click.option("--dry-run", is_flag=True, help="Change nothing; report exactly what would go.")
@click.option("--verify", is_flag=True, help="Change nothing; prove nothing past the horizon remains.")
@click.option(
    "--keys-lost", is_flag=True,
    help="The store's key directory is gone for good (restored without it): purge its rows anyway "
    "(no key to destroy; recorded in the audit trail; refused where keys are found). Without it, purge "
    "refuses a store whose keys it cannot find.",
)  # fmt: skip
@quiet_option
@handle_errors
@recorded("purge")
def purge_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, as_of: dt.date | None,
    dry_run: bool, verify: bool, keys_lost: bool, quiet: bool,
) -> None:  # fmt: skip
    """Delete rows past retention (by UTC event date), old rejects and manifests, and expired keys.

    Rows under a legal hold are kept; every run appends a record to the store's deletion log.

    Example:

        hostlogs purge --config /etc/hostlogs/hostlogs.toml --dry-run --as-of 2026-12-31
    """
    cfg = load_config(config_path, store)
    if verify:
        checked = retention.verify(cfg, as_of=as_of)
        emit(checked, as_json, render_verify, quiet)
        if checked.integrity is not None and not checked.integrity.ok:
            raise IntegrityError(_integrity_failure(checked.integrity))
        if not checked.ok:
            raise StoreError("verification failed: data past the horizon remains; run 'hostlogs purge'")
        return
    with progress_bar("purge", "partitions", quiet=as_json or quiet) as progress:
        report = audited.purge(
            cfg, as_of=as_of, dry_run=dry_run, wait=wait, progress=progress, keys_lost=keys_lost
        )
    emit(report, as_json, render_purge, quiet)
    damage_exit(report.damaged, "the purge did the rest")


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
    out += partition_lines(r.partitions)
    out += held_lines(r.held, r.holds)
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
        out += [f"  {key}: a killed write's file in an expired partition" for key in r.expired_temporaries]
    out += held_lines(r.held, r.holds)
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
@lifecycle_options()
@click.option(
    "--record-legacy", is_flag=True,
    help="Record checksums for files committed without one (only what is on disk now; see docs).",
)  # fmt: skip
@handle_errors
def verify_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, record_legacy: bool
) -> None:
    """Check every committed file against the checksum its manifest recorded.

    Reports altered, missing and planted files, damaged manifests, and damaged or missing deletion
    records; exits 8 if anything is wrong. Read-only unless --record-legacy.

    Example:

        hostlogs verify --store /var/lib/hostlogs/store --json
    """
    report = verify.verify(load_config(config_path, store), record_legacy=record_legacy, wait=wait)
    emit(report, as_json, lambda r: "\n".join([f"store: {r.store}", *_integrity_lines(r)]))
    if not report.ok:
        raise IntegrityError(_integrity_failure(report))


@main.command("compact")
@lifecycle_options()
@click.option("--date", "day", type=DATE, help="Only this partition (default: every day).")
@click.option(
    "--target-mb", type=Finite(min=0.001, max=1 << 20), default=DEFAULT_TARGET_MB, show_default=True
)
@click.option("--dry-run", is_flag=True, help="Change nothing; report what would be merged.")
@quiet_option
@handle_errors
@recorded("compact")
def compact_cmd(
    config_path: str | None, store: str | None, as_json: bool, wait: float, day: dt.date | None,
    target_mb: float, dry_run: bool, quiet: bool,
) -> None:  # fmt: skip
    """Merge each day's small files into few large, indexed ones (safe during ingest).

    Example:

        hostlogs compact --store /var/lib/hostlogs/store --target-mb 128
    """
    cfg = load_config(config_path, store)
    with progress_bar("compact", "partitions", quiet=as_json or quiet) as progress:
        report = compact(cfg, day=day, target_mb=target_mb, dry_run=dry_run, wait=wait, progress=progress)
    emit(report, as_json, render_compact, quiet)
    damage_exit(report.damaged, "the other files were compacted")


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
