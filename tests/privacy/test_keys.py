"""Per-period keys, keyed pseudonyms and crypto-shredding (pipeline/privacy/keys.py)."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ConfigError, HostlogsError, KeyDestroyedError, StoreError, UsageError
from pipeline.privacy import digests, keys
from pipeline.privacy.digests import lookup_pseudonyms, pseudonyms
from pipeline.privacy.keys import KeyStore, period_bounds, period_id, period_ids
from tests.conftest import ROOT

D = dt.date
FIXED_KEY = bytes(range(32))
ADDR = "198.51.100.7"


def expected(key: bytes, text: str) -> int:
    """Independent reference: HMAC-SHA256, first 8 bytes, big-endian signed."""
    digest = hmac.new(key, text.encode("utf-8"), hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    return tmp_path / "keys"


@pytest.fixture
def store(key_dir: Path) -> KeyStore:
    return KeyStore(key_dir, "month")


def fixed_store(key_dir: Path, *period_keys: tuple[str, bytes]) -> KeyStore:
    s = KeyStore(key_dir, "month")
    for pid, key in period_keys:
        (key_dir / f"{pid}.key").write_bytes(key)
    return s


def pseudo(
    store: KeyStore, addrs: Sequence[str | None], periods: Sequence[str | None], **kw: bool
) -> list[int | None]:
    out = pseudonyms(pl.Series(addrs, dtype=pl.String), pl.Series(periods, dtype=pl.String), store, **kw)
    assert out.dtype == pl.Int64
    return out.to_list()


# --- period ids ----------------------------------------------------------------------------------------

PERIOD_TABLE = [
    (D(2026, 11, 22), "2026-11-22", "2026-W47", "2026-11"),
    (D(2026, 12, 31), "2026-12-31", "2026-W53", "2026-12"),  # 2026 has 53 ISO weeks
    (D(2027, 1, 1), "2027-01-01", "2026-W53", "2027-01"),  # ... and 2027-01-01 is still in it
    (D(2027, 1, 3), "2027-01-03", "2026-W53", "2027-01"),
    (D(2027, 1, 4), "2027-01-04", "2027-W01", "2027-01"),
    (D(2025, 12, 29), "2025-12-29", "2026-W01", "2025-12"),  # ISO 2026 starts in December 2025
    (D(2024, 2, 29), "2024-02-29", "2024-W09", "2024-02"),  # leap day
    (D(2024, 12, 30), "2024-12-30", "2025-W01", "2024-12"),
]


@pytest.mark.parametrize(("day", "pid_day", "pid_week", "pid_month"), PERIOD_TABLE)
def test_period_id_table(day: dt.date, pid_day: str, pid_week: str, pid_month: str) -> None:
    assert period_id(day, "day") == pid_day
    assert period_id(day, "week") == pid_week
    assert period_id(day, "month") == pid_month
    assert period_id(dt.datetime(day.year, day.month, day.day, 23, 59), "day") == pid_day  # no time part


def test_period_ids_vectorised_matches_scalar() -> None:
    days = [row[0] for row in PERIOD_TABLE]
    ts = pl.Series([dt.datetime(d.year, d.month, d.day, 12) for d in days] + [None])
    ts = ts.dt.replace_time_zone("UTC").dt.cast_time_unit("us")
    cols: list[tuple[keys.Period, int]] = [("day", 1), ("week", 2), ("month", 3)]
    for period, col in cols:
        assert period_ids(ts, period).to_list() == [row[col] for row in PERIOD_TABLE] + [None]


def test_period_ids_are_utc_periods() -> None:
    # 2027-01-01 00:30 in Berlin is still 2026-12-31 in UTC
    ts = pl.Series([dt.datetime(2026, 12, 31, 23, 30)]).dt.replace_time_zone("UTC")
    berlin = ts.dt.convert_time_zone("Europe/Berlin")
    assert period_ids(berlin, "day").to_list() == ["2026-12-31"]
    assert period_ids(berlin, "month").to_list() == ["2026-12"]


@pytest.mark.parametrize(
    ("pid", "first", "last"),
    [
        ("2026-11-22", D(2026, 11, 22), D(2026, 11, 22)),
        ("2024-02-29", D(2024, 2, 29), D(2024, 2, 29)),
        ("2026-W47", D(2026, 11, 16), D(2026, 11, 22)),
        ("2026-W53", D(2026, 12, 28), D(2027, 1, 3)),
        ("2026-W01", D(2025, 12, 29), D(2026, 1, 4)),
        ("2026-11", D(2026, 11, 1), D(2026, 11, 30)),
        ("2026-12", D(2026, 12, 1), D(2026, 12, 31)),
        ("2024-02", D(2024, 2, 1), D(2024, 2, 29)),
        ("2025-02", D(2025, 2, 1), D(2025, 2, 28)),
    ],
)
def test_period_bounds_table(pid: str, first: dt.date, last: dt.date) -> None:
    assert period_bounds(pid) == (first, last)


@pytest.mark.parametrize(
    "pid",
    ["2025-W53", "2026-W00", "2026-W54", "2025-02-29", "2026-13", "2026-00", "2026-1", "../x", "",
     "2026-11-22 ", "２０２６-11", "2026-11.key", "2026-w47"],
)  # fmt: skip
def test_period_bounds_rejects(pid: str) -> None:
    with pytest.raises(ValueError, match="not a period id"):
        period_bounds(pid)


# up to 9998: the day after the last period (of any length) must exist
@given(st.dates(min_value=D(1900, 1, 8), max_value=D(9998, 12, 31)), st.sampled_from(keys.PERIODS))
def test_period_id_bounds_roundtrip(day: dt.date, period: keys.Period) -> None:
    pid = period_id(day, period)
    first, last = period_bounds(pid)
    assert first <= day <= last
    assert period_id(first, period) == period_id(last, period) == pid
    assert (
        period_id(first - dt.timedelta(days=1), period)
        != pid
        != period_id(last + dt.timedelta(days=1), period)
    )


# --- key store: files and modes ------------------------------------------------------------------------


def test_key_dir_and_file_modes(key_dir: Path) -> None:
    old = os.umask(0)  # the modes must not depend on the umask
    try:
        store = KeyStore(key_dir / "nested", "month")
        key = store.key("2026-11", create=True)
    finally:
        os.umask(old)
    assert key is not None and len(key) == 32
    assert mode(key_dir / "nested") == 0o700
    assert mode(key_dir / "nested" / "2026-11.key") == 0o600
    assert (key_dir / "nested" / "2026-11.key").read_bytes() == key
    assert [p.name for p in (key_dir / "nested").iterdir()] == ["2026-11.key"]  # no temp file left


def test_refuses_open_key_dir(key_dir: Path) -> None:
    key_dir.mkdir(mode=0o755)
    key_dir.chmod(0o755)
    with pytest.raises(StoreError, match=r"chmod 700 .*keys") as info:
        KeyStore(key_dir)
    assert "\n" not in str(info.value) and str(key_dir) in str(info.value)
    assert info.value.exit_code == 6


def test_refuses_a_file_as_key_dir(key_dir: Path) -> None:
    key_dir.write_text("")
    with pytest.raises(StoreError, match="not a directory"):
        KeyStore(key_dir)


def test_unknown_period_is_a_config_error(key_dir: Path) -> None:
    with pytest.raises(ConfigError):
        KeyStore(key_dir, "year")  # type: ignore[arg-type]


def test_key_create_and_reuse(store: KeyStore, key_dir: Path) -> None:
    assert store.status("2026-11") == "missing"
    assert store.key("2026-11", create=False) is None
    assert not (key_dir / "2026-11.key").exists()
    first = store.key("2026-11", create=True)
    assert store.status("2026-11") == "present"
    assert store.key("2026-11", create=True) == first == KeyStore(key_dir).key("2026-11", create=False)
    assert store.key("2026-10", create=True) != first


def test_creating_a_key_of_another_granularity_is_refused(store: KeyStore) -> None:
    with pytest.raises(ValueError, match="makes month keys"):
        store.key("2026-11-22", create=True)


def test_damaged_key_file(key_dir: Path) -> None:
    store = fixed_store(key_dir, ("2026-11", b"short"))
    with pytest.raises(StoreError, match="damaged"):
        store.key("2026-11", create=False)


def test_no_key_bytes_in_list_or_repr(store: KeyStore) -> None:
    key = store.key("2026-11", create=True)
    assert key is not None
    store.key("2026-10", create=True)
    store.destroy_before(D(2026, 11, 1))
    infos = store.list()
    assert [(i.period_id, i.destroyed is not None) for i in infos] == [("2026-10", True), ("2026-11", False)]
    assert all(i.created.tzinfo is not None and i.created.utcoffset() == dt.timedelta(0) for i in infos)
    for text in (repr(store), str(store), repr(infos), str(infos[1])):
        assert key.hex() not in text and repr(key) not in text and str(key) not in text
    with pytest.raises(AttributeError):
        infos[0].period_id = "x"  # type: ignore[misc]  # frozen


# --- pseudonyms ----------------------------------------------------------------------------------------


def test_known_answer(key_dir: Path) -> None:
    store = fixed_store(key_dir, ("2026-11", FIXED_KEY))
    got = pseudo(store, [ADDR, "2001:db8::1"], ["2026-11", "2026-11"])
    assert got == [expected(FIXED_KEY, ADDR), expected(FIXED_KEY, "2001:db8::1")]
    # pinned too, so that the reference and the code cannot drift together; the second is negative
    # (first byte 0xc1): the 8 bytes are read as a signed int64, as DuckDB's BIGINT stores them
    assert got == [8991529629735226714, -4489827467883727753]
    assert lookup_pseudonyms(ADDR, store) == {"2026-11": got[0]}


def test_same_period_equal_other_period_different(store: KeyStore, key_dir: Path) -> None:
    got = pseudo(store, [ADDR, ADDR, ADDR, "198.51.100.8"], ["2026-11", "2026-11", "2026-10", "2026-11"])
    assert got[0] == got[1]
    assert got[2] != got[0]
    assert got[3] != got[0]
    again = pseudo(KeyStore(key_dir), [ADDR, ADDR], ["2026-10", "2026-11"])  # a new instance, same files
    assert again == [got[2], got[0]]


def test_address_forms_are_equal(store: KeyStore) -> None:
    v4 = [ADDR, "::ffff:198.51.100.7", "::ffff:c633:6407", "198.51.100.7:51234", " 198.51.100.7"]
    v6 = ["2001:db8::1", "2001:DB8::1", "2001:0db8:0000:0000:0000:0000:0000:0001", "[2001:db8::1]:443",
          "2001:db8::1%eth0"]  # fmt: skip
    got = pseudo(store, v4 + v6, ["2026-11"] * len(v4 + v6))
    assert set(got[: len(v4)]) == {got[0]} and set(got[len(v4) :]) == {got[len(v4)]}
    assert got[0] != got[len(v4)]
    for form in v4:
        assert lookup_pseudonyms(form, store) == {"2026-11": got[0]}
    for form in v6:
        assert lookup_pseudonyms(form, store) == {"2026-11": got[len(v4)]}


def test_nulls_and_non_addresses(store: KeyStore, key_dir: Path) -> None:
    got = pseudo(store, [None, "www.example.com", "-", "unix:", ADDR, ADDR], ["2026-11"] * 5 + [None])
    assert got[:4] == [None] * 4 and got[4] is not None and got[5] is None
    assert [p.name for p in key_dir.iterdir()] == ["2026-11.key"]  # no key for a period of null rows
    assert pseudo(store, [], []) == []
    with pytest.raises(UsageError):
        lookup_pseudonyms("www.example.com", store)


def test_once_per_distinct_pair(store: KeyStore, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []
    real = digests.pseudonym_values

    def counting(key: bytes, texts: list[str]) -> np.ndarray:
        calls.extend(texts)
        return real(key, texts)

    monkeypatch.setattr(digests, "pseudonym_values", counting)
    addrs = [f"203.0.113.{i % 7}" for i in range(10_000)]
    periods = ["2026-11" if i % 3 else "2026-10" for i in range(10_000)]
    got = pseudo(store, addrs, periods)
    assert len(calls) == 14  # 7 addresses x 2 periods, not 10,000
    assert got[:14] == [
        expected(store.key(p, create=False) or b"", a) for a, p in zip(addrs[:14], periods[:14], strict=True)
    ]


@pytest.mark.parametrize("key", [FIXED_KEY, b"", b"k" * 64, bytes(range(200))])  # ≤, =, > one SHA-256 block
def test_batch_hmac_equals_the_reference(key: bytes) -> None:
    texts = [ADDR, "2001:db8::1", "", "203.0.113.255"]
    got = digests.pseudonym_values(key, texts).tolist()
    assert got == [expected(key, t) for t in texts] == [digests.pseudonym(key, t) for t in texts]
    assert digests.pseudonym_values(key, []).tolist() == []


@given(
    key=st.binary(max_size=130),  # ≤, =, > one SHA-256 block
    texts=st.lists(st.text(max_size=150), max_size=40),  # one, two and three blocks of message
    kind=st.sampled_from(["string", "large_string", "string_view"]),
    skip=st.integers(0, 3),
)
def test_the_webassembly_keyed_digests_are_the_reference(
    key: bytes, texts: list[str], kind: str, skip: int
) -> None:
    """Ingest keys a batch's new clients in the scanner's WebAssembly module (off the GIL): the same
    pseudonyms as the Python loop, for any key and text, from any Arrow string layout or slice."""
    import pyarrow as pa

    from pipeline.ingest.formats import scanner

    column = pl.Series(["x"] * skip + texts, dtype=pl.String).slice(skip)
    arrow = pa.array(["x"] * skip + texts, getattr(pa, kind)()).slice(skip)
    reference = digests.pseudonym_values(key, texts).tolist()
    block_key = hashlib.sha256(key).digest() if len(key) > 64 else key
    keyed = scanner.keyed_digests(block_key, arrow)
    assert keyed is not None and scanner.status() == "wasm"
    assert keyed.tolist() == reference == digests.pseudonym_series(key, column).tolist()


def test_keyed_digests_in_several_calls_and_without_the_module(monkeypatch: pytest.MonkeyPatch) -> None:
    """Long columns are keyed in slices (the module's memory never shrinks); without the module (or
    with HOSTLOGS_SCANNER=off) the loop computes the same."""
    from pipeline.ingest import batch  # noqa: F401 (registers the module's bulk keying, as ingest does)
    from pipeline.ingest.formats import scanner

    texts = [f"198.51.100.{i % 256}" if i % 3 else f"2001:db8::{i:x}" for i in range(1000)]
    reference = digests.pseudonym_values(FIXED_KEY, texts).tolist()
    monkeypatch.setattr(scanner, "KEYED_TEXTS", 64)
    assert digests.pseudonym_series(FIXED_KEY, pl.Series(texts)).tolist() == reference
    monkeypatch.setenv("HOSTLOGS_SCANNER", "off")
    assert scanner.keyed_digests(FIXED_KEY, pl.Series(texts).to_arrow()) is None
    assert digests.pseudonym_series(FIXED_KEY, pl.Series(texts)).tolist() == reference


def test_create_false_gives_null_for_missing_key(store: KeyStore, key_dir: Path) -> None:
    assert pseudo(store, [ADDR], ["2026-11"], create=False) == [None]
    assert not any(key_dir.iterdir())


# --- crypto-shredding ----------------------------------------------------------------------------------


def test_destroy_before(store: KeyStore, key_dir: Path) -> None:
    before = pseudo(store, [ADDR] * 3, ["2026-09", "2026-10", "2026-11"])
    link = key_dir.parent / "hardlink-of-2026-10.key"  # e.g. a careless backup: zeroing reaches it
    os.link(key_dir / "2026-10.key", link)

    assert store.destroy_before(D(2026, 10, 31)) == ["2026-09"]  # 2026-10 ends on the 31st: kept
    assert store.destroy_before(D(2026, 11, 1)) == ["2026-10"]
    assert store.destroy_before(D(2026, 11, 1)) == []  # idempotent

    assert link.read_bytes() == bytes(32)
    assert sorted(p.name for p in key_dir.iterdir()) == [
        "2026-09.destroyed",
        "2026-10.destroyed",
        "2026-11.key",
    ]
    tomb = json.loads((key_dir / "2026-10.destroyed").read_text())
    assert tomb["period"] == "2026-10"
    assert dt.datetime.fromisoformat(tomb["created"]) <= dt.datetime.fromisoformat(tomb["destroyed"])
    assert mode(key_dir / "2026-10.destroyed") == 0o600
    assert [store.status(p) for p in ("2026-09", "2026-10", "2026-11", "2026-12")] == [
        "destroyed", "destroyed", "present", "missing",
    ]  # fmt: skip

    assert lookup_pseudonyms(ADDR, store) == {
        "2026-09": "destroyed",
        "2026-10": "destroyed",
        "2026-11": before[2],
    }
    assert store.key("2026-10", create=False) is None
    with pytest.raises(KeyDestroyedError, match="2026-10 was destroyed") as info:
        pseudo(store, [ADDR, ADDR], ["2026-11", "2026-10"])
    assert info.value.exit_code == 7 and isinstance(info.value, HostlogsError)
    with pytest.raises(KeyDestroyedError):
        store.key("2026-10", create=True)
    assert pseudo(store, [ADDR, ADDR], ["2026-11", "2026-10"], create=False) == [before[2], None]
    assert not (key_dir / "2026-10.key").exists()  # never re-created


def test_destroy_finishes_a_crashed_purge(store: KeyStore, key_dir: Path) -> None:
    key = store.key("2026-10", create=True)
    assert key is not None
    # crash after the tombstone was written, before the key was shredded; plus a leftover temp file
    (key_dir / "2026-10.destroyed").write_text("{not json")
    (key_dir / ".2026-10.key.4242.abcd.tmp").write_bytes(key)
    assert store.status("2026-10") == "destroyed"
    assert store.key("2026-10", create=False) is None
    assert lookup_pseudonyms(ADDR, store) == {"2026-10": "destroyed"}
    assert store.destroy_before(D(2026, 11, 1)) == ["2026-10"]
    assert [p.name for p in key_dir.iterdir()] == ["2026-10.destroyed"]


# --- concurrency -------------------------------------------------------------------------------------

RACER = """
import sys
from pathlib import Path
from pipeline.privacy.keys import KeyStore
store = KeyStore(Path(sys.argv[1]), "day")
flag = Path(sys.argv[2])
print("ready", flush=True)
while not flag.exists():
    pass
for pid in sys.argv[3:]:
    print(pid, store.key(pid, create=True).hex())
"""


def test_two_processes_race_to_create_the_same_keys(key_dir: Path, tmp_path: Path) -> None:
    KeyStore(key_dir, "day")
    flag = tmp_path / "go"
    pids = [period_id(D(2026, 1, 1) + dt.timedelta(days=i), "day") for i in range(300)]
    cmd = [sys.executable, "-c", RACER, str(key_dir), str(flag), *pids]
    procs = [subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True) for _ in range(2)]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline() == "ready\n"
        flag.touch()
        outs = [p.communicate(timeout=60)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert [p.returncode for p in procs] == [0, 0]
    assert outs[0] == outs[1]  # both processes use the same key for every period
    on_disk = {f.name.removesuffix(".key"): f.read_bytes().hex() for f in key_dir.iterdir()}
    assert on_disk == dict(line.split() for line in outs[0].splitlines())
    assert len(on_disk) == 300  # one key per period, no temp files


def test_losing_the_race_uses_the_winners_key(
    store: KeyStore, key_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    winner = bytes(range(100, 132))
    real = keys.new_key

    def other_process_first() -> bytes:
        (key_dir / "2026-11.key").write_bytes(winner)  # published while we were generating ours
        return real()

    monkeypatch.setattr(keys, "new_key", other_process_first)
    assert store.key("2026-11", create=True) == winner
    assert [p.name for p in key_dir.iterdir()] == ["2026-11.key"]


ODD_FORMS = ["198.51.100.7", "0.0.0.0", "255.255.255.255", "256.1.1.1", "198.051.100.7", " 198.51.100.7",
             "198.51.100.7:80", "1.2.3", "1.2.3.4.5", "::ffff:1.2.3.4", "::1.2.3.4", "2001:DB8::1", "fe80::1%eth0",
             "www.example.com", "-", "unix:", "", None]  # fmt: skip


@given(st.lists(st.one_of(st.ip_addresses().map(str), st.ip_addresses().map(lambda a: a.exploded),
                          st.sampled_from(ODD_FORMS)), max_size=30))  # fmt: skip
def test_vectorised_canonical_addresses_match_scalar(values: list[str | None]) -> None:
    got = digests.canonical_addresses(pl.Series(values, dtype=pl.String)).to_list()
    assert got == [None if v is None else digests.canonical_address(v) for v in values]
