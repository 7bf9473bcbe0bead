"""syslog:INNER and cri:INNER: a transport header stripped in one pass, the inner format does the rest.

Headers are written from RFC 3164, RFC 5424, rsyslog's and journald's documented output and the CRI
log format; the log lines use documentation addresses only.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.errors import FormatError
from pipeline.ingest import formats
from pipeline.ingest.fields import FieldContext
from pipeline.ingest.formats import wrapped
from tests.conftest import THIRD_PARTY_LOGS, ingest_paths, store_rejects, store_rows
from tests.ingest.test_formats import parse_one

COMBINED = (
    '192.0.2.10 - - [06/Feb/2026:12:00:01 +0000] "GET /a?b=1 HTTP/1.1" 200 5 "https://example.test/" "curl/8"'
)
COMBINED_ROW: dict[str, Any] = {
    "ts": datetime(2026, 2, 6, 12, 0, 1, tzinfo=UTC),
    "domain": None,
    "method": "GET",
    "path": "/a",
    "query": "b=1",
    "protocol": "HTTP/1.1",
    "status": 200,
    "bytes": 5,
    "referrer": "https://example.test/",
    "user_agent": "curl/8",
    "client_net": "192.0.2.0/24",
    "server": "web1",
}
VHOST = (
    'www.example.com:443 2001:db8::1 - - [06/Feb/2026:23:30:00 -0100] "POST /login HTTP/2.0" 302 0 "-" '
    '"Mozilla/5.0 (203.0.113.9)"'
)
VHOST_ROW: dict[str, Any] = {
    "ts": datetime(2026, 2, 7, 0, 30, tzinfo=UTC),  # the inner line's time, not the header's
    "domain": "www.example.com",
    "method": "POST",
    "path": "/login",
    "query": None,
    "protocol": "HTTP/2.0",
    "status": 302,
    "bytes": 0,
    "referrer": None,
    "user_agent": "Mozilla/5.0 (203.0.113.0/24)",  # masked by rows.py, whatever the wrapper
    "client_net": "2001:db8::/48",
    "server": "web1",
}

HEADERS = {
    "rfc3164": "<134>Feb  6 12:00:01 web01 nginx: ",
    "rfc3164-pid": "<190>Feb 16 02:00:01 web01 nginx[2869]: ",
    "rfc3164-no-pri": "Feb  6 12:00:01 web01 apache2[123]: ",
    "rfc3164-no-host": "<134>Feb  6 12:00:01 nginx: ",
    "rfc3164-fqdn-tag-path": "Sep 15 16:13:46 ip-192-0-2-4.eu-west-1.compute.internal docker/4f2a9c[99]: ",
    "rfc5424-nil-sd": "<134>1 2026-02-06T12:00:01.123Z web01 nginx 123 - - ",
    "rfc5424-sd": '<165>1 2026-02-06T12:00:01.003+01:00 web01.example.com nginx - ID47 [exampleSDID@32473 iut="3" eventSource="App\\"]x"][origin ip="192.0.2.4"] ',
    "rfc5424-nil-time-bom": "<134>1 - web01 nginx - - - \ufeff",
    "rsyslog-file": "2026-02-06T12:00:01.123456+00:00 web01 nginx: ",
    "rsyslog-forward": "<134>2026-02-06T12:00:01+01:00 web01 nginx[9]: ",
    "journald-short": "Feb 06 12:00:01 web01 nginx[9]: ",
    "journald-short-iso": "2026-02-06T12:00:01+0000 web01 nginx[9]: ",
}


@pytest.mark.parametrize("header", HEADERS.values(), ids=HEADERS.keys())
@pytest.mark.parametrize(
    ("inner", "line", "row"),
    [("combined", COMBINED, COMBINED_ROW), ("vhost_combined", VHOST, VHOST_ROW)],
    ids=["combined", "vhost_combined"],
)
def test_a_syslog_header_is_stripped(header: str, inner: str, line: str, row: dict[str, Any]) -> None:
    assert parse_one(header + line, f"syslog:{inner}") == row


CRI = "2025-12-31T17:37:40.493035218+01:00 stdout F "


@pytest.mark.parametrize(
    ("fmt", "line"),
    [
        ("syslog:combined", COMBINED),  # no header: not ours
        ("syslog:combined", "<134>Feb  6 12:00:01 web01 nginx: not a log line"),  # the inner format decides
        ("syslog:combined", "Feb  6 12:00:01 " + COMBINED),  # a header without host/tag is no header
        ("syslog:vhost_combined", "<134>Feb  6 12:00:01 " + VHOST),  # 'www.example.com:443' is no tag
        ("syslog:combined", "<134>2 2026-02-06T12:00:01Z web01 nginx - - - " + COMBINED),  # version 2
        ("cri:combined", COMBINED),
        ("cri:combined", CRI.replace(" F ", " P ") + COMBINED),  # a partial line: pieces are not rejoined
        ("cri:combined", CRI.replace("stdout", "stdin") + COMBINED),
    ],
)
def test_a_line_without_its_header_is_unparseable(fmt: str, line: str) -> None:
    assert parse_one(line, fmt) == "unparseable"


def test_cri_wraps_combined_and_keeps_offsets_and_non_ascii() -> None:
    lines = [
        CRI + COMBINED + "\n",
        "junk\n",
        CRI.replace("stdout", "stderr") + COMBINED.replace("curl/8", "curl/8 ü") + "\r\n",
        CRI + COMBINED,  # a last line without terminator
    ]
    frame = pl.DataFrame(
        {"line": lines, "offset": [0, 300, 400, 700], "non_ascii": [False, False, True, False]}
    )
    seen: list[pl.DataFrame] = []

    class Spy:
        name, spec = "spy", "spy"

        def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Any:
            seen.append(lines)
            return formats.resolve("combined").parse(lines, ctx)

    fmt = wrapped.Wrapped("cri:spy", "cri:spy", "cri", Spy())  # type: ignore[arg-type]
    fields = fmt.parse(frame, FieldContext(agents=lambda values, codes: values.gather(codes)))
    got = fields.frame.sort("offset")
    assert got.get_column("offset").to_list() == [0, 400, 700]
    assert got.get_column("user_agent").to_list() == ["curl/8", "curl/8 ü", "curl/8"]
    assert fields.unparsed.to_list() == [300]
    (inner,) = seen
    assert inner.get_column("line").to_list() == [
        COMBINED + "\n",
        COMBINED.replace("curl/8", "curl/8 ü") + "\r\n",
        COMBINED,
    ]
    assert inner.get_column("non_ascii").to_list() == [False, True, False]  # as given


def test_cri_wraps_envoy_json_exactly_as_the_bare_lines() -> None:
    if formats.get("envoy_json") is None:
        pytest.skip("envoy_json is not registered")
    text = (THIRD_PARTY_LOGS / "crowdsec-hub-tests/envoy-logs__envoy.log").read_text()
    lines = text.splitlines(keepends=True)
    offsets = list(range(0, 100 * len(lines), 100))
    framed = pl.DataFrame({"line": lines, "offset": offsets, "non_ascii": [False] * len(lines)})
    bare = framed.with_columns(line=pl.Series([ln.split(" stdout F ", 1)[1] for ln in lines]))
    ctx = FieldContext(agents=lambda values, codes: values.gather(codes))
    got = formats.resolve("cri:envoy_json").parse(framed, ctx)
    want = formats.resolve("envoy_json").parse(bare, ctx)
    assert got.frame.height >= 6  # the JSON lines of the sample (the others are Envoy's text format)
    assert got.frame.sort("offset").equals(want.frame.sort("offset"))
    assert sorted(got.unparsed.to_list()) == sorted(want.unparsed.to_list())


def test_names_specs_and_errors() -> None:
    fmt = formats.resolve("syslog:combined")
    assert (fmt.name, fmt.spec) == ("syslog:combined", "syslog:combined")
    custom = formats.resolve('cri:%h %l %u %t "%r" %>s %b')
    assert (custom.name, custom.spec) == (
        "custom",
        'cri:%h %l %u %t "%r" %>s %b',
    )  # the manifest keeps the spec
    assert formats.is_format_spec("syslog:combined") and formats.is_format_spec("cri:%h %t")
    assert (
        formats.resolve("syslog:cri:combined").name == "syslog:cri:combined"
    )  # a wrapper may wrap a wrapper
    with pytest.raises(FormatError, match="unknown log format 'nope'"):
        formats.resolve("syslog:nope")
    with pytest.raises(FormatError, match="not a wrapped format"):
        wrapped.compile_wrapped("syslog:", "custom")
    if formats.get("w3c") is not None:
        with pytest.raises(FormatError, match="header lines"):
            formats.resolve("syslog:w3c")


def test_a_syslog_file_ingests_without_storing_any_address(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "syslog.log"
    log.write_text(
        "<134>Feb  6 12:00:01 web01 nginx: " + COMBINED + "\n"
        "<134>Feb  6 12:00:02 198.51.100.77 nginx: " + COMBINED.replace("192.0.2.10", "203.0.113.50") + "\n"
        "Feb  6 12:00:03 web01 kernel: [12.3] eth0 link up 198.51.100.9\n"
    )
    report = ingest_paths(store, [log], fmt="syslog:combined")
    assert (report.rows, report.rejects) == (2, {"unparseable": 1})
    rows = store_rows(store)
    assert sorted(str(r["client_net"]) for r in rows) == ["192.0.2.0/24", "203.0.113.0/24"]
    stored = repr(rows) + repr(store_rejects(store))
    for address in ("192.0.2.10", "203.0.113.50", "198.51.100.9", "198.51.100.77"):
        assert address not in stored
