"""Piped mode (Apache ``CustomLog "|hostlogs ingest -"``) and overlapping runs, with real processes."""

from __future__ import annotations

import contextlib
import itertools
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import store_rows

LINE = 'www.example.com:443 203.0.113.{o} - - [10/Oct/2026:13:55:{s:02d} +0000] "GET /n{n} HTTP/1.1" 200 {n} "-" "ua"\n'


def hostlogs(*args: str) -> list[str]:
    return [sys.executable, "-m", "pipeline.cli", *args]


def lines(start: int, count: int) -> bytes:
    return "".join(LINE.format(o=n % 250 + 1, s=n % 60, n=n) for n in range(start, start + count)).encode()


@pytest.fixture(autouse=True)
def _reaped(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every process a test starts is ended and its pipes closed when the test ends, passed or failed
    (found by review: a failed test left its stdin pipe open, and its garbage collection failed the
    next test on that worker, under ``filterwarnings = error``)."""
    started: list[subprocess.Popen[bytes]] = []
    real = subprocess.Popen

    class Tracked(real):  # type: ignore[valid-type,misc]
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(subprocess, "Popen", Tracked)
    yield
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        proc.wait()


def wait_for_stop_handlers(proc: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    """Until the piped ingest has set its stop handlers (SIGTERM and SIGHUP caught: ``stop_signals``
    sets them with SIGINT, which Python catches from the start). Found by review: a fixed sleep was
    too short under load, and the signal met the start-up's default handlers."""
    wanted = (1 << (signal.SIGTERM - 1)) | (1 << (signal.SIGHUP - 1))
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = Path(f"/proc/{proc.pid}/status").read_text()
        caught = int(next(x for x in status.splitlines() if x.startswith("SigCgt:")).split()[1], 16)
        if caught & wanted == wanted:
            return
        time.sleep(0.01)
    raise AssertionError("the piped ingest never set its stop handlers")


def wait_for_rows(store: Path, n: int, timeout: float = 10.0) -> int:
    deadline = time.monotonic() + timeout
    got = 0
    while time.monotonic() < deadline:
        got = len(store_rows(store)) if (store / "pageviews").exists() else 0
        if got >= n:
            return got
        time.sleep(0.1)
    return got


def test_pipe_commits_while_running_and_flushes_on_sigterm(tmp_path: Path) -> None:
    store = tmp_path / "store"
    proc = subprocess.Popen(
        hostlogs("ingest", "-", "--store", str(store), "--flush-seconds", "0.3", "-q"), stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    sent = 0
    for burst in range(3):  # bursts: each must become durable without waiting for EOF
        proc.stdin.write(lines(sent, 500))
        proc.stdin.flush()
        sent += 500
        assert wait_for_rows(store, sent) == sent, f"burst {burst} not committed while the pipe is open"
    proc.stdin.write(lines(sent, 300) + b"www.example.com:443 203.0.113.9 - - [10/Oct/2026:13:55:00 +0000]")
    proc.stdin.flush()
    sent += 300
    time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)  # Apache restarting: flush what was read, then exit cleanly
    assert proc.wait(timeout=20) == 0
    proc.stdin.close()
    paths = Counter(str(r["path"]) for r in store_rows(store))
    assert paths == Counter(f"/n{i}" for i in range(sent))  # every line once; the cut last line is a reject
    assert not list(store.glob("_state/*/pending.json"))


def test_pipe_and_cron_ingest_do_not_block_each_other(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = tmp_path / "other_vhosts_access.log"
    log.write_bytes(lines(10_000, 50))
    proc = subprocess.Popen(
        hostlogs("ingest", "-", "--store", str(store), "--flush-seconds", "0.2", "-q"), stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(0, 20))
    proc.stdin.flush()
    assert wait_for_rows(store, 20) == 20
    cron = subprocess.run(hostlogs("ingest", str(log), "--store", str(store), "--final", "-q"), timeout=60)
    assert cron.returncode == 0
    proc.stdin.close()
    assert proc.wait(timeout=20) == 0
    assert len(store_rows(store)) == 70


def test_two_ingests_started_together_are_exactly_once(tmp_path: Path) -> None:
    store = tmp_path / "store"
    log = tmp_path / "access.log"
    log.write_bytes(lines(0, 40_000))
    procs = [
        subprocess.Popen(hostlogs("ingest", str(log), "--store", str(store), "--final", "-q"))
        for _ in range(2)
    ]
    codes = sorted(p.wait(timeout=60) for p in procs)
    assert codes in ([0, 0], [0, 75])  # the loser either found nothing left to do or was refused
    waited = subprocess.Popen(
        hostlogs("ingest", str(log), "--store", str(store), "--final", "-q", "--wait", "30")
    )
    assert waited.wait(timeout=60) == 0
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/n{i}" for i in range(40_000))


def test_a_quiet_pipe_commits_its_last_full_batch(tmp_path: Path) -> None:
    """Batches cut because they were full are parsed on the worker pool; when the pipe then goes
    quiet, the last one must still become durable within the flush time (not wait for more input)."""
    store = tmp_path / "store"
    proc = subprocess.Popen(
        hostlogs(
            "ingest", "-", "--store", str(store), "--flush-seconds", "0.3", "--flush-lines", "100", "-q"
        ),
        stdin=subprocess.PIPE,
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(0, 250))  # two full batches and a half one, then silence
    proc.stdin.flush()
    assert wait_for_rows(store, 250, timeout=8) == 250
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0
    proc.stdin.close()


def test_a_pipe_of_short_lines_is_committed_in_batches_of_bounded_lines(tmp_path: Path) -> None:
    """A pipe's block is cut like a file's (at most block_bytes / 200 lines a batch): a pipe of
    short lines flushed by a large --flush-lines had been one batch of millions of lines (1 GB for
    8 MiB of one-byte lines); the same lines, rows and rejects, in order."""
    import os

    from pipeline.ingest.blocks import MIN_LINE_BYTES
    from pipeline.store.commit import Store

    store = tmp_path / "store"
    block = 1 << 16
    settings = {"BLOCK_BYTES": block, "MAX_LINE_BYTES": 4096, "MAX_REJECT_RATE": 1}
    env = {**os.environ, **{f"HOSTLOGS_INGEST_{k}": str(v) for k, v in settings.items()}}
    data = lines(0, 3) + b"x\n" * 30_000 + lines(3, 2)
    proc = subprocess.run(
        hostlogs("ingest", "-", "--store", str(store), "--format", "vhost_combined", "--flush-lines", "10000000", "-q"),
        input=data, env=env, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0
    manifests = sorted(Store(store).iter_manifests(), key=lambda m: m["seq"])
    assert max(m["lines"] for m in manifests) <= block // MIN_LINE_BYTES < 30_000
    assert sum(m["lines"] for m in manifests) == 30_005 and sum(m["rows"] for m in manifests) == 5
    spans = [(m["source"]["start"], m["source"]["end"]) for m in manifests]
    assert (
        spans[0][0] == 0
        and spans[-1][1] == len(data)
        and all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    )
    assert sorted(str(r["path"]) for r in store_rows(store)) == [f"/n{n}" for n in range(5)]


def test_sigterm_reads_what_the_writer_already_sent(tmp_path: Path) -> None:
    """Apache writes, then restarts its logger with SIGTERM: what is already in the pipe is read and
    committed before exiting, not dropped with the pipe."""
    store = tmp_path / "store"
    proc = subprocess.Popen(
        hostlogs("ingest", "-", "--store", str(store), "--flush-seconds", "30", "-q"), stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(0, 20_000))  # returns once the pipe took it, long before it is read
    proc.stdin.flush()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    proc.stdin.close()
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/n{i}" for i in range(20_000))


def test_lines_written_after_sigterm_are_read_or_refused(tmp_path: Path) -> None:
    """Found by review: the drain after SIGTERM stopped at the first moment the pipe was empty, and
    the lines a writer still wrote before the process exited were accepted by the pipe and lost.
    Now it reads until the writer is quiet (or gone), and a write after it has stopped fails (EPIPE)."""
    import os

    store = tmp_path / "store"
    read_end, write_end = os.pipe()
    proc = subprocess.Popen(
        hostlogs("ingest", "-", "--store", str(store), "--flush-seconds", "0.2", "-q"), stdin=read_end
    )
    os.close(read_end)
    accepted = 0
    for n in range(40):
        os.write(write_end, lines(n, 1))
        accepted += 1
        time.sleep(0.01)
    assert wait_for_rows(store, 40, timeout=30) == 40  # (running: its signal handlers are set)
    proc.send_signal(signal.SIGTERM)
    for n in range(40, 70):  # still writing for ~0.3 s after the signal
        os.write(write_end, lines(n, 1))
        accepted += 1
        time.sleep(0.01)
    os.close(write_end)
    assert proc.wait(timeout=30) == 0
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/n{i}" for i in range(accepted))


def test_a_stop_while_an_oversized_line_is_skipped_closes_the_pipe() -> None:
    """Found by review: a stop that came while an oversized line was being skipped returned without
    the last reads, leaving the pipe open: what the writer still wrote was accepted and lost. Now
    the rest of the line and what follows it are read, and a later write fails (EPIPE)."""
    import os

    from pipeline.ingest.pipes import iter_pipe_blocks

    read_end, write_end = os.pipe()
    os.write(write_end, b"x" * 3000)  # an oversized line (max 1,000 bytes), no newline yet
    calls = [0]

    def stop() -> bool:  # asked once the first read started the skip
        calls[0] += 1
        return calls[0] > 1

    blocks = iter_pipe_blocks(
        read_end, flush_seconds=30, flush_lines=1000, block_bytes=4096, max_line_bytes=1000, stop=stop
    )
    first = next(blocks)  # (the drain: the pipe has been quiet for its moment)
    rest = list(blocks)
    try:
        os.write(write_end, b"late line\n")
        refused = False
    except BrokenPipeError:
        refused = True
    finally:
        os.close(write_end)
    every = [first, *rest]
    assert refused, "the pipe stayed open: a write after the stop was accepted and lost"
    assert [o[:2] for b in every for o in b.oversized] == [(0, 3000)]
    assert b"".join(bytes(b.data) for b in every) == b""


def test_the_rest_of_a_skipped_line_and_the_lines_after_it_are_read_at_a_stop() -> None:
    """What the pipe holds at the stop (the end of the skipped line, then whole lines) is read by the
    last reads too, with the line's end found there."""
    import os

    from pipeline.ingest.pipes import _last_reads, _skip_more

    read_end, write_end = os.pipe()
    os.write(write_end, b"y" * 500 + b"\nnext line\nlast line\n")
    rest = _last_reads(read_end)
    oversized: list[tuple[int, int, bytes]] = []
    skipping, after, offset = _skip_more((100, 3000, b"x"), rest, oversized, 100)
    assert skipping is None and oversized == [(100, 3500, b"x")] and after == b"next line\nlast line\n"
    assert offset == 100 + 3500 + 1  # (where the next line begins)
    try:
        os.write(write_end, b"late\n")
        refused = False
    except BrokenPipeError:
        refused = True
    os.close(write_end)
    assert refused


def test_ctrl_c_flushes_a_pipe_like_sigterm(tmp_path: Path) -> None:
    """Found by review: Ctrl-C on a piped ingest dropped the lines read and not yet committed (a pipe
    cannot be read again) and said "run it again"; it now flushes and stops like SIGTERM."""
    store = tmp_path / "store"
    proc = subprocess.Popen(
        hostlogs("ingest", "-", "--store", str(store), "--flush-seconds", "30", "-q"), stdin=subprocess.PIPE
    )
    assert proc.stdin is not None
    proc.stdin.write(lines(0, 500))
    proc.stdin.flush()
    wait_for_stop_handlers(proc)
    time.sleep(0.3)  # (read, not committed: the flush is 30 s away)
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=30) == 0
    proc.stdin.close()
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/n{i}" for i in range(500))
