"""The ``pageviews`` table: names and types are a contract (saved SQL, purge and query rely on them).

Documented in docs/schema.md; a test checks the two agree.
"""

from __future__ import annotations

import pyarrow as pa

PAGEVIEWS = pa.schema(
    [
        pa.field("ts", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("domain", pa.string()),
        pa.field("method", pa.string()),
        pa.field("path", pa.string()),
        pa.field("query", pa.string()),
        pa.field("protocol", pa.string()),
        pa.field("status", pa.int16()),
        pa.field("bytes", pa.int64()),
        pa.field("referrer", pa.string()),
        pa.field("user_agent", pa.string()),
        pa.field("client_net", pa.string()),
        pa.field("client_id", pa.int64()),  # keyed pseudonym of the full address, per key period
        pa.field("country", pa.string()),  # ISO code of the location country, from the full address
        pa.field("asn", pa.int64()),
        pa.field("as_org", pa.string()),
        pa.field("geo_db", pa.string()),  # which GeoIP build(s) produced country/asn
        pa.field("server", pa.string()),
        # Added with the formats of proxies and CDNs (null for Apache/nginx text logs; files written
        # before them read as null too).
        pa.field("peer_net", pa.string()),  # network of the socket peer (a proxy when it differs)
        pa.field("request_id", pa.string()),
        pa.field("tls", pa.string()),
        pa.field("upstream", pa.string()),
        pa.field("edge_location", pa.string()),
    ]
)
PAGEVIEW_COLUMNS: list[str] = PAGEVIEWS.names

REJECTS = pa.schema(
    [
        pa.field("ingested_at", pa.timestamp("us", tz="UTC"), nullable=False),
        pa.field("source", pa.string(), nullable=False),
        pa.field("offset", pa.int64(), nullable=False),
        pa.field("reason", pa.string(), nullable=False),
        pa.field("line", pa.string()),  # scrubbed: every IP-looking token replaced by its network
        pa.field("batch", pa.string(), nullable=False),
    ]
)
