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
