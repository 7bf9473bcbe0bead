"""A second benchmark log, from another generator than ``loggen``: real lines resampled.

The requests, statuses, sizes, referrers and user agents are drawn from a real Apache combined log
(Elastic's ``apache_logs`` sample, 10,000 lines, in tests/data/third_party: its own mix of bots,
feeds, odd requests and long referrers); the timestamps are spread in order over ``--days`` days and
the clients drawn from a pool of ``--clients`` addresses (Zipf-distributed, 5 % IPv6), so any length
and any number of distinct clients can be measured on a realistic line mix::

    python scripts/loggen_resample.py /tmp/resampled.log --lines 2000000 --clients 115000
    python scripts/bench_ingest.py --log /tmp/resampled.log --format combined --goaccess-format COMBINED
"""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import numpy as np
import polars as pl

SAMPLE = Path(__file__).resolve().parent.parent / "tests/data/third_party/logs/elastic-apache/apache_logs"
_LINE = r"^\S+ \S+ \S+ \[[^\]]+\] (.*)$"  # everything after the time: request, status, size, referrer, agent


def client_pool(n: int, rng: np.random.Generator) -> pl.Series:
    """``n`` distinct-looking public addresses, 5 % IPv6 (documentation prefixes excluded on purpose:
    the generated log must look like traffic, not like the test data)."""
    v4 = rng.integers(1 << 24, 223 << 24, n, dtype=np.int64)
    octets = [((v4 >> s) & 255).astype(str) for s in (24, 16, 8, 0)]
    text = np.char.add(np.char.add(np.char.add(octets[0], "."), np.char.add(octets[1], ".")),
                       np.char.add(np.char.add(octets[2], "."), octets[3]))  # fmt: skip
    six = rng.random(n) < 0.05
    hexes = rng.integers(0, 1 << 16, (n, 4))
    v6 = np.array([f"2a0{h[0] % 10:x}:{h[1]:x}:{h[2]:x}::{h[3]:x}" for h in hexes])
    return pl.Series("client", np.where(six, v6, text))


def generate(out: Path, lines: int, clients: int, days: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    tails = pl.Series(SAMPLE.read_text(encoding="utf-8", errors="replace").splitlines()).str.extract(_LINE, 1)
    tails = tails.drop_nulls()
    pool = client_pool(clients, rng)
    start = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    step_us = days * 86_400_000_000 // lines
    frame = pl.DataFrame(
        {
            "client": pool.gather(np.minimum(rng.zipf(1.15, lines) - 1, clients - 1)),
            "ts": pl.Series(np.arange(lines, dtype=np.int64) * step_us).cast(pl.Duration("us")) + start,
            "tail": tails.gather(rng.integers(0, len(tails), lines)),
        }
    )
    text = frame.select(
        pl.concat_str(
            [pl.col("client"), pl.lit(" - - ["), pl.col("ts").dt.strftime("%d/%b/%Y:%H:%M:%S +0000"),
             pl.lit("] "), pl.col("tail"), pl.lit("\n")]
        )
    ).to_series()  # fmt: skip
    data = "".join(text.to_list()).encode()
    out.write_bytes(data)
    return len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path)
    ap.add_argument("--lines", type=int, default=2_000_000)
    ap.add_argument("--clients", type=int, default=115_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args()
    size = generate(a.out, a.lines, a.clients, a.days, a.seed)
    print(f"{a.out}: {a.lines:,} lines, {size / 1e6:.1f} MB")


if __name__ == "__main__":
    main()
