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
from pipeline.ingest.formats import NAMED_FORMATS, choose_format, detect, resolve
from pipeline.ingest.formats.apache import compile_format
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from tests.conftest import THIRD_PARTY_LOGS, third_party_log_files

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
        assert [row.pop(c) for c in ("request_id", "upstream", "edge_location")] == [None] * 3
        if row["tls"] is None:
            del row["tls"]
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
    # nginx.conf's "main" as nginx.org's packages ship it
    "nginx_main": (
        '192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" "198.51.100.7, 192.0.2.10"',
        {
            "client": "192.0.2.10",
            "ts": "[10/Oct/2000:13:55:36 -0700]",
            "request": "GET /apache_pb.gif HTTP/1.0",
            "status": "200",
            "bytes": "2326",
            "referrer": "http://www.example.com/start.html",
            "user_agent": "Mozilla/4.08 [en] (Win98; I ;Nav)",
            "forwarded_for": "198.51.100.7, 192.0.2.10",
        },
    ),
    # mod_ssl's documentation example shape (SSLRequestLog), with a documentation address
    "ssl_request": (
        '[10/Oct/2000:13:55:36 -0700] 192.0.2.10 TLSv1.2 ECDHE-RSA-AES128-GCM-SHA256 "GET /apache_pb.gif HTTP/1.0" 2326',
        {
            "ts": "[10/Oct/2000:13:55:36 -0700]",
            "client": "192.0.2.10",
            "tls": "TLSv1.2",
            "request": "GET /apache_pb.gif HTTP/1.0",
            "bytes": "2326",
        },
    ),
    # Traefik's CLF access log (tests/data/third_party/logs/crowdsec-hub-tests/traefik_clf__traefik_clf.log)
    "traefik_clf": (
        '192.0.2.10 - frank [10/Oct/2000:13:55:36 -0700] "GET /apache_pb.gif HTTP/1.0" 200 2326 '
        '"http://www.example.com/start.html" "Mozilla/4.08 [en] (Win98; I ;Nav)" 240 "test@docker" '
        '"http://172.17.0.3:80" 1ms',
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
        "referrer": None if name in ("common", "ssl_request") else "http://www.example.com/start.html",
        "user_agent": None if name in ("common", "ssl_request") else "Mozilla/4.08 [en] (Win98; I ;Nav)",
        "client_net": "192.0.2.0/24",
        "server": "web1",
    }
    if name == "ssl_request":  # no status logged; the TLS protocol is
        expected.update(status=None, tls="TLSv1.2")
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
        # %{FORMAT}t is supported (tests/ingest/test_time_directives.py); a zone name is not
        pytest.param('%h %{%d/%b/%Y:%H:%M:%S %Z}t "%r" %>s %b', "time format", id="custom-time-format"),
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


# What auto-detection makes of every log in the repository: (format, recognised). Low confidence
# (recognised False) is a file of mixed formats or junk: read by the best guess, the run exits 10.
DETECTED = {
    "apachelogs-tests/vhost_combined.log": ("vhost_combined", True),  # includes the line "Bad line"
    "basjes-hackers/hackers-access.log": ("combined", True),
    "beats-filebeat-tests/apache-access-ssl-request.log": ("ssl_request", True),
    "beats-filebeat-tests/apache-access-test-vhost.log": ("vhost_combined", True),
    "beats-filebeat-tests/apache-access-test.log": ("combined", True),
    "beats-filebeat-tests/iis-access-test-iis-7.5.log": ("w3c", True),
    "beats-filebeat-tests/iis-access-test-ipv6zone.log": ("w3c", True),
    "beats-filebeat-tests/iis-access-test-x-forward-for.log": ("w3c", True),
    "beats-filebeat-tests/iis-access-test.log": ("w3c", True),
    "beats-filebeat-tests/nginx-access-access.log": ("combined", True),
    "beats-filebeat-tests/nginx-access-test-with-host.log": ("vhost_combined", True),
    # X-Forwarded-For lists in the remote_addr slot on 4 of 7 lines
    "beats-filebeat-tests/nginx-access-test.log": ("combined", False),
    "crowdsec-hub-tests/CVE-2022-26134__CVE-2022-26134.log": ("combined", True),
    "crowdsec-hub-tests/CVE-2022-46169__CVE-2022-46169.log": ("combined", True),
    "crowdsec-hub-tests/CVE-2024-38475__CVE-2024-38475.log": ("combined", True),
    "crowdsec-hub-tests/apache-cve-2021-41773__apache-cve-2021-41773.log": ("common", True),
    "crowdsec-hub-tests/apache-http-probing__apache-http-probing.log": ("common", True),
    "crowdsec-hub-tests/apache2-logs__apache2-logs.log": ("combined", True),
    "crowdsec-hub-tests/apache2-malformed__apache2-logs.log": ("combined", True),
    "crowdsec-hub-tests/apache_log4j2_cve-2021-44228__apache_log4j2_cve-2021-44228.log": ("combined", True),
    "crowdsec-hub-tests/aws-alb-logs__aws-alb-logs.log": ("alb", True),
    "crowdsec-hub-tests/aws-cloudfront-logs__aws-cloudfront-logs.log": ("cloudfront", True),
    # a vhost log with a request id between %l and %u on half its lines
    "crowdsec-hub-tests/bunkerweb-http-malformed__bunkerweb-http-malformed.log": ("vhost_combined", False),
    "crowdsec-hub-tests/caddy-logs__caddy-logs.log": ("caddy", True),
    "crowdsec-hub-tests/calibre-web-whitelist__calibre-web-logs.log": ("combined", True),
    "crowdsec-hub-tests/envoy-logs__envoy.log": ("cri:envoy_json", True),  # 6 JSON lines, 4 text lines
    "crowdsec-hub-tests/f5-big-ip-cve-2020-5902__f5-big-ip-cve-2020-5902.log": ("combined", True),
    "crowdsec-hub-tests/http-bf-wordpress-bf__http-bf-wordpress-bf.log": ("syslog:combined", True),
    "crowdsec-hub-tests/http-dos-invalid-http-versions__http-dos-invalid-http-versions.log": (
        "combined",
        True,
    ),
    "crowdsec-hub-tests/http-dos-switching-ua__http-dos-switching-ua.log": ("combined", True),
    "crowdsec-hub-tests/http-wordpress-scan__http-wordpress-scan.log": ("combined", True),
    "crowdsec-hub-tests/http-wordpress_user-enum__http-wordpress_user-enum.log": ("combined", True),
    "crowdsec-hub-tests/ipv6-postoverflow__ipv6-postoverflow.log": ("combined", True),
    "crowdsec-hub-tests/nginx-http-malformed__nginx_http-logs.log": ("combined", True),
    "crowdsec-hub-tests/nginx-http-path-traversal__nginx-http-path-traversal.log": ("combined", True),
    "crowdsec-hub-tests/nginx-http-sensitive-files__nginx-http-sensitive-files.log": ("combined", True),
    "crowdsec-hub-tests/nginx-http-sqli-probing__nginx-http-sqli-probing.log": ("combined", True),
    "crowdsec-hub-tests/nginx-http-xss-probing__nginx-http-xss-probing.log": ("combined", True),
    "crowdsec-hub-tests/nginx-proxy-manager-malformed__nginx_http-logs.log": ("combined", True),
    # combined, vhost-prefixed and nginx error-log lines mixed
    "crowdsec-hub-tests/nginx_http-logs__nginx_http-logs.log": ("combined", False),
    "crowdsec-hub-tests/overseerr-whitelist__overseerr-logs.log": ("combined", True),
    "crowdsec-hub-tests/thinkphp-cve-2018-20062__thinkphp-cve-2018-20062.log": ("combined", True),
    "crowdsec-hub-tests/traefik_clf__traefik_clf.log": ("traefik_clf", True),
    "crowdsec-hub-tests/traefik_json__traefik_json.log": ("traefik_json", True),
    "elastic-apache/apache_logs": ("combined", True),
    "lnav-tests/logfile_access_log.1": ("combined", True),
    "lnav-tests/logfile_bad_access_log.0": ("combined", True),
    "lnav-tests/logfile_caddy_log.1": ("caddy", True),
    "lnav-tests/logfile_cloudflare.json": ("cloudflare", True),
    # vhost_combined with a session id as %l, a user and a trailing %D: no built-in format
    "lnav-tests/logfile_regexp_access_log.0": ("unrecognised", False),
    # nginx's "main": combined + "$http_x_forwarded_for"
    "lnav-tests/logfile_shop_access_log.0": ("nginx_main", True),
    "lnav-tests/logfile_w3c.0": ("w3c", True),
    "lnav-tests/logfile_w3c.1": ("w3c", True),
    "lnav-tests/logfile_w3c.2": ("w3c", True),
    "lnav-tests/logfile_w3c.3": ("w3c", True),
    "lnav-tests/logfile_w3c.4": ("w3c", True),
    "lnav-tests/logfile_w3c.5": ("unrecognised", False),  # 18 values under a #Fields: of 6
    "lnav-tests/logfile_w3c.6": ("w3c", True),
    "nasa-http-1995/NASA_access_log_Aug95.first20000.log": ("common", True),
}


def test_the_detection_table_covers_every_log_in_the_repository() -> None:
    assert set(DETECTED) == {str(p.relative_to(THIRD_PARTY_LOGS)) for p in third_party_log_files()}


@pytest.mark.parametrize("relpath", sorted(DETECTED))
def test_detect_on_real_samples(relpath: str) -> None:
    expected, recognised = DETECTED[relpath]
    choice = choose_format("auto", str(THIRD_PARTY_LOGS / relpath))
    assert (choice.fmt.name, choice.recognised) == (expected, recognised)
    assert (detect(sample(relpath)) is None) == (not recognised)
    if recognised:  # the detected format really parses the sample (its header lines aside)
        lines = [ln for ln in sample(relpath) if not ln.startswith("#")]
        assert choice.fmt.score(sample(relpath))[0] >= 0.5 * len(lines)


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
