"""The audit trail: append-only, hash-chained; verify names the first tampered entry."""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.investigate import audit
from pipeline.store import layout
from pipeline.store.commit import Store
from tests.conftest import ROOT, as_another_user, ingest_paths


def filled(tmp_path: Path, n: int = 5) -> audit.AuditLog:
    log = audit.AuditLog(tmp_path)
    for i in range(1, n + 1):
        log.append(case=f"C-{i % 2}", reason="test", command="query", sql=f"SELECT {i}", rows=i, seconds=0.01,
                   status="ok", error=None, params=None)  # fmt: skip
    return log


def log_file(log: audit.AuditLog) -> Path:
    return Path(log.store.url(layout.AUDIT_LOG))  # the local file, to damage it as an attacker would


def head_file(log: audit.AuditLog) -> Path:
    return Path(log.store.url(layout.AUDIT_HEAD))


def lines(log: audit.AuditLog) -> list[str]:
    return log_file(log).read_text().splitlines(keepends=True)


def test_append_builds_a_chain(tmp_path: Path) -> None:
    log = filled(tmp_path)
    entries = log.list()
    assert [e["seq"] for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0]["prev_hash"] == audit.GENESIS
    for prev, e in itertools.pairwise(entries):
        assert e["prev_hash"] == prev["hash"] == audit.entry_hash(prev)
    e = entries[2]
    assert {
        "seq",
        "time",
        "user",
        "case",
        "reason",
        "command",
        "sql",
        "rows",
        "seconds",
        "prev_hash",
        "hash",
    } <= set(e)
    assert e["time"].endswith("Z") and e["user"]
    report = log.verify()
    assert report.ok and report.entries == 5 and report.head_hash == entries[-1]["hash"]
    assert [e["seq"] for e in log.list("C-1")] == [1, 3, 5]


def test_edit_a_field_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    ls = lines(log)
    entry = json.loads(ls[2])
    entry["sql"] = "SELECT 'nothing to see'"
    ls[2] = json.dumps(entry, sort_keys=True) + "\n"
    log_file(log).write_text("".join(ls))
    report = log.verify()
    assert not report.ok and report.bad_entry == 3 and "entry 3 was modified" in str(report.problem)


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    log = filled(tmp_path)
    ls = lines(log)
    entry = json.loads(ls[1])
    entry["case"] = "OTHER"
    entry["hash"] = audit.entry_hash(entry)
    ls[1] = json.dumps(entry, sort_keys=True) + "\n"
    log_file(log).write_text("".join(ls))
    report = log.verify()
    assert report.bad_entry == 3 and "does not follow entry 2" in str(report.problem)


def test_delete_a_line_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    ls = lines(log)
    del ls[1]
    log_file(log).write_text("".join(ls))
    report = log.verify()
    assert not report.ok and report.bad_entry == 2 and "seq 3 where 2 was expected" in str(report.problem)


def test_swap_two_lines_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    ls = lines(log)
    ls[2], ls[3] = ls[3], ls[2]
    log_file(log).write_text("".join(ls))
    report = log.verify()
    assert not report.ok and report.bad_entry == 3


def test_truncating_the_end_is_detected_by_the_head(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log_file(log).write_text("".join(lines(log)[:3]))
    report = log.verify()
    assert not report.ok and "ends at entry 3 but head.json records entry 5" in str(report.problem)


def test_garbage_line_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    ls = lines(log)
    ls[3] = ls[3][:40] + "\n"
    log_file(log).write_text("".join(ls))
    assert log.verify().bad_entry == 4


def test_concurrent_appends_keep_one_chain(tmp_path: Path) -> None:
    def worker(k: int) -> None:
        log = audit.AuditLog(tmp_path)  # own file descriptor per append: flock serialises them
        for i in range(25):
            log.append(case=f"T-{k}", command="query", sql=f"SELECT {i}")

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    report = audit.AuditLog(tmp_path).verify()
    assert report.ok and report.entries == 100


def test_case_ids_are_validated() -> None:
    assert audit.check_case("INC-2026-042", True) == "INC-2026-042"
    assert audit.check_case(None, False) is None
    with pytest.raises(UsageError, match="--case"):
        audit.check_case(None, True)
    with pytest.raises(UsageError, match="invalid case id"):
        audit.check_case("x y; rm -rf", True)


def test_cli_audit_list_and_verify(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest_paths(store, [ROOT / "sample_logs" / "legacy.example.org" / "access_log"])
    run = CliRunner().invoke
    for case in ("A-1", "B-2", "A-1"):
        r = run(main, ["query", "--store", str(store), "--case", case, "--reason", "triage",
                       "SELECT count(*) FROM pageviews WHERE client_net = '203.0.113.45/24' OR path = '/203.0.113.45'"])  # fmt: skip
        assert r.exit_code == 0, r.output
    r = run(main, ["audit", "list", "--store", str(store), "--case", "A-1", "--json"])
    entries = json.loads(r.stdout)
    # each query: its start (with the case, reason and SQL), then its outcome (of = the start's seq)
    assert [e["seq"] for e in entries] == [1, 2, 5, 6] and entries[0]["reason"] == "triage"
    assert [e["status"] for e in entries] == ["started", "ok"] * 2
    assert entries[1]["of"] == 1 and entries[1]["rows"] == 1 and "rows" not in entries[0]
    # a full address typed into SQL is recorded as its network, like everything at rest
    assert "203.0.113.45" not in (store / "_audit" / "audit.jsonl").read_text()
    assert "203.0.113.0/24" in entries[0]["sql"]
    r = run(main, ["audit", "list", "--store", str(store)])
    assert r.exit_code == 0 and "B-2" in r.stdout and "(6 rows)" in r.stdout
    r = run(main, ["audit", "verify", "--store", str(store)])
    assert r.exit_code == 0 and "audit log OK: 6 entries" in r.stdout
    path = store / "_audit" / "audit.jsonl"
    ls = path.read_text().splitlines(keepends=True)
    path.write_text(ls[0] + ls[2])
    r = run(main, ["audit", "verify", "--store", str(store)])
    assert r.exit_code == 8 and r.stderr.startswith("hostlogs: error: audit log damaged: entry 2 ")


def test_a_missing_head_is_a_failure(tmp_path: Path) -> None:
    log = filled(tmp_path)
    head_file(log).unlink()
    report = log.verify()
    assert not report.ok and "head.json is missing" in str(report.problem)


def test_cutting_the_tail_and_deleting_the_head_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log_file(log).write_text("".join(lines(log)[:3]))
    head_file(log).unlink()
    assert not log.verify().ok
    # the next append does not heal it: the head is not recreated over a damaged trail
    log.append(case="C-9", command="query", sql="SELECT 9", status="ok")
    assert not log.verify().ok


def test_a_cut_tail_is_not_healed_by_the_next_append(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log_file(log).write_text("".join(lines(log)[:3]))
    log.append(case="C-9", command="query", sql="SELECT 9", status="ok")
    report = log.verify()
    assert not report.ok and "head.json records entry 5" in str(report.problem)


def test_deleting_the_first_entry_is_detected(tmp_path: Path) -> None:
    log = filled(tmp_path)
    log_file(log).write_text("".join(lines(log)[1:]))
    report = log.verify()
    assert not report.ok and report.bad_entry == 1


def test_a_rewritten_chain_fails_against_an_earlier_head(tmp_path: Path) -> None:
    """Edit + every hash recomputed + head rewritten: only an anchor outside the store shows it."""
    log = filled(tmp_path)
    anchor = log.verify().head_hash
    rewritten, prev = [], audit.GENESIS
    for line in lines(log):
        entry = json.loads(line)
        entry["sql"] = entry["sql"].replace("SELECT 2", "SELECT 'nothing'")
        entry["prev_hash"] = prev
        entry["hash"] = prev = audit.entry_hash(entry)
        rewritten.append(json.dumps(entry, sort_keys=True) + "\n")
    log_file(log).write_text("".join(rewritten))
    head_file(log).write_text(json.dumps({"entries": 5, "seq": 5, "hash": prev}))
    assert log.verify().ok  # consistent in itself
    report = log.verify(expect=anchor)
    assert not report.ok and "expected hash" in str(report.problem)
    r = CliRunner().invoke(
        main, ["audit", "verify", "--store", str(tmp_path.parent / tmp_path.name), "--expect", anchor]
    )
    assert r.exit_code != 0


def test_an_empty_trail_verifies_but_a_deleted_one_does_not(tmp_path: Path) -> None:
    assert audit.AuditLog(tmp_path).verify().ok  # never audited: nothing to check
    log = filled(tmp_path, 2)
    log_file(log).unlink()
    head_file(log).unlink()
    assert not audit.AuditLog(tmp_path).verify().ok  # _audit/ exists: the trail was deleted


def test_a_head_left_half_written_by_a_killed_process_is_cleared_by_the_next_append(tmp_path: Path) -> None:
    """The head is replaced atomically (a temporary, then a rename): a process killed between the two
    leaves the temporary. The next append (under the log's lock) removes it; the trail verifies."""
    log = filled(tmp_path, 2)
    folder = head_file(log).parent
    leftover = folder / ".head.json~audit~0123abcd.tmp"  # as write_atomic names it (fs._TEMPORARY)
    leftover.write_text('{"entries": 3')
    others = folder / ".head.json~files~0123abcd.tmp"  # another writer's: not the audit's to remove
    others.write_text("")
    log.append(case="C-1", reason="test", command="query", sql="SELECT 3", rows=3, seconds=0.01,
               status="ok", error=None, params=None)  # fmt: skip
    assert not leftover.exists() and others.exists()
    assert log.verify().ok and log.verify().entries == 3


def test_any_recovery_clears_a_head_temporary_unless_an_append_holds_the_log(tmp_path: Path) -> None:
    """A killed audited command re-run through the library (erase_unaudited, an ingest) appends no
    entry: the store's recovery clears the audit's leftover too, but never while the log is locked
    (an append under way may be about to rename that very file)."""
    import fcntl

    log = filled(tmp_path, 1)
    leftover = head_file(log).parent / ".head.json~audit~89abcdef.tmp"
    sample = ROOT / "sample_logs" / "other_vhosts_access.log"
    leftover.write_text("{")
    with log_file(log).open("rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)  # an append under way in another process
        ingest_paths(tmp_path, [sample], fmt="vhost_combined")
        assert leftover.exists()
    ingest_paths(tmp_path, [sample], fmt="vhost_combined")  # nothing new to read; recovery still runs
    assert not leftover.exists() and log.verify().ok


def test_recovery_leaves_a_head_temporary_alone_before_the_log_exists(tmp_path: Path) -> None:
    """No audit log yet: the first append may be creating it right now (its temporary follows)."""
    from pipeline.store.fs import LocalFS

    folder = tmp_path / layout.AUDIT
    folder.mkdir()
    first = folder / ".head.json~audit~00c0ffee.tmp"
    first.write_text("{")
    LocalFS(tmp_path).remove_temporaries(layout.AUDIT_WRITER, under=layout.AUDIT, lock=layout.AUDIT_LOG)
    assert first.exists()


def test_text_that_is_not_utf8_is_refused_and_recorded_as_an_attempt(tmp_path: Path) -> None:
    # Found by an operator pass: a byte such as 0xff in SQL or --reason (a terminal in Latin-1)
    # could not be appended to the trail: exit 6 "cannot append to the audit log", nothing recorded.
    store = tmp_path / "store"
    ingest_paths(store, [ROOT / "sample_logs" / "legacy.example.org" / "access_log"])
    run = CliRunner().invoke
    long = (
        "SELECT '" + "a" * 1100 + "\udcff 203.0.113.77' AS x"
    )  # (found by review: masked by polars, exit 1)
    for args, what in (
        (["--reason", "caf\udce9", "SELECT 1"], "the reason"),
        (["SELECT 'caf\udce9'"], "the SQL"),
        ([long], "the SQL"),
    ):
        r = run(main, ["query", "--store", str(store), "--case", "C-1", *args])
        assert r.exit_code == 2 and r.stderr == (
            f"hostlogs: error: {what} is not valid UTF-8 text (check the terminal's encoding): not run\n"
        )
    entries = [e for _, e, _ in audit.AuditLog(store).entries() if e]
    assert [e["status"] for e in entries] == ["started", "error"] * 3  # the attempts, readable
    assert entries[0]["reason"] == "caf\\xe9" and entries[2]["sql"] == "SELECT 'caf\\xe9'"
    assert entries[4]["sql"].endswith("a\\xff 203.0.113.0/24' AS x")
    assert run(main, ["audit", "verify", "--store", str(store)]).exit_code == 0
    shell = subprocess.run(  # a real terminal's bytes, one bad statement among good ones
        [sys.executable, "-m", "pipeline.cli", "shell", "--store", str(store), "--case", "C-1"],
        input=b"SELECT 'caf\xe9';\nSELECT 42 AS answer;\n", capture_output=True, check=False,
    )  # fmt: skip
    assert shell.returncode == 2 and b"42" in shell.stdout and b"the SQL is not valid UTF-8" in shell.stderr


def test_a_file_name_that_is_not_utf8_is_recorded_escaped_not_refused(tmp_path: Path) -> None:
    # Found by review: the check for undecodable text refused every parameter, so a log named with
    # a Latin-1 byte could be ingested but never re-ingested, nor exported to such a name.
    log, store = tmp_path / "n\udcff.log", str(tmp_path / "store")
    log.write_text('203.0.113.1 - - [10/Oct/2026:13:55:01 +0000] "GET / HTTP/1.1" 200 1 "-" "c"\n')
    run = CliRunner().invoke
    base = ["--store", store, "--domain", "x.example", "--final", "-q"]
    assert run(main, ["ingest", str(log), *base]).exit_code == 0
    r = run(main, ["ingest", "--reingest", str(log), *base, "--case", "C-1"])
    assert r.exit_code == 0, r.output
    out = tmp_path / "e\udcff.csv"
    r = run(
        main, ["export", "--store", store, "--case", "C-1", "--domain", "x.example", "--output", str(out)]
    )
    assert r.exit_code == 0 and out.exists(), r.output
    trail = (tmp_path / "store" / "_audit" / "audit.jsonl").read_text(encoding="utf-8")
    assert "n\\\\xff.log" in trail and "e\\\\xff.csv" in trail
    assert run(main, ["audit", "verify", "--store", store]).exit_code == 0


def test_audit_list_refuses_a_case_id_no_entry_can_have(tmp_path: Path) -> None:
    # Found by review: `audit list --case 'C\xff'` listed nothing with exit 0, where `query` refuses
    # the same id (exit 2): an investigator would read "no entries" for a typo.
    store = tmp_path / "store"
    ingest_paths(store, [ROOT / "sample_logs" / "legacy.example.org" / "access_log"])
    r = CliRunner().invoke(main, ["audit", "list", "--store", str(store), "--case", "C\udcff"])
    assert r.exit_code == 2 and "invalid case id" in r.stderr


def test_a_head_that_cannot_be_read_refuses_the_entry_instead_of_breaking_the_chain(tmp_path: Path) -> None:
    """Found by review: an unreadable head was taken for a damaged one, so the entry was appended and
    the head left behind; once the head was readable again ``audit verify`` reported entries deleted
    from the end. Root stands in for another user by dropping its permission override (setpriv)."""
    import os

    log = filled(tmp_path, 3)
    os.chmod(head_file(log), 0)
    code = (
        "import sys; from pipeline.investigate import audit; from pipeline.errors import StoreError\n"
        "try: audit.AuditLog(sys.argv[1]).append(case='C-9', reason='r', command='query', sql='SELECT 1', "
        "rows=1, seconds=0.0, status='ok', error=None, params=None)\n"
        "except StoreError as e: print('StoreError', e); sys.exit(6)\n"
    )
    try:
        proc = as_another_user("-c", code, str(tmp_path))
    finally:
        os.chmod(head_file(log), 0o644)
    assert proc.returncode == 6 and "cannot read" in proc.stdout, proc.stdout + proc.stderr
    report = log.verify()
    assert report.ok and report.entries == 3  # no entry without its head: the chain is whole


def test_the_recorded_user_is_the_account_not_what_the_environment_says(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Found by review: the user came from $LOGNAME/$USER, which anyone sets."""
    import os
    import pwd

    from pipeline.rules import os_user

    account = pwd.getpwuid(os.getuid()).pw_name
    monkeypatch.setattr("pipeline.rules.LOGIN_UID", "/nonexistent")  # (a test run from a login session)
    monkeypatch.setenv("LOGNAME", "alice")
    monkeypatch.setenv("USER", "alice")
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert os_user() == account
    monkeypatch.setenv("SUDO_USER", "bob")  # anyone sets it: believed only when sudo is the parent
    assert os_user() == account


def test_sudo_is_named_when_sudo_running_as_root_started_the_command(tmp_path: Path) -> None:
    """The positive side, with a stand-in: a root process named sudo (sudo itself is not installed
    here) that starts the command with SUDO_USER set, as sudo does."""
    import os
    import pwd
    import shutil
    import subprocess
    import sys

    if os.geteuid() != 0:
        pytest.skip("needs a root process to stand in for sudo")
    stand_in = tmp_path / "sudo"
    shutil.copy("/bin/sh", stand_in)
    script = f"{sys.executable} -c 'from pipeline.rules import os_user; print(os_user())'; true"
    env = {**os.environ, "SUDO_USER": "alice"}
    out = subprocess.run([str(stand_in), "-c", script], env=env, capture_output=True, text=True, check=True)
    from pipeline.rules import _login_account

    login = _login_account()  # (a test run from a login session: its account is named too)
    account = pwd.getpwuid(os.getuid()).pw_name
    also = f"; login {login}" if login not in (None, account, "alice") else ""
    assert out.stdout.strip() == f"{account} (sudo by alice{also})"


@pytest.mark.parametrize(
    ("loginuid", "said"),
    [("4294967295", ""), ("65534", " (login nobody)"), ("me", ""), ("junk", ""), (None, "")],
)
def test_the_account_that_logged_in_is_named_when_another_runs_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, loginuid: str | None, said: str
) -> None:
    """The kernel's login uid survives sudo -s, su and every shell between (SUDO_USER does not)."""
    import os
    import pwd

    from pipeline import rules

    if said and os.getuid() == 65534:
        pytest.skip("runs as nobody itself")
    account = pwd.getpwuid(os.getuid()).pw_name
    path = tmp_path / "loginuid"
    if loginuid is not None:
        path.write_text(str(os.getuid()) if loginuid == "me" else loginuid)
    monkeypatch.setattr(rules, "LOGIN_UID", str(path))
    monkeypatch.delenv("SUDO_USER", raising=False)
    assert rules.os_user() == account + said


def test_a_login_uid_set_by_the_kernel_is_read_through_a_shell(tmp_path: Path) -> None:
    """The real thing: a login uid written as pam_loginuid writes it, then a shell, then the command."""
    import os
    import pwd
    import subprocess
    import sys

    if os.geteuid() != 0 or os.getuid() == 65534:
        pytest.skip("needs root to set a login uid")
    script = (
        f"echo 65534 > /proc/self/loginuid && sh -c "
        f"\"{sys.executable} -c 'from pipeline.rules import os_user; print(os_user())'\""
    )
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=False)
    if out.returncode != 0:
        pytest.skip(f"the login uid cannot be set here: {out.stderr.strip()}")
    assert out.stdout.strip() == f"{pwd.getpwuid(os.getuid()).pw_name} (login nobody)"


@pytest.mark.parametrize("typo", ["zz", "91b5", "g" * 64, "a" * 63, ""])
def test_an_expected_hash_that_is_no_hash_is_a_usage_error_not_a_damaged_trail(
    tmp_path: Path, typo: str
) -> None:
    """A typo in --expect is exit 2; exit 8 ("audit log damaged") would open an incident."""
    log = filled(tmp_path)
    Store(tmp_path).init()
    anchor = log.verify().head_hash
    store = str(tmp_path.parent / tmp_path.name)
    r = CliRunner().invoke(main, ["audit", "verify", "--store", store, "--expect", typo])
    assert r.exit_code == 2 and "64 hex digits" in r.output
    pasted = f"  {anchor.upper()}\n"  # as copied from a case file
    assert CliRunner().invoke(main, ["audit", "verify", "--store", store, "--expect", pasted]).exit_code == 0
    other = ("0" if anchor[0] != "0" else "1") + anchor[1:]
    assert CliRunner().invoke(main, ["audit", "verify", "--store", store, "--expect", other]).exit_code == 8


def test_the_head_hash_an_empty_trail_prints_is_found_later(tmp_path: Path) -> None:
    """Found by review: verify printed the genesis hash for an empty trail, and --expect refused it
    (exit 8, "damaged") on the same store, and after entries were appended to it."""
    log = audit.AuditLog(tmp_path)
    empty = log.verify()
    assert empty.ok and empty.head_hash == audit.GENESIS
    assert log.verify(expect=empty.head_hash).ok
    filled(tmp_path, 2)
    assert audit.AuditLog(tmp_path).verify(expect=empty.head_hash).ok
