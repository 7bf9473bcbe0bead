"""LogFormat strings → regex: named formats, every supported directive, errors, auto-detection.

Invented lines use documentation addresses only (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24,
2001:db8::/32). Samples for auto-detection are read from the third-party logs in tests/data/third_party/logs.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.errors import FormatError
from pipeline.ingest.formats import NAMED_FORMATS, detect, resolve
from pipeline.ingest.formats.apache import compile_format
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from tests.conftest import THIRD_PARTY_LOGS

TS = "[10/Oct/2000:13:55:36 -0700]"
TS_UTC = datetime(2000, 10, 10, 20, 55, 36, tzinfo=UTC)


def parse_one(line: str, fmt: str, domain: str | None = None) -> dict[str, Any] | str:
    """The row dict of one line, or the reject reason."""
    settings = ParseSettings(
        domain=domain,
        server="web1",
        sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
    )
    batch = parse_lines(
        split_block(line.encode() + b"\n", 0, 65536), resolve(fmt), settings, privacy.ClientMasker()
    )
    assert batch.rows.height + batch.rejects.height == 1
    if batch.rows.height:
        row = batch.rows.to_dicts()[0]
        # The parser leaves the enrichment columns null; ingest fills them (tests/privacy/test_enrich.py).
        assert [row.pop(c) for c in ("client_id", "country", "asn", "as_org", "geo_db")] == [None] * 5
        # Apache formats log the peer only (no forwarding chain, request id, TLS, upstream or edge)
        assert row.pop("peer_net") == row["client_net"]
        assert [row.pop(c) for c in ("request_id", "tls", "upstream", "edge_location")] == [None] * 4
        return row
    return str(batch.rejects.get_column("reason")[0])


def sample(relpath: str, n: int = 200) -> list[str]:
    text = (THIRD_PARTY_LOGS / relpath).read_bytes().decode("utf-8", "replace")
    return [ln for ln in text.splitlines() if ln.strip()][:n]


# ---------------------------------------------------------------------------------------------------
# Named formats
# ---------------------------------------------------------------------------------------------------

CANONICAL = {
    # Apache's documentation examples (with a documentation address).
    "common": (
        '192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326',
        {
            "client": "192.0.2.10",
            "ts": "[10/Oct/2000:13:55:36 -0700]",
            "request": "GET /apache_pb.gif HTTP/1.0",
            "status": "200",
            "bytes": "2326",
        },
    ),
    "combined": (
        '192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
        {
            "client": "192.0.2.10",
            "ts": "[10/Oct/2000:13:55:36 -0700]",
            "request": "GET /apache_pb.gif HTTP/1.0",
            "status": "200",
            "bytes": "2326",
            "referrer": "http://www.example.com/start.html",
            "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
        },
    ),
    "vhost_combined": (
        'www.example.com:80 192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 '
        '2326 "http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)"',
        {
            "domain": "www.example.com",
            "client": "192.0.2.10",
            "ts": "[10/Oct/2000:13:55:36 -0700]",
            "request": "GET /apache_pb.gif HTTP/1.0",
            "status": "200",
            "bytes": "2326",
            "referrer": "http://www.example.com/start.html",
            "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
        },
    ),
}


def test_canonical_table_covers_every_named_format() -> None:
    assert set(CANONICAL) == set(NAMED_FORMATS)


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_named_format_regex_matches_canonical_example(name: str) -> None:
    line, groups = CANONICAL[name]
    fmt = resolve(name)
    assert fmt.name == name
    assert fmt.spec == NAMED_FORMATS[name]
    assert fmt.fields == tuple(groups)  # field order follows the LogFormat string
    assert fmt.has_domain == ("domain" in groups)
    m = re.fullmatch(fmt.regex, line)  # the generated syntax is valid Python re as well as Rust regex
    assert m is not None
    assert m.groupdict() == groups


@pytest.mark.parametrize("name", sorted(CANONICAL))
def test_named_format_parses_canonical_example(name: str) -> None:
    line, _ = CANONICAL[name]
    got = parse_one(line, name)
    assert isinstance(got, dict), got
    expected = {
        "ts": TS_UTC,
        "domain": "www.example.com" if name == "vhost_combined" else None,
        "method": "GET",
        "path": "/apache_pb.gif",
        "query": None,
        "protocol": "HTTP/1.0",
        "status": 200,
        "bytes": 2326,
        "referrer": None if name == "common" else "http://www.example.com/start.html",
        "user_agent": None if name == "common" else "Mozilla/4.08 [en] (Win98; I ;Nav)",
        "client_net": "192.0.2.0/24",
        "server": "web1",
    }
    assert got == expected
    assert "frank" not in str(got)  # %u (remote user) is personal data and never stored


def test_resolve_named_equals_compiling_its_spec() -> None:
    for name, spec in NAMED_FORMATS.items():
        assert resolve(name).regex == compile_format(spec).regex
        assert resolve(spec).regex == resolve(name).regex


# ---------------------------------------------------------------------------------------------------
# Directives
# ---------------------------------------------------------------------------------------------------

DIRECTIVES = [
    # (LogFormat, line, expected subset of the row)
    pytest.param(
        "%h %l %u %t %>s",
        f"192.0.2.10 - - {TS} 200",
        {"client_net": "192.0.2.0/24", "ts": TS_UTC, "status": 200, "method": None, "path": None},
        id="h-l-u-t-final-status",
    ),
    pytest.param(
        "%a %l %u %t %s",
        f"2001:db8:aa:bb::5 - jo {TS} 404",
        {"client_net": "2001:db8:aa::/48", "status": 404},
        id="a-ipv6-s",
    ),
    pytest.param(
        "%h %t %<s",
        f"www.example.net {TS} 301",
        {"client_net": None, "status": 301},
        id="h-hostname-original-status",
    ),
    pytest.param(
        '%h %l %u %t "%r" %>s %b',
        f'192.0.2.10 - - {TS} "POST /login?next=/account&password=hunter2 HTTP/1.1" 302 -',
        {
            "method": "POST",
            "path": "/login",
            "query": "next=/account&password=REDACTED",
            "protocol": "HTTP/1.1",
            "status": 302,
            "bytes": None,
        },
        id="r-query-split-b-dash",
    ),
    pytest.param(
        '%h %l %u %t "%r" %>s %b',
        f'192.0.2.10 - - {TS} "GET /a?b?c HTTP/1.1" 200 0',
        {"path": "/a", "query": "b?c", "bytes": 0},
        id="r-split-at-first-question-mark",
    ),
    pytest.param(
        "%h %t %m %U%q %H %>s %b",
        f"192.0.2.10 {TS} GET /search?q=shoes&page=2 HTTP/1.1 200 512",
        {"method": "GET", "path": "/search", "query": "q=shoes&page=2", "protocol": "HTTP/1.1", "bytes": 512},
        id="m-U-q-H-unquoted",
    ),
    pytest.param(
        "%h %t %m %U%q %H %>s %b",
        f"192.0.2.10 {TS} GET /search HTTP/1.1 200 512",
        {"method": "GET", "path": "/search", "query": None, "protocol": "HTTP/1.1"},
        id="m-U-q-H-no-query",
    ),
    pytest.param(
        '%h %l %u %t "%m %U%q %H" %>s %b',
        f'192.0.2.10 - - {TS} "GET /search?q=shoes&page=2 HTTP/1.1" 200 512',
        {"method": "GET", "path": "/search", "query": "q=shoes&page=2", "protocol": "HTTP/1.1", "bytes": 512},
        id="m-U-q-H-quoted",
    ),
    pytest.param(
        '%h %t "%r" %>s %B',
        f'192.0.2.10 {TS} "HEAD / HTTP/1.0" 200 0',
        {"method": "HEAD", "bytes": 0},
        id="B-zero",
    ),
    pytest.param(
        '%h %t "%r" %>s %I %O',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 431 5120',
        {"bytes": 5120},
        id="I-not-stored-O-is-bytes",
    ),
    pytest.param(
        '%h %t "%r" %>s %O',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 408 -',
        {"status": 408, "bytes": None},
        id="O-dash",
    ),
    pytest.param(
        '%h %t "%r" %>s %I',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 431',
        {"bytes": None},
        id="I-alone-is-not-bytes-sent",
    ),
    pytest.param(
        '%v %h %l %u %t "%r" %>s %b',
        f'www.example.com 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
        {"domain": "www.example.com", "client_net": "192.0.2.0/24"},
        id="v",
    ),
    pytest.param(
        '%V:%p %a %l %u %t "%r" %s %B %D %T',
        f'WWW.Example.ORG.:443 2001:db8::9 - - {TS} "GET / HTTP/1.1" 200 0 1234 0',
        {"domain": "www.example.org", "client_net": "2001:db8::/48", "bytes": 0},
        id="V-port-D-T-normalised-domain",
    ),
    pytest.param(
        '%v:%p %h %l %u %t "%r" %>s %b',
        f'shop.example.com:8443 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
        {"domain": "shop.example.com"},
        id="v-colon-p",
    ),
    pytest.param(
        '%v:%p %h %l %u %t "%r" %>s %b',
        f'shop.example.com 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
        {"domain": "shop.example.com", "client_net": "192.0.2.0/24"},
        id="v-colon-p-port-omitted",
    ),
    pytest.param(
        '%v:%p %h %l %u %t "%r" %>s %b',
        f'[2001:db8::80]:443 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
        # an IP-literal vhost is masked like any address (%V and Host come from the client)
        {"domain": "[2001:db8::/48]", "client_net": "192.0.2.0/24"},
        id="v-ipv6-literal-with-port",
    ),
    pytest.param(
        '%h %t "%r" %>s %b %D',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 183520',
        {"status": 200, "bytes": 1},
        id="D",
    ),
    pytest.param(
        '%h %t "%r" %>s %b %T',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 2',
        {"status": 200, "bytes": 1},
        id="T",
    ),
    pytest.param(
        '%h %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "https://www.example.com/?q=1" "curl/8.4.0"',
        {"referrer": "https://www.example.com/?q=1", "user_agent": "curl/8.4.0"},
        id="referer-user-agent",
    ),
    pytest.param(
        '%h %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1',
        {"referrer": None, "user_agent": None, "bytes": 1},
        id="referer-user-agent-absent",
    ),
    pytest.param(
        '%h %t "%r" %>s %b "%{Host}i"',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "WWW.Example.COM:8443"',
        {"domain": "www.example.com"},
        id="host-header-lowercased-port-stripped",
    ),
    pytest.param(
        '%h %t "%r" %>s %b "%{Host}i"',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "[2001:db8::80]:8443"',
        {"domain": "[2001:db8::/48]"},  # masked: the Host header is the client's text
        id="host-header-ipv6-literal",
    ),
    pytest.param(
        '%h %t "%r" %>s %b "%{Host}i"',
        f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "-"',
        {"domain": None},
        id="host-header-dash",
    ),
    pytest.param(
        '%{X-Forwarded-For}i %h %l %u %t "%r" %>s %b',
        f'203.0.113.9 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
        {"client_net": "192.0.2.0/24"},
        id="xff-unquoted-not-stored",
    ),
    pytest.param(
        '%h %l %u %t "%r" %>s %b "%{X-Forwarded-For}i"',
        f'192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1 "203.0.113.9, 198.51.100.7"',
        {"client_net": "192.0.2.0/24", "referrer": None, "user_agent": None},
        id="xff-quoted-list-not-stored",
    ),
    pytest.param(
        '%h %l %u %t "%r" %>s %b 100%%',
        f'192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1 100%',
        {"status": 200, "bytes": 1},
        id="percent-literal",
    ),
]


@pytest.mark.parametrize(("spec", "line", "expected"), DIRECTIVES)
def test_directive(spec: str, line: str, expected: dict[str, Any]) -> None:
    got = parse_one(line, spec)
    assert isinstance(got, dict), f"{spec!r} rejected {line!r}: {got}"
    assert got["ts"] == TS_UTC
    assert {k: got[k] for k in expected} == expected


@pytest.mark.parametrize(
    ("spec", "line", "secret"),
    [
        ('%h %l %u %t "%r" %>s %b', f'192.0.2.10 - alice {TS} "GET / HTTP/1.1" 200 1', "alice"),
        ('%h %l %u %t "%r" %>s %b', f'192.0.2.10 identd-bob - {TS} "GET / HTTP/1.1" 200 1', "identd-bob"),
        (
            '%{X-Forwarded-For}i %h %l %u %t "%r" %>s %b',
            f'203.0.113.9 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1',
            "203.0.113",
        ),
        (
            '%h %l %u %t "%r" %>s %b "%{X-Forwarded-For}i"',
            f'192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1 "203.0.113.9"',
            "203.0.113",
        ),
        (
            '%h %t "%r" %>s %b "%{Cookie}i"',
            f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "session=s3cr3t"',
            "s3cr3t",
        ),
    ],
    ids=["u", "l", "xff-unquoted", "xff-quoted", "other-header"],
)
def test_unstored_directives_leave_no_trace(spec: str, line: str, secret: str) -> None:
    got = parse_one(line, spec)
    assert isinstance(got, dict), got
    assert secret not in repr(got)


@pytest.mark.parametrize(
    ("spec", "line", "reason"),
    [
        ('%h %t "%r" %>s %B', f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 -', "unparseable"),  # %B never '-'
        ('%h %t "%r" %>s %b', f'192.0.2.10 {TS} "GET / HTTP/1.1" 2000 1', "unparseable"),  # 3-digit status
        (
            '%v:%p %h %t "%r" %>s %b',
            f'www.example.com:http 192.0.2.10 {TS} "GET / HTTP/1.1" 200 1',
            "unparseable",
        ),
        ('%h %t "%r" %>s %b', f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 trailing', "unparseable"),
        ('%h %t "%r" %>s %b', f'192.0.2.10 {TS} "GET / HTTP/1.1" 200 1 "quoted extra field"', None),
    ],
    ids=["B-dash", "status-4-digits", "port-not-numeric", "unquoted-trailing-text", "quoted-extra-field-ok"],
)
def test_lines_not_matching_the_format(spec: str, line: str, reason: str | None) -> None:
    got = parse_one(line, spec)
    if reason is None:
        assert isinstance(got, dict), got
    else:
        assert got == reason


# ---------------------------------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        pytest.param('%h %l %u %t "%r" %>s %Z', "unsupported", id="unknown-directive"),
        pytest.param('%h %t "%r" %>s %b %{X-Thing}Z', "unsupported", id="unknown-directive-with-argument"),
        pytest.param('%h %l %u "%r" %>s %b', "%t", id="missing-t"),
        pytest.param("%h %l %u %>s %b", "%t", id="missing-t-no-quotes"),
        pytest.param('%h %l %u %t "%r %>s %b', "unbalanced", id="unbalanced-quote"),
        pytest.param('%h %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i', "unbalanced", id="unbalanced-tail"),
        pytest.param('%h %t "%r" %>s %b "', "unbalanced", id="dangling-quote"),
        pytest.param('%h %{%d/%b/%Y:%H:%M:%S %z}t "%r" %>s %b', "time format", id="custom-time-format"),
    ],
)
def test_invalid_format_raises(spec: str, message: str) -> None:
    with pytest.raises(FormatError, match=re.escape(message)):
        compile_format(spec)
    with pytest.raises(FormatError):
        resolve(spec)


@pytest.mark.parametrize("name", ["apache", "nginx", "combined2", ""])
def test_unknown_format_name_raises(name: str) -> None:
    with pytest.raises(FormatError, match="unknown log format"):
        resolve(name)


def test_format_error_exit_code() -> None:
    assert FormatError.exit_code == 5


# ---------------------------------------------------------------------------------------------------
# Auto-detection
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("relpath", "expected"),
    [
        ("apachelogs-tests/vhost_combined.log", "vhost_combined"),  # includes the line "Bad line"
        ("elastic-apache/apache_logs", "combined"),
        ("basjes-hackers/hackers-access.log", "combined"),
        ("lnav-tests/logfile_access_log.1", "combined"),
        # nginx combined + a trailing "$http_x_forwarded_for" field, which `combined` accepts and parses
        ("lnav-tests/logfile_shop_access_log.0", "combined"),
        ("nasa-http-1995/NASA_access_log_Aug95.first20000.log", "common"),
        ("lnav-tests/logfile_w3c.0", None),
        ("lnav-tests/logfile_w3c.1", None),
        ("lnav-tests/logfile_w3c.2", None),
        ("lnav-tests/logfile_w3c.3", None),
        ("lnav-tests/logfile_w3c.4", None),
        ("lnav-tests/logfile_w3c.5", None),
        ("lnav-tests/logfile_w3c.6", None),
        ("lnav-tests/logfile_caddy_log.1", None),
    ],
)
def test_detect_on_real_samples(relpath: str, expected: str | None) -> None:
    lines = sample(relpath)
    fmt = detect(lines)
    assert (fmt.name if fmt else None) == expected
    if fmt is not None:  # the detected format really parses the sample
        rx = re.compile(fmt.regex)
        assert sum(1 for ln in lines if rx.match(ln)) >= 0.8 * len(lines)


_COMMON = f'192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1'
_COMBINED = f'192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1 "-" "curl/8.4.0"'
_VHOST = f'www.example.com:80 192.0.2.10 - - {TS} "GET / HTTP/1.1" 200 1 "-" "curl/8.4.0"'


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([_COMMON] * 3, "common"),
        ([_COMBINED] * 3, "combined"),
        ([_VHOST] * 3, "vhost_combined"),
        ([_VHOST, _VHOST, "Bad line"], "vhost_combined"),
        ([_COMMON, _COMBINED], "combined"),  # a tie goes to the more specific format
        ([], None),
        (["Bad line", "#Fields: date time c-ip cs-method"], None),
    ],
    ids=["common", "combined", "vhost", "vhost-with-junk", "tie", "empty", "junk"],
)
def test_detect_on_invented_samples(lines: list[str], expected: str | None) -> None:
    fmt = detect(lines)
    assert (fmt.name if fmt else None) == expected


def test_detected_format_is_the_named_format() -> None:
    fmt = detect([_VHOST])
    assert fmt is not None
    assert fmt.regex == resolve("vhost_combined").regex
    assert fmt.fields == resolve("vhost_combined").fields
