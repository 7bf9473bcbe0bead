"""Country and ASN of client addresses from MaxMind DB files, looked up on the FULL address.

Enrichment must run before truncation: a truncated address can miss (in MaxMind's test database
81.2.69.160 is GB but 81.2.69.0 is not found). The country is the *location* country (``country``),
never ``registered_country`` (where the block is registered: the US for a UK address in the test
data); when a record has no location country the answer is null rather than a plausible wrong one.

Each address is walked down the database's search tree (``geo_tree``, vectorised), which names the
record it resolves to; each distinct record is read once and its answer kept by record for the run
(bounded): many clients share a record, and decoding is what a lookup costs. The country is read from
the record's bytes (``geo_data``: its ``country`` key only), the reader decoding what that walk does not
follow; ASN records are small and decoded by the reader.
"""

from __future__ import annotations

import datetime as dt
import os
import stat
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np
import polars as pl

from pipeline.errors import ConfigError
from pipeline.privacy.geo_data import UNKNOWN, DataSection
from pipeline.privacy.geo_tree import INVALID, SearchTree, file_identity
from pipeline.privacy.mask import factorize

CACHE_MAX = 500_000
COLUMNS: dict[str, pl.DataType] = {"country": pl.String(), "asn": pl.Int64(), "as_org": pl.String()}


@dataclass
class _Database:
    reader: Any  # maxminddb.Reader (C extension or pure Python: no common type to name)
    tree: SearchTree
    data: DataSection  # the records' bytes, for what is read without the reader
    provenance: str
    answers: dict[int, Any] = field(default_factory=dict)  # record offset → the part of the answer it gives

    def close(self) -> None:
        self.reader.close()
        self.tree.close()


class Geo:
    """GeoIP country and ASN lookups; either database may be absent (its columns are then null)."""

    def __init__(self, country_db: Path | None, asn_db: Path | None, *, cache_max: int = CACHE_MAX) -> None:
        self._country = _open(country_db, "country", ("Country", "City"))
        try:
            self._asn = _open(asn_db, "ASN", ("ASN", "ISP"))
        except ConfigError:
            if self._country is not None:
                self._country.close()
            raise
        self.cache_max = cache_max
        self.lookups = 0  # records decoded (each distinct record once while it is cached)
        self.errors = 0  # lookups that failed (not counted: IPv6 on an IPv4-only database)
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
            read = DataSection.location_country  # from the record's bytes; the reader where it cannot
            countries, by_country = self._answers(self._country, distinct, _iso_code, read)
            networks, by_network = self._answers(self._asn, distinct, _network)
        per_distinct = pl.DataFrame(
            {
                "country": pl.Series(countries, dtype=pl.String).gather(by_country),
                "asn": pl.Series([n and n[0] for n in networks], dtype=pl.Int64).gather(by_network),
                "as_org": pl.Series([n and n[1] for n in networks], dtype=pl.String).gather(by_network),
            },
            schema=COLUMNS,
        )
        return per_distinct.select(pl.all().gather(codes))

    def close(self) -> None:
        with self._lock:  # not while a worker walks a tree: its map would go away under it
            for db in (self._country, self._asn):
                if db is not None:
                    db.close()
            self._country = self._asn = None

    def __enter__(self) -> Geo:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _answers(
        self,
        db: _Database | None,
        addresses: pl.Series,
        extract: Callable[[Any], Any],
        read: Callable[[DataSection, int], Any] | None = None,
    ) -> tuple[list[Any], np.ndarray]:
        """(the answer of each distinct record the addresses resolve to, per address the index of its
        record's answer). A record never seen is ``read`` from its bytes where that gives an answer,
        else decoded by the reader (``extract(record)``); either way once, then cached."""
        if db is None:
            return [None], np.zeros(len(addresses), dtype=np.int64)
        records = db.tree.records(addresses)
        self.errors += int(np.count_nonzero(records == INVALID))  # not an address, a corrupt tree
        answers = db.answers
        found, first, inverse = np.unique(records, return_index=True, return_inverse=True)
        new = [
            (int(r), int(i)) for r, i in zip(found, first, strict=True) if r >= 0 and int(r) not in answers
        ]
        if new:
            self.lookups += len(new)
            texts = addresses.gather([i for _, i in new]).to_list()
            for (record, _), text in zip(new, texts, strict=True):  # once per record never seen
                answers[record] = self._answer(db, record, text, extract, read)
        out = [answers.get(int(r)) for r in found]  # None for the negative (not found, invalid)
        if len(answers) > self.cache_max:  # bound memory on endless streams: keep this batch's records
            db.answers = {int(r): answers[int(r)] for r in found if r >= 0}
        return out, inverse

    def _answer(
        self,
        db: _Database,
        record: int,
        text: str,
        extract: Callable[[Any], Any],
        read: Callable[[DataSection, int], Any] | None,
    ) -> Any:
        value = UNKNOWN if read is None else read(db.data, record)
        if value is not UNKNOWN:
            return value
        try:
            decoded = db.reader.get(text)  # the same record: the reader walks the same bits
        except (ValueError, RuntimeError, OSError):  # RuntimeError includes InvalidDatabaseError
            self.errors += 1
            decoded = None
        return extract(decoded if isinstance(decoded, dict) else None)


def _network(record: dict[str, Any] | None) -> tuple[int | None, str | None] | None:
    """(ASN, organisation) of an ASN/ISP record, None when it has neither."""
    asn = (record or {}).get("autonomous_system_number")
    org = (record or {}).get("autonomous_system_organization")
    number = asn if isinstance(asn, int) and not isinstance(asn, bool) else None
    name = sys.intern(org) if isinstance(org, str) else None
    return None if number is None and name is None else (number, name)


def _iso_code(record: dict[str, Any] | None) -> str | None:
    country = (record or {}).get("country")  # location country on purpose: see the module docstring
    code = country.get("iso_code") if isinstance(country, dict) else None
    return sys.intern(code) if isinstance(code, str) else None


def _open(path: Path | None, what: str, types: tuple[str, ...]) -> _Database | None:
    """The reader and the search tree of one file. geoipupdate replaces a database by rename: the two
    must map the same file (a tree of the new one decoded by a reader of the old one would answer
    wrongly and silently), so a file replaced between the two opens is opened again."""
    if path is None:
        return None
    for _ in range(3):
        before = _identity(path, what)
        reader = _reader(path, what, types)
        meta = reader.metadata()
        try:
            tree = SearchTree(path, meta.node_count, meta.record_size, meta.ip_version)
        except (OSError, ValueError) as e:
            reader.close()
            raise ConfigError(f"GeoIP {what} database {path} is not a valid MaxMind DB file") from e
        if tree.identity == before:
            built = dt.datetime.fromtimestamp(meta.build_epoch, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            data = DataSection(tree.buffer, tree.size, meta.node_count)
            return _Database(reader, tree, data, f"{meta.database_type} {built}")
        reader.close()
        tree.close()
    raise ConfigError(f"GeoIP {what} database {path} keeps changing while it is opened: try again")


def _identity(path: Path, what: str) -> tuple[int, int, int, int]:
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise ConfigError(f"GeoIP {what} database {path} not found") from e
    except OSError as e:
        raise ConfigError(f"cannot open GeoIP {what} database {path}: {e.strerror}") from e
    if not stat.S_ISREG(st.st_mode):  # a FIFO would block the open forever; a directory says nothing
        raise ConfigError(f"GeoIP {what} database {path} is not a regular file (a .mmdb file is needed)")
    return file_identity(st)


def _reader(path: Path, what: str, types: tuple[str, ...]) -> Any:
    import maxminddb  # (35 ms): loaded when a database is configured, not by every ingest

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
    return reader
