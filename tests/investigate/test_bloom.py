"""Investigations of one address or network scan only the files whose bloom filters may hold it
(pipeline/investigate/bloom.py), and find exactly what a scan of every file finds."""

from __future__ import annotations

import ast
import dataclasses
import datetime as dt
from pathlib import Path

import pytest

from pipeline.investigate import bloom
from pipeline.investigate import investigations as investigate
from pipeline.investigate import session as query
from pipeline.investigate.scope import Scope
from pipeline.lifecycle.compact import compact
from pipeline.privacy import digests, keys
from pipeline.privacy.truncate import Truncator
from pipeline.store.commit import Store
from tests.conftest import ingest_paths, make_config

SUSPECT = "203.0.113.77"
OTHERS = ["198.51.100.9", "192.0.2.44", "198.51.100.200", "2001:db8:5::1"]


@pytest.fixture(scope="module")
def compacted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixty days in two months, compacted (one file a day with bloom filters); the suspect on
    every tenth day only."""
    tmp = tmp_path_factory.mktemp("bloom")
    halves: list[list[str]] = [[], []]
    for day in range(60):
        ts = dt.datetime(2026, 1, 1, 9) + dt.timedelta(days=day)
        clients = [*OTHERS, *([SUSPECT] if day % 10 == 3 else [])]
        for i, ip in enumerate(clients * 3):
            t = ts + dt.timedelta(minutes=i)
            halves[i % 2].append(
                f'{ip} - - [{t:%d/%b/%Y:%H:%M:%S} +0000] "GET /p{i} HTTP/1.1" 200 10 "-" "x"\n'
            )
    for n, lines in enumerate(halves):
        (tmp / f"access{n}.log").write_text("".join(lines))
    store = tmp / "store"
    ingest_paths(store, [tmp / "access0.log", tmp / "access1.log"], domain="shop.example.com")
    assert compact(make_config(store), target_mb=64).days  # two files a day become one, indexed
    return store


def ip_and_net(store: Path) -> tuple[object, object, object]:
    ks = keys.KeyStore(Path(str(store) + "-keys"), "month")
    c = query.connect(store)
    ip = investigate.ip(c, Scope(limit=10_000), SUSPECT, ks, Truncator())
    net = investigate.net(c, Scope(limit=10_000), "203.0.113.0/24", Truncator())
    timeline = investigate.timeline(c, Scope(), address=SUSPECT, keystore=ks, masker=Truncator())
    return ip, net, timeline


def test_same_findings_as_a_scan_of_every_file(compacted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    narrowed = ip_and_net(compacted)
    monkeypatch.setattr(bloom, "candidates", lambda *a, **k: None)  # the probe cannot tell: every file
    everything = ip_and_net(compacted)
    for a, b in zip(narrowed, everything, strict=True):
        assert dataclasses.asdict(a) == dataclasses.asdict(b)  # type: ignore[call-overload]
    ip = narrowed[0]
    assert len(ip.rows.rows) == 6 * 3  # type: ignore[attr-defined]


def test_only_the_suspects_days_are_scanned(compacted: Path) -> None:
    store = Store(compacted)
    files = [k for k in store.catalogue().files if k.startswith("pageviews/")]
    assert len(files) == 60
    ks = keys.KeyStore(Path(str(compacted) + "-keys"), "month")
    c = query.connect(compacted)
    investigate.ip(c, Scope(), SUSPECT, ks, Truncator())
    scanned = [kept for name, kept in c._narrowed.items() if name.startswith("_pageviews_")]
    # pass 1 and the rows: the suspect's six days (bloom filters at 1 % false positives may add one)
    suspect_days = {f"date={dt.date(2026, 1, 1) + dt.timedelta(days=d)}" for d in range(3, 60, 10)}
    assert 6 <= len(scanned[0]) <= 8
    assert suspect_days <= {k.split("/")[1] for k in scanned[0]}
    # a pseudonym is looked for only in its own period's files
    pseudonyms = digests.lookup_pseudonyms(SUSPECT, ks)
    jan = pseudonyms["2026-01"]
    assert isinstance(jan, int)
    feb_files = [k for k in files if "date=2026-02" in k]
    only_feb = bloom.candidates(
        store, feb_files, "client_id", [(jan, dt.date(2026, 1, 1), dt.date(2026, 1, 31))]
    )
    assert only_feb == []


def test_files_without_bloom_filters_are_always_kept(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(f'{SUSPECT} - - [01/Jan/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 1 "-" "x"\n')
    ingest_paths(tmp_path / "store", [log])  # ingest files carry no bloom filter
    store = Store(tmp_path / "store")
    files = [k for k in store.catalogue().files if k.startswith("pageviews/")]
    everyday = (dt.date.min, dt.date.max)
    assert bloom.candidates(store, files, "client_net", [("10.9.9.0/24", *everyday)]) == files


def test_an_unreadable_file_means_no_pruning(compacted: Path, tmp_path: Path) -> None:
    store = Store(compacted)
    files = [k for k in store.catalogue().files if k.startswith("pageviews/")]
    broken = tmp_path / "store"
    import shutil

    shutil.copytree(compacted, broken)
    (broken / files[0]).write_bytes(b"not parquet")
    everyday = (dt.date.min, dt.date.max)
    assert bloom.candidates(Store(broken), files, "client_net", [("203.0.113.0/24", *everyday)]) is None
    with pytest.raises(ValueError, match="no bloom filters"):
        bloom.candidates(store, files, "path", [("/", *everyday)])


def test_the_probe_runs_one_fixed_statement_only() -> None:
    """bloom.py may use DuckDB with file access (the store seam test allows it) because the only
    statement it runs is ``_PROBE`` with bound parameters: no text from an investigator."""
    tree = ast.parse(Path(bloom.__file__).read_text())
    calls = [n for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Attribute)]
    executes = [c for c in calls if c.func.attr in ("execute", "sql", "query", "executemany")]  # type: ignore[union-attr]
    assert executes and all(isinstance(c.args[0], ast.Name) and c.args[0].id == "_PROBE" for c in executes)
    assert "?" in bloom._PROBE and "{" not in bloom._PROBE


def test_a_store_named_by_a_relative_path_is_probed(compacted: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(compacted.parent)
    store = Store("store")
    files = [k for k in store.catalogue().files if k.startswith("pageviews/")]
    kept = bloom.candidates(store, files, "client_net", [("203.0.113.0/24", dt.date.min, dt.date.max)])
    assert kept is not None and 6 <= len(kept) <= 8


def test_an_unreadable_file_in_a_narrowed_scan_is_left_out_with_a_warning(
    compacted: Path, tmp_path: Path
) -> None:
    import shutil

    store = tmp_path / "store"
    shutil.copytree(compacted, store)
    shutil.copytree(Path(str(compacted) + "-keys"), Path(str(store) + "-keys"))
    c = query.connect(store)
    name = c.narrowed("client_net", [("203.0.113.0/24", dt.date.min, dt.date.max)])
    assert name != "pageviews"
    damaged = c._narrowed[name][0]
    sql = f"SELECT count(*) FROM {name} WHERE client_net = '203.0.113.0/24'"
    assert c.execute(sql).rows[0][0] == 3 * 6  # the footers are read (and kept) by this first scan
    # then cut: the next scan's error ("Invalid column metadata") names no file
    (store / damaged).write_bytes((store / damaged).read_bytes()[:100])
    n = c.execute(sql).rows[0][0]
    assert n == 3 * 5  # six days of the suspect's three requests, less the damaged day's
    assert any(damaged in w and "verify" in w for w in c.warnings)
