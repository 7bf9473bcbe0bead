"""Apache's ``%{FORMAT}t``: strftime forms, sec/msec/usec, the fractions, begin:/end:, combinations.

Formats from mod_log_config's documentation; lines with documentation addresses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from pipeline.errors import FormatError
from pipeline.ingest.formats import NAMED_FORMATS
from pipeline.ingest.formats.apache import compile_format
from tests.conftest import ingest_paths, store_rows
from tests.ingest.test_formats import parse_one

REQ = '"GET /a?b=1 HTTP/1.1" 200 5'
AT = datetime(2026, 2, 6, 12, 0, 1, tzinfo=UTC)


def at(us: int = 0, hour: int = 12) -> datetime:
    return AT.replace(microsecond=us, hour=hour)


@pytest.mark.parametrize(
    ("spec", "time_text", "expected"),
    [
        # Apache's documented example: three directives, one instant
        ("[%{%d/%b/%Y %H:%M:%S}t.%{msec_frac}t %{%z}t]", "[06/Feb/2026 13:00:01.123 +0100]", at(123000)),
        ("[%{%d/%b/%Y %H:%M:%S}t.%{usec_frac}t %{%z}t]", "[06/Feb/2026 13:00:01.000042 +0100]", at(42)),
        ("%{%Y-%m-%dT%H:%M:%S%z}t", "2026-02-06T11:00:01-0100", at(hour=12)),
        ("[%{%d/%b/%Y:%H:%M:%S %z}t]", "[06/Feb/2026:12:00:01 +0000]", at()),
        ('"%{%F %T}t"', '"2026-02-06 12:00:01"', at()),  # no %z: UTC (see apache_time.timestamp)
        ("%{%a %e %b %Y %I:%M:%S %p}t", "Fri  6 Feb 2026 12:00:01 PM", at()),
        ("%{%Y %j %R:%S}t", "2026 037 12:00:01", at()),
        ("%{%D %T}t", "02/06/26 12:00:01", at()),
        ("%{%s}t", "1770379201", at()),
        ("%{sec}t", "1770379201", at()),
        ("%{msec}t", "1770379201123", at(123000)),
        ("%{usec}t", "1770379201123456", at(123456)),
        ("%{sec}t.%{usec_frac}t", "1770379201.000001", at(1)),
        ("%{sec}t.%{msec_frac}t", "1770379201.999", at(999000)),
        ("%{msec}t.%{msec_frac}t", "1770379201123.999", at(123000)),  # msec is exact already
        ("%{begin:sec}t", "1770379201", at()),
        ("%{end:msec}t", "1770379201500", at(500000)),  # only end times: the end time
        ("%{end:sec}t %{begin:sec}t", "1770379299 1770379201", at()),  # the begin time wins
        ("%{end:%F %T}t %{%F %T}t", "2026-02-06 12:01:39 2026-02-06 12:00:01", at()),
        ("%t %{msec_frac}t", "[06/Feb/2026:12:00:01 +0000] 250", at(250000)),  # plain %t as a part
        ("%{msec_frac}t %t", "250 [06/Feb/2026:13:00:01 +0100]", at(250000)),
        ("%{%Y-%m-%d}t %{%H:%M:%S}t", "2026-02-06 12:00:01", at()),
        ("%{%F %T %%}t", "2026-02-06 12:00:01 %", at()),  # '%%' is a literal '%'
        ("%{%%Y%Y}t", "%Y2026 12:00", None),  # ... not a conversion: this line does not match
    ],
)
def test_custom_time_directives(spec: str, time_text: str, expected: datetime | None) -> None:
    row = parse_one(f"192.0.2.1 {time_text} {REQ}", f'%h {spec} "%r" %>s %b')
    if expected is None:
        assert row == "unparseable"
        return
    assert isinstance(row, dict), row
    assert (row["ts"], row["path"], row["query"], row["status"], row["client_net"]) == (
        expected, "/a", "b=1", 200, "192.0.2.0/24",
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "time_text"),
    [
        ("%{%F %T}t", "2026-02-30 12:00:01"),  # no such day
        ("%{%F %T%z}t", "2026-02-06 12:00:01+9999"),
        ("%{sec}t", "999999999999"),  # year 33658: beyond what a datetime holds
        ("%{usec}t", "999999999999999999"),
        ("%{%d/%b/%Y %T}t", "06/Xyz/2026 12:00:01"),
    ],
)
def test_a_time_that_does_not_parse_is_a_bad_timestamp(spec: str, time_text: str) -> None:
    assert parse_one(f"192.0.2.1 {time_text} {REQ}", f'%h {spec} "%r" %>s %b') == "bad_timestamp"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("%h %{%Z}t", "%Z is not supported"),  # a zone name is no offset
        ("%h %{%c}t", "%c is not supported"),  # the locale's form
        ("%h %{literal}t", "no time conversion"),
        ("%h %{msec_frac}t", "a fraction of a second needs a time"),
        ("%h %{end:usec_frac}t", "a fraction of a second needs a time"),
    ],
)
def test_unusable_time_formats_are_refused(spec: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        compile_format(spec)


def test_plain_t_keeps_its_fast_path() -> None:
    for spec in NAMED_FORMATS.values():
        fmt = compile_format(spec)
        assert fmt.time_parts == ()
        assert "(?P<ts>\\[[^\\]]+\\])" in fmt.regex and "ts_" not in fmt.regex


def test_a_combined_format_with_milliseconds_ingests(tmp_path: Path, store: Path) -> None:
    spec = '%h %l %u [%{%d/%b/%Y:%H:%M:%S}t.%{msec_frac}t %{%z}t] "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'
    log = tmp_path / "ms.log"
    log.write_text(
        '203.0.113.7 - - [06/Feb/2026:23:59:59.999 -0100] "GET /late HTTP/1.1" 200 5 "-" "curl/8"\n'
        '203.0.113.7 - - [06/Feb/2026:12:00:01 +0000] "GET /no-ms HTTP/1.1" 200 5 "-" "curl/8"\n'
    )
    report = ingest_paths(store, [log], fmt=spec)
    assert (report.rows, report.rejects) == (1, {"unparseable": 1})
    (row,) = store_rows(store)
    # -0100 at 23:59:59.999 is the next UTC day: partitioned by the UTC instant
    assert row["ts"] == datetime(2026, 2, 7, 0, 59, 59, 999000, tzinfo=UTC)
    assert row["client_net"] == "203.0.113.0/24"
