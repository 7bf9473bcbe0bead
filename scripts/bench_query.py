"""Query benchmark: a synthetic two-year store, then the investigations responders run most.

    python scripts/bench_query.py [--rows 100_000_000] [--days 730] [--store DIR] [--keep]

The store is written directly with polars (ingest would take hours for 100M lines) in the store's
layout and schema, one file a day in the format compaction leaves (``rewrite.encode_sorted``: zstd,
balanced row groups of about 131,072 rows in domain order, rows by (path, domain, ts) inside each,
bloom filters), with keyed per-month client_id values. One suspect address gets real pseudonyms from
a KeyStore, so `investigate ip` runs exactly as in production. Then it times, each in a fresh
sandboxed connection: one domain over one week; one network over two years; a path pattern over two
years; `investigate ip` over two years, and prints DuckDB's EXPLAIN ANALYZE counters showing that
date and domain predicates prune files and row groups.

With ``--whole-process`` it then times whole processes started from here, as a shell runs them
(interpreter start-up, imports and exit included), interleaved over ``--rounds`` rounds in an
order that alternates between rounds, after one unmeasured warm-up round that also checks that
both sides return the same number of rows: ``hostlogs query --format csv`` against a plain DuckDB
script on the same Parquet files (``read_parquet(..., hive_partitioning=true)``, printing its rows)
for three queries, and ``hostlogs investigate ip``. It reports median [min–max] wall times, median
CPU times and the ratio hostlogs / DuckDB per round. Both run at their default threads. For a
quick check: ``--rows 2M --rounds 2 --whole-process``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench_common import (
    Ratio,
    Run,
    Spread,
    alternating,
    checked,
    default_hostlogs_cmd,
    hostlogs_argv,
    run_measured,
    table,
)

from pipeline.investigate import investigations as investigate
from pipeline.investigate import session as query
from pipeline.investigate.limits import Limits
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.scope import Scope
from pipeline.lifecycle.rewrite import encode_sorted
from pipeline.privacy import digests, keys
from pipeline.privacy.mask import ClientMasker
from pipeline.store.catalogue import file_sha256
from pipeline.store.schema import PAGEVIEWS

DOMAINS = 2000
ADDRESSES = 400_000
START = dt.date(2024, 12, 1)
SUSPECT = "198.51.100.23"  # appears on ~1 day in 20, in every month
SUSPECT_INT = int.from_bytes(bytes(map(int, SUSPECT.split("."))), "big")
PATHS = [
    "/", "/index.php", "/wp-login.php", "/xmlrpc.php", "/wp-admin/admin-ajax.php", "/feed/", "/robots.txt",
    "/favicon.ico", "/.env", "/backup/db.sql", "/search", "/cart", "/checkout", "/api/v1/items", "/login",
] + [f"/blog/2026/{m:02d}/post-{i}/" for m in range(1, 13) for i in range(150)] + [
    f"/static/{k}/app-{i}.{e}" for k in ("css", "js", "img") for i in range(300) for e in ("css", "js", "png")
]  # fmt: skip
AGENTS = [
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 Mobile/15E148",
    "Googlebot/2.1 (+http://www.google.com/bot.html)", "curl/8.5.0", "python-requests/2.31",
    "Mozilla/5.00 (Nikto/2.1.6) (Evasions:None)", "sqlmap/1.8#stable", "WordPress/6.5",
]  # fmt: skip


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: stand-in pseudonyms for the crowd (the suspect gets real HMAC ones)."""
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return (x ^ (x >> np.uint64(31))).view(np.int64)


def build_day(args: tuple[str, int, int, dict[str, int]]) -> int:
    root, day_index, n, suspect_ids = args
    day = START + dt.timedelta(days=day_index)
    rng = np.random.default_rng(day_index)
    domain_idx = np.minimum(rng.zipf(1.3, n) - 1, DOMAINS - 1)
    ts = np.sort(rng.integers(0, 86_400_000_000, n)) + int(
        dt.datetime(day.year, day.month, day.day, tzinfo=dt.UTC).timestamp() * 1_000_000
    )
    addr = (rng.zipf(1.2, n) * 7919 + day_index) % ADDRESSES
    ip_int = (np.uint64(0xC0000000) + addr.astype(np.uint64) * np.uint64(37)) & np.uint64(0xFFFFFFFF)
    if day_index % 20 == 3:  # the suspect's visits
        k = 40
        ip_int[:k] = SUSPECT_INT
    month = f"{day.year:04d}-{day.month:02d}"
    ids = _mix(ip_int ^ np.uint64(hash(month) & 0xFFFFFFFF))
    ids[ip_int == SUSPECT_INT] = suspect_ids[month]
    nets = ip_int & np.uint64(0xFFFFFF00)
    net_text = (
        pl.Series((nets >> np.uint64(24)).astype(np.int64)).cast(pl.String) + "."
        + pl.Series(((nets >> np.uint64(16)) & np.uint64(255)).astype(np.int64)).cast(pl.String) + "."
        + pl.Series(((nets >> np.uint64(8)) & np.uint64(255)).astype(np.int64)).cast(pl.String) + ".0/24"
    )  # fmt: skip
    path_idx = np.minimum(rng.zipf(1.15, n) - 1, len(PATHS) - 1)
    status = rng.choice(np.array([200, 200, 200, 200, 304, 301, 404, 403, 500], dtype=np.int16), n)
    frame = pl.DataFrame(
        {
            "ts": pl.Series(ts, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")),
            "domain": pl.Series([f"d{i}.example" for i in range(DOMAINS)]).gather(domain_idx),
            "method": pl.Series(["GET", "GET", "GET", "POST", "HEAD"]).gather(rng.integers(0, 5, n)),
            "path": pl.Series(PATHS).gather(path_idx),
            "query": pl.Series(
                [None, None, None, "page=2", "q=shoes", "utm_source=x"], dtype=pl.String
            ).gather(rng.integers(0, 6, n)),
            "protocol": pl.Series(["HTTP/1.1", "HTTP/2.0"]).gather(rng.integers(0, 2, n)),
            "status": status,
            "bytes": rng.integers(0, 200_000, n),
            "referrer": pl.Series([None, "https://www.google.com/"], dtype=pl.String).gather(
                rng.integers(0, 2, n)
            ),
            "user_agent": pl.Series(AGENTS).gather(np.minimum(rng.zipf(1.6, n) - 1, len(AGENTS) - 1)),
            "client_net": net_text,
            "client_id": ids,
            "country": pl.Series(["DE", "FR", "NL", "US", "GB", "PL"]).gather((addr % 6).astype(np.int64)),
            "asn": (64496 + addr % 500).astype(np.int64),
            "as_org": pl.Series([f"AS-ORG-{i}" for i in range(500)]).gather((addr % 500).astype(np.int64)),
            "geo_db": pl.Series(["GeoLite2-Country 2026-11-18; GeoLite2-ASN 2026-11-18"] * n),
            "server": pl.Series(["web-1"] * n),
        }
    )
    # Columns of the proxy and CDN formats are null for Apache text logs, as ingest writes them.
    missing = [f for f in PAGEVIEWS if f.name not in frame.columns]
    frame = frame.with_columns(pl.Series(f.name, pa.nulls(n, f.type)) for f in missing)
    out = Path(root) / "pageviews" / f"date={day}" / "part-bench.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    # The format `hostlogs compact` leaves behind (bloom filter on client_id): a two-year store is
    # almost entirely compacted days; only today's files come straight from ingest.
    out.write_bytes(encode_sorted(frame))
    return n


def build(root: Path, rows: int, days: int, keystore: keys.KeyStore) -> float:
    months = sorted({f"{d:%Y-%m}" for d in (START + dt.timedelta(days=i) for i in range(days))})
    key_of = {m: keystore.key(m, create=True) for m in months}
    suspect_ids = {m: digests.pseudonym(k, SUSPECT) for m, k in key_of.items() if k}
    per_day = rows // days
    t0 = time.monotonic()
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = sum(
            pool.map(build_day, [(str(root), i, per_day, suspect_ids) for i in range(days)], chunksize=4)
        )
    secs = time.monotonic() - t0
    write_manifest(root)
    size = sum(p.stat().st_size for p in (root / "pageviews").rglob("*.parquet"))
    print(f"built {done:,} rows over {days} days ({START} – {START + dt.timedelta(days=days - 1)}), "
          f"{DOMAINS} domains, {size / 1e9:.2f} GB of Parquet in {secs:.0f} s")  # fmt: skip
    return float(done)


def write_manifest(root: Path) -> None:
    """The manifest committing every file (queries show only what a manifest commits)."""
    files = [
        {"path": p.relative_to(root).as_posix(), "bytes": p.stat().st_size, "sha256": file_sha256(p),
         "rows": pq.ParquetFile(p).metadata.num_rows}
        for p in sorted((root / "pageviews").rglob("*.parquet"))
    ]  # fmt: skip
    folder = root / "_manifests" / "files"
    folder.mkdir(parents=True, exist_ok=True)
    manifest = {"seq": 1, "batch": "bench", "created": dt.datetime.now(dt.UTC).isoformat(), "files": files,
                "rows": sum(f["rows"] for f in files), "operation": "bench"}  # fmt: skip
    (folder / "000000000001.json").write_text(json.dumps(manifest, indent=1))


def timed(label: str, fn: object, total_rows: float, full_scan: bool) -> None:
    best = float("inf")
    for _ in range(3):
        t0 = time.monotonic()
        inv = fn()  # type: ignore[operator]
        best = min(best, time.monotonic() - t0)
    speed = f"{total_rows / best / 1e6:8.1f} M rows/s" if full_scan else " " * 17
    print(f"  {label:<42} {best:7.3f} s  {speed}  {len(inv.rows.rows):>6} rows  {inv.facts[:2]}")


def explain(con: Sandbox, sql: str) -> str:
    """What the scan passed up (after the filters pushed into it), the files and row groups DuckDB's
    reader opened (pyarrow's scan does not say), and the time."""
    plan = str(con.execute("EXPLAIN ANALYZE " + sql).rows[0][1])
    total = re.search(r"Total Time: ([0-9.]+s)", plan)
    scan = re.search(r"(?:ARROW_SCAN|READ_PARQUET).*?([0-9,.]+[kM]?) rows", plan, re.S)
    files = re.search(r"Scanning Files: ([0-9/]+)", plan)
    groups = re.search(r"Row Groups Scanned: ([0-9/ ]+)", plan)
    opened = ""
    if files and groups:
        opened = f" (files {files.group(1)}, row groups {groups.group(1).replace(' ', '')})"
    return f"scan passed {scan.group(1) if scan else '?'} rows{opened}; {total.group(1) if total else '?'}"


def busy_day_pruning(rows: int) -> None:
    """Row-group pruning by domain inside one busy day (the two-year store has one row group a day)."""
    tmp = Path(tempfile.mkdtemp(prefix="hostlogs-busy-day-"))
    try:
        build_day((str(tmp / "store"), 0, rows, {f"{START:%Y-%m}": 0}))
        write_manifest(tmp / "store")
        con = query.connect(tmp / "store", case="BENCH")
        print(f"pruning inside one busy day ({rows:,} rows in one compacted file):")
        sql = "SELECT count(*) FROM pageviews WHERE domain = 'd1500.example'"
        print(f"  {'domain = one domain':<38} {explain(con, sql)}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# ---- whole processes ---------------------------------------------------------------------------

DUCKDB_SCRIPT = """import duckdb
rows = duckdb.sql({sql!r}).fetchall()
print("\\n".join(",".join(map(str, row)) for row in rows))"""


def whole_process_queries(first: dt.date, last: dt.date) -> list[tuple[str, str]]:
    """(label, SQL over the pageviews view): the investigations above, as one statement each."""
    return [
        ("count, one domain, one week",
         "SELECT count(*) FROM pageviews WHERE domain = 'd17.example' "
         f"AND date BETWEEN DATE '{first}' AND DATE '{last}'"),
        ("one network, two years",
         "SELECT date, count(*) AS n FROM pageviews WHERE client_net = '198.51.100.0/24' "
         "GROUP BY date ORDER BY date"),
        ("path pattern, two years",
         "SELECT domain, count(*) AS n FROM pageviews WHERE path LIKE '%/wp-login.php' "
         "GROUP BY domain ORDER BY n DESC, domain LIMIT 20"),
    ]  # fmt: skip


def whole_process_jobs(root: Path, hostlogs: list[str], week: Scope) -> list[tuple[str, str, list[str]]]:
    """(label, side, argv) of every command timed: hostlogs and plain DuckDB per query, then investigate."""
    files = f"read_parquet('{root}/pageviews/**/*.parquet', hive_partitioning=true)"
    store = ["--store", str(root), "--case", "BENCH"]
    assert week.start is not None and week.end is not None
    jobs = []
    for label, sql in whole_process_queries(week.start, week.end):
        jobs.append((label, "hostlogs", [*hostlogs, "query", *store, "--format", "csv", sql]))
        script = DUCKDB_SCRIPT.format(sql=sql.replace("FROM pageviews", f"FROM {files}"))
        jobs.append((label, "duckdb", [sys.executable, "-c", script]))
    investigate_ip = [*hostlogs, "investigate", "ip", SUSPECT, *store, "--format", "csv"]
    jobs.append(("investigate ip, two years", "hostlogs", investigate_ip))
    return jobs


def result_rows(run: Run, side: str) -> int:
    """Rows a command printed: lines of output, less the CSV header hostlogs writes."""
    lines = [line for line in run.output.splitlines() if line.strip()]
    return len(lines) - (side == "hostlogs")


def time_whole_processes(root: Path, args: argparse.Namespace, week: Scope) -> None:
    """Every command once unmeasured (page cache, row check), then ``args.rounds`` interleaved rounds."""
    jobs = whole_process_jobs(root, hostlogs_argv(args.hostlogs_cmd), week)
    rows = {(label, side): result_rows(checked(run_measured(argv, tail=None), f"{side}: {label}"), side)
            for label, side, argv in jobs}  # fmt: skip
    runs: dict[tuple[str, str], list[Run]] = {(label, side): [] for label, side, _ in jobs}
    for r in range(args.rounds):
        for label, side, argv in alternating(jobs, r):
            runs[label, side].append(checked(run_measured(argv), f"{side}: {label}"))
    print(f"whole processes from the shell ({args.rounds} rounds, interleaved, order alternating):")
    lines = [["  query", "side", "wall s median [min–max]", "CPU s", "rows", "hostlogs / DuckDB (per round)"]]
    for label, side, _ in jobs:
        walls = [x.wall_s for x in runs[label, side]]
        cpu = Spread.of([x.cpu_s for x in runs[label, side]]).median
        ratio = ""
        if side == "hostlogs" and (label, "duckdb") in runs:
            ratio = Ratio.of(walls, [x.wall_s for x in runs[label, "duckdb"]]).text()
        first = side == "hostlogs"
        cells = [f"  {label}" if first else "", side, Spread.of(walls).text(), f"{cpu:.2f}"]
        lines.append([*cells, f"{rows[label, side]}", ratio])
    print(table(lines, "<<<>><"))


def count(text: str) -> int:
    """``100_000_000``, ``2M`` or ``500k``."""
    text = text.replace("_", "").strip()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1:].lower(), 1)
    return int(float(text[:-1] if scale > 1 else text) * scale)


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=count, default=100_000_000, help="rows to build: 100_000_000, 2M, 500k")
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--store", type=Path, default=None, help="Reuse/keep a store here (default: temporary).")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--whole-process", action="store_true", help="also time whole processes from the shell")
    ap.add_argument("--rounds", type=int, default=5, help="interleaved whole-process rounds (5)")
    ap.add_argument("--hostlogs-cmd", default=default_hostlogs_cmd(), help="command that runs hostlogs")
    args = ap.parse_args(argv)
    if args.rows < args.days or args.rounds < 1:
        ap.error("--rows must be at least --days (one file a day), --rounds at least 1")
    root = args.store or Path(tempfile.mkdtemp(prefix="hostlogs-bench-")) / "store"
    keystore = keys.KeyStore(Path(str(root) + "-keys"), "month")
    try:
        if (root / "pageviews").is_dir():
            if not (root / "_manifests").is_dir():
                write_manifest(root)
            total = float(query.run(root, "SELECT count(*) FROM pageviews", case="BENCH").rows[0][0])
            print(f"reusing {root}: {total:,.0f} rows")
        else:
            total = build(root, args.rows, args.days, keystore)
        last = START + dt.timedelta(days=args.days - 1)
        week = Scope(start=last - dt.timedelta(days=6), end=last, domain="d17.example", limit=1000)

        def connect() -> Sandbox:
            return query.connect(root, case="BENCH", limits=Limits(threads=args.threads))

        print(f"timings (best of 3, wall clock incl. opening the sandbox; {args.threads} threads):")
        masker = ClientMasker()
        cases = [
            ("one domain, one week (domain timeline)",
             lambda: investigate.domain(connect(), week, "d17.example"), 0),
            ("one domain, one week (rows, path glob)", lambda: investigate.path(connect(), week, "/wp-*"), 0),
            ("one network, two years (198.51.100.0/24)",
             lambda: investigate.net(connect(), Scope(), "198.51.100.0/24", masker), 1),
            ("path pattern, two years (*/wp-login.php)",
             lambda: investigate.path(connect(), Scope(), "*/wp-login.php"), 1),
            ("investigate ip, two years",
             lambda: investigate.ip(connect(), Scope(), SUSPECT, keystore, masker), 1),
        ]  # fmt: skip
        for label, fn, full in cases:
            timed(label, fn, total, bool(full))
        con = connect()
        print("pruning (DuckDB EXPLAIN ANALYZE counters):")
        day = last - dt.timedelta(days=3)
        for label, sql in [
            ("no predicate", "SELECT count(*) FROM pageviews"),
            ("date = one day", f"SELECT count(*) FROM pageviews WHERE date = DATE '{day}'"),
            ("ts in one day (no date)",
             f"SELECT count(*) FROM pageviews WHERE ts BETWEEN TIMESTAMPTZ '{day} 00:00:00+00' "
             f"AND TIMESTAMPTZ '{day} 23:59:59+00'"),
            ("domain, two years", "SELECT count(*) FROM pageviews WHERE domain = 'd1500.example'"),
            ("one week + domain (the scope above)", f"SELECT count(*) FROM pageviews WHERE {week.where()}"),
        ]:  # fmt: skip
            print(f"  {label:<38} {explain(con, sql)}")
        busy_day_pruning(min(args.rows, 1_048_576))
        if args.whole_process:
            time_whole_processes(root, args, week)
    finally:
        if args.store is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
