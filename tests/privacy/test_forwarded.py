"""The real client behind proxies: right-most untrusted hop of X-Forwarded-For, never the left-most."""

from __future__ import annotations

import polars as pl
import pytest

from pipeline import config
from pipeline.errors import ConfigError
from pipeline.privacy.forwarded import ProxyResolver, trusted_networks

# a CDN range, the load balancer's subnet and the local reverse proxy
TRUSTED = ProxyResolver(trusted_networks(["192.0.2.0/24", "10.0.0.0/8", "127.0.0.1", "2001:db8:ffff::/48"]))

CASES = [
    # (peer, X-Forwarded-For as logged, expected client)
    ("203.0.113.7", None, "203.0.113.7"),  # no chain: the peer
    ("203.0.113.7", "198.51.100.1", "203.0.113.7"),  # an untrusted peer's chain is not believed
    ("10.0.0.5", "198.51.100.1", "198.51.100.1"),  # behind the balancer
    ("10.0.0.5", "198.51.100.1, 192.0.2.10", "198.51.100.1"),  # CDN then balancer
    # a forged left-most entry: the client wrote "1.1.1.1" itself; the CDN appended the real address
    ("10.0.0.5", "1.1.1.1, 198.51.100.1, 192.0.2.10", "198.51.100.1"),
    ("10.0.0.5", "198.51.100.1,192.0.2.10", "198.51.100.1"),  # no spaces
    ("10.0.0.5", "[2001:db8:1::7]:4711, 192.0.2.10", "[2001:db8:1::7]:4711"),  # bracketed IPv6 with port
    ("127.0.0.1", "198.51.100.1:5555", "198.51.100.1:5555"),  # IPv4 with port
    ("10.0.0.5", "192.0.2.10, 10.0.0.9", "192.0.2.10"),  # every hop trusted: the left-most
    ("10.0.0.5", "unknown, 192.0.2.10", "192.0.2.10"),  # garbage ends the walk at the last proxy
    ("10.0.0.5", "198.51.100.1, junk", "10.0.0.5"),
    ("10.0.0.5", "", "10.0.0.5"),
    (None, "198.51.100.1, 192.0.2.10", "198.51.100.1"),  # no peer logged (Envoy's default format)
    ("2001:db8:ffff::1", "2001:db8:2::9", "2001:db8:2::9"),
    ("::ffff:10.0.0.5", "198.51.100.1", "198.51.100.1"),  # an IPv4-mapped peer is the IPv4 address
]


@pytest.mark.parametrize(("peer", "chain", "expected"), CASES)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str | None, chain: str | None, expected: str
) -> None:
    assert TRUSTED.walk(peer, chain) == expected


def test_resolve_is_walk_on_every_row() -> None:
    peers = pl.Series([c[0] for c in CASES], dtype=pl.String)
    chains = pl.Series([c[1] for c in CASES], dtype=pl.String)
    assert TRUSTED.resolve(peers, chains).to_list() == [c[2] for c in CASES]
    # repeated pairs are resolved once and joined back in row order
    assert TRUSTED.resolve(pl.concat([peers, peers]), pl.concat([chains, chains])).to_list() == [
        c[2] for c in CASES + CASES
    ]


def test_without_trusted_proxies_the_peer_is_the_client() -> None:
    none = ProxyResolver()
    peers = pl.Series(["203.0.113.7", None, None], dtype=pl.String)
    chains = pl.Series(["1.1.1.1, 198.51.100.1", "1.1.1.1, 198.51.100.2", None], dtype=pl.String)
    assert none.resolve(peers, chains).to_list() == ["203.0.113.7", "198.51.100.2", None]
    assert none.resolve(peers, None).to_list() == peers.to_list()


def test_trusted_proxies_are_checked_in_the_config() -> None:
    cfg = config.from_dict({"ingest": {"trusted_proxies": ["10.0.0.0/8", "2001:db8::/32", "127.0.0.1"]}})
    assert cfg.ingest.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32", "127.0.0.1")
    with pytest.raises(ConfigError, match=r"ingest.trusted_proxies: 'cdn' is not an address or CIDR"):
        config.from_dict({"ingest": {"trusted_proxies": ["cdn"]}})
    with pytest.raises(ConfigError, match="invalid value"):
        config.from_dict({"ingest": {"trusted_proxies": "10.0.0.0/8"}})
