"""Every textual form of an address, in every field of every non-Apache format, through a real ingest
with trusted proxies (so that forwarding chains are resolved): none reaches any byte the tool writes.

The forms and the scan are those of ``test_property_address_forms`` (Apache lines); here the same
addresses travel in nginx JSON, W3C/IIS, AWS ALB, Envoy text and syslog-wrapped lines, in the peer,
the X-Forwarded-For chain, the request, the referrer, the user agent, the host and a rejected line.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli.ingest import render_ingest
from tests.conftest import cases, ingest_paths
from tests.privacy.test_property_address_forms import (
    IPAddress,
    addresses,
    encode,
    needles,
    render,
    written_text,
)

FIELDS = ("client", "xff", "path", "query", "referrer", "agent", "host", "rejected")
W3C_HEADER = (
    "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
    "#Fields: date time s-ip cs-method cs-uri-stem cs-uri-query s-port c-ip cs-version "
    "cs(User-Agent) cs(Referer) cs-host sc-status sc-bytes x-forwarded-for\n"
)


def _parts(field: str, form: str, n: int) -> dict[str, str]:
    p = {
        "client": "192.0.2.1", "xff": "198.51.100.200, 192.0.2.9", "path": f"/p{n}", "query": "a=1",
        "referrer": "-", "agent": "ua/1.0", "host": "www.example.test", "status": "200",
    }  # fmt: skip
    if field == "client":
        p["client"] = form
    elif field == "xff":
        p["xff"] = f"{form}, 192.0.2.9"  # the forged or real client, then a trusted proxy
    elif field == "path":
        p["path"] = f"/x/{form}/y"
    elif field == "query":
        p["query"] = f"ip={form}&b=2"
    elif field == "referrer":
        p["referrer"] = f"http://{form}/r?from={form}"
    elif field == "agent":
        p["agent"] = f"bot/1.0 (+{form}) Chrome/116.0.5845.187"
    elif field == "host":
        p["host"] = form
    elif field == "rejected":
        p["status"] = "two-hundred"
        p["path"] = f"/{form}/"
    return p


def nginx_json(p: dict[str, str]) -> str:
    record: dict[str, object] = {
        "time_iso8601": "2026-10-10T13:55:36+00:00", "remote_addr": p["client"], "host": p["host"],
        "request": f"GET {p['path']}?{p['query']} HTTP/1.1",
        "status": int(p["status"]) if p["status"].isdigit() else p["status"], "body_bytes_sent": 5,
        "http_referer": p["referrer"], "http_user_agent": p["agent"], "http_x_forwarded_for": p["xff"],
    }  # fmt: skip
    return json.dumps(record)


def w3c(p: dict[str, str]) -> str:
    plus = {k: p[k].replace(" ", "+") for k in ("agent", "referrer", "xff")}
    return (
        f"2026-10-10 13:55:36 10.0.0.10 GET {p['path']} {p['query']} 443 {p['client']} HTTP/1.1 "
        f"{plus['agent']} {plus['referrer']} {p['host']} {p['status']} 5 {plus['xff']}"
    )


def alb(p: dict[str, str]) -> str:
    return (
        f"https 2026-10-10T13:55:36.000000Z app/lb/50dc6c495c0c9188 {p['client']}:41234 10.0.1.5:80 "
        f"0.000 0.001 0.000 {p['status']} {p['status']} 34 366 "
        f'"GET https://{p["host"]}:443{p["path"]}?{p["query"]} HTTP/1.1" "{p["agent"]}" '
        f"ECDHE-RSA-AES128-GCM-SHA256 TLSv1.2 arn:aws:elasticloadbalancing:us-east-2:1:targetgroup/t/73 "
        f'"Root=1-58337262-36d228ad5d99923122bbe354" "{p["host"]}" "-" 0 2026-10-10T13:55:36.000000Z '
        f'"forward" "-" "-" "10.0.1.5:80" "200" "-" "-"'
    )


def envoy(p: dict[str, str]) -> str:
    return (
        f'[2026-10-10T13:55:36.310Z] "GET {p["path"]}?{p["query"]} HTTP/1.1" {p["status"]} - 0 5 3 2 '
        f'"{p["xff"]}" "{p["agent"]}" "a1b2c3" "{p["host"]}" "10.0.1.5:8080"'
    )


def syslog_combined(p: dict[str, str]) -> str:
    return (
        f"<134>Oct 10 13:55:36 web01 nginx: {p['client']} - - [10/Oct/2026:13:55:36 +0000] "
        f'"GET {p["path"]}?{p["query"]} HTTP/1.1" {p["status"]} 5 "{p["referrer"]}" "{p["agent"]}"'
    )


RENDER = {
    "nginx_json": nginx_json,
    "w3c": w3c,
    "alb": alb,
    "envoy": envoy,
    "syslog:combined": syslog_combined,
}
HEADERS = {"w3c": W3C_HEADER}
form_choice = st.tuples(st.integers(0, 20), st.integers(0, 6), st.sampled_from(FIELDS))


@pytest.mark.parametrize("fmt", sorted(RENDER))
def test_no_form_of_an_address_reaches_any_byte_in_any_format(fmt: str) -> None:
    @settings(
        max_examples=cases(8),
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    @given(st.lists(st.tuples(addresses(), form_choice), min_size=4, max_size=10))
    def check(cases: list[tuple[IPAddress, tuple[int, int, str]]]) -> None:
        lines: list[str] = []
        secret: set[str] = set()
        for n, (addr, (style, how, field)) in enumerate(cases):
            used = encode(render(addr, style), how)
            if field in ("client", "host", "xff") and how in (2, 3, 5):
                used = render(addr, style)  # servers write these fields verbatim
            if fmt == "w3c" and field not in ("agent", "referrer", "xff"):
                used = used.replace(" ", "")
            lines.append(RENDER[fmt](_parts(field, used, n)))
            secret |= needles(used, addr)
        with tempfile.TemporaryDirectory() as tmp:
            log = Path(tmp) / "access.log"
            log.write_text(HEADERS.get(fmt, "") + "".join(line + "\n" for line in lines))
            store = Path(tmp) / "store"
            proxies = ("192.0.2.0/28", "10.0.0.0/8")  # rejects on purpose: no reject-rate limit
            report = ingest_paths(store, [log], fmt=fmt, trusted_proxies=proxies, max_reject_rate=1.0)
            assert not report.failed
            (source,) = report.sources
            assert source.rows + sum(source.rejects.values()) + source.directives == source.lines
            assert source.rows > 0 or all(f == "rejected" for _, (_, _, f) in cases)
            printed = (render_ingest(report) + json.dumps(report.to_dict(), default=str)).encode()
            everything = written_text(Path(tmp)).replace(log.read_bytes(), b"")
            for needle in sorted(secret):
                assert needle.encode() not in everything, (needle, lines)
                assert needle.encode() not in printed, (needle, lines)

    check()
