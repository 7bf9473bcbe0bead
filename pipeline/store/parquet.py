"""Parquet in the store: how files are encoded (ingest, compaction) and read back.

Encoders return bytes for ``Store.write_bytes`` (so worker threads do the CPU work and writing is a
plain copy); readers take a location from the store's filesystem (``StoreFS.url``), never a path
built outside ``pipeline/store/``.
"""

from __future__ import annotations

import itertools
from typing import cast

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import StoreError
from pipeline.store.schema import PAGEVIEW_COLUMNS, PAGEVIEWS

ROW_GROUP_ROWS = 131_072  # ≥128k rows per row group: smaller ones made files 10% larger
# Pages of up to a row group's rows (still cut at 1 MiB), not parquet's 20,000: DuckDB's string
# filters ran 20-30 % faster over both ingest and compacted files (path =, referrer LIKE; sizes
# within 0.5 %, encoding no dearer).
PAGES = {"max_rows_per_page": ROW_GROUP_ROWS, "write_batch_size": 65_536}


def encode_parquet(table: pa.Table) -> pa.Buffer:
    """zstd Parquet in memory (so worker threads do the CPU work; writing is then a plain copy)."""
    sink = pa.BufferOutputStream()
    pq.write_table(
        table,
        sink,
        compression="zstd",
        row_group_size=ROW_GROUP_ROWS,
        write_statistics=True,
        use_dictionary=True,
    )
    return sink.getvalue()


# Min/max statistics in ingest files only where a row group's range can exclude anything: time,
# the sort key and short categorical columns. A batch's free-text columns (path, query, referrer,
# user agent) and its pseudonyms and networks span nearly their whole range in every row group, and
# their statistics were a quarter of the encode time. Compacted files carry all statistics.
INGEST_STATISTICS = (
    "ts", "domain", "method", "protocol", "status", "bytes", "country", "asn", "as_org", "geo_db", "server",
)  # fmt: skip


def encode_frame(frame: pl.DataFrame) -> bytes:
    """The hot path: pyarrow's Parquet writer on a zero-copy arrow view of the batch.

    polars' own writer is faster on the wall clock (it encodes columns in parallel) but costs ~20 %
    more CPU, and ingest keeps both cores busy with two batches at a time: CPU is what counts. The
    string columns stay polars' string views (no copy); without an embedded arrow schema, readers
    see the Parquet types (``string``, like compacted files), not the writer's in-memory layout.
    """
    sink = pa.BufferOutputStream()
    # Balanced row groups: a 133,386-row slice was 131,072 + 2,314 rows, and a tail group costs
    # readers a set of column chunks and dictionaries.
    groups = row_groups(frame.height) or [(0, 0)]
    tables = [_arrow(frame.slice(start, length)) for start, length in groups]
    stats = [c for c in INGEST_STATISTICS if c in frame.columns]
    # A column without a value (a format's absent fields: GeoIP off, no request ids) is only its
    # definition levels, a few bytes: a zstd context per such column chunk cost ~6 % of the encode.
    empty = {c for c in frame.columns if frame.get_column(c).null_count() == frame.height}
    codecs = {c: "none" if c in empty else "zstd" for c in frame.columns}
    with pq.ParquetWriter(
        sink, tables[0].schema, compression=codecs, write_statistics=stats, store_schema=False, **PAGES
    ) as writer:  # fmt: skip
        for table in tables:
            writer.write_table(table, row_group_size=max(table.num_rows, 1))
    return bytes(sink.getvalue())


def _arrow(frame: pl.DataFrame) -> pa.Table:
    """One row group's rows as arrow, zero-copy where it can: each Enum or Categorical column a
    dictionary of the values *this row group* uses (found by review: a dictionary of the whole slice
    in every row group had made files of several row groups 18 % larger).

    (Converted once, by ``_dictionary``: a whole-frame to_arrow converted them too, polars' per-value
    path, only to be replaced: 3 ms of a 125k-row frame.)
    """
    coded = [n for n, kind in frame.schema.items() if isinstance(kind, pl.Enum | pl.Categorical)]
    plain = frame.drop(coded).to_arrow(compat_level=pl.CompatLevel.newest())
    return pa.Table.from_arrays(
        [_dictionary(frame.get_column(n)) if n in coded else plain.column(n) for n in frame.columns],
        names=frame.columns,
    )


def _dictionary(values: pl.Series) -> pa.DictionaryArray:
    """An Enum or Categorical column as the arrow dictionary the Parquet writer takes as is (no
    hashing per row).

    Only the values this column uses are kept: a date's slice of a batch must not carry other dates'
    values in its dictionary page (they would outlive their own partition's purge).
    """
    if isinstance(values.dtype, pl.Enum):  # its codes as they are: polars' own conversion remaps
        dictionary = values.dtype.categories.to_arrow().cast(pa.string())  # them row by row (~1.5 ms)
        indices = values.to_physical().rechunk().to_arrow().cast(pa.int32())
    else:  # (a Categorical's values in code order cost a Python call each: polars' conversion then)
        array = values.rechunk().to_arrow(compat_level=pl.CompatLevel.newest())
        dictionary, indices = array.dictionary.cast(pa.string()), array.indices.cast(pa.int32())
    used = np.zeros(len(dictionary), dtype=bool)
    used[np.asarray(indices.drop_null())] = True
    if not used.all():  # an Enum holds all of the batch's values, a Categorical may too
        renumber = pa.array(np.cumsum(used, dtype=np.int32) - 1)
        indices = renumber.take(indices)  # null indices stay null
        dictionary = dictionary.filter(pa.array(used))
    return pa.DictionaryArray.from_arrays(indices, dictionary)


BLOOM_COLUMNS = ("client_id", "client_net")


def encode_indexed(frame: pl.DataFrame) -> pa.Buffer:
    """The compacted format: zstd, statistics on every column, balanced row groups, delta-encoded
    ``ts`` and bloom filters on ``client_id`` and ``client_net``.

    Neither column is sorted (row groups follow the domain order), so min/max statistics cannot skip
    anything; a bloom filter lets DuckDB skip every row group that lacks the pseudonyms or the network
    an investigation looks for (measured: 1 of 16 row groups read for ``=``, 3 of 16 for a two-value
    ``IN``). Sized by the distinct values actually present (~10 bits each at 1 % false positives), it
    costs a few % of file size and encode time, so ingest does not write it: compaction and other
    rewrites do.
    """
    table = frame.to_arrow().cast(PAGEVIEWS)
    groups = row_groups(table.num_rows)
    largest = max((n for _, n in groups), default=1)
    blooms = {
        col: {"ndv": min(max(frame.get_column(col).n_unique(), 1), largest), "fpp": 0.01}
        for col in BLOOM_COLUMNS
    }
    sink = pa.BufferOutputStream()
    # ts ascends within each run of one domain and path: delta encoding makes it ~18 % of the file
    # smaller and 2.6x faster for DuckDB to decode than dictionary/plain + zstd (investigations read ts).
    with pq.ParquetWriter(
        sink, table.schema, compression="zstd", write_statistics=True, bloom_filter_options=blooms,
        use_dictionary=[c for c in table.column_names if c != "ts"],
        column_encoding={"ts": "DELTA_BINARY_PACKED"}, **PAGES,
    ) as writer:  # fmt: skip
        for start, length in groups:
            writer.write_table(table.slice(start, length), row_group_size=length)
    return sink.getvalue()


def row_groups(rows: int, target: int = ROW_GROUP_ROWS) -> list[tuple[int, int]]:
    """(start, length) of balanced row groups of about ``target`` rows (0.8x to 1.6x of it).

    Fixed-size groups leave a tail group of any size: a 137,000-row day became 131,072 + 5,928 rows,
    and the tail costs a reader a full set of column chunks, dictionaries and statistics for a few
    rows (measured: ~5 % of a two-year scan). Balanced groups have no tail.
    """
    count = max(1, int(rows / target + 0.375))
    bounds = [rows * i // count for i in range(count + 1)]
    return [(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


# --- reading ----------------------------------------------------------------------------------------
def parquet_rows(url: str) -> int:
    """The row count in a Parquet file's footer (OSError when missing or unreadable)."""
    return int(pq.ParquetFile(url).metadata.num_rows)


def parquet_schema(url: str) -> pa.Schema:
    return pq.read_schema(url)


def read_rows(url: str, columns: list[str] | None = None, name: str | None = None) -> pl.DataFrame:
    """A data file in the current schema: columns it predates (older hostlogs) come back as nulls.

    ``columns``: those to read (default: every pageviews column), in that order. Unreadable: a
    StoreError naming ``name`` (default: the location).
    """
    try:
        present = set(pq.read_schema(url).names)
        wanted = columns or PAGEVIEW_COLUMNS
        frame = pl.read_parquet(url, columns=[c for c in wanted if c in present])
    except (OSError, ValueError, pl.exceptions.PolarsError) as exc:  # (ValueError: ArrowInvalid)
        raise StoreError(f"cannot read {name or url}: {exc}") from exc
    schema = _SCHEMA.schema
    return frame.select(
        pl.col(c).cast(schema[c]) if c in present else pl.lit(None, schema[c]).alias(c) for c in wanted
    )


_SCHEMA = cast(pl.DataFrame, pl.from_arrow(PAGEVIEWS.empty_table()))
