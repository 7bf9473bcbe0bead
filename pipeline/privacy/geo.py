"""Country and ASN of client addresses from MaxMind DB files, looked up on the FULL address.

Enrichment must run before truncation: a truncated address can miss (in MaxMind's test database
81.2.69.160 is GB but 81.2.69.0 is not found). The country is the *location* country (``country``),
never ``registered_country`` (where the block is registered: the US for a UK address in the test
data); when a record has no location country the answer is null rather than a plausible wrong one.

Lookups run once per distinct address, with a bounded cache across batches: distinct clients are
far fewer than lines.
"""

from __future__ import annotations

import datetime as dt
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import maxminddb
import polars as pl

from pipeline.errors import ConfigError
from pipeline.privacy.mask import factorize

CACHE_MAX = 500_000
COLUMNS: dict[str, pl.DataType] = {"country": pl.String(), "asn": pl.Int64(), "as_org": pl.String()}

Answer = tuple[str | None, int | None, str | None]  # country, asn, as_org
_NOTHING: Answer = (None, None, None)


@dataclass(frozen=True)
class _Database:
    reader: Any  # maxminddb.Reader (C extension or pure Python: no common type to name)
    ipv4_only: bool
    provenance: str


class Geo:
    """GeoIP country and ASN lookups; either database may be absent (its columns are then null)."""

    def __init__(self, country_db: Path | None, asn_db: Path | None, *, cache_max: int = CACHE_MAX) -> None:
        self._country = _open(country_db, "country", ("Country", "City"))
        try:
            self._asn = _open(asn_db, "ASN", ("ASN", "ISP"))
        except ConfigError:
            if self._country is not None:
                self._country.reader.close()
            raise
        self.cache_max = cache_max
        self.lookups = 0  # distinct addresses looked up in the databases (cache misses)
        self.errors = 0  # database lookups that failed (not counted: IPv6 on an IPv4-only database)
        self._cache: dict[str, Answer] = {}
        self._answers: dict[Answer, Answer] = {}  # one tuple per distinct answer: keeps the cache small
        self._lock = threading.Lock()  # ingest prepares batches on a thread pool

    @property
    def enabled(self) -> bool:
        return self._country is not None or self._asn is not None

    def provenance(self) -> str | None:
        """Which database builds answered, e.g. ``GeoIP2-Country 2026-02-04T22:49:29Z; GeoLite2-ASN …``."""
        parts = [db.provenance for db in (self._country, self._asn) if db is not None]
        return "; ".join(parts) or None

    def enrich(self, addresses: pl.Series) -> pl.DataFrame:
        """``country``, ``asn``, ``as_org`` for each canonical address (null for null / not found)."""
        frame = addresses.cast(pl.String).to_frame("address")
        if not self.enabled:
            nulls = (pl.lit(None, dtype).alias(name) for name, dtype in COLUMNS.items())
            return frame.with_columns(nulls).drop("address")  # with_columns: literals fill every row
        distinct, codes = factorize(frame.get_column("address"))
        with self._lock:
            answers = self._lookup_all(distinct.to_list())
        columns: list[tuple[object, ...]] = list(zip(*answers, strict=True)) if answers else [(), (), ()]
        per_distinct = pl.DataFrame(dict(zip(COLUMNS, columns, strict=True)), schema=COLUMNS)
        return per_distinct.select(pl.all().gather(codes))

    def close(self) -> None:
        for db in (self._country, self._asn):
            if db is not None:
                db.reader.close()
        self._country = self._asn = None

    def __enter__(self) -> Geo:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _lookup_all(self, distinct: list[str]) -> list[Answer]:
        cache = self._cache
        missing = [a for a in distinct if a not in cache]
        if missing:
            # One pass per database with its reader hoisted: this runs once per address never seen.
            self.lookups += len(missing)
            countries = self._records(self._country, missing)
            networks = self._records(self._asn, missing)
            answers = self._answers
            for address, country, network in zip(missing, countries, networks, strict=True):
                asn = network.get("autonomous_system_number") if network else None
                org = network.get("autonomous_system_organization") if network else None
                answer: Answer = (
                    _iso_code(country),
                    asn if isinstance(asn, int) and not isinstance(asn, bool) else None,
                    sys.intern(org) if isinstance(org, str) else None,
                )
                cache[address] = _NOTHING if answer == _NOTHING else answers.setdefault(answer, answer)
        found = [cache[a] for a in distinct]
        if len(cache) > self.cache_max:
            # Bound memory on endless streams: keep what the latest batch used (LRU-ish, no bookkeeping).
            self._cache = dict(zip(distinct, found, strict=True))
            self._answers = {ans: ans for ans in found}
        return found

    def _records(self, db: _Database | None, addresses: list[str]) -> list[dict[str, Any] | None]:
        if db is None:
            return [None] * len(addresses)
        get, ipv4_only = db.reader.get, db.ipv4_only
        out: list[dict[str, Any] | None] = []
        for address in addresses:
            if ipv4_only and ":" in address:
                out.append(None)  # the reader would raise ValueError: an IPv4-only tree has no IPv6 answer
                continue
            try:
                record = get(address)
            except (ValueError, RuntimeError, OSError):  # RuntimeError includes InvalidDatabaseError
                self.errors += 1
                record = None
            out.append(record if isinstance(record, dict) else None)
        return out


def _iso_code(record: dict[str, Any] | None) -> str | None:
    country = (record or {}).get("country")  # location country on purpose: see the module docstring
    code = country.get("iso_code") if isinstance(country, dict) else None
    return sys.intern(code) if isinstance(code, str) else None


def _open(path: Path | None, what: str, types: tuple[str, ...]) -> _Database | None:
    if path is None:
        return None
    try:
        reader = maxminddb.open_database(str(path), maxminddb.MODE_AUTO)
    except FileNotFoundError as e:
        raise ConfigError(f"GeoIP {what} database {path} not found") from e
    except OSError as e:
        raise ConfigError(f"cannot open GeoIP {what} database {path}: {e.strerror}") from e
    except (maxminddb.InvalidDatabaseError, ValueError) as e:
        raise ConfigError(f"GeoIP {what} database {path} is not a valid MaxMind DB file") from e
    meta = reader.metadata()
    if not any(t in meta.database_type for t in types):
        reader.close()
        raise ConfigError(
            f"GeoIP {what} database {path} is of type {meta.database_type!r}; "
            f"expected a {' or '.join(types)} database"
        )
    built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    return _Database(reader, meta.ip_version == 4, f"{meta.database_type} {built}")
