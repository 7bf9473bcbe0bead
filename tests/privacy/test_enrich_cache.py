"""The enrichment cache across batches: a batch's answers never depend on what came before it.

Each case compares an ``Enricher`` that has seen other batches (warm cache, a cache that started
over, two workers at once) with a fresh one that sees the batch alone, on the same keys.
"""

from __future__ import annotations

import datetime as dt
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from pipeline import config
from pipeline.privacy import enrich
from pipeline.privacy.enrich import Enricher
from pipeline.privacy.mask import ClientMasker
from tests.conftest import GEOIP

CLIENTS = [
    "81.2.69.160", "2001:218::1", "::ffff:81.2.69.160", "1.128.0.1", "198.51.100.7:51000",
    "[2001:db8::5]:443", "host.example.net", "-", None, "10.0.0.1", "2001:DB8::5",
]  # fmt: skip
NOV = dt.datetime(2026, 11, 2, 12, tzinfo=dt.UTC)


def masker(tmp_path: Path) -> ClientMasker:
    cfg = config.from_dict(
        {
            "store": str(tmp_path / "store"),
            "privacy": {"key_dir": str(tmp_path / "keys")},
            "geoip": {"country_db": str(GEOIP / "GeoIP2-Country-Test.mmdb"), "asn_db": str(GEOIP / "GeoLite2-ASN-Test.mmdb")},
        }
    )  # fmt: skip
    return ClientMasker(annotator=Enricher.from_config(cfg))


def batch(clients: list[str | None], times: list[dt.datetime] | None = None) -> tuple[pl.Series, pl.Series]:
    ts = pl.Series(times or [NOV] * len(clients), dtype=pl.Datetime("us", "UTC"))
    return pl.Series(clients, dtype=pl.String), ts


def rows(columns: dict[str, pl.Series]) -> list[tuple[object, ...]]:
    frame = pl.DataFrame(columns).with_columns(pl.col("country", "as_org").cast(pl.String))
    return frame.select(*enrich.ANSWERS).rows()


def alone(tmp_path: Path, clients: pl.Series, ts: pl.Series) -> list[tuple[object, ...]]:
    """The answers of a fresh enricher (same key directory) that sees only this batch."""
    return rows(masker(tmp_path).annotate(clients, ts))


def batches() -> list[tuple[pl.Series, pl.Series]]:
    """Overlapping batches: each one repeats some clients of the last and brings new ones."""
    out = []
    for i in range(6):
        picked = [CLIENTS[(i * 3 + k) % len(CLIENTS)] for k in range(7)]
        picked += [f"203.0.113.{i * 10 + k}" for k in range(3)] + [f"2001:db8:{i}::{k}" for k in range(2)]
        out.append(batch(picked * 2))
    return out


def test_a_warm_cache_answers_as_a_fresh_enricher(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    m = masker(tmp_path)
    computed: list[str] = []
    compute = m.annotator._compute  # type: ignore[union-attr]
    monkeypatch.setattr(m.annotator, "_compute", lambda c, *a: computed.extend(c) or compute(c, *a))
    seen: set[str] = set()
    for clients, ts in batches():
        assert rows(m.annotate(clients, ts)) == alone(tmp_path, clients, ts)
        seen.update(clients.drop_nulls())
    assert sorted(computed) == sorted(seen)  # each client computed once, in its first batch
    computed.clear()
    clients, ts = batch(CLIENTS)
    got = rows(m.annotate(clients, ts))
    assert computed == []
    assert got == alone(tmp_path, clients, ts)
    by_client = dict(zip(CLIENTS, got, strict=True))
    assert by_client["81.2.69.160"][1] == by_client["::ffff:81.2.69.160"][1]  # one canonical address
    assert by_client["81.2.69.160"][2] == "GB" and by_client["1.128.0.1"][3] == 1221
    assert by_client[None] == (None,) * 5 and by_client["host.example.net"] == (None,) * 5


def test_a_batch_across_two_key_periods(tmp_path: Path) -> None:
    m = masker(tmp_path)
    oct_, nov = dt.datetime(2026, 10, 31, 23, 59, tzinfo=dt.UTC), NOV
    m.annotate(*batch(["198.51.100.7", "198.51.100.8"]))  # November answers cached first
    clients, ts = batch(["198.51.100.7", "198.51.100.7", "198.51.100.9"], [oct_, nov, oct_])
    got = rows(m.annotate(clients, ts))
    assert got == alone(tmp_path, clients, ts)
    assert got[0][1] != got[1][1]  # the same address, another period: another pseudonym


def test_a_cache_that_starts_over_keeps_every_answer(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(enrich, "CACHE_MAX", 5)
    m = masker(tmp_path)
    annotator = m.annotator
    assert isinstance(annotator, Enricher)
    generations = set()
    for clients, ts in batches() * 2:
        generations.add(id(annotator._caches.get("2026-11")))
        assert rows(m.annotate(clients, ts)) == alone(tmp_path, clients, ts)
    assert len(generations) > 2


def test_two_workers_at_once(tmp_path: Path) -> None:
    m = masker(tmp_path)
    work = batches() * 4
    with ThreadPoolExecutor(2) as pool:
        got = list(pool.map(lambda b: rows(m.annotate(*b)), work))
    assert got == [alone(tmp_path, *b) for b in work]


def test_each_period_keeps_only_its_own_clients(tmp_path: Path) -> None:
    """Found by review: ids shared by all periods made each period's answer table as long as every
    client seen in any period (20M rows for 90 days of day keys, 954 MB)."""
    cfg = config.from_dict(
        {"store": str(tmp_path / "s"), "privacy": {"key_dir": str(tmp_path / "k"), "key_period": "day"}}
    )
    enricher = Enricher.from_config(cfg)
    m = ClientMasker(annotator=enricher)
    for day in range(1, 11):
        clients = [f"198.51.{day}.{k}" for k in range(50)]
        m.annotate(*batch(clients, [NOV.replace(day=day)] * len(clients)))
    assert len(enricher._caches) == enrich.PERIODS_CACHED
    assert all(cache.table.height <= 50 for cache in enricher._caches.values())


def test_only_the_latest_periods_are_cached(tmp_path: Path) -> None:
    """Found by review: every period's cache stayed; a backfill of a year of day keys grew without end."""
    cfg = config.from_dict(
        {"store": str(tmp_path / "s"), "privacy": {"key_dir": str(tmp_path / "k"), "key_period": "day"}}
    )
    enricher = Enricher.from_config(cfg)
    m = ClientMasker(annotator=enricher)
    first = None
    for day in range(1, 21):
        clients, ts = batch([f"198.51.{day}.{k}" for k in range(5)], [NOV.replace(day=day)] * 5)
        got = rows(m.annotate(clients, ts))
        first = first or (clients, ts, got)
        assert len(enricher._caches) <= enrich.PERIODS_CACHED
    clients, ts, got = first
    assert rows(m.annotate(clients, ts)) == got  # a period seen again: computed again, the same
