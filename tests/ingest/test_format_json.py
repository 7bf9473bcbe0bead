"""The JSON-lines family (formats/jsonl.py): golden rows from real Caddy, Traefik, Envoy and Cloudflare
lines and hand-written nginx lines (escape=json and escape=default, from nginx's log_format docs),
junk, user-defined mappings and detection among the JSON formats."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import FormatError
from pipeline.ingest import formats
from pipeline.ingest.fields import FIELD_COLUMNS, OPTIONAL_COLUMNS, FieldContext, Fields
from pipeline.ingest.formats import jsonl, registry
from pipeline.ingest.formats.jsonl_decode import decode_layout
from tests.conftest import THIRD_PARTY_LOGS, ingest_paths, ip_tokens, store_rejects, store_rows

CROWDSEC = THIRD_PARTY_LOGS / "crowdsec-hub-tests"
LNAV = THIRD_PARTY_LOGS / "lnav-tests"
JSON_FORMATS = ("nginx_json", "caddy", "traefik_json", "envoy_json", "cloudflare")


def _utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def lines_of(path: Path, cri: bool = False) -> list[str]:
    """A sample file's lines; ``cri``: without the Kubernetes CRI prefix ("<time> stdout F ")."""
    lines = path.read_text().splitlines()
    return [ln.split(" ", 3)[3] if cri else ln for ln in lines if ln.strip()]


def parse(fmt: str, lines: list[str]) -> Fields:
    frame = pl.DataFrame(
        {
            "line": [ln + "\n" for ln in lines],
            "offset": [i * 1000 for i in range(len(lines))],
            "non_ascii": [not ln.isascii() for ln in lines],
        },
        schema={"line": pl.String, "offset": pl.Int64, "non_ascii": pl.Boolean},
    )
    fields = formats.resolve(fmt).parse(frame, FieldContext(agents=lambda d, c: d.gather(c)))
    columns = fields.frame.columns
    assert tuple(columns[: len(FIELD_COLUMNS)]) == FIELD_COLUMNS
    assert columns[len(FIELD_COLUMNS) :] == [c for c in OPTIONAL_COLUMNS if c in columns]
    # every line is exactly one of: a row, unparsed
    got = sorted([*fields.frame.get_column("offset").to_list(), *fields.unparsed.to_list()])
    assert got == frame.get_column("offset").to_list()
    # (rows come stage by stage, the fast stage's first: in the lines' order for the tables below)
    return Fields(frame=fields.frame.sort("offset"), unparsed=fields.unparsed.sort())


def row(fmt: str, line: str) -> dict[str, object]:
    fields = parse(fmt, [line])
    assert fields.unparsed.to_list() == [], line
    (only,) = fields.frame.drop("offset").to_dicts()
    return only


# ---------------------------------------------------------------------------------------------------
# Golden rows: (format, line, every field). Real lines first (addresses as the public samples have them).

_NONE = dict.fromkeys(("referrer", "query"))
GOLDEN: list[tuple[str, str, dict[str, object]]] = [
    (
        "caddy",
        lines_of(CROWDSEC / "caddy-logs__caddy-logs.log")[0],
        {"ts": _utc(2023, 9, 4, 15, 19, 51, 756500), "bad_field": False, "domain": "127.0.0.1",
         "method": "GET", "path": "/", "query": None, "protocol": "HTTP/1.0", "status": 0, "bytes": 0,
         "referrer": None, "user_agent": "curl/7.74.0", "client": "172.17.0.1",
         "forwarded_for": "127.0.0.1", "tls": None},
    ),
    (
        "caddy",  # HTTP/3 over TLS 1.3 (version 772), a Referer header, IPv6 peer
        lines_of(LNAV / "logfile_caddy_log.1")[3],
        {"ts": _utc(2024, 5, 26, 14, 16, 3, 414651), "bad_field": False, "domain": "mirrors.tnonline.net",
         "method": "GET", "path": "/res/browse.css", "query": None, "protocol": "HTTP/3.0", "status": 200,
         "bytes": 1577, "referrer": "https://mirrors.tnonline.net/gentoo/gentoo-portage/app-dicts/aspell-lt/",
         "user_agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/117.0.5938.60 Safari/537.36",
         "client": "240e:1:1::1234", "forwarded_for": None, "tls": "TLSv1.3"},
    ),
    (
        "traefik_json",
        lines_of(CROWDSEC / "traefik_json__traefik_json.log")[0],
        {"ts": _utc(2021, 12, 8, 14, 2, 43, 587782), "bad_field": False, "domain": "test.docker.localhost",
         "method": "GET", "path": "/594VAEoi.save", "query": None, "protocol": "HTTP/1.1", "status": 200,
         "bytes": 357, "referrer": None, "user_agent": "Nikto", "client": "172.17.0.1:39496",
         "forwarded_for": "172.17.0.1", "tls": None, "upstream": "172.17.0.3:80"},
    ),
    (
        "traefik_json",  # behind Cloudflare: ClientHost is Traefik's copy of X-Forwarded-For
        lines_of(CROWDSEC / "traefik_json__traefik_json.log")[6],
        {"ts": _utc(2025, 11, 28, 9, 21, 55, 645779), "bad_field": False, "domain": "example.com",
         "method": "OPTIONS", "path": "/_matrix/client/v3/sync", "query": None, "protocol": "HTTP/2.0",
         "status": 204, "bytes": 0, "referrer": None, "user_agent": None, "client": "172.71.122.85:11029",
         "forwarded_for": "192.168.1.100,10.0.0.50", "tls": "TLSv1.3", "upstream": "172.16.16.25:8008"},
    ),
    (
        "envoy_json",
        lines_of(CROWDSEC / "envoy-logs__envoy.log", cri=True)[0],
        {"ts": _utc(2025, 12, 31, 16, 37, 40, 479000), "bad_field": False, "domain": "www.example.com",
         "method": "GET", "path": "/assets/image.webp", "query": None, "protocol": "HTTP/2", "status": 200,
         "bytes": 121258, "referrer": None,
         "user_agent": "Mozilla/4.0 (Windows NT 9.0; Win64; x64; rv:136.0) Gecko/20101 Firefox/136.0",
         "client": "10.0.0.12:59292", "forwarded_for": "10.0.0.12",
         "request_id": "3bbc0252-2d5c-49fe-bd89-104e9b61770b", "upstream": "10.42.0.82:8080"},
    ),
    (
        "envoy_json",  # IPv6 peer and a two-hop X-Forwarded-For
        lines_of(CROWDSEC / "envoy-logs__envoy.log", cri=True)[7],
        {"ts": _utc(2026, 1, 24, 1, 36), "bad_field": False, "domain": "proxy6.example.com",
         "method": "POST", "path": "/api/create", "query": None, "protocol": "HTTP/1.1", "status": 201,
         "bytes": 1024, "referrer": None, "user_agent": "curl/8.10.1", "client": "[fd00:1234:5678::1]:54321",
         "forwarded_for": "fd00:1234:5678::5a24, [fd00:1234:5678::1]:54321", "request_id": "multi-ip-v6-test-id",
         "upstream": "[fd00:1234:5678::e18]:8080"},
    ),
    (
        "cloudflare",  # empty user agent and referrer are none
        lines_of(LNAV / "logfile_cloudflare.json")[0],
        {"ts": _utc(2022, 10, 30, 0, 0, 2), "bad_field": False, "domain": "www.ripe.net", "method": "HEAD",
         "path": "/", "query": None, "protocol": "HTTP/1.1", "status": 301, "bytes": 570, "referrer": None,
         "user_agent": None, "client": "87.226.160.250", "request_id": "761fde4e984e5ab2", "tls": None,
         "edge_location": None},
    ),
    # Hand-written from the producers' documentation (documentation addresses only).
    (
        "cloudflare",  # EdgeStartTimestamp as unixnano, a query, TLS, a colo
        '{"ClientIP":"2001:db8::7","ClientRequestHost":"Shop.Example","ClientRequestMethod":"GET","ClientRequestURI":"/cart?id=5&x=1",'
        '"ClientRequestProtocol":"HTTP/2","EdgeResponseStatus":200,"EdgeResponseBytes":4521,"ClientRequestReferer":"https://shop.example/",'
        '"ClientRequestUserAgent":"curl/8.5.0","EdgeStartTimestamp":1791640536123456789,"RayID":"8a1b2c3d4e5f6a7b",'
        '"EdgeColoCode":"FRA","ClientSSLProtocol":"TLSv1.3"}',
        {"ts": _utc(2026, 10, 10, 13, 55, 36, 123456), "bad_field": False, "domain": "shop.example",
         "method": "GET", "path": "/cart", "query": "id=5&x=1", "protocol": "HTTP/2", "status": 200,
         "bytes": 4521, "referrer": "https://shop.example/", "user_agent": "curl/8.5.0", "client": "2001:db8::7",
         "request_id": "8a1b2c3d4e5f6a7b", "tls": "TLSv1.3", "edge_location": "FRA"},
    ),
    (
        "nginx_json",  # log_format json escape=json '{"time_iso8601":"$time_iso8601", ...}'
        '{"time_iso8601":"2026-10-10T15:55:36+02:00","remote_addr":"2001:db8::1","request":"GET /caf\u00e9?q=a\\\\x41 HTTP/2.0",'
        '"status":"200","body_bytes_sent":"512","http_referer":"","http_user_agent":"Mozilla/5.0 \\"quoted\\"","host":"Shop.Example",'
        '"http_x_forwarded_for":"198.51.100.7, 203.0.113.5","request_id":"0f1e2d3c4b5a69788796a5b4c3d2e1f0",'
        '"ssl_protocol":"TLSv1.3","upstream_addr":"unix:/run/php.sock"}',
        {"ts": _utc(2026, 10, 10, 13, 55, 36), "bad_field": False, "domain": "shop.example", "method": "GET",
         "path": "/café", "query": "q=a\\x41", "protocol": "HTTP/2.0", "status": 200, "bytes": 512,
         "referrer": None, "user_agent": 'Mozilla/5.0 "quoted"', "client": "2001:db8::1",
         "forwarded_for": "198.51.100.7, 203.0.113.5", "request_id": "0f1e2d3c4b5a69788796a5b4c3d2e1f0",
         "tls": "TLSv1.3", "upstream": "unix:/run/php.sock"},
    ),
    (
        "nginx_json",  # escape=default: '"', '\' and bytes outside 32..126 as \xHH (high bytes kept as text)
        '{"time_local":"10/Oct/2026:13:55:36 -0700","remote_addr":"203.0.113.9","request":"GET /caf\\xC3\\xA9?q=\\x22x\\x22 HTTP/1.1",'
        '"status":"404","body_bytes_sent":"0","http_referer":"-","http_user_agent":"Mozilla/5.0 \\x22quoted\\x22 \\x5Cpath\\x09tab"}',
        {"ts": _utc(2026, 10, 10, 20, 55, 36), "bad_field": False, "domain": None, "method": "GET",
         "path": "/caf\\xC3\\xA9", "query": 'q="x"', "protocol": "HTTP/1.1", "status": 404, "bytes": 0,
         "referrer": None, "user_agent": 'Mozilla/5.0 "quoted" \\path\ttab', "client": "203.0.113.9",
         "forwarded_for": None, "request_id": None, "tls": None, "upstream": None},
    ),
    (
        "nginx_json",  # $msec, $request_method + $request_uri, $server_protocol, $bytes_sent
        '{"msec":"1791640536.123","remote_addr":"198.51.100.4","request_method":"POST","request_uri":"/login?next=%2F",'
        '"server_protocol":"HTTP/1.1","status":"302","bytes_sent":"0","http_host":"shop.example:8443","http_user_agent":"curl/8.5.0"}',
        {"ts": _utc(2026, 10, 10, 13, 55, 36, 123000), "bad_field": False, "domain": "shop.example",
         "method": "POST", "path": "/login", "query": "next=%2F", "protocol": "HTTP/1.1", "status": 302,
         "bytes": 0, "referrer": None, "user_agent": "curl/8.5.0", "client": "198.51.100.4",
         "forwarded_for": None, "request_id": None, "tls": None, "upstream": None},
    ),
    (
        "nginx_json",  # $uri + $args, a numeric status (the log_format wrote $status unquoted)
        '{"@timestamp":"2026-10-10T13:55:36.250Z","remote_addr":"203.0.113.20","request_method":"GET","uri":"/search",'
        '"args":"q=shoes","status":200,"body_bytes_sent":1234}',
        {"ts": _utc(2026, 10, 10, 13, 55, 36, 250000), "bad_field": False, "domain": None, "method": "GET",
         "path": "/search", "query": "q=shoes", "protocol": None, "status": 200, "bytes": 1234,
         "referrer": None, "user_agent": None, "client": "203.0.113.20", "forwarded_for": None,
         "request_id": None, "tls": None, "upstream": None},
    ),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fmt", "line", "expected"), GOLDEN, ids=[f"{g[0]}-{i}" for i, g in enumerate(GOLDEN)]
)
def test_golden_rows(fmt: str, line: str, expected: dict[str, object]) -> None:
    assert row(fmt, line) == expected


def test_the_sample_files_parse_but_for_their_non_access_lines() -> None:
    caddy = parse("caddy", lines_of(CROWDSEC / "caddy-logs__caddy-logs.log"))
    assert caddy.unparsed.to_list() == [10_000]  # reverse_proxy's debug line: a JSON line, not a request
    assert parse("caddy", lines_of(LNAV / "logfile_caddy_log.1")).frame.height == 4
    traefik = parse("traefik_json", lines_of(CROWDSEC / "traefik_json__traefik_json.log"))
    assert traefik.unparsed.to_list() == [5_000]  # "DEBUG: CrowdsecBouncerTraefikPlugin: ..."
    envoy = parse("envoy_json", lines_of(CROWDSEC / "envoy-logs__envoy.log", cri=True))
    assert envoy.unparsed.to_list() == [3_000, 4_000, 8_000, 9_000]  # Envoy's text format lines
    assert envoy.frame.height == 6


# ---------------------------------------------------------------------------------------------------
# What is not a row

_GOOD = '{"time_iso8601":"2026-10-10T13:55:36+00:00","remote_addr":"203.0.113.1","request":"GET / HTTP/1.1"'


def test_junk_and_lines_without_a_time_are_unparsed_a_bad_time_is_a_null_ts() -> None:
    lines = [
        _GOOD + "}",
        "not json at all",
        "[1, 2, 3]",
        '"a JSON string"',
        _GOOD,  # cut short
        _GOOD + "} trailing",
        '{"remote_addr":"203.0.113.1","request":"GET / HTTP/1.1","status":"200"}',  # no time
        '{"time_iso8601":"2026-10-10T13:55:36+00:00","status":"200"}',  # not nginx's: no address, no request
        '{"time_iso8601":"yesterday","remote_addr":"203.0.113.1","request":"GET / HTTP/1.1"}',
        '{"time_iso8601":"2026-10-10T13:55:36","remote_addr":"203.0.113.1","request":"GET / HTTP/1.1"}',  # no zone
        _GOOD + ',"body_bytes_sent":"12x"}',
        _GOOD + ',"status":"99999"}',
        _GOOD
        + ',"remote_addr":"-","http_user_agent":"-","host":""}',  # '-' and '' are none (a duplicate key)
    ]
    fields = parse("nginx_json", lines)
    assert fields.unparsed.to_list() == [1000, 2000, 3000, 4000, 5000, 6000, 7000]
    frame = fields.frame.select("offset", "ts", "bad_field", "status", "bytes", "user_agent", "domain")
    assert frame.rows() == [
        (0, _utc(2026, 10, 10, 13, 55, 36), False, None, None, None, None),
        (8000, None, False, None, None, None, None),
        (9000, None, False, None, None, None, None),
        (10000, _utc(2026, 10, 10, 13, 55, 36), True, None, None, None, None),
        (11000, _utc(2026, 10, 10, 13, 55, 36), True, None, None, None, None),
        (12000, _utc(2026, 10, 10, 13, 55, 36), False, None, None, None, None),
    ]


def test_tls_holds_protocol_names_only() -> None:
    spec = '{"ts": "t", "client": "ip", "tls": "v"}'
    lines = [
        f'{{"t": 1, "ip": "192.0.2.1", "v": {v}}}'
        for v in ('"TLSv1.2"', "771", '"1.3"', '"192.0.2.1"', '"none"', "null")
    ]
    lines.append('  {"t": 1, "ip": "192.0.2.1", "v": "SSLv3"}\r')  # blanks around an object are fine
    got = parse(spec, lines).frame.get_column("tls").to_list()
    assert got == ["TLSv1.2", "TLSv1.2", "TLSv1.3", None, None, None, "SSLv3"]


def test_a_bad_line_in_a_large_batch_costs_nothing_but_itself() -> None:
    """json_decode fails a whole batch on one bad line or one value of an unexpected type: the
    decoder halves the batch until the bad lines are read alone, with the same results."""
    good = [f'{{"time_iso8601":"2026-10-10T13:55:{i % 60:02d}+00:00","remote_addr":"203.0.113.{i % 200}",'
            f'"request":"GET /p{i} HTTP/1.1","status":"200"}}' for i in range(500)]  # fmt: skip
    lines = list(good)
    lines[100] = "{broken"
    lines[333] = '{"time_iso8601":"2026-10-10T13:55:00+00:00","remote_addr":{"ip":"x"},"request":["GET"]}'
    fields = parse("nginx_json", lines)
    assert fields.unparsed.to_list() == [100_000]
    clean = parse("nginx_json", good).frame
    mixed = fields.frame
    assert mixed.height == 499
    expected = clean.filter(~pl.col("offset").is_in([100_000, 333_000]))
    assert mixed.filter(pl.col("offset") != 333_000).equals(expected)


# ---------------------------------------------------------------------------------------------------
# Times


@pytest.mark.parametrize(
    ("time_format", "value", "expected"),
    [
        ("iso8601", '"2026-10-10T13:55:36.5-07:00"', _utc(2026, 10, 10, 20, 55, 36, 500000)),
        ("iso8601", '"2026-10-10T13:55:36.123456789Z"', _utc(2026, 10, 10, 13, 55, 36, 123456)),
        ("clf", '"10/Oct/2026:13:55:36 -0700"', _utc(2026, 10, 10, 20, 55, 36)),
        ("epoch", "1791640536.5", _utc(2026, 10, 10, 13, 55, 36, 500000)),
        ("epoch", '"1791640536"', _utc(2026, 10, 10, 13, 55, 36)),
        ("epoch_ms", "1791640536123", _utc(2026, 10, 10, 13, 55, 36, 123000)),
        ("epoch_us", "1791640536123456", _utc(2026, 10, 10, 13, 55, 36, 123456)),
        ("epoch_ns", "1791640536123456789", _utc(2026, 10, 10, 13, 55, 36, 123456)),
        ("auto", "1791640536", _utc(2026, 10, 10, 13, 55, 36)),
        ("auto", "1791640536123", _utc(2026, 10, 10, 13, 55, 36, 123000)),
        ("auto", "1791640536123456789", _utc(2026, 10, 10, 13, 55, 36, 123456)),
        ("auto", '"2026-10-10T13:55:36Z"', _utc(2026, 10, 10, 13, 55, 36)),
        ("auto", '"10/Oct/2026:13:55:36 +0000"', _utc(2026, 10, 10, 13, 55, 36)),
        ("%Y-%m-%d %H:%M:%S", '"2026-10-10 13:55:36"', _utc(2026, 10, 10, 13, 55, 36)),  # no %z: UTC
        ("%d.%m.%Y %H:%M:%S %z", '"10.10.2026 13:55:36 +0200"', _utc(2026, 10, 10, 11, 55, 36)),
        ("epoch", "99999999999999999", None),  # overflows: a bad timestamp, not a wrapped one
        ("epoch", '"soon"', None),
        ("iso8601", '"2026-10-10T13:55:36"', None),  # no offset: any zone's
    ],
)
def test_time_formats(time_format: str, value: str, expected: dt.datetime | None) -> None:
    spec = f'{{"ts": "t", "time_format": "{time_format}", "client": "ip"}}'
    assert row(spec, f'{{"t": {value}, "ip": "192.0.2.1"}}')["ts"] == expected


# ---------------------------------------------------------------------------------------------------
# User-defined mappings


def test_a_user_mapping_is_a_format() -> None:
    spec = (
        '{"ts": {"when.local": "%d/%m/%Y %H:%M:%S", "when.epoch": "epoch"}, "client": ["peer", "ip"],'
        ' "domain": "http.host", "method": "http.method", "uri": "http.target", "status": "http.status",'
        ' "user_agent": "http.headers.user-agent[0]", "forwarded_for": "http.headers.x-forwarded-for[*]",'
        ' "request_id": "[\\"trace.id\\"]", "require": ["http.method"]}'
    )
    fmt = formats.resolve(spec)
    assert (fmt.name, fmt.spec) == ("custom", spec)
    line = (
        '{"when":{"local":"10/10/2026 13:55:36","epoch":1},"ip":"192.0.2.44","http":{"host":"A.Example",'
        '"method":"GET","target":"/x?y=1","status":"503","headers":{"user-agent":["ua/1"],'
        '"x-forwarded-for":["198.51.100.1","203.0.113.2, 192.0.2.44"]}},"trace.id":"t-1"}'
    )
    assert row(spec, line) == {
        "ts": _utc(2026, 10, 10, 13, 55, 36), "bad_field": False, "domain": "a.example", "method": "GET",
        "path": "/x", "query": "y=1", "protocol": None, "status": 503, "bytes": None, "referrer": None,
        "user_agent": "ua/1", "client": "192.0.2.44", "forwarded_for": "198.51.100.1, 203.0.113.2, 192.0.2.44",
        "request_id": "t-1",
    }  # fmt: skip
    assert parse(spec, ['{"when":{"epoch":1},"ip":"192.0.2.1"}']).unparsed.to_list() == [0]  # no "http"


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ('{"client": "ip"}', 'has no "ts"'),
        ('{"ts": "t", "clinet": "ip"}', "unknown key"),
        ('{"ts": "t", "time_format": "julian"}', "unknown time format"),
        ('{"ts": "t", "client": "a..b"}', "bad JSON path"),
        ('{"ts": "t", "client": "[0]"}', "not an array"),
        ('{"ts": "t", "client": "a[*].b"}', "last step"),
        ('{"ts": "t", "client": "a", "domain": "a.b"}', "conflicts"),
        ('{"ts": "t", "client": 5}', "JSON path or a list"),
        ('{"ts": "t", "escape": "html"}', "escape must be"),
        ('{"ts": "t", }', "not valid JSON"),
        ('{"ts": "' + ".".join(["a"] * 5000) + '"}', "5000 steps: at most 64"),  # was a RecursionError
    ],
)
def test_a_bad_mapping_is_a_format_error(spec: str, message: str) -> None:
    with pytest.raises(FormatError, match=message):
        formats.resolve(spec)


def test_an_apache_logformat_writing_json_stays_an_apache_format() -> None:
    assert not jsonl.is_definition('{"time":"%t","client":"%h"}')
    assert jsonl.is_definition('{"ts":"t","time_format":"%d/%m/%Y %H:%M:%S"}')
    assert jsonl.is_definition('{"ts": "t"}') and not jsonl.is_definition("combined")


def test_a_config_table_is_a_json_format() -> None:
    """``[formats.NAME] family = "json"`` with the mapping as TOML keys (registry.register_config)."""
    table = {"family": "json", "ts": "time", "time_format": "%Y-%m-%d %H:%M:%S", "client": "ip"}
    registry.register_config({"shop_json": table})
    try:
        assert row("shop_json", '{"time":"2026-10-10 13:55:36","ip":"192.0.2.8"}')["client"] == "192.0.2.8"
        with pytest.raises(FormatError, match=r'formats\.bad: JSON log format .* has no "ts"'):
            registry.register_config({"bad": {"family": "json", "client": "ip"}})
    finally:
        registry.register_config({})


def test_every_builtin_is_registered_as_json_data() -> None:
    for name in JSON_FORMATS:
        entry = formats.get(name)
        assert entry is not None and entry.family == "json" and entry.detect_priority is not None
        assert formats.resolve(entry.definition).spec == entry.definition  # the definition is the mapping


# ---------------------------------------------------------------------------------------------------
# Detection among the JSON formats (and against the text formats)

_NGINX_SAMPLE = [GOLDEN[i][1] for i in (8, 9, 10, 11)]


@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        (lines_of(CROWDSEC / "caddy-logs__caddy-logs.log"), "caddy"),
        (lines_of(LNAV / "logfile_caddy_log.1"), "caddy"),
        (lines_of(CROWDSEC / "traefik_json__traefik_json.log"), "traefik_json"),
        (lines_of(CROWDSEC / "envoy-logs__envoy.log", cri=True), "envoy_json"),
        (lines_of(LNAV / "logfile_cloudflare.json"), "cloudflare"),
        (_NGINX_SAMPLE, "nginx_json"),
        (["some junk above", "=== log start ===", *_NGINX_SAMPLE], "nginx_json"),
    ],
)
def test_detection_picks_the_right_json_format(lines: list[str], expected: str) -> None:
    fmt = formats.detect(lines)
    assert fmt is not None and fmt.name == expected
    for other in JSON_FORMATS:
        if other != expected:
            assert formats.resolve(other).score(lines)[0] < fmt.score(lines)[0], other


def test_a_json_format_behind_a_cri_prefix_is_detected_and_read_whole() -> None:
    lines = lines_of(CROWDSEC / "envoy-logs__envoy.log")  # "2025-...Z stdout F {...}"
    fmt = formats.detect(lines)
    assert fmt is not None and fmt.name == "cri:envoy_json"
    fields = parse("cri:envoy_json", lines)
    assert (fields.frame.height, fields.unparsed.to_list()) == (6, [3000, 4000, 8000, 9000])


def test_json_formats_claim_no_text_line_and_text_formats_no_json_line() -> None:
    combined = '203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    for name in JSON_FORMATS:
        assert formats.resolve(name).score([combined, "{}", "[]"]) == (0, 0)
    for name in ("common", "combined", "vhost_combined"):
        assert formats.resolve(name).score(_NGINX_SAMPLE) == (0, 0)


# ---------------------------------------------------------------------------------------------------
# End to end: rows in the store, no address anywhere


def test_each_builtin_ingests_end_to_end_without_storing_an_address(tmp_path: Path, store: Path) -> None:
    samples = {
        "caddy": lines_of(LNAV / "logfile_caddy_log.1"),
        "traefik_json": lines_of(CROWDSEC / "traefik_json__traefik_json.log"),
        "envoy_json": lines_of(CROWDSEC / "envoy-logs__envoy.log", cri=True),
        "cloudflare": [GOLDEN[7][1]],
        "nginx_json": [*_NGINX_SAMPLE, "junk"],
    }
    total_rows = 0
    addresses: set[object] = set()
    for name, lines in samples.items():
        log = tmp_path / f"{name}.log"
        log.write_text("\n".join(lines) + "\n")
        addresses |= ip_tokens(log.read_text())
        report = ingest_paths(store, [log], fmt=name)
        parsed = parse(name, lines)
        assert report.rows == parsed.frame.height, name
        total_rows += report.rows
    rows, rejects = store_rows(store), store_rejects(store)
    assert len(rows) == total_rows
    by_path = {r["path"]: r for r in rows}
    assert by_path["/cart"]["client_net"] == "2001:db8::/48" or str(
        by_path["/cart"]["client_net"]
    ).startswith("2001:db8:")
    assert by_path["/search"]["client_net"] == "203.0.113.0/24"
    leaked = {a for a in addresses if a.version == 4 or not str(a).startswith("fd00")}
    stored = " ".join(str(v) for r in [*rows, *rejects] for v in r.values())
    assert not (ip_tokens(stored) & leaked)


# ---------------------------------------------------------------------------------------------------
# The fast stage (one regex per key layout) gives exactly the decoder's rows

_LAYOUT = ("time_iso8601", "remote_addr", "host", "request", "status", "body_bytes_sent", "http_referer",
           "http_user_agent", "request_time")  # fmt: skip
_VALUES = st.sampled_from(
    ['"GET /a?b=1?c HTTP/1.1"', '"GET /a b HTTP/1.1"', '"GET  HTTP/1.0"', '"get /? HTTP/2.0"', '"-"', '""',
     '"2026-11-01T10:00:00+00:00"', '"2026-11-01T10:00:00"', '"192.0.2.1"', '"Example.ORG:443"', '"Mozilla é"',
     '" x: "', '"a\\"b"', '"a\\\\x41"', '"\\x41"', '"\\u00e9"', '"\\ud800"', '"\\t"', '"\t"', '"TLSv1.3"',
     "200", "-5", "0", "-0", "1.0", "1e3", "0.012", "12345678901234567890123", "007", "true", "null",
     "{}", '{"a":"b"}', "[1]"]
)  # fmt: skip
_TIMES_PLAIN = '"2026-11-01T10:00:00+00:00"'
_TIMES = st.sampled_from(
    ['"2026-11-01T10:00:00+00:00"', '"2026-11-01T10:00:01Z"', '"-"', "1793527200", "null"]
)
_KEYS = st.sampled_from([*_LAYOUT, "x@y.z-w", "msec", "http_x_forwarded_for", "ssl_protocol"])


def _object(members: list[tuple[str, str]], sep: str, colon: str) -> str:
    return "{" + sep.join(f'"{k}"{colon}{v}' for k, v in members) + "}"


_PLAIN = ('"192.0.2.1"', '"example.org"', '"GET /a?b=1 HTTP/1.1"', "200", "512", '""', '"Mozilla"', "0.012")


def _layout_line(time: str, changes: list[tuple[int, str]], sep: str, colon: str) -> str:
    values = list(_PLAIN)
    for i, value in changes:
        values[i] = value
    return _object([(_LAYOUT[0], time), *zip(_LAYOUT[1:], values, strict=True)], sep, colon)


_LINE = st.one_of(
    st.builds(  # the batch's layout, a value or two changed
        _layout_line, _TIMES, st.lists(st.tuples(st.integers(0, 7), _VALUES), max_size=2),
        st.sampled_from([",", ", "]), st.sampled_from([":", ": "]),
    ),
    st.lists(st.tuples(_KEYS, _VALUES), max_size=6).map(lambda m: _object(m, ",", ":")),  # other layouts
    st.sampled_from(["junk", "[1]", "{", '"x"', '{"time_iso8601":"2026-11-01T10:00:00Z"} x']),
)  # fmt: skip


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    lines=st.lists(
        st.tuples(st.sampled_from(["", "  "]), _LINE, st.sampled_from(["\n", "\r\n", " \n", ""])),
        min_size=1,
        max_size=12,
    ),
    spec=st.sampled_from(["nginx_json", '{"ts": "time_iso8601", "client": "remote_addr", "status": "status",'
                                        ' "request": ["request", "msec"], "tls": "ssl_protocol"}']),
)  # fmt: skip
def test_the_fast_stage_gives_the_decoders_rows(lines: list[tuple[str, str, str]], spec: str) -> None:
    text = [_layout_line(_TIMES_PLAIN, [], ",", ":"), *("".join(p) for p in lines)]  # the layout first
    frame = pl.DataFrame(
        {"line": text, "offset": range(len(text)), "non_ascii": False},
        schema={"line": pl.String, "offset": pl.Int64, "non_ascii": pl.Boolean},
    )
    fast = formats.resolve(spec)
    assert isinstance(fast, jsonl.JsonFormat) and fast.fast
    general = dataclasses.replace(fast, fast=False)
    ctx = FieldContext(agents=lambda d, c: d.gather(c))
    a, b = fast.parse(frame, ctx), general.parse(frame, ctx)
    assert a.frame.sort("offset").equals(b.frame.sort("offset"))
    assert a.unparsed.sort().to_list() == b.unparsed.sort().to_list()
    assert fast.score(frame["line"].to_list()) == general.score(frame["line"].to_list())


def _decodes(line: str, dtype: pl.Struct) -> bool:
    try:
        pl.Series([line]).str.json_decode(dtype)
    except pl.exceptions.PolarsError:
        return False
    return True


@pytest.mark.parametrize("position", range(len(_LAYOUT)))
def test_every_value_anywhere_in_the_layout_reads_as_the_decoder_reads_it(position: int) -> None:
    """Each value of ``_VALUES`` at ``position``, as the decoder reads it: the lines json_decode reads
    in one batch, the others (read by json_path_match) in another; fast and general agree on both."""
    fast = formats.resolve("nginx_json")
    assert isinstance(fast, jsonl.JsonFormat)
    general = dataclasses.replace(fast, fast=False)
    ctx = FieldContext(agents=lambda d, c: d.gather(c))
    lines = [
        _object([(_LAYOUT[0], v), *zip(_LAYOUT[1:], _PLAIN, strict=True)], ",", ":")
        if position == 0
        else _layout_line(_TIMES_PLAIN, [(position - 1, v)], ",", ":")
        for v in [*_VALUES.elements, *_TIMES.elements]  # type: ignore[attr-defined]
    ]
    plain = _layout_line(_TIMES_PLAIN, [], ",", ":")  # first: the batch's layout
    taken = 0
    for ok in (True, False):
        batch = [plain, *(ln for ln in lines if _decodes(ln, fast.dtype) == ok)]
        frame = pl.DataFrame({"line": batch, "offset": range(len(batch)), "non_ascii": False})
        a, b = fast.parse(frame, ctx), general.parse(frame, ctx)
        assert a.frame.sort("offset").rows() == b.frame.sort("offset").rows()
        assert a.unparsed.sort().to_list() == b.unparsed.sort().to_list()
        layout = fast._layout(frame["line"])
        assert layout is not None
        taken += int(decode_layout(frame["line"], layout, len(fast.paths))[1].sum()) - 1
    assert taken >= 3  # (the fast stage did take some)


def test_a_number_last_in_the_layout_reads_as_the_decoder_reads_it() -> None:
    lines = [
        '{"time_iso8601":"2026-11-01T10:00:00+00:00","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1",'
        '"status":200}\r\n',
        ' {"time_iso8601" : "2026-11-01T10:00:00+00:00" , "remote_addr":" a ", "request":"GET / HTTP/1.1",'
        ' "status" : -3 } \n',
        '{"time_iso8601":"2026-11-01T10:00:00+00:00","remote_addr":"192.0.2.1","request":"GET / HTTP/1.1",'
        '"status":null}',
    ]
    frame = pl.DataFrame({"line": lines, "offset": range(3), "non_ascii": False})
    fast = formats.resolve("nginx_json")
    assert isinstance(fast, jsonl.JsonFormat)
    layout = fast._layout(frame["line"])
    assert layout is not None and decode_layout(frame["line"], layout, len(fast.paths))[1].all()
    ctx = FieldContext(agents=lambda d, c: d.gather(c))
    a, b = fast.parse(frame, ctx), dataclasses.replace(fast, fast=False).parse(frame, ctx)
    assert a.frame.get_column("status").to_list() == [200, -3, None]
    assert a.frame.rows() == b.frame.rows()


_COMMON = (
    '{"time_iso8601":"2026-11-01T10:00:00+00:00","remote_addr":"192.0.2.1","host":"example.org",'
    '"request":"GET /a?b=1 HTTP/1.1","status":200,"body_bytes_sent":512,"http_referer":"",'
    '"http_user_agent":"Mozilla/5.0","request_time":0.012}'
)


@pytest.mark.parametrize(
    ("line", "fast"),
    [
        (_COMMON + "\n", True),
        ("  " + _COMMON + " \r\n", True),
        (_COMMON.replace('"status":200', '"status":null'), True),
        (_COMMON.replace('"request_time":0.012', '"request_time":"ab"'), False),  # strings for strings
        (_COMMON.replace('"request_time":0.012', '"request_time":null'), True),
        (_COMMON.replace("Mozilla/5.0", 'Mozilla\\"5.0'), False),  # an escape where a path reads
        (_COMMON.replace("Mozilla/5.0", "Mozilla\\x2F5.0"), False),  # escape=default
        (_COMMON.replace("GET /a?b=1 HTTP/1.1", "GET /a b HTTP/1.1"), False),  # an odd request line
        (_COMMON.replace('"status":200', '"status":"200"'), False),  # not the layout's kind of value
        (_COMMON.replace('"status":200', '"status":200.0'), False),
        (_COMMON.replace('"request_time":0.012', '"request_time":{"a":1}'), False),
        (_COMMON.replace('"host":"example.org",', ""), False),  # another layout
    ],
)
def test_the_fast_stage_takes_the_layouts_plain_lines(line: str, fast: bool) -> None:
    fmt = formats.resolve("nginx_json")
    assert isinstance(fmt, jsonl.JsonFormat)
    layout = fmt._layout(pl.Series([_COMMON]))
    assert layout is not None
    _, matched = decode_layout(pl.Series([line]), layout, len(fmt.paths))
    assert matched.to_list() == [fast]
    assert parse("nginx_json", [line.rstrip("\r\n")]).frame.height == 1


# ---------------------------------------------------------------------------------------------------
# Found by the adversarial review

_CADDY_XFF = (
    '{"level":"info","ts":1709287200.1,"logger":"http.log.access.log0","msg":"handled request",'
    '"request":{"remote_ip":"10.0.0.1","remote_port":"4711","proto":"HTTP/1.1","method":"GET",'
    '"host":"shop.example","uri":"/","headers":{"X-Forwarded-For":["198.51.100.66","203.0.113.5"]}},'
    '"status":200,"size":5}'
)


@pytest.mark.parametrize(
    "neighbour",
    [
        None,
        '{"level":"info","ts":1709287200.2,"logger":"http.log.access","msg":"x","request":"oops"}',
        '{"level":"info","ts":1709287200.3,"logger":"http.log.access", }',
    ],
)
def test_a_header_sent_twice_is_the_whole_chain_whatever_the_neighbouring_lines(
    neighbour: str | None, tmp_path: Path, store: Path
) -> None:
    # A line json_decode cannot read sends its chunk to json_path_match, which gave only the first
    # X-Forwarded-For element (the one the client wrote) for "[*]": the client then depended on
    # the line next to it.
    log = tmp_path / "caddy.log"
    log.write_text("".join(f"{ln}\n" for ln in [_CADDY_XFF, *([neighbour] if neighbour else [])]))
    ingest_paths(store, [log], fmt="caddy", trusted_proxies=("10.0.0.0/8",), max_reject_rate=1.0)
    (row,) = store_rows(store)
    assert (row["client_net"], row["peer_net"]) == ("203.0.113.0/24", "10.0.0.0/24")


def test_caddy_error_lines_are_not_a_second_row(tmp_path: Path, store: Path) -> None:
    error = _CADDY_XFF.replace(
        '"logger":"http.log.access.log0","msg":"handled request"',
        ('"logger":"http.log.error.log0","msg":"dial tcp: connection refused"'),
    )
    log = tmp_path / "caddy.log"
    log.write_text(f"{_CADDY_XFF}\n{error}\n")
    report = ingest_paths(store, [log], fmt="auto", max_reject_rate=1.0)
    assert (report.sources[0].format, report.rows, report.rejects) == ("caddy", 1, {"unparseable": 1})


def test_an_application_json_log_is_not_an_access_log(tmp_path: Path, store: Path) -> None:
    app = [
        '{"timestamp":"2026-11-01T10:00:00Z","level":"info","request":"user login","user":"a@example.org"}',
        '{"timestamp":"2026-11-01T10:00:01Z","level":"info","request":"password reset","user":"b"}',
    ]
    found = formats.choose_format("auto", "-", "".join(f"{ln}\n" for ln in app).encode())
    assert (found.fmt.name, found.recognised) == ("unrecognised", False)
    with pytest.raises(FormatError, match=r'bad regex .* in "match"'):
        formats.resolve('{"ts": "t", "match": {"logger": "("}}')
