"""Pseudonyms and GeoIP through the real ingest: known answers, stability, destroyed keys, failures."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from pipeline.cli import main
from pipeline.privacy import digests, keys
from tests.conftest import GEOIP, ingest_paths, store_rows

LINE = '{ip} - - [{day}/{mon}/2026:12:00:00 +0000] "GET /{tag} HTTP/1.1" 200 1 "-" "ua"\n'


def write(path: Path, entries: list[tuple[str, str, str, str]]) -> None:
    path.write_text("".join(LINE.format(ip=ip, day=d, mon=m, tag=t) for ip, d, m, t in entries))


def by_tag(store: Path) -> dict[str, dict[str, object]]:
    return {str(r["path"]).lstrip("/"): r for r in store_rows(store)}


def test_geoip_known_answers_use_the_full_address(tmp_path: Path) -> None:
    log, store = tmp_path / "access.log", tmp_path / "store"
    write(log, [
        ("81.2.69.160", "05", "Nov", "gb"), ("2001:218::1", "05", "Nov", "jp"), ("1.128.0.1", "05", "Nov", "telstra"),
        ("12.81.96.1", "05", "Nov", "att"), ("10.0.0.1", "05", "Nov", "private"), ("host.example.net", "05", "Nov", "name"),
        ("::ffff:81.2.69.160", "05", "Nov", "mapped"),
    ])  # fmt: skip
    report = ingest_paths(store, [log], geoip=True)
    rows = by_tag(store)
    got = {t: (r["client_net"], r["country"], r["asn"], r["as_org"]) for t, r in rows.items()}
    assert got == {
        "gb": ("81.2.69.0/24", "GB", None, None),  # 81.2.69.0 itself is not in the database
        "jp": ("2001:218::/48", "JP", None, None),
        "telstra": ("1.128.0.0/24", None, 1221, "Telstra Pty Ltd"),
        "att": ("12.81.96.0/24", None, 7018, None),  # in the ASN test DB, not the country one
        "private": ("10.0.0.0/24", None, None, None),
        "name": (None, None, None, None),
        "mapped": ("81.2.69.0/24", "GB", None, None),
    }
    assert rows["gb"]["client_id"] == rows["mapped"]["client_id"]  # same canonical address
    assert rows["name"]["client_id"] is None
    assert report.enrichment.geo is not None and "GeoIP2-Country" in report.enrichment.geo
    assert {r["geo_db"] for r in rows.values()} == {report.enrichment.geo}


def test_pseudonyms_per_period_and_stable_across_runs(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write(tmp_path / "a.log", [("198.51.100.7", "30", "Oct", "oct"), ("198.51.100.7", "02", "Nov", "nov1"),
                               ("198.51.100.8", "02", "Nov", "other")])  # fmt: skip
    ingest_paths(store, [tmp_path / "a.log"])
    write(tmp_path / "b.log", [("198.51.100.7:51000", "20", "Nov", "nov2")])
    ingest_paths(store, [tmp_path / "b.log"])  # a later run, same key directory
    rows = by_tag(store)
    assert rows["nov1"]["client_id"] == rows["nov2"]["client_id"]
    assert rows["nov1"]["client_id"] != rows["oct"]["client_id"]
    assert rows["nov1"]["client_id"] != rows["other"]["client_id"]
    found = digests.lookup_pseudonyms("198.51.100.7", keys.KeyStore(Path(str(store) + "-keys")))
    assert found == {"2026-10": rows["oct"]["client_id"], "2026-11": rows["nov1"]["client_id"]}


def test_destroyed_key_is_never_recreated(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write(tmp_path / "a.log", [("198.51.100.7", "30", "Oct", "oct"), ("198.51.100.7", "02", "Nov", "nov")])
    ingest_paths(store, [tmp_path / "a.log"])
    ks = keys.KeyStore(Path(str(store) + "-keys"))
    assert ks.destroy_before(keys.period_bounds("2026-11")[0]) == ["2026-10"]
    write(tmp_path / "late.log", [("198.51.100.7", "31", "Oct", "late")])
    report = ingest_paths(store, [tmp_path / "late.log"])
    assert report.key_destroyed_rows == 1 and by_tag(store)["late"]["client_id"] is None
    assert ks.status("2026-10") == "destroyed"
    assert digests.lookup_pseudonyms("198.51.100.7", ks)["2026-10"] == "destroyed"
    # a batch across the destroyed period and a live one counts only the destroyed period's rows
    late = [
        ("198.51.100.7", "31", "Oct", "late2"),
        ("203.0.113.5", "31", "Oct", "late3"),
        ("198.51.100.7", "03", "Nov", "nov3"),
    ]
    write(tmp_path / "late2.log", late)
    report = ingest_paths(store, [tmp_path / "late2.log"])
    rows = by_tag(store)
    assert (
        report.key_destroyed_rows == 2
        and rows["late2"]["client_id"] is None
        and rows["late3"]["client_id"] is None
    )
    assert rows["nov3"]["client_id"] == rows["nov"]["client_id"]


def test_pseudonyms_off(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    store = tmp_path / "store"
    cfg.write_text(f'store = "{store}"\n[privacy]\npseudonym = "off"\n')
    write(tmp_path / "a.log", [("198.51.100.7", "30", "Oct", "x")])
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "a.log"), "--config", str(cfg), "--final"])
    assert result.exit_code == 0 and "pseudonyms off" in result.stdout
    # no pseudonym key; the key directory holds only the custody keys (keyed chain-of-custody digests)
    key_dir = Path(str(store) + "-keys")
    assert by_tag(store)["x"]["client_id"] is None and not list(key_dir.glob("*.key"))
    assert [p.name for p in key_dir.iterdir()] == ["custody"]


def test_broken_geoip_database_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'store = "{tmp_path / "s"}"\n[geoip]\ncountry_db = "{GEOIP / "GeoIP2-City-Test-Invalid-Node-Count.mmdb"}"\n'
    )
    (tmp_path / "a.log").write_text(LINE.format(ip="198.51.100.7", day="01", mon="Nov", tag="x"))
    result = CliRunner().invoke(main, ["ingest", str(tmp_path / "a.log"), "--config", str(cfg)])
    assert result.exit_code == 3 and "GeoIP2-City-Test-Invalid-Node-Count.mmdb" in result.stderr
    assert not (tmp_path / "s" / "pageviews").exists()


def test_keys_cli_lists_and_destroys(tmp_path: Path) -> None:
    store = tmp_path / "store"
    write(tmp_path / "a.log", [("198.51.100.7", "30", "Oct", "oct"), ("198.51.100.7", "02", "Nov", "nov")])
    ingest_paths(store, [tmp_path / "a.log"])
    out = CliRunner().invoke(main, ["keys", "list", "--store", str(store)]).stdout
    assert "2026-10" in out and "2026-11" in out
    key_bytes = (Path(str(store) + "-keys") / "2026-10.key").read_bytes()
    assert key_bytes.hex() not in out
    result = CliRunner().invoke(
        main, ["keys", "destroy", "--before", "2026-11-01", "--request", "DSR-1", "--store", str(store)]
    )
    assert result.exit_code == 0 and "destroyed 1 key(s): 2026-10" in result.stdout
    (record,) = (store / "_deletions").rglob("*.json")  # proof of deletion, without key bytes
    text = record.read_text()
    assert "destroy-keys" in text and "2026-10" in text and key_bytes.hex() not in text
