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
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.investigate import investigations as investigate
from pipeline.investigate import session as query
from pipeline.investigate.sandbox import Limits, Sandbox
from pipeline.investigate.scope import Scope
from pipeline.lifecycle.rewrite import encode_sorted
from pipeline.privacy import digests, keys
from pipeline.privacy.mask import ClientMasker
from pipeline.store.catalogue import file_sha256

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
    """What the scan passed up (after the filters pushed into the pyarrow dataset) and the time."""
    plan = str(con.execute("EXPLAIN ANALYZE " + sql).rows[0][1])
    total = re.search(r"Total Time: ([0-9.]+s)", plan)
    scan = re.search(r"ARROW_SCAN.*?([0-9,]+) rows", plan, re.S)
    return f"scan passed {scan.group(1) if scan else '?'} rows; {total.group(1) if total else '?'}"


def busy_day_pruning(rows: int = 1_048_576) -> None:
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


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=lambda s: int(s.replace("_", "")), default=100_000_000)
    ap.add_argument("--days", type=int, default=730)
    ap.add_argument("--store", type=Path, default=None, help="Reuse/keep a store here (default: temporary).")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
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
        busy_day_pruning()
    finally:
        if args.store is None:
            shutil.rmtree(root.parent, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1:])
