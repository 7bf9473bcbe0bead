"""Enrichment from the full client address, before it is discarded: keyed pseudonym and GeoIP/ASN.

Works on the distinct addresses of a batch (far fewer than its rows) and caches across batches;
the full addresses exist only in this process's memory (the caches included) and are never written.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from pipeline.config import Config
from pipeline.errors import KeyDestroyedError
from pipeline.privacy import digests, keys
from pipeline.privacy.geo import Geo
from pipeline.privacy.mask import ClientMasker

# Distinct client values kept before the cache starts over (~300 bytes each with the batch's copy):
# 1,000,000 took a log of 3M distinct clients to 1.06 GB peak, 500,000 to 0.76 GB (+12 % CPU there).
CACHE_MAX = 500_000
PERIODS_CACHED = 3  # key periods whose answers are kept: a batch spans one, rarely two
_EMPTY = pl.DataFrame(
    schema={
        "client_net": pl.String,
        "client_id": pl.Int64,
        "country": pl.String,
        "asn": pl.Int64,
        "as_org": pl.String,
        "_known": pl.Boolean,  # marks a computed answer (its answers may all be null: a host name)
    }
)
ANSWERS = ["client_net", "client_id", "country", "asn", "as_org"]


class _Cache:
    """One generation of one key period's answer cache.

    ``ids`` numbers each raw client value (a polars ``Categories``: a batch's cast hashes each row
    once into it, with no table to build); row ``i`` of ``table`` holds the answers for id ``i``, so a
    batch's answers are one gather. One per period (ids shared by periods had made every period's
    table as long as all periods' clients together: 20M rows for 90 day-keys; found by review), and
    replaced whole, never emptied: a worker holding the previous one keeps ids and answers that agree.
    """

    def __init__(self, empty: pl.DataFrame) -> None:
        self.ids = pl.Categorical(pl.Categories.random())
        # A Categories is a weak reference: its numbering lives as long as a series of its type does
        # (without one, each batch's cast numbered its values from 0 again).
        self._alive = pl.Series([], dtype=self.ids)
        self.table = empty


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
        # GeoIP names (countries, AS organisations: few, repeated on every row) as codes into the run's
        # own dictionary: the join, the sort and the Parquet writer move integers, and the writer takes
        # the dictionary as is (~8 ms less encode per 134k-row batch with GeoLite2-City)
        self._names = pl.Categorical(pl.Categories.random())
        self._empty = _EMPTY.with_columns(pl.col("country", "as_org").cast(self._names))
        self._caches: dict[str, _Cache] = {}  # key period → its answers by client
        self._destroyed: set[str] = set()
        self._lock = threading.Lock()
        self.key_destroyed_rows = 0

    @classmethod
    def from_config(cls, cfg: Config, geo: Geo | None = None) -> Enricher:
        """The enrichment a config sets (``geo``: its databases, opened beforehand by ``geo_of``);
        the key directory is made here, the store's having been made first."""
        p = cfg.privacy
        keystore = keys.KeyStore(Path(cfg.key_dir), p.key_period) if p.pseudonym == "hmac" else None  # type: ignore[arg-type]
        return cls(keystore, p.key_period, geo if geo is not None else geo_of(cfg))  # type: ignore[arg-type]

    @property
    def status(self) -> EnrichStatus:
        return EnrichStatus(pseudonyms=f"hmac per {self.period}" if self.keystore else "off", geo=self.geo_db)

    @property
    def active(self) -> bool:
        return self.keystore is not None or self.geo is not None

    def annotate(self, clients: pl.Series, ts: pl.Series, masker: ClientMasker) -> dict[str, pl.Series]:
        """client_net, client_id, country, asn, as_org and geo_db for each row's raw client field.

        Answers are cached per key period and raw client value: each batch joins against the cache and
        computes only the clients never seen in that period (a few thousand per batch once warm).
        """
        clients = clients.cast(pl.String)
        periods = self._periods(ts)
        if isinstance(periods, str):  # the common case: the whole batch is in one period
            values = self._lookup(periods, clients, masker)
            self._count_destroyed(periods, len(clients))
        else:
            parts = [
                self._lookup(pid, clients.filter(periods == pid), masker).with_columns(
                    _row=pl.Series((periods == pid).arg_true())
                )
                for pid in periods.unique().to_list()
            ]
            values = pl.concat(parts).sort("_row").drop("_row")
            for pid, n in periods.value_counts().iter_rows():
                self._count_destroyed(pid, n)
        cols = {c: values.get_column(c) for c in ANSWERS}
        # one value for the run: a one-value Enum reaches the Parquet writer as a dictionary
        kind = pl.String() if self.geo_db is None else pl.Enum([self.geo_db])
        cols["geo_db"] = pl.repeat(self.geo_db, len(clients), dtype=kind, eager=True).alias("geo_db")
        return cols

    def _lookup(self, pid: str, clients: pl.Series, masker: ClientMasker) -> pl.DataFrame:
        """The answer columns for each row: a gather by the rows' ids, the clients without an answer
        in this period computed once each.

        (On the 2M-line bench log's 15 batches, 115k clients: 0.25–0.42 s CPU where a join of each
        batch's rows with a cache frame of clients had cost 0.57–0.74 s.)
        """
        with self._lock:
            cache = self._caches.pop(pid, None) or _Cache(self._empty)
            self._caches[pid] = cache  # (the most recent last: a backfill moves through periods)
            while len(self._caches) > PERIODS_CACHED:  # the oldest period's answers go (found by
                del self._caches[next(iter(self._caches))]  # review: day keys of a year had grown it)
        codes = clients.cast(cache.ids).to_physical()
        top = codes.max()
        size = 1 + (top if isinstance(top, int) else 0)  # None: the batch has no client value
        answers = self._padded(cache.table, size)[codes]
        missing = answers.get_column("_known").is_null() & codes.is_not_null()
        if missing.any():
            new = pl.DataFrame({"id": codes, "client": clients}).filter(missing).unique("id")
            computed = self._compute(new.get_column("client"), pid, masker)
            at = new.get_column("id")
            with self._lock:  # on the current table: another worker may have added answers meanwhile
                table = self._padded(cache.table, size)
                table = cache.table = table.with_columns(
                    [table.get_column(c).clone().scatter(at, computed.get_column(c)) for c in ANSWERS]
                    + [table.get_column("_known").clone().scatter(at, True)]
                )
                if size > CACHE_MAX and self._caches.get(pid) is cache:
                    self._caches[pid] = _Cache(self._empty)
            answers = table[codes]
        return answers.select(ANSWERS)

    def _padded(self, table: pl.DataFrame, size: int) -> pl.DataFrame:
        """``table`` with (unknown) rows up to id ``size - 1`` at least."""
        if table.height >= size:
            return table
        return pl.concat([table, self._empty.clear(size - table.height)]).rechunk()

    def _compute(self, clients: pl.Series, pid: str, masker: ClientMasker) -> pl.DataFrame:
        """Network, canonical address, pseudonym and GeoIP answer for clients new in this period."""
        addresses, nets = masker.addresses_and_networks(clients)
        if self.keystore is not None:
            ids = self.pseudonyms(addresses, pid)
        else:
            ids = pl.repeat(None, len(clients), dtype=pl.Int64, eager=True).alias("client_id")
        out = pl.DataFrame({"client_net": nets.rename("client_net"), "client_id": ids})
        if self.geo is not None:
            geo = self.geo.enrich(addresses).with_columns(pl.col("country", "as_org").cast(self._names))
            return pl.concat([out, geo], how="horizontal")
        return out.with_columns(
            country=pl.lit(None, self._names), asn=pl.lit(None, pl.Int64), as_org=pl.lit(None, self._names)
        )

    def pseudonyms(self, addresses: pl.Series, pid: str) -> pl.Series:
        """Keyed pseudonym of each canonical address in period ``pid``; null for non-addresses.

        A period whose key was destroyed by the purge gets null: its data is past retention, and a new
        key would undo the crypto-shredding.
        """
        ids = pl.repeat(None, len(addresses), dtype=pl.Int64, eager=True).alias("client_id")
        key = self._key(pid)
        present = addresses.is_not_null()
        if key is None or not present.any():
            return ids
        values = digests.pseudonym_series(key, addresses.filter(present))
        return ids.scatter(present.arg_true(), pl.Series(values, dtype=pl.Int64))

    def _periods(self, ts: pl.Series) -> str | pl.Series:
        """The key period of the batch, or of each row when it spans several (a month's last hours)."""
        if self.keystore is None:
            return ""  # no keys: one cache
        ends = keys.period_ids(pl.Series([ts.min(), ts.max()], dtype=ts.dtype), self.period)
        if ends[0] is not None and ends[0] == ends[1]:  # periods are intervals: all rows are in it
            return str(ends[0])
        return keys.period_ids(ts, self.period).cast(pl.String)

    def _count_destroyed(self, pid: str, rows: int) -> None:
        if pid in self._destroyed:
            with self._lock:
                self.key_destroyed_rows += rows

    def _key(self, pid: str) -> bytes | None:
        assert self.keystore is not None
        with self._lock:
            try:
                return self.keystore.key(pid, create=True)
            except KeyDestroyedError:
                self._destroyed.add(pid)
                return None


def geo_of(cfg: Config) -> Geo:
    """The GeoIP databases a config names, opened (a bad one is a ConfigError)."""
    g = cfg.geoip
    return Geo(Path(g.country_db) if g.country_db else None, Path(g.asn_db) if g.asn_db else None)
