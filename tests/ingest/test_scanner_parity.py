"""The native scanner reads exactly what the regex stages read.

Every reading here is done twice on the same bytes: with the scanner first (``FieldContext.raw``)
and with the regex stages only. The fields (values and types) and the unparsed lines must be equal:
the scanner may only *accept* lines the regex path parses the same way, and whatever it refuses is
left to the regex stages. Lines come from a grammar that straddles both readers' rules
(hypothesis), a table of edge cases, every Apache-style log the repository carries, block
mechanics (blank, binary and oversized lines, block ends, base offsets) and two threads.

The scanner is a core path: these tests fail, never skip, when it does not run.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.ingest import rows as R
from pipeline.ingest.fields import FieldContext
from pipeline.ingest.formats import apache, resolve, scanner
from pipeline.ingest.lines import split_block
from pipeline.privacy import mask as privacy
from pipeline.privacy.forwarded import ProxyResolver, trusted_networks
from tests.conftest import ROOT, THIRD_PARTY_LOGS, cases, third_party_log_files

VHOST_COMMON = '%v:%p %h %l %u %t "%r" %>s %O'
FORMATS: dict[str, Any] = {
    "common": resolve("common"),
    "combined": resolve("combined"),
    "vhost_common": apache.compile_format(VHOST_COMMON, name="vhost_common"),
    "vhost_combined": resolve("vhost_combined"),
    "nginx_main": resolve("nginx_main"),  # combined + "X-Forwarded-For" (captured, not an extra)
}
VHOSTED = frozenset({"vhost_common", "vhost_combined"})
# referrer and user agent required by the scanner (and nginx_main's X-Forwarded-For after them)
TAILED = frozenset({"combined", "vhost_combined", "nginx_main"})
XFFED = frozenset({"nginx_main"})
PLAIN = frozenset(FORMATS) - TAILED  # quoted fields after the bytes are extras: matched, never stored
ALL, NONE = frozenset(FORMATS), frozenset[str]()
MAX_LINE = 1 << 20
SAMPLE_CAP = 8 << 20  # bytes of a real log read per test


# ----------------------------------------------------------------------------------------------------
# Both readings of a block


@dataclass(frozen=True)
class Reading:
    ok: np.ndarray  # the scanner's verdict per line given to the format (not blank, binary, too long)
    offsets: np.ndarray  # those lines' offsets
    parsed: pl.DataFrame  # the fields, scanner first (sorted by offset)


def _readings(data: bytes | memoryview, name: str, *, base: int = 1000, max_line: int = MAX_LINE) -> Reading:
    """Parse ``data`` with and without the scanner; assert both readings are the same."""
    fmt = FORMATS[name]
    assert fmt.scan_flags is not None
    split = split_block(data, base, max_line)
    sel = ~split.blank & ~(split.binary | split.too_long)
    frame = pl.DataFrame(
        {"line": pl.from_arrow(split.text), "offset": split.offsets, "non_ascii": split.non_ascii}
    ).filter(pl.Series(sel))
    masker = privacy.ClientMasker()
    agents = partial(R._agents, masker=masker, labels=pl.Categorical(pl.Categories.random()))
    raw = R._raw_lines(split, sel)
    ok = np.zeros(0, dtype=bool)
    if sel.any():
        scanned = scanner.scan(raw.data, raw.starts, raw.ends, fmt.scan_flags)
        assert scanned is not None, f"the scanner did not run: {scanner.status()}"
        ok = scanned.ok
        assert len(ok) == int(sel.sum()) and len(scanned.ts) == int(ok.sum())
    a = fmt.parse(frame, FieldContext(agents=agents, raw=raw))
    b = fmt.parse(frame, FieldContext(agents=agents))
    if sel.any():
        assert scanner.status() == "wasm"  # no trap on the way: a fallback would make parity vacuous
    assert a.frame.schema == b.frame.schema
    fa, fb = (x.frame.sort("offset").with_columns(pl.col("user_agent").cast(pl.String)) for x in (a, b))
    assert_frame_equal(fa, fb)
    assert sorted(a.unparsed.to_list()) == sorted(b.unparsed.to_list())
    return Reading(ok=ok, offsets=split.offsets[sel], parsed=fa)


def _settings(trusted: tuple[str, ...] = ()) -> R.ParseSettings:
    return R.ParseSettings(
        domain="fallback.example.test",
        server="web1",
        sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
        proxies=ProxyResolver(trusted_networks(trusted)),
    )


def _comparable(frame: pl.DataFrame) -> pl.DataFrame:
    """Rows in a stable order, the batch's Categorical/Enum columns as text."""
    text = frame.with_columns(pl.col(pl.Categorical, pl.Enum).cast(pl.String))
    return text.sort(text.columns, nulls_last=True) if text.height else text


def _assert_ingest_parity(
    data: bytes, name: str, monkeypatch: pytest.MonkeyPatch, trusted: tuple[str, ...] = ()
) -> R.ParsedBatch:
    """``parse_lines`` (rows and rejects, as stored) with the scanner and with HOSTLOGS_SCANNER=off;
    ``trusted``: the proxies whose X-Forwarded-For entries are believed."""
    fmt, masker = FORMATS[name], privacy.ClientMasker()
    monkeypatch.delenv("HOSTLOGS_SCANNER", raising=False)
    split = split_block(data, 0, MAX_LINE)
    on = R.parse_lines(split, fmt, _settings(trusted), masker)
    if (~split.blank & ~(split.binary | split.too_long)).any():
        assert scanner.status() == "wasm"
    monkeypatch.setenv("HOSTLOGS_SCANNER", "off")
    off = R.parse_lines(split_block(data, 0, MAX_LINE), fmt, _settings(trusted), masker)
    assert scanner.status().startswith("off")
    monkeypatch.delenv("HOSTLOGS_SCANNER")
    assert on.lines == off.lines and on.reject_counts == off.reject_counts
    assert isinstance(on.rows.get_column("user_agent").dtype, pl.Categorical)  # its own categories per batch
    assert_frame_equal(_comparable(on.rows), _comparable(off.rows))  # (and the same dtypes)
    assert_frame_equal(on.rejects.sort("offset"), off.rejects.sort("offset"))
    return on


def test_the_scanner_runs_in_this_process() -> None:
    """The wasm module loads and reads a line: every parity test below really compares two readers."""
    line = (
        b'www.example.test:443 192.0.2.7 - - [06/Feb/2026:12:00:01 +0100] "GET /a HTTP/1.1" 200 5 "-" "x"\n'
    )
    assert _readings(line, "vhost_combined").ok.tolist() == [True]
    assert scanner.status() == "wasm"
    assert {name: fmt.scan_flags for name, fmt in FORMATS.items()} == {
        "common": 0,
        "combined": scanner.TAIL,
        "vhost_common": scanner.VHOST,
        "vhost_combined": scanner.VHOST | scanner.TAIL,
        "nginx_main": scanner.TAIL | scanner.XFF,
    }


# ----------------------------------------------------------------------------------------------------
# 1. Generated lines: mostly valid, each field perturbed on its own

# A field of the grammar: (values the scanner reads, values that straddle its rules and the regex's).
Field = tuple[st.SearchStrategy[str], st.SearchStrategy[str]]


def _pick(valid: list[str], odd: list[str]) -> Field:
    return st.sampled_from(valid), st.sampled_from(valid + odd)


def _either(field: Field, clean: bool) -> st.SearchStrategy[str]:
    """A clean line's value; else the odd values one time in five (shrinking towards the clean ones),
    so that a perturbed field is often the line's only one."""
    valid, odd = field
    return valid if clean else st.integers(0, 4).flatmap(lambda i: odd if i == 4 else valid)


_JUNK = st.text(alphabet='abcXYZ019_-.:é\t"\\[]/?', max_size=6)
_DOMAIN: Field = (
    st.sampled_from(
        ["www.example.test", "example.test", "a", "_dmarc.example.test", "xn--bcher-kva.example", "192.0.2.1"]
    ),
    st.one_of(
        st.sampled_from(
            [
                "WWW.Example.TEST",
                "example.test.",
                "-",
                "",
                "a..b",
                "-a.b",
                "a.-b",
                ".a",
                "a.",
                "a-b.c_d.0",
                "[2001:db8::1]",
                "é.test",
                "Ex_Ample",
                "www.example.test.:443",
                "日本.example",
            ]
        ),
        _JUNK,
    ),
)
_PORT = _pick([":443", ":80", ""], [":", ":0", ":80a", ":-1", "::443", ":443:80", ":\t1", ":080"])
_CLIENT: Field = (
    st.sampled_from(["192.0.2.7", "203.0.113.250", "2001:db8::1", "::1", "host.example.net", "-"]),
    st.one_of(st.sampled_from(["", "[2001:db8::2]:1234", "a\tb", '"', "unix:", "a b", "é"]), _JUNK),
)
_IDENT = _pick(["-"], ["", "alice", "bob@example.com", '"', "-\t-", "- -", "[x]", "a]"])

_MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
_DAYS = [f"{d:02d}" for d in range(1, 29)]
_YEARS = ["2026", "2024", "1999", "2001"]
_ODD_YEARS = ["2000", "1900", "2023", "2100", "0001", "0000", "0004", "9999", "1969", "1970", "99999", "26"]
_DATE: Field = (
    st.builds("{}/{}/{}".format, st.sampled_from(_DAYS), st.sampled_from(_MONTHS), st.sampled_from(_YEARS)),
    st.one_of(
        st.builds(
            "{}/{}/{}".format,
            st.sampled_from([*_DAYS, "29", "30", "31", "00", "32", "1", "6 ", " 6", "99", "0x"]),
            st.sampled_from([*_MONTHS, "jan", "JAN", "feb", "Foo", "Sept", "Ma", "May "]),
            st.sampled_from(_YEARS + _ODD_YEARS),
        ),
        st.sampled_from(_YEARS + _ODD_YEARS).map("29/Feb/{}".format),  # leap days
        st.sampled_from(["31/Apr/2026", "30/Feb/2024", "31/Jun/2026", "31/Dec/2026", "31/Jan/2026"]),
    ),
)
_HOUR = _pick(["00", "09", "12", "23"], ["24", "9", "99", "-1", "0 "])
_MINUTE = _pick(["00", "30", "59"], ["60", "61", "5", "99"])
_OFFSET = _pick(
    ["+0000", "+0100", "-0700", "+0530"],
    [
        "-0000",
        "+1400",
        "-1200",
        "+2359",
        "-2359",
        "+2400",
        "-2400",
        "+9999",
        "+0060",
        "+01:00",
        "Z",
        "",
        "+000",
        "0000",
        "+00000",
        " +0000",
        "+0000 ",
    ],
)
_TS_SHAPES = st.sampled_from(
    [
        "[06/Feb/2026:12:00:01]",
        "[]",
        "[06/Feb/2026:12:00:01 +0100",
        "06/Feb/2026:12:00:01 +0100]",
        "[2026-02-06T12:00:01+01:00]",
        "[06/Feb/2026:12:00:01 +0100] x",
        "[06/Feb/2026:12:00:01\t+0100]",
    ]
)

_PATH = _pick(
    ["/", "/a/b.html", "/index.php", "/x%20y", "/é", "/日本/ü", "/a/../b", "*"],
    ["", "/a b", '/a\\"b', "/a\\\\b", "/a\tb", "//", '/a"b', "/a\\", "/%"],
)
_QUERY = _pick(
    ["", "?", "?a=1", "?a=1&b=2", "?q=%E2%82%AC", "?token=s3cret", "?ip=192.0.2.1"],
    ["??", "?a?b?c", "?q=é", "?q=日本", '?a\\"b', "?a\\\\", "?a b", "?a\tb", "?a\\"],
)
_PROTOCOL = _pick(
    [" HTTP/1.1", " HTTP/1.0", " HTTP/2.0"],
    [
        " HTTP/2",
        " HTTP/",
        " HTTPS/1.1",
        " http/1.1",
        " HTTP/1.1x",
        " HTTP/1..1",
        " HTTP/203.0.113.19",
        "",
        " HTTP/1.1 HTTP/1.1",
        " HTTP/1.1\t",
        "  HTTP/1.1",
        "\tHTTP/1.1",
        " HTTP/1.1 ",
    ],
)
_METHOD = _pick(["GET", "POST", "HEAD", "PUT", "OPTIONS"], ["get", "M-SEARCH", "GET1", "", "Get", "G\tET"])
_REQUEST_SHAPES = st.sampled_from(
    [
        "-",
        "",
        "GET",
        "GET /",
        "  ",
        '\\"GET / HTTP/1.1\\"',
        "GET / HTTP/1.1 extra",
        "GET  / HTTP/1.1",
        "\\x16\\x03\\x01\\x00\\xa5\\x01\\x00\\x00\\xa1\\x03\\x03",
        "\\x16\\x03",
        "SSH-2.0-Go",
    ]
)
_STATUS = _pick(["200", "304", "404", "500"], ["-", "20", "2000", "2x0", "000", "999", "", "200 "])
_BYTES: Field = (
    st.one_of(st.integers(0, 10**6).map(str), st.just("-")),
    st.one_of(
        st.integers(1, 25).flatmap(lambda n: st.text("0123456789", min_size=n, max_size=n)),
        st.sampled_from(["", "-5", "1e3", "--", "0x10", " 5", "5 ", "9" * 18, "9" * 19, "1" + "0" * 18]),
        st.sampled_from(["9223372036854775807", "9223372036854775808", "0" * 19 + "1", "-\t"]),
    ),
)
_PIECES = [
    "a",
    "Mozilla/5.0",
    " ",
    "(X11; Linux)",
    '\\"',
    "\\\\",
    "é",
    "日本",
    "\t",
    "192.0.2.1",
    "x@example.com",
]
_QUOTED: Field = (
    st.one_of(
        st.sampled_from(["-", "", "https://example.test/a?b=1"]),
        st.lists(st.sampled_from(_PIECES), max_size=6).map("".join),
    ),
    st.lists(st.sampled_from([*_PIECES, '"', '" "', "\\", "\\x16\\x03"]), max_size=6).map("".join),
)
_EXTRAS = st.lists(st.sampled_from(["1.2.3.4, 10.0.0.1", "-", "", 'a\\"b']), max_size=2).map(
    lambda xs: "".join(f' "{x}"' for x in xs)
)
# nginx_main's X-Forwarded-For (and any extra quoted fields after it): the quoted values of the
# referrer and user agent, escapes and all, and address lists
_FORWARDED = st.builds(
    lambda first, rest: f' "{first}"{rest}',
    st.one_of(st.sampled_from(["-", "1.2.3.4, 10.0.0.1", "2001:db8::1, unknown"]), _QUOTED[0]),
    _EXTRAS,
)
_ODD_TAILS = [" ", "\t", "x", ' "unterminated', " -", ' "a" "b"', "\\"]


@st.composite
def _tail(draw: st.DrawFn, clean: bool, xff: bool) -> str:
    """' "referrer" "user agent"' and extra quoted fields (``xff``: a clean line has at least one, its
    X-Forwarded-For), or a tail that breaks the layout."""
    referrer, agent = draw(_either(_QUOTED, clean)), draw(_either(_QUOTED, clean))
    odd = st.builds(lambda v, rest: f' "{v}"{rest}', _QUOTED[1], _EXTRAS) if xff else _EXTRAS
    extras = draw(_either((_FORWARDED if xff else st.just(""), odd), clean))
    shape = 0 if clean else draw(st.integers(0, 14))
    if shape <= 10:
        return f' "{referrer}" "{agent}"{extras}'
    return [
        "",
        f' "{referrer}"',  # no user agent
        f' "{referrer}"  "{agent}"',
        f' "{referrer}" "{agent}"{draw(st.sampled_from(_ODD_TAILS))}',
    ][shape - 11]


@st.composite
def _lines(draw: st.DrawFn, vhost: bool, clean: bool | None = None, xff: bool = False) -> str:
    """One line of the format's shape (``vhost``: with "%v:%p "): a third of them clean (values the
    scanner reads), the others with some fields perturbed."""
    if clean is None:
        clean = draw(st.integers(0, 2)) == 0

    def field(f: Field) -> str:
        return draw(_either(f, clean))

    prefix = f"{field(_DOMAIN)}{field(_PORT)} " if vhost else ""
    if not clean and draw(st.integers(0, 9)) == 0:  # a vhost where none is expected, or none
        prefix = "" if vhost else f"{draw(_DOMAIN[0])}{draw(_PORT[0])} "
    ts = f"[{field(_DATE)}:{field(_HOUR)}:{field(_MINUTE)}:{field(_MINUTE)} {field(_OFFSET)}]"
    request = f"{field(_METHOD)} {field(_PATH)}{field(_QUERY)}{field(_PROTOCOL)}"
    if not clean and draw(st.integers(0, 9)) == 0:
        ts, request = (
            draw(st.sampled_from([ts, draw(_TS_SHAPES)])),
            draw(st.sampled_from([request, draw(_REQUEST_SHAPES)])),
        )
    line = (
        f"{prefix}{field(_CLIENT)} {field(_IDENT)} {field(_IDENT)} {ts}"
        f' "{request}" {field(_STATUS)} {field(_BYTES)}{draw(_tail(clean, xff))}'
    )
    if not clean and draw(st.integers(0, 9)) == 0:  # one separator changed or dropped
        spaces = [i for i, c in enumerate(line) if c == " "]
        if spaces:
            at = draw(st.sampled_from(spaces))
            line = line[:at] + draw(st.sampled_from(["\t", "  ", "", " \t"])) + line[at + 1 :]
    return line


@st.composite
def _blocks(draw: st.DrawFn, vhost: bool, xff: bool = False) -> bytes:
    """Lines joined by LF or CRLF, some blank, the last one maybe without a terminator."""
    lines = draw(
        st.lists(
            st.integers(0, 11).flatmap(lambda i: st.just("") if i == 0 else _lines(vhost, xff=xff)),
            min_size=1,
            max_size=10,
        )
    )
    ends = [draw(st.sampled_from(["\n", "\r\n"])) for _ in lines]
    if draw(st.booleans()):
        ends[-1] = ""
    return "".join(line + end for line, end in zip(lines, ends, strict=True)).encode()


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=cases(20), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_generated_blocks_read_the_same(name: str, data: st.DataObject) -> None:
    """Whatever the vhost, client, timestamp, request, status, bytes, quoted fields, separators and
    terminators, the scanner's reading of a block is the regex stages' reading."""
    _readings(data.draw(_blocks(name in VHOSTED, name in XFFED), label="block"), name)


@pytest.mark.parametrize("name", sorted(FORMATS))
@settings(max_examples=10, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_the_grammar_s_clean_lines_are_scanned(name: str, data: st.DataObject) -> None:
    """The grammar's clean lines are all the scanner's: the property above exercises its acceptances
    (a third of the lines are clean), not only its refusals."""
    clean = _lines(name in VHOSTED, clean=True, xff=name in XFFED)
    lines = data.draw(st.lists(clean, min_size=1, max_size=10), label="lines")
    assert _readings("".join(x + "\n" for x in lines).encode(), name).ok.all()


@settings(max_examples=cases(10), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(block=_blocks(vhost=True))
def test_generated_blocks_store_the_same_rows(block: bytes) -> None:
    """The whole parse (rows as stored, rejects with their reasons) with the scanner and without."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        _assert_ingest_parity(block, "vhost_combined", monkeypatch)


# ----------------------------------------------------------------------------------------------------
# 2. Edge cases, one line each, for every format they apply to

_BASE = {
    "domain": "www.example.test",
    "port": ":443",
    "client": "192.0.2.7",
    "ident": "-",
    "user": "-",
    "ts": "[06/Feb/2026:12:00:01 +0100]",
    "request": "GET /a?b=1 HTTP/1.1",
    "status": "200",
    "bytes": "5",
    "end": "\n",
}
_DEFAULT_TAIL = ' "https://ref.example/" "curl/8"'
_DEFAULT_XFF = ' "198.51.100.9, 10.0.0.1"'  # nginx_main's X-Forwarded-For, after the default tail


def _line(name: str, fields: dict[str, str]) -> bytes:
    f = _BASE | fields
    default = _DEFAULT_TAIL + _DEFAULT_XFF if name in XFFED else _DEFAULT_TAIL if name in TAILED else ""
    tail = f.get("tail", default)
    head = f"{f['domain']}{f['port']} " if name in VHOSTED else ""
    return (
        f'{head}{f["client"]} {f["ident"]} {f["user"]} {f["ts"]} "{f["request"]}" {f["status"]} {f["bytes"]}'
        f"{tail}{f['end']}"
    ).encode()


def _ts(text: str) -> dict[str, str]:
    return {"ts": f"[{text}]"}


# (id, fields changed from _BASE, the formats whose scanner accepts the line, the formats it applies to)
EDGE_CASES: list[tuple[str, dict[str, str], frozenset[str], frozenset[str]]] = [
    ("baseline", {}, ALL, ALL),
    # bytes: the scanner takes up to 18 digits; 19 may not fit an Int64 and are the regex path's
    ("bytes-18-digits", {"bytes": "999999999999999999"}, ALL, ALL),
    ("bytes-19-digits-fit", {"bytes": "1000000000000000000"}, NONE, ALL),
    ("bytes-19-digits-overflow", {"bytes": "9999999999999999999"}, NONE, ALL),
    ("bytes-int64-max", {"bytes": "9223372036854775807"}, NONE, ALL),
    ("bytes-25-digits", {"bytes": "1" * 25}, NONE, ALL),
    ("bytes-leading-zeros", {"bytes": "0000000000000000007"}, NONE, ALL),
    ("bytes-zero-padded-18", {"bytes": "000000000000000007"}, ALL, ALL),
    ("bytes-dash", {"bytes": "-"}, ALL, ALL),
    ("bytes-zero", {"bytes": "0"}, ALL, ALL),
    ("bytes-empty", {"bytes": ""}, NONE, ALL),
    ("bytes-negative", {"bytes": "-5"}, NONE, ALL),
    # status
    ("status-000", {"status": "000"}, ALL, ALL),
    ("status-999", {"status": "999"}, ALL, ALL),
    ("status-dash", {"status": "-"}, NONE, ALL),
    ("status-2-digits", {"status": "20"}, NONE, ALL),
    ("status-4-digits", {"status": "2000"}, NONE, ALL),
    # request line
    ("request-dash", {"request": "-"}, NONE, ALL),
    ("request-empty", {"request": ""}, NONE, ALL),
    ("query-absent", {"request": "GET /a HTTP/1.1"}, ALL, ALL),  # query null
    ("query-empty", {"request": "GET /a? HTTP/1.1"}, ALL, ALL),  # query "", not null
    ("query-only-mark", {"request": "GET ? HTTP/1.1"}, ALL, ALL),
    ("query-many-marks", {"request": "GET /a?b=1?c=2?? HTTP/1.1"}, ALL, ALL),
    ("path-empty", {"request": "GET  HTTP/1.1"}, ALL, ALL),
    ("path-star", {"request": "OPTIONS * HTTP/1.1"}, ALL, ALL),
    ("path-tab", {"request": "GET /a\tb HTTP/1.1"}, ALL, ALL),
    ("path-space", {"request": "GET /a b HTTP/1.1"}, NONE, ALL),
    ("path-escaped-quote", {"request": 'GET /a\\"b HTTP/1.1'}, NONE, ALL),
    ("path-escaped-backslash", {"request": "GET /a\\\\b HTTP/1.1"}, NONE, ALL),
    ("query-escaped-quote", {"request": 'GET /a?b=\\" HTTP/1.1'}, NONE, ALL),
    ("path-percent", {"request": "GET /%E2%82%AC/%zz/% HTTP/1.1"}, ALL, ALL),
    ("path-utf8", {"request": "GET /café/日本?q=é HTTP/1.1"}, ALL, ALL),
    ("protocol-2.0", {"request": "GET / HTTP/2.0"}, ALL, ALL),
    ("protocol-no-version", {"request": "GET / HTTP/"}, NONE, ALL),
    ("protocol-https", {"request": "GET / HTTPS/1.1"}, NONE, ALL),
    ("protocol-lower", {"request": "GET / http/1.1"}, NONE, ALL),
    ("protocol-missing", {"request": "GET /"}, NONE, ALL),
    ("protocol-dots", {"request": "GET / HTTP/1..1"}, ALL, ALL),  # the regex's [0-9.]+ too
    ("protocol-address", {"request": "GET / HTTP/203.0.113.19"}, ALL, ALL),
    ("protocol-twice", {"request": "GET / HTTP/1.1 HTTP/1.1"}, NONE, ALL),
    ("method-lower", {"request": "get / HTTP/1.1"}, ALL, ALL),
    ("method-dash", {"request": "M-SEARCH * HTTP/1.1"}, NONE, ALL),
    ("method-digit", {"request": "GET1 / HTTP/1.1"}, NONE, ALL),
    ("method-tab", {"request": "GET\t/ HTTP/1.1"}, NONE, ALL),
    ("tls-hello", {"request": "\\x16\\x03\\x01\\x00\\xa5\\x01\\x00\\x00\\xa1\\x03\\x03"}, NONE, ALL),
    # timestamps the scanner reads, exactly as strptime does
    ("ts-leap-2000", _ts("29/Feb/2000:00:00:00 +0000"), ALL, ALL),
    ("ts-leap-2024", _ts("29/Feb/2024:23:59:59 -0000"), ALL, ALL),
    ("ts-offset-plus-1400", _ts("01/Jan/2026:00:00:00 +1400"), ALL, ALL),
    ("ts-offset-plus-2359", _ts("01/Jan/2026:00:00:00 +2359"), ALL, ALL),
    ("ts-offset-minus-2359", _ts("31/Dec/2025:23:59:59 -2359"), ALL, ALL),
    ("ts-year-0001", _ts("01/Jan/0001:00:00:00 +0000"), ALL, ALL),
    ("ts-year-0000-leap", _ts("29/Feb/0000:00:00:00 +0000"), ALL, ALL),
    ("ts-year-0000-january", _ts("01/Jan/0000:00:00:00 -2359"), ALL, ALL),
    ("ts-year-9999", _ts("31/Dec/9999:23:59:59 -2359"), ALL, ALL),
    ("ts-before-epoch", _ts("31/Dec/1969:23:59:59 +0000"), ALL, ALL),
    ("ts-all-months", _ts("30/Nov/2026:10:00:00 +0000"), ALL, ALL),
    ("ts-31-dec", _ts("31/Dec/2026:10:00:00 +0000"), ALL, ALL),
    # timestamps it refuses (strptime reads some of them, or none): the regex path decides
    ("ts-leap-1900", _ts("29/Feb/1900:00:00:00 +0000"), NONE, ALL),
    ("ts-leap-2023", _ts("29/Feb/2023:00:00:00 +0000"), NONE, ALL),
    ("ts-leap-2100", _ts("29/Feb/2100:00:00:00 +0000"), NONE, ALL),
    ("ts-31-apr", _ts("31/Apr/2026:00:00:00 +0000"), NONE, ALL),
    ("ts-day-00", _ts("00/Jan/2026:00:00:00 +0000"), NONE, ALL),
    ("ts-day-32", _ts("32/Jan/2026:00:00:00 +0000"), NONE, ALL),
    ("ts-1-digit-day", _ts("6/Feb/2026:12:00:01 +0100"), NONE, ALL),
    ("ts-lower-month", _ts("06/feb/2026:12:00:01 +0100"), NONE, ALL),
    ("ts-upper-month", _ts("06/FEB/2026:12:00:01 +0100"), NONE, ALL),
    ("ts-second-60", _ts("31/Dec/2016:23:59:60 +0000"), NONE, ALL),
    ("ts-hour-24", _ts("06/Feb/2026:24:00:00 +0000"), NONE, ALL),
    ("ts-minute-60", _ts("06/Feb/2026:12:60:00 +0000"), NONE, ALL),
    ("ts-offset-9999", _ts("06/Feb/2026:12:00:01 +9999"), NONE, ALL),
    ("ts-offset-2400", _ts("06/Feb/2026:12:00:01 +2400"), NONE, ALL),
    ("ts-offset-minutes-60", _ts("06/Feb/2026:12:00:01 +0060"), NONE, ALL),
    ("ts-offset-colon", _ts("06/Feb/2026:12:00:01 +01:00"), NONE, ALL),
    ("ts-offset-missing", _ts("06/Feb/2026:12:00:01"), NONE, ALL),
    ("ts-5-digit-year", _ts("06/Feb/20260:12:00:01 +0100"), NONE, ALL),
    # client, ident, user
    ("client-ipv6", {"client": "2001:db8::1"}, ALL, ALL),
    ("client-hostname", {"client": "host-7.example.net"}, ALL, ALL),
    ("client-dash", {"client": "-"}, ALL, ALL),
    ("client-tab", {"client": "192.0.2.7\t198.51.100.1"}, ALL, ALL),
    ("client-quote", {"client": '"'}, ALL, ALL),
    ("client-empty", {"client": ""}, NONE, ALL),
    ("user-named", {"user": "bob@example.com"}, ALL, ALL),
    ("user-quotes", {"ident": '"', "user": '"'}, ALL, ALL),  # a '" "' before the referrer
    ("ident-empty", {"ident": ""}, NONE, ALL),
    # referrer and user agent (extra quoted fields for the formats without them)
    ("referrer-dash-agent-dash", {"tail": ' "-" "-"'}, ALL, ALL),  # both null
    ("referrer-empty-agent-empty", {"tail": ' "" ""'}, ALL, ALL),  # "" is not "-"
    ("agent-only-dash", {"tail": ' "https://r.example/" "-"'}, ALL, ALL),
    ("referrer-double-dash", {"tail": ' "--" "- "'}, ALL, ALL),
    ("backslash-before-close", {"tail": ' "a\\\\" "b\\\\"'}, ALL, ALL),
    ("escaped-quotes", {"tail": ' "a\\"b" "say \\"hi\\" \\\\o/"'}, ALL, ALL),
    ("quote-space-quote-escaped", {"tail": ' "a\\" \\"b" "c"'}, ALL, ALL),  # '" "' inside the referrer
    ("agent-quote-space-quote", {"tail": ' "-" "a\\" \\"b"'}, ALL, ALL),
    ("escaped-close", {"tail": ' "-" "ua\\"'}, NONE, ALL),  # the closing quote escaped: unterminated
    ("unescaped-quote", {"tail": ' "a" "b" c"'}, NONE, ALL),
    ("agent-masked-text", {"tail": ' "-" "bot 192.0.2.1 (mailto:x@example.com) é 日本"'}, ALL, ALL),
    ("agent-tab", {"tail": ' "-" "a\tb"'}, ALL, ALL),
    ("escape-before-utf8", {"tail": ' "\\é" "a\\日本"'}, ALL, ALL),  # one character escaped, 2-3 bytes
    ("escape-before-tab", {"tail": ' "\\\t" "-"'}, ALL, ALL),
    ("agent-missing", {"tail": ' "https://r.example/"'}, PLAIN, ALL),
    ("both-missing", {"tail": ""}, PLAIN, ALL),
    ("extra-forwarded", {"tail": ' "-" "curl/8" "1.2.3.4, 10.0.0.1"'}, ALL, ALL),
    ("extras-two", {"tail": ' "-" "curl/8" "1.2.3.4" ""'}, ALL, ALL),
    ("extra-unterminated", {"tail": ' "-" "curl/8" "1.2.3.4'}, NONE, ALL),
    ("trailing-space", {"tail": ' "-" "curl/8" '}, NONE, ALL),
    ("trailing-tab", {"tail": ' "-" "curl/8"\t'}, NONE, ALL),
    ("double-space", {"tail": ' "-"  "curl/8"'}, NONE, ALL),
    ("trailing-word", {"tail": ' "-" "curl/8" x'}, NONE, ALL),
    # terminators
    ("crlf", {"end": "\r\n"}, ALL, ALL),
    ("no-terminator", {"end": ""}, ALL, ALL),
    ("cr-at-block-end", {"end": "\r"}, ALL, ALL),
    ("backslash-before-cr", {"tail": ' "-" "ua\\', "end": "\r\n"}, NONE, ALL),
    ("escaped-backslash-before-cr", {"tail": ' "-" "ua\\\\"', "end": "\r\n"}, ALL, ALL),
    ("escape-at-block-end", {"tail": ' "-" "ua\\', "end": ""}, NONE, ALL),
    ("quote-at-block-end", {"tail": ' "-" "', "end": ""}, NONE, ALL),
    # nginx_main's X-Forwarded-For (a third quoted field, captured): the quoted value's rules again
    ("xff-dash", {"tail": ' "-" "curl/8" "-"'}, XFFED, XFFED),  # a value, not null: rows.py resolves it
    ("xff-empty", {"tail": ' "-" "curl/8" ""'}, XFFED, XFFED),
    ("xff-escaped-quote", {"tail": ' "-" "curl/8" "a\\"b, 10.0.0.1"'}, XFFED, XFFED),
    ("xff-backslash-before-close", {"tail": ' "-" "curl/8" "a\\\\"'}, XFFED, XFFED),
    ("xff-escaped-close", {"tail": ' "-" "curl/8" "1.2.3.4\\"'}, NONE, XFFED),  # unterminated
    ("xff-then-extra", {"tail": ' "-" "curl/8" "1.2.3.4" "x y"'}, XFFED, XFFED),
    ("xff-no-space", {"tail": ' "-" "curl/8""1.2.3.4"'}, NONE, XFFED),
    ("xff-trailing-space", {"tail": ' "-" "curl/8" "1.2.3.4" '}, NONE, XFFED),
    ("xff-backslash-before-cr", {"tail": ' "-" "curl/8" "1.2.3.4\\', "end": "\r\n"}, NONE, XFFED),
    ("xff-escaped-backslash-before-cr", {"tail": ' "-" "curl/8" "1.2.3.4\\\\"', "end": "\r\n"}, XFFED, XFFED),
    ("xff-at-block-end", {"tail": ' "-" "curl/8" "1.2.3.4', "end": ""}, NONE, XFFED),
    ("xff-quote-at-block-end", {"tail": ' "-" "curl/8" "', "end": ""}, NONE, XFFED),
    ("xff-masked-text", {"tail": ' "-" "curl/8" "198.51.100.7 é 日本, x@example.com"'}, XFFED, XFFED),
    ("xff-long", {"tail": ' "-" "curl/8" "' + ", ".join(["203.0.113.9"] * 40) + '"'}, XFFED, XFFED),
    # the server name: only a normalised one is the scanner's (the regex path normalises the others)
    ("domain-no-port", {"port": ""}, VHOSTED, VHOSTED),
    ("domain-port-0", {"port": ":0"}, VHOSTED, VHOSTED),
    ("domain-port-empty", {"port": ":"}, NONE, VHOSTED),
    ("domain-port-letters", {"port": ":80a"}, NONE, VHOSTED),
    ("domain-port-twice", {"port": ":443:80"}, NONE, VHOSTED),
    ("domain-upper", {"domain": "WWW.Example.TEST"}, NONE, VHOSTED),
    ("domain-upper-no-port", {"domain": "Example.test", "port": ""}, NONE, VHOSTED),
    ("domain-trailing-dot", {"domain": "www.example.test."}, NONE, VHOSTED),
    ("domain-dash", {"domain": "-"}, NONE, VHOSTED),
    ("domain-empty", {"domain": ""}, NONE, VHOSTED),
    ("domain-empty-label", {"domain": "a..b"}, NONE, VHOSTED),
    ("domain-leading-dash", {"domain": "-a.b"}, NONE, VHOSTED),
    ("domain-label-dash", {"domain": "a.-b"}, VHOSTED, VHOSTED),
    ("domain-digits", {"domain": "192.0.2.1"}, VHOSTED, VHOSTED),
    ("domain-underscore", {"domain": "_dmarc.a-b.c_d"}, VHOSTED, VHOSTED),
    ("domain-ipv6", {"domain": "[2001:db8::1]"}, NONE, VHOSTED),
    ("domain-utf8", {"domain": "café.example"}, NONE, VHOSTED),
]


# The table's tails with a third quoted field: nginx_main's X-Forwarded-For. Its scanner refuses
# every other tail the table sets (two quoted fields or fewer: the line has no X-Forwarded-For).
_XFF_TAILS = frozenset({"extra-forwarded", "extras-two"})


def _edge_lines(name: str) -> list[tuple[str, bytes, bool]]:
    """(case, line, whether the scanner accepts it) for the table's cases that apply to ``name``."""
    return [
        (case, _line(name, fields), name in accepted and (name not in XFFED or _xff_case(case, fields)))
        for case, fields, accepted, applies in EDGE_CASES
        if name in applies
    ]


def _xff_case(case: str, fields: dict[str, str]) -> bool:
    return "tail" not in fields or case in _XFF_TAILS or case.startswith("xff-")


def _parity_error(data: bytes, name: str) -> str | None:
    try:
        _readings(data, name)
    except AssertionError as exc:
        return str(exc)
    return None


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_edge_case_lines_read_the_same(name: str) -> None:
    """The table's lines read the same both ways, and the scanner accepts exactly the ones the table
    says: each case exercises the reader it is meant for (the scanner, or the regex stages after a
    refusal). One block per format; the lines that end without a '\\n' are each a block's last line."""
    cases = _edge_lines(name)
    inner = [c for c in cases if c[1].endswith(b"\n")]
    try:
        reading = _readings(b"".join(line for _, line, _ in inner), name)
    except AssertionError:
        failing = {case: error for case, line, _ in inner if (error := _parity_error(line, name))}
        assert not failing, "\n\n".join(f"{name} {case}: {error}" for case, error in failing.items())
        raise  # on the block only
    assert dict(zip([c for c, _, _ in inner], reading.ok.tolist(), strict=True)) == {
        c: a for c, _, a in inner
    }
    for case, line, accepted in cases:
        if not line.endswith(b"\n"):
            assert _readings(_line(name, {}) + line, name).ok.tolist() == [True, accepted], case


def test_edge_case_values() -> None:
    """A few of the values the parity above holds, spelled out: '-' is null, '?' alone an empty query."""
    lines = [
        _line("vhost_combined", {"tail": ' "-" "-"', "request": "GET /a? HTTP/1.1"}),
        _line("vhost_combined", {"tail": ' "" ""', "request": "GET /a HTTP/1.1", "bytes": "-"}),
        _line("vhost_combined", {"port": "", "bytes": "999999999999999999"}),
    ]
    reading = _readings(b"".join(lines), "vhost_combined")
    assert reading.ok.tolist() == [True, True, True]
    rows = reading.parsed.select("domain", "query", "referrer", "user_agent", "bytes").rows()
    assert rows == [
        ("www.example.test", "", None, None, 5),
        ("www.example.test", None, "", "", None),
        ("www.example.test", "b=1", "https://ref.example/", "curl/8", 999999999999999999),
    ]


@pytest.mark.parametrize("name", sorted(FORMATS))
def test_edge_cases_store_the_same_rows(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """The edge-case lines of a format as one block, through the whole parse: rows and rejects."""
    lines = [_line(name, fields | {"end": "\n"}) for _, fields, _, applies in EDGE_CASES if name in applies]
    block = b"".join(lines)
    parsed = _assert_ingest_parity(block, name, monkeypatch)
    assert parsed.rows.height > parsed.rejects.height > 0


# ----------------------------------------------------------------------------------------------------
# 3. Real logs


def _real_logs() -> list[Path]:
    logs = [p for p in sorted((ROOT / "sample_logs").rglob("*")) if p.is_file() and p.name != "README.md"]
    return logs + third_party_log_files()


def _read(path: Path) -> bytes:
    if path.suffix == ".gz":
        with gzip.open(path) as f:
            return f.read(SAMPLE_CAP)
    with path.open("rb") as f:
        return f.read(SAMPLE_CAP)


def _matching_formats(path: Path) -> list[str]:
    """The scanned formats whose regex parses most of the log's first lines."""
    sample = [x for x in _read(path)[: 1 << 16].decode("utf-8", "replace").splitlines() if x.strip()][:200]
    return [name for name, fmt in FORMATS.items() if sample and fmt.score(sample)[0] * 2 > len(sample)]


REAL_LOGS = [(path, _matching_formats(path)) for path in _real_logs()]


def test_real_logs_were_found() -> None:
    """The logs below are found and matched to their formats (a broken selection would test nothing)."""
    found = {p.relative_to(ROOT).as_posix(): names for p, names in REAL_LOGS if names}
    assert len(found) >= 20
    assert found["sample_logs/other_vhosts_access.log"] == ["vhost_common", "vhost_combined"]
    # (common lines are nginx_main lines without the optional tail: its scanner refuses them all)
    assert found["sample_logs/legacy.example.org/access_log"] == ["common", "combined", "nginx_main"]
    assert "nginx_main" in found["tests/data/third_party/logs/lnav-tests/logfile_shop_access_log.0"]


@pytest.mark.parametrize(
    ("path", "names"),
    [pytest.param(p, n, id=p.relative_to(ROOT).as_posix()) for p, n in REAL_LOGS if n],
)
def test_real_logs_read_the_same(path: Path, names: list[str]) -> None:
    """Every Apache-style log the repository carries, in each scanned format its regex reads."""
    data = _read(path)
    for name in names:
        _readings(data, name)


@pytest.mark.parametrize(
    ("log", "name"),
    [
        ("other_vhosts_access.log", "vhost_combined"),
        ("www.example.com/access_log", "combined"),
        ("www.example.com/access_log.1.gz", "combined"),
        ("legacy.example.org/access_log", "common"),
    ],
)
def test_sample_logs_are_mostly_scanned(log: str, name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """On the sample logs the scanner reads nearly every line (the parity is not vacuous), and the
    whole parse stores the same rows and rejects with it and without it."""
    data = _read(ROOT / "sample_logs" / log)
    reading = _readings(data, name)
    assert reading.ok.mean() > 0.95, reading.ok.mean()
    _assert_ingest_parity(data, name, monkeypatch)


def test_nasa_log_is_mostly_scanned() -> None:
    """A real common log of 1995 (20,000 lines): most of them scanned, the same reading."""
    data = _read(THIRD_PARTY_LOGS / "nasa-http-1995" / "NASA_access_log_Aug95.first20000.log")
    assert _readings(data, "common").ok.mean() > 0.95


def test_forwarded_clients_are_resolved_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    """nginx_main's X-Forwarded-For, read by the scanner, picks the client behind trusted proxies
    exactly as the regex stages' reading does (and is never stored)."""
    chains = ["198.51.100.9, 10.0.0.1", "-", "", "203.0.113.5", "2001:db8::7, 10.0.0.2", "unknown, 10.0.0.3"]
    chains.append('198.51.100.77" "extra')  # an extra quoted field after it: matched, never stored
    lines = [
        _line("nginx_main", {"tail": f'{_DEFAULT_TAIL} "{chain}"', "request": f"GET /{i} HTTP/1.1"})
        for i, chain in enumerate(chains)
    ]
    block = b"".join(lines)
    assert _readings(block, "nginx_main").ok.all()
    parsed = _assert_ingest_parity(block, "nginx_main", monkeypatch, trusted=("192.0.2.0/24", "10.0.0.0/8"))
    nets = parsed.rows.sort("path").get_column("client_net").to_list()
    assert nets[0] == "198.51.100.0/24" and nets[3] == "203.0.113.0/24" and nets[-1] == "198.51.100.0/24"
    assert nets[4] == "2001:db8::/48" and "forwarded_for" not in parsed.rows.columns


def test_a_real_nginx_main_log_is_mostly_scanned(monkeypatch: pytest.MonkeyPatch) -> None:
    """lnav's shop log (1,000 lines of nginx's main format, "$http_x_forwarded_for" last): scanned,
    the same reading, and the same rows and rejects through the whole parse."""
    data = _read(THIRD_PARTY_LOGS / "lnav-tests" / "logfile_shop_access_log.0")
    assert _readings(data, "nginx_main").ok.mean() > 0.95
    _assert_ingest_parity(data, "nginx_main", monkeypatch)


# ----------------------------------------------------------------------------------------------------
# 4. Block mechanics

GOOD = _line("vhost_combined", {})


def test_a_block_of_refused_lines() -> None:
    """Nothing scanned: every line is the regex stages' (some parsed, some not)."""
    lines = [
        _line("vhost_combined", {"domain": "WWW.EXAMPLE.TEST"}),
        _line("vhost_combined", {"ts": "[6/Feb/2026:12:00:01 +0100]"}),
        _line("vhost_combined", {"tail": ' "-"'}),
        _line("vhost_combined", {"request": "-"}),
        b"Bad line\n",
        b"\\x16\\x03\\x01\n",
    ]
    reading = _readings(b"".join(lines), "vhost_combined")
    assert not reading.ok.any()
    # the regex path reads the upper-case server name, the one-digit day (strptime reads it) and the
    # "-" request; a line without its user agent and the others are unparsed
    assert reading.parsed.height == 3


def test_a_block_of_accepted_lines() -> None:
    """Everything scanned (the parse returns the scanner's frame alone): still the regex's reading."""
    lines = [_line("vhost_combined", {"client": f"192.0.2.{i}", "bytes": str(i)}) for i in range(50)]
    reading = _readings(b"".join(lines), "vhost_combined")
    assert reading.ok.all() and reading.parsed.height == 50


@pytest.mark.parametrize("name", sorted(FORMATS))
@pytest.mark.parametrize("end", ["\n", "\r\n", "", "\r"])
def test_a_block_of_one_line(name: str, end: str) -> None:
    reading = _readings(_line(name, {"end": end}), name)
    assert reading.ok.tolist() == [True]


def test_blank_binary_and_long_lines_are_not_given_to_the_scanner() -> None:
    """Blank, binary (control bytes, invalid UTF-8, a lone CR) and too-long lines are excluded before
    parsing (the long ones blanked in the block's copy): the lines around them read the same."""
    lines = [
        GOOD,
        b"\n",
        b"\r\n",
        GOOD.replace(b"curl/8", b"bin\x00ary"),
        GOOD.replace(b"curl/8", b"\xff\xfe"),
        GOOD.replace(b"curl/8", b"a\rb"),
        GOOD.replace(b"curl/8", b"x" * 600),  # too long at 512
        GOOD.replace(b"curl/8", b"y" * 300),
        _line("vhost_combined", {"domain": "Upper.Example"}),
        b"\x00" * 40 + b"\n",
        GOOD.rstrip(b"\n"),  # the last line, unterminated
    ]
    data = b"".join(lines)
    reading = _readings(data, "vhost_combined", max_line=512)
    starts = np.cumsum([0] + [len(x) for x in lines[:-1]]) + 1000
    assert reading.offsets.tolist() == [starts[i] for i in (0, 7, 8, 10)]
    assert reading.ok.tolist() == [True, True, False, True]


@pytest.mark.parametrize("where", ["user_agent", "path", "referrer"])
def test_a_line_of_8_kb(where: str) -> None:
    """A long value crosses many 8-byte steps and is compacted out of the block."""
    long = "".join(f"{i:04d}\\\\" if where != "path" else f"/{i:04d}" for i in range(1400))
    fields = {
        "user_agent": {"tail": f' "-" "{long}"'},
        "path": {"request": f"GET {long}?q={long} HTTP/1.1"},
        "referrer": {"tail": f' "{long}" "curl/8"'},
    }[where]
    line = _line("vhost_combined", fields)
    assert len(line) > 8000
    reading = _readings(GOOD + line + GOOD, "vhost_combined")
    assert reading.ok.tolist() == [True, True, True]


def _field_bounds(line: bytes) -> list[int]:
    """Where a value starts in ``line`` (after a separator or quote), and one byte into it."""
    cuts = {i for i in range(1, len(line) + 1) if line[i - 1 : i] in (b" ", b'"', b":", b"[", b"]")}
    return sorted(cuts | {i + 1 for i in cuts if i < len(line)})


# the layouts without flags, with VHOST and TAIL, and with TAIL and XFF
@pytest.mark.parametrize("name", ["common", "vhost_combined", "nginx_main"])
def test_a_block_ending_where_a_field_starts(name: str) -> None:
    """The block's last line cut where a field starts (and one byte into it), without a terminator:
    the scanner's searches stop at the block's end, never in the bytes after it."""
    line = _line(name, {"end": "", "request": "GET /a?b HTTP/1.1"})
    for cut in _field_bounds(line):
        part = line[:cut]
        if not part.strip():
            continue
        reading = _readings(GOOD + part, name)
        assert reading.ok[-1] == (cut == len(line)), part


def test_every_prefix_as_a_line() -> None:
    """Every prefix of a line, each on its own line (LF, CRLF): only the whole line is scanned."""
    line = _line("vhost_combined", {"end": ""})
    for end in (b"\n", b"\r\n"):
        data = b"".join(line[:k] + end for k in range(1, len(line) + 1))
        reading = _readings(data, "vhost_combined")
        assert reading.ok.tolist() == [False] * (len(line) - 1) + [True]


def test_lines_ending_at_every_alignment() -> None:
    """Values and lines ending at each position of the scanner's 8-byte steps and 16-byte views."""
    for end in ("", "\n", "\r\n"):
        for n in range(18):
            lines = [
                _line("vhost_combined", {"tail": f' "{"r" * k}" "{"u" * n}"', "end": "\n"}) for k in range(18)
            ]
            last = _line("vhost_combined", {"tail": f' "-" "{"u" * n}"', "end": end})
            reading = _readings(b"".join(lines) + last, "vhost_combined")
            assert reading.ok.all()


@pytest.mark.parametrize("base", [0, 1, 4096, (1 << 32) + 5, 1 << 40])
def test_base_offsets(base: int) -> None:
    """The block's offset in its file: the scanner's lines keep their absolute offsets."""
    upper = _line("vhost_combined", {"domain": "UP.test"})
    data = GOOD + b"\n" + upper + GOOD
    reading = _readings(data, "vhost_combined", base=base)
    at = base + len(GOOD) + 1
    assert reading.parsed.get_column("offset").to_list() == [base, at, at + len(upper)]
    assert reading.ok.tolist() == [True, False, True]


def test_a_block_that_is_a_slice_of_a_larger_buffer() -> None:
    """A memoryview block inside a larger buffer (lines before and after it): only its bytes count."""
    whole = b"junk before " + GOOD + GOOD.replace(b"curl/8", b"slice") + b"after junk"
    view = memoryview(whole)[len(b"junk before ") : len(whole) - len(b"after junk")]
    reading = _readings(view, "vhost_combined", base=12)
    assert reading.ok.tolist() == [True, True]
    assert reading.parsed.get_column("user_agent").to_list() == ["curl/8", "slice"]


def test_a_block_of_8_mb() -> None:
    """A block of tens of thousands of lines: the wasm memory grows for it (views, values, compacted
    long values), and every line lands on its own offset."""
    data = _read(ROOT / "sample_logs" / "other_vhosts_access.log")
    reading = _readings(data * (SAMPLE_CAP // len(data)), "vhost_combined")
    assert len(reading.ok) > 30_000 and reading.ok.mean() > 0.95


# ----------------------------------------------------------------------------------------------------
# 5. Threads


def _scan_summary(data: bytes, name: str) -> tuple[Any, ...]:
    """The scanner's raw output for a block, as plain values."""
    split = split_block(data, 0, MAX_LINE)
    sel = ~split.blank & ~(split.binary | split.too_long)
    raw = R._raw_lines(split, sel)
    scanned = scanner.scan(raw.data, raw.starts, raw.ends, FORMATS[name].scan_flags)
    assert scanned is not None
    columns = {k: v.to_pylist() for k, v in scanned.columns.items()}
    return scanned.ok.tolist(), scanned.ts.tolist(), scanned.status.tolist(), scanned.bytes.tolist(), columns


def test_two_threads_scan_as_one() -> None:
    """Two threads scanning different blocks at once (one wasm instance each) get what one thread
    gets, call after call."""
    blocks: list[tuple[bytes, str]] = [
        (_read(ROOT / "sample_logs" / "other_vhosts_access.log"), "vhost_combined"),
        (_read(ROOT / "sample_logs" / "www.example.com" / "access_log"), "combined"),
        (_read(ROOT / "sample_logs" / "legacy.example.org" / "access_log"), "common"),
    ]
    expected = [_scan_summary(data, name) for data, name in blocks]
    jobs: list[Callable[[], tuple[Any, ...]]] = [partial(_scan_summary, *blocks[i % 3]) for i in range(24)]
    with ThreadPoolExecutor(max_workers=2) as pool:
        results = [f.result() for f in [pool.submit(job) for job in jobs]]
    for i, result in enumerate(results):
        assert result == expected[i % 3]
    assert scanner.status() == "wasm"
