"""Which committed files may hold a value: their Parquet bloom filters, probed before the scan.

A sandbox reading through pyarrow datasets (DuckDB itself gets no file access there) reads no bloom
filters, and DuckDB's own reader still opens every file's footer, while compacted files carry them
on ``client_id`` and ``client_net``
(``store/parquet.encode_indexed``). An investigation that looks for one address or network asks
DuckDB's ``parquet_bloom_probe`` first and then scans only the files that may hold it: the same rows
(a bloom filter has no false negatives; files without one are always kept), a fraction of the reads
(one network over two years of daily files: 37 of 730).

The probe runs on a private connection of its own that only ever executes the fixed statement below
with bound parameters (the committed files' paths, a column name from ``PROBED``, the values): no
text an investigator typed reaches it, so it needs none of the sandbox's locks.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence

import duckdb

from pipeline.store import layout
from pipeline.store.commit import Store

PROBED = ("client_id", "client_net")  # the columns compaction writes bloom filters for
_PROBE = "SELECT DISTINCT file_name FROM parquet_bloom_probe(?, ?, ?) WHERE NOT bloom_filter_excludes"


def candidates(
    store: Store, keys: Sequence[str], column: str, values: Sequence[tuple[object, dt.date, dt.date]]
) -> list[str] | None:
    """The ``keys`` that may hold rows with ``column`` = a value on a day in its range.

    ``values`` are (value, first day, last day): a pseudonym is only looked for in its key period's
    files. None when the probe cannot tell (a store not on a local disk, a file DuckDB cannot read):
    the caller then scans every file, as without the probe.
    """
    if column not in PROBED:
        raise ValueError(f"no bloom filters on {column!r}")
    urls = {store.url(k): k for k in keys}
    if any("://" in u for u in urls):
        return None  # an object store: DuckDB would need its filesystem (httpfs) for this
    urls = {os.path.abspath(u): k for u, k in urls.items()}  # the probe names files as absolute paths
    days = {url: layout.date_of(key) for url, key in urls.items()}
    keep: set[str] = set()
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False})
    try:
        for value, first, last in values:
            files = [u for u, d in days.items() if d is None or first <= d <= last]
            if files:
                keep.update(f for (f,) in con.execute(_PROBE, [files, column, value]).fetchall())
    except duckdb.Error:
        return None
    finally:
        con.close()
    return [k for u, k in urls.items() if u in keep]
