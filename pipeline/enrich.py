"""Enrichment from the full client address, before it is discarded: keyed pseudonym and GeoIP/ASN.

Works on the distinct addresses of a batch (far fewer than its rows) and caches across batches;
the full addresses exist only in this process's memory (the caches included) and are never written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from . import keys
from .config import Config
from .geo import Geo
from .privacy import _PLAIN_IPV4, parse_address

CACHE_MAX = 1_000_000


@dataclass(frozen=True)
class EnrichStatus:
    """What the run summary says about enrichment."""

    pseudonyms: str  # "hmac per month" / "off"
    geo: str | None  # provenance, or None when off


class Enricher:
    def __init__(self, keystore: keys.KeyStore | None, period: keys.Period, geo: Geo | None) -> None:
        self.keystore = keystore
        self.period = period
        self.geo = geo if geo is not None and geo.enabled else None
        self.geo_db = self.geo.provenance() if self.geo else None
        self._canonical: dict[str, str | None] = {}
        self._pseudonyms: dict[tuple[str, str], int] = {}
        self._destroyed: set[str] = set()
        self._lock = threading.Lock()
        self.key_destroyed_rows = 0

    @classmethod
    def from_config(cls, cfg: Config) -> Enricher:
        p = cfg.privacy
        keystore = keys.KeyStore(Path(cfg.key_dir), p.key_period) if p.pseudonym == "hmac" else None  # type: ignore[arg-type]
        g = cfg.geoip
        geo = Geo(Path(g.country_db) if g.country_db else None, Path(g.asn_db) if g.asn_db else None)
        return cls(keystore, p.key_period, geo)  # type: ignore[arg-type]

    @property
    def status(self) -> EnrichStatus:
        return EnrichStatus(pseudonyms=f"hmac per {self.period}" if self.keystore else "off", geo=self.geo_db)

    def apply(self, rows: pl.DataFrame, clients: pl.Series) -> pl.DataFrame:
        """Fill client_id, country, asn, as_org and geo_db; ``clients`` is the raw client field per row."""
        if self.keystore is None and self.geo is None:
            return rows
        addresses = self.canonical(clients)
        cols: dict[str, pl.Series] = {}
        if self.keystore is not None:
            cols["client_id"] = self.pseudonyms(
                addresses, keys.period_ids(rows.get_column("ts"), self.period)
            )
        if self.geo is not None:
            geo = self.geo.enrich(addresses)
            cols.update({c: geo.get_column(c) for c in ("country", "asn", "as_org")})
            cols["geo_db"] = pl.Series([self.geo_db] * rows.height, dtype=pl.String)
        return rows.with_columns(**cols)

    def canonical(self, clients: pl.Series) -> pl.Series:
        """Canonical address text per row (null for host names, '-', 'unix:'), cached per raw value."""
        distinct = clients.unique().drop_nulls()
        plain = distinct.str.contains(_PLAIN_IPV4)
        others = distinct.filter(~plain).to_list()
        for v in others:
            if v not in self._canonical:
                addr = parse_address(v)
                self._canonical[v] = None if addr is None else str(addr)
        if len(self._canonical) > CACHE_MAX:
            self._canonical = {v: self._canonical[v] for v in others}
        texts = pl.Series([self._canonical[v] for v in others], dtype=pl.String)
        mapped = clients.replace_strict(pl.Series(others, dtype=pl.String), texts, default=None)
        return clients.zip_with(clients.str.contains(_PLAIN_IPV4).fill_null(False), mapped)

    def pseudonyms(self, addresses: pl.Series, periods: pl.Series) -> pl.Series:
        """Keyed pseudonym per row, once per distinct (address, period) and cached across batches.

        A period whose key was destroyed by the purge gets null (its data is past retention and a new
        key would undo the crypto-shredding); the count is reported.
        """
        assert self.keystore is not None
        frame = pl.DataFrame({"address": addresses, "period": periods})
        pairs = frame.drop_nulls().unique()
        live: dict[str, bytes] = {}
        for pid in pairs.get_column("period").unique().to_list():
            key = None if pid in self._destroyed else self._key(pid)
            if key is not None:
                live[pid] = key
        values: list[int | None] = []
        for text, pid in pairs.iter_rows():
            key = live.get(pid)
            if key is None:
                values.append(None)
                continue
            cached = self._pseudonyms.get((text, pid))
            if cached is None:
                cached = int(np.frombuffer(keys._digest8(key, text), dtype=">i8")[0])
                self._pseudonyms[(text, pid)] = cached
            values.append(cached)
        if len(self._pseudonyms) > CACHE_MAX:
            self._pseudonyms = {}
        mapping = pairs.with_columns(client_id=pl.Series(values, dtype=pl.Int64))
        out = frame.join(mapping, on=["address", "period"], how="left", maintain_order="left")
        if self._destroyed:
            n = int(frame.get_column("period").is_in(list(self._destroyed)).sum())
            with self._lock:
                self.key_destroyed_rows += n
        return out.get_column("client_id")

    def _key(self, pid: str) -> bytes | None:
        assert self.keystore is not None
        with self._lock:
            try:
                return self.keystore.key(pid, create=True)
            except keys.KeyDestroyedError:
                self._destroyed.add(pid)
                return None
