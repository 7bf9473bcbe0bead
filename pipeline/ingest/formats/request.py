"""The HTTP request line ("GET /path?query HTTP/1.1") split into method, path, query and protocol.

Shared by every format that logs the request line as one field (Apache's ``%r``, and the ALB,
W3C and HAProxy formats to come). Vectorised: a cheap split for the common shape, a regex for the
few odd rows only.
"""

from __future__ import annotations

import polars as pl

from pipeline.ingest.fields import null_column

# METHOD SP target [SP protocol]; runs of spaces inside the target happen (NASA log, Nikto probes).
_REQUEST_RE = r"^(?P<method>[A-Za-z][A-Za-z_-]*) +(?P<target>.*?)(?: +(?P<protocol>[A-Za-z]+/[0-9.]+))? *$"

Request = tuple[pl.Series, pl.Series, pl.Series, pl.Series]


def split_request_line(request: pl.Series) -> pl.DataFrame:
    """method, target, protocol of each request line (the target whole, with its query)."""
    # Fast path without capture groups: "METHOD target HTTP/x" split on its two spaces.
    parts = (
        request.str.split_exact(" ", 2).struct.rename_fields(["method", "target", "protocol"]).struct.unnest()
    )
    proto = parts.get_column("protocol")
    odd = ~(
        parts.get_column("method").str.contains(r"^[A-Za-z]+$")
        & proto.str.starts_with("HTTP/")
        & ~proto.str.contains(" ", literal=True)
    ).fill_null(False)
    if odd.any():  # spaces inside the target, HTTP/0.9 without protocol, junk: the general pattern
        # (it overwrites every odd row, with nulls where even the general pattern does not match)
        slow = request.filter(odd).str.extract_groups(_REQUEST_RE).struct.unnest()
        parts = parts.with_columns(
            [parts.get_column(c).scatter(odd.arg_true(), slow.get_column(c)) for c in parts.columns]
        )
    # A request line that is not "METHOD target [protocol]" (a TLS handshake sent to port 80, "-" on a
    # timeout, junk from scanners) is still a request the server logged: keep it, verbatim, as path.
    unparsed = parts.get_column("method").is_null()
    target = parts.get_column("target")
    if unparsed.any():
        target = target.zip_with(~unparsed, request.replace({"-": None, "": None}))
    return pl.DataFrame(
        {"method": parts.get_column("method"), "target": target, "protocol": parts["protocol"]}
    )


def split_target(parts: pl.DataFrame, query: pl.Series | None = None) -> Request:
    """(method, path, query without '?', protocol) from ``split_request_line``'s columns.

    ``query``: a separately logged query string (Apache's ``%q``, with its '?'), which wins.
    """
    halves = parts.get_column("target").str.splitn("?", 2)  # the query keeps later '?' (RFI probes)
    q = halves.struct.field("field_1")
    if query is not None:
        q = query.str.strip_prefix("?").replace("", None)
    return parts.get_column("method"), halves.struct.field("field_0"), q, parts.get_column("protocol")


def from_columns(frame: pl.DataFrame, names: dict[str, str]) -> pl.DataFrame:
    """``split_request_line``'s columns from separately logged method/path/protocol ('-' is none)."""

    def col(part: str) -> pl.Series:
        name = names.get(part)
        if name is not None and name in frame.columns:
            return frame.get_column(name).replace("-", None)
        return null_column(frame.height)

    return pl.DataFrame({"method": col("method"), "target": col("target"), "protocol": col("protocol")})
