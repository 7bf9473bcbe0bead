"""Ingest says when it wrote rows older than the retention: the next purge deletes them.

An archive ingested late (or a server whose clock was years off) is stored like any log, and the
daily purge then deletes it: the operator hears it at ingest time, when a hold can still keep it.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.rules import first_day_kept, today

OLD = (
    '192.0.2.1 - - [01/Aug/1995:10:00:01 +0000] "GET /a HTTP/1.0" 200 10\n'
    '192.0.2.2 - - [02/Aug/1995:10:00:01 +0000] "GET /b HTTP/1.0" 200 10\n'
)


def recent_line() -> str:
    day = today() - dt.timedelta(days=1)
    return f'192.0.2.3 - - [{day:%d/%b/%Y}:10:00:00 +0000] "GET /c HTTP/1.1" 200 10\n'


def ingest(tmp_path: Path, text: str, *extra: str) -> tuple[int, str, str]:
    log = tmp_path / "access.log"
    log.write_text(text)
    args = ["ingest", str(log), "--store", str(tmp_path / "store"), "--domain", "example.org", *extra]
    result = CliRunner().invoke(main, args)
    return result.exit_code, result.stdout, result.stderr


def first_kept() -> dt.date:
    return first_day_kept(today(), "2y")


def test_days_older_than_the_retention_are_named_and_their_rows_kept_until_purge(tmp_path: Path) -> None:
    code, out, _ = ingest(tmp_path, OLD + recent_line())
    assert code == 0
    assert "3 lines → 3 rows, 0 rejected" in out  # stored: the purge, not ingest, deletes
    assert (
        "warning: rows were written to 2 days (1995-08-01 … 1995-08-02) older than the retention "
        f"(2y: first day kept {first_kept()}); the next `hostlogs purge` deletes them "
        "(`hostlogs hold add` keeps them)"
    ) in out
    assert "covered by an active hold" not in out


def test_quiet_ingest_says_it_on_stderr_and_json_carries_the_days(tmp_path: Path) -> None:
    code, out, err = ingest(tmp_path, OLD, "--quiet")
    assert (code, out) == (0, "")
    assert err.startswith("hostlogs: warning: rows were written to 2 days (1995-08-01 … 1995-08-02)")
    code, out, _ = ingest(
        tmp_path, OLD + '192.0.2.4 - - [03/Aug/1995:10:00:01 +0000] "GET / HTTP/1.0" 200 1\n', "--json"
    )
    assert code == 0
    assert json.loads(out)["past_retention"] == {
        "retention": "2y",
        "first_day_kept": first_kept().isoformat(),
        "expired": ["1995-08-03"],  # the days this run wrote (the file was read on from where it stopped)
        "held": [],
        "held_domains": [],
    }


def test_a_hold_covering_a_day_is_named_instead(tmp_path: Path) -> None:
    store = str(tmp_path / "store")
    ingest(tmp_path, recent_line())  # the store exists before the hold is placed
    hold = ["hold", "add", "--store", store, "--case", "INC-1", "--reason", "late archive"]
    assert CliRunner().invoke(main, [*hold, "--from", "1995-08-01", "--to", "1995-08-01"]).exit_code == 0
    code, out, _ = ingest(tmp_path, recent_line() + OLD)
    assert code == 0
    assert "warning: rows were written to 1 day (1995-08-02) older than the retention" in out
    assert (
        "1 day (1995-08-01) older than the retention is covered by an active hold of every domain: purge "
        "keeps their rows"
    ) in out


def test_a_hold_of_one_domain_keeps_only_that_domains_rows_and_the_warning_says_so(tmp_path: Path) -> None:
    """Found by review: a hold naming another domain made the day count as held, and the purge then
    deleted the rows the warning had not mentioned."""
    store = str(tmp_path / "store")
    ingest(tmp_path, recent_line())
    hold = ["hold", "add", "--store", store, "--case", "INC-9", "--reason", "r", "--domain", "other.example"]
    assert CliRunner().invoke(main, [*hold, "--from", "1995-08-01", "--to", "1995-08-01"]).exit_code == 0
    code, out, err = ingest(tmp_path, recent_line() + OLD, "--quiet")
    assert (code, out) == (0, "")
    assert err.startswith(
        "hostlogs: warning: rows were written to 2 days (1995-08-01 … 1995-08-02) older than the retention"
    )
    assert "deletes them except the rows of other.example that a hold covers" in err


@pytest.mark.parametrize("retention", ["999y", None])
def test_no_word_when_nothing_written_is_past_the_retention(tmp_path: Path, retention: str | None) -> None:
    extra: list[str] = []
    text = recent_line()
    if retention is not None:  # old days, but a retention that keeps them
        (tmp_path / "c.toml").write_text(f'[retention]\nretention = "{retention}"\n')
        extra, text = ["--config", str(tmp_path / "c.toml")], OLD
    code, out, err = ingest(tmp_path, text, *extra)
    assert code == 0 and "retention" not in out + err
    code, out, _ = ingest(tmp_path, text + text.replace("GET", "HEAD"), *extra, "--json")
    assert code == 0 and "past_retention" not in json.loads(out)


def test_a_damaged_hold_file_fails_no_ingest_that_committed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    ingest(tmp_path, recent_line())
    hold = ["hold", "add", "--store", str(store), "--case", "INC-2", "--reason", "r", "--from", "1995-08-01"]
    assert CliRunner().invoke(main, hold).exit_code == 0
    for file in (store / "_holds").glob("*.json"):
        file.write_text("{not json")
    code, out, err = ingest(tmp_path, recent_line() + OLD)
    assert code == 0 and "3 lines → 3 rows" not in out and "2 lines → 2 rows, 0 rejected" in out
    assert "hold" in err and "as if no hold covered them" in err
    assert "rows were written to 2 days (1995-08-01 … 1995-08-02)" in out


def test_no_warning_when_the_domain_holds_keep_every_row_written(tmp_path: Path) -> None:
    """Found by review: holds naming the only domains written still raised the warning (on stderr
    with --quiet: cron mail), though the purge would delete nothing."""
    store = str(tmp_path / "store")
    ingest(tmp_path, recent_line())
    hold = ["hold", "add", "--store", store, "--case", "INC-7", "--reason", "r", "--domain", "example.org"]
    assert CliRunner().invoke(main, [*hold, "--from", "1995-08-01", "--to", "1995-08-31"]).exit_code == 0
    code, out, err = ingest(tmp_path, recent_line() + OLD, "--quiet")
    assert (code, out, err) == (0, "", "")
    code, out, _ = ingest(tmp_path, recent_line() + OLD + OLD.replace("/b ", "/c "), "--json")
    assert code == 0 and json.loads(out)["past_retention"]["expired"] == []


def test_a_committed_file_that_cannot_be_read_fails_no_ingest_that_committed(tmp_path: Path) -> None:
    """A day a domain hold may keep is decided from its files; one that is no Parquet (damaged) is a
    warning, never an error after the rows were committed (ArrowInvalid escaped read_rows)."""
    store = tmp_path / "store"
    ingest(tmp_path, recent_line() + OLD)
    hold = [
        "hold",
        "add",
        "--store",
        str(store),
        "--case",
        "INC-8",
        "--reason",
        "r",
        "--domain",
        "example.org",
    ]
    assert CliRunner().invoke(main, [*hold, "--from", "1995-08-01", "--to", "1995-08-01"]).exit_code == 0
    for damaged in store.glob("pageviews/date=1995-08-01/*.parquet"):
        damaged.write_bytes(b"junk")
    code, _, err = ingest(tmp_path, recent_line() + OLD + OLD, "--quiet")
    assert code == 0 and "cannot read" in err and "as if no hold covered them" in err, err
    assert "rows were written to 2 days (1995-08-01 … 1995-08-02)" in err
