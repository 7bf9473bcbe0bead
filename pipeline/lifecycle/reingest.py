"""``ingest --reingest SOURCE``: take a source's rows out so that it can be read again, correctly.

A log ingested with the wrong ``--domain`` or ``--format`` is in the store with wrong rows (or all of
them quarantined). Re-reading it must replace those rows, never add a second copy. The batches an
ingest committed name their source (``source.path``, ``fingerprint``) and their files, so:

1. under the ingest writer's own lock (a cron ingest waits or exits 75, and nothing is half-read),
   every committed file of the batches that name ``SOURCE`` — rows and quarantined lines — is retired,
   and the streams they came from are reset to offset 0, in ONE commit (``Store.swap`` with a
   ``reset_streams`` list that ``Progress.apply`` replays): a crash before it leaves the old rows and
   the old progress, a crash after it leaves neither, and the next ingest (this one, or cron's) reads
   the source from the start. Never both, and after a re-run never none;
2. then the CLI ingests the source with the corrected settings, as any ingest.

Only whole batch files can be told apart: once ``compact`` merged a batch's file with other sources'
rows, or an ``erase``/``purge`` rewrote it, the source's rows can no longer be separated, and the
re-ingest is refused rather than leaving some of them twice. A stream read from stdin cannot be read
again. The action is audited like an erasure (a case or request id is required).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline import __version__
from pipeline.config import Config
from pipeline.errors import StoreError, UsageError
from pipeline.investigate import audit
from pipeline.lifecycle import deletions
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.store import layout
from pipeline.store.catalogue import Catalogue
from pipeline.store.commit import DEFAULT_WRITER, Store

STDIN_NAMES = ("-", "<stdin>")


@dataclass(frozen=True)
class UnloadReport:
    """What ``unload_source`` took out: to be read again by the ingest that follows."""

    source: str
    batches: int
    files: tuple[str, ...]
    rows: int
    rejects: int
    streams: tuple[str, ...]  # keyed fingerprints reset to offset 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "batches": self.batches,
            "files": list(self.files),
            "rows_removed": self.rows,
            "rejects_removed": self.rejects,
            "streams_reset": len(self.streams),
        }


def unload_source(
    cfg: Config,
    source: str,
    *,
    case: str | None = None,
    request: str | None = None,
    reason: str | None = None,
    wait: float = 0.0,
    belongs: Callable[[dict[str, Any]], bool] | None = None,
    holds: Callable[[dict[str, Any]], str | None] | None = None,
    changed_in_place: bool = False,
) -> UnloadReport:
    """Retire every row and reject of ``source``'s batches and reset its streams (one commit), audited.

    ``belongs``: which batches are the file's (``ingest.custody.belongs_to``; default: by path).
    ``holds``: why the file no longer holds a batch's bytes (``ingest.custody.still_holds``); any
    such batch refuses the whole re-ingest, since its rows would be retired and never read back."""
    if source in STDIN_NAMES:
        raise UsageError("--reingest cannot re-read stdin: its lines are gone once read")
    store = Store.existing(cfg.store, DEFAULT_WRITER, ingested=True)
    case, request = audit.check_authority(case, request, "ingest --reingest")
    # the file's name as the store shows it (manifests, rejects): an address in it masked
    shown = mask_value(source, Truncator.configured(cfg))
    params: dict[str, Any] = {"source": shown}
    if changed_in_place:  # (the file's bytes were not checked against its batches: the trail says so)
        params["changed_in_place"] = True
    with audit.recorded(cfg.store, "ingest --reingest", case, reason, request=request, params=params) as rec:
        with store.lock(wait):
            progress = store.recover()
            report = _plan(store, shown, belongs, holds)
            if report.files or report.streams:  # (all its files may be gone: expired rejects)
                record = {
                    "operation": "reingest",
                    "created": deletions.now(),
                    "hostlogs": __version__,
                    "reingest": shown,
                    "reset_streams": list(report.streams),
                }
                store.swap(progress, list(report.files), {}, record)
        rec.rows = report.rows
        rec.params["rejects"] = report.rejects
    return report


def _plan(
    store: Store,
    source: str,
    belongs: Callable[[dict[str, Any]], bool] | None,
    holds: Callable[[dict[str, Any]], str | None] | None,
) -> UnloadReport:
    """The committed files and streams of ``source``'s batches; refused if any was merged or rewritten.

    ``belongs`` (``ingest.custody.belongs_to``) tells a batch of the file's own stream by ingest's
    identity of files, whatever name it was read under (``access_log`` before logrotate made it
    ``access_log.1.gz``), and not the new file now under the old name; without it, batches match by
    the path they were read as. Batches an earlier re-ingest already retired are not the source's.
    """
    files: list[str] = []
    streams: set[str] = set()
    ranges: list[tuple[int, int]] = []  # the bytes the file's batches were read from
    matched = batches = rows = rejects = 0  # (batches: those with a file still to take out)
    catalogue = store.catalogue()
    for key in store.manifest_keys(DEFAULT_WRITER):
        manifest = store.read_json(key) or {}
        src = manifest.get("source") or {}
        ours = belongs(src) if belongs is not None else src.get("path") == source
        paths = [str(e["path"]) for e in manifest.get("files", [])]
        if not ours or _reingested(store, catalogue, paths):
            continue
        why = holds(manifest) if holds is not None else None
        if why:
            raise UsageError(
                f"cannot re-ingest {source}: {why} (bytes {src.get('start')}-{src.get('end')}, batch "
                f"{manifest.get('seq')}), so its rows would be removed and never read back; nothing was "
                "changed (re-ingest the file those rows were read from)"
            )
        matched += 1
        if src.get("fingerprint"):
            streams.add(str(src["fingerprint"]))
            ranges.append((int(src["start"]), int(src["end"])))
        expired = took = False
        for entry in manifest.get("files", []):
            rel = str(entry["path"])
            if _expired_rejects(rel, _retired_by(store, catalogue, rel)):
                expired = True
                continue  # quarantined lines past their retention: nothing left to take out
            if rel not in catalogue.files:
                by = catalogue.retired.get(rel, "a rewrite")
                raise StoreError(
                    f"cannot re-ingest {source}: its file {rel} was merged or rewritten by {by} (compact, "
                    "erase or purge), so its rows can no longer be told from other sources'; nothing was "
                    "changed (erase the rows by --domain and --from/--to, then ingest the file as a new one)"
                )
            files.append(rel)
            took = True
        batches += took
        rows += int(manifest.get("rows") or 0)
        rejects += 0 if expired else sum(int(n) for n in (manifest.get("rejects") or {}).values())
    _check_whole(source, ranges)
    if not matched:
        raise UsageError(
            f"no batch of the store was read from {source}: give the path as ingest reported it "
            "(hostlogs status or the ingest report lists them)"
        )
    return UnloadReport(source, batches, tuple(files), rows, rejects, tuple(sorted(streams)))


def _reingested(store: Store, catalogue: Catalogue, paths: list[str]) -> bool:
    """Whether a batch was taken out by an earlier re-ingest (its rows were read again since): all
    its files retired, by a re-ingest, or by the purge of expired rejects."""
    by = [_retired_by(store, catalogue, p) for p in paths]
    gone = all(op == "reingest" or _expired_rejects(p, op) for op, p in zip(by, paths, strict=True))
    return bool(paths) and gone and "reingest" in by


def _retired_by(store: Store, catalogue: Catalogue, rel: str) -> str | None:
    """The operation that took a batch file out of the store (None: it is still in, or not recorded)."""
    if rel in catalogue.files or rel not in catalogue.retired:
        return None
    return (store.read_json(catalogue.retired[rel]) or {}).get("operation")


def _check_whole(source: str, ranges: list[tuple[int, int]]) -> None:
    """The file is read again from its first byte: its batches must cover it from there, without a
    gap. (Together: the batches of a file's first, short read carry another fingerprint, and a
    copytruncate generation starts at 0 again.) A gap means bytes read in a batch that was not
    matched (the file was renamed or moved, and ingest followed it) or whose record is gone: reading
    them again would store their rows twice. Refused, nothing changed."""
    reached = 0
    for start, end in sorted(ranges):
        if start > reached:
            raise UsageError(
                f"cannot re-ingest {source}: bytes {reached}-{start} of it were read in a batch "
                "recorded under another name (the file was renamed or moved since?) or no longer "
                "recorded, so reading it again would store their rows twice; nothing was changed"
            )
        reached = max(reached, end)


def _expired_rejects(rel: str, retired_by: str | None) -> bool:
    """Whether a batch's quarantine file was deleted whole by a purge (rejects are kept 30 days by
    default; the file holds only that batch's lines, so nothing of another source went with it)."""
    return rel.startswith(layout.REJECTS + "/") and retired_by == "purge"
