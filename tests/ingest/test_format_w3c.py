"""W3C extended / IIS / CloudFront logs (formats/w3c.py): golden rows, mid-file #Fields:, detection.

Real lines come from tests/data/third_party/logs (beats-filebeat-tests/iis-*, lnav-tests/logfile_w3c.*,
crowdsec-hub-tests/aws-cloudfront-logs*); hand-written ones follow Microsoft's "W3C Extended Log File
Format (IIS 6.0)" example and AWS's CloudFront "standard log file fields" list and example, with
documentation addresses. Expected rows are worked out from the field lists by hand: IIS/CloudFront
times are UTC, '+' is a space in IIS user agents/referrers, CloudFront user agents are %-encoded,
client_net is the /24 (IPv4) or /48 (IPv6) network of c-ip.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import pytest

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.errors import FormatError
from pipeline.ingest import formats
from pipeline.ingest.fields import FieldContext, directed
from pipeline.ingest.formats import w3c
from pipeline.ingest.formats.detect import DETECT_SAMPLE_BYTES, sample
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from pipeline.privacy.forwarded import ProxyResolver, trusted_networks
from pipeline.store.commit import Store
from tests.conftest import THIRD_PARTY_LOGS, ingest_paths, ip_tokens, store_rejects, store_rows
from tests.ingest.test_parse_golden import parse_block

COLUMNS = (
    "ts", "domain", "method", "path", "query", "protocol", "status", "bytes", "referrer", "user_agent",
    "client_net", "request_id", "tls", "edge_location",
)  # fmt: skip

IIS_LOG = THIRD_PARTY_LOGS / "beats-filebeat-tests"
LNAV = THIRD_PARTY_LOGS / "lnav-tests"
CLOUDFRONT_SAMPLE = THIRD_PARTY_LOGS / "crowdsec-hub-tests/aws-cloudfront-logs__aws-cloudfront-logs.log"

IIS6_HEADER = (
    "#Software: Microsoft Internet Information Services 6.0\n#Version: 1.0\n#Date: 2002-05-24 20:18:01\n"
    "#Fields: date time c-ip cs-username s-ip s-port cs-method cs-uri-stem cs-uri-query sc-status "
    "sc-bytes cs-bytes time-taken cs(User-Agent) cs(Referrer)\n"
)
IIS6_LINE = (
    "2002-05-24 20:18:01 203.0.113.114 - 198.51.100.24 80 GET /Default.htm - 200 7930 248 31 "
    "Mozilla/4.0+(compatible;+MSIE+5.01;+Windows+2000+Server) http://192.0.2.114/"
)
CLOUDFRONT_HEADER = "#Version: 1.0\n#Fields: " + w3c.CLOUDFRONT_DEFAULT + "\n"
CLOUDFRONT_LINE = "\t".join(
    [
        "2019-12-04", "21:02:31", "LAX1", "392", "192.0.2.100", "GET", "d111111abcdef8.cloudfront.net",
        "/index.html", "200", "https://www.example.com/a%20b?q=1",
        "Mozilla/5.0%20(Windows%20NT%2010.0;%20Win64;%20x64)%20Chrome/78.0.3904.108%20Safari/537.36",
        "lang=en%20US", "-", "Hit", "SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==",
        "www.example.com", "https", "23", "0.001", "-", "TLSv1.2", "ECDHE-RSA-AES128-GCM-SHA256", "Hit",
        "HTTP/2.0", "-", "-", "11040", "0.001", "Hit", "text/html", "78", "-", "-",
    ]
)  # fmt: skip


def utc(y: int, mo: int, d: int, h: int, mi: int, s: int) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def row(**values: Any) -> dict[str, Any]:
    return {c: values.get(c) for c in COLUMNS}


def read(text: str, fmt: str) -> tuple[list[dict[str, Any]], list[str], int]:
    """(rows, reject reasons in offset order, directive lines) of ``text`` parsed as one batch."""
    batch = parse_block(text.encode(), fmt)
    rows = [{c: r[c] for c in COLUMNS} for r in batch.rows.sort("ts").to_dicts()]
    reasons = batch.rejects.sort("offset").get_column("reason").to_list()
    assert batch.rows.height + len(reasons) + batch.directives == batch.lines
    return rows, reasons, batch.directives


# ---------------------------------------------------------------------------------------------------
# Golden rows

MSIE7 = (
    "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 6.3; WOW64; Trident/7.0; .NET4.0E; .NET4.0C; "
    ".NET CLR 3.5.30729; .NET CLR[ 2.0.50727](tel: 2050727); .NET CLR 3.0.30729)"
)
CHROME85 = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/85.0.4183.121 Safari/537.36"
)
CHROME70_MAC = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/70.0.3538.102 Safari/537.36"
)

GOLDEN: list[tuple[str, str, str, list[dict[str, Any]]]] = [
    (
        "Microsoft's IIS 6.0 example: '+' in the agent is a space, the referrer's address is masked",
        "iis",
        IIS6_HEADER + IIS6_LINE + "\n",
        [row(ts=utc(2002, 5, 24, 20, 18, 1), method="GET", path="/Default.htm", status=200, bytes=7930,
             referrer="http://192.0.2.0/24/", client_net="203.0.113.0/24",
             user_agent="Mozilla/4.0 (compatible; MSIE 5.01; Windows 2000 Server)")],
    ),
    (
        "iis-access-test-iis-7.5.log lines 5, 8: c-ip in markdown junk still a /24, an IPv6 c-ip is a /48",
        "w3c",
        "".join(IIS_LOG.joinpath("iis-access-test-iis-7.5.log").read_text().splitlines(True)[i] for i in (0, 3, 4, 7)),
        [row(ts=utc(2018, 8, 28, 18, 24, 25), method="GET", path="/", status=404, user_agent=MSIE7,
             client_net="10.100.118.0/24"),
         row(ts=utc(2019, 3, 6, 18, 43, 17), method="GET", path="/health-monitoring", status=200,
             client_net="2001:cdba::/48")],
    ),
    (
        "iis-access-test-ipv6zone.log: c-ip ::1%0 (a zone id), cs-host and cs-version, sc-bytes",
        "w3c",
        IIS_LOG.joinpath("iis-access-test-ipv6zone.log").read_text(),
        [row(ts=utc(2018, 1, 1, 10, 11, 12), domain="example.com", method="GET", path="/",
             protocol="HTTP/1.1", status=200, bytes=123, user_agent=CHROME70_MAC, client_net="::/48")],
    ),
    (
        "iis-access-test-x-forward-for.log line 4 (no header): IIS default + X-Forwarded-For, query kept",
        "iis",
        IIS_LOG.joinpath("iis-access-test-x-forward-for.log").read_text().splitlines(True)[3],
        [row(ts=utc(2020, 10, 7, 23, 0, 17), method="GET",
             path="/Production-UI/data/finance/legacy/GLAPAprvMaster",
             query="$filter=BatchId%20eq%20%27FY21HSNG0820%27&$orderby=Subsys,Ref&$skip=0&$top=20",
             status=200, user_agent=CHROME85, client_net="192.168.7.0/24",  # peer not trusted: XFF unused
             referrer="https://onesolfarm.ggcity.org/Production-UI/ui/uiscreens/generalledger/GLJEUB")],
    ),
    (
        "crowdsec CloudFront sample (no header: the 33 default fields); x-host-header is the domain",
        "cloudfront",
        CLOUDFRONT_SAMPLE.read_text().splitlines(True)[0],
        [row(ts=utc(2024, 3, 12, 15, 22, 28), domain="hub-cdn.crowdsec.net", method="GET", path="/testseb",
             query="query_param=42", protocol="HTTP/2.0", status=400, bytes=703, user_agent="curl/7.81.0",
             client_net="1.2.3.0/24", tls="TLSv1.3", edge_location="CDG50-P2",
             request_id="375WZmnR4hhhnlZKNn0D_LvkWhAqvWvBsUqySq8f_GOoAPP3k8R8fw==")],
    ),
    (
        "AWS's CloudFront example, with #Version/#Fields: agent and referrer %-decoded, path/query as logged",
        "cloudfront",
        CLOUDFRONT_HEADER + CLOUDFRONT_LINE + "\n",
        [row(ts=utc(2019, 12, 4, 21, 2, 31), domain="www.example.com", method="GET", path="/index.html",
             query="lang=en%20US", protocol="HTTP/2.0", status=200, bytes=392,
             referrer="https://www.example.com/a b?q=1", client_net="192.0.2.0/24", tls="TLSv1.2",
             user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) Chrome/78.0.3904.108 Safari/537.36",
             request_id="SOX4xwn4XV6Q4rgb7XiVGOHms_BGlTAC4KyHmureZmBNrjGdRLiNIQ==", edge_location="LAX1")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("why", "fmt", "text", "expected"), GOLDEN, ids=[g[0][:40] for g in GOLDEN])
def test_lines_give_the_exact_rows(why: str, fmt: str, text: str, expected: list[dict[str, Any]]) -> None:
    rows, reasons, _ = read(text, fmt)
    assert (rows, reasons) == (expected, []), why


def test_fields_change_in_the_middle_of_a_batch() -> None:
    """iis-access-test.log: three headers, three field lists, in one batch; its last two lines have
    15 fields under a 22-field header: unparseable, as the count differs."""
    rows, reasons, directives = read(IIS_LOG.joinpath("iis-access-test.log").read_text(), "w3c")
    firefox = "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:57.0) Gecko/20100101 Firefox/57.0"
    assert rows == [
        row(ts=utc(2018, 1, 1, 8, 9, 10), method="GET", path="/", query="q=100", status=200,
            user_agent=firefox, client_net="81.2.69.0/24"),
        row(ts=utc(2018, 1, 1, 9, 10, 11), domain="example.com", method="GET", path="/", status=200,
            bytes=123, user_agent=firefox, client_net="127.0.0.0/24"),
        row(ts=utc(2018, 1, 1, 10, 11, 12), domain="example.com", method="GET", path="/",
            protocol="HTTP/1.1", status=200, bytes=123, user_agent=CHROME70_MAC, client_net="81.2.69.0/24"),
    ]  # fmt: skip
    assert (reasons, directives) == (["unparseable", "unparseable"], 12)


def test_a_forged_forwarded_for_names_no_client() -> None:
    """Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For entry; the
    left-most one, which the client wrote itself, is ignored (IIS logs the header with '+' for spaces)."""
    header = "#Fields: date time c-ip cs-method cs-uri-stem sc-status X-Forwarded-For\n"
    text = header + "2024-05-01 12:00:00 198.51.100.24 GET /login 200 203.0.113.66,+192.0.2.7\n"
    settings = ParseSettings(
        domain=None, server="web1", sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
        proxies=ProxyResolver(trusted_networks(["198.51.100.0/24"])),
    )  # fmt: skip
    batch = parse_lines(
        split_block(text.encode(), 0, 65536), formats.resolve("w3c"), settings, privacy.ClientMasker()
    )
    assert batch.rows.select("client_net", "peer_net").row(0) == ("192.0.2.0/24", "198.51.100.0/24")
    # CloudFront: c-ip is the viewer, x-forwarded-for what the viewer's proxy claimed; CloudFront is no proxy
    # of ours unless configured, so the claim is not believed
    rows, _, _ = read(CLOUDFRONT_LINE.replace("\t-\tTLSv1.2", "\t203.0.113.66\tTLSv1.2") + "\n", "cloudfront")
    assert rows[0]["client_net"] == "192.0.2.0/24"


def test_a_field_count_that_differs_from_the_header_is_unparseable() -> None:
    # lnav logfile_w3c.5: the header names 6 fields, the line has 17
    assert read(LNAV.joinpath("logfile_w3c.5").read_text(), "w3c") == ([], ["unparseable"], 1)
    one_short = IIS6_HEADER + IIS6_LINE.rsplit(" ", 1)[0] + "\n"
    assert read(one_short, "w3c") == ([], ["unparseable"], 4)


def test_plus_is_a_space_only_in_unquoted_agents_and_referrers() -> None:
    header = (
        "#Fields: date time c-ip cs-method cs-uri-stem cs-uri-query sc-status cs(User-Agent) cs(Referer)\n"
    )
    text = header + (
        "2024-02-29 23:59:59 198.51.100.7 GET /a+b q=a+b 200 Bot/1.0+(+https://bot.example/) https://x.example/?s=a+b\n"
        '2024-02-29 23:59:59 198.51.100.7 GET /a+b q=a+b 200 "C++ client/2" "https://x.example/?s=a+b"\n'
    )  # fmt: skip
    rows, reasons, _ = read(text, "w3c")
    assert reasons == []
    assert [(r["path"], r["query"], r["user_agent"], r["referrer"]) for r in rows] == [
        ("/a+b", "q=a+b", "Bot/1.0 ( https://bot.example/)", "https://x.example/?s=a b"),
        ("/a+b", "q=a+b", "C++ client/2", "https://x.example/?s=a+b"),
    ]


def test_quoted_fields_and_local_times_need_an_offset() -> None:
    """lnav logfile_w3c.3 (IIS Advanced Logging): quoted values with spaces, "" inside quotes, and
    date-local/time-local: local times at an unknown offset are bad_timestamp rejects, not guesses."""
    text = LNAV.joinpath("logfile_w3c.3").read_text()
    assert read(text, "w3c")[1:] == (["bad_timestamp"] * 3, 4)
    rows, reasons, _ = read(text, "w3c:utc_offset=+02:00")
    assert reasons == []
    assert [(r["ts"], r["domain"], r["path"], r["status"], r["client_net"]) for r in rows] == [
        (datetime(2012, 8, 15, 15, 0, 0, 363000, tzinfo=UTC), "xzy.example.com", "/Products/theProduct", 200, "70.95.0.0/24"),
        (datetime(2012, 8, 15, 15, 0, 0, 660000, tzinfo=UTC), "example.hello.com", "/Topic/hw43061", 301, None),
        (datetime(2012, 8, 15, 15, 0, 0, 675000, tzinfo=UTC), "hello.example.com", "/hello/world/6,681965", 404, "173.5.0.0/24"),
    ]  # fmt: skip
    assert rows[0]["user_agent"].startswith("Mozilla/5.0 (Linux; Android 4.4.4; SM-G900V")


def test_the_files_own_gmt_offset_and_date() -> None:
    # lnav logfile_w3c.1 (Oracle Web Cache): '#GMT-Offset: -0800', runs of spaces, quoted fields, cs-uri
    rows, reasons, directives = read(LNAV.joinpath("logfile_w3c.1").read_text(), "w3c")
    assert (reasons, directives) == ([], 6)
    assert rows == [
        row(ts=utc(2001, 10, 31, 8, 0, 18), method="GET", path="/admin/images/oc_bottomleft.gif", status=200,
            bytes=350, referrer="http://www.oracle.com/nl/partner/content.html",
            user_agent="Mozilla/4.5 [en] (WinNT; I)", client_net="64.103.37.0/24")
    ]  # fmt: skip
    # lnav logfile_w3c.2 (IIS FTP): no date field, the day is the header's #Date
    rows, reasons, directives = read(LNAV.joinpath("logfile_w3c.2").read_text(), "w3c")
    assert (len(rows), reasons, directives) == (14, [], 8)
    assert {r["ts"].date() for r in rows} == {datetime(2000, 10, 9).date(), datetime(2000, 10, 10).date()}


# ---------------------------------------------------------------------------------------------------
# Directed: the state across batches


def _lines(text: str) -> pl.DataFrame:
    lines = text.splitlines(keepends=True)
    return pl.DataFrame({"line": lines, "offset": range(len(lines)), "non_ascii": [False] * len(lines)})


CTX = FieldContext(agents=lambda distinct, codes: distinct.gather(codes))


def test_fold_and_bind_carry_the_header_to_the_next_batch() -> None:
    fmt = directed(formats.resolve("w3c"))
    assert fmt is not None and fmt.directive_prefix == b"#"
    state = fmt.fold(None, IIS6_HEADER.splitlines())
    assert state == "#Fields: " + IIS6_HEADER.split("#Fields: ")[1].strip() + "\n#Date: 2002-05-24"
    second = fmt.bind(state).parse(_lines(IIS6_LINE + "\n"), CTX)
    assert second.frame.get_column("bytes").to_list() == [7930] and second.unparsed.is_empty()
    # without the state, its 15 fields are read as IIS's default + X-Forwarded-For: no sc-bytes there
    unbound = fmt.bind(None).parse(_lines(IIS6_LINE + "\n"), CTX)
    assert unbound.frame.select("status", "bytes").row(0) == (248, None)
    assert fmt.fold(state, ["#Remark: nothing to keep", "#Software: IIS"]) == state


def test_the_state_keeps_no_log_text() -> None:
    fmt = directed(formats.resolve("w3c"))
    assert fmt is not None
    state = fmt.fold(
        None, ["#Fields: date time 203.0.113.9 c-ip", "#Date: 2024-01-01 203.0.113.9", "#GMT-Offset: x"]
    )
    assert state == "#Fields: date time x-unknown c-ip\n#Date: 2024-01-01"
    assert fmt.fold(None, ["#Remark: 203.0.113.9 was here", "#Date: yesterday"]) is None


# ---------------------------------------------------------------------------------------------------
# Definitions, detection


def test_definitions_and_their_errors() -> None:
    custom = formats.resolve("w3c:date time c-ip cs-method cs-uri-stem sc-status")
    assert (custom.name, custom.spec) == ("custom", "w3c:date time c-ip cs-method cs-uri-stem sc-status")
    assert formats.is_format_spec("w3c:date time c-ip") and formats.get("iis") is not None
    rows, reasons, _ = read(
        "2024-01-01 00:00:01 192.0.2.1 GET /x 204\n", "w3c:date time c-ip cs-method cs-uri-stem sc-status"
    )
    assert (rows[0]["status"], rows[0]["client_net"], reasons) == (204, "192.0.2.0/24", [])
    for bad, message in [
        ("w3c:colour=red date time", "unknown W3C option"),
        ("w3c:separator=comma date time", "separator must be"),
        ("w3c:utc_offset=+25:00 date time", "utc_offset"),
        ("w3c:date c-ip", "has no time"),
    ]:
        with pytest.raises(FormatError, match=message):
            formats.resolve(bad)


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        (IIS_LOG / "iis-access-test.log", "w3c"),
        (IIS_LOG / "iis-access-test-iis-7.5.log", "w3c"),
        (IIS_LOG / "iis-access-test-ipv6zone.log", "w3c"),
        (IIS_LOG / "iis-access-test-x-forward-for.log", "w3c"),
        (LNAV / "logfile_w3c.0", "w3c"),
        (LNAV / "logfile_w3c.1", "w3c"),
        (LNAV / "logfile_w3c.3", "w3c"),
        (LNAV / "logfile_w3c.6", "w3c"),
        (CLOUDFRONT_SAMPLE, "cloudfront"),
        (THIRD_PARTY_LOGS / "apachelogs-tests/vhost_combined.log", "vhost_combined"),
        (THIRD_PARTY_LOGS / "elastic-apache/apache_logs", "combined"),
        (THIRD_PARTY_LOGS / "crowdsec-hub-tests/aws-alb-logs__aws-alb-logs.log", "not w3c"),
    ],
    ids=lambda v: v.name if isinstance(v, Path) else str(v),
)
def test_detection_of_each_file(path: Path, expected: str | None) -> None:
    found = formats.detect(sample(path.read_bytes()[:DETECT_SAMPLE_BYTES]))
    if expected == "not w3c":  # another family's file: none of ours may claim it
        assert found is None or found.name not in {"w3c", "iis", "cloudfront"}
    else:
        assert found is not None and found.name == expected


def test_apache_and_w3c_do_not_claim_each_other() -> None:
    combined = '203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"'
    for name in ("w3c", "iis", "cloudfront"):
        assert formats.resolve(name).score([combined] * 3) == (0, 0)
    theirs = [*(IIS6_HEADER + IIS6_LINE).splitlines(), CLOUDFRONT_LINE]
    for name in ("common", "combined", "vhost_combined"):
        assert formats.resolve(name).score(theirs)[0] == 0


# ---------------------------------------------------------------------------------------------------
# End to end


def test_a_header_in_an_earlier_block_and_a_mid_file_change(tmp_path: Path, store: Path) -> None:
    """Blocks of 512 bytes: the data lines are blocks away from the #Fields: they follow."""
    second = "#Fields: date time c-ip cs-method cs-uri-stem sc-status sc-bytes cs-host\n"
    lines = [
        f"2024-03-01 10:00:{i:02d} 203.0.113.{i} - 198.51.100.24 80 GET /p{i} - 200 {i} 1 1 Bot/1 -\n"
        for i in range(20)
    ]
    later = [f"2024-03-01 11:00:{i:02d} 2001:db8::{i} GET /q{i} 404 {i} Shop.Example\n" for i in range(20)]
    log = tmp_path / "u_ex240301.log"
    log.write_text(IIS6_HEADER + "".join(lines) + "#Date: 2024-03-01 11:00:00\n" + second + "".join(later))
    report = ingest_paths(store, [log], max_line_bytes=256, block_bytes=512, domain=None)
    (src,) = report.sources
    assert (src.format, src.rows, src.rejects, src.directives) == ("w3c", 40, {}, 6)
    assert src.batches > 5
    rows = store_rows(store)
    assert sorted(str(r["path"]) for r in rows) == sorted(
        [f"/p{i}" for i in range(20)] + [f"/q{i}" for i in range(20)]
    )
    assert {r["domain"] for r in rows if str(r["path"]).startswith("/q")} == {"shop.example"}
    assert {r["client_net"] for r in rows} == {"203.0.113.0/24", "2001:db8::/48"}
    _assert_no_address(store, log.read_text())


def test_a_resumed_run_reads_under_the_header_before_its_offset(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "u_ex240302.log"
    log.write_text(IIS6_HEADER + IIS6_LINE + "\n")
    assert ingest_paths(store, [log], fmt="iis").rows == 1
    with log.open("a") as f:  # the next run starts after the header: it rebuilds it from the file
        f.write(IIS6_LINE.replace("20:18:01", "20:18:02") + "\n")
    report = ingest_paths(store, [log], fmt="iis")
    assert (report.rows, report.rejects) == (1, {})
    assert max(str(r["ts"]) for r in store_rows(store)) == str(utc(2002, 5, 24, 20, 18, 2))


def test_no_raw_address_in_any_row_or_reject_of_the_w3c_files() -> None:
    """Every W3C file of the test data, as auto-detection reads it (tests/ingest/test_third_party_logs.py
    scans the bytes at rest of the same files)."""
    files = [*sorted(IIS_LOG.glob("iis-*.log")), *sorted(LNAV.glob("logfile_w3c.*")), CLOUDFRONT_SAMPLE]
    rows = 0
    for path in files:
        data = path.read_bytes()
        found = formats.detect(sample(data))
        batch = parse_block(data, found.name if found else "w3c")
        rows += batch.rows.height
        records = [*batch.rows.to_dicts(), *batch.rejects.to_dicts()]
        stored = "\n".join(str(v) for record in records for v in record.values())
        secret = {a for a in ip_tokens(data.decode("latin-1")) if not str(a).endswith((".0", "::"))}
        assert not (ip_tokens(stored) & secret), path.name
    assert rows > 30


def _assert_no_address(store: Path, inputs: str) -> None:
    """No input address whose host bits are not zero appears in any row or reject."""
    secret = {a for a in ip_tokens(inputs) if not str(a).endswith((".0", "::"))}
    stored = "\n".join(str(v) for r in [*store_rows(store), *store_rejects(store)] for v in r.values())
    assert not (ip_tokens(stored) & secret)


# ---------------------------------------------------------------------------------------------------
# Found by the adversarial review


@pytest.mark.parametrize("block_bytes", [512, 32 << 20])
def test_a_malformed_fields_line_is_no_header_whatever_the_block_size(
    block_bytes: int, tmp_path: Path, store: Path
) -> None:
    # "#Fields :" was a header for the state tracker and not for the batch's own segments: where the
    # new field list took effect depended on the block size.
    a = "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
    rows_a = "".join(f"2026-01-01 00:00:{i:02d} 198.51.100.{i + 1} GET /a{i} 200\n" for i in range(10))
    b = "#Fields : date time cs-method cs-uri-stem sc-status c-ip\n"
    rows_b = "".join(f"2026-01-01 00:01:{i:02d} GET /b{i} 200 198.51.100.{i + 1}\n" for i in range(10))
    log = tmp_path / "ex.log"
    log.write_text(a + rows_a + b + rows_b)
    report = ingest_paths(
        store, [log], fmt="w3c", block_bytes=block_bytes, max_line_bytes=256, max_reject_rate=1.0
    )
    (source,) = report.sources
    # the second list is no header: its lines are read under the first (the address is no status)
    assert (source.rows, source.directives, source.rejects) == (10, 2, {"bad_field": 10})


@pytest.mark.parametrize("block_bytes", [4096, 1 << 20])
def test_header_lines_count_in_a_batch_that_skipped_an_oversized_line(
    block_bytes: int, tmp_path: Path, store: Path
) -> None:
    """A batch that skipped a line too long to load lost its header count: the lines were counted,
    and the header lines were neither rows, nor rejects, nor headers (report and manifest)."""
    log = tmp_path / "w.log"
    log.write_text(
        "x" * 5000 + "\n#Version: 1.0\n#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
        "2026-11-01 10:00:00 203.0.113.9 GET /a 200\n"
    )
    report = ingest_paths(
        store, [log], fmt="w3c", block_bytes=block_bytes, max_line_bytes=1024, max_reject_rate=1.0
    )
    (source,) = report.sources
    assert (source.lines, source.rows, source.rejects, source.directives) == (4, 1, {"too_long": 1}, 2)
    assert sum(m.get("directives", 0) for m in Store(store).iter_manifests()) == 2


def test_a_w3c_file_with_only_its_header_yet_is_a_w3c_file(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "u_ex.log"
    log.write_text(
        "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
        "#Date: 2026-01-01 00:00:00\n#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
    )
    report = ingest_paths(store, [log])
    (source,) = report.sources
    assert (source.format, source.error, source.rows, source.rejects, source.directives) == (
        "w3c",
        None,
        0,
        {},
        4,
    )
    with log.open("a") as f:
        f.write("2026-01-01 00:00:01 198.51.100.7 GET / 200\n")
    again = ingest_paths(store, [log])
    assert (again.sources[0].rows, again.sources[0].error) == (1, None)


# ----------------------------------------------------------------------------------------------------
# A junk "#Fields:" line (every field is a group of the line pattern)

JUNK_FIELDS = "#Fields: time " + "a " * 4000


def test_a_junk_fields_line_is_no_header_and_ends_no_run(tmp_path: Path) -> None:
    """4,000 words in one "#Fields:" line made a regex over polars' size limit: exit 1 for the whole
    run, every run, under auto-detection whatever the file's format."""
    good = '203.0.113.77 - - [05/Dec/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "UA"\n'
    mixed, other = tmp_path / "a.log", tmp_path / "b.log"
    mixed.write_text(good * 3 + JUNK_FIELDS + "\n" + good)
    other.write_text(good * 10)
    report = ingest_paths(tmp_path / "auto", [mixed, other], fmt="auto")
    assert report.lines == 15 and report.rows == 14
    fields = "#Fields: date time c-ip cs-method cs-uri-stem sc-status\n"
    iis = "2026-12-05 10:00:00 203.0.113.77 GET / 200\n"
    w3c_log = tmp_path / "c.log"
    w3c_log.write_text(f"{fields}{iis}{JUNK_FIELDS}\n{iis}{iis}{fields}{iis}")
    report = ingest_paths(tmp_path / "w3c", [w3c_log], fmt="w3c", max_reject_rate=1.0)
    assert report.rows == 2 and [r["reason"] for r in store_rejects(tmp_path / "w3c")] == ["unparseable"] * 2


def test_a_field_list_too_long_to_be_real_is_a_format_error() -> None:
    with pytest.raises(FormatError, match="at most 128"):
        w3c.compile_w3c("w3c:time " + " ".join(f"x-a{i}" for i in range(5000)))
