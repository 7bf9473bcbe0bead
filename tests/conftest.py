"""Shared fixtures: the third-party logs in tests/data/third_party and small store helpers."""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.ingest import run as ingest

ROOT = Path(__file__).resolve().parent.parent
THIRD_PARTY = ROOT / "tests" / "data" / "third_party"  # copied with licences; see its README
THIRD_PARTY_LOGS = THIRD_PARTY / "logs"
LICENSE_NAMES = {"LICENSE", "LICENSE.txt", "UPSTREAM-README.md", "NASA-HTTP.html"}
# Property and crash tests run a moderate number of cases in the suite, which stays under ~2 minutes;
# scripts/soak.sh runs the same tests with HOSTLOGS_SOAK=N times as many.
SOAK = max(1, int(os.environ.get("HOSTLOGS_SOAK", "1")))


def cases(n: int) -> int:
    """``n`` cases, times the soak factor."""
    return n * SOAK


def third_party_log_files() -> list[Path]:
    files = [p for p in sorted(THIRD_PARTY_LOGS.rglob("*")) if p.is_file() and p.name not in LICENSE_NAMES]
    assert files, f"no third-party logs found under {THIRD_PARTY_LOGS}"
    return files


GEOIP = THIRD_PARTY / "geoip" / "maxmind-test"
# A recent UTC day for log lines that a test expects kept and healthy (found by running the suite at
# later dates: lines of a fixed day passed the two-year retention and became "past retention"
# warnings and "needs attention" statuses). In a log's %t form and as an ISO date.
RECENT = dt.datetime.now(dt.UTC) - dt.timedelta(days=20)
RECENT_CLF, RECENT_ISO = RECENT.strftime("%d/%b/%Y"), RECENT.strftime("%Y-%m-%d")


def make_config(store: Path, *, geoip: bool = False, **ingest_overrides: object) -> config.Config:
    geo = config.GeoipConfig(
        country_db=str(GEOIP / "GeoIP2-Country-Test.mmdb"), asn_db=str(GEOIP / "GeoLite2-ASN-Test.mmdb")
    )
    return config.Config(store=str(store), server="test-web-1").with_overrides(
        ingest=config.replace(config.IngestConfig(), **ingest_overrides) if ingest_overrides else None,
        geoip=geo if geoip else None,
    )


def ingest_paths(
    store: Path,
    paths: list[Path] | list[str],
    fmt: str = "auto",
    domain: str | None = "example.test",
    final: bool | None = True,
    **ingest_overrides: object,
) -> ingest.IngestReport:
    cfg = make_config(store, **ingest_overrides)
    specs = [config.SourceConfig(path=str(p), format=fmt, domain=domain) for p in paths]
    return ingest.run(cfg, specs, final=final)


def store_rows(store: Path) -> list[dict[str, object]]:
    files = sorted((store / "pageviews").glob("date=*/*.parquet"))
    rows: list[dict[str, object]] = []
    for f in files:
        rows.extend(pq.read_table(f).to_pylist())
    return rows


def store_rejects(store: Path) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for f in sorted((store / "_rejects").glob("date=*/*.parquet")):
        rows.extend(pq.read_table(f).to_pylist())
    return rows


# Every dotted quad, also one glued to other digits ("9203.0.113.31" after an escape such as %C3%A9,
# "203.0.113.3100"): overlapping matches, each tried as an address.
_V4 = re.compile(r"(?=((?:[0-9]{1,3}\.){3}[0-9]{1,3}))")
_V6 = re.compile(
    r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?![0-9A-Fa-f:])"
)


def ip_tokens(text: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every valid IPv4/IPv6 address written anywhere in ``text`` (zone ids and brackets aside)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    for m in _V6.finditer(text):
        with contextlib.suppress(ValueError):
            found.add(ipaddress.ip_address(m.group(0)))
    for m in _V4.finditer(text):
        head, _, last = m.group(1).rpartition(".")
        for n in range(len(last), 0, -1):  # "203.0.113.3100" holds 203.0.113.31 (and .3)
            with contextlib.suppress(ValueError):
                found.add(ipaddress.ip_address(f"{head}.{last[:n]}"))
    return found


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    return tmp_path / "store"


def as_another_user(*argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python argv…`` from the repository as a user without root's permission override: root
    drops it (setpriv), anyone else already lacks it. For tests of folders and files a command may
    not read (``chmod 0`` stops no root)."""
    drop = ["setpriv", "--bounding-set=-all", "--inh-caps=-all"] if os.geteuid() == 0 else []
    return subprocess.run(
        [*drop, sys.executable, *argv], capture_output=True, text=True, cwd=ROOT, timeout=timeout
    )
