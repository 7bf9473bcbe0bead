"""The real client behind proxies: the right-most address of the forwarding chain that is not trusted.

A request that passed a CDN and a load balancer reaches the web server from the balancer; the
visitor's address is in ``X-Forwarded-For`` ("visitor, cdn-edge"), to which every proxy appends the
address it received the request from. Only the entries added by proxies we run or pay for can be
believed: everything to their left was sent by the client and can be forged. So the chain is walked
from the right, starting at the socket peer, skipping trusted proxies (``ingest.trusted_proxies``);
the first address that is not one of them is the client: the rule of nginx's ``real_ip_recursive``
and Apache's ``mod_remoteip``, never the left-most entry.

An entry that is no address ("unknown", garbage) ends the walk: the chain cannot be read further,
and the last address read (a trusted proxy) stands as the client. Without trusted proxies the client
is the peer (or, for formats that log no peer such as Envoy's default, the chain's right-most entry).

Raw addresses are resolved in memory, once per distinct (peer, chain) pair; only the networks of
the result are stored (``rows.py``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

import polars as pl

from pipeline.errors import ConfigError
from pipeline.privacy.addresses import IPAddress, parse_address

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def trusted_networks(specs: Sequence[str], where: str = "ingest.trusted_proxies") -> tuple[Network, ...]:
    """CIDRs (or single addresses) of the proxies whose forwarding entries are believed."""
    out: list[Network] = []
    for spec in specs:
        try:
            out.append(ipaddress.ip_network(spec.strip(), strict=False))
        except ValueError:
            raise ConfigError(f"{where}: {spec!r} is not an address or CIDR network") from None
    return tuple(out)


class ProxyResolver:
    """Picks each row's client address from the socket peer and the forwarding chain."""

    def __init__(self, trusted: Sequence[Network] = ()) -> None:
        self.trusted = tuple(trusted)

    def is_trusted(self, addr: IPAddress) -> bool:
        return any(addr.version == net.version and addr in net for net in self.trusted)

    def resolve(self, peer: pl.Series, chain: pl.Series | None) -> pl.Series:
        """The client address text of each row (as logged, for the masker to parse), or null."""
        peer = peer.cast(pl.String)
        if chain is None or chain.null_count() == len(chain):
            return peer
        if not self.trusted:  # nothing to skip: the peer, else the chain's last hop
            last = chain.str.split(",").list.last().str.strip_chars()
            return peer.fill_null(last.replace("", None))
        pairs = pl.DataFrame({"peer": peer, "chain": chain.cast(pl.String)})
        distinct = pairs.unique(maintain_order=True)
        clients = [self.walk(p, c) for p, c in distinct.iter_rows()]
        resolved = distinct.with_columns(client=pl.Series(clients, dtype=pl.String))
        return pairs.join(resolved, on=["peer", "chain"], how="left", nulls_equal=True).get_column("client")

    def walk(self, peer: str | None, chain: str | None) -> str | None:
        """One (peer, chain): the right-most hop that is not a trusted proxy."""
        hops = [h.strip() for h in chain.split(",")] if chain else []
        if peer is not None:
            hops.append(peer)
        last: str | None = None
        for hop in reversed(hops):
            if not hop:
                continue
            addr = parse_address(hop)
            if addr is None:
                return last if last is not None else hop
            last = hop
            if not self.is_trusted(addr):
                return hop
        return last  # every hop trusted: the left-most one is the client
