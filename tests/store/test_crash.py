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


def test_a_batch_whose_manifest_is_written_is_committed_for_every_reader(tmp_path: Path) -> None:
    """Killed between a batch's manifest and the removal of its intent record (found by review):
    its files stayed hidden from status, erasure and purge until that writer ran again, and an
    erasure of the domain reported complete while its rows were still queryable."""
    from pipeline.store import layout
    from pipeline.store.commit import Store
    from tests.cli.test_cli import invoke
    from tests.conftest import ingest_paths

    log, store = tmp_path / "access.log", tmp_path / "store"
    write_log(log, 300)
    ingest_paths(store, [log], fmt="combined")
    s = Store(store)
    last = s.read_json(s.manifest_keys()[-1])
    assert last is not None
    files = [f["path"] for f in last["files"]]
    (writer,) = s.writers()
    s.put_json(
        layout.pending(writer), {"seq": last["seq"], "files": files, "retire": [], "phase": "writing"}, writer
    )
    assert set(files) <= set(s.committed("pageviews")) | set(s.committed("_rejects"))
    code, out, _ = invoke("erase", "--store", str(store), "--request", "R-1", "--domain", "example.test")
    assert code == 0, out
    count = [
        "query",
        "--store",
        str(store),
        "--case",
        "C-1",
        "--format",
        "csv",
        "SELECT count(*) FROM pageviews",
    ]
    assert invoke(*count)[1].split()[-1] == "0"
