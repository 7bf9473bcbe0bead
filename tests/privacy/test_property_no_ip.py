"""Property: whatever addresses a generated log line carries, and wherever, none reaches a row or a reject."""

from __future__ import annotations

import ipaddress

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.ingest.formats import resolve
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from tests.conftest import cases, ip_tokens

SETTINGS = ParseSettings(
    domain="example.test",
    server="web1",
    sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
)
addresses = st.ip_addresses().filter(lambda a: not (a.version == 6 and a.ipv4_mapped))
text = st.text(st.characters(min_codepoint=32, max_codepoint=126, exclude_characters='"\\'), max_size=12)


def render(addr: ipaddress.IPv4Address | ipaddress.IPv6Address, style: int) -> str:
    s = str(addr)
    if addr.version == 6:
        return [s, addr.exploded, addr.exploded.upper(), f"[{s}]:443"][style % 4]
    return [s, f"{s}:8080", f"::ffff:{s}", s][style % 4]


@st.composite
def log_lines(draw: st.DrawFn) -> tuple[str, set[ipaddress.IPv4Address | ipaddress.IPv6Address]]:
    addrs = draw(st.lists(addresses, min_size=5, max_size=5))
    styles = draw(st.lists(st.integers(0, 3), min_size=5, max_size=5))
    a = [render(x, s) for x, s in zip(addrs, styles, strict=True)]
    pre, mid = draw(text), draw(text)
    broken = draw(st.booleans())  # half the lines are malformed and go to the quarantine
    line = (
        f'{a[0]} - - [10/Oct/2026:13:55:36 +0000] "GET /{pre}{a[1]}?ip={a[2]}&x={mid} HTTP/1.1" 200 5 '
        f'"http://{a[3]}/ref" "agent {a[4]}{pre}"'
    )
    if broken:
        line = line.replace('" 200', '" two hundred')
    return line, set(addrs)


def leaked(values: list[object], secret: set[ipaddress.IPv4Address | ipaddress.IPv6Address]) -> set[object]:
    masker = privacy.ClientMasker()
    found = set()
    for v in values:
        if isinstance(v, str):
            found |= {a for a in ip_tokens(v) & secret if masker.network_of(a).split("/")[0] != str(a)}
    return found


@settings(
    max_examples=cases(80),
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(log_lines(), min_size=1, max_size=8))
def test_no_address_survives_parsing(
    batch: list[tuple[str, set[ipaddress.IPv4Address | ipaddress.IPv6Address]]],
) -> None:
    block = "".join(line + "\n" for line, _ in batch).encode()
    secret = set().union(*(addrs for _, addrs in batch))
    parsed = parse_lines(split_block(block, 0, 65536), resolve("combined"), SETTINGS, privacy.ClientMasker())
    assert parsed.rows.height + parsed.rejects.height == len(batch)
    values = [v for row in parsed.rows.iter_rows() for v in row] + parsed.rejects.get_column("line").to_list()
    assert leaked(values, secret) == set()
