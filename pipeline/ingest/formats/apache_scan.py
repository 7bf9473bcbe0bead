"""The native scanner as the first stage of an Apache format's parse (``apache.LogFormat.parse``).

Formats whose fast pattern is one of the shapes ``native/scan.c`` implements (common, combined,
vhost_combined, nginx's main, whatever their names or ``%b``/``%O``, ``%s``/``%>s`` spelling) get
``scan_flags``; their lines are scanned from the batch's bytes first, and only the lines the scanner
refuses are matched by the regex stages. The fields are the regex stages' own (``_fields``): same
values, types and masking, which tests/ingest/test_scanner_parity.py holds on generated and real
lines.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from pipeline.ingest.fields import Agents, RawLines, null_column
from pipeline.ingest.formats import scanner
from pipeline.privacy import mask as privacy

# The shapes scan.c reads (its layout flags), as LogFormat strings: ``apache.compile_format`` gives
# a format the flags of the shape whose fast pattern and fields it has.
SHAPES: dict[str, int] = {
    '%h %l %u %t "%r" %>s %b': 0,
    '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"': scanner.TAIL,
    '%v:%p %h %l %u %t "%r" %>s %O': scanner.VHOST,
    '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"': scanner.VHOST | scanner.TAIL,
    '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"': (
        scanner.TAIL | scanner.XFF
    ),
}


def scan_stage(
    lines: pl.DataFrame, raw: RawLines, flags: int, agents: Agents
) -> tuple[pl.DataFrame, pl.DataFrame] | None:
    """(FIELD_COLUMNS of the lines the scanner read, the lines left for the regex stages), or None
    when the scanner is unavailable or ``raw`` does not describe these lines."""
    offsets = lines.get_column("offset")
    if len(raw.starts) != lines.height:
        return None
    scanned = scanner.scan(raw.data, raw.starts, raw.ends, flags)
    if scanned is None:
        return None
    ok = pl.Series(scanned.ok)
    k = len(scanned.ts)
    text = {name: pl.Series(name, scanned.columns[name]) for name in scanner.fields_of(flags)}
    agent = text["user_agent"] if flags & scanner.TAIL else null_column(k, name="user_agent")
    number = pl.Series("bytes", scanned.bytes)
    frame = pl.DataFrame(
        {
            "offset": offsets.filter(ok),
            "ts": pl.Series("ts", scanned.ts).cast(pl.Datetime("us", "UTC")),
            "bad_field": pl.repeat(False, k, eager=True),
            "domain": text["domain"] if flags & scanner.VHOST else null_column(k, name="domain"),
            "method": text["method"],
            "path": text["path"],
            "query": text["query"],
            "protocol": text["protocol"],
            "status": pl.Series("status", scanned.status.astype(np.int16)),
            "bytes": number.set(number < 0, None),
            "referrer": text["referrer"],
            "user_agent": agents(*privacy.factorize(agent)),
            "client": text["client"],
            **({"forwarded_for": text["forwarded_for"]} if flags & scanner.XFF else {}),
        }
    )
    return frame, lines.filter(~ok)
