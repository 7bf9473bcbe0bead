"""The privacy settings that shape a store's rows: recorded at its first ingest, checked at every one.

A store whose rows were masked to /24 must not silently receive /16 (or /32) rows: queries group by
``client_net``, investigations compare networks and an erasure finds a visitor by theirs, so a store
mixing two prefixes answers all three wrongly without saying so. ``_state/privacy.jsonl``
(``layout.PRIVACY_RECORD``) holds one line per settings change; its last line is in force. An ingest
with other values is refused (``ConfigError``, exit 3) unless the operator passes
``--accept-privacy-change``, which appends the new settings with the date and the user, so that
the change stays visible to whoever reads the store later.

The file is appended with the store's exclusive append (``Store.append_line``): a piped logger and
a cron ingest write under different locks, and both see the line the other appended.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pipeline.config import Config
from pipeline.errors import ConfigError
from pipeline.rules import os_user
from pipeline.store import layout
from pipeline.store.commit import Store
from pipeline.store.settings_record import current as current
from pipeline.store.settings_record import history as history
from pipeline.store.settings_record import parse

SHAPING = ("ipv4_prefix", "ipv6_prefix", "pseudonym", "key_period")
"""The settings whose change would make a store hold rows of two kinds."""

ACCEPT_FLAG = "--accept-privacy-change"


def settings_of(cfg: Config) -> dict[str, Any]:
    """The shaping settings of a configuration, as recorded."""
    return {name: getattr(cfg.privacy, name) for name in SHAPING}


def check(store: Store, cfg: Config, *, accept_change: bool = False) -> dict[str, Any] | None:
    """Refuse settings other than the store's, or record them; returns the line appended (or None).

    A store without a record gets one now: at its first ingest, or (a store made by an older
    hostlogs) at its next one, noted as such because the settings of its earlier rows are unknown.
    """
    wanted = settings_of(cfg)
    appended: list[dict[str, Any]] = []

    def build(last: bytes | None) -> bytes:
        before = parse(last, store) if last else None
        if before is not None and before["settings"] == wanted:
            return b""  # nothing changed: nothing appended
        if before is None:
            had_rows = bool(store.manifest_keys())
            note = (
                "recorded on a store ingested before (earlier rows: unknown)" if had_rows else "first ingest"
            )
        else:
            refusal = _refusal(store, before["settings"], wanted)
            if not accept_change:
                raise ConfigError(refusal)
            note = f"changed with {ACCEPT_FLAG}: " + ", ".join(
                f"{k} {before['settings'].get(k)} → {v}"
                for k, v in wanted.items()
                if before["settings"].get(k) != v
            )
        entry = {
            "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "user": os_user(),
            "settings": wanted,
            "note": note,
        }
        appended.append(entry)
        return (json.dumps(entry, sort_keys=True, ensure_ascii=False) + "\n").encode()

    store.append_line(layout.PRIVACY_RECORD, build, label="privacy record")
    return appended[0] if appended else None


def mismatch(store: Store, cfg: Config) -> str | None:
    """Why ``cfg`` would be refused by the store's privacy record (None: it would not), read only:
    what ``hostlogs config check`` reports before an ingest is refused."""
    held = current(store)
    wanted = settings_of(cfg)
    if held is None or held["settings"] == wanted:
        return None
    return _refusal(store, held["settings"], wanted)


def _refusal(store: Store, held: dict[str, Any], wanted: dict[str, Any]) -> str:
    """One line: what the store holds, what the config would add, and how to change it on purpose."""
    parts = []
    for name, label in (("ipv4_prefix", "IPv4"), ("ipv6_prefix", "IPv6")):
        if held.get(name) != wanted[name]:
            parts.append(
                f"{label} networks of /{held.get(name)}; {name} = {wanted[name]} would mix "
                f"/{held.get(name)} and /{wanted[name]} rows"
            )
    if held.get("pseudonym") != wanted["pseudonym"]:
        parts.append(
            f"pseudonym = {held.get('pseudonym')} rows; pseudonym = {wanted['pseudonym']} would mix "
            "rows with and without client_id"
        )
    if held.get("key_period") != wanted["key_period"]:
        parts.append(
            f"pseudonyms keyed per {held.get('key_period')}; key_period = {wanted['key_period']} would "
            "mix two key periods"
        )
    return (
        f"store {store.location} holds {'; and '.join(parts)}; to change it on purpose, pass "
        f"{ACCEPT_FLAG} (the change is recorded in {store.url(layout.PRIVACY_RECORD)})"
    )
