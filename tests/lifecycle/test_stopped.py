"""An audited lifecycle action stopped by SIGTERM (systemd, ``kill``) or Ctrl-C says so and records how
it ended, like a query (found by review: an erase, a purge or a hold stopped by SIGTERM left only its
start entry in the audit trail)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.investigate import audit
from pipeline.lifecycle.session import maintenance_lock
from pipeline.store.commit import Store
from tests.conftest import ROOT

from .test_lifecycle import A, D, build

ACTIONS = {
    "erase": ["erase", "--domain", A, "--case", "STOP-1", "--reason", "request 7"],
    "purge": ["purge"],
    "hold add": ["hold", "add", "--case", "STOP-1", "--reason", "incident", "--domain", A],
}


def entries(store: Path, command: str) -> list[dict[str, object]]:
    return [e for _, e, _ in audit.AuditLog(store).entries() if e and e.get("command") == command]


@pytest.mark.parametrize("action", sorted(ACTIONS))
@pytest.mark.parametrize(("sig", "code", "said", "recorded"), [
    (signal.SIGTERM, 143, "terminated (SIGTERM)", "Terminated"),
    (signal.SIGINT, 130, "interrupted (Ctrl-C)", "KeyboardInterrupt"),
])  # fmt: skip
def test_a_stopped_action_says_so_and_records_how_it_ended(
    store: Path, action: str, sig: signal.Signals, code: int, said: str, recorded: str
) -> None:
    # (March 2024: past the two years, so a purge would delete it)
    build(store, [(n, D(2024, 3, 1 + n % 5), A, f"203.0.113.{n % 5 + 1}") for n in range(20)])
    before = {p: p.read_bytes() for p in (store / "pageviews").rglob("*.parquet")}
    with maintenance_lock(Store.existing(store, "maintenance"), 0.0):  # it queues behind this (--wait)
        proc = subprocess.Popen(
            [sys.executable, "-m", "pipeline.cli", *ACTIONS[action], "--store", str(store), "--wait", "60"],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while not entries(store, action) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # (waiting for the lock, its handlers set)
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == code and err.endswith(
        f"hostlogs: error: {said}: what was committed before stays; run it again\n"
    ), err
    mine = entries(store, action)
    assert [e["status"] for e in mine] == ["started", "error"] and mine[1]["error"] == recorded
    assert audit.AuditLog(store).verify().ok
    assert {p: p.read_bytes() for p in (store / "pageviews").rglob("*.parquet")} == before  # nothing done


# Sends the signal named by argv[1] to itself just before or after ("when": argv[2]) the hold's file
# is written, then runs the hostlogs command in argv[3:].
_STOP_AT_WRITE = """
import os, signal, sys
from pipeline.cli import main
from pipeline.store import layout
from pipeline.store.commit import Store
write, sig, when = Store.write_json, getattr(signal, sys.argv[1]), sys.argv[2]
def write_json(self, key, data):
    if key.startswith(layout.HOLDS) and when == "before":
        os.kill(os.getpid(), sig)
    write(self, key, data)
    if key.startswith(layout.HOLDS) and when == "after":
        os.kill(os.getpid(), sig)
Store.write_json = write_json
sys.argv = ["hostlogs", *sys.argv[3:]]
main()
"""


@pytest.mark.parametrize("when", ["before", "after"])
@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_hold_stopped_once_it_is_being_written_completes_and_says_so(
    store: Path, sig: str, when: str
) -> None:
    """Found by review: ``hold add`` stopped just after its file was written was recorded as an error
    and told the operator to run it again, which then failed ("already has an active hold"); a
    release likewise ("no active hold"). From its commit on, a stop waits for the action's end."""
    build(store, [(n, D(2026, 3, 1 + n % 5), A, f"203.0.113.{n % 5 + 1}") for n in range(5)])

    def run(*args: str, stop: bool = True) -> subprocess.CompletedProcess[str]:
        code = _STOP_AT_WRITE if stop else "import sys; from pipeline.cli import main; main(sys.argv[3:])"
        return subprocess.run(
            [sys.executable, "-c", code, sig, when, *args, "--store", str(store)],
            cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        )  # fmt: skip

    add = run("hold", "add", "--case", "STOP-2", "--reason", "incident", "--domain", A)
    assert add.returncode == 0 and "STOP-2" in add.stdout, add.stderr
    released = run("hold", "release", "STOP-2")
    assert released.returncode == 0, released.stderr
    for command in ("hold add", "hold release"):
        mine = entries(store, command)
        assert [e["status"] for e in mine] == ["started", "ok"], mine
        assert mine[1]["warnings"] == [f"{sig} came once it was committed: it completed"]
    again = run("hold", "add", "--case", "STOP-2", "--reason", "incident", stop=False)
    assert again.returncode == 0, again.stderr  # the first hold was released: a new one may be placed
    assert audit.AuditLog(store).verify().ok


_STOPS = """
import os, signal, sys, threading, time
from pipeline.investigate import audit, stops
log, outcome = audit.AuditLog(sys.argv[1]), "swallowed"
try:
    with log.record("query", "C-1", "why"):
        if sys.argv[2] == "a worker commits":  # (another thread's commit is not this action's)
            held = [stops.committing()]  # (entered there, and left open: as a hold's commit)
            worker = threading.Thread(target=held[0].__enter__)
            worker.start()
            worker.join()
            os.kill(os.getpid(), signal.SIGTERM)
        else:  # "stopped twice while committing": the second stop is not deferred
            with stops.committing():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)
                os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.2)
except BaseException as exc:
    outcome = type(exc).__name__
print(outcome, [e.get("status") for e in log.list()])
"""


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("a worker commits", "Terminated ['started', 'error']"),
        ("stopped twice while committing", "KeyboardInterrupt ['started', 'error']"),
    ],
)
def test_a_commit_defers_only_its_own_actions_first_stop(tmp_path: Path, case: str, expected: str) -> None:
    """Found by review: a commit on a worker thread made the main thread's audited query ignore
    SIGTERM (and claim it completed); and a commit that hangs could not be stopped by Ctrl-C."""
    out = subprocess.run(
        [sys.executable, "-c", _STOPS, str(tmp_path / "store"), case],
        cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.stdout.strip() == expected, out.stderr
