"""kill -9 at random moments, then re-run: the store holds exactly the rows of an uninterrupted run."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from tests.conftest import cases, store_rows

TRIALS = cases(3)


def write_log(path: Path, n: int) -> None:
    with path.open("w") as f:
        for i in range(n):
            day = 1 + i % 3  # unsorted dates: every batch touches several partitions
            ip = f"198.51.100.{i % 200 + 1}"
            f.write(f'{ip} - - [0{day}/Nov/2026:10:00:00 +0000] "GET /p{i} HTTP/1.1" 200 {i} "-" "ua"\n')


# one test per trial: each is a few seconds of subprocesses, and separate trials spread over the
# test workers instead of holding one of them for half a minute
@pytest.mark.parametrize("trial", range(TRIALS))
def test_sigkill_anywhere_then_rerun_is_exactly_once(tmp_path: Path, trial: int) -> None:
    log = tmp_path / "access.log"
    n = 60_000
    write_log(log, n)
    expected = Counter(f"/p{i}" for i in range(n))
    rng = random.Random(7 + trial)
    store = tmp_path / "store"
    cfg = tmp_path / "cfg.toml"
    cfg.write_text(
        f'store = "{store}"\n[ingest]\nblock_bytes = 262144\nmax_line_bytes = 4096\npartial_line_grace = 0\n'
    )
    cmd = [sys.executable, "-m", "pipeline.cli", "ingest", str(log), "--config", str(cfg), "-q"]
    killed = 0
    for _ in range(2):  # up to two kills per trial, at random moments
        proc = subprocess.Popen(cmd)
        time.sleep(rng.uniform(0.3, 2.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
    subprocess.run(cmd, check=True)
    got = Counter(str(r["path"]) for r in store_rows(store))
    assert got == expected, f"trial {trial} (killed {killed}x): {sum(got.values())} rows"
    assert not list(store.rglob("*.tmp")) and not list(store.glob("_state/*/pending.json"))
