"""The vectorised search-tree walk (pipeline/privacy/geo_tree.py) against MaxMind's own reader.

Every answer ``Geo`` gives comes from the record the walk names, so the walk must name, for every
address, the record the reader finds: checked on MaxMind's test databases (28-bit records, IPv6
trees; 24-bit, IPv4-only) and on the same trees re-encoded with 24- and 32-bit records, for the first
and last address of every network in the databases' source data and for random addresses.
"""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import maxminddb
import numpy as np
import polars as pl
import pytest

from pipeline.privacy import geo as geo_module
from pipeline.privacy.geo import Geo
from pipeline.privacy.geo_tree import INVALID, NOT_FOUND, SearchTree
from tests.conftest import THIRD_PARTY

MM = THIRD_PARTY / "geoip" / "maxmind-test"
DATABASES = [
    "GeoIP2-Country-Test.mmdb", "GeoIP2-City-Test.mmdb", "GeoLite2-ASN-Test.mmdb", "GeoIP2-ISP-Test.mmdb",
    "GeoLite2-City-Test.mmdb", "MaxMind-DB-test-ipv4-24.mmdb",
]  # fmt: skip


def reencoded(source: Path, record_size: int, out: Path) -> Path:
    """``source`` with its search tree rewritten in ``record_size``-bit records (same records:
    data pointers are relative to the data section, so only the tree and the metadata change)."""
    data = source.read_bytes()
    meta = maxminddb.open_database(str(source)).metadata()
    old = meta.record_size
    nodes = meta.node_count
    tree = data[: nodes * old // 4]
    records: list[int] = []
    for n in range(nodes):
        node = tree[n * old // 4 : (n + 1) * old // 4]
        if old == 28:
            left = ((node[3] & 0xF0) << 20) | int.from_bytes(node[0:3], "big")
            right = ((node[3] & 0x0F) << 24) | int.from_bytes(node[4:7], "big")
        else:
            half = old // 8
            left, right = int.from_bytes(node[:half], "big"), int.from_bytes(node[half:], "big")
        records += [left, right]
    if record_size == 28:
        packed = b"".join(
            r[0].to_bytes(4, "big")[1:] + bytes([((r[0] >> 20) & 0xF0) | ((r[1] >> 24) & 0x0F)])
            + r[1].to_bytes(4, "big")[1:]
            for r in zip(records[::2], records[1::2], strict=True)
        )  # fmt: skip
    else:
        packed = b"".join(r.to_bytes(record_size // 8, "big") for r in records)
    rest = data[nodes * old // 4 :]
    marker = b"Krecord_size\xa1" + bytes([old])
    assert rest.count(marker) == 1
    out.write_bytes(packed + rest.replace(marker, b"Krecord_size\xa1" + bytes([record_size])))
    return out


def probe_addresses(name: str) -> list[str]:
    """First and last address of every network in the source data, plus random ones (fixed seed)."""
    found: list[str] = []
    source = MM / "source-data" / name.replace(".mmdb", ".json")
    if source.exists():
        for entry in json.loads(source.read_text()):
            for net in entry:
                n = ipaddress.ip_network(net, strict=False)
                found += [str(n.network_address), str(n.broadcast_address)]
    found += [f"1.1.1.{i}" for i in range(64)]  # the IPv4-only test tree's networks
    rng = random.Random(7)
    found += [str(ipaddress.IPv4Address(rng.getrandbits(32))) for _ in range(2000)]
    found += [str(ipaddress.IPv6Address(rng.getrandbits(128))) for _ in range(500)]
    found += [str(ipaddress.IPv6Address((0x2001_0218 << 96) | rng.getrandbits(96))) for _ in range(200)]
    return found


def record_identities(path: Path, addresses: list[str]) -> tuple[list[int], list[object]]:
    meta = maxminddb.open_database(str(path)).metadata()
    tree = SearchTree(path, meta.node_count, meta.record_size, meta.ip_version)
    try:
        return tree.records(pl.Series(addresses, dtype=pl.String)).tolist(), []
    finally:
        tree.close()


@pytest.mark.parametrize("name", DATABASES)
@pytest.mark.parametrize("record_size", [None, 24, 28, 32])
def test_walk_finds_the_readers_record(name: str, record_size: int | None, tmp_path: Path) -> None:
    path = MM / name if record_size is None else reencoded(MM / name, record_size, tmp_path / name)
    addresses = probe_addresses(name)
    records, _ = record_identities(path, addresses)
    with maxminddb.open_database(str(path)) as reader:
        ipv4_only = reader.metadata().ip_version == 4
        by_record: dict[int, object] = {}
        for address, record in zip(addresses, records, strict=True):
            if ipv4_only and ":" in address:
                assert record == NOT_FOUND  # the reader refuses these; Geo answers null
                continue
            expected = reader.get(address)
            if expected is None:
                assert record == NOT_FOUND, address
                continue
            assert record > 0, address
            # one record, one answer: the identity Geo caches answers by
            assert by_record.setdefault(record, expected) == expected, address
    assert any(r > 0 for r in records)


def test_not_addresses_are_invalid() -> None:
    records, _ = record_identities(
        MM / "GeoIP2-Country-Test.mmdb", ["not-an-address", "999.1.1.1", "fe80::1%eth0", "", "1.2.3"]
    )
    assert records == [INVALID] * 5


def test_geo_decodes_each_record_once() -> None:
    """Many addresses of one network (one record) cost one decode; answers are the reader's."""
    many = [f"81.2.69.{i}" for i in range(160, 192)] + ["2001:218::1", "2001:218::2"]
    with Geo(MM / "GeoIP2-Country-Test.mmdb", None) as g:
        out = g.enrich(pl.Series(many * 10)).get_column("country").to_list()
        assert out == (["GB"] * 32 + ["JP"] * 2) * 10
        assert g.lookups == 2
        g.enrich(pl.Series(["81.2.69.161"]))
        assert g.lookups == 2  # a record decoded in an earlier batch is not decoded again


@pytest.mark.parametrize("record_size", [24, 32])
def test_geo_on_other_record_sizes(record_size: int, tmp_path: Path) -> None:
    country = reencoded(MM / "GeoIP2-Country-Test.mmdb", record_size, tmp_path / "c.mmdb")
    asn = reencoded(MM / "GeoLite2-ASN-Test.mmdb", record_size, tmp_path / "a.mmdb")
    addresses = ["81.2.69.160", "1.128.0.1", "2001:218::1", "89.160.20.112", None]
    with Geo(country, asn) as g, Geo(MM / "GeoIP2-Country-Test.mmdb", MM / "GeoLite2-ASN-Test.mmdb") as ref:
        series = pl.Series(addresses, dtype=pl.String)
        assert g.enrich(series).equals(ref.enrich(series))
        assert np.asarray(g.enrich(series).get_column("country").to_list()[:3]).tolist() == ["GB", None, "JP"]


def test_a_database_replaced_while_it_is_opened_is_opened_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """geoipupdate renames a new file over the old one: if that happens between the reader's open and
    the tree's, the tree would name records of the new file that the old reader decodes. Geo opens
    both again until they map the same file."""
    path = tmp_path / "country.mmdb"
    path.write_bytes((MM / "GeoIP2-Country-Test.mmdb").read_bytes())
    newer = tmp_path / "new.mmdb"
    newer.write_bytes((MM / "GeoIP2-City-Test.mmdb").read_bytes())  # other networks and answers
    real = geo_module.SearchTree
    swaps = []

    def swapping(*args: object) -> SearchTree:
        if not swaps:
            swaps.append(1)
            newer.replace(path)  # the update lands between the two opens
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(geo_module, "SearchTree", swapping)
    probe = pl.Series(probe_addresses("GeoIP2-Country-Test.mmdb")[:400], dtype=pl.String)
    with Geo(path, None) as g:
        got = g.enrich(probe)
        assert (g.provenance() or "").startswith("GeoIP2-City")  # the reader maps the new file too
    monkeypatch.setattr(geo_module, "SearchTree", real)
    with Geo(MM / "GeoIP2-City-Test.mmdb", None) as ref:
        assert got.equals(ref.enrich(probe))
    assert swaps == [1]
