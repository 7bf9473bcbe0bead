"""``status`` (library): the store's usage, retention, holds, keys, rejects, and the sources' lag."""

from __future__ import annotations

import datetime as dt
import gzip
from pathlib import Path

import pytest

from pipeline import config
from pipeline.errors import StoreError
from pipeline.ingest import lag
from pipeline.ingest import run as ingest
from pipeline.lifecycle import status
from pipeline.lifecycle.holds import add_hold

LINE = '203.0.113.5 - - [{day}/Oct/{year}:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8.0"\n'
NOW = dt.datetime(2026, 12, 1, 12, tzinfo=dt.UTC)


def lines(year: int, days: range, n: int = 2) -> str:
    return "".join(LINE.format(day=f"{d:02d}", year=year) for d in days for _ in range(n))


def cfg_for(
    tmp_path: Path, *patterns: str, max_reject_rate: float = 0.05, retention: str = "2y"
) -> config.Config:
    return config.Config(store=str(tmp_path / "store"), server="web-1").with_overrides(
        sources=tuple(config.SourceConfig(path=p, domain="example.test") for p in patterns),
        ingest=config.replace(config.IngestConfig(), max_reject_rate=max_reject_rate),
        retention=config.replace(config.RetentionConfig(), retention=retention),
    )


# For the tests of a healthy store whose lines are of fixed days (October 2026), checked as of
# today: nothing of it past the retention in any year the suite runs (found by running the suite at
# later dates: from October 2028, "partitions older than the retention" was one more problem).
KEPT = "50y"


def ingested(tmp_path: Path, text: str, **kw: float | str) -> tuple[config.Config, Path]:
    log = tmp_path / "logs" / "access.log"
    log.parent.mkdir(exist_ok=True)
    log.write_text(text)
    cfg = cfg_for(tmp_path, str(tmp_path / "logs" / "access.log*"), **kw)
    ingest.run(cfg, final=True)
    return cfg, log


def test_usage_days_rejects_keys_and_nothing_to_do(tmp_path: Path) -> None:
    cfg, _ = ingested(
        tmp_path, lines(2026, range(10, 13)) + "nonsense\n", max_reject_rate=0.5, retention=KEPT
    )
    report = status.status(cfg, lag.source_lags(cfg), now=dt.datetime.now(dt.UTC))
    u = report.usage
    assert (u.pageview_rows, u.pageview_files, [str(d) for d in u.days]) == (
        6, 3, ["2026-10-10", "2026-10-11", "2026-10-12"],
    )  # fmt: skip
    assert u.bytes > 0 and u.files > u.pageview_files  # manifests, progress, rejects too
    assert report.rejects_24h == {"unparseable": 1}
    assert [k.period for k in report.keys] == ["2026-10"] and report.keys[0].destroyed is None
    assert report.last == {"purge": None, "erase": None, "compact": None, "publish": None}
    assert report.ok and report.problems == ()
    data = report.to_dict()
    assert data["pageviews"]["oldest_day"] == "2026-10-10" and data["pageviews"]["newest_day"] == "2026-10-12"
    assert "203.0.113" not in str(data)  # privacy: counts and paths only


def test_rejects_older_than_24_hours_are_not_counted(tmp_path: Path) -> None:
    cfg, _ = ingested(tmp_path, lines(2026, range(10, 11)) + "nonsense\n", max_reject_rate=0.5)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(hours=25)
    assert status.status(cfg, now=later).rejects_24h == {}


def test_data_past_the_horizon_needs_attention_unless_held(tmp_path: Path) -> None:
    cfg, _ = ingested(tmp_path, lines(2020, range(1, 3)) + lines(2026, range(10, 11)))
    report = status.status(cfg, now=NOW)
    assert report.retention.horizon == dt.date(2024, 12, 1)
    assert [str(d) for d in report.retention.expired] == ["2020-10-01", "2020-10-02"]
    assert report.problems == (
        "2 partition(s) older than the retention horizon (2024-12-01) under no hold, oldest 2020-10-01: "
        "run 'hostlogs purge'",
    )
    add_hold(cfg.store, "INC-1", "breach", date_from=dt.date(2020, 10, 2), date_to=dt.date(2020, 10, 2))
    report = status.status(cfg, now=NOW)
    assert [str(d) for d in report.retention.held] == ["2020-10-02"]
    assert [str(d) for d in report.retention.expired] == ["2020-10-01"]
    assert report.holds == ("INC-1 (all domains, 2020-10-02 to 2020-10-02)",)


def test_lag_is_the_bytes_after_the_committed_offset_of_the_files_stream(tmp_path: Path) -> None:
    cfg, log = ingested(tmp_path, lines(2026, range(10, 11)))
    [src] = lag.source_lags(cfg)
    assert (src.lag, src.files[0].offset, src.problem) == (0, log.stat().st_size, None)
    assert src.last_run is not None and (src.last_run.lines, src.last_run.rows) == (2, 2)
    extra = lines(2026, range(11, 12), n=3)
    with log.open("a") as f:
        f.write(extra)
    [src] = lag.source_lags(cfg)
    assert src.lag == len(extra.encode()) and src.files[0].lag == len(extra.encode())
    [src] = lag.source_lags(cfg, max_lag_bytes=10)
    assert (
        src.problem
        == f"source {tmp_path}/logs/access.log*: {len(extra):,} bytes not yet ingested (more than 10)"
    )


def test_a_rotated_file_read_under_its_old_name_has_no_lag(tmp_path: Path) -> None:
    cfg, log = ingested(tmp_path, lines(2026, range(10, 12)))
    log.rename(log.with_name("access.log.1"))  # logrotate: same stream, new name
    log.write_text(lines(2026, range(12, 13)))
    [src] = lag.source_lags(cfg)
    by_name = {Path(f.path).name: f.lag for f in src.files}
    assert by_name == {"access.log": log.stat().st_size, "access.log.1": 0}


def test_compressed_files_have_an_unknown_lag_and_say_why(tmp_path: Path) -> None:
    cfg, log = ingested(tmp_path, lines(2026, range(10, 11)))
    with gzip.open(log.with_name("access.log.2.gz"), "wt") as f:
        f.write(lines(2026, range(1, 2)))
    [src] = lag.source_lags(cfg)
    gz = next(f for f in src.files if f.path.endswith(".gz"))
    assert gz.lag is None and gz.note == lag.COMPRESSED and src.problem is None


def test_a_source_matching_nothing_or_rejecting_too_much_needs_attention(tmp_path: Path) -> None:
    ingested(tmp_path, lines(2026, range(10, 11)) + "bad\nworse\n", max_reject_rate=1.0, retention=KEPT)
    gone = str(tmp_path / "nosuch" / "*.log")
    strict = cfg_for(
        tmp_path, str(tmp_path / "logs" / "access.log*"), gone, max_reject_rate=0.4, retention=KEPT
    )
    report = status.status(strict, lag.source_lags(strict))
    assert report.problems == (
        f"source {tmp_path}/logs/access.log*: its last run rejected 2 of 4 lines (50.0%, more than "
        "ingest.max_reject_rate 40.0%)",
        f"source {gone}: no file matches {gone} (collection has stopped: fix the path)",
    )


def test_status_never_creates_a_store_or_a_key_directory(tmp_path: Path) -> None:
    cfg = cfg_for(tmp_path, str(tmp_path / "*.log"))
    (tmp_path / "a.log").write_text(lines(2026, range(10, 11)))
    [src] = lag.source_lags(cfg)
    assert src.files[0].lag == src.files[0].size and src.files[0].note == "never read"
    with pytest.raises(StoreError, match="no store at"):
        status.status(cfg)
    assert not (tmp_path / "store").exists() and not (tmp_path / "store-keys").exists()


def test_a_file_retired_while_status_counts_is_no_unreadable_file(tmp_path: Path) -> None:
    """Found by review: a compaction or purge retiring a file between status's listing and its read
    of the footer made status report the file unreadable (exit 11). The race is made here by
    removing the file right before its footer is read; a file that is there and damaged still
    counts."""
    from pipeline.store.commit import Store

    cfg, _ = ingested(tmp_path, lines(2026, range(10, 12)))
    store = Store(cfg.store)
    first, second = store.committed("pageviews")
    real = Store.parquet_rows

    def retired_meanwhile(self: Store, key: str) -> int:
        if key == first:
            self.fs.remove(key)  # as compaction retires it, after status listed it
        return real(self, key)

    (tmp_path / "store" / second).write_bytes(b"not parquet")  # damaged, and still there
    Store.parquet_rows = retired_meanwhile  # type: ignore[method-assign,assignment]
    try:
        usage = status.store_usage(store)
    finally:
        Store.parquet_rows = real  # type: ignore[method-assign]
    assert usage.unreadable == (second,)
