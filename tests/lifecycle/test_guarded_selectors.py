"""Commands that delete or read by what the caller names fail closed when the name is wrong.

Found by review: ``erase --domain ""`` erased every row; ``keys destroy`` with a --store that is no
store destroyed keys with no audit entry, proof or key-directory check, and destroyed the keys of
months a legal hold keeps; any folder passed as --store was queried ("no rows", exit 0), had an
``_audit/`` planted in it, and made ``status`` say OK.
"""

from __future__ import annotations

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
