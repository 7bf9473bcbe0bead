"""Commands that delete or read by what the caller names fail closed when the name is wrong.

Found by review: ``erase --domain ""`` erased every row; ``keys destroy`` with a --store that is no
store destroyed keys with no audit entry, proof or key-directory check, and destroyed the keys of
months a legal hold keeps; any folder passed as --store was queried ("no rows", exit 0), had an
``_audit/`` planted in it, and made ``status`` say OK.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import ingest_paths, store_rows

LINE = '198.51.100.7 - - [{day}/{mon}/2026:12:00:00 +0000] "GET /{tag} HTTP/1.1" 200 1 "-" "ua"\n'


def invoke(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.output


@pytest.fixture
def store(tmp_path: Path) -> Path:
    log = tmp_path / "a.log"
    log.write_text(LINE.format(day="30", mon="Oct", tag="oct") + LINE.format(day="02", mon="Nov", tag="nov"))
    root = tmp_path / "store"
    ingest_paths(root, [log], domain="shop.example")
    return root


@pytest.mark.parametrize(
    "args",
    [
        ("erase", "--domain", "", "--request", "DSR-1"),
        ("erase", "--domain", "  ", "--request", "DSR-1"),
        ("erase", "--domain", "", "--request", "DSR-1", "--dry-run"),
        ("hold", "add", "--case", "H-1", "--reason", "r", "--domain", ""),
        ("export", "--domain", "", "--request", "DSR-1", "--output", "out.csv"),
        ("investigate", "path", "", "--case", "C-1"),
    ],
)
def test_an_empty_selector_is_a_usage_error(store: Path, args: tuple[str, ...]) -> None:
    before = sorted(store_rows(store), key=str)
    code, out = invoke(*args, "--store", str(store))
    assert code == 2 and "empty" in out, out
    assert sorted(store_rows(store), key=str) == before
    assert not (store / "_holds").exists()


def test_an_empty_domain_is_refused_by_the_library_too(store: Path) -> None:
    from pipeline import config
    from pipeline.errors import UsageError
    from pipeline.lifecycle import erase, holds

    cfg = config.from_dict({"store": str(store), "privacy": {"key_dir": str(store) + "-keys"}})
    with pytest.raises(UsageError, match="empty"):
        erase.erase_unaudited(cfg, domain="")
    with pytest.raises(UsageError, match="empty"):
        holds.add_hold(store, "H-1", "r", domain=" ")
    assert len(store_rows(store)) == 2


def keys_left(store: Path) -> list[str]:
    return sorted(p.name for p in Path(f"{store}-keys").glob("*.key"))


def test_keys_are_destroyed_only_with_their_store(store: Path, tmp_path: Path) -> None:
    keys = keys_left(store)
    assert keys == ["2026-10.key", "2026-11.key"]
    elsewhere = tmp_path / "no-store"
    elsewhere.mkdir()
    code, out = invoke(
        "keys", "destroy", "--before", "2026-12-01", "--case", "C-1",
        "--store", str(elsewhere), "--key-dir", f"{store}-keys",
    )  # fmt: skip
    assert code == 6 and "no store at" in out
    assert keys_left(store) == keys and list(elsewhere.iterdir()) == []


def test_a_key_destruction_stopped_after_it_destroyed_keeps_its_proof(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: the deletion record of ``keys destroy`` was written after the keys were gone,
    so a stop in between (SIGTERM, Ctrl-C) left destroyed keys without proof, and the re-run destroyed
    nothing to record. The record is now written first, then completed by the next run."""
    import json

    from pipeline.privacy.keys import KeyStore

    destroy = KeyStore.destroy_before

    def destroy_then_stop(self: KeyStore, before: object) -> list[str]:
        destroy(self, before)  # type: ignore[arg-type]
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(KeyStore, "destroy_before", destroy_then_stop)
        code, _ = invoke("keys", "destroy", "--before", "2026-11-01", "--case", "C-1", "--store", str(store))
    assert code == 130 and keys_left(store) == ["2026-11.key"]
    (record,) = [json.loads(p.read_text()) for p in (store / "_deletions").glob("*.json")]
    assert (record["status"], record["keys_pending"]) == ("running", ["2026-10"])
    code, _ = invoke("keys", "destroy", "--before", "2026-11-01", "--case", "C-1", "--store", str(store))
    assert code == 0
    (record,) = [json.loads(p.read_text()) for p in (store / "_deletions").glob("*.json")]
    assert (record["status"], record["keys_destroyed"]) == ("interrupted", ["2026-10"])


def test_a_recovered_record_claims_only_keys_whose_files_are_gone(
    store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Found by review: recovery counted a period as destroyed by its tombstone alone, written before
    the key is shredded, so a shred that failed was recorded as a destruction."""
    import json

    from pipeline.privacy import keys

    def fail(path: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    with monkeypatch.context() as m:
        m.setattr(keys, "shred", fail)
        code, _ = invoke("keys", "destroy", "--before", "2026-11-01", "--case", "C-1", "--store", str(store))
    assert code == 6 and "2026-10.key" in keys_left(store)
    # a damaged record of another operation does not stop the next run (found by review)
    (store / "_deletions" / "20200101T000000000000Z-deadbeef0000.json").write_text("garbage{")
    code, _ = invoke("keys", "destroy", "--before", "2026-11-01", "--case", "C-1", "--store", str(store))
    assert code == 0 and keys_left(store) == ["2026-11.key"]
    records = [
        json.loads(p.read_text()) for p in (store / "_deletions").glob("*.json") if "deadbeef" not in p.name
    ]
    first, second = sorted(records, key=lambda r: r["started"])
    assert (first["status"], first["keys_destroyed"], first["keys_not_destroyed"]) == (
        "interrupted",
        [],
        ["2026-10"],
    )
    assert "run keys destroy again" in first["note"] and "commit records" not in first["note"]
    assert (second["status"], second["keys_destroyed"]) == ("complete", ["2026-10"])


def test_a_period_is_destroyed_when_a_tombstone_is_left_and_no_key(tmp_path: Path) -> None:
    from pipeline.lifecycle.deletions import _destroyed

    (tmp_path / "custody").mkdir()
    (tmp_path / "custody" / "2026-10.destroyed").write_text("{}")  # pseudonyms off: custody keys only
    (tmp_path / "2026-11.destroyed").write_text("{}")
    (tmp_path / "2026-11.key").write_bytes(b"k" * 32)  # its shred failed
    (tmp_path / "2026-12.destroyed").write_text("{}")
    (tmp_path / "custody" / "2026-12.key").write_bytes(b"k" * 32)
    assert [p for p in ("2026-09", "2026-10", "2026-11", "2026-12") if _destroyed(tmp_path, p)] == ["2026-10"]


def test_keys_of_held_months_stay(store: Path) -> None:
    assert invoke("hold", "add", "--case", "H-1", "--reason", "breach", "--from", "2026-10-15",
                  "--to", "2026-10-20", "--store", str(store))[0] == 0  # fmt: skip
    code, out = invoke("keys", "destroy", "--before", "2026-12-01", "--case", "C-1", "--store", str(store))
    assert code == 2 and "2026-10 (hold H-1)" in out and "nothing was destroyed" in out
    assert keys_left(store) == ["2026-10.key", "2026-11.key"]
    assert not (store / "_deletions").exists()
    code, out = invoke("keys", "destroy", "--before", "2026-10-01", "--case", "C-1", "--store", str(store))
    assert code == 0  # no key ends before October: nothing held, nothing to do
    assert invoke("hold", "release", "H-1", "--store", str(store))[0] == 0
    code, out = invoke("keys", "destroy", "--before", "2026-12-01", "--case", "C-1", "--store", str(store))
    assert code == 0 and "2026-10, 2026-11" in out
    assert keys_left(store) == []


@pytest.mark.parametrize(
    "args",
    [
        ("query", "--case", "C-1", "SELECT count(*) FROM pageviews"),
        ("investigate", "path", "/wp-login.php", "--case", "C-1"),
        ("status",),
        ("hold", "list"),
        ("audit", "list"),
    ],
)
def test_a_folder_that_is_no_store_is_exit_6(tmp_path: Path, args: tuple[str, ...]) -> None:
    folder = tmp_path / "parent"
    (folder / "logs").mkdir(parents=True)
    code, out = invoke(*args, "--store", str(folder))
    assert code == 6 and "no store at" in out, out
    assert sorted(p.name for p in folder.iterdir()) == ["logs"]  # nothing planted


@pytest.mark.parametrize(
    "args",
    [
        ("investigate", "ip", "3405803787", "--case", "C-1"),
        ("erase", "--ip", "3405803787", "--request", "DSR-1"),
        ("export", "--ip", "0xcb00710b", "--request", "DSR-1", "--output", "x.csv"),
    ],
)
def test_an_argument_that_is_no_address_is_not_repeated_into_the_audit(
    store: Path, args: tuple[str, ...]
) -> None:
    """Found by review: the integer form of 203.0.113.11 went into the audit trail in the error."""
    code, out = invoke(*args, "--store", str(store))
    assert code == 2 and "not an IP address" in out
    written = b"".join(p.read_bytes() for p in store.rglob("*") if p.is_file())
    assert args[2].encode() not in written and args[2] not in out


VHOST = '{host}:443 198.51.100.23 - - [10/Oct/2024:1{n}:00:00 +0000] "GET /{tag} HTTP/1.1" 200 1 "-" "UA"\n'


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    """A store two years and two months old: one site written in both IDNA forms, one with a dot."""
    log = tmp_path / "v.log"
    log.write_text(
        VHOST.format(host="xn--mnchen-3ya.de", n=0, tag="puny")
        + VHOST.format(host="münchen.de", n=1, tag="unicode")
        + VHOST.format(host="shop.example.com.", n=2, tag="dot")
        + VHOST.format(host="203.0.113.7", n=3, tag="customer-a")
        + VHOST.format(host="203.0.113.8", n=4, tag="customer-b")
    )
    root = tmp_path / "store"
    ingest_paths(root, [log], fmt="vhost_combined", domain=None)
    return root


def paths_left(store: Path) -> set[str]:
    return {str(r["path"]) for r in store_rows(store)}


def test_idna_forms_are_exact_not_mapped() -> None:
    """Found by review: IDNA 2003's mapping had made straße.de strasse.de (another site) and missed
    its A-label xn--strae-oqa.de."""
    from pipeline.privacy.truncate import domain_forms

    assert domain_forms("straße.de") == ["straße.de", "xn--strae-oqa.de"]
    assert domain_forms("xn--strae-oqa.de") == ["straße.de", "xn--strae-oqa.de"]
    assert domain_forms("strasse.de") == ["strasse.de"] and domain_forms("xn--abc-.de") == ["xn--abc-.de"]


@pytest.mark.parametrize("held", ["münchen.de", "xn--mnchen-3ya.de", "MÜNCHEN.DE."])
def test_a_hold_covers_every_form_of_its_domain(sites: Path, held: str) -> None:
    """Found by review: a hold on münchen.de kept only the rows written so; purge deleted the rest."""
    assert (
        invoke("hold", "add", "--case", "H-1", "--reason", "breach", "--domain", held, "--store", str(sites))[
            0
        ]
        == 0
    )
    assert invoke("hold", "add", "--case", "H-2", "--reason", "breach", "--domain", "shop.example.com.",
                  "--store", str(sites))[0] == 0  # fmt: skip
    assert invoke("purge", "--store", str(sites))[0] == 0
    assert paths_left(sites) == {"/puny", "/unicode", "/dot"}


def test_export_and_erase_match_every_form_and_refuse_an_address(sites: Path, tmp_path: Path) -> None:
    out = tmp_path / "x.csv"
    code, text = invoke(
        "export", "--domain", "münchen.de", "--request", "R-1", "--output", str(out), "--store", str(sites)
    )
    assert code == 0 and "exported 2 rows" in text, text
    for command in (["export", "--output", str(tmp_path / "y.csv")], ["erase"]):
        for shared in (
            "203.0.113.7",
            "203.0.113.0/24",
            "app.203.0.113.7.nip.io",
            "203.0.113.7:80",
            "a@b.example",
        ):
            code, text = invoke(*command, "--domain", shared, "--request", "R-2", "--store", str(sites))
            assert code == 2 and "holds an IP address" in text, (shared, text)  # another customer's too
    assert invoke("erase", "--domain", "Shop.Example.com.", "--request", "R-3", "--store", str(sites))[0] == 0
    assert invoke("erase", "--domain", "xn--mnchen-3ya.de", "--request", "R-4", "--store", str(sites))[0] == 0
    assert paths_left(sites) == {"/customer-a", "/customer-b"}


def test_a_shorter_retention_reaches_every_form_and_refuses_an_address(sites: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f'store = "{sites}"\n[retention]\nretention = "5y"\ndomains = {{ "MÜNCHEN.de." = "1y" }}\n'
    )
    assert invoke("purge", "--config", str(cfg))[0] == 0
    assert paths_left(sites) == {"/dot", "/customer-a", "/customer-b"}
    for shared in (
        "203.0.113.7",
        "203.0.113.0/24",
        "app.203.0.113.7.nip.io",
        "203.0.113.7:80",
        "app.cb007107.nip.io",
    ):
        rule = f'domains = {{ "{shared}" = "1y" }}'
        cfg.write_text(f'store = "{sites}"\n[retention]\nretention = "5y"\n{rule}\n')
        code, text = invoke("purge", "--config", str(cfg))
        assert code == 3 and "IP address" in text, (shared, text)


def test_a_killed_writes_file_of_expired_rows_is_purged_and_verified(tmp_path: Path) -> None:
    """Found by review: a writer's temporary in an expired partition (an ingest killed before its
    rename) outlived the purge, and ``purge --verify`` said nothing past the horizon remained."""
    import os
    import time

    log = tmp_path / "a.log"
    log.write_text(LINE.format(day="01", mon="Oct", tag="old").replace("2026", "2023"))
    store = tmp_path / "store"
    ingest_paths(store, [log], domain="shop.example")
    (old,) = store.glob("pageviews/date=2023-10-01/*.parquet")
    data = old.read_bytes()
    assert invoke("purge", "--store", str(store))[0] == 0
    tmp = store / "pageviews" / "date=2023-10-01" / ".part-0.parquet~files~0123abcd.tmp"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(data)
    code, out = invoke("purge", "--verify", "--store", str(store))
    assert code == 6 and "a killed write's file in an expired partition" in out, out
    # a fresh one may be a write in progress: it stays (by its age; no ingest lock is taken)
    assert invoke("purge", "--store", str(store))[0] == 0 and tmp.exists()
    old_enough = time.time() - 7 * 3600
    os.utime(tmp, (old_enough, old_enough))
    assert invoke("purge", "--store", str(store))[0] == 0 and not tmp.exists()
    assert invoke("purge", "--verify", "--store", str(store))[0] == 0


def test_an_erasure_by_address_records_no_sites_of_the_visitor(sites: Path) -> None:
    """Found by review: the deletion record (kept for good) and the manifests listed the domains the
    erased visitor's rows were of, day by day: their browsing profile, next to the request id."""
    code, out = invoke("erase", "--ip", "198.51.100.23", "--request", "DSR-18", "--store", str(sites))
    assert code == 0 and store_rows(sites) == [], out
    kept = b"".join(p.read_bytes() for d in ("_deletions", "_manifests") for p in (sites / d).rglob("*.json"))
    assert b"shop.example" not in kept and b"mnchen" not in kept and b"203.0.113" not in kept
    assert b'"rows_deleted": 5' in kept or b'"rows_deleted":5' in kept


def test_a_domain_in_non_ascii_capitals_is_stored_as_a_selector_names_it() -> None:
    """Found by review: ingest lowercased only ASCII capitals, a selector every capital: ÖÄ.de matched nothing."""
    import polars as pl

    from pipeline.ingest.fields import normalize_domain
    from pipeline.privacy.truncate import Truncator, stored_domain

    got = normalize_domain(pl.Series(["ÖÄ.de", "ΑΘΗΝΑ.gr.", "shop.example"])).to_list()
    assert got == [stored_domain(d, Truncator()) for d in ("ÖÄ.de", "ΑΘΗΝΑ.gr.", "shop.example")]


def test_a_name_with_numbers_is_no_address_to_retention(sites: Path, tmp_path: Path) -> None:
    """Found by review: a pattern refused build-2024-01-02-03.example, which the store keeps as it is."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'store = "{sites}"\n[retention]\ndomains = {{ "build-2024-01-02-03.example" = "1y" }}\n')
    assert invoke("purge", "--dry-run", "--config", str(cfg))[0] == 0


def test_a_temporary_dated_in_the_future_is_verified_and_purged(tmp_path: Path) -> None:
    """Found by review: a clock stepped back left a temporary that neither verify nor purge saw."""
    import os
    import time

    log = tmp_path / "a.log"
    log.write_text(LINE.format(day="01", mon="Oct", tag="old").replace("2026", "2023"))
    store = tmp_path / "store"
    ingest_paths(store, [log], domain="shop.example")
    tmp = store / "pageviews" / "date=2023-10-01" / ".part-1.parquet~files~0123abcd.tmp"
    tmp.write_bytes(b"rows")
    ahead = time.time() + 600
    os.utime(tmp, (ahead, ahead))
    code, out = invoke("purge", "--verify", "--store", str(store))
    assert code == 6 and tmp.name in out, out
    assert invoke("purge", "--store", str(store))[0] == 0 and not tmp.exists()


@pytest.mark.parametrize(
    "held", ["shop.example.com:443", "https://Shop.Example.com/", "http://u@shop.example.com:80/x"]
)
def test_a_domain_given_as_a_log_or_a_browser_writes_it_is_the_domain(
    sites: Path, held: str, tmp_path: Path
) -> None:
    """Found by review: a hold on ``host:443`` (the form vhost_combined writes) or on a URL matched no
    row, and purge deleted what it seemed to keep; erase and export of it did nothing, exit 0."""
    assert (
        invoke("hold", "add", "--case", "H-1", "--reason", "breach", "--domain", held, "--store", str(sites))[
            0
        ]
        == 0
    )
    assert invoke("purge", "--store", str(sites))[0] == 0
    assert paths_left(sites) == {"/dot"}
    code, text = invoke("export", "--domain", held, "--request", "R-1", "--output", str(tmp_path / "x.csv"),
                        "--store", str(sites))  # fmt: skip
    assert code == 0 and "exported 1 rows" in text, text
    assert invoke("hold", "release", "H-1", "--store", str(sites))[0] == 0
    assert invoke("erase", "--domain", held, "--request", "R-2", "--store", str(sites))[0] == 0
    assert paths_left(sites) == set()


def refused_everywhere(sites: Path, domain: str, tmp_path: Path, says: str) -> None:
    """hold, erase, export, investigate (exit 2) and retention.domains (exit 3) refuse ``domain`` in
    one line; nothing is held, erased or written."""
    before = paths_left(sites)
    for args in (
        ["hold", "add", "--case", "H-9", "--reason", "r"],
        ["erase", "--request", "R-9"],
        ["export", "--request", "R-9", "--output", str(tmp_path / "p.csv")],
        ["investigate", "attacks", "--case", "C-9"],
    ):
        code, text = invoke(*args, "--domain", domain, "--store", str(sites))
        assert code == 2 and says in text and text.count("\n") == 1, (args, text)
    assert paths_left(sites) == before and not (sites / "_holds").exists()
    assert not (tmp_path / "p.csv").exists()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'store = "{sites}"\n[retention]\nretention = "5y"\ndomains = {{ "{domain}" = "1y" }}\n')
    code, text = invoke("purge", "--config", str(cfg))
    assert code == 3 and says in text, text
    assert paths_left(sites) == before


@pytest.mark.parametrize("pattern", ["*", "*.example.com", "shop.exampl?.com"])
def test_a_domain_pattern_is_refused_not_matched_to_nothing(
    sites: Path, pattern: str, tmp_path: Path
) -> None:
    """Found by review: ``hold add --domain '*'`` was listed as if it held everything, and held nothing."""
    refused_everywhere(sites, pattern, tmp_path, "not a pattern")


@pytest.mark.parametrize("empty", [":443", "http://", "https:///x", "http://u@/", "."])
def test_a_domain_that_is_empty_once_normalised_is_refused(sites: Path, empty: str, tmp_path: Path) -> None:
    """Found by review: ':443' or 'http://' normalised to '' and then selected every customer's rows
    (erase deleted them, export handed them out, exit 0); '.' had done so before."""
    refused_everywhere(sites, empty, tmp_path, "the domain is empty")


@pytest.mark.parametrize(
    "name", ["shop.example.com", "SHOP.example.com.:443", "https://shop.example.com/a?b"]
)
def test_investigate_domain_takes_the_forms_a_selector_takes(sites: Path, name: str) -> None:
    """Found by review: ``investigate domain host:443`` or a URL reported 0 requests."""
    code, text = invoke("investigate", "domain", name, "--case", "C-1", "--store", str(sites))
    assert code == 0 and re.search(r"^requests +1$", text, re.MULTILINE), text


@pytest.mark.parametrize(("recorded", "left"), [
    ("*", {"/puny", "/unicode", "/dot", "/customer-a", "/customer-b"}),
    (":443", {"/puny", "/unicode", "/dot", "/customer-a", "/customer-b"}),
    ("shop.example.com:443", {"/dot"}),
    ("https://shop.example.com/", {"/dot"}),
])  # fmt: skip
def test_a_hold_recorded_before_selectors_were_normalised_keeps_what_it_meant(
    sites: Path, recorded: str, left: set[str]
) -> None:
    """A hold file written by an older hostlogs with a port, a URL, a pattern or an empty selector:
    its host is held, and '*' or ':443' (which had matched nothing) hold every domain."""
    import json

    assert invoke("hold", "add", "--case", "H-1", "--reason", "breach", "--domain", "x.example",
                  "--store", str(sites))[0] == 0  # fmt: skip
    (hold_file,) = (sites / "_holds").glob("*.json")
    data = json.loads(hold_file.read_text())
    data["domain"] = recorded
    hold_file.write_text(json.dumps(data))
    assert invoke("purge", "--store", str(sites))[0] == 0
    assert paths_left(sites) == left
