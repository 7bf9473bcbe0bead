"""Integrity of the evidence store: every committed file against the checksum its manifest recorded.

``check`` (read-only; ``hostlogs verify`` and ``hostlogs purge --verify``) walks the manifests of every
writer (``Store.catalogue``) and reports

* **altered** files: size, SHA-256 or row count differ from what the commit recorded, or the file is no
  longer readable Parquet;
* **missing** files: committed, never retired, not on disk;
* **planted** files: a Parquet file under ``pageviews/`` or ``_rejects/`` that no manifest commits (and
  no batch in progress announced), or one a manifest retired that is still there (readers would see it);
* **damaged** manifests (not parseable) and deletion records whose content no longer matches its seal;
* **missing** deletion records: a purge or erasure committed deletions but its record (the proof) is gone.

Files committed by a hostlogs that did not record checksums are **unverifiable (legacy)**: listed, not
failures. ``record_legacy`` (``hostlogs verify --record-legacy``) records the checksum of each legacy file
that is consistent with everything its manifest did record (size, rows, readable Parquet) in a new
maintenance manifest, and seals legacy deletion records. It can only record what is on disk *now*: a
legacy file altered before that moment cannot be told apart, and is blessed as it is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from pipeline import __version__
from pipeline.config import Config
from pipeline.errors import StoreError
from pipeline.lifecycle import deletions
from pipeline.lifecycle.session import open_store, session
from pipeline.store import layout
from pipeline.store.commit import Store

Kind = Literal["altered", "missing", "planted", "damaged manifest", "damaged record", "missing record"]
# Operations that write a deletion record before their first deletion (``deletions.start``)
RECORDED = frozenset({"purge", "erase"})


@dataclass(frozen=True)
class Problem:
    kind: Kind
    path: str  # relative to the store root
    detail: str

    def describe(self) -> str:
        return f"{self.kind}: {self.path} ({self.detail})"


@dataclass(frozen=True)
class IntegrityReport:
    store: str
    files_checked: int  # committed files (legacy ones included)
    records_checked: int  # deletion records
    problems: tuple[Problem, ...]
    legacy: tuple[str, ...]  # committed without a checksum: unverifiable
    recorded: tuple[str, ...] = ()  # checksums recorded by this run (--record-legacy)

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ok": self.ok}


def check(store: Store, *, checksum: bool = True) -> IntegrityReport:
    """Check every committed file, manifest and deletion record (read-only, takes no lock).

    Safe beside running writers: the disk is listed first, then the intent records, then the
    manifests, so a batch that commits meanwhile is found in one or the other; a file found missing
    is checked again against the manifests read afterwards (a maintenance run may have retired it).
    """
    on_disk = sorted(key for t in layout.TABLES for key in store.list(t, suffix=layout.PARQUET))
    in_progress = _in_progress(store)
    cat = store.catalogue()
    problems: list[Problem] = [Problem("damaged manifest", m, why) for m, why in cat.damaged.items()]
    legacy: list[str] = []
    missing: list[str] = []
    for rel, record in sorted(cat.files.items()):
        if rel in in_progress:
            continue
        if record.sha256 is None:
            legacy.append(rel)
        problem = store.check_file(rel, record, checksum=checksum)
        if problem == "missing":
            missing.append(rel)
        elif problem is not None:
            detail = problem.removeprefix("altered: ")
            problems.append(Problem("altered", rel, f"{detail}; committed by {record.manifest}"))
    if missing:
        again = store.catalogue()
        for rel in missing:
            if rel in again.files and not store.exists(rel):
                problems.append(
                    Problem("missing", rel, f"committed by {cat.files[rel].manifest}, never retired")
                )
    for rel in on_disk:
        if rel in cat.files or rel in in_progress:
            continue
        if rel in cat.retired:
            why = f"retired by {cat.retired[rel]} but still present: readers see it"
        else:
            why = "named in no manifest"
        problems.append(Problem("planted", rel, why))
    records = 0
    ids: set[str] = set()
    for rel in deletions.record_keys(store):
        records += 1
        data = _json(store, rel)
        if data is None:
            problems.append(Problem("damaged record", rel, "not a readable deletion record"))
            ids.add(rel)  # (its id unreadable: not also reported missing)
            continue
        ids.add(str(data.get("id")))
        sealed = deletions.seal_ok(data)
        if sealed is None:
            legacy.append(rel)
        elif not sealed:
            problems.append(Problem("damaged record", rel, "its content does not match its seal (sha256)"))
    damaged_ids = any(p.kind == "damaged record" for p in problems)
    for op, (kind, manifest) in sorted(cat.operations.items()):
        if kind in RECORDED and op not in ids and not damaged_ids:
            why = f"the {kind} {op} deleted rows ({manifest}) but its deletion record is gone"
            problems.append(Problem("missing record", layout.DELETIONS, why))
    return IntegrityReport(store.location, len(cat.files), records, tuple(problems), tuple(legacy))


def verify(cfg: Config, *, record_legacy: bool = False, wait: float = 0.0) -> IntegrityReport:
    """``check`` the store; with ``record_legacy``, then record checksums of consistent legacy files."""
    if not record_legacy:
        return check(open_store(cfg))
    with session(cfg, "record-legacy", dry_run=False, wait=wait) as s:
        assert s.progress is not None
        report = check(s.store)
        bad = {p.path for p in report.problems}
        cat = s.store.catalogue()
        attest = []
        for rel in report.legacy:
            if rel in bad:
                continue
            if rel.startswith(layout.DELETIONS + "/"):
                record = _json(s.store, rel)
                if record is not None:
                    deletions.write(s.store, rel, record)
                continue
            attest.append(
                {
                    "path": rel,
                    "bytes": s.store.size(rel),
                    "sha256": s.store.sha256(rel),
                    "rows": cat.files[rel].rows,
                }
            )
        if attest:
            seq = s.progress.seq + 1
            s.store.begin(seq, [])
            manifest = {
                "version": 1, "seq": seq, "operation": "record-legacy", "op": s.op,
                "created": s.started.isoformat(),
                "hostlogs": __version__, "by": s.by, "files": [], "retired": [], "checksums": attest,
                "note": "checksums of legacy files as found on disk at this time, not as originally written",
            }  # fmt: skip
            s.store.commit(s.progress, manifest)
        recorded = tuple(r for r in report.legacy if r not in bad)
        return IntegrityReport(
            report.store, report.files_checked, report.records_checked, report.problems,
            tuple(r for r in report.legacy if r in bad), recorded,
        )  # fmt: skip


def _in_progress(store: Store) -> set[str]:
    """Files named by any writer's intent record: being written, or being retired right now."""
    out: set[str] = set()
    for key in store.pending_keys():
        pending = _json(store, key)
        if pending is not None:
            out |= {str(f) for f in [*pending.get("files", []), *pending.get("retire", [])]}
    return out


def _json(store: Store, key: str) -> dict[str, Any] | None:
    """A JSON object, or None when it is missing, unreadable or not an object (a damaged record)."""
    try:
        data = store.read_json(key)
    except StoreError:
        return None
    return data if isinstance(data, dict) else None
