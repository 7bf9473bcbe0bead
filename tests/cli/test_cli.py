"""The command line: wiring, output, exit codes, help."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.store.commit import Store
from tests.conftest import ROOT

LOG = '203.0.113.5 - - [10/Oct/2026:13:55:36 +0000] "GET /a?token=s3cret HTTP/1.1" 200 12 "-" "curl/8.0"\n'


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def test_ingest_then_query(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(LOG * 3 + "nonsense\n")
    store = str(tmp_path / "store")
    code, out, _ = invoke("ingest", str(log), "--store", store, "--domain", "example.com", "--final")
    assert code == 0
    assert "4 lines → 3 rows, 1 rejected [combined] (auto-detected combined, 3/4 sample lines)" in out
    assert "rejected by reason: unparseable 1" in out and "partitions: 2026-10-10" in out
    code, out, _ = invoke(
        "query",
        "--store",
        store,
        "--case",
        "TEST-1",
        "--format",
        "csv",
        "SELECT domain, path, query, client_net FROM pageviews LIMIT 1",
    )
    assert (code, out.strip()) == (
        0,
        "domain,path,query,client_net\nexample.com,/a,token=REDACTED,203.0.113.0/24",
    )
    code, out, _ = invoke(
        "query", "--store", store, "--case", "TEST-1", "--format", "json", "SELECT count(*) AS n FROM rejects"
    )
    assert json.loads(out) == [{"n": 1}]  # one JSON document, as --json everywhere


def test_ingest_json_report(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(LOG)
    code, out, _ = invoke(
        "ingest", str(log), "--store", str(tmp_path / "s"), "--json", "--final", "--format", "combined"
    )
    data = json.loads(out)
    assert code == 0 and data["rows"] == 1 and data["sources"][0]["format"] == "combined"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["ingest", "x.log", "--format", "%h %Z"], 5, "unsupported LogFormat directive %Z"),
        (["ingest", "x.log", "--format", "nginx"], 5, "unknown log format 'nginx'"),
        (["ingest", "--config", "/nonexistent.toml"], 3, "config file /nonexistent.toml not found"),
        (["ingest"], 4, "no sources"),
        (["query", "--store", "/nonexistent-store", "SELECT 1"], 6, "no store at /nonexistent-store"),
        (["ingest", "x.log", "--wait", "-1"], 2, "invalid value for '--wait'"),
        (["ingest", "x.log", "--bogus"], 2, "no such option '--bogus' (see 'hostlogs ingest --help')"),
        (["query"], 2, "missing argument 'SQL'"),
        (["no-such-command"], 2, "no such command 'no-such-command'"),
        (["ingest", "*/x.log", "--olddir", "/var/old"], 3, "olddir '/var/old' is absolute but"),
        (["ingest", "x.log", "--olddir", "../old"], 3, "olddir must be a directory without '..'"),
    ],
)
def test_errors_are_one_line_with_documented_codes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], code: int, message: str
) -> None:
    (tmp_path / "x.log").write_text(LOG)
    monkeypatch.chdir(tmp_path)  # x.log and ./hostlogs-store resolve inside the test directory
    result = CliRunner().invoke(main, args)
    assert result.exit_code == code, result.output
    assert message in result.stderr
    # one line, click's usage errors too (cron mails and log collectors read it)
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("hostlogs: error: ")


def test_a_directory_as_source_says_how_to_name_its_logs(tmp_path: Path) -> None:
    (tmp_path / "logs").mkdir()
    code, _, err = invoke("ingest", str(tmp_path / "logs"), "--store", str(tmp_path / "s"))
    assert code == 10 and f"it is a directory; name the log files or a glob such as '{tmp_path}/logs/" in err


@pytest.mark.parametrize(("workers", "preset"), [(2, None), (1, None), (2, "3")])
def test_ingest_leaves_polars_the_cores_its_workers_do_not_use(
    tmp_path: Path, workers: int, preset: str | None
) -> None:
    """polars' pool is sized before polars loads: the cores minus the ingest workers (at least one),
    unless the operator set POLARS_MAX_THREADS. Measured in a real ``hostlogs ingest`` process."""
    import os

    log = tmp_path / "a.log"
    log.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    code = (
        "from pipeline.cli import main\n"
        f"try:\n    main(['ingest', {str(log)!r}, '--quiet', '--store', {str(tmp_path / 's')!r}])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "import gc, os, polars, sys\n"
        "thp = [ln.split()[1] for ln in open('/proc/self/status') if ln.startswith('THP_enabled')]\n"
        "print(thp[0] if thp else 'none', gc.get_freeze_count() > 0)\n"
        "print(os.environ['MIMALLOC_PURGE_DELAY'], os.environ['OPENBLAS_NUM_THREADS'])\n"
        "print(polars.thread_pool_size())"
    )
    env = {k: v for k, v in os.environ.items() if k != "POLARS_MAX_THREADS"}
    env |= {"HOSTLOGS_INGEST_WORKERS": str(workers)} | ({"POLARS_MAX_THREADS": preset} if preset else {})
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT, env=env
    )
    expected = int(preset) if preset else max(1, len(os.sched_getaffinity(0)) - workers)
    assert int(out.stdout.split()[-1]) == expected
    # arrow's allocator keeps freed memory (no page faults per batch); no spinning BLAS threads
    assert out.stdout.split()[-3:-1] == ["-1", "1"]
    # no transparent huge pages (2 MB zeroed per first touch; "none": a kernel that does not say),
    # the imports' objects frozen
    thp, frozen = out.stdout.split()[-5:-3]
    assert thp in ("0", "none") and frozen == "True"


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("store = 's'\n[privacy]\nipv4_prefix = 40\n", "privacy.ipv4_prefix must be 1-31, got 40"),
        (
            "[privacy]\nipv4_prefix = 32\n",
            "privacy.ipv4_prefix must be 1-31, got 32 (it would store full client",
        ),
        ("[privacy]\nipv6_prefix = 128\n", "privacy.ipv6_prefix must be 1-127, got 128 (it would store full"),
        ("[privacy]\nipv4_prefix = 0\n", "privacy.ipv4_prefix must be 1-31, got 0"),
        ("[privacy]\nipv6_prefix = 0\n", "privacy.ipv6_prefix must be 1-127, got 0"),
        ("[privacy]\nipv6_bits = 40\n", "unknown setting 'ipv6_bits'"),
        ("[[sources]]\nformat = 'combined'\n", "each source needs a path"),
        ("[ingest]\nworkers = 'many'\n", "[ingest].workers: invalid value 'many'"),
        ("not toml = = 1", "is not valid TOML"),
        ("[store]\npath = 's'\n", "store must be a path (text), got {'path': 's'}"),
        ("store = ''\n", "store must be a path (text), got ''"),
    ],
)
def test_bad_config_exit_3(tmp_path: Path, toml: str, message: str) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml)
    code, _, err = invoke("ingest", "--config", str(cfg))
    assert code == 3 and message in err and err.count("\n") == 1


def test_overlapping_run_exits_75(tmp_path: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(LOG)
    store = Store(tmp_path / "store")
    with store.lock():
        code, _, err = invoke("ingest", str(log), "--store", str(store.root))
    assert code == 75 and "another hostlogs ingest is running" in err


def test_partial_failure_exit_10(tmp_path: Path) -> None:
    (tmp_path / "ok.log").write_text(LOG)
    code, out, err = invoke(
        "ingest",
        str(tmp_path / "ok.log"),
        str(tmp_path / "gone.log"),
        "--store",
        str(tmp_path / "s"),
        "--final",
    )
    assert code == 10 and "1 lines → 1 rows" in out and "gone.log" in err


def test_every_command_has_help_with_an_example() -> None:
    from pipeline.cli._common import COMMAND_MODULES  # every command, loaded or not yet

    for name in COMMAND_MODULES:
        code, out, _ = invoke(name, "--help")
        assert code == 0 and "Example:" in out, name


def test_readme_starts_with_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    head = readme[: readme.index("\n## ", 1)]
    assert "bash scripts/demo.sh" in head and "bash scripts/test.sh" in head
    assert "bash scripts/test.sh" in (ROOT / ".ci" / "run").read_text()


def test_stdin_is_detected_and_ingested(tmp_path: Path) -> None:
    data = (ROOT / "sample_logs" / "other_vhosts_access.log").read_bytes()[:200_000]
    data = data[: data.rfind(b"\n") + 1]
    result = CliRunner().invoke(main, ["ingest", "-", "--store", str(tmp_path / "s"), "--json"], input=data)
    report = json.loads(result.stdout)
    assert result.exit_code == 0 and report["sources"][0]["format"] == "vhost_combined"
    assert report["lines"] == data.count(b"\n") == report["rows"] + sum(report["rejects"].values())


def test_lazy_command_table_matches_the_commands() -> None:
    """Every command is reachable through the lazy table, and the table names no missing command."""
    import importlib

    from pipeline.cli._common import COMMAND_MODULES

    for module in set(COMMAND_MODULES.values()):
        importlib.import_module(f"pipeline.cli.{module}")
    assert set(main.commands) == set(COMMAND_MODULES)


def test_ingest_does_not_load_the_query_engine() -> None:
    """A cron ingest starts without importing DuckDB or the investigation code."""
    import subprocess
    import sys

    code = (
        "import sys; from pipeline.cli import main\n"
        "try:\n    main(['ingest', '--help'])\nexcept SystemExit:\n    pass\n"
        "print(sorted(m for m in ('duckdb', 'pipeline.investigate', 'pipeline.lifecycle') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip().splitlines()[-1] == "[]"


def test_an_ingest_in_a_callers_process_leaves_its_collector_and_huge_pages_alone(tmp_path: Path) -> None:
    """Freezing the collector and turning huge pages off are for ingest's own process: in a caller's
    (these tests, a program that runs the CLI in-process) frozen garbage would never be collected."""
    import gc

    import polars  # noqa: F401  (the caller has loaded the libraries already)

    def thp() -> list[str]:
        return [ln for ln in Path("/proc/self/status").read_text().splitlines() if ln.startswith("THP")]

    log = tmp_path / "a.log"
    log.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    frozen, huge = gc.get_freeze_count(), thp()
    code, _, err = invoke("ingest", str(log), "--quiet", "--store", str(tmp_path / "s"))
    assert code == 0, err
    assert (gc.get_freeze_count(), thp()) == (frozen, huge)


def test_ingest_without_geoip_databases_does_not_load_the_geoip_reader(tmp_path: Path) -> None:
    """maxminddb (35 ms of every start) is loaded only when a database is configured."""
    import subprocess
    import sys

    log = tmp_path / "a.log"
    log.write_text('192.0.2.1 - - [01/Mar/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    code = (
        "import sys; from pipeline.cli import main\n"
        f"try:\n    main(['ingest', {str(log)!r}, '--quiet', '--store', {str(tmp_path / 's')!r}])\n"
        "except SystemExit as e:\n    assert not e.code, e.code\n"
        "print('maxminddb' in sys.modules, 'pipeline.privacy.geo' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split()[-2:] == ["False", "True"]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        # the same rules as --format on the command line (the format registry), but a broken config
        # file is a config error for every command: exit 3, naming the file and the entry
        ("[[sources]]\npath = 'x.log'\nformat = 'nginx'\n", "c.toml: sources[0]: unknown log format 'nginx'"),
        (
            "[[sources]]\npath = 'x.log'\nformat = '%h %Z'\n",
            "c.toml: sources[0]: unsupported LogFormat directive %Z",
        ),
        (
            "[[sources]]\npath = 'x.log'\nolddir = '../old'\n",
            "c.toml: sources[0]: olddir must be a directory without '..'",
        ),
        (
            "[[sources]]\npath = '*/x.log'\nolddir = '/var/old'\n",
            "c.toml: sources[0]: olddir '/var/old' is absolute but",
        ),
    ],
)
@pytest.mark.parametrize(
    "command",
    [["ingest"], ["ingest", "x.log"], ["ingest", "-"], ["query", "SELECT 1", "--case", "C-1"], ["purge", "--dry-run"],
     ["verify"], ["hold", "list"]],
)  # fmt: skip
def test_config_sources_meet_the_command_line_rules(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, toml: str, message: str, command: list[str]
) -> None:
    (tmp_path / "x.log").write_text(LOG)
    (tmp_path / "c.toml").write_text(toml)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, [*command, "--config", "c.toml", "--store", "s"], input=LOG)
    assert result.exit_code == 3 and message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "s").exists()  # refused before anything was written


@pytest.mark.parametrize(
    "args",
    [
        ["purge", "--as-of", "2026-02-30"],
        ["compact", "--date", "yesterday"],
        ["purge", "--as-of", "2026-W01-1"],
        ["hold", "add", "--case", "C-1", "--reason", "r", "--from", "2026-1-5x"],
        ["erase", "--domain", "a.example", "--request", "R-1", "--to", "20260105"],
        ["export", "--domain", "a.example", "--output", "x.csv", "--request", "R-1", "--from", "x"],
        ["keys", "destroy", "--before", "2026-13-01", "--case", "C-1"],
        ["investigate", "domain", "a.example", "--case", "C-1", "--from", "2026/01/05"],
    ],
)
def test_every_date_option_is_the_one_date_type(tmp_path: Path, args: list[str]) -> None:
    code, _, err = invoke(*args, "--store", str(tmp_path / "s"))
    assert code == 2 and "is not a date (YYYY-MM-DD)" in err


def test_errors_reach_stderr_and_exit_codes_only_through_the_one_mapping() -> None:
    """No module prints its own error line or exits by itself: cli/_common.py maps errors to codes."""
    import ast

    found = []
    for path in sorted((ROOT / "pipeline").rglob("*.py")):
        if path == ROOT / "pipeline" / "cli" / "_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            where = f"{path.relative_to(ROOT)}:{getattr(node, 'lineno', 0)}"
            if (
                isinstance(node, ast.Attribute)
                and node.attr in ("exit", "_exit")
                and isinstance(node.value, ast.Name)
                and node.value.id in ("sys", "os", "ctx")
            ):
                found.append(f"{where}: {node.value.id}.{node.attr}")
            elif isinstance(node, ast.Name) and node.id == "SystemExit":
                found.append(f"{where}: SystemExit")
            elif isinstance(node, ast.keyword) and node.arg == "err":
                found.append(f"{where}: output to stderr (use _common.notice/warn/echo_error)")
    assert found == []


def test_shared_options_are_defined_once() -> None:
    """--config, --store, --from, --to and --json come from cli/_common (store_options, date_range,
    json_option): one help text, one parameter name, one type everywhere."""
    import ast

    shared = {"--config", "--store", "--from", "--to", "--json"}
    found = []
    for path in sorted((ROOT / "pipeline" / "cli").glob("*.py")):
        if path.name == "_common.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "option"
            ):
                names = {a.value for a in node.args if isinstance(a, ast.Constant)}
                found += [f"{path.name}:{node.lineno}: {n}" for n in sorted(names & shared)]
    assert found == []


@pytest.mark.parametrize(
    "command",
    [
        ["query", "SELECT * FROM pageviews", "--case", "C-1"],
        ["investigate", "domain", "example.com", "--case", "C-1"],
        ["investigate", "report", "--case", "C-1"],
        ["export", "--domain", "example.com", "--request", "R-1"],
    ],
)
@pytest.mark.parametrize(
    "target",
    ["_audit/head.json", "_audit/audit.jsonl", "evidence.csv", "pageviews/date=2026-10-10/out.parquet"],
)
def test_an_output_file_is_never_written_into_the_store(
    tmp_path: Path, command: list[str], target: str
) -> None:
    """--output inside the store (directly, or through a symlink) is refused: it could overwrite evidence."""
    log = tmp_path / "access.log"
    log.write_text(LOG * 3)
    store = tmp_path / "store"
    assert invoke("ingest", str(log), "--store", str(store), "--domain", "example.com", "--final")[0] == 0
    (tmp_path / "link").symlink_to(store)
    before = {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and "_audit" not in p.parts}
    for output in (store / target, tmp_path / "link" / target):
        code, _, err = invoke(*command, "--store", str(store), "--output", str(output))
        assert code == 2 and "is inside the store" in err, err
    assert {p: p.read_bytes() for p in store.rglob("*") if p.is_file() and "_audit" not in p.parts} == before
    assert not (store / "evidence.csv").exists()
    assert invoke("audit", "verify", "--store", str(store))[0] == 0
    keys = tmp_path / "store-keys"  # nor into the key directory: a planted known key undoes pseudonyms
    held = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    for output in (keys / "2026-12.key", keys / "custody" / "2026-10.key", tmp_path / "link-keys" / "x.key"):
        (tmp_path / "link-keys").unlink(missing_ok=True)
        (tmp_path / "link-keys").symlink_to(keys)
        code, _, err = invoke(*command, "--store", str(store), "--output", str(output))
        assert code == 2 and "is inside a key directory" in err, err
    assert {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()} == held


@pytest.mark.parametrize(
    "command",
    [
        ["query", "--case", "C-1", "--format", "jsonl", "SELECT 'H-9' AS \"case\""],
        ["investigate", "path", "/x", "--case", "C-1"],
        ["export", "--domain", "example.com", "--request", "R-1"],
    ],
)
def test_an_output_file_is_never_written_into_another_store_or_key_directory(
    tmp_path: Path, command: list[str]
) -> None:
    """Found by review: the guard knew only the store and key directory of this run, so a query of
    one store forged a hold release in another's ``_holds``, and a key landed in the key directory
    a config names when the command had only --store."""
    log = tmp_path / "access.log"
    log.write_text(LOG)
    store, other = tmp_path / "store", tmp_path / "other"
    for s in (store, other):
        assert invoke("ingest", str(log), "--store", str(s), "--domain", "example.com", "--final")[0] == 0
    assert invoke("hold", "add", "--store", str(other), "--case", "H-9", "--reason", "breach")[0] == 0
    (hold_file,) = (other / "_holds").iterdir()
    keys = tmp_path / "elsewhere-keys"
    keys.mkdir()
    (keys / "2026-10.key").write_bytes(bytes(32))
    before = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "_audit" not in p.parts}
    for output, says in [
        (hold_file, "inside a hostlogs store at"),
        (other / "new-folder-file.csv", "inside a hostlogs store at"),
        (keys / "notes.csv", "inside a key directory"),
        (tmp_path / "fresh-keys" / "2026-12.key", "a key directory would read"),
        (tmp_path / "2026-10.destroyed", "a key directory would read"),
    ]:
        output.parent.mkdir(exist_ok=True)
        code, _, err = invoke(*command, "--store", str(store), "--output", str(output))
        assert code == 2 and says in err, (output, err)
    after = {p: p.read_bytes() for p in tmp_path.rglob("*") if p.is_file() and "_audit" not in p.parts}
    assert after == before
    code, _, err = invoke(*command, "--store", str(store), "--output", str(tmp_path / "result.out"))
    assert code == 0 and (tmp_path / "result.out").is_file(), err  # beside the stores: fine
    (tmp_path / "tls").mkdir()  # ordinary folders stay writable (found by review): TLS keys, a _state
    (tmp_path / "tls" / "server.key").write_text("-----BEGIN PRIVATE KEY-----")
    (tmp_path / "home" / "_state").mkdir(parents=True)
    for output in (tmp_path / "tls" / "r.out", tmp_path / "home" / "r.out", tmp_path / "home" / "talk.key"):
        code, _, err = invoke(*command, "--store", str(store), "--output", str(output))
        assert code == 0 and output.is_file(), (output, err)


def test_an_output_name_swapped_for_a_link_while_written_never_writes_through_it(tmp_path: Path) -> None:
    """Found by review: the check of the path and the write by the path left a window, and a link
    swapped in between (in a loop) wrote a forged audit head into the store. Now the folder is
    checked as opened and the file renamed over the name: a link there is replaced, not followed."""
    from pipeline.store.commit import Store
    from pipeline.store.output import write_outside

    store = tmp_path / "store"
    (store / "_audit").mkdir(parents=True)
    (store / "_audit" / "head.json").write_text("evidence")
    out = tmp_path / "out.csv"
    out.write_text("old result")

    def fill(f: Any) -> int:  # the investigator's swap, after the check and before the write ends
        out.unlink()
        out.symlink_to(store / "_audit" / "head.json")
        return f.write(b"forged")

    assert write_outside(out, fill, store=Store(store), key_dir=str(tmp_path / "keys")) == 6
    assert (store / "_audit" / "head.json").read_text() == "evidence"
    assert not out.is_symlink() and out.read_text() == "forged"
    folder = tmp_path / "results"
    folder.mkdir()

    def swap_folder(f: Any) -> int:  # the folder swapped for a link into the store: the same
        folder.rename(tmp_path / "results.old")
        folder.symlink_to(store / "_audit")
        return f.write(b"forged")

    write_outside(folder / "head.json", swap_folder, store=Store(store), key_dir=str(tmp_path / "keys"))
    assert (store / "_audit" / "head.json").read_text() == "evidence"
    assert (tmp_path / "results.old" / "head.json").read_text() == "forged"


def test_a_source_that_matches_nothing_is_never_silent(tmp_path: Path) -> None:
    """A glob that matches nothing fails the run (exit 10) naming it, also under --quiet; the good
    sources of the same run are committed."""
    missing = str(tmp_path / "nosuch" / "access*.log")
    store = str(tmp_path / "s")
    code, out, err = invoke("ingest", missing, "--quiet", "--store", store)
    assert code == 10 and out == "" and f"no file matches {missing}" in err
    log = tmp_path / "access.log"
    log.write_text(LOG * 2)
    code, _, err = invoke("ingest", missing, str(log), "--quiet", "--store", store, "--final")
    assert code == 10 and f"no file matches {missing}" in err
    assert invoke(
        "query", "--store", store, "--case", "C-1", "--format", "csv", "SELECT count(*) AS n FROM pageviews"
    )[1].split() == ["n", "2"]


def test_no_arguments_show_the_help_and_errors_name_the_command(tmp_path: Path) -> None:
    r = CliRunner().invoke(main, [])
    assert "Usage: " in r.output and "Commands:" in r.output  # the help itself, not squashed into an error
    r = CliRunner().invoke(main, ["keys"])
    assert "Usage: " in r.output and "Commands:" in r.output
    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "audit", "list", "--bogus"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert proc.returncode == 2
    assert proc.stderr == "hostlogs: error: no such option '--bogus' (see 'hostlogs audit list --help')\n"


@pytest.mark.parametrize(
    "args",
    [
        ("ingest", "-", "--flush-seconds", "nan"),
        ("ingest", "-", "--flush-seconds", "inf"),
        ("ingest", "-", "--wait", "nan"),
        ("status", "--max-lag-mb", "nan"),
        ("status", "--max-lag-mb", "1e400"),
        ("purge", "--wait", "nan"),
    ],
)
def test_a_number_that_is_no_finite_number_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    code, out, err = invoke(*args, "--store", str(tmp_path / "store"))
    assert code == 2 and "is not a finite number" in err and "Traceback" not in err + out, (out, err)


@pytest.mark.parametrize(
    "args",
    [
        ("status", "--max-lag-mb", "1e308"),
        ("compact", "--target-mb", "1e308"),
        ("ingest", "-", "--flush-seconds", "1.7e308"),
        ("purge", "--wait", "-1e300"),
    ],
)
def test_a_number_too_large_to_mean_anything_is_a_usage_error(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Found by review: 1e308 MB in bytes is infinity, an internal error (exit 1) where it became an int."""
    code, out, err = invoke(*args, "--store", str(tmp_path / "store"))
    assert code == 2 and "Traceback" not in err + out and len(err.splitlines()) == 1, (out, err)
    assert "too large" in err or "not in the range" in err, err


@pytest.mark.parametrize("where", ["a-file", "a-file/below"])
def test_a_store_path_that_cannot_be_one_leaves_nothing_beside_it(tmp_path: Path, where: str) -> None:
    """Found by review: ingest made ``<store>-keys`` before it found that a file stands at --store."""
    (tmp_path / "a-file").write_text("not a store")
    log = tmp_path / "access.log"
    log.write_text(LOG)
    code, out, err = invoke("ingest", str(log), "--store", str(tmp_path / where), "--domain", "example.com")
    assert code == 6 and len(err.splitlines()) == 1, (out, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file", "access.log"]


def test_a_config_file_that_is_no_utf8_is_a_config_error(tmp_path: Path) -> None:
    cfg = tmp_path / "w.toml"
    cfg.write_bytes(b"\xff\xfe garbage")
    code, out, err = invoke("config", "check", "--config", str(cfg))
    assert code == 3 and "is not valid TOML" in err and len(err.strip().splitlines()) == 1, (out, err)


@pytest.mark.parametrize("template", ["/var/www/{domain}/{domain}.log", "/var/www/site/access.log"])
def test_a_domain_template_needs_one_domain_placeholder(tmp_path: Path, template: str) -> None:
    # Found by an operator pass: {domain} twice was an internal error (a regex group defined twice).
    code, out, err = invoke("ingest", "--domain-from-path", template, "--store", str(tmp_path / "s"))
    assert code == 2 and "must contain {domain} once" in err and len(err.splitlines()) == 1, (out, err)
    assert not (tmp_path / "s").exists()


def test_every_date_range_takes_the_ends_of_the_calendar(tmp_path: Path) -> None:
    # Found by an operator pass: `investigate … --to 9999-12-31` (all of time) was exit 1: the day
    # after the last one overflowed. Every command with --from/--to takes both ends.
    log, store = tmp_path / "a.log", str(tmp_path / "store")
    log.write_text(LOG)
    assert invoke("ingest", str(log), "--store", store, "--domain", "x.example", "--final", "-q")[0] == 0
    ends = ("--from", "0001-01-01", "--to", "9999-12-31", "--store", store, "--case", "C-1")
    for command in (
        ("investigate", "ip", "203.0.113.5"), ("investigate", "net", "203.0.113.0/24"),
        ("investigate", "path", "/a"), ("investigate", "domain", "x.example"), ("investigate", "timeline"),
        ("investigate", "ua", "curl"), ("investigate", "attacks"),
        ("investigate", "report", "--output", str(tmp_path / "r.html")),
        ("export", "--domain", "x.example", "--output", str(tmp_path / "e.csv")),
        ("erase", "--domain", "x.example", "--dry-run"),
        ("hold", "add", "--domain", "x.example", "--reason", "litigation"),
    ):  # fmt: skip
        code, out, err = invoke(*command, *ends)
        assert code == 0, (command, out, err)
    found = json.loads(invoke("investigate", "ip", "203.0.113.5", *ends, "--json")[1])
    assert found["facts"]["exact requests"] == "1"  # the row is inside all of time


def test_text_that_no_row_or_path_can_hold_is_refused_with_its_exit_code(tmp_path: Path) -> None:
    # Found by review: these were exit 1 "internal error", or stored a garbled domain, or made a
    # store whose healthy files `verify` then reported as altered.
    log, store = tmp_path / "a.log", str(tmp_path / "s")
    log.write_text(LOG)
    for args, code, message in (
        (["--server", "w\udcff"], 2, "is not UTF-8 text"),
        (["--domain", "x\udcff.example"], 2, "is not UTF-8 text"),
        (["--domain", "x\ud800.example"], 2, "is not UTF-8 text"),  # no byte gives it: was exit 1
        (["--domain", "x\x00.example"], 2, "a NUL character is no text"),
    ):
        got, out, err = invoke("ingest", str(log), "--store", store, "-q", *args)
        assert (got, message in err) == (code, True), (args, out, err)
    got, _, err = invoke("ingest", str(log), "--store", str(tmp_path / "X\udcff"), "--domain", "x.example")
    assert got == 3 and "store must be UTF-8 text, got b'" in err
    cfg = tmp_path / "n.toml"
    cfg.write_text('store = "s\\u0000x"\n')
    got, _, err = invoke("config", "check", "--config", str(cfg))
    assert got == 3 and "store holds a NUL character" in err
    cfg.write_text('store = "s"\n[retention]\ndomains = { "a\\u0000b.example" = "1y" }\n')
    got, _, err = invoke("config", "check", "--config", str(cfg))
    assert got == 3 and "retention.domains holds a NUL character" in err
    got, _, err = invoke(
        "ingest", str(tmp_path / "gone\udcff.log"), "--store", store, "--domain", "x.example"
    )
    assert got == 10 and "No such file" in err  # a missing file named in other bytes: exit 10, not 1
    assert not (tmp_path / "s").exists() or invoke("verify", "--store", store)[0] == 0


def test_an_output_file_that_was_there_keeps_its_mode_and_one_in_a_read_only_folder_is_refused(
    tmp_path: Path,
) -> None:
    """Found by review of the rename: a result file made 0600 beforehand came out 0644. A file in a
    folder the user may not add to is refused, never written in place: a hard link to a store file
    put there would have been written through (found by review of a first fix that wrote it)."""
    import os

    from tests.conftest import as_another_user

    log = tmp_path / "access.log"
    log.write_text(LOG * 3)
    store = tmp_path / "store"
    assert invoke("ingest", str(log), "--store", str(store), "--domain", "example.com", "--final")[0] == 0
    secret = tmp_path / "secret.csv"
    secret.write_text("")
    secret.chmod(0o600)
    query = ("query", "--store", str(store), "--case", "C-1", "SELECT count(*) AS n FROM pageviews")
    assert invoke(*query, "--output", str(secret))[0] == 0
    assert secret.read_text().split() == ["n", "3"] and (secret.stat().st_mode & 0o777) == 0o600
    folder = tmp_path / "ro"
    folder.mkdir()
    (folder / "out.csv").write_text("old")
    (folder / "out.csv").chmod(0o666)
    folder.chmod(0o555)
    store.chmod(0o777)
    for p in store.rglob("*"):  # (the other user reads the store and appends to its audit trail)
        p.chmod(0o777 if p.is_dir() else 0o666)
    args = ("-m", "pipeline.cli", *query, "--output", str(folder / "out.csv"))
    done = as_another_user(*args)
    assert done.returncode == 2 and "Permission denied" in done.stderr, done.stderr
    assert (folder / "out.csv").read_text() == "old" and os.listdir(folder) == ["out.csv"]
