"""Settings declared once (pipeline/config.py): the rules, the environment, where values come from, and
the example config and docs/configuration.md that cannot drift from the declarations."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from pipeline import config
from pipeline.cli import _settings
from pipeline.errors import ConfigError
from tests.conftest import ROOT, ingest_paths


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return path


def test_environment_overrides_are_typed_and_recorded(tmp_path: Path) -> None:
    path = write(tmp_path, f"store = '{tmp_path}/file-store'\n[ingest]\nworkers = 3\nlock_wait = 1.5\n")
    env = {
        "HOSTLOGS_INGEST_WORKERS": "4",
        "HOSTLOGS_QUERY_REQUIRE_CASE": "true",
        "HOSTLOGS_STORE": f"{tmp_path}/env-store",
        "HOSTLOGS_RETENTION_REJECTS": "7d",
    }
    r = _settings.resolve(path, environ=env)
    assert r.config.ingest.workers == 4 and type(r.config.ingest.workers) is int
    assert r.config.query.require_case is True and r.config.retention.rejects == "7d"
    assert r.config.store == f"{tmp_path}/env-store" and r.config.ingest.lock_wait == 1.5
    assert {
        n: r.source(n) for n in ("ingest.workers", "ingest.lock_wait", "ingest.flush_lines", "store")
    } == {
        "ingest.workers": "env HOSTLOGS_INGEST_WORKERS",
        "ingest.lock_wait": "file",
        "ingest.flush_lines": "default",
        "store": "env HOSTLOGS_STORE",
    }
    flagged = _settings.resolve(path, environ=env, store=f"{tmp_path}/flag-store")  # flag > env > file
    assert flagged.config.store == f"{tmp_path}/flag-store" and flagged.source("store") == "flag --store"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"HOSTLOGS_INGEST_WORKERS": "many"},
            "HOSTLOGS_INGEST_WORKERS (environment): invalid value 'many', expected a number",
        ),
        ({"HOSTLOGS_QUERY_REQUIRE_CASE": "perhaps"}, "invalid value 'perhaps', expected true or false"),
        (
            {"HOSTLOGS_INGEST_WORKERS": "\u0662"},
            "invalid value '\u0662', expected a number",
        ),  # (int() reads ٢ as 2)
        (
            {"HOSTLOGS_PRIVACY_IPV4_PREFIX": "32"},
            "HOSTLOGS_PRIVACY_IPV4_PREFIX (environment): privacy.ipv4_prefix must be 1-31, got 32 (it would store full",
        ),
        ({"HOSTLOGS_STORE": ""}, "HOSTLOGS_STORE (environment): store must be a path (text), got ''"),
    ],
)
def test_a_bad_environment_value_names_the_variable(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        _settings.resolve(None, environ=env)
    assert message in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[retention]\nretention = '0d'\n", "retention.retention must look like 2y, 18m or 730d"),
        ("[retention]\nrejects = '2w'\n", "retention.rejects must look like 2y, 18m or 730d"),
        (
            "[retention]\nretention = '1y'\ndomains = { 'a.example' = '18m' }\n",
            "retention.domains.a.example = '18m' is longer than retention '1y'",
        ),
        ("[privacy]\npseudonym = 'sha1'\n", "privacy.pseudonym must be hmac or off, got 'sha1'"),
        ("[privacy]\nkey_period = 'year'\n", "privacy.key_period must be day, week or month, got 'year'"),
        ("[ingest]\nworkers = 65\n", "ingest.workers must be 1-64, got 65"),
        ("[ingest]\nmax_reject_rate = 2\n", "ingest.max_reject_rate must be 0-1 (a share), got 2.0"),
        ("[ingest]\nflush_lines = 0\n", "ingest.flush_lines must be positive, got 0"),
        (
            "[ingest]\nmax_line_bytes = 100000000\n",
            "ingest.block_bytes must be at least twice ingest.max_line_bytes",
        ),
        ("[query]\nthreads = 0\n", "query.threads must be 1-256, got 0"),
        # Found by an operator pass: `config check` accepted these and a run crashed (exit 1), ran
        # without a limit, or truncated the value. Each is refused at load (exit 3), naming the setting.
        ("[ingest]\nmax_future_skew = '99999999999d'\n", "ingest.max_future_skew must look like 3d"),
        ("[ingest]\nblock_bytes = 1e20\n", "ingest.block_bytes must be 512-4294967296"),
        ("[ingest]\nworkers = 1.9\n", "workers: invalid value 1.9, expected a whole number"),
        ("[ingest]\nflush_seconds = inf\n", "ingest.flush_seconds must be positive, got inf"),
        ("[ingest]\nlock_wait = nan\n", "ingest.lock_wait must be at least 0, got nan"),
        ("[privacy]\nipv4_prefix = 24.5\n", "ipv4_prefix: invalid value 24.5, expected a whole number"),
        ("[query]\nmemory_limit = 'lots'\n", "query.memory_limit must look like 4GB, 512MiB or 80%"),
        ("[query]\nmemory_limit = '999999999TB'\n", "query.memory_limit must look like 4GB, 512MiB or 80%"),
        ("[query]\nthreads = 100000\n", "query.threads must be 1-256, got 100000"),
        ("[query]\ntimeout = '99999999999h'\n", "query.timeout must look like 30s, 5m or 1h"),
        ("[retention]\nretention = '99999999y'\n", "retention.retention must look like 2y, 18m or 730d"),
        ("[[sources]]\npath = 'a'\ndomain_from_path = '/{domain}/{domain}'\n", "contain {domain} once"),
        ("store = 5\n", "store must be a path (text), got 5"),
        ("[privacy]\nipv6_bits = 40\n", "unknown setting 'ipv6_bits' (did you mean 'ipv6_prefix'?"),
        ("[ingets]\nworkers = 2\n", "unknown setting 'ingets' (did you mean 'ingest'?"),
    ],
)
def test_rules_declared_with_the_settings(tmp_path: Path, toml: str, message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        config.load(write(tmp_path, toml))


def test_a_shorter_or_equal_domain_retention_is_accepted(tmp_path: Path) -> None:
    cfg = config.load(
        write(
            tmp_path,
            "[retention]\nretention = '2y'\ndomains = { 'a.example' = '24m', 'b.example' = '30d' }\n",
        )
    )
    assert cfg.retention.domains == {"a.example": "24m", "b.example": "30d"}


def test_the_key_directory_is_outside_the_store_and_closed(tmp_path: Path) -> None:
    store = tmp_path / "store"
    inside = write(tmp_path, f"store = '{store}'\n[privacy]\nkey_dir = '{store}/keys'\n")
    with pytest.raises(
        ConfigError, match=r"privacy.key_dir .*/store/keys is inside the store: put the keys beside it"
    ):
        config.load(inside)
    keys = tmp_path / "store-keys"  # the default <store>-keys
    keys.mkdir()
    os.chmod(keys, 0o750)
    with pytest.raises(ConfigError) as info:
        config.load(write(tmp_path, f"store = '{store}'\n"))
    assert (
        f"privacy.key_dir (default <store>-keys) {keys} is open to group/other (mode 0750): run chmod 700 {keys}"
        in str(info.value)
    )
    os.chmod(keys, 0o700)
    assert config.load(write(tmp_path, f"store = '{store}'\n")).key_dir == str(keys)
    (keys / "custody").mkdir(mode=0o700)
    os.chmod(keys / "custody", 0o755)  # ingest refuses it (exit 6): the config check says so first
    with pytest.raises(
        ConfigError, match=r"its custody directory .*/custody is open to group/other \(mode 0755\)"
    ):
        config.load(write(tmp_path, f"store = '{store}'\n"))


# ----------------------------------------------------------------------------------------------------
# the example config and the docs come from the declarations


def test_the_example_config_and_the_docs_are_regenerated() -> None:
    """Run `python scripts/config_docs.py` after changing a setting in pipeline/config.py."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "config_docs.py"), "--check"], capture_output=True, text=True
    )
    assert (result.returncode, result.stdout) == (0, "")


def test_every_setting_has_help() -> None:
    undocumented = [
        n for n, f in config.declared() if not _settings.helps().get((_owner(n).__name__, f.name))
    ]
    sources = [
        f.name
        for _, f in config.declared(config.SourceConfig)
        if not _settings.helps().get(("SourceConfig", f.name))
    ]
    assert undocumented == [] and sources == []


def _owner(name: str) -> type:
    return config.SECTIONS.get(name.rpartition(".")[0], config.Config)


def test_every_setting_is_in_the_example_config_with_its_default() -> None:
    text = (ROOT / "configs" / "hostlogs.toml").read_text()
    sections = re.split(r"^\[(\w+)\]$", text.split(_settings.END_TOML)[0], flags=re.M)
    body = {"": sections[0], **dict(zip(sections[1::2], sections[2::2], strict=True))}
    for name, f in config.declared():
        section, _, key = name.rpartition(".")
        shown = f.metadata.get("shown", {})
        value = shown.get("recommended", shown.get("example", config.default_of(f)))
        line = f"{key} = {_settings.toml_value(value)}"
        assert re.search(rf"^(# )?{re.escape(line)}", body[section], re.M) or key == "sensitive_params", name
    # uncommented, the example's settings are the defaults (but what a server install sets)
    lines = [
        ln[2:] if re.match(r"# [a-z_0-9]+ = |#     |# \]", ln) else ln
        for ln in text.split(_settings.END_TOML)[0].splitlines()
    ]
    data = tomllib.loads("\n".join(lines))
    for name, f in config.declared():
        section, _, key = name.rpartition(".")
        shown = f.metadata.get("shown", {})
        got = (data.get(section, {}) if section else data)[key]
        expected = shown.get("recommended", shown.get("example", config.default_of(f)))
        assert got == (list(expected) if isinstance(expected, tuple) else expected), name


def test_every_setting_is_in_the_docs() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    rows = set(re.findall(r"^\| `([a-z_0-9]+)` \|", text, re.M))
    assert {f.name for _, f in config.declared()} | {
        f.name for _, f in config.declared(config.SourceConfig)
    } <= rows
    for name, f in config.declared():
        if var := _settings.env_name(name, f):
            assert f"`{var}`" in text
    assert (
        "(configuration.md)" in (ROOT / "README.md").read_text()
        or "docs/configuration.md" in (ROOT / "README.md").read_text()
    )


def test_an_investigator_who_cannot_enter_the_key_directory_can_still_query(tmp_path: Path) -> None:
    """Operations guide: the store is readable by the investigators' group, the keys by their owner
    only. The custody check must not turn 'permission denied' on the key directory into a failure of
    every command (root without its file-permission override stands in for such a user)."""
    store = tmp_path / "store"
    log = tmp_path / "access.log"
    log.write_text('203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n')
    ingest_paths(store, [log])
    keys = Path(f"{store}-keys")
    for path in (keys, *keys.rglob("*")):
        os.chown(path, 65534, 65534)  # owned by someone else, mode 0700
    os.chmod(keys, 0o700)
    try:
        proc = subprocess.run(
            ["setpriv", "--bounding-set=-all", "--inh-caps=-all", sys.executable, "-m", "pipeline.cli",
             "query", "--store", str(store), "--case", "C-1", "SELECT count(*) AS n FROM pageviews"],
            capture_output=True, text=True, cwd=ROOT, timeout=60,
        )  # fmt: skip
    finally:
        for path in (keys, *keys.rglob("*")):
            os.chown(path, 0, 0)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split()[-3] == "1"  # the table: n / --- / 1 / (1 row)


@pytest.mark.parametrize(
    "value",
    ["4GB", "512MiB", "80%", "50 %", "4G", "4g", "1.5 GB", "4e3MB", "4000000KB", "4 gigabytes", "2TiB",
     "0MB", "2MiB", "4 bytes", "999999999TB", "150%", "4000000000", "lots", "4 GBs"],
)  # fmt: skip
def test_a_memory_limit_is_accepted_exactly_when_duckdb_runs_queries_with_it(value: str) -> None:
    # Found by review: a first rule refused 80% and 4G, which DuckDB takes, and let 0MB through.
    import duckdb

    con = duckdb.connect()
    try:
        con.execute(f"SET memory_limit = '{value}'")
        con.execute("SELECT sum(range) FROM range(100000)").fetchall()
        runs = True
    except duckdb.Error:
        runs = False
    accepted = config.QueryConfig.__dataclass_fields__["memory_limit"].metadata["rule"].ok(value)
    assert accepted == runs, (value, accepted, runs)
