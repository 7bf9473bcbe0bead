"""Benchmark ``hostlogs ingest`` on a large generated vhost_combined log.

Prints figures; it is not a test.  Usage::

    .venv/bin/python scripts/bench_ingest.py                    # 2M lines, 3 runs
    .venv/bin/python scripts/bench_ingest.py --lines 200000 --repeat 1 --json
    .venv/bin/python scripts/bench_ingest.py --extra-args "--threads 2"
    .venv/bin/python scripts/bench_ingest.py --format w3c        # also nginx_json, alb

With ``--format`` other than vhost_combined, the same requests are written in that format
(``loggen_formats``) and both logs are ingested in alternation (format, vhost_combined, format, ...),
so the ratio of their time per line is measured under the same conditions.

The log (2,000 vhosts, ~126k clients, 5% IPv6, 4% scanner traffic) is generated
once by ``loggen`` and cached in the work directory under a name that changes
whenever ``loggen.py`` or the arguments change.  Each run ingests into a fresh
store.  Wall time is measured around the child; peak RSS is the child's own
``ru_maxrss`` from ``os.wait4`` (KiB on Linux).  Caveat: Linux folds the
*parent's* RSS high-water mark into a child's ``ru_maxrss`` at exec time, so
this script keeps its own footprint small (the log is generated in a spawned
subprocess) and reports that floor; child figures above it are exact.  If
``goaccess`` is on PATH it is timed once on the same file as a yardstick.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import resource
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from loggen import write_file
from loggen_formats import CONVERTED, write_converted

DEFAULT_WORKDIR = Path("/tmp/hostlogs-bench")
LOGGEN_SOURCE = Path(__file__).resolve().parent / "loggen.py"
CONVERT_SOURCE = Path(__file__).resolve().parent / "loggen_formats.py"
LOG_PARAMS = {
    "fmt": "vhost_combined",
    "n_domains": 2000,
    "n_clients": 126_000,
    "ipv6_share": 0.05,
    "scanner_share": 0.04,
    "days": 3,
}


@dataclass(frozen=True)
class Run:
    """One measured child process."""

    wall_s: float
    peak_rss_kib: int
    returncode: int
    output: str  # combined stdout/stderr, kept for error reports


@dataclass(frozen=True)
class Summary:
    """Aggregated figures for one tool on one file."""

    tool: str
    lines: int
    megabytes: float
    walls_s: list[float]
    wall_s_median: float
    lines_per_s: float
    mb_per_s: float
    peak_rss_mib_max: float
    store_mb: float | None = None


def default_hostlogs_cmd() -> str:
    """The ``hostlogs`` script installed next to the running interpreter."""
    return shlex.quote(str(Path(sys.executable).parent / "hostlogs"))


def note(message: str) -> None:
    """Progress output goes to stderr so that ``--json`` stdout stays clean."""
    print(message, file=sys.stderr, flush=True)


def cached_log(workdir: Path, lines: int, seed: int, fmt: str = "vhost_combined") -> Path:
    """Return the benchmark log, generating it first if it is not cached."""
    code = LOGGEN_SOURCE.read_bytes() + CONVERT_SOURCE.read_bytes()
    digest = hashlib.sha256(code + repr(LOG_PARAMS).encode()).hexdigest()[:10]
    path = workdir / f"{fmt}-{lines}-seed{seed}-{digest}.log"
    if path.is_file():
        note(f"using cached {path}")
        return path
    workdir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial")
    start = time.perf_counter()
    # In a child process: generating grows this process to ~80 MiB, which would
    # then show up as every benchmarked child's peak RSS (see module docstring).
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        if fmt == "vhost_combined":
            size = pool.apply(write_file, (partial, lines), {"seed": seed, **LOG_PARAMS})
        else:
            size = pool.apply(write_converted, (partial, lines, fmt), {"seed": seed, **LOG_PARAMS})
    os.replace(partial, path)
    note(f"generated {path}: {lines:,} lines, {size / 1e6:.1f} MB in {time.perf_counter() - start:.1f} s")
    return path


def run_measured(cmd: list[str]) -> Run:
    """Run ``cmd`` to completion; measure wall time and the child's peak RSS."""
    with tempfile.TemporaryFile() as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped by wait4, tell Popen
        out.seek(max(0, out.tell() - 65_536))  # only the tail: keep this process small
        output = out.read().decode(errors="replace")
    return Run(wall, usage.ru_maxrss, proc.returncode, output)


def dir_size(path: Path) -> int:
    """Total bytes of all files under ``path`` (0 if it does not exist)."""
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def warm_page_cache(path: Path) -> None:
    """Read the file once so every tool starts from a warm page cache."""
    buffer = bytearray(1 << 20)  # reused: large reads would raise this process's RSS
    with open(path, "rb", buffering=0) as f:
        while f.readinto(buffer):
            pass


def summarize(tool: str, runs: list[Run], lines: int, size: int, store_bytes: int | None) -> Summary:
    """Median wall time, throughput and max peak RSS over ``runs``."""
    walls = [r.wall_s for r in runs]
    median = statistics.median(walls)
    return Summary(
        tool=tool,
        lines=lines,
        megabytes=round(size / 1e6, 1),
        walls_s=[round(w, 3) for w in walls],
        wall_s_median=round(median, 3),
        lines_per_s=round(lines / median),
        mb_per_s=round(size / 1e6 / median, 1),
        peak_rss_mib_max=round(max(r.peak_rss_kib for r in runs) / 1024, 1),
        store_mb=None if store_bytes is None else round(store_bytes / 1e6, 1),
    )


def bench_hostlogs(args: argparse.Namespace, log: Path, lines: int, fmt: str = "vhost_combined") -> Summary:
    """Ingest ``log`` ``args.repeat`` times, each into a fresh store."""
    runs = [measure_once(args, log, fmt, i) for i in range(args.repeat)]
    return summarize(f"hostlogs {fmt}", [r for r, _ in runs], lines, log.stat().st_size, runs[-1][1])


def measure_once(args: argparse.Namespace, log: Path, fmt: str, i: int) -> tuple[Run, int]:
    """One ingest of ``log`` into a fresh store: the run and the store's size."""
    base = shlex.split(args.hostlogs_cmd)
    if not shutil.which(base[0]):
        raise SystemExit(f"hostlogs command not found: {base[0]} (pip install -e . or --hostlogs-cmd)")
    scratch = Path(tempfile.mkdtemp(prefix="store-", dir=args.workdir))
    store = scratch / "store"
    cmd = [
        *base,
        "ingest",
        str(log),
        "--format",
        fmt,
        "--store",
        str(store),
        "--quiet",
        *shlex.split(args.extra_args),
    ]
    if i == 0:
        note("running: " + shlex.join(cmd))
    run = run_measured(cmd)
    store_bytes = dir_size(store)
    if not args.keep_stores:
        shutil.rmtree(scratch)
    if run.returncode != 0:
        note(run.output[-4000:])
        raise SystemExit(f"hostlogs exited with {run.returncode}")
    note(f"  {fmt} run {i + 1}/{args.repeat}: {run.wall_s:.2f} s, peak RSS {run.peak_rss_kib / 1024:.0f} MiB")
    return run, store_bytes


def bench_formats(args: argparse.Namespace, lines: int) -> None:
    """``args.format`` against vhost_combined on the same requests, runs alternating."""
    logs = {f: cached_log(args.workdir, lines, args.seed, f) for f in (args.format, "vhost_combined")}
    runs: dict[str, list[tuple[Run, int]]] = {f: [] for f in logs}
    for i in range(args.repeat):
        for fmt, log in logs.items():
            warm_page_cache(log)
            runs[fmt].append(measure_once(args, log, fmt, i))
    summaries = {
        f: summarize(f"hostlogs {f}", [r for r, _ in rs], lines, logs[f].stat().st_size, rs[-1][1])
        for f, rs in runs.items()
    }
    ours, ref = summaries[args.format], summaries["vhost_combined"]
    ratio = ours.wall_s_median / ref.wall_s_median
    if args.json:
        print(
            json.dumps({"format": asdict(ours), "vhost_combined": asdict(ref), "time_ratio": round(ratio, 2)})
        )
        return
    for summary in (ours, ref):
        print(f"{summary.tool}:")
        print_table(summary, None)
    print(f"{args.format}: {ratio:.2f}x the wall time of vhost_combined on the same {lines:,} requests")


def goaccess_version(exe: str) -> str:
    """``1.7`` from ``GoAccess - 1.7.``."""
    first = subprocess.run([exe, "--version"], capture_output=True, text=True).stdout.splitlines()
    return first[0].split("-")[-1].strip().rstrip(".") if first else "unknown"


def bench_goaccess(log: Path, lines: int, workdir: Path) -> tuple[str, Summary] | None:
    """Time one goaccess run on ``log``; None when goaccess is not installed."""
    exe = shutil.which("goaccess")
    if exe is None:
        return None
    base = [exe, str(log), "--log-format=VCOMBINED", "--no-progress"]
    note("running: " + shlex.join([*base, "-o", "/dev/null"]))
    run = run_measured([*base, "-o", "/dev/null"])
    if run.returncode != 0:  # some builds refuse an output name without .html/.json/.csv
        run = run_measured([*base, "-o", str(workdir / "goaccess-report.html")])
    if run.returncode != 0:
        note(run.output[-2000:])
        raise SystemExit(f"goaccess exited with {run.returncode}")
    return goaccess_version(exe), summarize("goaccess", [run], lines, log.stat().st_size, None)


def print_table(ours: Summary, goaccess: tuple[str, Summary] | None) -> None:
    """Human-readable results."""
    header = ("lines", "MB", "wall s (median)", "lines/s", "MB/s", "peak RSS MiB (max)")
    row = (
        f"{ours.lines:,}",
        f"{ours.megabytes:.1f}",
        f"{ours.wall_s_median:.2f}",
        f"{ours.lines_per_s:,.0f}",
        f"{ours.mb_per_s:.1f}",
        f"{ours.peak_rss_mib_max:.0f}",
    )
    widths = [max(len(h), len(c)) for h, c in zip(header, row, strict=True)]
    print("  ".join(h.rjust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)))
    print(f"runs (s): {', '.join(f'{w:.2f}' for w in ours.walls_s)}; store {ours.store_mb} MB")
    if goaccess is None:
        return
    version, ga = goaccess
    print(
        f"goaccess {version}: {ga.wall_s_median:.2f} s, {ga.lines_per_s:,.0f} lines/s, "
        f"peak RSS {ga.peak_rss_mib_max:.0f} MiB; hostlogs speed-up "
        f"{ga.wall_s_median / ours.wall_s_median:.2f}x"
    )


def result_json(log: Path, ours: Summary, goaccess: tuple[str, Summary] | None) -> str:
    """Machine-readable results."""
    result: dict[str, object] = {"file": str(log), "hostlogs": asdict(ours), "goaccess": None}
    if goaccess is not None:
        version, ga = goaccess
        result["goaccess"] = {
            "version": version,
            **asdict(ga),
            "speedup": round(ga.wall_s_median / ours.wall_s_median, 2),
        }
    return json.dumps(result, indent=2)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lines", type=int, default=2_000_000, help="log lines to generate (2,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="loggen seed (1)")
    parser.add_argument("--repeat", type=int, default=3, help="ingest runs, fresh store each (3)")
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="cache and scratch directory")
    parser.add_argument(
        "--hostlogs-cmd",
        default=default_hostlogs_cmd(),
        help="command that runs hostlogs (shell-split; default: next to sys.executable)",
    )
    parser.add_argument("--extra-args", default="", help="extra arguments appended to the ingest command")
    parser.add_argument("--keep-stores", action="store_true", help="do not delete the stores afterwards")
    parser.add_argument("--no-goaccess", action="store_true", help="skip the goaccess comparison")
    parser.add_argument("--json", action="store_true", help="print results as JSON")
    parser.add_argument(
        "--format",
        default="vhost_combined",
        choices=("vhost_combined", *CONVERTED),
        help="log format to benchmark; other than vhost_combined: compared with it in the same run",
    )
    args = parser.parse_args(argv)
    if args.repeat < 1 or args.lines < 1:
        parser.error("--repeat and --lines must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    """Generate (or reuse) the log, run the benchmarks, print the results."""
    args = parse_args(argv)
    if args.format != "vhost_combined":
        bench_formats(args, args.lines)
        return 0
    log = cached_log(args.workdir, args.lines, args.seed)
    warm_page_cache(log)
    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    note(f"peak RSS floor (this process's own high-water mark): {floor:.0f} MiB")
    ours = bench_hostlogs(args, log, args.lines)
    goaccess = None if args.no_goaccess else bench_goaccess(log, args.lines, args.workdir)
    missing = goaccess is None and not args.no_goaccess
    if args.json:
        print(result_json(log, ours, goaccess))
    else:
        print_table(ours, goaccess)
    if missing:
        stream = sys.stderr if args.json else sys.stdout
        print("goaccess: not installed (apt-get install goaccess)", file=stream)
    return 0


if __name__ == "__main__":
    sys.exit(main())
