"""Which key directory is the store's: a keyed identifier of its stream key, kept in the store.

A store's fingerprints, pseudonyms and custody digests are keyed with the keys of one directory
(``privacy.key_dir``). Pointed at another one (a typo, a config copied from another host, another
store's keys), ingest would read every log again under new fingerprints (rows twice), ``erase --ip``
would find none of a visitor's rows, and purge would destroy the other store's keys and keep this
one's. Ingest records HMAC(stream key, "key directory") in ``_state/key-dir.json`` (nothing about the
key can be learnt from it); every command that uses the keys checks the directory against it.
"""

from __future__ import annotations

from pipeline.errors import ConfigError, StoreError
from pipeline.privacy import digests
from pipeline.privacy.keys import KeyStore
from pipeline.store import layout
from pipeline.store.commit import Store


def identifier(stream_key: bytes) -> str:
    return digests.stream_digest(stream_key, b"key directory")


def check(store: Store, keys: KeyStore, *, record: bool = False, unreadable_ok: bool = False) -> None:
    """Refuse (exit 3) a key directory whose stream key is not the one the store was ingested with;
    ``record``: note it when the store has no record yet (ingest, once it holds the stream key).

    ``unreadable_ok``: a key directory this user may not read is not checked (an investigator's
    read-only look). Otherwise it is an error: found by review, an erasure or export by address with
    another store's keys, their custody folder unreadable, skipped the check and found no row.
    """
    data = store.read_json(layout.KEY_DIR_RECORD)
    try:
        have = keys.stream_key() if keys.has_stream_key() else None  # (never makes one)
    except PermissionError as exc:
        if unreadable_ok:
            return
        raise StoreError(
            f"cannot read the key directory {keys.key_dir} ({exc.strerror}) to check it is this store's: "
            "run as the keys' owner; nothing was changed"
        ) from exc
    if data is None:
        if record and have is not None:
            store.write_json(layout.KEY_DIR_RECORD, {"version": 1, "stream_key": identifier(have)})
        return
    if have is None or identifier(have) != data.get("stream_key"):
        held = "no keys" if have is None else "another store's keys"
        raise ConfigError(
            f"the key directory {keys.key_dir} holds {held}, not the keys the store {store.location} "
            "was ingested with: check privacy.key_dir (--key-dir of the keys commands); nothing was changed"
        )
