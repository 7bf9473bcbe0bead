"""hostlogs ingest: the ingest command and its one-screen report."""

from __future__ import annotations

import contextlib
import ctypes
import datetime as dt
import gc
import os
import sys
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import click

from pipeline import config
from pipeline.cli._common import (
    TEXT,
    Finite,
    authority_options,
    handle_errors,
    json_option,
    load_config,
    main,
    notice,
    printable,
    quiet_option,
    shown,
    shown_json,
    store_options,
    warn,
)
from pipeline.cli._metrics import recorded
from pipeline.cli._progress import progress_bar
from pipeline.errors import PartialFailure, StoreError, UsageError
from pipeline.privacy.truncate import Truncator
from pipeline.rules import escaped_text, first_day_kept, today

if TYPE_CHECKING:
    from pipeline.ingest.run import IngestReport
    from pipeline.lifecycle.holds import Hold
    from pipeline.store.commit import Store


def _one_domain(template: str | None) -> str | None:
    if template is not None and template.count("{domain}") != 1:
        raise click.BadParameter("must contain {domain} once, e.g. /var/www/vhosts/{domain}/logs/access_log*")
    return template


@main.command("ingest")
@click.argument("paths", nargs=-1)
@store_options
@click.option(
    "--format", "fmt", default=None, help="auto (default), common, combined, vhost_combined or a LogFormat."
)
@click.option("--domain", type=TEXT, help="Domain for formats without %v/%V/%{Host}i.")
@click.option(
    "--domain-from-path",
    callback=lambda _ctx, _param, v: _one_domain(v),
    help="Path template with {domain}, e.g. /var/www/vhosts/{domain}/logs/access_log*.",
)
@click.option(
    "--olddir",
    metavar="DIR",
    help="logrotate's olddir: rotated files were moved there (absolute, or relative to the log's directory).",
)
@click.option(
    "--server", type=TEXT, help="Name of the web server the logs come from (default: this host's name)."
)
@click.option(
    "--final", is_flag=True, help="Treat every file as complete: consume a last line without newline."
)
@click.option("--wait", "lock_wait", type=Finite(min=0), help="Seconds to wait for a running ingest.")
@click.option("--flush-seconds", type=Finite(min=0.01), help="Piped mode: commit at least this often.")
@click.option("--flush-lines", type=click.IntRange(min=1), help="Piped mode: commit at least every N lines.")
@click.option(
    "--accept-privacy-change",
    is_flag=True,
    help="Ingest although ipv4_prefix, ipv6_prefix, pseudonym or key_period differ from the store's "
    "(recorded in its privacy record).",
)
@click.option(
    "--reingest",
    metavar="SOURCE",
    help="Replace the rows of a source ingested with a wrong --domain or --format: remove its batches "
    "(as its path was reported), then read it again; refused if the file no longer holds the bytes they "
    "were read from. Needs --case or --request (audited).",
)
@click.option(
    "--changed-in-place",
    is_flag=True,
    help="With --reingest: the file was edited in place (ingest warned its content differs), so the rows "
    "of every batch read from it go, also where it no longer holds their bytes, and it is read as it is "
    "now. Refused when the file is gone, or a rotated copy of it begins as it does (copytruncate).",
)
@authority_options
@json_option
@quiet_option
@handle_errors
@recorded("ingest")
def ingest_cmd(
    paths: tuple[str, ...],
    config_path: str | None,
    store: str | None,
    fmt: str | None,
    domain: str | None,
    domain_from_path: str | None,
    olddir: str | None,
    server: str | None,
    final: bool,
    lock_wait: float | None,
    flush_seconds: float | None,
    flush_lines: int | None,
    accept_privacy_change: bool,
    reingest: str | None,
    changed_in_place: bool,
    case: str | None,
    request: str | None,
    reason: str | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Ingest access logs (files, globs, .gz/.zst, or - for stdin) into the store.

    Re-running is safe: each file is read on from where the last run stopped. A file read with the
    wrong --domain or --format is read again, replacing its rows, with --reingest.

    Example:

        hostlogs ingest /var/log/apache2/other_vhosts_access.log --store /var/lib/hostlogs/store

        hostlogs ingest --reingest /var/log/nginx/shop.log --domain shop.example --request R-7
    """
    cfg = load_config(config_path, store).with_overrides(server=server)
    own_process = share_cores(cfg.ingest.workers)
    from pipeline.ingest import run as ingest  # loads polars: after share_cores

    if own_process:
        # The imports made ~50k objects (polars', pyarrow's, numpy's modules) that never become
        # garbage: frozen, a full collection during the run no longer walks them (~20 ms each, with
        # the GIL held). Never in a caller's process (tests, a program embedding the CLI): frozen
        # objects are never collected, and its garbage is not ours to keep.
        gc.freeze()

    given: dict[str, float | int | None] = {
        "lock_wait": lock_wait,
        "flush_seconds": flush_seconds,
        "flush_lines": flush_lines,
    }
    tuning: dict[str, Any] = {k: v for k, v in given.items() if v is not None}
    if tuning:
        cfg = cfg.with_overrides(ingest=config.replace(cfg.ingest, **tuning))
    unloaded = None
    if changed_in_place and reingest is None:
        raise UsageError("--changed-in-place goes with --reingest FILE")
    if reingest is not None:
        if paths or domain_from_path:
            raise UsageError("--reingest SOURCE reads that one source again: give no other paths")
        from pipeline.ingest.custody import belongs_to, edited_in_place, still_holds
        from pipeline.lifecycle.reingest import unload_source  # not loaded for a plain cron ingest
        from pipeline.store.commit import Store

        Store.existing(cfg.store, ingested=True)  # before the key store is opened (it would be made)

        unloaded = unload_source(
            cfg, reingest, case=case, request=request, reason=reason, wait=cfg.ingest.lock_wait,
            belongs=belongs_to(cfg, reingest),
            holds=(edited_in_place if changed_in_place else still_holds)(cfg, reingest),
            changed_in_place=changed_in_place,
        )  # fmt: skip
        if not quiet and not as_json:
            notice(
                f"reingest: removed {unloaded.rows:,} rows and {unloaded.rejects:,} rejected lines of "
                f"{unloaded.batches} batch(es) of {reingest}; reading it again"
            )
        paths = (reingest,)
    specs = None
    if paths or domain_from_path:
        specs = [
            config.SourceConfig(
                path=p, format=fmt or "auto", domain=domain, domain_from_path=domain_from_path, olddir=olddir
            )
            for p in (paths or ("",))
        ]
    elif fmt or domain or olddir:
        specs = [
            config.replace(s, format=fmt or s.format, domain=domain or s.domain, olddir=olddir or s.olddir)
            for s in cfg.sources
        ]
    with progress_bar("ingest", "bytes", quiet=quiet or as_json) as progress:
        report = ingest.run(
            cfg,
            specs,
            final=True if final else None,
            progress=progress,
            accept_privacy_change=accept_privacy_change,
        )
    past = past_retention(cfg, report.partitions)
    masker = Truncator.configured(cfg)  # (file names as the store shows them: addresses masked)
    if as_json:
        data = report.to_dict() | ({"reingest": unloaded.to_dict()} if unloaded else {})
        if past is not None:
            data["past_retention"] = past.to_dict()
        click.echo(shown_json(data, masker, indent=2, default=str))
    elif not quiet:
        click.echo(shown(render_ingest(report, past), masker))
    else:  # cron mails stderr: rows written only to be purged, data a file held that was left out
        if past is not None and past.expired:
            warn(_expired_warning(past))
        for s in report.sources:
            if s.warning:
                warn(f"{s.path}: {s.warning}")
    failed = [str(s.problem) for s in report.failed]
    if len(failed) == 1:  # cron mails stderr: one failed source is one line, naming it
        rest = len(report.sources) - 1
        raise PartialFailure(failed[0] + (f"; the other {rest} file(s) were ingested" if rest else ""))
    if failed:
        raise PartialFailure(
            f"{len(failed)} sources failed (unreadable, matching no file, in no known format or "
            "rejecting more than ingest.max_reject_rate of their lines); the rest was ingested",
            details=tuple(failed),
        )


def share_cores(workers: int) -> bool:
    """Before polars loads: its thread pool gets the cores the ingest workers leave, at least one;
    the allocators and libraries it loads are told how to share memory and cores too.

    Ingest runs ``workers`` batches at once and each keeps a core busy; polars' pool (one thread per
    core by default) then only splits work that already has a core, and its idle threads spin
    (sched_yield) between jobs. On 2 cores with 2 workers a pool of one measured -4 % CPU and -4 %
    wall on 2M lines. An operator's own ``POLARS_MAX_THREADS`` wins; in a process that already
    loaded polars (the library, tests) this changes nothing, and process-wide switches (huge pages)
    are left alone. True when this is the command's own process (polars not loaded yet).
    """
    own_process = "polars" not in sys.modules
    try:
        cores = len(os.sched_getaffinity(0))  # the cores this process may run on (containers, taskset)
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    os.environ.setdefault("POLARS_MAX_THREADS", str(max(1, cores - workers)))
    # Arrow's allocator (mimalloc) gives freed memory back to the kernel 10 ms later, and the next
    # batch faults it in again, zeroed (huge pages): ~9 % of the process's CPU went to the kernel.
    # Kept instead, memory stays at the peak that the blocks bound anyway (2M lines, 5 interleaved
    # rounds: system CPU 1.03 -> 0.85 s median, total CPU lower in 4 of 5, peak RSS +80 MiB; README,
    # "Performance"). Read by mimalloc when pyarrow loads.
    os.environ.setdefault("MIMALLOC_PURGE_DELAY", "-1")
    if own_process:
        _no_huge_pages()
    # numpy's OpenBLAS starts a thread per core that spins between calls; ingest makes no BLAS call
    # (its threads took 1.5 % of the CPU of a 2M-line run).
    os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
    return own_process


def _no_huge_pages() -> None:
    """Transparent huge pages off for this process (``PR_SET_THP_DISABLE``; Linux only).

    mimalloc asks the kernel for huge pages (and with THP ``always`` every allocator gets them), so
    the first touch of any of its memory makes the kernel zero a whole 2 MB page: ingest's ~700 MB
    working set is faulted in at start and whenever freed memory is handed back. With 4 KiB pages
    only the memory really touched is zeroed: on 2M lines, system CPU 1.0-1.6 s -> 0.6-0.7 s, with
    more but cheaper page faults and no measurable cost in user time.
    """
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError, AttributeError):  # no libc to call: only the saving is lost
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_THP_DISABLE, 1, 0, 0, 0)


_PR_SET_THP_DISABLE = 41  # linux/prctl.h


@dataclass(frozen=True)
class PastRetention:
    """The days an ingest wrote rows to that are older than the retention."""

    retention: str
    first_day_kept: dt.date
    expired: tuple[dt.date, ...]  # no hold keeps all of their rows: the next purge deletes them
    held: tuple[dt.date, ...]  # a hold of every domain covers them: the purge keeps them
    held_domains: tuple[str, ...]  # domains whose rows a hold keeps on some of the expired days

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def past_retention(cfg: config.Config, days: tuple[str, ...]) -> PastRetention | None:
    """The days this run wrote rows to that are older than the retention, or None when there are none.

    An archive ingested late, or a server whose clock was years off: ``hostlogs purge`` deletes those
    rows at its next run unless a hold covers them, and the operator should hear it now (a hold
    added before that purge keeps them). A hold that names a domain keeps that domain's rows only,
    as in the purge. The global retention only (``retention.domains`` may shorten it for some
    domains). The holds are read only when such a day was written.
    """
    horizon = first_day_kept(today(), cfg.retention.retention)
    old = [day for day in map(dt.date.fromisoformat, days) if day < horizon]
    if not old:
        return None
    from pipeline.lifecycle.holds import active_holds
    from pipeline.lifecycle.rewrite import partitions as partitions_of
    from pipeline.lifecycle.session import open_store

    store = open_store(cfg)
    try:
        holds = active_holds(store)
    except StoreError as exc:  # a damaged hold file: the rows are committed, the run is no failure
        warn(f"{exc}; days written past the retention are named as if no hold covered them")
        holds = []
    covering = {d: [h for h in holds if h.covers_date(d)] for d in old}
    named_only = any(c and all(h.domain is not None for h in c) for c in covering.values())
    files = partitions_of(store) if named_only else {}  # read only when a domain hold decides a day
    try:
        held = tuple(d for d in old if _held_whole(store, covering[d], files.get(d, [])))
    except StoreError as exc:  # a committed file that cannot be read: as above, no failure of the run
        warn(f"{exc}; days written past the retention are named as if no hold covered them")
        held = ()
    expired = tuple(d for d in old if d not in held)
    domains = {h.domain for h in holds if h.domain is not None and any(map(h.covers_date, expired))}
    return PastRetention(cfg.retention.retention, horizon, expired, held, tuple(sorted(domains)))


def _held_whole(store: Store, covering: list[Hold], files: list[str]) -> bool:
    """The holds covering a day keep every row of it from the purge, by the purge's own rule
    (``Hold.row_filter``): a hold of every domain, or holds naming every domain its rows hold."""
    if not covering or any(h.domain is None for h in covering):
        return bool(covering)
    import polars as pl  # (loaded by the ingest already)

    keep = pl.any_horizontal([h.row_filter() for h in covering]).all()
    return all(store.read_parquet(key, ["domain"]).select(keep).item() for key in files)


def _expired_warning(past: PastRetention) -> str:
    kept = (
        f" except the rows of {', '.join(past.held_domains)} that a hold covers" if past.held_domains else ""
    )
    return (
        f"rows were written to {_days(past.expired)} older than the retention ({past.retention}: first "
        f"day kept {past.first_day_kept}); the next `hostlogs purge` deletes them{kept} "
        "(`hostlogs hold add` keeps them)"
    )


def _days(days: tuple[dt.date, ...]) -> str:
    if len(days) == 1:
        return f"1 day ({days[0]})"
    return f"{len(days):,} days ({days[0]} … {days[-1]})"


def render_ingest(report: IngestReport, past: PastRetention | None = None) -> str:
    """One screen: per-file lines and the totals (``past``: days written older than the retention)."""
    out = [f"store: {report.store}"]
    for s in report.sources:
        status = s.error or s.note or ("up to date" if s.lines == 0 and s.start == s.end else "")
        rej = sum(s.rejects.values())
        headers = f", {s.directives:,} header lines" if s.directives else ""
        out.append(
            f"  {printable(s.path)}: {s.lines:,} lines → {s.rows:,} rows, {rej:,} rejected{headers}"
            f"{f' [{s.format}]' if s.format else ''}{f' ({status})' if status else ''}"
        )
        if s.fingerprint and s.end > s.start:  # chain of custody: what exactly was read
            stream = s.fingerprint  # whole: a cut identifier would name another stream
            out.append(f"    bytes {s.start:,}–{s.end:,} of stream {stream} in {s.batches} batch(es)")
        if s.domain_unknown:
            hint = "use --domain or --domain-from-path"
            out.append(f"    warning: {s.domain_unknown:,} rows without a domain ({hint})")
        if s.warning:
            out.append(f"    warning: {s.warning}")
    files = sum(1 for s in report.sources if s.lines or s.error)
    rate = report.lines / report.seconds if report.seconds else 0.0
    mb = report.bytes_read / 1e6
    out.append(
        f"files: {files}  lines: {report.lines:,}  rows: {report.rows:,}  "
        f"rejected: {sum(report.rejects.values()):,}  partitions: {len(report.partitions)}"
    )
    if report.rejects:
        out.append("rejected by reason: " + ", ".join(f"{k} {v:,}" for k, v in report.rejects.items()))
        out.append(f"  quarantined (IPs scrubbed) under {report.quarantine}/")
    if report.partitions:
        shown = (
            report.partitions
            if len(report.partitions) <= 6
            else (*report.partitions[:3], "…", report.partitions[-1])
        )
        out.append("partitions: " + " ".join(shown))
    if past is not None and past.expired:
        out.append(f"warning: {_expired_warning(past)}")
    if past is not None and past.held:
        out.append(
            f"  {_days(past.held)} older than the retention {'is' if len(past.held) == 1 else 'are'} "
            "covered by an active hold of every domain: purge keeps their rows"
        )
    enr = report.enrichment
    out.append(f"enrichment: pseudonyms {enr.pseudonyms}; GeoIP {enr.geo or 'off (no databases configured)'}")
    if report.key_destroyed_rows:
        out.append(
            f"  {report.key_destroyed_rows:,} rows of periods whose key was destroyed: client_id left empty"
        )
    if report.scanner.startswith("off (") and "HOSTLOGS_SCANNER" not in report.scanner:
        out.append(f"warning: line scanner {report.scanner}: regular expressions read every line (slower)")
    out.append(
        f"throughput: {rate:,.0f} lines/s, {mb / report.seconds if report.seconds else 0:,.1f} MB/s "
        f"({mb:,.1f} MB in {report.seconds:.2f} s)"
    )
    # a file name of bytes that are no UTF-8 (any bytes on Linux): printed as \xHH, never a crash
    return escaped_text("\n".join(out))
