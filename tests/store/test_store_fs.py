"""The store's layout and its local filesystem: keys, atomic writes, listing, locks and appends."""

from __future__ import annotations

import datetime as dt
import errno
import os
from pathlib import Path

import pyarrow as pa
import pytest

from pipeline.errors import LockedError, StoreError, os_error_message
from pipeline.store import layout
from pipeline.store.commit import Store
from pipeline.store.fs import LocalFS
from tests.conftest import as_another_user

DAY = dt.date(2026, 11, 3)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("pageviews/date=2026-11-03/part-ab.parquet", DAY),
        ("_rejects/date=2026-11-03/rejects-ab.parquet", DAY),
        ("pageviews/date=2026-11-03", DAY),
        ("pageviews/date=2026-13-03/part-ab.parquet", None),  # not a date
        ("pageviews/xdate=2026-11-03/part-ab.parquet", None),
        ("_manifests/files/000000000001.json", None),
    ],
)
def test_date_of(key: str, expected: dt.date | None) -> None:
    assert layout.date_of(key) == expected


def test_layout_names_match_what_the_stages_wrote_before() -> None:
    assert layout.partition(layout.PAGEVIEWS, DAY) == "pageviews/date=2026-11-03"
    assert layout.data_file(DAY, "b1") == "pageviews/date=2026-11-03/part-b1.parquet"
    assert layout.reject_file(DAY, "b1") == "_rejects/date=2026-11-03/rejects-b1.parquet"
    new = layout.new_part(DAY)
    assert new.startswith("pageviews/date=2026-11-03/part-") and len(new.rsplit("-", 1)[1]) == 16 + 8
    assert layout.manifest("files", 7) == "_manifests/files/000000000007.json"
    assert (
        layout.manifest_seq(layout.manifest("files", 7)) == 7
        and layout.manifest_writer("_manifests/w/1.json") == "w"
    )
    assert (layout.progress("w"), layout.pending("w"), layout.ingest_lock("w")) == (
        "_state/w/progress.json", "_state/w/pending.json", "_state/w/ingest.lock",
    )  # fmt: skip
    assert layout.MIGRATION_MARKER == "_state/keyed-digests.json"
    assert layout.hold("INC-1.json") == "_holds/INC-1.json"
    assert layout.deletion("20261103T000000000000Z", "op1") == "_deletions/20261103T000000000000Z-op1.json"
    assert (layout.AUDIT_LOG, layout.AUDIT_HEAD) == ("_audit/audit.jsonl", "_audit/head.json")
    assert layout.partition_day("date=2026-11-03") == DAY and layout.partition_day("x") is None
    assert layout.in_table("pageviews/date=2026-11-03/p.parquet", layout.PAGEVIEWS)
    assert not layout.in_table("_rejects/date=2026-11-03/p.parquet", layout.PAGEVIEWS)


def test_local_fs_writes_atomically_lists_and_removes(tmp_path: Path) -> None:
    fs = LocalFS(tmp_path)
    assert fs.write_atomic("a/b/c.json", b"{}", "files") == 2
    fs.write_atomic("a/b/d.parquet", b"x", "files")
    fs.write_atomic("a/e.parquet", b"y", "files")
    assert fs.list("a") == ["a/b/c.json", "a/b/d.parquet", "a/e.parquet"]
    assert fs.list("a", suffix=".parquet") == ["a/b/d.parquet", "a/e.parquet"]
    assert fs.list("a", pattern="*/*.parquet") == ["a/b/d.parquet"]
    assert fs.list("missing") == [] and fs.folders("missing") == []
    assert fs.folders("a") == ["b"] and fs.size("a/b/d.parquet") == 1 and fs.read_bytes("a/e.parquet") == b"y"
    assert not [p for p in tmp_path.rglob("*.tmp")]  # no temporary left behind
    fs.remove("a/e.parquet")
    fs.remove("a/e.parquet")  # missing is fine
    with pytest.raises(FileNotFoundError):
        fs.remove("a/e.parquet", missing_ok=False)
    fs.prune_empty("a/b")  # not empty: stays
    assert fs.is_folder("a/b")
    fs.remove("a/b/c.json")
    fs.remove("a/b/d.parquet")
    fs.prune_empty("a/b")
    assert not fs.is_folder("a/b") and fs.is_folder("a")
    assert fs.key_of(fs.url("a/x")) == "a/x" and fs.key_of("/elsewhere/x") is None


def test_a_relative_root_gives_the_same_keys(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for root in ("store", "."):
        fs = LocalFS(root)
        fs.write_atomic("pageviews/date=2026-11-03/p.parquet", b"x", "files")
        assert fs.list("pageviews") == ["pageviews/date=2026-11-03/p.parquet"]
        assert "pageviews/date=2026-11-03/p.parquet" in fs.list("")  # the whole tree: keys, no "./"
        assert fs.list("", pattern="pageviews/*/*.parquet") == ["pageviews/date=2026-11-03/p.parquet"]
        _, base = fs.arrow()
        assert os.path.isabs(base)


def test_write_errors_are_store_errors_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a file where a directory belongs")
    with pytest.raises(StoreError, match=r"^cannot write .*/a: .*check the store path"):
        LocalFS(tmp_path).write_atomic("a/b.json", b"{}", "files")


def test_recovery_removes_only_its_own_writers_temporaries(tmp_path: Path) -> None:
    fs = LocalFS(tmp_path)
    fs.make_folders("pageviews/date=2026-11-03")
    mine = tmp_path / "pageviews/date=2026-11-03/.p.parquet~files~0123abcd.tmp"
    theirs = tmp_path / "pageviews/date=2026-11-03/.p.parquet~pipe-7~0123abcd.tmp"
    for p in (mine, theirs):
        p.write_bytes(b"partial")
    fs.remove_temporaries("files")
    assert not mine.exists() and theirs.exists()


def test_append_line_sees_the_last_line(tmp_path: Path) -> None:
    fs = LocalFS(tmp_path)
    seen: list[bytes | None] = []

    def build(last: bytes | None) -> bytes:
        seen.append(last)
        return b"%d\n" % (int(last or b"0") + 1)

    for _ in range(3):
        fs.append_line("_audit/audit.jsonl", build)
    assert seen == [None, b"1", b"2"] and fs.read_bytes("_audit/audit.jsonl") == b"1\n2\n3\n"


def test_append_line_open_failure_is_a_store_error_with_its_label(tmp_path: Path) -> None:
    (tmp_path / "_audit").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot open the audit log"):
        LocalFS(tmp_path).append_line("_audit/audit.jsonl", lambda last: b"x\n", "audit log")


def test_lock_is_exclusive_per_key(tmp_path: Path) -> None:
    fs = LocalFS(tmp_path)
    with fs.lock("_state/w/ingest.lock", 0, "busy"):
        with pytest.raises(LockedError, match="busy"), fs.lock("_state/w/ingest.lock", 0, "busy"):
            pass
        with fs.lock("_state/v/ingest.lock", 0, "busy"):
            pass


def test_store_existing_is_the_one_no_store_check(tmp_path: Path) -> None:
    with pytest.raises(
        StoreError, match=r"^no store at .*nope: run 'hostlogs ingest' first or give --store$"
    ):
        Store.existing(tmp_path / "nope")
    (tmp_path / "audited" / "_audit").mkdir(parents=True)  # a folder is no store, nor one queried by mistake
    with pytest.raises(StoreError, match="no store at"):
        Store.existing(tmp_path / "audited")
    (tmp_path / "audited" / "_holds").mkdir()  # held before anything was ingested: a store
    assert Store.existing(tmp_path / "audited").location == str(tmp_path / "audited")
    with pytest.raises(StoreError, match="no store at"):
        Store.existing(tmp_path / "audited", "maintenance", ingested=True)


def test_store_takes_keys_and_old_paths_alike(tmp_path: Path) -> None:
    store = Store(tmp_path / "s")
    store.init()
    key = layout.data_file(DAY, "b1")
    store.write_parquet(key, pa.table({"domain": ["a.example"]}))
    assert store.committed(layout.PAGEVIEWS) == [key]
    assert store.committed(store.pageviews) == [tmp_path / "s" / key]  # the old form
    assert store.parquet_rows(key) == store.parquet_rows(tmp_path / "s" / key) == 1
    store.write_json("_holds/x.json", {"a": 1})
    assert (
        store.read_json("_holds/x.json") == store.read_json(tmp_path / "s" / "_holds" / "x.json") == {"a": 1}
    )
    assert store.read_json("_holds/missing.json") is None
    assert store.sha256(key) == __import__("hashlib").sha256(store.read_bytes(key)).hexdigest()
    store.begin(1, [key])
    assert store.hidden() == {key} and store.committed(layout.PAGEVIEWS) == []


def test_the_store_reaches_its_bytes_only_through_its_filesystem(tmp_path: Path) -> None:
    """A Store whose root names nothing on disk works through the StoreFS it is given (as S3 will)."""
    nowhere, real = tmp_path / "nowhere", tmp_path / "real"
    store = Store(nowhere, fs=LocalFS(real))
    store.init()
    progress = store.recover()
    key = layout.data_file(DAY, "b1")
    store.begin(1, [key])
    store.write_parquet(key, pa.table({"domain": ["a.example", "b.example"]}))
    store.commit(
        progress, {"seq": 1, "created": "2026-11-03T00:00:00Z", "source": None, "files": [{"path": key}]}
    )
    assert (
        store.committed(layout.PAGEVIEWS) == [key]
        and store.check_file(key, store.catalogue().files[key]) is None
    )
    assert store.read_parquet(key, ["domain"]).get_column("domain").to_list() == ["a.example", "b.example"]
    assert (
        store.dataset(layout.PAGEVIEWS, [key], pa.schema([("domain", pa.string())])).to_table().num_rows == 2
    )
    with store.lock():
        assert store.recover().seq == 1
    assert store.peer("maintenance").writers() == ["files"] and store.manifest_keys() == [
        layout.manifest("files", 1)
    ]
    assert not nowhere.exists() and (real / key).is_file()


@pytest.mark.parametrize(
    "key", ["../outside.txt", "pageviews/../../outside.txt", "/etc/hostname", "a\\..\\b"]
)
def test_a_key_cannot_leave_the_store(tmp_path: Path, key: str) -> None:
    """Keys are relative and inside the root: a key that climbs out is refused, read or write."""
    store = Store(tmp_path / "s")
    store.init()
    (tmp_path / "outside.txt").write_text("not the store's")
    with pytest.raises(StoreError, match=r"not (a key of|in) the store"):
        store.read_bytes(key)
    with pytest.raises(StoreError, match=r"not (a key of|in) the store"):
        store.put_bytes(key, b"planted", "files")
    assert (tmp_path / "outside.txt").read_text() == "not the store's"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside.txt", "s"]


def test_a_permission_error_advice_fits_a_read_too() -> None:
    """A query over a date folder this user may not enter said "may not write there"."""
    message = os_error_message(
        PermissionError(errno.EACCES, "Permission denied", "/s/pageviews/date=x"), "read"
    )
    assert message == (
        "cannot read /s/pageviews/date=x: Permission denied; this user may not read or write there: "
        "run as the store's owner or fix the permissions"
    )


def test_a_listing_is_the_glob_it_replaced(tmp_path: Path) -> None:
    """``LocalFS.list`` walks with scandir (so that an unreadable folder is an error): on readable
    folders it lists exactly what pathlib's rglob and glob listed, dotfiles and links included."""
    root = tmp_path / "s"
    for rel in ("t/date=2026-01-01/a.parquet", "t/date=2026-01-01/.b.parquet~w~1.tmp", "t/date=2026-01-02/c.parquet",
                "t/x.json", "t/deep/er/y.json", "m/w1/1.json", "m/w2/2.json", "m/w2/sub/3.json", "other/o.json"):  # fmt: skip
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"x")
    (root / "t/date=2026-01-03").mkdir()  # an empty partition folder
    (root / "t/date=2026-01-02.parquet").mkdir()  # a folder matching a file pattern's last level
    (root / "t/linked").symlink_to(root / "other")  # rglob does not walk links to folders
    fs = LocalFS(root)
    cut = len(str(root)) + 1

    def before(prefix: str, suffix: str = "", pattern: str | None = None) -> list[str]:
        base = root / prefix
        found = base.glob(pattern) if pattern else base.rglob("*")
        return sorted(str(p)[cut:] for p in found if p.name.endswith(suffix) and (pattern or p.is_file()))

    for args in [("t",), ("t", ".parquet"), ("t", "", "date=*/*.parquet"), ("t", "", "date=*"), ("m", "", "*/*.json"),
                 ("m", ".json", "*/*"), ("t", "", "*.parquet"), ("missing",), ("", "", "*/*.json")]:  # fmt: skip
        assert fs.list(*args) == before(*args), args


@pytest.mark.parametrize(("damage", "where", "listed", "pattern"), [
    ("file", "_holds", "_holds", "*.json"), ("dangling link", "_holds", "_holds", "*.json"),
    ("file", "_manifests", "_manifests", "*/*.json"), ("dangling link", "_manifests", "_manifests", "*/*.json"),
    ("file", "pageviews", "pageviews", None), ("dangling link", "pageviews", "pageviews", None),
    ("dangling link", "pageviews/date=2026-12-05", "pageviews", "date=*/*.parquet"),
])  # fmt: skip
def test_a_file_or_a_dangling_link_where_a_folder_belongs_is_an_error(
    tmp_path: Path, damage: str, where: str, listed: str, pattern: str | None
) -> None:
    """Found by review: a ``_holds/`` replaced by a file or by a link to nowhere listed as empty (the
    purge then deleted held rows), and so did ``_manifests/`` (queries saw no rows) and a partition
    folder turned into a dangling link (export and erase skipped the day). (A file named like a
    folder a pattern goes through is skipped, as glob did: ``_state/*/pending.json`` passes files.)"""
    fs = LocalFS(tmp_path)
    if "/" in where:
        fs.write_atomic("pageviews/date=2026-12-04/a.parquet", b"x", "w")
    target = tmp_path / where
    target.parent.mkdir(parents=True, exist_ok=True)
    if damage == "file":
        target.write_text("x")
    else:
        target.symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="cannot list"):
        fs.list(listed, pattern=pattern)


def test_a_folder_that_cannot_be_read_is_an_error_not_an_empty_folder(tmp_path: Path) -> None:
    """Found by review: glob skipped a folder it could not read, so a ``_holds/`` the purge could not
    read was no holds at all (and the held rows were deleted). Root stands in for another user by
    dropping its permission override (setpriv)."""
    store = tmp_path / "store"
    holds = store / "_holds"
    holds.mkdir(parents=True)
    (holds / "h.json").write_text("{}")
    os.chmod(holds, 0)
    code = (
        "import sys; from pipeline.store.fs import LocalFS; from pipeline.errors import StoreError\n"
        "try: print(LocalFS(sys.argv[1]).list('_holds', pattern='*.json'))\n"
        "except StoreError as e: print('StoreError', e); sys.exit(6)\n"
    )
    try:
        proc = as_another_user("-c", code, str(store))
    finally:
        os.chmod(holds, 0o755)
    assert proc.returncode == 6, proc.stdout + proc.stderr
    assert proc.stdout.startswith("StoreError cannot list") and "_holds" in proc.stdout


@pytest.mark.parametrize("text", ["[" * 100_000, "[1, 2]", '"text"', "null"])
def test_a_json_file_that_is_no_object_is_a_store_error(tmp_path: Path, text: str) -> None:
    """Found by review: JSON nested deeper than the parser goes raised RecursionError (an internal
    error, exit 1, from every command reading holds or manifests); a list was returned as an object."""
    store = Store(tmp_path)
    (tmp_path / "f.json").write_text(text)
    with pytest.raises(StoreError, match=r"cannot read .*f\.json"):
        store.read_json("f.json")


@pytest.mark.parametrize("damage", ["file", "dangling link"])
def test_folders_of_a_file_or_a_link_to_nowhere_is_an_error(tmp_path: Path, damage: str) -> None:
    """Found by review: ``folders`` of a ``_manifests`` replaced by a file had no writers (their
    manifests unseen); a missing folder still has none."""
    fs = LocalFS(tmp_path)
    assert fs.folders("_manifests") == []
    if damage == "file":
        (tmp_path / "_manifests").write_text("x")
    else:
        (tmp_path / "_manifests").symlink_to(tmp_path / "nowhere")
    with pytest.raises(StoreError, match="cannot list"):
        fs.folders("_manifests")


def test_a_folder_of_someone_else_inside_the_store_stops_no_report(tmp_path: Path) -> None:
    """Found by review: a store on a volume of its own has a ``lost+found`` it may not read; after the
    listing became strict, status, verify and the metrics failed on it. A whole-tree listing passes
    over a folder it cannot read below the listed one; a listing of the store's own folders does
    not (``_holds/`` unreadable stays an error). Root stands in for another user (setpriv)."""
    from tests.conftest import ingest_paths

    store = tmp_path / "store"
    log = tmp_path / "a.log"
    log.write_text('203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    ingest_paths(store, [log])
    foreign = [store / "lost+found", store / "pageviews" / "lost+found"]
    for folder in foreign:
        folder.mkdir()
        os.chmod(folder, 0)
    try:
        runs = [
            as_another_user("-m", "pipeline.cli", cmd, "--store", str(store)) for cmd in ("status", "verify")
        ]
    finally:
        for folder in foreign:
            os.chmod(folder, 0o700)
    for run in runs:
        assert run.returncode == 0, run.stdout + run.stderr


def test_the_output_guard_knows_the_names_a_key_directory_reads(tmp_path: Path) -> None:
    import datetime as dt

    from pipeline.privacy import keys
    from pipeline.store import output

    for period in ("day", "week", "month"):
        store = keys.KeyStore(tmp_path / period, period)  # type: ignore[arg-type]
        for pid in (
            keys.period_id(dt.date(2026, 1, 5), period),
            keys.period_id(dt.date(2026, 12, 31), period),
        ):
            store.key(pid, create=True)
        store.destroy_before(dt.date(2026, 6, 1))
        store.stream_key()
        names = {p.name for p in (tmp_path / period).rglob("*") if p.is_file()}
        assert names and all(output.KEY_NAME.fullmatch(n) for n in names), names
    assert not any(
        output.KEY_NAME.fullmatch(n) for n in ("server.key", "talk.key", "2026.key", "x-2026-11.key")
    )
