"""A log file whose name (or directory) holds an IP address: the name is the operator's, but the
promise is "no full address in any byte the tool writes". Manifests, the rejects' ``source``, the
progress state, the audit trail, the deletion records and the metrics show it masked; ingest finds
the file again by a keyed digest of its path, so exactly-once holds as for any other name.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
from collections import Counter
from pathlib import Path

import pytest

from pipeline import config
from pipeline.ingest import lag
from pipeline.ingest import run as ingest
from pipeline.store import layout
from pipeline.store.commit import DEFAULT_WRITER
from tests.cli.test_cli import invoke
from tests.conftest import RECENT_CLF, ingest_paths, make_config, store_rejects, store_rows

SERVER = "203.0.113.77"  # a directory per server address, as some hosting setups name them
NAMES = ("access.log.198.51.100.23", "access.log.2001:db8::17")
SECRETS = ("203.0.113.77", "198.51.100.23", "2001:db8::17", "192.0.2.1")


def line(n: int) -> str:
    return f'192.0.2.{n % 200 + 1} - - [{RECENT_CLF}:13:55:{n % 60:02d} +0000] "GET /l{n} HTTP/1.1" 200 {n}\n'


def needles() -> set[bytes]:
    out = set()
    for s in SECRETS:
        addr = ipaddress.ip_address(s)
        out |= {s.encode(), addr.exploded.encode()}
    return out


def written(root: Path, skip: set[Path]) -> dict[Path, bytes]:
    return {
        f: f.read_bytes() for f in root.rglob("*") if f.is_file() and not any(s in f.parents for s in skip)
    }


def test_an_address_in_a_file_name_reaches_no_byte_the_tool_writes(tmp_path: Path) -> None:
    logs = tmp_path / "logs" / SERVER
    logs.mkdir(parents=True)
    (logs / NAMES[0]).write_text("".join(line(n) for n in range(3)) + "nonsense\n")
    (logs / NAMES[1]).write_text("".join(line(n) for n in range(10, 14)))
    prom = tmp_path / "prom" / "hostlogs.prom"
    prom.parent.mkdir()
    cfg = tmp_path / "hostlogs.toml"
    cfg.write_text(
        f'store = "{tmp_path / "store"}"\nserver = "web-{SERVER}"\n'
        f'[[sources]]\npath = "{logs}/access.log*"\ndomain = "example.test"\n'
        f'[ingest]\nmax_reject_rate = 0.5\n[metrics]\ntextfile = "{prom}"\n'
    )
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    # rotation: the first log renamed, a new one under its name; both read on where they were
    with (logs / NAMES[0]).open("a") as f:
        f.write(line(3))
    os.rename(logs / NAMES[0], logs / f"{NAMES[0]}.1")
    (logs / NAMES[0]).write_text(line(20) + line(21))
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    assert invoke("status", "--config", str(cfg))[0] == 0
    reingest = ("ingest", "--config", str(cfg), "--reingest", str(logs / NAMES[1]), "--case", "C-1")
    code, out, err = invoke(*reingest, "--final", "--quiet", "--reason", f"{NAMES[0]} checked")
    assert code == 0, (out, err)
    assert invoke("ingest", "--config", str(cfg), "--final", "--quiet")[0] == 0
    # the audit trail: an output path and a reason naming addresses, an error naming a file
    (tmp_path / "out" / SERVER).mkdir(parents=True)
    output = tmp_path / "out" / SERVER / "visitor-192.0.2.1.csv"
    export = (
        "export",
        "--config",
        str(cfg),
        "--ip",
        "192.0.2.1",
        "--request",
        "R-1",
        "--output",
        str(output),
    )
    assert invoke(*export, "--reason", "asked by 192.0.2.1")[0] == 0
    gone = str(logs / "access.log.2001:db8::17.1")
    assert invoke("ingest", "--config", str(cfg), "--reingest", gone, "--case", "C-2")[0] != 0

    store = tmp_path / "store"
    got = Counter(str(r["path"]) for r in store_rows(store))
    assert got == Counter(f"/l{n}" for n in (0, 1, 2, 3, 10, 11, 12, 13, 20, 21))  # nothing lost or doubled
    files = written(tmp_path, skip={tmp_path / "logs", tmp_path / "out"})
    files.pop(cfg)  # the operator's own config names the directory
    assert any("manifests" in str(f) for f in files) and prom in files
    assert any(f.name == "audit.jsonl" for f in files) and any(f.name == "progress.json" for f in files)
    for f, data in files.items():
        for needle in needles():
            assert needle not in data, (f, needle)
    # the names are shown masked, where the store shows them at all
    [reject] = store_rejects(store)
    assert reject["source"] == f"{logs.parent}/203.0.113.0/24/access.log.198.51.100.0/24"
    assert f'source="{logs.parent}/203.0.113.0/24/access.log.2001:db8::/48"' in prom.read_text()
    # one label per file name as stored, the same in the counts and the lag series (masked once)
    labels = {
        name: {m for m in re.findall(rf"^{name}{{(.*)}} ", prom.read_text(), re.M)}
        for name in ("hostlogs_ingest_lines_read", "hostlogs_source_lag_bytes")
    }
    assert labels["hostlogs_ingest_lines_read"] == labels["hostlogs_source_lag_bytes"]
    assert len(labels["hostlogs_source_lag_bytes"]) == 2 and "/24/24" not in prom.read_text()


def test_a_dash_or_underscore_joined_address_in_a_name_is_masked_too(tmp_path: Path) -> None:
    """Host names (reverse DNS) and operators' file names join the octets with dashes or underscores."""
    logs = tmp_path / "logs" / "ip-203-0-113-77.ec2.internal"
    logs.mkdir(parents=True)
    log = logs / "access_198_51_100_23.log"
    log.write_text(line(0) + "nonsense\n")
    report = ingest_paths(tmp_path / "store", [log], max_reject_rate=1.0)
    assert report.rows == 1 and sum(report.rejects.values()) == 1
    [reject] = store_rejects(tmp_path / "store")
    assert reject["source"] == f"{tmp_path}/logs/ip-203.0.113.0/24.ec2.internal/access_198.51.100.0/24.log"
    secrets = [f"{a}{sep}{b}{sep}{c}{sep}{d}" for a, b, c, d in ((203, 0, 113, 77), (198, 51, 100, 23))
               for sep in ".-_"]  # fmt: skip
    for f, data in written(tmp_path, skip={tmp_path / "logs"}).items():
        for secret in secrets:
            assert secret.encode() not in data, (f, secret)


@pytest.mark.parametrize("named_by", ["site", "address"])
def test_logs_that_start_identically_stay_apart_whatever_their_names(tmp_path: Path, named_by: str) -> None:
    """Two logs with the same first lines in directories whose names mask to the same text
    (203.0.113.77 and 203.0.113.78 are both 203.0.113.0/24): the second is no rename of the first,
    because ingest tells their files apart by their keyed path digests, not by the masked names."""
    dirs = ("a.example", "b.example") if named_by == "site" else ("203.0.113.77", "203.0.113.78")
    first = "".join(line(n) for n in range(3))  # all of the first log: the second's first bytes
    logs = [tmp_path / d / "access_log" for d in dirs]
    for log, more in zip(logs, ("", line(100) + line(101)), strict=True):
        log.parent.mkdir()
        log.write_text(first + more)
    store = tmp_path / "store"
    assert [s.rows for s in ingest_paths(store, [logs[0]]).sources] == [3]
    assert [s.rows for s in ingest_paths(store, logs).sources] == [0, 5]
    with logs[0].open("a") as f:
        f.write(line(7))
    assert [s.rows for s in ingest_paths(store, logs).sources] == [1, 0]
    assert len(store_rows(store)) == 9


def test_a_state_recorded_with_an_unmasked_name_is_masked_and_still_resumes(tmp_path: Path) -> None:
    """A progress state of a hostlogs that did not mask names: the next run masks it and reads on
    from its offset (the file neither read again nor taken for another)."""
    log = tmp_path / SERVER / "access.log"
    log.parent.mkdir()
    log.write_text("".join(line(n) for n in range(4)))
    store = tmp_path / "store"
    ingest_paths(store, [log])
    state_file = store / layout.progress(DEFAULT_WRITER)
    state = json.loads(state_file.read_text())
    assert state["version"] == 2
    for stream in state["streams"].values():  # as an older hostlogs wrote it
        stream["path"] = str(log)
        stream.pop("path_id")
    state_file.write_text(json.dumps(state | {"version": 1}))
    with log.open("a") as f:
        f.write(line(4))
    assert [s.rows for s in ingest_paths(store, [log]).sources] == [1]
    assert len(store_rows(store)) == 5
    assert SERVER.encode() not in state_file.read_bytes()


@pytest.mark.parametrize("named_by", ["site", "address"])
@pytest.mark.parametrize("run", ["configured", "ad hoc"])
def test_a_run_of_one_file_does_not_take_another_log_for_its_rename(
    tmp_path: Path, named_by: str, run: str
) -> None:
    """``ingest PATH`` (or ``--reingest PATH``) reads one file; a log recorded under a masked name that
    is not among this run's files is still found (a configured source's, or one near its masked name),
    so a file that starts with all of its bytes is no rename of it."""
    dirs = ("a.example", "b.example") if named_by == "site" else ("203.0.113.77", "203.0.113.78")
    first = "".join(line(n) for n in range(3))
    a, b = (tmp_path / "logs" / d / "access_log" for d in dirs)
    for log in (a, b):
        log.parent.mkdir(parents=True)
    a.write_text(first)
    store = tmp_path / "store"
    cfg = make_config(store)
    if run == "configured":
        cfg = cfg.with_overrides(sources=(config.SourceConfig(path=str(a), domain="a.example"),))
    ingest.run(cfg, [config.SourceConfig(path=str(a), domain="a.example")], final=True)
    b.write_text(first + line(100) + line(101))
    [report] = ingest.run(cfg, [config.SourceConfig(path=str(b), domain="b.example")], final=True).sources
    assert (report.start, report.rows) == (0, 5) and "renamed" not in str(report.note)
    with a.open("a") as f:
        f.write(line(7))
    [report] = ingest.run(cfg, [config.SourceConfig(path=str(a), domain="a.example")], final=True).sources
    assert report.rows == 1
    assert Counter((r["domain"], r["path"]) for r in store_rows(store)) == Counter(
        [("a.example", f"/l{n}") for n in (0, 1, 2, 7)]
        + [("b.example", f"/l{n}") for n in (0, 1, 2, 100, 101)]
    )


def test_status_finds_the_last_run_without_the_key_directory(tmp_path: Path) -> None:
    """Another user (the key directory is 0700) or a missing key directory: manifests are matched by
    the name as stored, so status still shows each file's last run."""
    log = tmp_path / SERVER / "access.log"
    log.parent.mkdir()
    log.write_text("".join(line(n) for n in range(4)))
    store = tmp_path / "store"
    spec = config.SourceConfig(path=str(log), domain="example.test")
    cfg = make_config(store).with_overrides(sources=(spec,))
    ingest.run(cfg, None, final=True)
    for key_dir in (cfg.key_dir, str(tmp_path / "no-keys")):
        nokey = cfg.with_overrides(privacy=config.replace(cfg.privacy, key_dir=key_dir))
        [source] = lag.source_lags(nokey)
        [file] = source.files
        assert file.last_run is not None and file.last_run.rows == 4, key_dir


def test_a_file_named_with_brackets_is_that_file_not_a_pattern(tmp_path: Path) -> None:
    """``access.log.[2001:db8::17]`` on the command line (or ``--reingest`` of it) names that file;
    as a glob it would match nothing (exit 10) after the re-ingest took its rows out."""
    log = tmp_path / "access.log.[2001:db8::17]"
    log.write_text("".join(line(n) for n in range(3)))
    store = tmp_path / "store"
    args = ("--store", str(store), "--domain", "example.test", "--final", "--quiet")
    assert invoke("ingest", str(log), *args)[0] == 0
    code, out, err = invoke("ingest", "--reingest", str(log), "--case", "C-1", *args)
    assert code == 0, (out, err)
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/l{n}" for n in range(3))


@pytest.mark.parametrize("where", ["deep", "relative"])
def test_a_log_recorded_under_a_masked_name_is_found_deep_down_or_by_a_relative_name(
    tmp_path: Path, where: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search near a masked name goes as deep as the name does, and starts in the working
    directory for a relative one: a file read once by hand is found, never taken as moved away."""
    first = "".join(line(n) for n in range(3))
    if where == "deep":
        a = tmp_path / "logs" / "203.0.113.77" / "x1" / "x2" / "x3" / "x4" / "access_log"
        b = tmp_path / "logs" / "other" / "access_log"
    else:
        monkeypatch.chdir(tmp_path)
        a, b = Path("203.0.113.77.log"), Path("other") / "access_log"
    for log in (a, b):
        log.parent.mkdir(parents=True, exist_ok=True)
    a.write_text(first)
    store = tmp_path / "store"
    assert ingest_paths(store, [a]).sources[0].rows == 3
    b.write_text(first + line(100) + line(101))
    [report] = ingest_paths(store, [b]).sources
    assert (report.start, report.rows) == (0, 5) and "renamed" not in str(report.note)
    with a.open("a") as f:
        f.write(line(7))
    assert ingest_paths(store, [a]).sources[0].rows == 1
    assert len(store_rows(store)) == 9


def test_a_domain_that_is_an_address_is_masked_in_holds_erasures_and_filters(tmp_path: Path) -> None:
    """A vhost can be an IP literal: the store keeps it masked, so a hold, an erasure or a filter
    naming it must mask it too, to match the rows and to record no address."""
    log = tmp_path / "access.log"
    log.write_text(line(0) + line(1))
    store = str(tmp_path / "store")
    ingest_paths(Path(store), [log], domain="203.0.113.7")
    assert {r["domain"] for r in store_rows(Path(store))} == {"203.0.113.0/24"}
    code, _, err = invoke(
        "hold", "add", "--store", store, "--case", "H-1", "--reason", "r", "--domain", "203.0.113.7"
    )
    assert code == 0, err
    (held,) = Path(store).glob("_holds/*.json")
    assert json.loads(held.read_text())["domain"] == "203.0.113.0/24"  # masked: it matches the rows
    code, out, err = invoke("investigate", "path", "/*", "--store", store, "--case", "C-1", "--domain", "203.0.113.7",
                            "--format", "json")  # fmt: skip
    assert code == 0 and len(json.loads(out)["rows"]) == 2, (out, err)  # a filter masks it too
    # erasure by it is refused: its network may hold other sites' rows (found by review)
    code, out, err = invoke("erase", "--store", store, "--domain", "203.0.113.7", "--request", "R-1")
    assert code == 2 and "holds an IP address" in err, (out, err)
    assert len(store_rows(Path(store))) == 2
    for f, data in written(tmp_path, skip={log}).items():
        for secret in (b"203.0.113.7", b"203-0-113-7"):
            assert secret not in data, (f, secret)
