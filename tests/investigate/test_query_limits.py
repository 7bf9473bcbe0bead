"""Query limits, the audit entry written before a query runs, and unreadable store files."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import QueryLimitError
from pipeline.investigate import audit
from pipeline.investigate import session as query
from pipeline.investigate.limits import Limits
from pipeline.store.commit import Store
from tests.conftest import ROOT, ingest_paths

RUNAWAY = "SELECT count(*) FROM range(100000000000000) a, range(1000) b"


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("limits")
    ingest_paths(tmp / "store", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    return tmp / "store"


def entries(store: Path, case: str) -> list[dict[str, object]]:
    return [e for e in audit.AuditLog(store).list(case)]


def test_a_runaway_query_stops_at_the_timeout(store: Path, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"store = '{store}'\n[query]\ntimeout = '300ms'\n")
    start = time.monotonic()
    r = CliRunner().invoke(main, ["query", "--config", str(cfg), "--case", "T-1", RUNAWAY])
    assert time.monotonic() - start < 10
    assert r.exit_code == 9, r.output
    assert r.stderr.startswith("hostlogs: error: query stopped after 0.3 s (query.timeout)")
    assert r.stderr.count("\n") == 1
    assert [e["status"] for e in entries(store, "T-1")] == ["started", "timeout"]
    with pytest.raises(QueryLimitError, match=r"query\.timeout"):
        query.run(store, "SELECT sum(a.range * b.range) FROM range(1e14::BIGINT) a, range(1000) b",
                  limits=Limits(timeout=0.3))  # fmt: skip


def test_a_huge_result_is_stopped_by_the_memory_limit(store: Path) -> None:
    with pytest.raises(QueryLimitError, match="memory_limit"):
        query.run(store, "SELECT * FROM range(100000000)", limits=Limits(memory_limit="64MB"))


def test_spilling_still_works_within_the_memory_limit(store: Path) -> None:
    """A sort larger than the memory limit spills to the private temp directory (not blocked)."""
    sql = "SELECT count(*) FROM (SELECT range AS x, md5(range::VARCHAR) AS h FROM range(2000000) ORDER BY h)"
    assert query.run(store, sql, limits=Limits(memory_limit="40MB", threads=1)).rows == [(2_000_000,)]


def test_bad_timeout_setting_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[query]\ntimeout = 'soon'\n")
    r = CliRunner().invoke(main, ["query", "--config", str(cfg), "--case", "T-1", "SELECT 1"])
    assert r.exit_code == 3 and "query.timeout" in r.stderr


def test_a_killed_query_leaves_its_start_entry(store: Path) -> None:
    code = (
        "import sys; from pipeline.investigate import session as query; "
        "from pipeline.investigate.limits import Limits; "
        f"query.run({str(store)!r}, {RUNAWAY!r}, case='KILL-1', limits=Limits(timeout=None))"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}
    )
    try:
        deadline = time.monotonic() + 20
        while not entries(store, "KILL-1") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    mine = entries(store, "KILL-1")
    assert [e["status"] for e in mine] == ["started"] and mine[0]["sql"] == RUNAWAY
    assert audit.AuditLog(store).verify().ok


@pytest.mark.parametrize(("sig", "code", "said", "recorded"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)", "Terminated"),
    (signal.SIGINT, 130, "interrupted (Ctrl-C)", "KeyboardInterrupt"),
])  # fmt: skip
def test_a_stopped_query_says_so_and_records_how_it_ended(
    store: Path, sig: signal.Signals, code: int, said: str, recorded: str
) -> None:
    """Found by review: Ctrl-C printed "Aborted!" with exit 1 ("report a bug"), and a query stopped
    by SIGTERM left only its start entry. Now one line, 128 + the signal, and an outcome entry."""
    case = f"SIG-{code}"
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "query", "--store", str(store), "--case", case, RUNAWAY],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 20
    while not entries(store, case) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.3)  # (in the query, its handlers set)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert (
        proc.returncode == code
        and err == f"hostlogs: error: {said}: what was committed before stays; run it again\n"
    )
    mine = entries(store, case)
    assert [e["status"] for e in mine] == ["started", "error"] and mine[1]["error"] == recorded
    assert audit.AuditLog(store).verify().ok


def test_sigterm_ends_an_interactive_shell(store: Path) -> None:
    """Found by review: at a prompt, a statement stopped by SIGTERM (``Terminated`` is a
    ``KeyboardInterrupt``) was taken for a Ctrl-C, and the session went on: systemd, a logout or
    ``kill`` no longer ended it. SIGTERM ends it (143), its statement's outcome recorded."""
    import pty

    leader, follower = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", "shell", "--store", str(store), "--case", "SH-TERM"],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdin=follower, stdout=follower,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    os.close(follower)
    try:
        os.write(leader, f"{RUNAWAY};\n".encode())
        deadline = time.monotonic() + 20
        while not entries(store, "SH-TERM") and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # (in the statement, its handlers set)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
        os.close(leader)
    assert proc.returncode == 143 and err.endswith(
        "hostlogs: error: terminated (SIGTERM): what was committed before stays; run it again\n"
    ), err
    assert "Ctrl-C" not in err
    mine = entries(store, "SH-TERM")
    assert [e["status"] for e in mine][-2:] == ["started", "error"] and mine[-1]["error"] == "Terminated"


def damaged_copy(store: Path, tmp_path: Path, damage: str) -> tuple[Path, str]:
    """A copy of ``store`` whose second committed file is truncated or gone; (copy, its key)."""
    copy = tmp_path / "store"
    shutil.copytree(store, copy)
    bad = Store(copy).committed_parquet()[1]
    if damage == "missing":
        bad.unlink()
    elif damage == "folder":  # a folder where the file was (a careless restore, a sync tool)
        bad.unlink()
        (bad / "x").mkdir(parents=True)
    else:
        bad.write_bytes(bad.read_bytes()[:500])  # truncated: no Parquet footer
    return copy, bad.relative_to(copy).as_posix()


@pytest.mark.parametrize("reader", ["auto", "arrow"])
@pytest.mark.parametrize("damage", ["truncated", "missing", "folder"])
def test_a_corrupt_or_missing_file_is_left_out_with_a_warning(
    store: Path, tmp_path: Path, damage: str, reader: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A missing file used to end every query with exit 6 before any SQL ran: pyarrow checks each
    path when the views are built (and DuckDB's reader opens every file's footer)."""
    monkeypatch.setenv("HOSTLOGS_QUERY_READER", reader)
    copy, rel = damaged_copy(store, tmp_path, damage)
    r = CliRunner().invoke(main, ["query", "--store", str(copy), "--case", "C-1", "--format", "csv",
                                  "SELECT count(*) AS n FROM pageviews"])  # fmt: skip
    assert r.exit_code == 0, r.output
    total = query.run(store, "SELECT count(*) FROM pageviews").rows[0][0]
    day = query.run(store, f"SELECT count(*) FROM pageviews WHERE date = DATE '{rel[15:25]}'").rows[0][0]
    assert r.stdout == f"n\n{total - day}\n"
    assert r.stderr.startswith(f"hostlogs: warning: {rel} cannot be read") and "hostlogs verify" in r.stderr
    assert damage != "missing" or f"{rel} cannot be read (missing)" in r.stderr
    assert damage != "folder" or f"{rel} cannot be read (a folder, not a file)" in r.stderr
    outcome = entries(copy, "C-1")[-1]
    assert outcome["status"] == "ok" and rel in json.dumps(outcome["warnings"])
    # the other days still answer without a warning, and investigations run over the rest
    r = CliRunner().invoke(main, ["investigate", "attacks", "--store", str(copy), "--case", "C-1"])
    assert r.exit_code == 0 and "cannot be read" in r.stderr


def test_the_shell_warns_of_a_missing_file_with_its_first_statement(store: Path, tmp_path: Path) -> None:
    """The views are built when the shell starts: a file left out then must be told with (and
    audited for) the first statement, whose result misses its rows."""
    copy, rel = damaged_copy(store, tmp_path, "missing")
    script = "SELECT count(*) AS n FROM pageviews;\nSELECT 1 AS one;\n"
    r = CliRunner().invoke(main, ["shell", "--store", str(copy), "--case", "SH-2"], input=script)
    assert r.exit_code == 0, r.output
    assert r.stderr.count(f"{rel} cannot be read (missing)") == 1
    first, second = [e for e in entries(copy, "SH-2") if e["status"] == "ok"]
    assert rel in json.dumps(first["warnings"]) and not second.get("warnings")
