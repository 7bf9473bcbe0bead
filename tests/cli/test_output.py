"""One output convention (--json everywhere, --output writes only the file, identifiers never cut),
progress callbacks and bars, the CLI reference, `investigate timeline` and `export --ip` (#14)."""

from __future__ import annotations

import csv
import json
import os
import pty
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from pipeline import config
from pipeline.cli import main
from pipeline.ingest import run as ingest
from pipeline.investigate import investigations, render
from pipeline.investigate.result import QueryResult
from pipeline.investigate.scope import Scope
from pipeline.lifecycle.compact import compact
from pipeline.lifecycle.export import export
from tests.conftest import RECENT_CLF, ROOT

VISITOR, OTHER = "203.0.113.7", "198.51.100.9"  # documentation ranges only
CASE = "INC-OUT-1"


def _line(ip: str, day: int, hour: int, path: str) -> str:
    return f'{ip} - - [{day:02d}/Oct/2026:{hour:02d}:00:00 +0000] "GET {path} HTTP/1.1" 200 10 "-" "curl/8"\n'


LOG = "".join(
    [_line(VISITOR, d, h, "/wp-login.php") for d in (10, 11) for h in (1, 2)]
    + [_line(OTHER, d, h, "/index.html") for d in (10, 11) for h in (1, 3, 5)]
)


def invoke(*args: str, input: str | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), input=input)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("out")
    log = tmp / "access.log"
    log.write_text(LOG)
    s = tmp / "store"
    code, _, err = invoke("ingest", str(log), "--store", str(s), "--domain", "example.com", "--final", "-q")
    assert code == 0, err
    code, _, err = invoke("query", "--store", str(s), "--case", CASE, "SELECT 1")  # an audit entry
    assert code == 0, err
    return s


def _cfg(store: Path) -> config.Config:
    return config.load(None).with_overrides(store=str(store))


# --- --json: one document on stdout, everywhere ----------------------------------------------------


def _commands(
    cmd: click.Command, name: str, ctx: click.Context | None = None
) -> Iterator[tuple[str, click.Command]]:
    ctx = click.Context(cmd, info_name=name, parent=ctx)
    yield ctx.command_path.removeprefix("hostlogs").strip(), cmd
    if isinstance(cmd, click.Group):
        for sub in cmd.list_commands(ctx):
            child = cmd.get_command(ctx, sub)
            assert child is not None
            yield from _commands(child, sub, ctx)


def _has_json(cmd: click.Command) -> bool:
    return any("--json" in p.opts for p in cmd.params)


# command → (its arguments after --store S, the keys its JSON document has)
JSON_SHAPES: dict[str, tuple[list[str], set[str] | type]] = {
    "query": (["--case", CASE, "SELECT domain, count(*) AS n FROM pageviews GROUP BY 1"], list),
    "audit list": (["--case", CASE], list),
    "audit verify": ([], {"entries", "ok", "head_hash", "problem"}),
    "investigate ip": ([VISITOR, "--case", CASE], {"investigation", "case", "facts", "tables", "rows"}),
    "investigate net": (["203.0.113.0/24", "--case", CASE], {"investigation", "case", "rows"}),
    "investigate path": (["/wp-*", "--case", CASE], {"investigation", "rows", "tables"}),
    "investigate domain": (["example.com", "--case", CASE], {"investigation", "rows", "tables"}),
    "investigate timeline": (["--case", CASE, "--by", "day"], {"investigation", "rows", "tables", "facts"}),
    "investigate ua": (["curl", "--case", CASE], {"investigation", "rows"}),
    "investigate attacks": (["--case", CASE], {"investigation", "rows", "tables"}),
    "keys list": ([], list),
    "hold list": ([], list),
    "verify": ([], {"store", "problems", "files_checked"}),
    "purge": (["--dry-run"], {"store", "policy", "rows_deleted", "dry_run"}),
    "compact": (["--dry-run"], {"store", "days", "days_unchanged", "dry_run"}),
    "erase": (
        ["--domain", "nosuch.example", "--dry-run", "--request", "DSR-1"],
        {"rows_deleted", "partitions"},
    ),
}
# need their own set-up (a log file, an output file, a case placed first): tested elsewhere
ELSEWHERE = {"ingest", "keys prove", "keys destroy", "hold add", "hold release", "export",
             "investigate report", "status", "config check"}  # fmt: skip


def test_every_command_that_prints_a_report_has_json() -> None:
    everything = dict(_commands(main, "hostlogs"))
    leaves = {n: c for n, c in everything.items() if not isinstance(c, click.Group)}
    without = sorted(n for n, c in leaves.items() if not _has_json(c))
    assert without == ["shell"]  # interactive: its statements print tables as they go
    with_json = {n for n, c in leaves.items() if _has_json(c)}
    assert with_json - set(JSON_SHAPES) - ELSEWHERE == set(), "add the command's JSON shape here"


@pytest.mark.parametrize("command", sorted(JSON_SHAPES))
def test_json_is_one_document_with_the_reports_keys(store: Path, command: str) -> None:
    args, shape = JSON_SHAPES[command]
    code, out, err = invoke(*command.split(), "--store", str(store), *args, "--json")
    assert code == 0, err
    data = json.loads(out)  # the whole of stdout is one JSON document
    if shape is list:
        assert isinstance(data, list)
    else:
        assert isinstance(shape, set) and shape <= set(data)
    assert (VISITOR not in out and OTHER not in out) or command == "investigate ip"  # ip echoes its argument


def test_format_json_means_json(store: Path) -> None:
    sql = "SELECT count(*) AS n FROM pageviews"
    a = invoke("query", "--store", str(store), "--case", CASE, sql, "--json")
    b = invoke("query", "--store", str(store), "--case", CASE, sql, "--format", "json")
    assert a == b and json.loads(a[1]) == [{"n": 10}]
    code, out, _ = invoke("query", "--store", str(store), "--case", CASE, sql, "--format", "jsonl")
    assert (code, out) == (0, '{"n": 10}\n')
    code, _, err = invoke("query", "--store", str(store), "--case", CASE, sql, "--json", "--format", "csv")
    assert code == 2 and "disagree" in err


# --- identifiers are never cut ---------------------------------------------------------------------


def test_tables_never_cut_identifiers() -> None:
    digest = "9f" * 32
    result = QueryResult(
        ["hash", "client_id", "case", "what"],
        [
            (
                digest,
                1234567890123456789,
                "jira:SEC/17#2-" + "x" * 50,
                "SELECT " + "a, " * 60 + str(98765432101),
            )
        ],
    )
    out = render.table(result, max_width=40, width=80)
    assert digest in out and "1234567890123456789" in out and "jira:SEC/17#2-" + "x" * 50 in out
    what = out.splitlines()[2].split()[-1]
    assert what.endswith("…") and "9876543" not in out  # free text cut at a word: no half number


def test_audit_list_table_shows_whole_entries(store: Path) -> None:
    code, out, _ = invoke("audit", "list", "--store", str(store))
    assert code == 0
    entries = json.loads(invoke("audit", "list", "--store", str(store), "--json")[1])
    for e in entries:
        for pseudonym in (e.get("params") or {}).get("pseudonyms", {}).values():
            assert str(pseudonym) in out


# --- --output writes the file only -----------------------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [
        ["query", "--case", CASE, "SELECT * FROM pageviews"],
        ["investigate", "path", "/wp-*", "--case", CASE],
        ["investigate", "timeline", "--case", CASE],
        ["investigate", "report", "--case", CASE],
        ["export", "--domain", "example.com", "--request", "DSR-2"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_output_writes_only_the_file(store: Path, tmp_path: Path, command: list[str]) -> None:
    target = tmp_path / ("out.html" if "report" in command else "out.csv")
    code, out, err = invoke(*command, "--store", str(store), "--output", str(target))
    assert code == 0, err
    assert out == "" and target.stat().st_size > 0 and str(target) in err


# --- progress --------------------------------------------------------------------------------------


def _calls() -> tuple[list[tuple[int, int]], object]:
    seen: list[tuple[int, int]] = []
    return seen, lambda done, total: seen.append((done, total))


def _finished(seen: list[tuple[int, int]]) -> bool:
    dones = [d for d, _ in seen]
    return bool(seen) and dones == sorted(dones) and seen[-1][0] == seen[-1][1] > 0


def test_library_reports_progress(store: Path, tmp_path: Path) -> None:
    log = tmp_path / "a.log"
    log.write_text(LOG)
    seen, cb = _calls()
    cfg = _cfg(tmp_path / "s")
    spec = config.SourceConfig(path=str(log), format="combined", domain="example.com")
    ingest.run(cfg, [spec], final=True, progress=cb)  # type: ignore[arg-type]
    assert _finished(seen) and seen[-1] == (len(LOG), len(LOG))
    seen, cb = _calls()
    compact(cfg, dry_run=True, progress=cb)  # type: ignore[arg-type]
    assert _finished(seen) and seen[-1] == (2, 2)  # two days
    seen, cb = _calls()
    export(cfg, domain="example.com", fmt="csv", output=tmp_path / "e.csv", request="DSR-3", progress=cb)  # type: ignore[arg-type]
    assert _finished(seen) and seen[-1] == (2, 2)


def test_no_progress_bar_without_a_terminal(tmp_path: Path) -> None:
    log = tmp_path / "a.log"  # (recent lines: once past the retention, their warning is printed)
    log.write_text(LOG.replace("10/Oct/2026", RECENT_CLF).replace("11/Oct/2026", RECENT_CLF))
    code, out, err = invoke("ingest", str(log), "--store", str(tmp_path / "s"), "--domain", "d.example", "-q")
    assert (code, out, err) == (0, "", "")


def test_progress_bar_on_a_terminal(tmp_path: Path) -> None:
    """A real terminal (a pty) on stderr: the bar with its rate is drawn there, stdout untouched."""
    log = tmp_path / "a.log"
    log.write_text(LOG * 50)
    leader, follower = pty.openpty()
    exe = Path(sys.executable).with_name("hostlogs")
    done = subprocess.run(
        [str(exe), "ingest", str(log), "--store", str(tmp_path / "s"), "--domain", "d.example", "--final"],
        stdout=subprocess.PIPE, stderr=follower, env={**os.environ, "TERM": "dumb"}, timeout=60, check=False,
    )  # fmt: skip
    os.close(follower)
    drawn = os.read(leader, 65536).decode(errors="replace")
    os.close(leader)
    assert done.returncode == 0 and "ingest" in drawn and "100%" in drawn and "MB/s" in drawn
    assert "%" not in done.stdout.decode().split("throughput")[0]


# --- investigate timeline --------------------------------------------------------------------------


def test_timeline_of_an_address_in_time_order(store: Path) -> None:
    inv = investigations.run(_cfg(store), "timeline", Scope(), case=CASE, by="hour", address=VISITOR)
    times = [r[0] for r in inv.rows.rows]
    assert len(times) == 4 and times == sorted(times)
    assert {r[3] for r in inv.rows.rows} == {"/wp-login.php"}
    buckets = dict(inv.tables)["requests per hour"]
    assert [r[1] for r in buckets.rows] == [1, 1, 1, 1]
    assert VISITOR not in json.dumps(inv.audit, default=str) and inv.audit["periods"]


def test_timeline_cli_filters_and_audits(store: Path) -> None:
    code, out, err = invoke("investigate", "timeline", "--store", str(store), "--case", CASE, "--by", "day",
                            "--net", "198.51.100.0/24", "--path", "/index.html", "--from", "2026-10-11", "--json")  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["investigation"] == "timeline" and len(data["rows"]) == 3
    assert [r["requests"] for r in data["tables"]["requests per day"]] == [3]
    code, _, err = invoke("investigate", "timeline", "--store", str(store), "--case", CASE, "--ip", VISITOR)
    assert code == 0, err
    log = (store / "_audit" / "audit.jsonl").read_text()
    assert VISITOR not in log and '"investigation": "timeline"' in log


# --- export --ip -----------------------------------------------------------------------------------


def test_export_ip_writes_that_visitors_rows_only(store: Path, tmp_path: Path) -> None:
    out_file = tmp_path / "visitor.csv"
    code, out, err = invoke("export", "--store", str(store), "--ip", VISITOR, "--request", "DSR-18",
                            "--format", "csv", "--output", str(out_file), "--json")  # fmt: skip
    assert code == 0, err
    report = json.loads(out)
    assert report["rows"] == 4 and report["by_address"] is True and report["domain"] is None
    rows = list(csv.DictReader(out_file.read_text().splitlines()))
    assert len(rows) == 4 and {r["path"] for r in rows} == {"/wp-login.php"}
    assert {r["client_net"] for r in rows} == {"203.0.113.0/24"}
    assert VISITOR not in out + err + out_file.read_text()
    log = (store / "_audit" / "audit.jsonl").read_text()
    assert VISITOR not in log and "DSR-18" in log and "one client address (not recorded)" in log


def test_export_needs_a_domain_or_an_address(store: Path, tmp_path: Path) -> None:
    code, _, err = invoke(
        "export", "--store", str(store), "--request", "DSR-4", "--output", str(tmp_path / "x.csv")
    )
    assert code == 2 and "--domain DOMAIN and/or --ip ADDRESS" in err
    code, _, err = invoke("export", "--store", str(store), "--request", "DSR-4", "--ip", "nonsense",
                          "--output", str(tmp_path / "x.csv"))  # fmt: skip
    assert code == 2 and "not an IP address" in err and not (tmp_path / "x.csv").exists()


# --- the CLI reference -----------------------------------------------------------------------------


def test_cli_reference_is_current() -> None:
    """docs/cli.md is what scripts/cli_reference.py writes from --help: regenerate it when this fails."""
    code = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "cli_reference.py"), "--check"], capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert code.returncode == 0, (
        code.stdout + code.stderr + " (run .venv/bin/python scripts/cli_reference.py)"
    )
    text = (ROOT / "docs" / "cli.md").read_text()
    for name, cmd in _commands(main, "hostlogs"):
        assert f"## hostlogs {name}".rstrip() in text and "Example:" in (cmd.help or "")
    assert "docs/cli.md" in (ROOT / "README.md").read_text()


def test_keys_prove_json_is_one_document(tmp_path: Path) -> None:
    # Found by review: the summary line followed the JSON array on stdout.
    log = tmp_path / "access.log"
    log.write_text('192.0.2.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n')
    store = str(tmp_path / "store")
    assert CliRunner().invoke(main, ["ingest", str(log), "--store", store, "--final", "-q"]).exit_code == 0
    result = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", store, "--json"])
    assert result.exit_code == 0, result.output
    assert [p["status"] for p in json.loads(result.stdout)] == ["verified"]


def test_an_output_that_cannot_be_written_is_exit_2_for_every_command(store: Path, tmp_path: Path) -> None:
    """export had said exit 6 (the store) where query and investigate say 2 (the argument)."""
    missing = tmp_path / "no-such-folder" / "out.csv"
    for command in (
        ["export", "--domain", "example.com", "--request", "R-1"],
        ["query", "--case", CASE, "SELECT 1"],
        ["investigate", "path", "/x", "--case", CASE],
    ):
        code, out, err = invoke(*command, "--store", str(store), "--output", str(missing))
        assert code == 2 and "cannot write" in err and len(err.splitlines()) == 1, (command, out, err)


def test_a_csv_export_is_safe_to_open_in_a_spreadsheet(tmp_path: Path) -> None:
    """Found by review: a user agent or referrer beginning with '=' went out as a formula."""
    log = tmp_path / "f.log"
    log.write_text(
        f'{VISITOR} - - [10/Oct/2026:01:00:00 +0000] "GET /a HTTP/1.1" 200 1 '
        '"=HYPERLINK(\\"http://evil.example/\\",\\"x\\")" "=cmd|\' /C calc\'!A0"\n'
        f'{VISITOR} - - [10/Oct/2026:02:00:00 +0000] "GET /b HTTP/1.1" 200 1 "-" "@SUM(1+1)"\n'
        f'{VISITOR} - - [10/Oct/2026:03:00:00 +0000] "GET /c HTTP/1.1" 200 1 "-" "Mozilla/5.0 (-x)"\n'
    )
    s = tmp_path / "s"
    assert invoke("ingest", str(log), "--store", str(s), "--domain", "example.com", "--final", "-q")[0] == 0
    csv_out, jsonl_out = tmp_path / "v.csv", tmp_path / "v.jsonl"
    for out, fmt in ((csv_out, "csv"), (jsonl_out, "jsonl")):
        code, _, err = invoke("export", "--ip", VISITOR, "--request", "R-1", "--format", fmt, "--output", str(out),
                              "--store", str(s))  # fmt: skip
        assert code == 0, err
    rows = list(csv.DictReader(csv_out.read_text().splitlines()))
    assert [r["user_agent"] for r in rows] == ["'=cmd|' /C calc'!A0", "'@SUM(1+1)", "Mozilla/5.0 (-x)"]
    assert rows[0]["referrer"].startswith("'=HYPERLINK(")
    agents = [json.loads(line)["user_agent"] for line in jsonl_out.read_text().splitlines()]
    assert agents == ["=cmd|' /C calc'!A0", "@SUM(1+1)", "Mozilla/5.0 (-x)"]  # JSON keeps the value


VHOST_LINE = (
    'www.example.com:443 198.51.100.9 - - [10/Oct/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n'
)


def _a_log_named_by_an_address(tmp_path: Path) -> tuple[Path, Path]:
    """(the folder ``logs``, in it a log of three lines named ``access.log.203.0.113.77``)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    good = logs / "access.log.203.0.113.77"
    good.write_text(VHOST_LINE * 3)
    return logs, good


def test_file_names_are_printed_without_addresses_and_on_one_line(tmp_path: Path) -> None:
    """Found by review: the ingest report, its --json, its warnings and its errors named a log
    ``access.log.203.0.113.77`` in full (cron mails and the journal keep them), and a newline in a
    name split a report line in two."""
    import subprocess
    import sys

    logs, good = _a_log_named_by_an_address(tmp_path)
    odd = logs / "x\nhostlogs: error: forged 2001:db8:abcd:12::77.log"
    odd.write_text(VHOST_LINE)
    gone = logs / "missing.198.51.100.33.log"
    store = tmp_path / "store"
    outputs = []
    for extra in ([], ["--json"], ["--quiet"]):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "ingest", str(good), str(odd), str(gone), "--store", str(store),
             "--format", "vhost_combined", *extra],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert proc.returncode == 10, proc.stderr  # (the missing file)
        outputs.append(proc.stdout + proc.stderr)
        assert not any(
            x.startswith("hostlogs: error: forged") for x in (proc.stdout + proc.stderr).splitlines()
        )
    text = "\n".join(outputs)
    for address in ("203.0.113.77", "2001:db8:abcd:12::77", "198.51.100.33"):
        assert address not in text, address
    assert "access.log.203.0.113.0/24" in text and "missing.198.51.100.0/24.log" in text
    assert "x\\nhostlogs: error: forged" in text


def test_an_escaped_control_character_never_runs_into_an_address() -> None:
    """Found by review: a tab printed as \\x09 ran into the address after it once masked
    (``access\\x203.0.113.0/24``)."""
    from pipeline.cli._common import printable, shown

    assert shown(printable("access\t203.0.113.79")) == "access\\t203.0.113.0/24"
    assert shown(printable("a\x1b203.0.113.9\r\n")) == "a<0x1b>203.0.113.0/24\\r\\n"
    # every character a reader may take for a line's end (found by review)
    assert printable("a\u2028b\u2029c\x85d\x0be\x0cf") == "a<0x2028>b<0x2029>c<0x85>d<0x0b>e<0x0c>f"
    assert len(printable("x\u2028hostlogs: error: forged\x85y").splitlines()) == 1


def test_printed_names_are_masked_to_the_configured_prefix_when_it_is_shorter(tmp_path: Path) -> None:
    """Found by review: warnings and error lines masked with the default /24 and /48 whatever the
    config set, so with ``ipv4_prefix = 16`` a name printed one octet more than the store keeps."""
    import subprocess
    import sys

    logs, good = _a_log_named_by_an_address(tmp_path)
    gone = logs / "missing.2001:db8:abcd:12::77.log"
    conf = tmp_path / "hostlogs.toml"
    conf.write_text(f'store = "{tmp_path / "store"}"\n[privacy]\nipv4_prefix = 16\nipv6_prefix = 32\n')
    outputs = []
    for extra in ([], ["--json"], ["--quiet"]):
        proc = subprocess.run(
            [sys.executable, "-m", "pipeline.cli", "ingest", str(good), str(gone), "--config", str(conf),
             "--format", "vhost_combined", *extra],
            capture_output=True, text=True, cwd=ROOT,
        )  # fmt: skip
        assert proc.returncode == 10, proc.stderr  # (the missing file)
        outputs.append(proc.stdout + proc.stderr)
    text = "\n".join(outputs)
    assert "203.0.113" not in text and "2001:db8:abcd" not in text, text
    assert "access.log.203.0.0.0/16" in text and "missing.2001:db8::/32.log" in text


def test_the_configured_masking_of_printed_text_ends_with_its_command(tmp_path: Path) -> None:
    """In one process (an embedding, the tests): the next command without that config masks with
    the defaults again, not with the last command's prefixes."""
    conf = tmp_path / "hostlogs.toml"
    conf.write_text(f'store = "{tmp_path / "store"}"\n[privacy]\nipv4_prefix = 16\n')
    gone = str(tmp_path / "missing.203.0.113.77.log")
    runner = CliRunner()
    from pipeline.cli._common import shown

    first = runner.invoke(main, ["ingest", gone, "--config", str(conf), "--format", "combined", "--quiet"])
    assert shown("203.0.113.77") == "203.0.113.0/24"  # none left for code run after it (found by review)
    second = runner.invoke(
        main, ["ingest", gone, "--store", str(tmp_path / "s2"), "--format", "combined", "--quiet"]
    )
    assert first.exit_code == second.exit_code == 10
    assert "missing.203.0.0.0/16.log" in first.output and "203.0.113" not in first.output
    assert "missing.203.0.113.0/24.log" in second.output


def test_an_error_line_names_a_file_with_its_spaces(tmp_path: Path) -> None:
    """Found by review: error lines collapsed runs of whitespace, so ``two  spaces.log`` was named
    ``two spaces.log``, a file that is not there. A newline in a name is still escaped (one line)."""
    gone = tmp_path / "two  spaces\tand\na newline.log"
    r = CliRunner().invoke(
        main, ["ingest", str(gone), "--store", str(tmp_path / "s"), "--format", "combined", "-q"]
    )
    assert r.exit_code == 10
    (line,) = r.stderr.splitlines()
    assert line.startswith("hostlogs: error: ") and "two  spaces\\tand\\na newline.log" in line


@pytest.mark.parametrize(
    "args",
    [
        ("erase", "203.0.113.77", "--request", "R-1"),
        ("erase", "--from", "203.0.113.77", "--request", "R-1", "--domain", "a.example"),
        ("investigate", "ip", "203.0.113.77", "--case", "C-1", "--from", "203.0.113.77"),
    ],
)
def test_a_usage_error_masks_the_addresses_typed_in_it(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Found by review: click's usage errors quoted the typed value whole (cron mail, the journal)."""
    r = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "s")])
    assert r.exit_code == 2 and "203.0.113.0/24" in r.stderr and "203.0.113.77" not in r.stderr, r.stderr
    assert len(r.stderr.splitlines()) == 1


def test_printed_lines_mask_at_the_stores_prefixes_without_its_config(tmp_path: Path) -> None:
    """Found by review: a command given only ``--store`` of a store ingested at /16 printed the /24
    of an address in a file name (the config's defaults); and ``config check`` (its warnings, also
    in --json) masked at /24 whatever the config set."""
    conf = tmp_path / "hostlogs.toml"
    store = tmp_path / "store"
    logs = tmp_path / "logs.203.0.113.77"
    conf.write_text(
        f'store = "{store}"\n[privacy]\nipv4_prefix = 16\n'
        f'[[sources]]\npath = "{logs}/access.log"\nformat = "combined"\n'
    )
    log = tmp_path / "access.log"
    log.write_text('198.51.100.9 - - [10/Oct/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    ingest = ["ingest", str(log), "--config", str(conf), "--domain", "a.example", "-q"]
    assert CliRunner().invoke(main, ingest).exit_code == 0
    out = tmp_path / "nonexistent.203.0.113.77" / "out.csv"
    export = [
        "export",
        "--domain",
        "a.example",
        "--output",
        str(out),
        "--request",
        "R-1",
        "--store",
        str(store),
    ]
    r = CliRunner().invoke(main, export)
    assert r.exit_code != 0 and "nonexistent.203.0.0.0/16" in r.stderr and "203.0.113" not in r.stderr, (
        r.stderr
    )
    for extra in ([], ["--json"]):
        r = CliRunner().invoke(main, ["config", "check", "--config", str(conf), *extra])
        assert r.exit_code == 0 and "logs.203.0.0.0/16" in r.stderr, r.output
        warnings = json.loads(r.stdout)["warnings"] if extra else []
        assert "logs.203.0.113" not in r.stderr + json.dumps(warnings)
        assert not extra or "logs.203.0.0.0/16" in json.dumps(warnings)


def test_a_damaged_privacy_record_does_not_fail_every_command(tmp_path: Path) -> None:
    """Found by review: reading the store's prefixes for printed lines met ``1e400`` (JSON reads
    infinity) and failed every command with an internal error, the diagnostic ones included."""
    log = tmp_path / "access.log"
    log.write_text(VHOST_LINE)
    store = tmp_path / "store"
    args = ["--store", str(store)]
    assert (
        CliRunner().invoke(main, ["ingest", str(log), *args, "--format", "vhost_combined", "-q"]).exit_code
        == 0
    )
    record = store / "_state" / "privacy.jsonl"
    text = record.read_text()
    record.write_text(text.replace('"ipv4_prefix": 24', '"ipv4_prefix": 1e400'))
    assert record.read_text() != text
    for command in (["verify"], ["status"], ["hold", "list"], ["audit", "verify"]):
        r = CliRunner().invoke(main, [*command, *args])
        assert "internal error" not in r.output + r.stderr and r.exit_code != 1, (command, r.stderr)


def test_printed_text_is_masked_as_coarsely_as_any_command_running_in_the_process(tmp_path: Path) -> None:
    """Found by review: the printed-text masking was one value per process, so two commands run in
    threads of one embedding process masked with each other's prefixes, and the /24 one could set
    it back under the /16 one; then, kept per context, a copied context's reset undid it. Every
    thread prints at least as coarsely as every command running, nested ones included."""
    import contextvars
    import threading

    from pipeline.cli import _masking
    from pipeline.cli._common import shown

    conf = tmp_path / "hostlogs.toml"
    conf.write_text(f'store = "{tmp_path / "store"}"\n[privacy]\nipv4_prefix = 16\n')
    coarse_set, done = threading.Event(), threading.Event()
    seen: dict[str, str] = {}

    def command() -> None:
        _masking.begin()
        _masking.mask_as(config.load(conf))
        seen["own"] = shown("203.0.113.77")
        contextvars.copy_context().run(lambda: (_masking.begin(), _masking.end()))  # a nested command
        seen["after a nested one"] = shown("203.0.113.77")
        coarse_set.set()
        done.wait(10)
        _masking.end()

    other = threading.Thread(target=command)
    other.start()
    try:
        assert coarse_set.wait(10)
        _masking.begin()  # another command in this thread, with the defaults: it must not undo /16
        seen["here"] = shown("203.0.113.77")
        _masking.end()
        started = threading.Thread(target=lambda: seen.update(started=shown("203.0.113.77")))
        started.start()
        started.join()
    finally:
        done.set()
        other.join()
    assert seen == dict.fromkeys(("own", "after a nested one", "here", "started"), "203.0.0.0/16")
    assert shown("203.0.113.77") == "203.0.113.0/24"  # once the /16 command has ended
