"""Timestamps that do not parse, lie outside the calendar, or are far in the future are rejects.

A line must at worst be a quarantined reject: before, a year outside 1-9999 after the UTC conversion
crashed every run of ingest on that file (``ValueError: year 0 is out of range``).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from pipeline import config, rules
from pipeline.errors import ConfigError
from tests.conftest import ingest_paths, store_rejects, store_rows

GOOD = '198.51.100.{n} - - [{ts}] "GET /good{n} HTTP/1.1" 200 5 "-" "ua"\n'
BAD = '198.51.100.{n} - - [{ts}] "GET /bad{n} HTTP/1.1" 200 5 "-" "ua"\n'
_FUTURE = datetime.now(UTC) + timedelta(days=30)
_NEAR = datetime.now(UTC) + timedelta(days=1)
BAD_TS = [
    "01/Jan/0001:00:00:00 +0100",  # UTC year 0
    "31/Dec/9999:23:59:59 -0100",  # UTC year 10000
    "01/Jan/0000:00:00:00 +0000",
    "10/Oct/2026:13:55:36 +9999",  # bad offset
    "10/Oct/2026:13:55:36 +2400",
    "29/Feb/2025:00:00:00 +0000",  # no such day
    "10/Oct/99999:13:55:36 +0000",
    "10/Oct/-001:13:55:36 +0000",
    "31/Dec/1969:23:59:59 +0000",  # before the Unix epoch
    "01/Jan/1970:00:30:00 +0100",  # 1969 in UTC
    _FUTURE.strftime("%d/%b/%Y:%H:%M:%S +0000"),  # beyond ingest.max_future_skew (3d)
    "10/Oct/2026:13:55:36 +0000 extra",
]
GOOD_TS = [
    "10/Oct/2026:13:55:36 +0000",
    "01/Jan/1970:00:00:00 +0000",  # the earliest instant kept
    "01/Jan/1995:00:00:00 -0500",
    _NEAR.strftime("%d/%b/%Y:%H:%M:%S +0000"),  # within the skew
    # A leap second is the next second (UTC time has none): found by a run at a later date, this
    # line had been a "bad" one only while its date (31 Dec 2026) was beyond the future skew.
    "31/Dec/2016:23:59:60 +0000",
]


def test_bad_timestamps_are_rejects_and_reruns_change_nothing(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    text = [GOOD.format(n=i + 1, ts=ts) for i, ts in enumerate(GOOD_TS)]
    text += [BAD.format(n=i + 1, ts=ts) for i, ts in enumerate(BAD_TS)]
    order = sorted(range(len(text)), key=lambda i: (i * 7) % len(text))  # good and bad mixed
    log.write_text("".join(text[i] for i in order))
    # junk on purpose: the reject-rate rule (test_never_silent.py) would fail the source
    report = ingest_paths(store, [log], max_reject_rate=1.0)
    assert not report.failed
    assert report.rows == len(GOOD_TS)
    assert report.rejects == {"bad_timestamp": len(BAD_TS)}
    assert sorted(str(r["path"]) for r in store_rows(store)) == sorted(
        f"/good{i + 1}" for i in range(len(GOOD_TS))
    )
    rejects = store_rejects(store)
    assert {r["reason"] for r in rejects} == {"bad_timestamp"}
    assert sorted(int(r["offset"]) for r in rejects) == sorted(
        sum(len(text[j]) for j in order[: order.index(i)]) for i in range(len(GOOD_TS), len(text))
    )
    again = ingest_paths(store, [log])
    assert (again.rows, again.rejects, again.failed) == (0, {}, ())
    assert len(store_rows(store)) == len(GOOD_TS) and len(store_rejects(store)) == len(BAD_TS)


def test_a_leap_second_is_stored_as_the_next_second(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(GOOD.format(n=1, ts="31/Dec/2016:23:59:60 +0000"))
    assert ingest_paths(store, [log]).rows == 1
    (row,) = store_rows(store)
    assert row["ts"] == datetime(2017, 1, 1, tzinfo=UTC)


def test_future_skew_is_configurable(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(GOOD.format(n=1, ts=_NEAR.strftime("%d/%b/%Y:%H:%M:%S +0000")))
    report = ingest_paths(store, [log], max_future_skew="1h")
    assert (report.rows, report.rejects) == (0, {"bad_timestamp": 1})


@pytest.mark.parametrize("value", ["3", "3w", "-1d", "soon", ""])
def test_future_skew_setting_is_validated(value: str) -> None:
    with pytest.raises(ConfigError, match="max_future_skew"):
        config.from_dict({"ingest": {"max_future_skew": value}})


def test_future_skew_parses() -> None:
    assert rules.future_skew("3d") == timedelta(days=3)
    assert rules.future_skew("12h") == timedelta(hours=12)
    assert config.from_dict({}).ingest.max_future_skew == "3d"
