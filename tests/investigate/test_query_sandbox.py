"""The query sandbox: every escape fails with a one-line message (exit 2); normal SQL works."""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.investigate import fence, render
from pipeline.investigate import session as query
from pipeline.investigate.limits import Limits
from pipeline.investigate.result import QueryResult
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.statement import check_statement
from pipeline.lifecycle import verify
from pipeline.store.commit import Store
from tests.conftest import ROOT, ingest_paths


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sandbox")
    ingest_paths(tmp / "store", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    outside = tmp / "outside.parquet"
    pq.write_table(pq.read_table(Store(tmp / "store").committed_parquet()[0]), outside)
    return tmp / "store"


@pytest.fixture()
def con(store: Path) -> Iterator[Sandbox]:
    c = query.connect(store, case="SEC-0")
    yield c
    c.close()


def committed(store: Path) -> str:
    return str(Store(store).committed_parquet()[0].resolve())


def store_hashes(store: Path) -> dict[str, str]:
    """Every file of the store but the audit trail, by content."""
    return {
        str(p.relative_to(store)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(store.rglob("*"))
        if p.is_file() and "_audit" not in p.parts
    }


# The catalogue of write attempts: (sql, touches files). Each runs under every WRAPPERS form below.
WRITES: list[tuple[str, bool]] = [
    ("COPY (SELECT 42 AS x) TO '{committed}' (FORMAT parquet, USE_TMP_FILE false)", True),
    ("COPY (SELECT 42 AS x) TO '{manifest}' (FORMAT json)", True),
    ("COPY (SELECT 42 AS x) TO '{rejects}' (FORMAT parquet, USE_TMP_FILE false)", True),
    ("COPY (SELECT * FROM pageviews) TO '{store}/pageviews/date=2026-11-01/evil.parquet'", True),
    ("COPY (SELECT 1) TO '{tmp}/out.csv'", True),
    ("COPY pageviews FROM '/etc/passwd'", True),
    ("EXPORT DATABASE '{tmp}/export'", True),
    ("ATTACH '{tmp}/x.duckdb' AS x", True),
    ("ATTACH '{store}/pageviews/evil.duckdb' AS x", True),
    ("ATTACH ':memory:' AS scratch", False),
    ("CREATE TABLE scratch.t AS SELECT 1 AS x", False),
    ("CREATE TABLE t AS SELECT 1 AS x", False),
    ("CREATE OR REPLACE VIEW pageviews AS SELECT 1 AS x", False),
    ("CREATE OR REPLACE TEMP VIEW pageviews AS SELECT * FROM pageviews WHERE client_net <> '{net}'", False),
    ("DROP VIEW pageviews", False),
    ("ALTER VIEW pageviews RENAME TO old_pageviews", False),
    ("INSERT INTO pageviews SELECT * FROM pageviews", False),
    ("DELETE FROM pageviews WHERE client_net = '{net}'", False),
    ("UPDATE pageviews SET status = 0", False),
    ("SET enable_external_access = true", False),
    ("RESET enable_external_access", False),
    ("SET allowed_directories = ['/']", False),
    ("SET allowed_paths = ['{committed}']", False),
    ("SET lock_configuration = false", False),
    ("SET memory_limit = '100GB'", False),
    ("SET temp_directory = '{store}/pageviews'", False),
    ("PRAGMA memory_limit = '100GB'", False),
    ("SET autoload_known_extensions = true", False),
    ("INSTALL httpfs", True),
    ("LOAD httpfs", True),
    ("LOAD '{tmp}/evil.duckdb_extension'", True),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", False),
    ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", True),
    ("CHECKPOINT", False),
    ("SELECT * FROM read_text('/etc/passwd')", True),
    ("SELECT * FROM read_blob('{committed}')", True),
    ("SELECT * FROM read_csv('/etc/passwd')", True),
    ("SELECT * FROM read_json('{manifest}')", True),
    ("SELECT * FROM sniff_csv('/etc/passwd')", True),
    ("SELECT * FROM glob('{store}/**')", True),
    ("SELECT * FROM read_parquet('{committed}')", True),
    ("SELECT count(*) FROM read_parquet('{store}/pageviews/*/*.parquet')", True),
    ("SELECT * FROM parquet_metadata('{tmp}/outside.parquet')", True),
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", True),
]
WRAPPERS = [
    "{}",
    "EXPLAIN {}",
    "EXPLAIN ANALYZE {}",
    "/* a comment */ eXpLaIn -- another\n AnAlYzE {}",
    "WITH a AS (SELECT 1) {}",
    "SELECT 1; {}",
    "{}; SELECT 1",
    "SELECT * FROM query('{quoted}')",
    "SELECT * FROM query_table('{quoted}')",
    "SELECT * FROM ({})",
]


def fill(sql: str, store: Path) -> str:
    manifest = next((store / "_manifests").glob("*/*.json"))
    rejects = next((store / "_rejects").glob("date=*/*.parquet"))
    return sql.format(
        tmp=store.parent, store=store.resolve(), committed=committed(store), manifest=manifest.resolve(),
        rejects=rejects.resolve(), net="198.51.100.0/24",
    )  # fmt: skip


def attempts(store: Path) -> list[tuple[str, bool]]:
    out = []
    for sql, touches in WRITES:
        body = fill(sql, store)
        for wrapper in WRAPPERS:
            wrapped = wrapper.replace("{quoted}", body.replace("'", "''")).replace("{}", body)
            out.append((wrapped, touches and wrapper != "EXPLAIN {}"))  # a plain EXPLAIN runs nothing
    return out


def reads_evidence(sql: str, store: Path) -> bool:
    """A read of one committed file by its path: what a fenced sandbox's DuckDB may do (the same rows)."""
    return (
        committed(store) in sql
        and "COPY" not in sql
        and any(f in sql for f in ("read_blob(", "read_parquet("))
    )


@pytest.mark.parametrize("reader", ["auto", "arrow"])
def test_no_write_attempt_changes_the_store(store: Path, reader: str) -> None:
    """Every write attempt under every wrapper, through DuckDB alone, ``query.run`` and the shell.

    DuckDB's own fence: with the statement check bypassed, every attempt that touches a file fails in
    DuckDB (reading through pyarrow, DuckDB has no file access; reading itself, it may read only the
    committed files and the kernel's fence stops every write). The library's: every attempt is refused
    or fails. After all of them every file of the store is byte-identical, no file appeared, and the
    store verifies.
    """
    limits = Limits(reader=reader)
    before = store_hashes(store)
    counts = query.run(store, "SELECT client_net, count(*) FROM pageviews GROUP BY 1 ORDER BY 1").rows
    tried = attempts(store)
    with query.connect(store, case="SEC-1", limits=limits) as bare:  # no statement check
        assert bare.fenced == (reader == "auto" and fence.abi() > 0)
        for sql, touches in tried:
            try:
                bare.con.execute(sql).fetchall()
            except duckdb.Error:
                continue
            assert not touches or (bare.fenced and reads_evidence(sql, store)), (
                f"DuckDB let this through: {sql}"
            )
    session = query.Session(store, case="SEC-1", limits=limits)
    with query.connect(store, case="SEC-1", limits=limits) as checked:  # the library's path, no audit
        for i, (sql, _) in enumerate(tried):
            try:
                check_statement(checked, sql)
                checked.execute(sql)
            except UsageError:
                pass
            else:  # only a plain EXPLAIN of a read, which runs nothing, may pass (and a fenced read)
                assert sql.startswith("EXPLAIN SELECT") or (checked.fenced and reads_evidence(sql, store)), (
                    sql
                )
            if i % len(WRAPPERS) in (0, 2, 5) and not (session.sandbox.fenced and reads_evidence(sql, store)):
                with pytest.raises(UsageError):  # audited: the shell's path
                    session.execute(sql)
            if i % len(WRAPPERS) == 0 and not (checked.fenced and reads_evidence(sql, store)):
                with pytest.raises(UsageError):  # and query.run (a connection each)
                    query.run(store, sql, case="SEC-1", limits=limits)
    after_session = session.execute("SELECT client_net, count(*) FROM pageviews GROUP BY 1 ORDER BY 1").rows
    session.close()
    assert after_session == counts  # no statement redefined a view for the ones after it
    assert query.run(store, "SELECT client_net, count(*) FROM pageviews GROUP BY 1 ORDER BY 1").rows == counts
    assert store_hashes(store) == before
    assert not (store.parent / "out.csv").exists() and not (store.parent / "export").exists()
    assert not (store.parent / "x.duckdb").exists()
    assert verify.check(Store(store)).ok


def test_the_shell_cannot_redefine_a_view(store: Path) -> None:
    """The reported attack: two statements in one shell session dropped a network from a day."""
    before = store_hashes(store)
    script = (
        "CREATE OR REPLACE TEMP VIEW pv2 AS SELECT * FROM pageviews WHERE client_net <> '198.51.100.0/24';\n"
        "CREATE OR REPLACE VIEW pageviews AS SELECT * FROM pv2;\n"
        "EXPLAIN ANALYZE DROP VIEW pageviews;\n"
        "SELECT count(*) AS n FROM pageviews WHERE client_net = '198.51.100.0/24';\n"
    )
    n = query.run(store, "SELECT count(*) FROM pageviews WHERE client_net = '198.51.100.0/24'").rows[0][0]
    assert n > 0
    r = CliRunner().invoke(main, ["shell", "--store", str(store), "--case", "SH-2"], input=script)
    assert r.exit_code == 2 and r.stderr.count("refused by the sandbox") == 3, r.stderr
    assert f"{n}" in r.stdout
    assert store_hashes(store) == before


@pytest.mark.parametrize(("sql", "touches"), WRITES[:9] + WRITES[12:16] + WRITES[19:22] + WRITES[34:35])
def test_escape_fails_in_the_cli_with_one_line(store: Path, sql: str, touches: bool) -> None:
    for wrapped in ("{}", "EXPLAIN ANALYZE {}"):
        full = wrapped.replace("{}", fill(sql, store))
        result = CliRunner().invoke(main, ["query", "--store", str(store), "--case", "SEC-1", full])
        assert result.exit_code == 2, (full, result.output)
        assert result.stderr.startswith("hostlogs: error: ") and result.stderr.count("\n") == 1, result.stderr
        assert any(m in result.stderr for m in ("refused by the sandbox", "exactly one SQL", "Parser Error"))


def test_refused_attempts_are_audited(store: Path) -> None:
    sql = fill(WRITES[0][0], store)
    CliRunner().invoke(main, ["query", "--store", str(store), "--case", "SEC-9", sql])
    log = [json.loads(x) for x in (store / "_audit" / "audit.jsonl").read_text().splitlines()]
    mine = [e for e in log if e["case"] == "SEC-9"]
    assert [e["status"] for e in mine] == ["started", "refused"] and mine[1]["of"] == mine[0]["seq"]
    assert mine[0]["sql"] == sql


def test_a_planted_file_is_not_visible(tmp_path: Path) -> None:
    """A valid Parquet file that no manifest names is not evidence: the views never show it."""
    ingest_paths(tmp_path / "s", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    store = Store(tmp_path / "s")
    n = query.run(store.root, "SELECT count(*) FROM pageviews").rows[0][0]
    day = store.root / "pageviews" / "date=2026-11-01"
    (day / "part-0123456789abcdef.parquet").write_bytes(next(day.glob("*.parquet")).read_bytes())
    new_day = store.root / "pageviews" / "date=2026-11-05"
    new_day.mkdir()
    (new_day / "part-0123456789abcdef.parquet").write_bytes(next(day.glob("*.parquet")).read_bytes())
    assert query.run(store.root, "SELECT count(*) FROM pageviews").rows[0][0] == n
    assert query.run(store.root, "SELECT count(*) FROM pageviews WHERE date = DATE '2026-11-05'").rows == [
        (0,)
    ]


NORMAL = [
    ("SELECT count(*) FROM pageviews", [(2501,)]),
    ("SELECT count(*) FROM rejects", [(4,)]),
    ("SELECT sum(rows) FROM ingest_runs", [(2501,)]),
    ("WITH d AS (SELECT domain, count(*) AS n FROM pageviews GROUP BY 1) SELECT count(*) FROM d WHERE n > 0", [(7,)]),
    ("SELECT count(*) FROM (SELECT client_net, row_number() OVER (PARTITION BY client_net ORDER BY ts) AS r "
     "FROM pageviews) WHERE r = 1", None),
    ("SELECT count(*) FROM pageviews p JOIN (SELECT DISTINCT client_net FROM pageviews WHERE "
     "regexp_matches(path, '^/wp-')) s USING (client_net)", None),
    ("SELECT min(date), max(date) FROM pageviews", None),
    ("DESCRIBE pageviews", None),
    ("SUMMARIZE SELECT status, bytes FROM pageviews", None),
    ("EXPLAIN SELECT * FROM pageviews WHERE domain = 'www.example.com'", None),
    ("FROM pageviews SELECT path LIMIT 1", None),
]  # fmt: skip


@pytest.mark.parametrize(("sql", "expected"), NORMAL)
def test_normal_selects_work(store: Path, sql: str, expected: list[tuple[object, ...]] | None) -> None:
    result = query.run(store, sql)
    assert result.rows
    if expected is not None:
        assert result.rows == expected


@pytest.mark.parametrize("reader", ["auto", "arrow"])
def test_date_partitions_are_pruned(store: Path, tmp_path: Path, reader: str) -> None:
    """A date predicate never opens another day's file (pyarrow or DuckDB prune by the hive partition;
    DuckDB reads the first file's footer for the columns, so that one is intact here)."""
    copy = tmp_path / "copy"
    shutil.copytree(store, copy)
    for day in ("2026-11-01", "2026-11-03") if reader == "arrow" else ("2026-11-03",):
        for f in (copy / "pageviews" / f"date={day}").glob("*.parquet"):
            f.write_bytes(b"not parquet at all".ljust(f.stat().st_size, b"!"))  # (of its committed size)
    with query.connect(copy, case="P-1", limits=Limits(reader=reader)) as con:
        rows = con.execute(
            "SELECT count(*), count(DISTINCT date) FROM pageviews WHERE date = DATE '2026-11-02'"
        )
        assert rows.rows == [(833, 1)] and not con.warnings
        plan = con.execute(
            "EXPLAIN ANALYZE SELECT count(*) FROM pageviews WHERE date = DATE '2026-11-02' AND status = 404"
        ).rows[0][1]
        if con.fenced:  # DuckDB's reader: the partition filter leaves the other days' files unopened
            assert "File Filters: date = '2026-11-02'::DATE" in plan and "Filters: status = 404" in plan
            assert "READ_PARQUET" in plan and "Scanning Files: 1/" in plan
        else:  # filters and projection pushed into the pyarrow scan
            assert "Filters:" in plan and "\"date\" = DATE '2026-11-02'" in plan and "status" in plan
            assert "ARROW_SCAN" in plan
        assert not con.warnings
        desc = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE pageviews)").rows)
        assert desc["date"] == "DATE" and desc["client_net"] == "VARCHAR" and desc["client_id"] == "BIGINT"


def test_uncommitted_files_are_invisible(tmp_path: Path) -> None:
    ingest_paths(tmp_path / "s", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    store = Store(tmp_path / "s")
    n = query.run(store.root, "SELECT count(*) FROM pageviews").rows[0][0]
    extra = "pageviews/date=2026-11-01/part-ffffffffffffffff.parquet"
    (store.root / extra).write_bytes(store.committed_parquet()[0].read_bytes())
    (store.root / "_state" / "files" / "pending.json").write_text(json.dumps({"seq": 99, "files": [extra]}))
    assert query.run(store.root, "SELECT count(*) FROM pageviews").rows[0][0] == n
    with pytest.raises(UsageError, match="refused by the sandbox"):
        query.run(store.root, f"SELECT * FROM read_parquet('{(store.root / extra).resolve()}')")


def test_case_is_required_whatever_the_config_or_environment_says(store: Path, tmp_path: Path) -> None:
    """The store is consulted only under a documented reason: neither a config nor an investigator's
    environment can switch the case off (exit 3, one line); nothing is read or audited."""
    r = CliRunner().invoke(main, ["query", "--store", str(store), "SELECT 1"])
    assert r.exit_code == 2 and "--case" in r.stderr and r.stderr.count("\n") == 1
    assert "require_case" not in r.stderr  # (it had told how to switch the check off)
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"store = '{store}'\n[query]\nrequire_case = false\n")
    before = sorted(p.name for p in (store / "_audit").iterdir()) if (store / "_audit").exists() else []
    for args, env in (
        (["--config", str(cfg)], {}),
        (["--store", str(store)], {"HOSTLOGS_QUERY_REQUIRE_CASE": "false"}),
    ):
        r = CliRunner().invoke(main, ["query", *args, "--format", "csv", "SELECT 42 AS x"], env=env)
        assert r.exit_code == 3 and "require_case must be true" in r.stderr and r.stderr.count("\n") == 1
        assert r.stdout == ""
    after = sorted(p.name for p in (store / "_audit").iterdir()) if (store / "_audit").exists() else []
    assert after == before
    cfg.write_text(f"store = '{store}'\n[query]\nrequire_case = true\n")
    r = CliRunner().invoke(
        main, ["query", "--config", str(cfg), "--case", "C-1", "--format", "csv", "SELECT 42 AS x"]
    )
    assert (r.exit_code, r.stdout) == (0, "x\n42\n")


def test_output_files_are_written_by_hostlogs(store: Path, tmp_path: Path) -> None:
    sql = "SELECT ts, domain, status FROM pageviews ORDER BY ts LIMIT 5"
    for name in ("out.csv", "out.json", "out.parquet"):
        r = CliRunner().invoke(
            main, ["query", "--store", str(store), "--case", "C-1", "--output", str(tmp_path / name), sql]
        )
        assert r.exit_code == 0 and "5 rows written" in r.stderr
    assert (tmp_path / "out.csv").read_text().startswith("ts,domain,status\n")
    assert len(json.loads((tmp_path / "out.json").read_text())) == 5  # one document (.jsonl: lines)
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 5 and str(table.schema.field("ts").type) == "timestamp[us, tz=UTC]"
    r = CliRunner().invoke(
        main, ["query", "--store", str(store), "--case", "C-1", "--format", "parquet", sql]
    )
    assert r.exit_code == 2 and "--output" in r.stderr


def test_shell_runs_statements_and_audits_each(store: Path) -> None:
    script = (
        "SELECT count(*) AS n\nFROM pageviews;\nCOPY (SELECT 1) TO '/tmp/x.csv';\n.tables\nSELECT 2 AS two;\n"
    )
    r = CliRunner().invoke(main, ["shell", "--store", str(store), "--case", "SH-1"], input=script)
    assert r.exit_code == 2  # piped input with a failed statement
    assert "2501" in r.stdout and "pageviews" in r.stdout and "two" in r.stdout
    assert r.stderr.count("refused by the sandbox") == 1
    log = [json.loads(x) for x in (store / "_audit" / "audit.jsonl").read_text().splitlines()]
    mine = [e for e in log if e["case"] == "SH-1"]
    assert [(e["command"], e["status"]) for e in mine] == [
        ("shell", "started"), ("shell", "ok"), ("shell", "started"), ("shell", "refused"),
        ("shell", "started"), ("shell", "ok"), ("shell", "started"), ("shell", "ok"),
    ]  # fmt: skip


def test_table_is_truncated_to_the_width() -> None:
    res = QueryResult(["a", "b"], [("x" * 100, "y" * 100)])
    out = render.table(res, width=60)
    assert all(len(line) <= 60 for line in out.splitlines())
