"""The kernel's fence around the sandbox's DuckDB (``fence.py``) and DuckDB's own reader behind it.

These need Linux Landlock (5.13+, enabled): the CI machines have it. Where a kernel has none, the
sandbox reads through pyarrow instead (``reader = "arrow"``, tested everywhere else in the suite).
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import os
import pty
import select
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from pipeline.investigate import audit
from pipeline.investigate import session as query
from pipeline.investigate.duck_settings import DUCKDB_READS
from pipeline.investigate.fence import Fence, Fenced, abi
from pipeline.investigate.limits import Limits
from pipeline.store.commit import Store
from tests.conftest import ROOT, ingest_paths

pytestmark = pytest.mark.skipif(abi() == 0, reason="this kernel has no Landlock")

ARROW, AUTO = Limits(reader="arrow"), Limits(reader="auto")


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("fence") / "store"
    ingest_paths(root, [ROOT / "sample_logs" / "other_vhosts_access.log"])
    return root


def attempt(action: object) -> str:
    try:
        action()  # type: ignore[operator]
    except OSError as exc:
        return type(exc).__name__
    return "done"


def test_the_fenced_thread_and_its_threads_write_nothing_but_the_spill_folder(tmp_path: Path) -> None:
    spill, there = tmp_path / "spill", tmp_path / "file.txt"
    spill.mkdir()
    there.write_text("evidence")
    listener = socket.create_server(("127.0.0.1", 0))
    fence = Fence.start(str(spill))
    assert fence is not None
    try:
        tries = {
            "create": lambda: (tmp_path / "new.txt").write_text("x"),
            "overwrite": lambda: there.write_text("changed"),
            "append": lambda: there.open("a").write("more"),
            "truncate": lambda: os.truncate(there, 0),
            "remove": lambda: there.unlink(),
            "rename": lambda: there.rename(tmp_path / "moved.txt"),
            "link": lambda: os.link(there, tmp_path / "hard.txt"),
            "symlink": lambda: os.symlink(there, tmp_path / "soft.txt"),
            "mkdir": lambda: (tmp_path / "d").mkdir(),
            "connect": lambda: socket.create_connection(listener.getsockname(), timeout=2).close(),
        }
        for name, action in tries.items():
            assert fence.call(lambda a=action: attempt(a)) == "PermissionError", name
            child: list[str] = []  # a thread the fenced thread starts is fenced too
            t = fence.call(lambda a=action, c=child: threading.Thread(target=lambda: c.append(attempt(a))))
            fence.call(t.start)
            t.join()
            assert child == ["PermissionError"], name
        assert fence.call(lambda: attempt(lambda: (spill / "spilled.bin").write_bytes(b"x"))) == "done"
        assert fence.call(lambda: attempt(there.read_text)) == "PermissionError"  # not one it was given
        assert fence.call(lambda: (spill / "spilled.bin").read_bytes()) == b"x"
    finally:
        fence.stop()
        listener.close()
    assert there.read_text() == "evidence" and sorted(p.name for p in tmp_path.iterdir()) == [
        "file.txt",
        "spill",
    ]
    (tmp_path / "new.txt").write_text("the rest of the process is not fenced")


def test_the_fenced_thread_reads_only_the_files_it_was_given_whatever_the_path(tmp_path: Path) -> None:
    """Found by review: DuckDB checks its ``allowed_paths`` as text after folding ``..`` away, the
    kernel follows links: ``/proc/self/cwd/../..<a given file's path>`` opened a link planted below
    the folder the investigator ran from. The kernel's rule is on the file, whatever the path."""
    given, secret, spill = tmp_path / "given.parquet", tmp_path / "keys" / "2026-11.key", tmp_path / "spill"
    secret.parent.mkdir()
    spill.mkdir()
    given.write_bytes(b"evidence")
    secret.write_bytes(b"k" * 32)
    (tmp_path / "link.parquet").symlink_to(secret)
    (tmp_path / "to-given").symlink_to(given)
    fence = Fence.start(str(spill), [str(given)])
    assert fence is not None
    try:
        assert fence.call(given.read_bytes) == b"evidence"
        assert fence.call((tmp_path / "to-given").read_bytes) == b"evidence"  # a link to it: the same file
        for path in (secret, tmp_path / "link.parquet", Path("/proc/self/root") / str(secret).lstrip("/")):
            assert fence.call(lambda p=path: attempt(p.read_bytes)) == "PermissionError", path
        assert fence.call(lambda: attempt(lambda: os.listdir(tmp_path))) == "PermissionError"
    finally:
        fence.stop()
    assert secret.read_bytes() == b"k" * 32  # (the rest of the process reads as before)


@pytest.mark.parametrize("reader", ["read_blob", "read_text"])
def test_a_query_cannot_read_a_link_planted_below_the_folder_it_runs_from(
    store: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reader: str
) -> None:
    """Found by review (the key directory read, and every address undone): DuckDB folds
    ``/proc/self/cwd/../../..<a committed file>`` to the committed file and lets it through, the
    kernel opens the link the investigator planted at ``<cwd>/../../..<that path>``."""
    from click.testing import CliRunner

    from pipeline.cli import main

    committed = str(Store(store).committed_parquet()[0])
    secret = tmp_path / "store-keys" / "2026-11.key"
    secret.parent.mkdir()
    secret.write_bytes(b"S" * 32)
    planted = Path(f"{tmp_path}/evil{committed}")
    planted.parent.mkdir(parents=True)
    planted.symlink_to(secret)
    (tmp_path / "evil" / "a" / "b" / "c").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "evil" / "a" / "b" / "c")
    sql = f"SELECT content FROM {reader}('/proc/self/cwd/../../..{committed}')"
    result = CliRunner().invoke(
        main, ["query", "--store", str(store), "--case", "T-4", "--format", "csv", sql]
    )
    assert result.exit_code == 2 and "SSSS" not in result.output, result.output
    assert "Permission denied" in result.stderr and "left out" not in result.stderr  # (no store file blamed)
    count = [
        "query",
        "--store",
        str(store),
        "--case",
        "T-4",
        "--format",
        "csv",
        "SELECT count(*) FROM pageviews",
    ]
    assert CliRunner().invoke(main, count).output.split()[-1] == "2501"


def test_duckdb_may_write_a_file_it_may_read_and_the_fence_stops_it(store: Path, tmp_path: Path) -> None:
    """Why the fence exists: ``allowed_paths`` admits writes; in the fenced thread the kernel refuses."""
    victim = tmp_path / "victim.parquet"
    shutil.copy(Store(store).committed_parquet()[0], victim)
    before = victim.read_bytes()

    def overwrite() -> str:
        con = duckdb.connect()
        con.execute(f"SET allowed_paths = ['{victim}']")
        con.execute("SET enable_external_access = false")
        try:
            con.execute(f"COPY (SELECT 42 AS x) TO '{victim}' (FORMAT parquet, USE_TMP_FILE false)")
        except duckdb.Error as exc:
            return str(exc)
        finally:
            con.close()
        return "written"

    (tmp_path / "spill").mkdir()
    fence = Fence.start(str(tmp_path / "spill"), [str(victim), *DUCKDB_READS])
    assert fence is not None
    try:
        assert "Permission denied" in fence.call(overwrite)
        assert victim.read_bytes() == before
    finally:
        fence.stop()
    assert overwrite() == "written" and victim.read_bytes() != before  # unfenced, DuckDB lets it through


def test_the_fenced_connection_runs_everything_in_the_fence(store: Path) -> None:
    with query.connect(store, case="F-1", limits=AUTO) as sb:
        assert sb.fenced
        rel = sb.con.sql("SELECT count(*) AS n FROM pageviews")
        assert isinstance(rel, Fenced) and rel.fetchall() == [(2501,)]
        reader = sb.con.sql("SELECT * FROM pageviews").to_arrow_reader()
        assert isinstance(reader, pa.RecordBatchReader) and reader.read_all().num_rows == 2501
        assert sb.con.execute("SELECT current_setting('lock_configuration')").fetchall() == [(True,)]
        with pytest.raises(AttributeError):
            sb.con.anything = 1


SAME = [
    "SELECT * FROM pageviews ORDER BY ALL",
    "SELECT * FROM rejects ORDER BY ALL",
    "SELECT column_name, column_type, null FROM (DESCRIBE pageviews)",
    "SELECT column_name, column_type FROM (DESCRIBE rejects)",
    "SELECT date, client_net, count(*) FROM pageviews WHERE status >= 400 GROUP BY ALL ORDER BY ALL",
]


def both(store: Path, sql: str) -> tuple[pa.Table, pa.Table]:
    tables = []
    for limits in (ARROW, AUTO):
        with query.connect(store, case="F-2", limits=limits) as sb:
            assert sb.fenced == (limits is AUTO)
            result = sb.execute(sql, arrow=True)
            assert result.table is not None and not sb.warnings
            tables.append(result.table)
    return tables[0], tables[1]


@pytest.mark.parametrize("sql", SAME)
def test_both_readers_give_the_same_rows_and_types(store: Path, sql: str) -> None:
    arrow, native = both(store, sql)
    assert arrow.schema == native.schema and arrow.to_pylist() == native.to_pylist()


def older(path: Path, drop: list[str], widen: str | None = None) -> None:
    """Rewrite a committed file as an older writer would have: without ``drop``, ``widen`` as int32;
    its manifest records the new file (as if it had been committed so)."""
    table = pq.read_table(path).drop_columns(drop)
    if widen is not None:
        i = table.schema.get_field_index(widen)
        table = table.set_column(i, widen, table.column(widen).cast(pa.int32()))
    pq.write_table(table, path, compression="zstd")
    root = next(p for p in path.parents if (p / "_manifests").is_dir())
    key = path.relative_to(root).as_posix()
    for manifest in (root / "_manifests").rglob("*.json"):
        data = json.loads(manifest.read_text())
        for entry in data.get("files", []):
            if entry["path"] == key:
                entry.update(bytes=path.stat().st_size, sha256=hashlib.sha256(path.read_bytes()).hexdigest())
                manifest.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


@pytest.mark.parametrize("which", [0, 1, 2])
def test_files_of_an_older_schema_read_null_in_the_new_columns(
    store: Path, tmp_path: Path, which: int
) -> None:
    """The first file, a later one, or all: DuckDB's reader takes the columns of the first file, so a
    file without one fails the scan; the sandbox then reads every file's columns by name."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    files = Store(copy).committed_parquet()
    for f in files if which == 2 else [files[which]]:
        older(f, ["edge_location", "tls", "request_id"], widen="status")
    arrow, native = both(copy, SAME[0])
    assert arrow.schema == native.schema and arrow.to_pylist() == native.to_pylist()
    assert native.num_rows == 2501 and native.column("edge_location").null_count == 2501
    assert native.schema.field("status").type == pa.int16()
    statuses = both(copy, "SELECT status, count(*) FROM pageviews GROUP BY 1 ORDER BY 1")
    assert statuses[0].to_pylist() == statuses[1].to_pylist()


def test_a_planted_file_and_the_store_folders_stay_out_of_reach(store: Path) -> None:
    """DuckDB may open exactly the committed files: not a folder, a glob, a manifest, nor a new file."""
    outside = hashlib.sha256(b"x").hexdigest()
    with query.connect(store, case="F-3", limits=AUTO) as sb:
        for sql in [
            f"SELECT * FROM glob('{store}/**')",
            f"SELECT count(*) FROM read_parquet('{store}/pageviews/*/*.parquet')",
            f"SELECT * FROM read_text('{next((store / '_manifests').rglob('*.json'))}')",
            f"SELECT * FROM read_text('{store}/{outside}')",
        ]:
            with pytest.raises(duckdb.PermissionException):
                sb.con.execute(sql).fetchall()


def no_new_privs() -> str:
    """This thread's NoNewPrivs flag: the fence sets it (Landlock requires it), threads inherit it."""
    return str(
        ctypes.CDLL(None).prctl(39, 0, 0, 0, 0)
    )  # PR_GET_NO_NEW_PRIVS (a fenced thread reads no /proc)


def test_duckdb_work_runs_only_in_fenced_threads(store: Path) -> None:
    """A Python function DuckDB calls for every row reports the thread it runs in: always fenced,
    whatever the result is fetched as; lazy results that would run the query later are refused."""
    seen: list[str] = []

    def probe(x: int) -> int:
        seen.append(no_new_privs())
        return x

    with query.connect(store, case="F-4", limits=AUTO) as sb:
        sb.con.create_function("probe", probe)
        sql = "SELECT probe(status::BIGINT) AS p FROM pageviews"
        assert len(sb.con.sql(sql).fetchall()) == 2501
        assert sb.con.sql(sql).to_arrow_reader().read_all().num_rows == 2501
        assert sb.con.sql(sql).arrow().read_all().num_rows == 2501
        assert sb.con.sql(sql).pl().height == 2501
        assert len(sb.execute(sql).rows) == 2501
        assert sum(1 for _ in sb.con.sql(sql).iter_rows()) == 2501  # a generator, read in the fence
        sb.con.execute("CREATE TEMP TABLE t (p BIGINT)")
        appender = sb.con.query_appender(f"INSERT INTO t {sql}", {"p": "BIGINT"})
        appender.append_row(1)
        appender.flush()  # the INSERT runs the SELECT
        with pytest.raises(TypeError):
            sb.con.sql(sql).pl(lazy=True)
        with pytest.raises((TypeError, AttributeError)):
            pa.table(sb.con.sql(sql))  # through __arrow_c_stream__ it would run on this thread
        with pytest.raises(AttributeError):
            sb.con.sql(sql).__arrow_c_stream__()
    assert len(seen) == 7 * 2501 and set(seen) == {"1"}
    assert no_new_privs() == "0"  # the test's own thread was never fenced


INTERRUPTED = """
import os, signal, sys, threading, time
from pipeline.investigate import session
sb = session.connect(sys.argv[1], case="F-5")
slow = "SELECT count(*) FROM pageviews a, pageviews b, pageviews c WHERE a.bytes + b.bytes > c.bytes"
threading.Timer(1, lambda: os.kill(os.getpid(), signal.SIGINT)).start()
try:
    sb.con.sql(slow).fetchall()
except KeyboardInterrupt:
    pass
else:
    sys.exit("not interrupted")
if sys.argv[2] == "exit":  # without closing: the interpreter's exit must not catch DuckDB mid-unwind
    sys.exit(0)
start = time.monotonic()
assert sb.con.execute("SELECT 42").fetchall() == [(42,)]  # the fenced thread is free again
sb.close()
print(f"ok {time.monotonic() - start:.1f}")
"""


@pytest.mark.parametrize("then", ["go on", "exit"])
def test_ctrl_c_stops_the_statement_in_the_fenced_thread(store: Path, then: str) -> None:
    """Ctrl-C while a fenced statement runs interrupts it: the connection answers and closes, or
    the process exits cleanly (it aborted in C++ when the statement was still unwinding)."""
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPTED, str(store), then], cwd=ROOT, capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert done.returncode == 0 and "terminate" not in done.stderr, done.stderr[-2000:]
    if then == "go on":
        assert done.stdout.startswith("ok ") and float(done.stdout.split()[1]) < 10


def test_a_store_below_a_name_value_folder_is_read_through_pyarrow(store: Path, tmp_path: Path) -> None:
    """Hive partitioning reads every ``name=value`` folder of a path, not only the store's own
    ``date=``: under ``/domain=evil.example/`` DuckDB's reader would give every row that domain."""
    for folder in ("domain=evil.example", "date=1999-01-01"):
        copy = tmp_path / folder / "store"
        shutil.copytree(store, copy)
        sql = "SELECT domain, date, count(*) FROM pageviews GROUP BY ALL ORDER BY ALL"
        with query.connect(copy, case="F-6", limits=AUTO) as sb:
            assert not sb.fenced
            assert sb.execute(sql).rows == query.run(store, sql, case="F-6").rows


@pytest.mark.parametrize("limits", [AUTO, ARROW], ids=["auto", "arrow"])
def test_files_gone_from_two_views_after_opening_are_left_out_of_both(
    store: Path, tmp_path: Path, limits: Limits
) -> None:
    """Found missing while one view is scanned, every gone file is left out of every view at once
    (a view still naming one failed its next statement: the file was 'isolated' already)."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    with query.connect(copy, case="F-7", limits=limits) as sb:
        page = Store(copy).committed_parquet()[1]
        reject = next((copy / "_rejects").rglob("*.parquet"))
        page.unlink()
        reject.unlink()
        assert sb.execute("SELECT count(*) FROM pageviews").rows == [(1668,)]
        assert sb.execute("SELECT count(*) FROM rejects").rows == [(0,)]
        assert sb.execute("SELECT count(*) FROM pageviews").rows == [(1668,)]
        assert len(sb.warnings) == 2 and all("(missing)" in w for w in sb.warnings)


@pytest.mark.parametrize("limits", [AUTO, ARROW], ids=["auto", "arrow"])
def test_a_file_not_of_its_committed_size_is_left_out_before_any_scan(
    store: Path, tmp_path: Path, limits: Limits
) -> None:
    """A committed file replaced by another valid Parquet file (a careless restore) was read as
    evidence, its rows under the wrong day: a size other than the committed one leaves it out."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    files = Store(copy).committed_parquet()
    replaced, grown = files[1], files[2]
    assert files[0].stat().st_size != replaced.stat().st_size
    shutil.copy(files[0], replaced)
    with grown.open("ab") as f:
        f.write(b"\0" * 16)
    first = pq.read_metadata(files[0]).num_rows
    with query.connect(copy, case="F-8", limits=limits) as sb:
        assert sb.execute("SELECT count(*) FROM pageviews").rows == [(first,)]
        assert [w.split(" cannot be read ")[1].split(":")[0] for w in sb.warnings] == ["(altered"] * 2
        assert all("committed with" in w for w in sb.warnings)
        if sb.fenced:  # nor is it readable by its path
            with pytest.raises(duckdb.PermissionException):
                sb.con.execute(f"SELECT count(*) FROM read_parquet('{replaced}')").fetchall()


def test_ctrl_c_in_the_interactive_shell_stops_the_statement_not_the_session(store: Path) -> None:
    """At a terminal, Ctrl-C stops the running statement (audited as interrupted) and the next one
    runs; Ctrl-C at the prompt drops what was typed. Piped input is still aborted whole."""
    pid, fd = pty.fork()
    if pid == 0:  # the child: a session on the terminal, as a user starts it
        os.execv(sys.executable, [sys.executable, "-m", "pipeline.cli", "shell", "--store", str(store),
                                  "--case", "F-9"])  # fmt: skip
    out = b""

    def until(text: bytes, seconds: float = 30, must: bool = True) -> bool:
        """Read until ``text`` appears in what came since the last call."""
        nonlocal out
        seen, end = len(out), time.monotonic() + seconds
        while text not in out[seen:] and time.monotonic() < end:
            if select.select([fd], [], [], 0.2)[0]:
                with contextlib.suppress(OSError):
                    out += os.read(fd, 65536)
        assert text in out[seen:] or not must, out.decode(errors="replace")[-2000:]
        return text in out[seen:]

    try:
        until(b"hostlogs> ")
        os.write(
            fd,
            b"SELECT count(*) FROM pageviews a, pageviews b, pageviews c WHERE a.bytes + b.bytes > c.bytes;\n",
        )
        time.sleep(1.5)
        os.write(fd, b"\x03")  # the terminal sends SIGINT
        until(b"hostlogs> ")  # (after the message)
        assert b"statement interrupted (Ctrl-C)" in out
        os.write(fd, b"SELECT 'half typed")
        until(b"half typed")
        os.write(fd, b"\x03")
        # A signal the kernel hands to another thread (Arrow's, say) leaves readline asleep until
        # the next key (CPython wakes only the thread it lands on): then Enter shows the prompt.
        if not until(b"hostlogs> ", 5, must=False):
            os.write(fd, b"\n")
            until(b"hostlogs> ")
        assert b"...> " not in out  # what was typed was dropped, not continued
        os.write(fd, b"SELECT 6 * 7 AS answer;\n")
        until(b"42")
        os.write(fd, b".quit\n")
        _, status = os.waitpid(pid, 0)
    finally:
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0
    outcomes = [e for e in audit.AuditLog(Store(store)).list("F-9") if e["status"] != "started"]
    assert [e["status"] for e in outcomes] == ["error", "ok"] and outcomes[0]["error"] == "KeyboardInterrupt"
