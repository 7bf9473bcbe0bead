"""Privacy: client truncation, masking of addresses and e-mails in free text, redaction of parameters.

Known answers are worked out by hand (prefix arithmetic on the documentation ranges 192.0.2.0/24,
198.51.100.0/24, 203.0.113.0/24 and 2001:db8::/32); the Hypothesis properties are deterministic
(``derandomize=True``) and small.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

import polars as pl
import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.ingest.formats import resolve
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, _validated, parse_lines
from pipeline.privacy import mask as privacy
from pipeline.privacy.addresses import parse_address
from pipeline.privacy.truncate import ipv6_fast

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
SENSITIVE = privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS)


def prop(examples: int) -> settings:
    """Small, deterministic Hypothesis settings (no example database written to the repository)."""
    return settings(
        max_examples=examples,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )


def mask(text: str | None, masker: privacy.ClientMasker | None = None) -> str | None:
    """mask_text on a one-row series (each text masked on its own, not helped by other rows)."""
    out = privacy.mask_text(pl.Series([text], dtype=pl.String), masker or privacy.ClientMasker())
    return out[0]


def redact(text: str | None) -> str | None:
    return privacy.redact_params(pl.Series([text], dtype=pl.String), SENSITIVE)[0]


def parse_one(line: str, fmt: str = "combined") -> dict[str, Any] | str:
    """The row dict of one line, or the reject reason."""
    settings_ = ParseSettings(domain=None, server="web1", sensitive_param_regex=SENSITIVE)
    batch = parse_lines(
        split_block(line.encode() + b"\n", 0, 65536), resolve(fmt), settings_, privacy.ClientMasker()
    )
    assert batch.rows.height + batch.rejects.height == 1
    if batch.rows.height:
        return batch.rows.to_dicts()[0]
    return str(batch.rejects.get_column("reason")[0])


# ---------------------------------------------------------------------------------------------------
# Truncation of the client field
# ---------------------------------------------------------------------------------------------------

NETWORKS = [
    # (client field, ipv4 prefix, ipv6 prefix, expected network)
    pytest.param("198.51.100.7", 24, 48, "198.51.100.0/24", id="v4-24-default"),
    pytest.param("203.0.113.255", 24, 48, "203.0.113.0/24", id="v4-24-broadcast"),
    pytest.param("198.51.100.7", 16, 48, "198.51.0.0/16", id="v4-16"),
    pytest.param("198.51.100.7", 20, 48, "198.51.96.0/20", id="v4-20"),  # 100 = 0110 0100 → 0110 0000
    pytest.param("198.51.100.7", 32, 48, "198.51.100.7/32", id="v4-32"),
    pytest.param("198.51.100.7", 0, 48, "0.0.0.0/0", id="v4-0"),
    pytest.param("192.0.2.130", 25, 48, "192.0.2.128/25", id="v4-25"),
    pytest.param("2001:db8:abcd:12:34:56:78:9", 24, 48, "2001:db8:abcd::/48", id="v6-48-default"),
    pytest.param("2001:db8:abcd:12:34:56:78:9", 24, 64, "2001:db8:abcd:12::/64", id="v6-64"),
    pytest.param("2001:db8:abcd:12ff::1", 24, 56, "2001:db8:abcd:1200::/56", id="v6-56"),
    pytest.param("2001:db8:abcd:12:34:56:78:9", 24, 128, "2001:db8:abcd:12:34:56:78:9/128", id="v6-128"),
    pytest.param("2001:db8:abcd:12:34:56:78:9", 24, 0, "::/0", id="v6-0"),
    pytest.param("2001:DB8:ABCD::1", 24, 48, "2001:db8:abcd::/48", id="v6-uppercase"),
    pytest.param("::1", 24, 48, "::/48", id="v6-loopback"),
    # IPv6 addresses with a small integer value stay IPv6 whatever the configured IPv6 prefix
    pytest.param("::1", 24, 32, "::/32", id="v6-loopback-32"),
    pytest.param("::1", 24, 16, "::/16", id="v6-loopback-16"),
    pytest.param("::", 24, 24, "::/24", id="v6-unspecified-24"),
    pytest.param("::ffff:198.51.100.7", 24, 48, "198.51.100.0/24", id="v4-mapped"),
    pytest.param("::ffff:198.51.100.7", 16, 64, "198.51.0.0/16", id="v4-mapped-uses-v4-prefix"),
    pytest.param("::FFFF:c633:6407", 24, 48, "198.51.100.0/24", id="v4-mapped-hex"),
    pytest.param("::198.51.100.7", 24, 48, "198.51.100.0/24", id="v4-compatible"),
    pytest.param("[2001:db8::1]:443", 24, 48, "2001:db8::/48", id="v6-bracket-port"),
    pytest.param("[2001:db8::1]", 24, 48, "2001:db8::/48", id="v6-bracket"),
    pytest.param("[::ffff:198.51.100.7]:8443", 24, 48, "198.51.100.0/24", id="v4-mapped-bracket-port"),
    pytest.param("198.51.100.7:5555", 24, 48, "198.51.100.0/24", id="v4-port"),
    pytest.param("fe80::1%eth0", 24, 48, "fe80::/48", id="v6-zone"),
    pytest.param("[fe80::1%eth0]:80", 24, 64, "fe80::/64", id="v6-zone-bracket-port"),
    pytest.param("::1%0", 24, 48, "::/48", id="v6-numeric-zone"),
    pytest.param("2a03:0000:10ff:f00f:0000:0000:0:8000", 24, 48, "2a03:0:10ff::/48", id="v6-noncanonical-48"),
    pytest.param(
        "2a03:0000:10ff:f00f:0000:0000:0:8000", 24, 64, "2a03:0:10ff:f00f::/64", id="v6-noncanonical-64"
    ),
    pytest.param("2001:0db8:85a3:0000:0000:8a2e:0370:7334", 24, 48, "2001:db8:85a3::/48", id="v6-exploded"),
    pytest.param(" 198.51.100.7 ", 24, 48, "198.51.100.0/24", id="v4-whitespace"),
    # not addresses
    pytest.param("www.example.com", 24, 48, None, id="hostname"),
    pytest.param("monitoring-server", 24, 48, None, id="bare-hostname"),
    pytest.param("localhost", 24, 48, None, id="localhost"),
    pytest.param("unix:", 24, 48, None, id="unix-socket"),
    pytest.param("-", 24, 48, None, id="dash"),
    pytest.param("", 24, 48, None, id="empty"),
    pytest.param("198.51.100", 24, 48, None, id="three-octets"),
    pytest.param("198.51.100.256", 24, 48, None, id="octet-out-of-range"),
    pytest.param("2001:db8::g", 24, 48, None, id="bad-hex"),
    pytest.param("10.0.0.2, 10.0.0.1", 24, 48, None, id="xff-list"),
]


@pytest.mark.parametrize(("value", "v4", "v6", "expected"), NETWORKS)
def test_network_known_answers(value: str, v4: int, v6: int, expected: str | None) -> None:
    assert privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6).network(value) == expected


@pytest.mark.parametrize(("value", "v4", "v6", "expected"), NETWORKS)
def test_vectorised_networks_agree_with_known_answers(
    value: str, v4: int, v6: int, expected: str | None
) -> None:
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    assert masker.networks(pl.Series([value, value], dtype=pl.String)).to_list() == [expected, expected]


def test_default_prefixes() -> None:
    masker = privacy.ClientMasker()
    assert (masker.ipv4_prefix, masker.ipv6_prefix) == (24, 48)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("198.51.100.7", ipaddress.IPv4Address("198.51.100.7")),
        ("::ffff:198.51.100.7", ipaddress.IPv4Address("198.51.100.7")),
        ("[2001:db8::1]:443", ipaddress.IPv6Address("2001:db8::1")),
        ("198.51.100.7:5555", ipaddress.IPv4Address("198.51.100.7")),
        ("fe80::1%eth0", ipaddress.IPv6Address("fe80::1")),
        ("2a03:0000:10ff:f00f:0000:0000:0:8000", ipaddress.IPv6Address("2a03:0:10ff:f00f::8000")),
        ("www.example.com", None),
        ("unix:", None),
        ("-", None),
    ],
)
def test_parse_address(value: str, expected: IPAddress | None) -> None:
    assert parse_address(value) == expected


@pytest.mark.parametrize(("v4", "v6"), [(33, 48), (-1, 48), (24, 129), (24, -1)])
def test_invalid_prefix_rejected(v4: int, v6: int) -> None:
    with pytest.raises(ValueError, match="prefix"):
        privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)


MIXED = [
    "198.51.100.7", "198.51.100.7", "203.0.113.9", "192.0.2.255", "0.0.0.0", "255.255.255.255",
    "2001:db8:abcd:12::1", "2001:DB8:ABCD:12::1", "::ffff:198.51.100.7", "::198.51.100.7", "[2001:db8::1]:443",
    "198.51.100.7:5555", "fe80::1%eth0", "2a03:0000:10ff:f00f:0000:0000:0:8000", "::1", "::",
    "www.example.com", "unix:", "-", "", None, "198.51.100.07", "198.51.100.256", "256.1.1.1", "1.2.3",
    " 198.51.100.7", "198.51.100.7 ", "10.0.0.2, 10.0.0.1", None,
]  # fmt: skip


@pytest.mark.parametrize(("v4", "v6"), [(24, 48), (16, 64), (20, 56), (32, 128), (0, 0), (8, 32)])
def test_vectorised_networks_agree_with_scalar(v4: int, v6: int) -> None:
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    series = pl.Series(MIXED, dtype=pl.String)
    expected = [None if v is None else privacy.ClientMasker(v4, v6).network(v) for v in MIXED]
    assert masker.networks(series).to_list() == expected
    # the per-value cache must not change answers on the next batch (reversed order, new values)
    again = pl.Series([*reversed(MIXED), "192.0.2.1"], dtype=pl.String)
    assert masker.networks(again).to_list() == [
        *reversed(expected),
        privacy.ClientMasker(v4, v6).network("192.0.2.1"),
    ]


def test_vectorised_networks_edge_shapes() -> None:
    masker = privacy.ClientMasker()
    assert masker.networks(pl.Series([], dtype=pl.String)).to_list() == []
    assert masker.networks(pl.Series([None, None], dtype=pl.String)).to_list() == [None, None]
    only_v4 = pl.Series(["192.0.2.1", "198.51.100.200"], dtype=pl.String)  # the polars fast path only
    assert masker.networks(only_v4).to_list() == ["192.0.2.0/24", "198.51.100.0/24"]
    only_slow = pl.Series(["www.example.com", "2001:db8::1"], dtype=pl.String)  # the Python path only
    assert masker.networks(only_slow).to_list() == [None, "2001:db8::/48"]


@pytest.mark.parametrize(("v4", "v6"), [(24, 48), (16, 64), (20, 56), (32, 128), (0, 0)])
@pytest.mark.parametrize("value", [v for v in MIXED if v])
def test_truncation_is_idempotent(value: str, v4: int, v6: int) -> None:
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    net = masker.network(value)
    if net is None:
        return
    base = net.split("/")[0]
    assert masker.network(base) == net
    assert masker.networks(pl.Series([base], dtype=pl.String)).to_list() == [net]


@prop(100)
@given(addr=st.ip_addresses(), v4=st.integers(0, 32), v6=st.integers(0, 128))
@example(addr=ipaddress.ip_address("2001:db8::1"), v4=24, v6=48)
@example(addr=ipaddress.ip_address("::ffff:198.51.100.7"), v4=20, v6=56)
@example(addr=ipaddress.ip_address("::1"), v4=24, v6=32)
def test_truncation_properties(addr: IPAddress, v4: int, v6: int) -> None:
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    net = masker.network(str(addr))
    assert net is not None
    network = ipaddress.ip_network(net)
    plain = parse_address(str(addr))
    assert plain is not None
    assert plain in network  # the network contains the address
    assert network.prefixlen == (v4 if plain.version == 4 else v6)
    assert masker.network(str(network.network_address)) == net  # idempotent
    assert masker.networks(pl.Series([str(addr), addr.exploded], dtype=pl.String)).to_list() == [net, net]


# ---------------------------------------------------------------------------------------------------
# mask_text
# ---------------------------------------------------------------------------------------------------

MASK_CASES = [
    # paths
    pytest.param("/download/198.51.100.7/file.zip", "/download/198.51.100.0/24/file.zip", id="path-v4"),
    pytest.param("/peers/2001:db8:abcd:12::1/status", "/peers/2001:db8:abcd::/48/status", id="path-v6"),
    pytest.param("/users/jo.doe%40example.com/profile", "/users/[email]/profile", id="path-email-pct40"),
    pytest.param("/u/jo.doe@example.com", "/u/[email]", id="path-email"),
    pytest.param("/u/josé@example.com/x", "/u/[email]/x", id="path-email-idn-local"),
    pytest.param("/u/jo@münchen.de?x", "/u/[email]?x", id="path-email-idn-domain"),
    pytest.param("to=用户@例子.广告", "to=[email]", id="query-email-cjk"),
    # an e-mail match never eats an octet of an address written with fullwidth digits after it
    pytest.param("x@y.２０３.0.113.9", "x@y.203.0.113.0/24", id="email-then-fullwidth-v4"),
    pytest.param("x@y.１９２．１６８.1.20", "x@y.192.168.1.0/24", id="email-then-fullwidth-dots"),
    pytest.param("/ip/::ffff:198.51.100.7", "/ip/198.51.100.0/24", id="path-v4-mapped"),
    # referrers
    pytest.param("http://203.0.113.9:8080/admin", "http://203.0.113.0/24:8080/admin", id="ref-v4-port"),
    pytest.param("http://[2001:db8::1]:8080/admin", "http://[2001:db8::/48]:8080/admin", id="ref-v6-bracket"),
    pytest.param(
        "https://www.example.com/?from=198.51.100.7&to=192.0.2.33",
        "https://www.example.com/?from=198.51.100.0/24&to=192.0.2.0/24",
        id="ref-two-v4",
    ),
    pytest.param("mailto:Jo.Doe+tag@Mail.Example.ORG", "mailto:[email]", id="ref-mailto"),
    pytest.param("ip=2001:0db8:0000:0000:0000:0000:0000:0001", "ip=2001:db8::/48", id="ref-v6-exploded"),
    # user agents
    pytest.param(
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36",
        id="ua-chrome-version-untouched",
    ),
    pytest.param("Chrome/116.0.5845.187", "Chrome/116.0.5845.187", id="ua-four-part-version-untouched"),
    pytest.param("curl/8.4.0 (via 198.51.100.7)", "curl/8.4.0 (via 198.51.100.0/24)", id="ua-v4"),
    pytest.param(
        "bot (+http://www.example.com/bot; ops@example.com)",
        "bot (+http://www.example.com/bot; [email])",
        id="ua-email",
    ),
    pytest.param("probe from fe80::1%eth0 now", "probe from fe80::/48 now", id="ua-v6-zone"),
    pytest.param("xff: 203.0.113.9, 198.51.100.7", "xff: 203.0.113.0/24, 198.51.100.0/24", id="ua-xff-list"),
    # nothing to mask
    pytest.param("at 10:30:00 UTC", "at 10:30:00 UTC", id="time-of-day"),
    pytest.param("version 1.2.3", "version 1.2.3", id="three-part-version"),
    pytest.param("no addresses here", "no addresses here", id="plain"),
    pytest.param("", "", id="empty"),
    pytest.param(None, None, id="null"),
]


@pytest.mark.parametrize(("text", "expected"), MASK_CASES)
def test_mask_text_known_answers(text: str | None, expected: str | None) -> None:
    assert mask(text) == expected


def test_mask_text_batch_matches_row_by_row() -> None:
    texts = [p.values[0] for p in MASK_CASES]
    masker = privacy.ClientMasker()
    together = privacy.mask_text(pl.Series(texts, dtype=pl.String), masker).to_list()
    assert together == [p.values[1] for p in MASK_CASES]


def test_mask_text_uses_configured_prefixes() -> None:
    masker = privacy.ClientMasker(ipv4_prefix=16, ipv6_prefix=32)
    assert mask("/a/198.51.100.7/b/2001:db8:abcd::1", masker) == "/a/198.51.0.0/16/b/2001:db8::/32"


@pytest.mark.parametrize(
    ("text", "address"),
    [
        # wildcard-DNS host names embed the address after a dot (nip.io / sslip.io style)
        pytest.param("http://app.198.51.100.7.nip.io/login", "198.51.100.7", id="v4-after-dot"),
        pytest.param("dial 10.1.198.51.100.7", "198.51.100.7", id="v4-after-dotted-prefix"),
        # an IPv6 address right after a ':' (log prefixes such as "client:")
        pytest.param("client:2001:db8:abcd:12::1 closed", "2001:db8:abcd:12::1", id="v6-after-colon"),
        # an IPv6 address right before a ':' (end of a "field:" or sentence)
        pytest.param("peer 2001:db8:abcd:12::1: reset", "2001:db8:abcd:12::1", id="v6-before-colon"),
        pytest.param("x:2001:db8:1:2:3:4:5:6", "2001:db8:1:2:3:4:5:6", id="v6-full-after-colon"),
    ],
)
def test_mask_text_no_leak_next_to_punctuation(text: str, address: str) -> None:
    out = mask(text)
    assert out is not None
    assert address not in out, out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # '::' between identifiers is not an address to truncate (Perl modules, C++ names in paths)
        pytest.param("/pod/Moose::Role", "/pod/Moose::Role", id="perl-module"),
        pytest.param("/docs/std::vector", "/docs/std::vector", id="cpp-name"),
    ],
)
def test_mask_text_leaves_scope_operators(text: str, expected: str) -> None:
    assert mask(text) == expected


def test_masking_in_parsed_rows() -> None:
    """Paths, queries, referrers and user agents of a parsed line are masked; the row keeps its shape."""
    line = (
        '198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /users/jo.doe%40example.com/ip/203.0.113.9'
        '?next=/x&email=jo%40example.com&host=192.0.2.44 HTTP/1.1" 200 512 '
        '"http://[2001:db8::5]:8080/?ref=jo@example.com" "probe/1.0 (contact ops@example.com; 203.0.113.9) '
        'Chrome/70.0.3538.102"'
    )
    got = parse_one(line)
    assert isinstance(got, dict), got
    assert got["path"] == "/users/[email]/ip/203.0.113.0/24"
    assert got["query"] == "next=/x&email=REDACTED&host=192.0.2.0/24"
    assert got["referrer"] == "http://[2001:db8::/48]:8080/?ref=[email]"
    assert got["user_agent"] == "probe/1.0 (contact [email]; 203.0.113.0/24) Chrome/70.0.3538.102"
    assert got["client_net"] == "198.51.100.0/24"


# A property over random text: no address survives mask_text with a clean boundary on both sides.
_LOGGY = st.sampled_from(list("abcxyzABZ0189 ./:-_=?&%@[]()#,;\"'"))
_TEXT = st.text(_LOGGY, max_size=8)


def _forms(addr: IPAddress) -> set[str]:
    return {str(addr), addr.exploded}


def _is_own_network(addr: IPAddress, masker: privacy.ClientMasker) -> bool:
    """An address whose host bits are zero is its own network: seeing it is not a leak."""
    plain = parse_address(str(addr))
    assert plain is not None
    return masker.network_of(plain).split("/")[0] in _forms(addr)


def _bounded(text: str, form: str, version: int) -> bool:
    inner = "0-9" if version == 4 else "0-9A-Fa-f"
    return re.search(rf"(?<![{inner}]){re.escape(form)}(?![{inner}])", text) is not None


@prop(200)
@given(addr=st.ip_addresses(), before=_TEXT, after=_TEXT, exploded=st.booleans())
def test_mask_text_never_leaks_an_address(addr: IPAddress, before: str, after: str, exploded: bool) -> None:
    masker = privacy.ClientMasker()
    assume(not _is_own_network(addr, masker))
    form = addr.exploded if exploded else str(addr)
    assume(not any(f in before or f in after for f in _forms(addr)))
    out = mask(before + form + after, masker)
    assert out is not None
    for f in _forms(addr):
        assert not _bounded(out, f, addr.version), (before + form + after, out)


@prop(200)
@given(
    addr=st.ip_addresses(), before=_TEXT, after=_TEXT, prefix=st.none() | st.integers(0, 128),
    v4=st.sampled_from([8, 16, 24]), v6=st.sampled_from([32, 48, 64]),
)  # fmt: skip
def test_masking_is_idempotent(
    addr: IPAddress, before: str, after: str, prefix: int | None, v4: int, v6: int
) -> None:
    masker = privacy.ClientMasker(v4, v6)
    text = before + str(addr) + ("" if prefix is None else f"/{prefix}") + after
    once = mask(text, masker)
    assert mask(once, masker) == once, (text, once)


# ---------------------------------------------------------------------------------------------------
# redact_params
# ---------------------------------------------------------------------------------------------------

REDACT_CASES = [
    pytest.param("password=hunter2&lang=en", "password=REDACTED&lang=en", id="password"),
    pytest.param("PassWord=hunter2", "PassWord=REDACTED", id="case-insensitive"),
    pytest.param("token=abc123", "token=REDACTED", id="token"),
    pytest.param("a=1&token=abc123&b=2", "a=1&token=REDACTED&b=2", id="token-middle"),
    pytest.param(
        "user[email]=jo%40example.com&next=/", "user[email]=REDACTED&next=/", id="user-email-brackets"
    ),
    pytest.param("user[password]=hunter2", "user[password]=REDACTED", id="user-password-brackets"),
    pytest.param("access_token=xyz&page=2", "access_token=REDACTED&page=2", id="access-token"),
    pytest.param("api_key=k3y&q=shoes", "api_key=REDACTED&q=shoes", id="api-key"),
    pytest.param("x_token=1&api-key=2", "x_token=REDACTED&api-key=REDACTED", id="suffix-names"),
    pytest.param("a=1;sessionid=zzz", "a=1;sessionid=REDACTED", id="semicolon-separator"),
    pytest.param("token=", "token=REDACTED", id="empty-value"),
    pytest.param(
        "https://www.example.com/login?user=jo&pwd=secret#top",
        "https://www.example.com/login?user=jo&pwd=REDACTED#top",
        id="referrer-with-fragment",
    ),
    pytest.param("next=/reset?token=abc", "next=/reset?token=REDACTED", id="nested-query"),
    # browsers percent-encode '[' and ']' in form submissions: user[password] → user%5Bpassword%5D
    pytest.param(
        "user%5Bpassword%5D=hunter2&x=1", "user%5Bpassword%5D=REDACTED&x=1", id="pct-encoded-brackets"
    ),
    # not sensitive
    pytest.param(
        "keyword=shoes&monkey=1&passage=3&side=2", "keyword=shoes&monkey=1&passage=3&side=2", id="lookalikes"
    ),
    pytest.param("q=password", "q=password", id="sensitive-word-as-value"),
    pytest.param("page=4&sort=asc", "page=4&sort=asc", id="ordinary"),
    pytest.param(None, None, id="null"),
]


@pytest.mark.parametrize(("text", "expected"), REDACT_CASES)
def test_redact_params(text: str | None, expected: str | None) -> None:
    assert redact(text) == expected


def test_redact_params_custom_names() -> None:
    pattern = privacy.sensitive_param_regex(["voucher"])
    values = pl.Series(["voucher=ABC&password=x", "promo[voucher]=Z"], dtype=pl.String)
    assert privacy.redact_params(values, pattern).to_list() == [
        "voucher=REDACTED&password=x",
        "promo[voucher]=REDACTED",
    ]


@prop(60)
@given(
    name=st.sampled_from(["password", "token", "access_token", "api_key", "user[email]", "secret"]),
    value=st.text(
        st.characters(min_codepoint=33, max_codepoint=126, exclude_characters="&;#"), min_size=1, max_size=20
    ),
    other=st.text(st.sampled_from(list("abcxyz0189")), min_size=1, max_size=8),
)
def test_redact_params_property(name: str, value: str, other: str) -> None:
    out = redact(f"page={other}&{name}={value}&lang={other}")
    assert out == f"page={other}&{name}=REDACTED&lang={other}"


def test_masking_functions_never_modify_their_input() -> None:
    masker = privacy.ClientMasker()
    original = ["/a?ip=198.51.100.7&password=x", "joe@example.org", None, "plain"]
    values = pl.Series(original)
    privacy.mask_text(values, masker)
    privacy.redact_params(values, privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS))
    assert values.to_list() == original
    repeated = pl.Series(["ua 203.0.113.9", "ua 203.0.113.9", None, "other"])
    assert privacy.mask_text_distinct(repeated, masker).to_list() == [
        "ua 203.0.113.0/24", "ua 203.0.113.0/24", None, "other",
    ]  # fmt: skip


@pytest.mark.parametrize(("v4", "v6"), [(24, 48), (16, 64), (20, 56), (32, 128), (0, 0)])
def test_addresses_and_networks_agree_with_the_separate_answers(v4: int, v6: int) -> None:
    from pipeline.privacy import digests

    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    values = pl.Series(MIXED, dtype=pl.String)
    addresses, nets = masker.addresses_and_networks(values)
    assert addresses.to_list() == digests.canonical_addresses(values).to_list()
    assert nets.to_list() == privacy.ClientMasker(v4, v6).networks(values).to_list()
    assert values.to_list() == MIXED  # the caller's series is untouched


@prop(200)
@given(addr=st.ip_addresses(), v4=st.integers(0, 32), v6=st.integers(0, 128))
def test_network_of_equals_the_network_object(addr: IPAddress, v4: int, v6: int) -> None:
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=v6)
    prefix = v4 if addr.version == 4 else v6
    if addr in ipaddress.ip_network("2002::/16"):  # 6to4: the embedded IPv4 is cut like an IPv4 address
        prefix = min(prefix, 16 + v4)
    expected = ipaddress.ip_network(f"{addr}/{prefix}", strict=False).with_prefixlen
    assert masker.network_of(addr) == expected


@pytest.mark.parametrize("v4", [8, 16, 24])
def test_a_6to4_network_never_holds_more_of_its_ipv4_address_than_ipv4_prefix(v4: int) -> None:
    embedded = ipaddress.IPv4Address("203.0.113.17")
    addr = ipaddress.IPv6Address((0x2002 << 112) | (int(embedded) << 80) | 1)
    masker = privacy.ClientMasker(ipv4_prefix=v4, ipv6_prefix=48)
    net = ipaddress.IPv6Network(masker.network_of(addr))
    kept = ipaddress.IPv4Address((int(net.network_address) >> 80) & 0xFFFFFFFF)
    assert kept == ipaddress.ip_network(f"{embedded}/{v4}", strict=False).network_address
    assert masker.networks(pl.Series([str(addr)])).to_list() == [str(net)]  # the fast path agrees


def _v6_forms(addr: ipaddress.IPv6Address) -> list[str]:
    """Texts a log may carry for one address: compressed, exploded, upper case, no leading zeros."""
    groups = addr.exploded.split(":")
    return [str(addr), addr.exploded, addr.exploded.upper(), ":".join(g.lstrip("0") or "0" for g in groups)]


@prop(300)
@given(
    number=st.one_of(
        st.integers(0, 2**128 - 1),
        st.integers(0, 2**80 - 1),  # the ::/80 range (mapped, compatible, loopback) takes the reference path
        st.integers(0, 2**16 - 1).map(lambda g: g << 112),  # long zero runs after the first group
        st.lists(st.sampled_from([0, 0, 1, 0xFFFF]), min_size=8, max_size=8).map(
            lambda gs: int("".join(f"{g:04x}" for g in gs), 16)
        ),  # ties between zero runs: the first longest one is compressed
    ),
    v6=st.integers(0, 128),
)
@example(number=int(ipaddress.IPv6Address("2001:db8::1")), v6=48)
@example(number=int(ipaddress.IPv6Address("2001:0:0:1::1")), v6=128)
@example(number=int(ipaddress.IPv6Address("::ffff:198.51.100.7")), v6=48)
def test_ipv6_fast_path_equals_the_ipaddress_reference(number: int, v6: int) -> None:
    """The C-library path (inet_pton/inet_ntop) gives exactly the ``ipaddress`` answers."""
    addr = ipaddress.IPv6Address(number)
    masker = privacy.ClientMasker(ipv6_prefix=v6)
    for text in _v6_forms(addr):
        reference = parse_address(text)
        assert reference is not None
        expected = (str(reference), masker.network_of(reference))
        assert masker.address_and_network(text) == expected, text
        fast = ipv6_fast(text, v6)
        assert fast is None or fast == expected, text
    net = number >> (128 - v6) << (128 - v6)
    if number >> 48 and net >> 48:  # outside ::/80, plain texts never need the reference path
        assert ipv6_fast(str(addr), v6) is not None


@pytest.mark.parametrize(
    "value",
    ["2001:db8::g", "2001:db8:::1", "2001:db8::1::2", "12345::1", "2001:db8:0:0:0:0:0:0:1", ":2001:db8::1",
     "2001:db8::1:", " 2001:db8::1", "2001:db8::1 ", "[2001:db8::1]:443", "fe80::1%eth0", "::ffff:1.2.3.4"],
)  # fmt: skip
def test_ipv6_fast_path_refuses_what_it_does_not_own(value: str) -> None:
    """Malformed text is no address; brackets, zones and dots go to the reference path."""
    masker = privacy.ClientMasker()
    assert ipv6_fast(value, 48) is None
    reference = parse_address(value)
    assert masker.network(value) == (None if reference is None else masker.network_of(reference))


def test_scrub_params_and_text_equals_redact_then_mask() -> None:
    """The one-scan version for query strings and referrers gives exactly the two-step answers."""
    masker = privacy.ClientMasker()
    texts = [p.values[0] for p in (*MASK_CASES, *REDACT_CASES)]
    texts += ["token=abc&ip=198.51.100.7", "mail=jo@example.com", "PASSWORD=x;next=2001:db8::1", "a=b", None]
    values = pl.Series(texts, dtype=pl.String)
    expected = privacy.mask_text(privacy.redact_params(values, SENSITIVE), masker).to_list()
    assert privacy.scrub_params_and_text(values, SENSITIVE, masker).to_list() == expected
    assert expected[-5:-1] == [
        "token=REDACTED&ip=198.51.100.0/24", "mail=REDACTED", "PASSWORD=REDACTED;next=2001:db8::/48", "a=b",
    ]  # fmt: skip
    assert values.to_list() == texts  # the caller's series is untouched


# ---------------------------------------------------------------------------------------------------
# Every string column has a privacy class; fixed-shape columns are validated
# ---------------------------------------------------------------------------------------------------


def test_every_string_column_has_a_privacy_class() -> None:
    """A new string column in schema.py fails here until privacy.STRING_COLUMNS says how it is kept safe."""
    import pyarrow as pa

    from pipeline.store.schema import PAGEVIEWS, REJECTS

    for table, schema in (("pageviews", PAGEVIEWS), ("rejects", REJECTS)):
        strings = {f.name for f in schema if pa.types.is_string(f.type) or pa.types.is_large_string(f.type)}
        assert set(privacy.STRING_COLUMNS[table]) == strings, table
    validated = {c for cols in privacy.STRING_COLUMNS.values() for c, k in cols.items() if k == "validated"}
    assert validated - {"reason"} == set(privacy.VALID)  # reason: parse.REJECT_REASONS


@pytest.mark.parametrize(
    ("request_line", "method", "path", "query", "protocol"),
    [
        pytest.param("GET / HTTP/1.1", "GET", "/", None, "HTTP/1.1", id="http11"),
        pytest.param("GET / HTTP/2", "GET", "/", None, "HTTP/2", id="http2"),
        pytest.param("GET / HTTP/3.0", "GET", "/", None, "HTTP/3.0", id="http3"),
        pytest.param(
            "GET / HTTP/203.0.113.19", "GET", "/ HTTP/203.0.113.0/24", None, None, id="address-as-protocol"
        ),
        pytest.param(
            "GET /a?x=1 HTTP/203.000.113.019", "GET", "/a", "x=1 HTTP/203.0.113.0/24", None, id="in-query"
        ),
        pytest.param(
            "GET / HTTP/2001:db8::19", "GET", "/ HTTP/2001:db8::/48", None, None, id="v6-as-protocol"
        ),
        pytest.param("GET /a FOO/1.0", "GET", "/a FOO/1.0", None, None, id="not-http"),
        pytest.param("GET /a HTTP/1.1.1", "GET", "/a HTTP/1.1.1", None, None, id="three-part"),
    ],
)
def test_protocol_is_validated(
    request_line: str, method: str, path: str, query: str | None, protocol: str | None
) -> None:
    got = parse_one(f'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "{request_line}" 200 5 "-" "ua"')
    assert isinstance(got, dict), got
    assert (got["method"], got["path"], got["query"], got["protocol"]) == (method, path, query, protocol)


_WORDS = st.one_of(
    st.sampled_from(["GET", "post", "M-SEARCH", "HTTP/1.1", "HTTP/2", "HTTP/1.1.1", "HTTP/203.0.113.9"]),
    st.sampled_from([*privacy.USUAL["method"], *privacy.USUAL["protocol"]]),  # (the hash lookup's)
    st.text(alphabet="GETPOSThtp/HTTP.0123:9 -_x\u00e9", max_size=12),
)


@settings(max_examples=200, deadline=None)
@given(methods=st.lists(st.one_of(st.none(), _WORDS), min_size=1, max_size=8), data=st.data())
def test_validated_method_and_protocol_fit_their_class(methods: list[str | None], data: Any) -> None:
    """``rows._validated`` is what keeps method and protocol in their class (``_to_rows`` stores its
    output as is): whatever it is given, each value it returns is null or matches ``privacy.VALID``."""
    n = len(methods)
    protocols = data.draw(st.lists(st.one_of(st.none(), _WORDS), min_size=n, max_size=n))
    paths = data.draw(st.lists(st.one_of(st.none(), _WORDS), min_size=n, max_size=n))
    queries = data.draw(st.lists(st.one_of(st.none(), _WORDS), min_size=n, max_size=n))
    method, _, _, protocol = _validated(
        *(pl.Series(v, dtype=pl.String) for v in (methods, paths, queries, protocols))
    )
    for column, values in (("method", method), ("protocol", protocol)):
        for value in values.to_list():
            assert value is None or re.search(privacy.VALID[column], value), (column, value)

    def fits(column: str, value: str | None) -> bool:
        return value is None or re.search(privacy.VALID[column], value) is not None

    for i, (m, p) in enumerate(zip(methods, protocols, strict=True)):  # and what fits is kept
        if fits("method", m) and fits("protocol", p):
            assert (method[i], protocol[i]) == (m, p)


def test_the_values_settled_by_lookup_fit_their_class() -> None:
    """``privacy.invalid`` accepts ``USUAL`` values without the pattern: each must match it."""
    for column, values in privacy.USUAL.items():
        for value in values:
            assert re.search(privacy.VALID[column], value), (column, value)
            assert not privacy.invalid(column, pl.Series([value, None])).any()


def test_protocol_field_of_split_formats_is_validated() -> None:
    line = '198.51.100.7 [01/Nov/2026:10:00:00 +0000] "GET /a?b=1 HTTP/198.51.100.23" 200'
    got = parse_one(line, '%h %t "%m %U%q %H" %>s')
    assert isinstance(got, dict), got
    assert (got["method"], got["path"], got["query"], got["protocol"]) == (
        "GET", "/a", "b=1 HTTP/198.51.100.0/24", None,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("spec", "line", "domain"),
    [
        pytest.param(
            '%v %h %t "%r" %>s', '203.0.113.80 192.0.2.1 [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200',
            "203.0.113.0/24", id="vhost-v4",
        ),
        pytest.param(
            '%h %t "%r" %>s "%{Host}i"',
            '192.0.2.1 [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 "203.000.113.080:8080"',
            "203.0.113.0/24", id="host-header-padded",
        ),
        pytest.param(
            '%h %t "%r" %>s "%{Host}i"',
            '192.0.2.1 [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 "www.example.test"',
            "www.example.test", id="hostname-untouched",
        ),
    ],
)  # fmt: skip
def test_domain_is_masked(spec: str, line: str, domain: str) -> None:
    got = parse_one(line, spec)
    assert isinstance(got, dict), got
    assert got["domain"] == domain


def test_server_name_is_masked() -> None:
    settings_ = ParseSettings(domain=None, server="203.0.113.80", sensitive_param_regex=SENSITIVE)
    line = b'192.0.2.1 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5\n'
    batch = parse_lines(split_block(line, 0, 65536), resolve("common"), settings_, privacy.ClientMasker())
    assert batch.rows.get_column("server").cast(pl.String).to_list() == ["203.0.113.0/24"]
