"""Keyed digests (HMAC-SHA256 with the keys of ``keys.KeyStore``): pseudonyms of client addresses,
custody digests of raw log bytes, stream fingerprints.

A pseudonym is HMAC-SHA256(key of the period, canonical address) cut to a signed 64-bit integer: the
same address gets the same pseudonym throughout one period and an unrelated one in the next. Once
the period's key is destroyed, no pseudonym of it can be linked to an address (crypto-shredding).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Literal

from pipeline.errors import UsageError
from pipeline.privacy.addresses import PLAIN_IPV4, parse_address
from pipeline.privacy.keys import KeyStore

if TYPE_CHECKING:  # numpy and polars load with the functions that need them: an investigation's
    import numpy as np  # lookup of one address (lookup_pseudonyms) is a short process of its own
    import polars as pl
    import pyarrow as pa


def pseudonym(key: bytes, address_text: str) -> int:
    """HMAC-SHA256 of the canonical address text, first 8 bytes as a big-endian signed int64."""
    return int.from_bytes(_digest8(key, address_text), "big", signed=True)


def _digest8(key: bytes, address_text: str) -> bytes:
    return hmac.digest(key, address_text.encode(), "sha256")[:8]


def pseudonym_values(key: bytes, texts: Sequence[str]) -> np.ndarray:
    """``pseudonym(key, t)`` for each canonical address text, as int64.

    HMAC's two padded-key blocks are hashed once per call and their states copied per text: half the
    cost of ``hmac.digest`` per address (which redoes the key schedule), same result (RFC 2104).
    """
    import numpy as np

    key = _block_key(key).ljust(_SHA256_BLOCK, b"\0")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key))
    outer = hashlib.sha256(bytes(b ^ 0x5C for b in key))
    # Bound methods and one growing buffer: the loop is all interpreter overhead around OpenSSL
    # (-25 % against attribute lookups and a list of 8-byte strings; 0.73 µs per address).
    copy_inner, copy_outer = inner.copy, outer.copy
    digests = bytearray()
    add = digests.extend
    for text in texts:
        h = copy_inner()
        h.update(text.encode())
        o = copy_outer()
        o.update(h.digest())
        add(o.digest()[:8])
    return np.frombuffer(bytes(digests), dtype=">i8").astype(np.int64)


_SHA256_BLOCK = 64


def _block_key(key: bytes) -> bytes:
    """HMAC's key as it enters the block: a key longer than a block is its SHA-256 (RFC 2104)."""
    return hashlib.sha256(key).digest() if len(key) > _SHA256_BLOCK else key


# The same digests computed in bulk outside the GIL (ingest registers the scanner's WebAssembly
# ``keyed_digests``); None where it cannot run (the loop above then computes them).
BulkKeyed = Callable[[bytes, "pa.Array"], "np.ndarray | None"]
_bulk: BulkKeyed | None = None


def use_bulk(keyed: BulkKeyed | None) -> None:
    """Compute ``pseudonym_series`` with ``keyed`` from now on (None: the loop again)."""
    global _bulk
    _bulk = keyed


def pseudonym_series(key: bytes, texts: pl.Series) -> np.ndarray:
    """``pseudonym_values`` of a column of canonical address texts (no nulls): in bulk where ingest
    registered it, off the GIL (a batch's new clients; measured 0.8 µs an address either way, but the
    loop holds the GIL and the other parse thread waits: ~1 s of a run with 1M clients)."""
    if _bulk is not None:
        got = _bulk(_block_key(key), texts.to_arrow())
        if got is not None:
            return got
    return pseudonym_values(key, texts.to_list())


def canonical_address(value: str) -> str | None:
    """The text that is keyed: ``::ffff:198.51.100.7`` and ``198.51.100.7:443`` → ``198.51.100.7``."""
    addr = parse_address(value)
    return None if addr is None else str(addr)


def checked_address(value: str) -> str:
    """``canonical_address`` of an address an operator or investigator gave; UsageError for none.

    The value is not repeated in the error: errors are audited, and a form hostlogs does not read as
    an address (``3405803787``) may still be one (found by review)."""
    text = canonical_address(value)
    if text is None:
        raise UsageError(
            "not an IP address (give it as 203.0.113.7 or 2001:db8::7; the value is not repeated)"
        )
    return text


def canonical_addresses(values: pl.Series) -> pl.Series:
    """Vectorised ``canonical_address``: null for non-addresses (host names, ``-``) and nulls.

    A plain dotted quad without leading zeros is already canonical and is recognised in polars; only
    the other forms (IPv6, mapped, ports, brackets) go through ``ipaddress``, once per distinct value.
    """
    import polars as pl

    values = values.cast(pl.String)
    plain = values.str.contains(PLAIN_IPV4).fill_null(False)
    others = values.filter(~plain).drop_nulls().unique()
    texts = pl.Series([canonical_address(v) for v in others.to_list()], dtype=pl.String)
    slow = values.replace_strict(others, texts, default=None, return_dtype=pl.String)
    return values.zip_with(plain, slow)


def pseudonyms(
    addresses: pl.Series, periods: pl.Series, store: KeyStore, *, create: bool = True
) -> pl.Series:
    """Pseudonym of each (address, period) row: Int64, null for a null or non-address client.

    Computed once per distinct pair and joined back. create=True makes missing keys and raises
    KeyDestroyedError for a destroyed one; create=False gives null for missing or destroyed keys.
    """
    import numpy as np
    import polars as pl

    if len(addresses) != len(periods):
        raise ValueError(f"{len(addresses)} addresses but {len(periods)} periods")
    frame = pl.DataFrame({"address": addresses.cast(pl.String), "period": periods.cast(pl.String)})
    pairs = frame.unique().drop_nulls()
    keys = {p: store.key(p, create=create) for p in pairs.get_column("period").unique().to_list()}
    live = {p: k for p, k in keys.items() if k is not None}
    pairs = pairs.with_columns(text=canonical_addresses(pairs.get_column("address"))).filter(
        pl.col("text").is_not_null() & pl.col("period").is_in(pl.Series(list(live), dtype=pl.String))
    )
    pairs = pairs.sort("period")
    values = np.concatenate(
        [
            pseudonym_values(live[str(pid)], part.get_column("text").to_list())
            for (pid,), part in pairs.group_by("period", maintain_order=True)
        ]
        or [np.zeros(0, dtype=np.int64)]
    )
    mapping = pairs.select("address", "period", pl.Series("pseudonym", values, dtype=pl.Int64))
    joined = frame.join(mapping, on=["address", "period"], how="left", maintain_order="left")
    return joined.get_column("pseudonym")


def lookup_pseudonyms(address: str, store: KeyStore) -> dict[str, int | Literal["destroyed"]]:
    """For an investigator: the pseudonym of ``address`` in every period that has (had) a key."""
    text = checked_address(address)
    out: dict[str, int | Literal["destroyed"]] = {}
    for info in store.list():
        key = None if info.destroyed else store.key(info.period_id, create=False)
        if key is not None:
            out[info.period_id] = pseudonym(key, text)
        elif store.status(info.period_id) == "destroyed":
            out[info.period_id] = "destroyed"
    return out


# ----------------------------------------------------------------------------------------------------
# Keyed digests of raw log bytes (chain of custody, stream fingerprints)


def custody_digest(key: bytes, sha256_digest: bytes) -> str:
    """The stored digest of a byte range: HMAC-SHA256(custody key, SHA-256 of the bytes), hex.

    An unkeyed hash of a one-line batch is reversed by hashing the 256 candidate lines of the row's
    /24; this one cannot be recomputed without the key. Keying the SHA-256 (not the bytes) lets a
    digest be computed while reading, before the batch's period is known, and lets a legacy unkeyed
    manifest digest be converted into exactly the digest a fresh ingest would have written.
    """
    return hmac.digest(key, sha256_digest, "sha256").hex()


def stream_digest(key: bytes, *parts: bytes) -> str:
    """Keyed fingerprint (128 bits, hex) of raw bytes: parts are length-prefixed, so never ambiguous."""
    mac = hmac.new(key, digestmod="sha256")
    for part in parts:
        mac.update(len(part).to_bytes(8, "big"))
        mac.update(part)
    return mac.hexdigest()[:32]
