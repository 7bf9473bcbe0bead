"""The ``pageviews`` table: names and types are a contract (saved SQL, purge and query rely on them).

Documented in docs/schema.md; a test checks the two agree. The columns are data (name, DuckDB type,
nullable): the query views cast to these types without importing pyarrow (~0.1 s of a query's
start-up); ``PAGEVIEWS`` and ``REJECTS``, the Arrow schemas writers use, are built from them on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import pyarrow as pa


class Column(NamedTuple):
    name: str
    type: str  # DuckDB's name of the type (``arrow_type`` maps it to the writers' Arrow type)
    nullable: bool = True


PAGEVIEW_FIELDS = (
    Column("ts", "TIMESTAMPTZ", nullable=False),
    Column("domain", "VARCHAR"),
    Column("method", "VARCHAR"),
    Column("path", "VARCHAR"),
    Column("query", "VARCHAR"),
    Column("protocol", "VARCHAR"),
    Column("status", "SMALLINT"),
    Column("bytes", "BIGINT"),
    Column("referrer", "VARCHAR"),
    Column("user_agent", "VARCHAR"),
    Column("client_net", "VARCHAR"),
    Column("client_id", "BIGINT"),  # keyed pseudonym of the full address, per key period
    Column("country", "VARCHAR"),  # ISO code of the location country, from the full address
    Column("asn", "BIGINT"),
    Column("as_org", "VARCHAR"),
    Column("geo_db", "VARCHAR"),  # which GeoIP build(s) produced country/asn
    Column("server", "VARCHAR"),
    # Added with the formats of proxies and CDNs (null for Apache/nginx text logs; files written
    # before them read as null too).
    Column("peer_net", "VARCHAR"),  # network of the socket peer (a proxy when it differs)
    Column("request_id", "VARCHAR"),
    Column("tls", "VARCHAR"),
    Column("upstream", "VARCHAR"),
    Column("edge_location", "VARCHAR"),
)
PAGEVIEW_COLUMNS: list[str] = [c.name for c in PAGEVIEW_FIELDS]

REJECT_FIELDS = (
    Column("ingested_at", "TIMESTAMPTZ", nullable=False),
    Column("source", "VARCHAR", nullable=False),
    Column("offset", "BIGINT", nullable=False),
    Column("reason", "VARCHAR", nullable=False),
    Column("line", "VARCHAR"),  # scrubbed: every IP-looking token replaced by its network
    Column("batch", "VARCHAR", nullable=False),
)

DATE = Column("date", "DATE")  # the hive partition column of ``date=YYYY-MM-DD`` folders


def arrow_type(sql_type: str) -> pa.DataType:
    """The Arrow type a column of DuckDB type ``sql_type`` is written with."""
    import pyarrow as pa

    types = {"VARCHAR": pa.string(), "SMALLINT": pa.int16(), "INTEGER": pa.int32(), "BIGINT": pa.int64(),
             "DATE": pa.date32(), "TIMESTAMPTZ": pa.timestamp("us", tz="UTC")}  # fmt: skip
    return types[sql_type]


def arrow_schema(columns: tuple[Column, ...] | list[Column]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(c.name, arrow_type(c.type), nullable=c.nullable) for c in columns])


if TYPE_CHECKING:
    PAGEVIEWS: pa.Schema
    REJECTS: pa.Schema


def __getattr__(name: str) -> Any:
    """``PAGEVIEWS`` and ``REJECTS``, built on first use (PEP 562)."""
    fields = {"PAGEVIEWS": PAGEVIEW_FIELDS, "REJECTS": REJECT_FIELDS}.get(name)
    if fields is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    schema = globals()[name] = arrow_schema(fields)
    return schema
