"""GeoIP/ASN enrichment (pipeline/privacy/geo.py) against MaxMind's official test databases."""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import maxminddb
import polars as pl
import pytest

from pipeline.errors import ConfigError
from pipeline.privacy.addresses import parse_address
from pipeline.privacy.geo import Geo
from pipeline.privacy.mask import ClientMasker
from tests.conftest import THIRD_PARTY
from tests.privacy.test_geo_data import crafted_database

MM = THIRD_PARTY / "geoip" / "maxmind-test"
GEOIP2_COUNTRY = MM / "GeoIP2-Country-Test.mmdb"
GEOLITE2_COUNTRY = MM / "GeoLite2-Country-Test.mmdb"
ASN = MM / "GeoLite2-ASN-Test.mmdb"
ISP = MM / "GeoIP2-ISP-Test.mmdb"
CITY = MM / "GeoIP2-City-Test.mmdb"
IPV4_ONLY = MM / "MaxMind-DB-test-ipv4-24.mmdb"
INVALID = MM / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"


@pytest.fixture(scope="module")
def geo() -> Iterator[Geo]:
    with Geo(GEOIP2_COUNTRY, ASN) as g:
        yield g


def enrich(g: Geo, addresses: list[str | None]) -> list[tuple[str | None, int | None, str | None]]:
    out = g.enrich(pl.Series(addresses, dtype=pl.String))
    assert out.schema == pl.Schema({"country": pl.String, "asn": pl.Int64, "as_org": pl.String})
    assert out.height == len(addresses)
    return list(out.iter_rows())


def countries(g: Geo, addresses: list[str]) -> dict[str, str | None]:
    return dict(zip(addresses, g.enrich(pl.Series(addresses)).get_column("country").to_list(), strict=True))


def network_table(name: str) -> list[tuple[str, dict[str, Any]]]:
    """(first address of each network, record) from the JSON the test database was built from."""
    entries = json.loads((MM / "source-data" / name).read_text())
    return [
        (str(ipaddress.ip_network(net, strict=False).network_address), rec)
        for e in entries
        for net, rec in e.items()
    ]


# --- country ---------------------------------------------------------------------------------------

COUNTRY_TABLE = {
    "81.2.69.160": "GB",  # registered_country is US: the location country must win
    "216.160.83.56": "US",  # registered GB
    "89.160.20.112": "SE",  # registered DE
    "2.125.160.216": "GB",  # registered FR
    "67.43.156.0": "BT",
    "202.196.224.0": "PH",
    "2001:218::1": "JP",
    "2a02:d300::1": "UA",
    "10.0.0.1": None,
    "127.0.0.1": None,
    "81.2.69.0": None,  # 81.2.69.160 truncated to /24: not in the database
}


@pytest.mark.parametrize("db", [GEOIP2_COUNTRY, GEOLITE2_COUNTRY, CITY], ids=lambda p: p.stem)
def test_country_known_answers(db: Path) -> None:
    with Geo(db, None) as g:
        assert countries(g, list(COUNTRY_TABLE)) == COUNTRY_TABLE


def test_175_16_199_0_differs_between_geoip2_and_geolite2() -> None:
    with Geo(GEOIP2_COUNTRY, None) as full, Geo(GEOLITE2_COUNTRY, None) as lite:
        assert countries(full, ["175.16.199.0"]) == {"175.16.199.0": "CN"}
        assert countries(lite, ["175.16.199.0"]) == {"175.16.199.0": None}


@pytest.mark.parametrize(
    "raw", ["::81.2.69.160", "::ffff:81.2.69.160", "[::ffff:81.2.69.160]:443", "81.2.69.160:80"]
)
def test_caller_canonicalises_mapped_and_compatible_forms(geo: Geo, raw: str) -> None:
    canonical = str(parse_address(raw))
    assert canonical == "81.2.69.160"
    assert countries(geo, [canonical]) == {"81.2.69.160": "GB"}


def test_enrich_before_truncating(geo: Geo) -> None:
    assert ClientMasker(24, 48).network("81.2.69.160") == "81.2.69.0/24"
    assert countries(geo, ["81.2.69.160", "81.2.69.0"]) == {"81.2.69.160": "GB", "81.2.69.0": None}


@pytest.mark.parametrize("name", ["GeoIP2-Country-Test", "GeoLite2-Country-Test"])
def test_every_source_network_country(name: str) -> None:
    table = network_table(f"{name}.json")
    # location country only: a record without `country` is null even when registered_country is set
    want = [rec.get("country", {}).get("iso_code") for _, rec in table]
    assert any(rec["registered_country"]["iso_code"] != rec["country"]["iso_code"] for _, rec in table
               if "country" in rec and "registered_country" in rec)  # fmt: skip
    with Geo(MM / f"{name}.mmdb", None) as g:
        got = g.enrich(pl.Series([a for a, _ in table])).get_column("country").to_list()
    assert got == want


def test_no_fallback_to_registered_country(tmp_path: Path) -> None:
    """No test-database record has registered_country without country: a database written here."""
    path = tmp_path / "crafted.mmdb"
    crafted_database(path, [
        {"registered_country": {"iso_code": "US"}},
        {"country": {"iso_code": "DE"}, "registered_country": {"iso_code": "US"}},
        {"represented_country": {"iso_code": "US"}},
        {"registered_country": {"iso_code": "US"}, "country": {"iso_code": "DE"}},  # the walk steps over none
    ] * 2)  # fmt: skip
    with Geo(path, None) as g:
        assert countries(g, ["1.0.0.1", "33.0.0.1", "65.0.0.1", "97.0.0.1"]) == {
            "1.0.0.1": None,
            "33.0.0.1": "DE",
            "65.0.0.1": None,
            "97.0.0.1": "DE",
        }


# --- ASN -------------------------------------------------------------------------------------------

ASN_TABLE = {
    "1.128.0.0": (1221, "Telstra Pty Ltd"),
    "1.128.0.1": (1221, "Telstra Pty Ltd"),
    "12.81.92.0": (7018, "AT&T Services"),
    "12.81.96.1": (7018, None),  # the organisation key is absent while the ASN is present
    "2600:6000::1": (237, "Merit Network Inc."),
    "2001:1700::1": (6730, "Sunrise Communications AG"),
    "149.101.100.0": (6167, "CELLCO-PART"),
    "10.0.0.1": (None, None),
    "81.2.69.160": (None, None),
}


@pytest.mark.parametrize("db", [ASN, ISP], ids=lambda p: p.stem)
def test_asn_known_answers(db: Path) -> None:
    with Geo(None, db) as g:
        rows = enrich(g, list(ASN_TABLE))
    got = {a: (asn, org) for a, (_, asn, org) in zip(ASN_TABLE, rows, strict=True)}
    if db == ISP:  # a different build: compare only what both databases hold
        assert (
            got["1.128.0.1"] == ASN_TABLE["1.128.0.1"] and got["149.101.100.0"] == ASN_TABLE["149.101.100.0"]
        )
    else:
        assert got == ASN_TABLE


def test_every_source_network_asn(geo: Geo) -> None:
    table = network_table("GeoLite2-ASN-Test.json")
    assert len(table) == 720
    out = geo.enrich(pl.Series([a for a, _ in table]))
    want = [(r["autonomous_system_number"], r.get("autonomous_system_organization")) for _, r in table]
    assert list(zip(out.get_column("asn").to_list(), out.get_column("as_org").to_list(), strict=True)) == want


def test_country_and_asn_together(geo: Geo) -> None:
    assert enrich(geo, []) == []
    assert enrich(geo, [None, None]) == [(None, None, None)] * 2
    assert enrich(geo, ["81.2.69.160", None, "1.128.0.1", "2600:6000::1", "81.2.69.160"]) == [
        ("GB", None, None),
        (None, None, None),
        (None, 1221, "Telstra Pty Ltd"),
        (None, 237, "Merit Network Inc."),
        ("GB", None, None),
    ]


# --- error paths -----------------------------------------------------------------------------------


def relabelled_ipv4_only_db(tmp_path: Path) -> Path:
    """The IPv4-only test DB has type "Test"; relabel it "City" (same length) to pass the type check."""
    data = IPV4_ONLY.read_bytes()
    assert data.count(b"database_type\x44Test") == 1  # 0x44: UTF-8 string of 4 bytes
    path = tmp_path / "ipv4-only.mmdb"
    path.write_bytes(data.replace(b"database_type\x44Test", b"database_type\x44City"))
    return path


def test_ipv6_on_ipv4_only_database_is_null(tmp_path: Path) -> None:
    path = relabelled_ipv4_only_db(tmp_path)
    with maxminddb.open_database(str(path)) as reader, pytest.raises(ValueError, match="IPv4-only"):
        reader.get("2001:db8::1")  # what Geo must not let through
    with Geo(path, None) as g:
        assert enrich(g, ["2001:db8::1", "1.1.1.1", None]) == [(None, None, None)] * 3
        assert g.errors == 0


def test_other_lookup_errors_are_null_and_counted() -> None:
    with Geo(GEOIP2_COUNTRY, ASN) as g:
        assert enrich(g, ["not-an-address", "81.2.69.160"]) == [(None, None, None), ("GB", None, None)]
        assert g.errors == 2  # one per database


@pytest.mark.parametrize(
    ("country_db", "asn_db", "message"),
    [
        (INVALID, None, "not a valid MaxMind DB"),
        (MM / "LICENSE-MIT", None, "not a valid MaxMind DB"),
        (MM / "missing.mmdb", None, "not found"),
        (None, MM / "missing.mmdb", "not found"),
        (ASN, None, "type 'GeoLite2-ASN'; expected a Country or City database"),
        (GEOIP2_COUNTRY, GEOIP2_COUNTRY, "type 'GeoIP2-Country'; expected a ASN or ISP database"),
        (IPV4_ONLY, None, "type 'Test'"),
    ],
)
def test_bad_databases_are_config_errors(country_db: Path | None, asn_db: Path | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Geo(country_db, asn_db)
    text = str(info.value)
    assert "\n" not in text and str(country_db or asn_db) in text
    assert info.value.exit_code == 3


def test_a_database_that_is_no_regular_file_is_refused_without_opening_it(tmp_path: Path) -> None:
    # Found by an operator pass: a FIFO as country_db hung `config check` and `ingest` in open().
    fifo = tmp_path / "country.mmdb"
    os.mkfifo(fifo)
    for path in (fifo, tmp_path):
        with pytest.raises(ConfigError, match="is not a regular file"):
            Geo(path, None)


# --- cache, provenance, lifecycle ------------------------------------------------------------------


def test_one_decode_per_distinct_record_and_cache_across_calls() -> None:
    with Geo(GEOIP2_COUNTRY, ASN) as g:
        batch = pl.Series(["81.2.69.160", "1.128.0.1", None, "2001:218::1"] * 25_000)
        first = g.enrich(batch)
        assert g.lookups == 3
        assert first.get_column("country").to_list()[:4] == ["GB", None, None, "JP"]
        assert g.enrich(batch).equals(first)
        assert g.lookups == 3  # second call: no new lookups
        g.enrich(pl.Series(["89.160.20.112", "81.2.69.160"]))
        assert g.lookups == 5  # one new record in each database (89.160.20.112's); GB's is known


def test_cache_is_bounded() -> None:
    with Geo(GEOIP2_COUNTRY, None, cache_max=2) as g:
        g.enrich(pl.Series(["81.2.69.160", "216.160.83.56", "89.160.20.112"]))
        g.enrich(pl.Series(["2001:218::1"]))  # over the bound: only this batch stays cached
        assert g.lookups == 4
        assert countries(g, ["81.2.69.160"]) == {"81.2.69.160": "GB"}
        assert g.lookups == 5  # evicted, looked up again


def test_provenance() -> None:
    built = {
        p: dt.datetime.fromtimestamp(maxminddb.open_database(str(p)).metadata().build_epoch, dt.UTC)
        for p in (GEOIP2_COUNTRY, ASN)
    }
    with Geo(GEOIP2_COUNTRY, ASN) as g:
        text = g.provenance()
    assert text == (
        f"GeoIP2-Country {built[GEOIP2_COUNTRY]:%Y-%m-%dT%H:%M:%SZ}; GeoLite2-ASN {built[ASN]:%Y-%m-%dT%H:%M:%SZ}"
    )
    with Geo(None, ASN) as g:
        assert g.provenance() == f"GeoLite2-ASN {built[ASN]:%Y-%m-%dT%H:%M:%SZ}"


def test_disabled_and_closed() -> None:
    g = Geo(None, None)
    assert not g.enabled and g.provenance() is None
    assert enrich(g, ["81.2.69.160", None]) == [(None, None, None)] * 2
    g = Geo(GEOIP2_COUNTRY, None)
    assert g.enabled
    g.close()
    g.close()  # idempotent
    assert not g.enabled and g.provenance() is None
