"""Migration of stores written before keyed digests (runs once per store, under the ingest lock)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from pipeline.errors import HostlogsError
from pipeline.ingest import sources
from pipeline.privacy import digests, keys
from pipeline.privacy.truncate import Truncator
from pipeline.store import layout
from pipeline.store.commit import Store
from pipeline.store.progress import Progress


def migrate_store(
    store: Store, keystore: keys.KeyStore, stream_key: bytes, progress: Progress, truncator: Truncator
) -> int:
    """Replace the unkeyed digests of an older hostlogs by keyed ones, in place (call under the lock).

    Manifests: the SHA-256 of a batch's raw bytes (``source.sha256``) becomes the keyed digest a new
    ingest writes (``source.digest`` = HMAC(custody key of the batch's period, that SHA-256): exactly
    equal, so the custodian's proof works the same on old and new batches); the stream fingerprint
    and the fingerprints it replaced become keyed forms of themselves. Progress states get the same
    keyed fingerprints, so streams recorded before still resume where they were (no re-read). Each
    file is rewritten atomically; a crash leaves each manifest old or new, and the next run goes on.
    Runs once per store (``layout.MIGRATION_MARKER`` marks it done); returns how many files changed.
    """
    if _mask_names(progress, stream_key, truncator):
        store.write_json(layout.progress(store.writer), progress.to_json())
    if store.exists(layout.MIGRATION_MARKER):
        return 0
    changed = 0
    for key in store.manifest_keys():  # every writer's
        manifest = store.read_json(key)
        new = _migrated_manifest(manifest, keystore, stream_key) if manifest else None
        if new is not None:
            store.write_json(key, new)
            changed += 1
    if _migrate_progress(progress, stream_key):
        store.write_json(layout.progress(store.writer), progress.to_json())
        changed += 1
    complete = True
    for other in store.writers():
        if other == store.writer:
            continue
        peer = store.peer(other)
        try:
            with peer.lock():
                theirs = peer.load_progress()
                if _migrate_progress(theirs, stream_key):
                    store.write_json(layout.progress(other), theirs.to_json())
                    changed += 1
        except HostlogsError:  # a writer running an older hostlogs: migrated by a later run
            complete = False
    if complete:
        store.write_json(
            layout.MIGRATION_MARKER,
            {"version": 1, "migrated": datetime.now(UTC).isoformat(), "files": changed},
        )
    return changed


def _mask_names(progress: Progress, stream_key: bytes, truncator: Truncator) -> bool:
    """Streams recorded before file names were masked: an address in the name masked, the file
    known by its ``path_id`` instead (``RunState.recorded_file``). Whether any changed."""
    changed = False
    for state in progress.streams.values():
        if state.path_id is None and (shown := sources.stored_name(state.path, truncator)) != state.path:
            state.path, state.path_id = shown, sources.path_id(stream_key, state.path)
            changed = True
    return changed


def legacy_wrap(stream_key: bytes, legacy: str) -> str:
    return digests.stream_digest(stream_key, b"legacy", legacy.encode())


def _migrated_manifest(
    manifest: dict[str, Any], keystore: keys.KeyStore, stream_key: bytes
) -> dict[str, Any] | None:
    src = manifest.get("source")
    if not isinstance(src, dict) or src.get("keyed"):
        return None
    src = dict(src)
    if src.get("fingerprint"):
        src["fingerprint"] = legacy_wrap(stream_key, str(src["fingerprint"]))
        src["legacy_fingerprint"] = True
    src["replaces"] = [legacy_wrap(stream_key, str(x)) for x in src.get("replaces", [])]
    sha = src.pop("sha256", None)
    pid = keys.period_id(_batch_day(manifest) or datetime.now(UTC).date(), keystore.period)
    key = keystore.custody_key(pid) if sha else None
    src.update(
        digest=digests.custody_digest(key, bytes.fromhex(sha)) if key is not None and sha else None,
        custody_period=pid,
        keyed=True,
    )
    return {**manifest, "source": src}


def _batch_day(manifest: dict[str, Any]) -> date | None:
    """The earliest event day of a batch's rows (its creation day without rows); None: unreadable."""
    data = [
        str(f["path"])
        for f in manifest.get("files", [])
        if isinstance(f, dict) and layout.in_table(str(f.get("path", "")), layout.PAGEVIEWS)
    ]
    if data:
        days = [layout.date_of(key) for key in data]
        return None if any(d is None for d in days) else min(d for d in days if d is not None)
    try:
        return date.fromisoformat(str(manifest.get("created", ""))[:10])
    except ValueError:
        return None


def _migrate_progress(progress: Progress, stream_key: bytes) -> bool:
    legacy = [k for k, st in progress.streams.items() if st.content is None and not st.legacy]
    for k in legacy:
        state = progress.streams.pop(k)
        state.legacy = True
        progress.streams[legacy_wrap(stream_key, k)] = state
    return bool(legacy)
