"""``hostlogs status`` and the metrics file: text, --json, exit codes, Prometheus format, atomic writes."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from pipeline import config
from pipeline.lifecycle import metrics
from tests.cli.test_cli import invoke
from tests.conftest import RECENT_CLF, RECENT_ISO, ROOT, as_another_user
from tests.store.test_store_seam import _Watch, watched  # noqa: F401 (the fixture)

# recent: a healthy store has nothing past the retention (found by running the suite at later dates)
LINE = "203.0.113.5 - - [" + RECENT_CLF + ':13:55:36 +0000] "GET /a HTTP/1.1" 200 12 "-" "curl/8.0"\n'


def setup(tmp_path: Path, *, extra_source: str | None = None, prom: str | None = None) -> Path:
    """A log, a config naming it (and ``extra_source``), the store and the metrics file in tmp_path."""
    logs = tmp_path / "logs"
    logs.mkdir(exist_ok=True)
    (logs / "access.log").write_text(LINE * 3 + "nonsense\n")
    text = (
        f'store = "{tmp_path / "store"}"\n[[sources]]\npath = "{logs}/access.log*"\ndomain = "example.test"\n'
    )
    if extra_source:
        text += f'[[sources]]\npath = "{extra_source}"\n'
    text += f'[ingest]\nmax_reject_rate = 0.5\n[metrics]\ntextfile = "{prom or tmp_path / "prom" / "hostlogs.prom"}"\n'
    (tmp_path / "prom").mkdir(exist_ok=True)
    cfg = tmp_path / "hostlogs.toml"
    cfg.write_text(text)
    return cfg


def samples(prom: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the file, parsed by prometheus_client (which fails on a malformed file)."""
    out = {}
    for family in text_string_to_metric_families(prom.read_text()):
        assert family.documentation and family.type == "gauge", family.name
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_status_text_and_exit_0_when_healthy(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    code, out, err = invoke("status", "--config", str(cfg))
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].startswith(f"store: {tmp_path / 'store'}  (")
    assert lines[1] == f"pageviews: 3 rows in 1 files, 1 days: {RECENT_ISO} to {RECENT_ISO}"
    assert f"  {tmp_path}/logs/access.log*: 1 file(s), lag 0 bytes; last run " in out
    assert "4 lines → 3 rows, 1 rejected" in out and "rejects in the last 24 h: unparseable 1" in out
    assert "last purge: never" in out and "last publish: never" in out and lines[-1] == "status: OK"
    assert "203.0.113" not in out


def test_status_json_shape(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    code, out, _ = invoke("status", "--config", str(cfg), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["problems"] == []
    assert set(data) == {
        "ok", "problems", "store", "now", "store_bytes", "store_files", "pageviews", "retention", "holds",
        "sources", "rejects_24h", "keys", "last",
    }  # fmt: skip
    assert data["pageviews"]["rows"] == 3 and data["retention"]["retention"] == "2y"
    [src] = data["sources"]
    assert src["lag"] == 0 and src["last_run"]["rejects"] == {"unparseable": 1}
    assert data["last"] == {"purge": None, "erase": None, "compact": None, "publish": None}


def test_status_exits_11_naming_each_problem_also_with_json(tmp_path: Path) -> None:
    gone = str(tmp_path / "nosuch" / "*.log")
    cfg = setup(tmp_path, extra_source=gone)
    invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    with (tmp_path / "logs" / "access.log").open("a") as f:
        f.write(LINE * 100)
    code, out, err = invoke("status", "--config", str(cfg), "--json", "--max-lag-mb", "0.001")
    assert code == 11 and json.loads(out)["ok"] is False
    assert err.splitlines() == [
        f"hostlogs: error: source {gone}: no file matches {gone} (collection has stopped: fix the path)",
        f"hostlogs: error: status: needs attention: source {tmp_path}/logs/access.log*: {len(LINE) * 100:,} "
        "bytes not yet ingested (more than 1,048) (and 1 more)",
    ]


def test_status_without_a_store_exits_6(tmp_path: Path) -> None:
    code, _, err = invoke("status", "--store", str(tmp_path / "none"))
    assert (
        code == 6
        and err
        == f"hostlogs: error: no store at {tmp_path / 'none'}: run 'hostlogs ingest' first or give --store\n"
    )


def test_metrics_after_ingest_parse_and_other_commands_are_kept(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    prom = tmp_path / "prom" / "hostlogs.prom"
    log = str(tmp_path / "logs" / "access.log")
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    first = samples(prom)
    src = (("source", log),)
    assert first[("hostlogs_ingest_lines_read", src)] == 4
    assert first[("hostlogs_ingest_rows_written", src)] == 3
    assert first[("hostlogs_ingest_lines_rejected", (("reason", "unparseable"), *src))] == 1
    assert first[("hostlogs_ingest_bytes_read", src)] == os.path.getsize(log)
    assert first[("hostlogs_source_lag_bytes", src)] == 0
    assert first[("hostlogs_last_exit_code", (("command", "ingest"),))] == 0
    assert first[("hostlogs_store_rows", ())] == 3 and first[("hostlogs_store_expired_partitions", ())] == 0
    assert ("hostlogs_store_oldest_day_timestamp_seconds", ()) in first
    assert "203.0.113" not in prom.read_text()
    assert oct(prom.stat().st_mode & 0o777) == "0o644"
    inode = prom.stat().st_ino
    assert invoke("compact", "--config", str(cfg))[0] == 0
    after = samples(prom)
    assert prom.stat().st_ino != inode  # replaced by a rename, never rewritten in place
    assert [p.name for p in prom.parent.iterdir()] == ["hostlogs.prom"]  # no temporary file left
    assert after[("hostlogs_last_exit_code", (("command", "compact"),))] == 0
    for key in [k for k in first if k[0].startswith("hostlogs_ingest_") or ("command", "ingest") in k[1]]:
        assert after[key] == first[key], key  # compact keeps the ingest's series


def test_a_failed_run_records_its_exit_code_and_keeps_the_last_success(tmp_path: Path) -> None:
    cfg = setup(tmp_path)
    prom = tmp_path / "prom" / "hostlogs.prom"
    invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    ok = samples(prom)[("hostlogs_last_success_timestamp_seconds", (("command", "ingest"),))]
    (tmp_path / "logs" / "access.log").unlink()
    code, out, _ = invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    after = samples(prom)
    assert code == 10 and out == ""
    assert after[("hostlogs_last_exit_code", (("command", "ingest"),))] == 10
    assert after[("hostlogs_last_success_timestamp_seconds", (("command", "ingest"),))] == ok
    assert after[("hostlogs_source_files_matched", (("pattern", f"{tmp_path}/logs/access.log*"),))] == 0


def test_a_run_that_could_not_read_its_store_still_records_its_exit_code(tmp_path: Path) -> None:
    # Found by review: the metrics read the broken store, failed, and the failure never reached them.
    cfg = setup(tmp_path)
    prom = tmp_path / "prom" / "hostlogs.prom"
    invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    broken = tmp_path / "broken"
    broken.write_text("not a store")  # the store path now names a regular file
    code, out, err = invoke("ingest", "--config", str(cfg), "--store", str(broken), "--final", "--quiet")
    assert code == 6 and out == "" and len(err.splitlines()) == 1, err
    assert samples(prom)[("hostlogs_last_exit_code", (("command", "ingest"),))] == 6


def test_an_unwritable_metrics_file_is_a_warning_not_the_commands_failure(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    cfg = setup(tmp_path, prom=str(tmp_path / "file" / "hostlogs.prom"))  # under a file: ENOTDIR
    code, out, err = invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    assert (code, out) == (0, "")
    assert err.startswith(f"hostlogs: warning: cannot write the metrics file {tmp_path}/file/hostlogs.prom: ")


def test_render_and_parse_round_trip_labels_that_need_escaping() -> None:
    odd = 'C:\\logs\\"quoted"\nname.log'
    series: metrics.Series = {"hostlogs_source_lag_bytes": {(("source", odd),): 12.0}}
    text = metrics.render(series)
    assert metrics.parse(text) == series
    [family] = text_string_to_metric_families(text)
    assert family.samples[0].labels == {"source": odd} and family.samples[0].value == 12


def test_metrics_are_off_without_a_path(tmp_path: Path) -> None:
    cfg = config.Config(store=str(tmp_path / "s"))
    run = metrics.Run("ingest", 0, metrics.dt.datetime.now(metrics.dt.UTC), 0.1)
    assert metrics.record(cfg, run) is None and list(tmp_path.iterdir()) == []


def test_every_metric_is_documented_and_the_alert_rules_use_only_real_metrics() -> None:
    ops = (ROOT / "docs" / "operations.md").read_text().split("## Monitoring", 1)[1]
    documented = set(re.findall(r"^\| `(hostlogs_[a-z_]+)` \|", ops, re.M))
    assert documented == set(metrics.FAMILIES)
    rules = (ROOT / "configs" / "hostlogs-alerts.yml").read_text()
    used = set(re.findall(r"\bhostlogs_[a-z_]+\b", rules))
    assert used and used <= set(metrics.FAMILIES), used - set(metrics.FAMILIES)
    for alert in ("NoSuccessfulIngest", "RejectRateHigh", "LagGrowing", "DataPastRetention"):
        assert f"alert: Hostlogs{alert}\n" in rules


def test_status_and_metrics_reach_the_store_only_through_pipeline_store(
    watched: Path,  # noqa: F811 (the seam test's fixture)
    tmp_path: Path,
) -> None:
    """The runtime seam check (tests/store/test_store_seam.py) over status and the metrics writes."""
    cfg = setup(tmp_path)  # its store is tmp_path / "store": the watched one
    for args in (("ingest", "--final", "--quiet"), ("status", "--json"), ("compact",), ("status",)):
        code, _, err = invoke(*args, "--config", str(cfg))
        assert code == 0, err
    assert _Watch.seen and not _Watch.violations and not _Watch.inner, (_Watch.violations, _Watch.inner)


def test_a_file_every_ingest_fails_on_needs_attention_until_it_is_read(tmp_path: Path) -> None:
    """A compressed log cut short long ago commits nothing and its lag is unknown: status used to say
    OK while every run failed on it. The run's failure is recorded (masked: an address in the file's
    name is its network) and shown for as long as the file is unchanged; a run that reads it clears it."""
    import gzip

    cfg = setup(tmp_path)
    whole = gzip.compress(LINE.encode() * 2000)
    cut = tmp_path / "logs" / "access.log.203.0.113.77.gz"  # (rotated under a name with an address)
    cut.write_bytes(whole[:40])
    os.utime(cut, (0, os.stat(cut).st_mtime - 3600))
    code, out, _ = invoke("ingest", "--config", str(cfg), "--quiet")
    assert code == 10
    code, out, err = invoke("status", "--config", str(cfg))
    assert code == 11 and "its last ingest" in err and "failed and it is unchanged since" in err, err
    assert "ends early" in err and out.splitlines()[-1].startswith("status: NEEDS ATTENTION")
    masked = str(cut).replace("203.0.113.77", "203.0.113.0/24")  # (printed names: addresses masked)
    assert f"cannot read {masked} to its end" in err and "203.0.113.77" not in err + out
    record = (tmp_path / "store" / "_state").rglob("failures.json")
    assert "203.0.113.77" not in "".join(p.read_text() for p in record)  # masked, as rejects are
    cut.write_bytes(whole)  # the file is complete now (changed): tried afresh, read, cleared
    os.utime(cut, (0, os.stat(cut).st_mtime - 3600))
    assert invoke("status", "--config", str(cfg))[0] == 0  # changed since the failure: not held
    assert invoke("ingest", "--config", str(cfg), "--quiet")[0] == 0
    assert invoke("status", "--config", str(cfg))[0] == 0
    assert [json.loads(p.read_text())["files"] for p in (tmp_path / "store").rglob("failures.json")] == [{}]


def test_a_damaged_failures_record_stops_neither_ingest_nor_status(tmp_path: Path) -> None:
    """The record only informs status: damaged or of another shape, it is taken as empty and written
    anew, never an error (exit 6) or an internal error (exit 1) of ingest or status."""
    cfg = setup(tmp_path)
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    record = tmp_path / "store" / "_state" / "files" / "failures.json"
    for damaged in ('{"version": 1, "files": {', "", '"x"', "[1]", '{"version": 1, "files": "abc"}',
                    '{"version": 1, "files": {"k": {"error": 1}}}'):  # fmt: skip
        record.write_text(damaged)
        assert invoke("status", "--config", str(cfg))[0] == 0, damaged
        assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0, damaged


def test_a_metrics_file_that_is_no_regular_file_is_refused_not_read(tmp_path: Path) -> None:
    # Found by review: a FIFO as metrics.textfile hung ingest after its commit (cron runs piled up);
    # /dev/zero was read without end. `config check` says so (exit 3); a run warns, its code stands.
    fifo = tmp_path / "prom" / "fifo.prom"
    cfg = setup(tmp_path, prom=str(fifo))
    os.mkfifo(fifo)
    code, _, err = invoke("config", "check", "--config", str(cfg))
    assert code == 3 and "is not a regular file" in err
    code, _, err = invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    assert code == 0 and "cannot write the metrics file" in err and "is not a regular file" in err


def test_metrics_say_when_the_store_could_not_be_read(tmp_path: Path) -> None:
    """Found by review: a store the metrics could not read left its series as an earlier run wrote
    them, without a word: rows, lags and expired days went stale while the alerts looked at them."""
    cfg = setup(tmp_path)
    prom = tmp_path / "prom" / "hostlogs.prom"
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    assert samples(prom)[("hostlogs_store_read_ok", ())] == 1
    (tmp_path / "store" / "_holds").write_text("not a folder")  # the store's series cannot be made
    code, _, err = invoke("ingest", "--config", str(cfg), "--final", "--quiet")
    assert code == 0 and "hostlogs: warning: metrics: cannot read the store (cannot list" in err, err
    assert samples(prom)[("hostlogs_store_read_ok", ())] == 0
    assert samples(prom)[("hostlogs_store_rows", ())] == 3  # an earlier run's, and flagged as such
    (tmp_path / "store" / "_holds").unlink()
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    assert samples(prom)[("hostlogs_store_read_ok", ())] == 1


def test_a_failures_record_that_cannot_be_read_is_no_clean_bill(tmp_path: Path) -> None:
    """Found by review: a failures record this user may not read was taken as empty, so status hid
    the files the last ingest failed on and said OK. Root stands in for another user by dropping its
    permission override (setpriv)."""
    import gzip

    cfg = setup(tmp_path)
    cut = tmp_path / "logs" / "access.log.1.gz"
    cut.write_bytes(gzip.compress(LINE.encode() * 2000)[:40])
    os.utime(cut, (0, os.stat(cut).st_mtime - 3600))  # cut short long ago, not being written
    assert invoke("ingest", "--config", str(cfg), "--quiet")[0] == 10
    record = tmp_path / "store" / "_state" / "files" / "failures.json"
    os.chmod(record, 0)
    try:
        run = as_another_user("-m", "pipeline.cli", "status", "--config", str(cfg))
    finally:
        os.chmod(record, 0o644)
    assert run.returncode == 6 and f"cannot read {record}" in run.stderr, run.stderr


def test_a_piped_stream_that_rejects_too_much_needs_attention(tmp_path: Path) -> None:
    """A piped logger runs for days and says its reject rate only when it exits: status reads what
    every pipe committed in the last hour and names one over ingest.max_reject_rate (exit 11)."""
    import subprocess
    import sys

    from click.testing import CliRunner

    from pipeline.cli import main

    cfg = setup(tmp_path)
    assert invoke("ingest", "--config", str(cfg))[0] == 0
    assert invoke("status", "--config", str(cfg))[0] == 0
    good = CliRunner().invoke(
        main, ["ingest", "-", "--config", str(cfg), "--format", "combined"], input=LINE * 20
    )
    assert good.exit_code == 0, good.output
    code, out, _ = invoke("status", "--config", str(cfg))
    assert code == 0 and re.search(r"piped stream pipe-\d+: last hour 20 lines → 20 rows, 0 rejected", out), (
        out
    )
    # another process (another pipe), with the wrong --format: every line quarantined
    argv = [sys.executable, "-m", "pipeline.cli", "ingest", "-", "--config", str(cfg), "--format", "w3c"]
    assert subprocess.run(argv, input=LINE * 30, text=True, capture_output=True, check=False).returncode == 10
    code, out, err = invoke("status", "--config", str(cfg))
    assert code == 11, out + err
    assert re.search(r"piped stream pipe-\d+: in the last hour it rejected 30 of 30 lines \(100\.0%", err), (
        err
    )
    code, out, _ = invoke("status", "--config", str(cfg), "--json")
    piped = [s for s in json.loads(out)["sources"] if s.get("piped")]
    assert code == 11 and sorted(s["lines"] for s in piped) == [20, 30]


def test_a_piped_streams_alarm_ends_an_hour_after_it_and_damaged_manifests_stop_no_status(
    tmp_path: Path,
) -> None:
    """Found by review: a stopped pipe alarmed for 24 h with no way to clear it; a manifest with a
    count that is no number made status an internal error, one without a time hid the whole pipe."""

    from pipeline.cli._common import load_config
    from pipeline.ingest import lag

    cfg_path = setup(tmp_path)
    store = tmp_path / "store"
    folder = store / "_manifests" / "pipe-7"
    folder.mkdir(parents=True)
    now = dt.datetime.now(dt.UTC)

    def manifest(seq: int, **fields: object) -> None:
        (folder / f"{seq:012d}.json").write_text(json.dumps(fields))

    manifest(
        1, created=(now - dt.timedelta(minutes=10)).isoformat(), lines=10, rows=0, rejects={"unparseable": 10}
    )
    manifest(
        2, created=(now - dt.timedelta(minutes=5)).isoformat(), lines="12a", rows=None, rejects={"x": "y"}
    )
    manifest(3, lines=5)  # no time
    cfg = load_config(str(cfg_path), None)
    (pipe,) = lag.piped_streams(cfg, now=now)
    assert (pipe.writer, pipe.lines, pipe.rejects) == ("pipe-7", 10, {"unparseable": 10, "x": 0})
    assert pipe.problem is not None and "in the last hour it rejected 10 of 10 lines" in pipe.problem
    assert lag.piped_streams(cfg, now=now + dt.timedelta(hours=1)) == ()
    code, out, err = invoke("status", "--config", str(cfg_path))
    assert code == 11 and "rejects in the last 24 h: unparseable 10" in out and "internal error" not in err
