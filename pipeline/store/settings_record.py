"""The privacy record read back (``layout.PRIVACY_RECORD``): the settings a store's rows were
ingested with, one JSON line per accepted change, the last one in force.

``ingest.privacy_record`` writes and checks it; ingest, and the masking of domains and free text
about a store (``investigate.audit.text_masker``), read it here, so a damaged record is one error
with one message wherever it is read.
"""

from __future__ import annotations

import json
from typing import Any

from pipeline.errors import StoreError
from pipeline.store import layout
from pipeline.store.commit import Store


def current(store: Store) -> dict[str, Any] | None:
    """The record in force (the last line), None for a store that has none yet."""
    if not store.exists(layout.PRIVACY_RECORD):
        return None
    lines = store.read_bytes(layout.PRIVACY_RECORD).splitlines()
    return parse(lines[-1], store) if lines else None


def history(store: Store) -> list[dict[str, Any]]:
    """Every record, oldest first (the first ingest, then each accepted change)."""
    if not store.exists(layout.PRIVACY_RECORD):
        return []
    return [parse(line, store) for line in store.read_bytes(layout.PRIVACY_RECORD).splitlines() if line]


def parse(line: bytes, store: Store) -> dict[str, Any]:
    """One line of the record; ``damaged`` when it is no settings record."""
    try:
        entry = json.loads(line)
    except (ValueError, RecursionError) as exc:  # (nesting deeper than the parser goes)
        raise damaged(store, exc) from exc
    if not isinstance(entry, dict) or not isinstance(entry.get("settings"), dict):
        raise damaged(store, ValueError("not a settings record"))
    return entry


def damaged(store: Store, exc: Exception) -> StoreError:
    where = store.url(layout.PRIVACY_RECORD)
    return StoreError(f"damaged privacy record {where}: {exc}; restore it from backup")
