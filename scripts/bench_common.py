"""Helpers shared by the benchmark scripts: whole processes measured from outside, robust summaries.

Stdlib only, so that importing it keeps a benchmark driver small (Linux folds the parent's RSS
high-water mark into a child's ``ru_maxrss`` at exec time; see ``bench_ingest``).
"""

from __future__ import annotations

import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")
OUTPUT_TAIL = 65_536  # bytes of a child's output kept for error reports


@dataclass(frozen=True)
class Run:
    """One measured child process (or ``cat FILE | child`` pipeline)."""

    wall_s: float
    cpu_s: float  # user + sys from wait4: steadier than wall on a shared machine
    peak_rss_kib: int  # of the measured child, not of the feeding ``cat``
    returncode: int
    output: str  # the tail of stdout/stderr, kept for error reports


@dataclass(frozen=True)
class Spread:
    """Median and range of one figure over the rounds."""

    median: float
    min: float
    max: float

    @classmethod
    def of(cls, values: Sequence[float]) -> Spread:
        return cls(statistics.median(values), min(values), max(values))

    def text(self, digits: int = 2, unit: str = "") -> str:
        """``1.23 [1.10–1.40]`` (with ``unit`` after each number)."""
        return f"{self.median:.{digits}f}{unit} [{self.min:.{digits}f}–{self.max:.{digits}f}{unit}]"


@dataclass(frozen=True)
class Ratio:
    """``numerator / denominator`` per round, measured in the same round, and of the medians."""

    per_round: list[float]
    median: float
    min: float
    max: float
    of_medians: float

    @classmethod
    def of(cls, numerator: Sequence[float], denominator: Sequence[float]) -> Ratio:
        per_round = [n / d for n, d in zip(numerator, denominator, strict=True)]
        spread = Spread.of(per_round)
        of_medians = statistics.median(numerator) / statistics.median(denominator)
        return cls([round(r, 3) for r in per_round], spread.median, spread.min, spread.max, of_medians)

    def text(self) -> str:
        """``7.40x [6.10–10.90] (medians 7.20x)``."""
        return f"{self.median:.2f}x [{self.min:.2f}–{self.max:.2f}] (medians {self.of_medians:.2f}x)"


def note(message: str) -> None:
    """Progress goes to stderr so that ``--json`` stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def default_hostlogs_cmd() -> str:
    """The ``hostlogs`` script installed next to the running interpreter."""
    return shlex.quote(str(Path(sys.executable).parent / "hostlogs"))


def hostlogs_argv(command: str) -> list[str]:
    """``command`` shell-split, failing early when its program is missing."""
    argv = shlex.split(command)
    if not argv or not shutil.which(argv[0]):
        raise SystemExit(f"hostlogs command not found: {command} (pip install -e . or --hostlogs-cmd)")
    return argv


def _reap(proc: subprocess.Popen[bytes]) -> tuple[int, float, int]:
    """Wait for ``proc`` with wait4: (exit code, CPU seconds, peak RSS KiB)."""
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4: tell Popen
    return proc.returncode, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def run_measured(
    cmd: Sequence[str],
    *,
    feed: Path | None = None,
    discard_stdout: bool = False,
    tail: int | None = OUTPUT_TAIL,
) -> Run:
    """Run ``cmd`` to completion as a whole process; wall time around it, CPU and RSS from wait4.

    ``feed``: the child's stdin is ``cat feed`` (two processes; wall around both, CPU of both, RSS of
    the child). ``discard_stdout``: stdout goes to /dev/null (``zcat FILE > /dev/null``). ``tail``:
    bytes of output kept (None: all of it).
    """
    with tempfile.TemporaryFile() as out:
        stdout = subprocess.DEVNULL if discard_stdout else out
        start = time.perf_counter()
        feeder = None
        if feed is not None:
            feeder = subprocess.Popen(["cat", str(feed)], stdin=subprocess.DEVNULL, stdout=subprocess.PIPE)
        stdin = feeder.stdout if feeder is not None else subprocess.DEVNULL
        proc = subprocess.Popen(cmd, stdin=stdin, stdout=stdout, stderr=subprocess.STDOUT)
        if feeder is not None and feeder.stdout is not None:
            feeder.stdout.close()  # the child holds the only read end: cat stops if the child dies
        code, cpu, rss = _reap(proc)
        if feeder is not None:
            feed_code, feed_cpu, _ = _reap(feeder)
            code, cpu = code or feed_code, cpu + feed_cpu
        wall = time.perf_counter() - start
        out.seek(0 if tail is None else max(0, out.tell() - tail))  # a tail keeps this process small
        output = out.read().decode(errors="replace")
    return Run(wall, cpu, rss, code, output)


def checked(run: Run, what: str) -> Run:
    """``run``, or exit with its output's tail when it failed."""
    if run.returncode != 0:
        note(run.output[-4000:])
        raise SystemExit(f"{what} exited with {run.returncode}")
    return run


def warm_page_cache(path: Path) -> None:
    """Read the file once so that every tool starts from a warm page cache."""
    buffer = bytearray(1 << 20)  # reused: large reads would raise this process's RSS
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def count_lines(path: Path) -> int:
    """Newlines in ``path`` (a last line without one counts too); also warms the page cache."""
    buffer = bytearray(1 << 20)
    lines, last = 0, ord("\n")
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            lines += buffer.count(b"\n", 0, n)
            last = buffer[n - 1]
    return lines + (last != ord("\n"))


def alternating(items: Sequence[T], round_index: int) -> list[T]:
    """Round 0 in the given order, round 1 reversed, ...: every item runs early and late alike."""
    return list(items) if round_index % 2 == 0 else list(reversed(items))


def table(rows: list[list[str]], align: str) -> str:
    """Columns padded to their widest cell, empty ones left out; ``align``: ``<`` or ``>`` per column."""
    keep = [i for i in range(len(align)) if any(row[i] for row in rows[1:])]
    widths = {i: max(len(row[i]) for row in rows) for i in keep}
    pad = {"<": str.ljust, ">": str.rjust}
    return "\n".join("  ".join(pad[align[i]](row[i], widths[i]) for i in keep).rstrip() for row in rows)
