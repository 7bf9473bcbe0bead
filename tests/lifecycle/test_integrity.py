"""Integrity of the evidence store (issue #12 §2, §4): checksums in every commit, ``hostlogs verify``,
damaged files isolated by every maintenance command, and OS errors on the store as one line, exit 6."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.errors import StoreError
from pipeline.lifecycle import holds, retention, verify
from pipeline.lifecycle.compact import compact
from pipeline.lifecycle.erase import erase_unaudited as erase  # the work; the audited door: audited.erase
from pipeline.store.catalogue import file_sha256
from pipeline.store.commit import Store
from tests.conftest import ingest_paths

from .test_lifecycle import (
    A,
    B,
    build,
    cfg_for,
    files_per_day,
    invoke,
    many_files,
    tree_hash,
    two_visitors,
)
from .test_retention import spread

D = dt.date


def manifests(store: Path) -> list[dict[str, object]]:
    return [json.loads(p.read_text()) for p in sorted(store.glob("_manifests/*/*.json"))]


def garble(path: Path) -> None:
    """A truncated file: what a crash of the disk or a careless copy leaves."""
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def one_file(store: Path, day: str) -> Path:
    return sorted((store / "pageviews" / f"date={day}").glob("*.parquet"))[0]


def one_line_error(err: str) -> str:
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("hostlogs: error: "), err
    return lines[0]


# ----------------------------------------------------------------------------------------------------
# checksums in every commit


def test_every_commit_records_size_and_sha256_of_its_files(store: Path) -> None:
    """Ingest (pageviews and rejects), compaction, erasure and purge all commit through one path."""
    rows = spread()
    log = build(store, rows)
    with log.open("a") as f:
        f.write("not a log line\n")
    assert ingest_paths(store, [log], fmt="vhost_combined", domain=None).rejects
    build(store, [(900 + n, D(2026, 11, 1), A, "203.0.113.9") for n in range(5)], name="more.log")
    cfg = cfg_for(store)
    compact(cfg, target_mb=64)
    erase(cfg, domain=B, date_from=D(2024, 4, 1))
    retention.purge(cfg, as_of=D(2026, 3, 20))
    kinds = {str(m.get("operation", "ingest")) for m in manifests(store)}
    assert kinds >= {"ingest", "compact", "erase", "purge"}, kinds
    entries = [e for m in manifests(store) for e in m["files"]]  # type: ignore[attr-defined]
    assert entries and all(set(e) >= {"path", "bytes", "sha256"} for e in entries)
    assert any(e["path"].startswith("_rejects/") for e in entries)
    for e in entries:
        if (store / e["path"]).exists():
            assert (
                file_sha256(store / e["path"]) == e["sha256"]
                and (store / e["path"]).stat().st_size == e["bytes"]
            )
    report = verify.check(Store(store))
    assert report.ok and not report.legacy, report
    assert report.records_checked == 2  # the erasure's and the purge's deletion records, sealed


def test_a_commit_cannot_skip_the_checksum(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.init()
    progress = store.recover()
    rel = "pageviews/date=2026-11-01/part-x.parquet"
    store.begin(1, [rel])
    (tmp_path / "s" / rel).parent.mkdir(parents=True)
    (tmp_path / "s" / rel).write_bytes(b"written behind the store's back")
    with pytest.raises(StoreError, match="not written by this commit"):
        store.commit(progress, {"seq": 1, "created": "2026-11-01T00:00:00+00:00", "files": [{"path": rel}]})
    store.begin(1, [rel])
    store.write_bytes(tmp_path / "s" / rel, b"x")
    with pytest.raises(StoreError, match="leaves out"):
        store.commit(progress, {"seq": 1, "created": "2026-11-01T00:00:00+00:00", "files": []})
    assert not store.manifest_path(1).exists()


# ----------------------------------------------------------------------------------------------------
# hostlogs verify


def test_verify_reports_altered_missing_planted_and_damaged(store: Path) -> None:
    build(store, two_visitors())
    build(store, [(100, D(2026, 12, 1), A, "192.0.2.1")], name="late.log")
    erase(cfg_for(store), domain=B, date_from=D(2026, 11, 4))
    code, out, err = invoke("verify", "--store", str(store), "--json")
    assert code == 0 and json.loads(out)["ok"] and not err
    files = sorted(store.glob("pageviews/date=*/*.parquet"))
    altered = bytearray(files[0].read_bytes())
    altered[len(altered) // 2] ^= 0x01  # one bit, same size
    files[0].write_bytes(bytes(altered))
    files[1].unlink()
    planted = files[2].with_name("part-0000000000000000.parquet")
    shutil.copy(files[3], planted)
    record = next(store.glob("_deletions/*.json"))
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "rows_deleted": 0}))
    damaged = sorted(store.glob("_manifests/files/*.json"))[-1]
    damaged.write_text("{not json")
    code, out, err = invoke("verify", "--store", str(store), "--json")
    problems = {(p["kind"], p["path"]) for p in json.loads(out)["problems"]}
    rel = lambda p: p.relative_to(store).as_posix()  # noqa: E731
    assert {
        ("altered", rel(files[0])), ("missing", rel(files[1])), ("planted", rel(planted)),
        ("damaged record", rel(record)), ("damaged manifest", rel(damaged)),
    } <= problems, problems  # fmt: skip
    assert code == 8 and "integrity check failed" in one_line_error(err)
    code, out, err = invoke("purge", "--verify", "--store", str(store))
    assert code == 8 and "integrity FAILED" in out and "planted: " in out
    one_line_error(err)


def test_verify_names_a_folder_where_a_committed_file_was(store: Path) -> None:
    """A restore or sync tool that left a folder in a file's place: reported as such, not as a file of
    the folder entry's size."""
    build(store, two_visitors())
    bad = sorted(store.glob("pageviews/date=*/*.parquet"))[0]
    bad.unlink()
    (bad / "nested").mkdir(parents=True)
    code, out, err = invoke("verify", "--store", str(store))
    assert code == 8 and f"altered: {bad.relative_to(store).as_posix()} (a folder, not a file;" in out
    one_line_error(err)


def test_legacy_files_are_unverifiable_until_recorded(store: Path) -> None:
    build(store, two_visitors())
    for path in store.glob("_manifests/*/*.json"):  # as an older hostlogs wrote them
        m = json.loads(path.read_text())
        path.write_text(
            json.dumps({**m, "files": [{k: v for k, v in e.items() if k != "sha256"} for e in m["files"]]})
        )
    code, out, _ = invoke("verify", "--store", str(store))
    assert code == 0 and "unverifiable (legacy): 8 files" in out and "--record-legacy" in out
    grown = one_file(store, "2026-10-28")
    grown.write_bytes(grown.read_bytes() + b"\0")  # altered before its checksum is recorded: size differs
    code, out, _ = invoke("verify", "--store", str(store), "--record-legacy", "--json")
    report = json.loads(out)
    assert code == 8 and len(report["recorded"]) == 7
    assert (
        [p["path"] for p in report["problems"]] == report["legacy"] == [grown.relative_to(store).as_posix()]
    )
    grown.write_bytes(grown.read_bytes()[:-1])
    code, out, _ = invoke("verify", "--store", str(store), "--json")
    assert code == 0 and len(json.loads(out)["legacy"]) == 1  # the file that was not recorded
    other = one_file(store, "2026-10-29")
    data = bytearray(other.read_bytes())
    data[len(data) // 2] ^= 0x01
    other.write_bytes(bytes(data))
    code, out, _ = invoke("verify", "--store", str(store), "--json")
    assert code == 8 and json.loads(out)["problems"][0]["path"] == other.relative_to(store).as_posix()


# ----------------------------------------------------------------------------------------------------
# one damaged file: reported, isolated, the rest keeps working


def test_compaction_leaves_damaged_files_and_merges_the_rest(store: Path) -> None:
    many_files(store, n=600, days=2)
    before = files_per_day(store)
    small = sorted((store / "pageviews" / "date=2026-11-01").glob("*.parquet"))
    garble(small[0])
    shutil.copy(small[2], small[1])  # valid Parquet, but not what was committed under that name
    kept = tree_hash(small[0], small[1])
    code, out, err = invoke("compact", "--store", str(store), "--target-mb", "64")
    line = one_line_error(err)
    assert code == 8 and small[0].name in line and "hostlogs verify" in line and "DAMAGED (2 files)" in out
    assert tree_hash(small[0], small[1]) == kept  # left as they are, not merged
    after = files_per_day(store)
    assert after["2026-11-01"] == 3 and after["2026-11-02"] == 1 < before["2026-11-02"]


def test_export_skips_a_damaged_file_and_says_so(store: Path, tmp_path: Path) -> None:
    build(store, two_visitors())
    garble(one_file(store, "2026-10-28"))
    out_file = tmp_path / "a.csv"
    code, _, err = invoke(
        "export", "--store", str(store), "--request", "R-1", "--domain", A, "--output", str(out_file)
    )
    line = one_line_error(err)
    assert code == 8 and "date=2026-10-28" in line and "incomplete" in line
    exported = out_file.read_text().splitlines()
    expected = sum(1 for n, d, dom, _ in two_visitors() if dom == A and d != D(2026, 10, 28))
    assert len(exported) == 1 + expected


def test_erase_stops_the_day_of_a_damaged_file(store: Path) -> None:
    build(store, two_visitors())
    bad = one_file(store, "2026-10-30")
    garble(bad)
    day = tree_hash(bad.parent)
    code, _, err = invoke("erase", "--store", str(store), "--request", "R-1", "--domain", B)
    line = one_line_error(err)
    assert code == 8 and "NOT erased (2026-10-30)" in line and bad.name in line
    assert tree_hash(bad.parent) == day  # that day untouched: its B rows are not silently kept as erased
    others = [f for f in Store(store).committed_parquet() if f.parent != bad.parent]
    domains = {d for f in others for d in pq.read_table(f, columns=["domain"]).column("domain").to_pylist()}
    assert domains == {A}  # every other day was erased
    record = json.loads(next(store.glob("_deletions/*.json")).read_text())
    assert record["days_not_erased"] == ["2026-10-30"]
    assert record["damaged_files"][0]["file"] == bad.relative_to(store).as_posix()


def test_purge_destroys_a_damaged_expired_file_and_keeps_a_held_one(store: Path) -> None:
    build(store, spread())
    expired, held = one_file(store, "2024-01-05"), one_file(store, "2024-02-05")
    garble(expired)
    garble(held)
    holds.add_hold(store, "INC-7", "case", date_from=D(2024, 2, 1), date_to=D(2024, 2, 10))
    code, _, err = invoke("purge", "--store", str(store), "--as-of", "2026-03-20")
    line = one_line_error(err)
    assert code == 8 and held.name in line
    assert not expired.exists() and held.exists()  # retention still destroys; a hold still keeps
    days = {p.parent.name[5:] for p in store.glob("pageviews/date=*/*.parquet")}
    assert days == {"2024-02-05", "2024-03-25", "2024-04-05", "2024-04-15", "2024-04-25", "2026-11-01"}
    record = json.loads(next(store.glob("_deletions/*.json")).read_text())
    actions = {d["file"]: d["action"] for d in record["damaged_files"]}
    assert actions[expired.relative_to(store).as_posix()].startswith("destroyed unread")
    assert actions[held.relative_to(store).as_posix()].startswith("left untouched")


# ----------------------------------------------------------------------------------------------------
# OS errors on the store: one line, exit 6, for every command


@contextlib.contextmanager
def immutable(root: Path) -> Iterator[None]:
    """Read-only for root too (``chmod`` is not): the ext4 immutable attribute on every file and dir."""
    if shutil.which("chattr") is None:
        pytest.skip("chattr not available")
    done = subprocess.run(["chattr", "-R", "+i", str(root)], capture_output=True)
    try:
        if done.returncode != 0:
            pytest.skip(f"chattr +i does not work here: {done.stderr.decode().strip()}")
        yield
    finally:
        subprocess.run(["chattr", "-R", "-i", str(root)], capture_output=True)


def commands(store: Path, out: Path) -> dict[str, list[str]]:
    s = ["--store", str(store)]
    return {
        "ingest": ["ingest", str(out.parent / "more.log"), *s, "--format", "vhost_combined"],
        "purge": ["purge", *s, "--as-of", "2026-03-20"],
        "compact": ["compact", *s],
        "erase": ["erase", *s, "--request", "R-1", "--domain", A],
        "hold add": ["hold", "add", "--case", "INC-9", "--reason", "r", *s],
        "hold release": ["hold", "release", "INC-8", *s],
        "export": ["export", "--request", "R-1", "--domain", A, "--output", str(out), *s],
        "verify --record-legacy": ["verify", "--record-legacy", *s],
    }


@pytest.mark.parametrize("mechanism", ["immutable", "file where a directory belongs"])
def test_an_unwritable_store_is_one_line_and_exit_6_for_every_command(
    store: Path, tmp_path: Path, mechanism: str
) -> None:
    build(store, spread())
    holds.add_hold(store, "INC-8", "case", date_from=D(2024, 2, 1))
    (tmp_path / "more.log").write_text(
        f'{A}:443 192.0.2.1 - - [01/Nov/2026:12:00:00 +0000] "GET /x HTTP/1.1" 200 1 "-" "ua"\n'
    )
    out = tmp_path / "export.csv"
    if mechanism == "immutable":
        guard: contextlib.AbstractContextManager[None] = immutable(store)
    else:  # every writer's state directory (its lock lives there) is a plain file
        for state in (store / "_state").iterdir():
            if state.is_dir():
                shutil.rmtree(state)
                state.write_text("")
        (store / "_state" / "maintenance").write_text("")
        guard = contextlib.nullcontext()
    with guard:
        for name, args in commands(store, out).items():
            code, _, err = invoke(*args)
            line = one_line_error(err)
            assert code == 6, (name, code, err)
            assert str(store) in line, (name, line)
        if mechanism == "immutable":  # read-only commands still work on a read-only store
            for args in (["verify"], ["purge", "--verify", "--as-of", "2024-01-01"], ["hold", "list"]):
                code, _, err = invoke(*args, "--store", str(store))
                assert code == 0, (args, err)


def test_debug_shows_the_traceback(store: Path) -> None:
    build(store, spread())
    with immutable(store):
        code, _, err = invoke("--debug", "compact", "--store", str(store))
    assert code == 6 and "Traceback" in err and err.rstrip().splitlines()[-1].startswith("hostlogs: error: ")


def test_purge_keeps_the_manifests_of_files_that_stay(store: Path, tmp_path: Path) -> None:
    """A manifest retention shorter than the rows' must not leave committed files without a record."""
    for i in range(3):  # three batches into one day: manifests 1..3 of writer "files"
        build(store, [(i, D(2026, 11, 1), A, "192.0.2.1")], name=f"{i}.log")
    far = retention.today() + dt.timedelta(days=400)
    cfg = cfg_for(store, retention="5y", manifests="30d")
    report = retention.purge(cfg, as_of=far)
    assert report.manifests_deleted == {}  # every one still commits a file that stays
    assert verify.check(Store(store)).ok
    compact(cfg, target_mb=64)  # the three files become one: the ingest manifests no longer commit it
    report = retention.purge(cfg, as_of=far)
    assert report.manifests_deleted == {"files": 2}  # the newest of each writer stays
    assert verify.check(Store(store)).ok


def test_a_deletion_record_removed_is_reported_missing(store: Path) -> None:
    # Found by an adversarial pass: `verify` said OK with _deletions/ removed, the proof of what a
    # purge and an erasure deleted. Their commit records still name the operations: the records are due.
    build(store, spread())
    retention.purge(cfg_for(store), as_of=D(2026, 3, 20))
    erase(cfg_for(store), domain=B)
    assert invoke("verify", "--store", str(store))[0] == 0
    records = sorted(store.glob("_deletions/*.json"))
    assert len(records) == 2
    records[1].unlink()  # the erasure's
    code, out, _ = invoke("verify", "--store", str(store), "--json")
    problems = json.loads(out)["problems"]
    assert code == 8 and [p["kind"] for p in problems] == ["missing record"], problems
    assert "the erase " in problems[0]["detail"] and "deletion record is gone" in problems[0]["detail"]
    shutil.rmtree(store / "_deletions")
    code, out, _ = invoke("verify", "--store", str(store), "--json")
    assert code == 8 and [p["kind"] for p in json.loads(out)["problems"]] == ["missing record"] * 2


def test_commands_on_a_store_that_does_not_exist_create_nothing(tmp_path: Path) -> None:
    # Found by an operator pass: `audit verify` said OK on a mistyped store and `keys list` made an
    # empty `<store>-keys` for it.
    store = tmp_path / "typo"
    for args, message in (
        (["audit", "verify"], "no store at"),
        (["keys", "list"], "no key directory at"),
        (["keys", "destroy", "--before", "2020-01-01", "--case", "C-1"], "no key directory at"),
        (["hold", "list"], "no store at"),
        (["audit", "list"], "no store at"),
        (["ingest", "--reingest", "a.log", "--case", "C-1"], "no store at"),
    ):
        code, _, err = invoke(*args, "--store", str(store))
        assert code == 6 and message in one_line_error(err), err
    assert list(tmp_path.iterdir()) == []
