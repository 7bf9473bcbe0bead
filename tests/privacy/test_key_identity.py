"""A store is used only with its own key directory (``privacy.key_identity``).

Found by review: pointed at another store's keys, purge destroyed that store's live keys and kept
its own, and ingest would have read every log again under new fingerprints.
"""

from __future__ import annotations

from pathlib import Path

from pipeline.store import layout
from pipeline.store.commit import Store
from tests.cli.test_cli import invoke

LINE = '203.0.113.{n} - - [10/Oct/2020:13:55:0{n} +0000] "GET /p{n} HTTP/1.1" 200 1 "-" "curl/8.0"\n'


def two_stores(tmp_path: Path) -> tuple[Path, Path, Path]:
    log = tmp_path / "a.log"
    log.write_text("".join(LINE.format(n=n) for n in range(1, 4)))
    for name in ("A", "B"):
        code, _, err = invoke("ingest", str(log), "--store", str(tmp_path / name), "--domain", "x.example",
                              "--final", "-q")  # fmt: skip
        assert code == 0, err
    return tmp_path / "A", tmp_path / "B", log


def keys_of(store: Path) -> list[str]:
    return sorted(p.relative_to(store.parent).as_posix() for p in Path(f"{store}-keys").rglob("*"))


def test_every_command_that_uses_the_keys_refuses_another_stores(tmp_path: Path) -> None:
    a, b, log = two_stores(tmp_path)
    assert (a / layout.KEY_DIR_RECORD).is_file()  # written by the first ingest
    cfg = tmp_path / "wrong.toml"
    cfg.write_text(f'store = "{a}"\n[privacy]\nkey_dir = "{b}-keys"\n[retention]\nretention = "30d"\n')
    before = keys_of(b)
    for args in (
        ["purge"],
        ["ingest", str(log), "--domain", "x.example", "--final"],
        ["erase", "--ip", "203.0.113.1", "--request", "R-1"],
        ["export", "--ip", "203.0.113.1", "--case", "C-1", "--output", str(tmp_path / "e.csv")],
        ["investigate", "ip", "203.0.113.1", "--case", "C-1"],
        ["keys", "destroy", "--before", "2030-01-01", "--case", "C-1"],
        ["status"],
    ):
        code, _, err = invoke(*args, "--config", str(cfg))
        assert code == 3 and "holds another store's keys" in err and "nothing was changed" in err, (args, err)
    assert keys_of(b) == before  # B's keys untouched
    code, out, _ = invoke("query", "--store", str(a), "--case", "C-1", "--format", "csv",
                          "SELECT count(*) FROM pageviews")  # fmt: skip
    assert code == 0 and out.split()[-1] == "3"  # nothing purged, nothing read twice
    assert invoke("purge", "--store", str(a), "--as-of", "2030-01-01", "-q")[0] == 0  # its own: fine


def test_a_store_without_the_record_gets_it_from_its_next_ingest(tmp_path: Path) -> None:
    a, _, log = two_stores(tmp_path)
    (a / layout.KEY_DIR_RECORD).unlink()  # a store ingested before the record existed
    assert invoke("purge", "--store", str(a), "--dry-run", "-q")[0] == 0
    assert invoke("ingest", str(log), "--store", str(a), "--final", "-q")[0] == 0
    assert (a / layout.KEY_DIR_RECORD).is_file()


def test_a_store_restored_without_its_keys_is_purged_only_when_the_operator_says_so(tmp_path: Path) -> None:
    # Found by the last reread: a store restored without its key directory (docs/operations.md,
    # Restore) could no longer be purged at all, so its rows outlived their retention.
    import shutil

    a, b, _ = two_stores(tmp_path)
    shutil.rmtree(f"{a}-keys")
    code, _, err = invoke("purge", "--store", str(a), "--as-of", "2030-01-01")
    assert code == 6 and "purge --keys-lost" in err and "nothing was purged" in err
    cfg = tmp_path / "other.toml"  # pointed at keys (another store's): --keys-lost is refused
    cfg.write_text(f'store = "{a}"\n[privacy]\nkey_dir = "{b}-keys"\n')
    before = keys_of(b)
    code, _, err = invoke("purge", "--config", str(cfg), "--as-of", "2030-01-01", "--keys-lost")
    assert code == 2 and "holds keys" in err and "nothing was purged" in err
    assert invoke("purge", "--store", str(b), "--as-of", "2026-11-01", "--keys-lost")[0] == 2  # its own
    assert keys_of(b) == before
    code, _, err = invoke("purge", "--store", str(a), "--as-of", "2030-01-01", "--keys-lost", "-q")
    assert code == 0, err
    code, out, _ = invoke("query", "--store", str(a), "--case", "C-1", "--format", "csv",
                          "SELECT count(*) FROM pageviews")  # fmt: skip
    assert code == 0 and out.split()[-1] == "0"  # past retention: gone
    _, trail, _ = invoke("audit", "list", "--store", str(a), "--json")
    assert '"keys_lost": true' in trail


def test_a_key_directory_that_is_not_there_is_refused_where_the_keys_are_needed(tmp_path: Path) -> None:
    """Found by review: with privacy.key_dir mistyped (or its volume not mounted), ``erase --ip``
    found no pseudonym in any period and recorded a complete erasure, ``export --ip`` wrote no row,
    ``purge --verify`` proved the keys destroyed and ``status`` saw nothing wrong; all exited 0."""
    a, _, _ = two_stores(tmp_path)
    cfg = tmp_path / "typo.toml"
    cfg.write_text(f'store = "{a}"\n[privacy]\nkey_dir = "{tmp_path}/typo-keys"\n')
    for args in (
        ["erase", "--ip", "203.0.113.1", "--request", "R-1"],
        ["erase", "--ip", "203.0.113.1", "--request", "R-1", "--dry-run"],
        ["export", "--ip", "203.0.113.1", "--case", "C-1", "--output", str(tmp_path / "e.csv")],
        ["purge", "--verify", "--as-of", "2030-01-01"],
    ):
        code, _, err = invoke(*args, "--config", str(cfg))
        assert code == 6 and "no key directory at" in err and "typo-keys" in err, (args, err)
        assert "nothing was changed" in err
    assert not (tmp_path / "typo-keys").exists() and not (tmp_path / "e.csv").exists()
    assert not list(a.glob(f"{layout.DELETIONS}/*.json"))  # no erasure recorded as done
    code, out, err = invoke("status", "--config", str(cfg))
    assert code == 11 and "no key directory at" in out + err, out + err
    # an erasure by domain needs no keys: it still runs
    assert (
        invoke("erase", "--domain", "x.example", "--request", "R-2", "--dry-run", "--config", str(cfg))[0]
        == 0
    )


def test_a_key_directory_that_cannot_be_read_is_not_taken_as_checked(tmp_path: Path) -> None:
    """Found by review: pointed at another store's keys whose custody folder this user may not read,
    ``erase --ip`` and ``export --ip`` skipped the identity check, found no row and exited 0. Root
    stands in for another user by dropping its permission override (setpriv)."""
    import os

    from tests.conftest import as_another_user

    a, b, _ = two_stores(tmp_path)
    cfg = tmp_path / "wrong.toml"
    cfg.write_text(f'store = "{a}"\n[privacy]\nkey_dir = "{b}-keys"\n')
    custody = Path(f"{b}-keys") / "custody"
    runs = []
    os.chmod(custody, 0)
    try:
        for args in (
            ["erase", "--ip", "203.0.113.1", "--request", "R-1", "--dry-run"],
            ["export", "--ip", "203.0.113.1", "--request", "R-2", "--output", str(tmp_path / "e.csv")],
        ):
            runs.append(as_another_user("-m", "pipeline.cli", *args, "--config", str(cfg)))
    finally:
        os.chmod(custody, 0o700)
    for run in runs:
        assert run.returncode == 6 and "cannot read the key directory" in run.stderr, run.stderr
    assert not (tmp_path / "e.csv").exists()


def test_a_privacy_record_turned_into_a_dangling_link_still_requires_the_keys(tmp_path: Path) -> None:
    """Found by review: ``keys_expected`` read a privacy record that was a link to nowhere (or a loop
    of links) as "never written", so a purge with a mistyped key directory deleted the rows and left
    their keys alive."""
    a, _, _ = two_stores(tmp_path)
    record = a / layout.PRIVACY_RECORD
    record.unlink()
    record.symlink_to(tmp_path / "nowhere")
    cfg = tmp_path / "typo.toml"
    cfg.write_text(f'store = "{a}"\n[privacy]\nkey_dir = "{tmp_path}/typo-keys"\n')
    code, _, err = invoke("purge", "--config", str(cfg), "--as-of", "2030-01-01")
    assert code == 6 and "privacy.jsonl" in err, err  # (a store error: no "absent" record)
    assert list(a.glob("pageviews/date=*/*.parquet"))  # the rows are still there
    assert record.is_symlink()
    assert Store(a).exists(layout.PRIVACY_RECORD)  # a link to nowhere is an entry, not an absence


def test_keys_declared_lost_by_purge_leave_a_store_that_works_without_them(tmp_path: Path) -> None:
    """Found by review: after ``purge --keys-lost`` (a store restored without its keys, as
    docs/operations.md tells), ``purge --verify`` and ``erase --ip``/``export --ip`` kept refusing
    and status kept asking for the keys, for good. The declaration is recorded in the store."""
    a, _, _ = two_stores(tmp_path)
    Path(f"{a}-keys").rename(tmp_path / "keys-gone")
    assert invoke("purge", "--store", str(a), "--as-of", "2020-11-01", "-q")[0] == 6  # not yet declared
    assert invoke("purge", "--store", str(a), "--as-of", "2020-11-01", "--keys-lost", "-q")[0] == 0
    assert (a / layout.KEYS_LOST).is_file()
    assert invoke("purge", "--store", str(a), "--as-of", "2020-11-01", "-q")[0] == 0  # cron's own line
    assert invoke("purge", "--store", str(a), "--verify", "--as-of", "2020-11-01")[0] == 0
    code, out, _ = invoke("erase", "--store", str(a), "--ip", "203.0.113.1", "--request", "R-1", "--dry-run")
    assert code == 0 and "NOT erasable" in out, out
    out_file = tmp_path / "e.csv"
    code, _, err = invoke(
        "export", "--store", str(a), "--ip", "203.0.113.1", "--request", "R-2", "--output", str(out_file)
    )
    assert code == 0, err
    code, out, err = invoke("status", "--store", str(a))
    assert "no key directory" not in out + err
