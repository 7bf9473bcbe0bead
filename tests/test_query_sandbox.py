"""The query sandbox: every escape fails with a one-line message (exit 2); normal SQL works."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline import query
from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.store import Store

from .conftest import ROOT, ingest_paths


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("sandbox")
    ingest_paths(tmp / "store", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    outside = tmp / "outside.parquet"
    pq.write_table(pq.read_table(Store(tmp / "store").committed_parquet()[0]), outside)
    return tmp / "store"


@pytest.fixture()
def con(store: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    c = query.connect(store)
    yield c
    c.close()


def committed(store: Path) -> str:
    return str(Store(store).committed_parquet()[0].resolve())


# (sql, blocked by DuckDB's own controls even without hostlogs' statement check)
ESCAPES: list[tuple[str, bool]] = [
    ("SELECT * FROM read_csv('/etc/passwd')", True),
    ("SELECT * FROM read_text('/etc/passwd')", True),
    ("SELECT * FROM read_blob('/etc/hostname')", True),
    ("SELECT * FROM read_json('/etc/os-release')", True),
    ("SELECT * FROM sniff_csv('/etc/passwd')", True),
    ("SELECT * FROM glob('/etc/*')", True),
    ("SELECT * FROM read_parquet('{tmp}/outside.parquet')", True),
    ("SELECT * FROM parquet_metadata('{tmp}/outside.parquet')", True),
    (
        "SELECT count(*) FROM read_parquet('{store}/pageviews/*/*.parquet')",
        True,
    ),  # a glob sees uncommitted files
    ("SELECT * FROM read_parquet('https://example.com/x.parquet')", True),
    ("COPY (SELECT 1) TO '{tmp}/out.csv'", True),
    ("COPY (SELECT * FROM pageviews) TO '{store}/pageviews/date=2026-11-01/evil.parquet'", True),
    (
        "COPY (SELECT 1 AS x) TO '{committed}' (FORMAT parquet)",
        False,
    ),  # an allowed path is writable: 2nd fence
    ("COPY pageviews FROM '/etc/passwd'", True),
    ("ATTACH '{tmp}/x.duckdb' AS x", True),
    ("ATTACH ':memory:' AS scratch", False),
    ("EXPORT DATABASE '{tmp}/export'", True),
    ("INSTALL httpfs", True),
    ("LOAD httpfs", True),
    ("LOAD '{tmp}/evil.duckdb_extension'", True),
    ("SET enable_external_access = true", True),
    ("RESET enable_external_access", True),
    ("SET allowed_directories = ['/']", True),
    ("SET allowed_paths = ['/etc/passwd']", True),
    ("SET lock_configuration = false", True),
    ("SET memory_limit = '100GB'", True),
    ("SET threads = 64", True),
    ("SET temp_directory = '/tmp'", True),
    ("PRAGMA memory_limit = '100GB'", True),
    ("SET autoload_known_extensions = true", True),
    ("CREATE SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", True),
    ("CREATE PERSISTENT SECRET s (TYPE s3, KEY_ID 'a', SECRET 'b')", True),
    ("CREATE OR REPLACE VIEW pageviews AS SELECT 1 AS x", False),
    ("DROP VIEW pageviews", False),
    ("CREATE TABLE t AS SELECT 1 AS x", False),
    ("CHECKPOINT", False),
    ("SELECT 1; COPY (SELECT 1) TO '{tmp}/out.csv'", False),
]


def fill(sql: str, store: Path) -> str:
    return sql.format(tmp=store.parent, store=store.resolve(), committed=committed(store))


@pytest.mark.parametrize(("sql", "duckdb_blocks"), ESCAPES)
def test_escape_fails_in_the_cli_with_one_line(store: Path, sql: str, duckdb_blocks: bool) -> None:
    sql = fill(sql, store)
    result = CliRunner().invoke(main, ["query", "--store", str(store), "--case", "SEC-1", sql])
    assert result.exit_code == 2, (sql, result.output)
    assert result.stderr.startswith("hostlogs: error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "refused by the sandbox" in result.stderr or "exactly one SQL statement" in result.stderr


@pytest.mark.parametrize(("sql", "duckdb_blocks"), [e for e in ESCAPES if e[1]])
def test_duckdb_itself_blocks_the_escape(
    con: duckdb.DuckDBPyConnection, store: Path, sql: str, duckdb_blocks: bool
) -> None:
    """Without the statement check: DuckDB's settings alone stop these (defence in depth)."""
    with pytest.raises(duckdb.Error):
        con.execute(fill(sql, store)).fetchall()


def test_store_is_unchanged_by_the_attempts(store: Path) -> None:
    path = Path(committed(store))
    before = path.read_bytes()
    for sql, _ in ESCAPES:
        CliRunner().invoke(main, ["query", "--store", str(store), "--case", "SEC-1", fill(sql, store)])
    assert path.read_bytes() == before
    assert not (store.parent / "out.csv").exists() and not (store.parent / "export").exists()
    assert not list(store.rglob("evil*"))
    log = [json.loads(x) for x in (store / "_audit" / "audit.jsonl").read_text().splitlines()]
    assert {e["status"] for e in log} <= {"refused", "error"} and len(log) >= len(ESCAPES)


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


def test_date_partitions_are_pruned(con: duckdb.DuckDBPyConnection) -> None:
    plan = con.execute(
        "EXPLAIN ANALYZE SELECT count(*) FROM pageviews WHERE date = DATE '2026-11-02'"
    ).fetchall()[0][1]
    assert "Scanning Files: 1/3" in plan
    desc = dict(con.execute("SELECT column_name, column_type FROM (DESCRIBE pageviews)").fetchall())
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


def test_case_is_required_unless_configured(store: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["query", "--store", str(store), "SELECT 1"])
    assert r.exit_code == 2 and "--case" in r.stderr and r.stderr.count("\n") == 1
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"store = '{store}'\n[query]\nrequire_case = false\n")
    r = CliRunner().invoke(main, ["query", "--config", str(cfg), "--format", "csv", "SELECT 42 AS x"])
    assert (r.exit_code, r.stdout) == (0, "x\n42\n")


def test_output_files_are_written_by_hostlogs(store: Path, tmp_path: Path) -> None:
    sql = "SELECT ts, domain, status FROM pageviews ORDER BY ts LIMIT 5"
    for name in ("out.csv", "out.json", "out.parquet"):
        r = CliRunner().invoke(
            main, ["query", "--store", str(store), "--case", "C-1", "--output", str(tmp_path / name), sql]
        )
        assert r.exit_code == 0 and "5 rows written" in r.stderr
    assert (tmp_path / "out.csv").read_text().startswith("ts,domain,status\n")
    assert len((tmp_path / "out.json").read_text().splitlines()) == 5
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
        ("shell", "ok"), ("shell", "refused"), ("shell", "ok"), ("shell", "ok"),
    ]  # fmt: skip


def test_table_is_truncated_to_the_width() -> None:
    res = query.QueryResult(["a", "b"], [("x" * 100, "y" * 100)])
    out = query.table(res, width=60)
    assert all(len(line) <= 60 for line in out.splitlines())
