"""Which commit records (manifests) the purge may delete: the retention of the chain of custody.

A manifest is the proof of what a batch or a rewrite committed (files, sizes, checksums), so it goes
only when nothing still needs it:

* recovery reads manifests from ``progress.seq + 1`` on, so only manifests at or below a writer's
  committed sequence can go, and each writer's newest always stays (its sequence continues from it);
* while a hold is active, manifests created on or after its first day stay (``keep_from``): the chain
  of custody of the held rows;
* a manifest that commits (or attests the checksum of) a file that stays after this purge stays too,
  or ``hostlogs verify`` could not check that file and would find it planted; and so does a manifest
  that retired a file some manifest that stays still adds;
* a manifest that cannot be read stays: it is evidence for ``hostlogs verify``, not for the purge.
"""

from __future__ import annotations

import datetime as dt

from pipeline.errors import StoreError
from pipeline.store import layout
from pipeline.store.commit import WRITER_RE, Store


def expired_manifests(
    store: Store, keep_from: dt.date, going: set[str] | None = None
) -> dict[str, list[str]]:
    """Manifest keys per writer that may go: created before ``keep_from`` and needed by nothing.

    ``going``: the files this purge retires (the manifests that commit them are no longer needed).
    """
    candidates = _old_enough(store, keep_from)
    if not candidates:
        return {}
    live = set(store.catalogue().files) - (going or set())
    adds: dict[str, set[str]] = {}
    retires: dict[str, set[str]] = {}
    added_by: dict[str, set[str]] = {}
    for key in store.manifest_keys():
        try:
            manifest = store.read_json(key) or {}
            named = {str(e["path"]) for e in manifest.get("files", [])}
            named |= {str(c["path"]) for c in manifest.get("checksums", [])}
            gone = {str(r) for r in manifest.get("retired", [])}
        except (StoreError, KeyError, TypeError, AttributeError):
            candidates.pop(key, None)  # damaged: evidence for 'hostlogs verify', not for the purge
            continue
        adds[key], retires[key] = named, gone
        for rel in named:
            added_by.setdefault(rel, set()).add(key)
    doomed = set(candidates)
    while True:
        stay = {
            key for key in doomed
            if adds[key] & live or any(added_by.get(r, set()) - doomed for r in retires[key])
        }  # fmt: skip
        if not stay:
            break
        doomed -= stay
    out: dict[str, list[str]] = {}
    for key, writer in candidates.items():
        if key in doomed:
            out.setdefault(writer, []).append(key)
    return out


def _old_enough(store: Store, keep_from: dt.date) -> dict[str, str]:
    """{manifest key: writer} of the applied manifests created before ``keep_from``, newest excepted."""
    candidates: dict[str, str] = {}
    for writer in store.folders(layout.MANIFESTS):
        if not WRITER_RE.fullmatch(writer):
            continue
        numbered = sorted(
            (seq, key) for key in store.manifest_keys(writer) if (seq := layout.manifest_seq(key)) is not None
        )
        if len(numbered) < 2:
            continue
        peer = store.peer(writer)
        applied = peer.load_progress().seq if store.is_folder(layout.state(writer)) else numbered[-1][0]
        for seq, key in numbered[:-1]:
            created = (store.read_json(key) or {}).get("created", "")
            if seq > applied or not created or dt.date.fromisoformat(created[:10]) >= keep_from:
                break  # ascending creation order: the rest are newer
            candidates[key] = writer
    return candidates
