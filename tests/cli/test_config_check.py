"""hostlogs config check: each bad case its own one-line message and exit 3; the effective configuration
with where each value came from; `--store ""` refused by every command."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import GEOIP


def run(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


def test_a_good_config_prints_each_value_and_where_it_came_from(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"store = '{tmp_path}/s'\n[ingest]\nlock_wait = 2.0\n[[sources]]\npath = '{logs}/access*.log'\n"
    )
    code, out, err = run("config", "check", "--config", str(cfg), env={"HOSTLOGS_INGEST_WORKERS": "4"})
    assert code == 0, err
    lines = {line.split()[0]: line.split(maxsplit=1)[1] for line in out.splitlines()[1:]}
    assert out.splitlines()[0] == f"config {cfg}: ok, 1 warning(s)"
    assert lines["ingest.workers"].split() == ["env", "HOSTLOGS_INGEST_WORKERS", "4"]
    assert lines["ingest.lock_wait"].split() == ["file", "2.0"]
    assert lines["privacy.ipv4_prefix"].split() == ["default", "24"]
    assert lines["sources[0].path"].split() == ["file", f'"{logs}/access*.log"']
    assert err == f"hostlogs: warning: {cfg}: sources[0]: {logs}/access*.log matches no file yet\n"

    code, out, _ = run("config", "check", "--config", str(cfg), "--store", str(tmp_path / "t"), "--json")
    data = json.loads(out)
    assert code == 0 and data["ok"] is True and data["config"] == str(cfg)
    assert data["settings"]["store"] == {"value": str(tmp_path / "t"), "from": "flag --store"}
    assert data["settings"]["privacy.sensitive_params"]["value"][0] == "password"
    assert data["warnings"] == [f"{cfg}: sources[0]: {logs}/access*.log matches no file yet"]


def test_without_a_config_the_defaults_are_checked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    code, out, _ = run("config", "check")
    assert code == 0 and out.startswith("config (none: defaults): ok\n")
    assert any(line.split() == ["store", "default", '"./hostlogs-store"'] for line in out.splitlines())


def test_warnings_do_not_fail_the_check(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"store = '{tmp_path}/s'\n[metrics]\ntextfile = '{tmp_path}/nodir/h.prom'\n[[sources]]\npath = '/nonexistent-dir/*.log'\n"
    )
    env = {"HOSTLOGS_INGEST_WORKRES": "2", "HOSTLOGS_INGEST_TRUSTED_PROXIES": "10.0.0.0/8"}
    code, _, err = run("config", "check", "--config", str(cfg), env=env)
    assert code == 0
    assert err.splitlines() == [
        f"hostlogs: warning: {cfg}: sources[0]: directory /nonexistent-dir does not exist: /nonexistent-dir/*.log matches no file",
        "hostlogs: warning: environment variable HOSTLOGS_INGEST_TRUSTED_PROXIES is ignored: ingest.trusted_proxies is set in the config file only",
        "hostlogs: warning: environment variable HOSTLOGS_INGEST_WORKRES is not a setting and is ignored (did you mean HOSTLOGS_INGEST_WORKERS?)",
        f"hostlogs: warning: metrics.textfile: directory {tmp_path}/nodir does not exist: no metrics are written",
    ]


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[privacy]\nipv6_bits = 40\n", "unknown setting 'ipv6_bits' (did you mean 'ipv6_prefix'?"),
        ("[ingest]\nworkers = 'many'\n", "[ingest].workers: invalid value 'many'"),
        (
            "[privacy]\nipv4_prefix = 32\n",
            "privacy.ipv4_prefix must be 1-31, got 32 (it would store full client addresses)",
        ),
        ("[privacy]\nipv6_prefix = 0\n", "privacy.ipv6_prefix must be 1-127, got 0"),
        (
            "[retention]\nretention = '2 years'\n",
            "retention.retention must look like 2y, 18m or 730d (at most 999y, 9999m or 99999d), got '2 years'",
        ),
        (
            "[retention]\ndomains = { 'a.example' = '3y' }\n",
            "retention.domains.a.example = '3y' is longer than retention '2y'",
        ),
        (
            "store = '{tmp}/s'\n[privacy]\nkey_dir = '{tmp}/s/keys'\n",
            "privacy.key_dir {tmp}/s/keys is inside the store",
        ),
        (
            "store = '{tmp}/s'\n[privacy]\nkey_dir = '{tmp}/open'\n",
            "privacy.key_dir {tmp}/open is open to group/other (mode 0755)",
        ),
        ("store = ''\n", "store must be a path (text), got ''"),
        ("store = '{tmp}/file/s'\n", "store {tmp}/file/s: {tmp}/file is not a directory"),
        (
            "[geoip]\ncountry_db = '{tmp}/missing.mmdb'\n",
            "GeoIP country database {tmp}/missing.mmdb not found",
        ),
        ("[geoip]\nasn_db = '{tmp}/file'\n", "GeoIP ASN database {tmp}/file is not a valid MaxMind DB file"),
        (f"[geoip]\ncountry_db = '{GEOIP}/GeoLite2-ASN-Test.mmdb'\n", "expected a Country or City database"),
        ("[[sources]]\npath = '/x/*.log'\nformat = 'nosuch'\n", "unknown log format 'nosuch'"),
        (
            "[query]\ntimeout = 'soon'\n",
            "query.timeout must look like 30s, 5m or 1h (0: none), at most a week, got 'soon'",
        ),
        ("not toml = = 1", "is not valid TOML"),
    ],
)
def test_each_bad_config_has_its_own_message_and_exit_3(tmp_path: Path, toml: str, message: str) -> None:
    (tmp_path / "file").write_text("not a directory, not a database\n")
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o755)
    cfg = tmp_path / "c.toml"
    cfg.write_text(toml.replace("{tmp}", str(tmp_path)))
    code, out, err = run("config", "check", "--config", str(cfg))
    assert (code, out) == (3, "")
    assert err.startswith("hostlogs: error: ") and err.count("\n") == 1
    assert message.replace("{tmp}", str(tmp_path)) in err


def test_a_bad_environment_value_and_a_missing_file_are_config_errors(tmp_path: Path) -> None:
    code, _, err = run("config", "check", env={"HOSTLOGS_INGEST_MAX_REJECT_RATE": "5%"})
    assert code == 3 and "HOSTLOGS_INGEST_MAX_REJECT_RATE (environment): invalid value '5%'" in err
    code, _, err = run("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert code == 3 and err == f"hostlogs: error: config file {tmp_path / 'nope.toml'} not found\n"


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", "x.log"],
        ["query", "--case", "T-1", "SELECT 1"],
        ["purge", "--dry-run"],
        ["config", "check"],
    ],
)
def test_an_empty_store_flag_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # had it been taken, the store would be the current directory
    code, _, err = run(*args, "--store", "")
    assert code == 3 and err == "hostlogs: error: --store: store must be a path (text), got ''\n"
    assert list(tmp_path.iterdir()) == []


def test_the_environment_reaches_every_command(tmp_path: Path) -> None:
    """HOSTLOGS_STORE is the store of a command run without --store (here: query finds none there)."""
    code, _, err = run(
        "query", "--case", "T-1", "SELECT 1", env={"HOSTLOGS_STORE": str(tmp_path / "envstore")}
    )
    assert code == 6 and f"no store at {tmp_path / 'envstore'}" in err


def test_config_check_refuses_what_ingest_would_refuse_on_the_existing_store(tmp_path: Path) -> None:
    # Found by review: config check said ok to an ipv4_prefix change that the next ingest refuses.
    log = tmp_path / "access.log"
    log.write_text('192.0.2.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n')
    store = tmp_path / "store"
    runner = CliRunner()
    assert runner.invoke(main, ["ingest", str(log), "--store", str(store), "--final", "-q"]).exit_code == 0
    same = tmp_path / "same.toml"
    same.write_text(f"store = '{store}'\n")
    assert runner.invoke(main, ["config", "check", "--config", str(same)]).exit_code == 0
    wider = tmp_path / "wider.toml"
    wider.write_text(f"store = '{store}'\n[privacy]\nipv4_prefix = 16\n")
    result = runner.invoke(main, ["config", "check", "--config", str(wider)])
    assert result.exit_code == 3
    assert (
        result.stderr.startswith("hostlogs: error: store ") and "would mix /24 and /16 rows" in result.stderr
    )
