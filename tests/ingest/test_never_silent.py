"""Ingest never fails silently: too many rejects, a vanished source, a privacy change (issue #14).

Each case runs the real pipeline on real files in a temporary store; CLI cases also check that
``--quiet`` still prints the one line naming the source, and the exit code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from pipeline import config
from pipeline.ingest import privacy_record
from pipeline.ingest import run as ingest
from pipeline.ingest.failures import reject_rate_error
from pipeline.store import layout
from pipeline.store.commit import Store
from tests.cli.test_cli import invoke
from tests.conftest import RECENT_CLF, RECENT_ISO, ingest_paths, store_rejects, store_rows

GOOD = (
    "203.0.113.{n} - - [" + RECENT_CLF + ':13:55:{s:02d} +0000] "GET /p{n} HTTP/1.1" 200 12 "-" "curl/8.0"\n'
)
JSON_LINE = '{{"time": "' + RECENT_ISO + 'T13:55:00Z", "remote_addr": "198.51.100.{n}", "uri": "/x"}}\n'


def good(n: int) -> str:
    return "".join(GOOD.format(n=i % 250 + 1, s=i % 60) for i in range(n))


# ----------------------------------------------------------------------------------------------------
# the reject-rate rule, as a table: (lines, rejects by reason, threshold) → fails?


@pytest.mark.parametrize(
    ("lines", "rejects", "rate", "fails"),
    [
        (3, {"unparseable": 1}, 0.05, False),  # one stray line never fails a run by itself
        (1, {"unparseable": 1}, 0.05, False),  # ... not even when it is the run's only line
        (2, {"unparseable": 2}, 0.05, True),  # from two rejects on, the share decides
        (40, {"unparseable": 2}, 0.05, False),  # 5 % is not above 5 %
        (40, {"unparseable": 2, "bad_timestamp": 1}, 0.05, True),
        (1000, {"binary": 51}, 0.05, True),
        (1000, {"binary": 50}, 0.05, False),
        (10, {"unparseable": 10}, 1.0, False),  # 1 = never
        (10, {"unparseable": 2}, 0.0, True),  # 0 = any (but a single line)
        (0, {}, 0.0, False),
    ],
)
def test_reject_rate_rule(lines: int, rejects: dict[str, int], rate: float, fails: bool) -> None:
    assert (reject_rate_error(lines, rejects, rate) is not None) == fails


def test_reject_rate_message_names_rate_reason_and_threshold() -> None:
    msg = reject_rate_error(40, {"unparseable": 8, "bad_timestamp": 2}, 0.05)
    assert msg is not None and "\n" not in msg
    assert msg.startswith(
        "10 of 40 lines rejected (25.0%, mostly unparseable), above ingest.max_reject_rate = 0.05"
    )


# ----------------------------------------------------------------------------------------------------
# library


def test_a_source_over_the_threshold_fails_but_its_rows_are_committed(tmp_path: Path) -> None:
    noisy, clean = tmp_path / "noisy.log", tmp_path / "clean.log"
    noisy.write_text(good(20) + "garbage\n" * 5)
    clean.write_text(good(10))
    report = ingest_paths(tmp_path / "s", [noisy, clean], fmt="combined")
    assert [s.path for s in report.failed] == [str(noisy)]
    problem = report.failed[0].problem
    assert problem is not None and problem.startswith(f"{noisy}: 5 of 25 lines rejected (20.0%")
    assert len(store_rows(tmp_path / "s")) == 30 and len(store_rejects(tmp_path / "s")) == 5
    # the next run reads nothing new: the source is not failed again for lines already judged
    again = ingest_paths(tmp_path / "s", [noisy, clean], fmt="combined")
    assert again.failed == () and len(store_rows(tmp_path / "s")) == 30


def test_the_threshold_is_per_run_and_configurable(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(good(20) + "garbage\n" * 5)
    assert ingest_paths(tmp_path / "s", [log], fmt="combined", max_reject_rate=0.25).failed == ()
    with log.open("a") as f:
        f.write(good(100) + "garbage\n")  # 1 of 101 in this run: fine
    assert ingest_paths(tmp_path / "s", [log], fmt="combined").failed == ()


def test_a_source_that_matches_nothing_names_itself(tmp_path: Path) -> None:
    pattern = str(tmp_path / "gone" / "access*.log")
    report = ingest_paths(tmp_path / "s", [pattern])
    assert [s.problem for s in report.failed] == [
        f"no file matches {pattern}: collection from it has stopped; fix the path or the config"
    ]


# ----------------------------------------------------------------------------------------------------
# the command line, under --quiet


def test_a_log_of_another_format_exits_10_under_quiet(tmp_path: Path) -> None:
    """A JSON log read as combined: every line quarantined; the run says so although --quiet."""
    log = tmp_path / "app.log"
    log.write_text("".join(JSON_LINE.format(n=i) for i in range(1, 9)))
    code, out, err = invoke(
        "ingest", str(log), "--format", "combined", "--quiet", "--final", "--store", str(tmp_path / "s")
    )
    assert code == 10 and out == ""
    assert err.startswith(f"hostlogs: error: {log}: 8 of 8 lines rejected (100.0%, mostly unparseable)")
    assert err.count("\n") == 1
    assert "198.51.100" not in err  # the rejected lines' addresses are nowhere in the message


def test_a_configured_source_that_disappeared_exits_10_under_quiet(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    (logs / "access.log").write_text(good(3))
    cfg = tmp_path / "hostlogs.toml"
    cfg.write_text(
        f'store = "{tmp_path / "s"}"\n[[sources]]\npath = "{logs}/access*.log"\nformat = "combined"\n'
        'domain = "example.test"\n'
    )
    assert invoke("ingest", "--config", str(cfg), "--quiet", "--final") == (0, "", "")
    (logs / "access.log").unlink()  # the vhost moved its logs; nobody told hostlogs
    code, out, err = invoke("ingest", "--config", str(cfg), "--quiet", "--final")
    assert (
        code == 10
        and out == ""
        and err.startswith(f"hostlogs: error: no file matches {logs}/access*.log: collection")
    )


# ----------------------------------------------------------------------------------------------------
# the store's privacy record


def cfg_with(store: Path, **privacy: Any) -> config.Config:
    return config.Config(store=str(store), server="test-web-1").with_overrides(
        privacy=config.replace(config.PrivacyConfig(), **privacy)
    )


def run_one(cfg: config.Config, log: Path, *, accept: bool = False) -> ingest.IngestReport:
    spec = config.SourceConfig(path=str(log), format="combined", domain="example.test")
    return ingest.run(cfg, [spec], final=True, accept_privacy_change=accept)


def test_the_first_ingest_records_the_privacy_settings(tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(good(2))
    run_one(cfg_with(tmp_path / "s"), log)
    [entry] = privacy_record.history(Store(str(tmp_path / "s")))
    assert entry["settings"] == {
        "ipv4_prefix": 24,
        "ipv6_prefix": 48,
        "pseudonym": "hmac",
        "key_period": "month",
    }
    assert entry["note"] == "first ingest" and entry["user"] and entry["date"][:2] == "20"
    run_one(cfg_with(tmp_path / "s"), log)  # same settings: nothing appended
    assert len(privacy_record.history(Store(str(tmp_path / "s")))) == 1


def test_a_prefix_change_is_refused_before_any_row_is_written(tmp_path: Path) -> None:
    store, log = tmp_path / "s", tmp_path / "a.log"
    log.write_text(good(2))
    run_one(cfg_with(store), log)
    with log.open("a") as f:
        f.write(good(3))
    code, out, err = invoke(
        "ingest",
        str(log),
        "--store",
        str(store),
        "--config",
        str(_toml(tmp_path, "ipv4_prefix = 16")),
        "--final",
    )
    assert code == 3 and out == "" and err.count("\n") == 1
    assert err.startswith(
        f"hostlogs: error: store {store} holds IPv4 networks of /24; ipv4_prefix = 16 would mix /24 and /16 rows; "
        "to change it on purpose, pass --accept-privacy-change"
    )
    assert len(store_rows(store)) == 2  # nothing of the new lines was written
    assert len(privacy_record.history(Store(str(store)))) == 1


def test_an_accepted_change_is_recorded_with_its_date(tmp_path: Path) -> None:
    store, log = tmp_path / "s", tmp_path / "a.log"
    log.write_text(good(2))
    run_one(cfg_with(store), log)
    with log.open("a") as f:
        f.write(good(3))
    toml = _toml(tmp_path, "ipv4_prefix = 16\npseudonym = 'off'")
    code, _, err = invoke("ingest", str(log), "--store", str(store), "--config", str(toml), "--final", "-q")
    assert (
        code == 3
        and "pseudonym = hmac rows; pseudonym = off would mix rows with and without client_id" in err
    )
    args = ("ingest", str(log), "--store", str(store), "--config", str(toml), "--final", "-q")
    assert invoke(*args, "--accept-privacy-change") == (0, "", "")
    first, change = privacy_record.history(Store(str(store)))
    assert change["settings"]["ipv4_prefix"] == 16 and change["settings"]["pseudonym"] == "off"
    assert change["note"] == "changed with --accept-privacy-change: ipv4_prefix 24 → 16, pseudonym hmac → off"
    assert change["date"] >= first["date"]
    assert invoke(*args) == (0, "", "")  # the new settings are the store's now
    code, _, err = invoke("ingest", str(log), "--store", str(store), "--final", "-q")  # the old ones are not
    assert code == 3 and "holds IPv4 networks of /16; ipv4_prefix = 24 would mix /16 and /24 rows" in err


def test_a_store_without_record_gets_one_at_its_next_ingest(tmp_path: Path) -> None:
    store, log = tmp_path / "s", tmp_path / "a.log"
    log.write_text(good(2))
    run_one(cfg_with(store), log)
    Store(str(store)).remove(layout.PRIVACY_RECORD)  # a store made before the record existed
    run_one(cfg_with(store, ipv4_prefix=20), log)
    [entry] = privacy_record.history(Store(str(store)))
    assert entry["settings"]["ipv4_prefix"] == 20
    assert entry["note"] == "recorded on a store ingested before (earlier rows: unknown)"


def test_a_damaged_record_is_a_store_error(tmp_path: Path) -> None:
    store, log = tmp_path / "s", tmp_path / "a.log"
    log.write_text(good(2))
    run_one(cfg_with(store), log)
    (store / layout.PRIVACY_RECORD).write_text("{not json\n")
    code, _, err = invoke("ingest", str(log), "--store", str(store), "--final")
    assert code == 6 and "damaged privacy record" in err and "restore it from backup" in err
    assert err.count("\n") == 1


def _toml(tmp_path: Path, privacy: str) -> Path:
    path = tmp_path / "privacy.toml"
    path.write_text(f"[privacy]\n{privacy}\n")
    return path


def test_a_fifo_or_a_dangling_link_fails_its_source_instead_of_hanging_or_vanishing(tmp_path: Path) -> None:
    # Found by review: a FIFO blocked the run (and status) forever; a glob skipped both silently.
    os.mkfifo(tmp_path / "access.fifo.log")
    (tmp_path / "access.dangling.log").symlink_to(tmp_path / "nowhere")
    (tmp_path / "access.good.log").write_text(
        '192.0.2.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
    )
    report = ingest_paths(tmp_path / "store", [str(tmp_path / "access*.log")])
    errors = sorted(str(s.error) for s in report.failed)
    assert len(errors) == 2 and "No such file" in errors[0] and "it is a FIFO" in errors[1]
    assert report.rows == 1  # the good file is ingested all the same


def test_a_log_folder_the_glob_cannot_read_fails_the_source_and_alarms_status(tmp_path: Path) -> None:
    """Found by review: glob skips a folder it cannot read, so with one vhost's log folder unreadable
    ingest read the others and exited 0, and status saw nothing wrong. Root stands in for another
    user by dropping its permission override (setpriv)."""
    import subprocess

    from tests.conftest import as_another_user

    for vhost in ("a", "b"):
        (tmp_path / "vh" / vhost).mkdir(parents=True)
        (tmp_path / "vh" / vhost / "access.log").write_text(good(2))
    (tmp_path / "vh" / "lost+found").mkdir()  # a log volume's own folder: never a blind spot
    os.chmod(tmp_path / "vh" / "lost+found", 0)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'store = "{tmp_path / "s"}"\n[[sources]]\npath = "{tmp_path}/vh/*/access.log"\n')

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return as_another_user("-m", "pipeline.cli", *args, "--config", str(cfg))

    os.chmod(tmp_path / "vh" / "b", 0)
    try:
        ingested, status = run("ingest", "--domain", "x.example"), run("status")
    finally:
        os.chmod(tmp_path / "vh" / "b", 0o755)
        os.chmod(tmp_path / "vh" / "lost+found", 0o700)
    blind = f"cannot read the folder {tmp_path}/vh/b (Permission denied)"
    assert ingested.returncode == 10 and blind in ingested.stderr, ingested.stderr
    assert "2 lines → 2 rows" in ingested.stdout  # the readable folder's log was ingested
    assert "lost+found" not in ingested.stderr + status.stdout + status.stderr
    assert status.returncode == 11 and blind in status.stdout + status.stderr, status.stdout + status.stderr


@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_a_log_with_cr_only_line_endings_fails_its_source_instead_of_becoming_one_reject(
    tmp_path: Path, fmt: str
) -> None:
    """Found by review: 200,000 records ended by CR alone were read as one line, one too_long reject,
    exit 0 (and auto-detection, which split on CR, had recognised the format)."""
    log = tmp_path / "access.log"
    log.write_bytes(good(40).replace("\n", "\r").encode())
    report = ingest_paths(tmp_path / "store", [log], fmt=fmt)
    assert [s.error for s in report.failed] and "CR only" in str(report.failed[0].error)
    assert report.rows == 0 and store_rejects(tmp_path / "store") == []
    log.write_bytes(good(40).replace("\n", "\r\n").encode())  # CRLF is fine
    assert ingest_paths(tmp_path / "store", [log], fmt=fmt).rows == 40


def test_crlf_cut_at_the_first_kib_and_a_stray_cr_in_a_long_first_line_are_no_cr_only_log(
    tmp_path: Path,
) -> None:
    """Found by review of the CR-only check: a CRLF log whose first line ends at byte 1023 (the LF
    just past the first KiB), and an LF log with a stray CR in a first line longer than a KiB."""
    first = GOOD.format(n=1, s=0).rstrip("\n")
    crlf = (
        first.replace('"GET /', '"GET /' + "x" * (1023 - len(first)), 1)
        + "\r\n"
        + good(5).replace("\n", "\r\n")
    )
    assert crlf.index("\r") == 1023  # the first KiB ends in its CR, the LF just past it
    (tmp_path / "crlf.log").write_bytes(crlf.encode())
    long_first = first.replace('"GET /', '"GET /' + "y" * 600 + "\r" + "y" * 600, 1) + "\n" + good(5)
    (tmp_path / "long.log").write_bytes(long_first.encode())
    for name, rows in (("crlf.log", 6), ("long.log", 5)):
        report = ingest_paths(tmp_path / name.replace(".log", "-store"), [tmp_path / name], fmt="combined")
        assert not any("CR only" in str(s.error) for s in report.sources) and report.rows >= rows, report


@pytest.mark.parametrize("suffix", [".gz", ".bz2", ".xz", ".zst"])
def test_an_empty_compressed_file_fails_once_final(tmp_path: Path, suffix: str) -> None:
    """Found by review: a 0-byte .gz (a compressor that died, a full disk) was "waiting: no complete
    line yet", exit 0, forever, even under --final. Even an empty log compresses to a header."""
    archive = tmp_path / f"access.log.1{suffix}"
    archive.write_bytes(b"")
    store = str(tmp_path / "store")
    base = ["ingest", str(archive), "--store", store, "--format", "combined", "--domain", "x.example", "-q"]
    code, _, err = invoke(*base)  # just written: it may still be being compressed
    assert code == 0, err
    code, _, err = invoke(*base, "--final")
    assert code == 10 and "is empty, though a compressed file holds at least its header" in err, err
    os.utime(archive, (0, 0))  # untouched for long
    code, _, err = invoke(*base)
    assert code == 10 and "is empty" in err, err
    plain = tmp_path / "access.log"  # an empty plain log is only an empty log
    plain.write_bytes(b"")
    os.utime(plain, (0, 0))
    assert invoke("ingest", str(plain), "--store", store, "--format", "combined", "-q")[0] == 0
