"""``hostlogs query`` and ``investigate ip`` as the short processes they are: every output format
and column type written from a fresh process, values as DuckDB writes them, results Parquet cannot
hold a one-line usage error (not an internal error), and no column engine loaded to look up one
address."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import QueryLimitError, UsageError
from pipeline.investigate import audit
from pipeline.investigate.result import QueryResult
from tests.conftest import ROOT, ingest_paths

# Every kind of column a query can return (Parquet excepted: INTERVAL, below)
TYPES = (
    "SELECT ts, date, domain, status, bytes, client_id, client_net, 1.5::DECIMAL(10, 2) AS dec, "
    "[1, 2] AS list, {'a': 1, 'b': 'x'} AS struct, MAP {'k': 1} AS map, 'ab'::BLOB AS blob, "
    "'6ba7b810-9dad-11d1-80b4-00c04fd430c8'::UUID AS uuid, 2::HUGEINT AS huge, 1.5::FLOAT AS float, "
    "TIME '10:00' AS time, NULL AS nothing, true AS yes, ts::TIMESTAMP AS naive "
    "FROM pageviews ORDER BY ts LIMIT 3"
)
SCRIPT = """
import sys
from pipeline.cli import main
for args in {runs!r}:
    try:
        main(args)
    except SystemExit as e:
        print("exit", e.code or 0)
"""


@pytest.fixture(scope="module")
def sample_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    store = tmp_path_factory.mktemp("query-process") / "store"
    ingest_paths(store, [ROOT / "sample_logs" / "other_vhosts_access.log"], fmt="vhost_combined")
    return store


def test_a_query_process_writes_every_format(sample_store: Path, tmp_path: Path) -> None:
    base = ["query", "--store", str(sample_store), "--case", "P-1"]
    formats = ("table", "csv", "json", "jsonl", "parquet")
    runs = [[*base, "--format", f, "--output", str(tmp_path / f"out.{f}"), TYPES] for f in formats]
    runs.append([*base, "--format", "csv", "SELECT INTERVAL 3 DAY AS iv, [1.5, NULL] AS l"])  # stdout
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT.format(runs=runs)], capture_output=True, text=True, cwd=ROOT, check=True
    )
    lines = out.stdout.splitlines()
    assert lines.count("exit 0") == len(runs), out.stdout + out.stderr
    assert 'iv,l\n3 days,"[1.5, NULL]"\n' in out.stdout  # DuckDB's text, not Python's reprs
    assert (
        (tmp_path / "out.csv").read_text().startswith("ts,date,domain,status,bytes,client_id,client_net,dec")
    )
    assert len(json.loads((tmp_path / "out.json").read_text())) == 3
    assert len((tmp_path / "out.jsonl").read_text().splitlines()) == 3
    assert "6ba7b810-9dad-11d1-80b4-00c04fd430c8" in (tmp_path / "out.table").read_text()
    table = pq.read_table(tmp_path / "out.parquet")
    assert table.num_rows == 3 and str(table.schema.field("map").type).startswith("map<string, int32")
    assert table.column("dec").to_pylist()[0] == pytest.approx(1.5)


def test_a_result_parquet_cannot_hold_is_a_usage_error(sample_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "iv.parquet"
    args = ["query", "--store", str(sample_store), "--case", "P-1", "--output", str(out)]
    r = CliRunner().invoke(main, [*args, "SELECT INTERVAL 3 DAY AS iv"])
    assert r.exit_code == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "cannot be written as Parquet" in r.stderr and "CAST" in r.stderr and "internal" not in r.stderr
    assert not out.exists()  # nothing half-written
    out.write_text("kept")  # a file that was there: replaced by a result, never touched by a failure
    r = CliRunner().invoke(main, [*args, "SELECT INTERVAL 3 DAY AS iv"])
    assert r.exit_code == 2 and out.read_text() == "kept"
    target = tmp_path / "target.parquet"  # written through a symlink, as a shell's > would
    (tmp_path / "link.parquet").symlink_to(target)
    args[-1] = str(tmp_path / "link.parquet")
    r = CliRunner().invoke(main, [*args, "SELECT 1 AS a"])
    assert r.exit_code == 0 and pq.read_table(target).num_rows == 1
    assert (tmp_path / "link.parquet").is_symlink()
    args[-1] = str(out)
    r = CliRunner().invoke(main, [*args, "SELECT CAST(INTERVAL 3 DAY AS VARCHAR) AS iv"])
    assert r.exit_code == 0 and pq.read_table(out).column("iv").to_pylist() == ["3 days"]


# Expressions whose values reach the renderer as Python objects with no text of their own in DuckDB's
# terms (nested, intervals, blobs): rendered as DuckDB's own CAST(x AS VARCHAR) writes them.
CELLS = [
    "[1.5, NULL]::DECIMAL(4, 2)[]", "['a', NULL, 'b c']", "[[1, 2], []]", "{'a': 1, 'b': 'x'}",
    "{'n': {'m': [1]}}", "MAP {'k': 1, 'j': NULL}", "[{'a': 1}]", "INTERVAL 3 DAY", "INTERVAL 0 SECOND",
    "INTERVAL 14 MONTH", "INTERVAL 1 MONTH + INTERVAL 1 DAY", "INTERVAL '1.5 seconds'",
    "-(INTERVAL 90 SECOND)", "INTERVAL 2 YEAR + INTERVAL 25 HOUR", "'a\\x00b'::BLOB", "'\\xFF\\x0A'::BLOB",
    "'plain'::BLOB", "1.50::DECIMAL(5, 2)", "42::HUGEINT", "DATE '2026-11-01'",
    # negative intervals (months towards zero), strings inside nested values (quoted when their text
    # could be read as something else), booleans, times and intervals inside nested values
    "INTERVAL '-1 month'", "-(INTERVAL 13 MONTH)", "INTERVAL '-1 month 1 day'", "-(INTERVAL 25 HOUR)",
    "['a, b', '', 'NULL', 'null', ' x', 'x ', 'x y', 'a''b', 'a\\b', 'a:b', 'a=b', 'é', 'a;b']",
    "{'k': 'a, b', 'n': NULL, 'e': ''}", "MAP {'a, b': 'x y', 'q''': ''}", "[true, false, NULL]",
    "[TIMESTAMP '2020-01-01 10:00', NULL]", "[DATE '2020-01-01']", "[INTERVAL 1 DAY + INTERVAL 1 HOUR]",
    "['a:b'::BLOB]", "MAP {1: [1, 2]}", "[{'a': ['x, y']}]",
    "true", "false", "'0.0000001'::DECIMAL(18, 7)", "'-0.0000000001'::DECIMAL(38, 10)", "0::DECIMAL(9, 3)",
    "[0.0000001::DECIMAL(18, 7)]",
    # TIMESTAMPTZ: the offset as DuckDB writes it (+00, not +00:00), in every time zone (below)
    "TIMESTAMPTZ '2026-11-01 10:00:00+00'", "TIMESTAMPTZ '2026-11-01 10:00:00.5+00'",
    "[TIMESTAMPTZ '2026-11-01 10:00:00+00', NULL]", "{'t': TIMESTAMPTZ '2026-11-01 10:00:00.25+00'}",
]  # fmt: skip


@pytest.mark.parametrize("expr", CELLS)
def test_cells_are_duckdb_s_text(expr: str) -> None:
    import duckdb

    from pipeline.investigate.render import cell

    row = duckdb.sql(f"SELECT {expr} AS v, CAST({expr} AS VARCHAR) AS t").to_arrow_table().to_pylist()[0]
    assert cell(row["v"]) == row["t"]


@pytest.mark.parametrize("zone", ["UTC", "Asia/Kolkata", "America/St_Johns", "Europe/Amsterdam"])
def test_a_timestamptz_is_written_with_duckdb_s_offset(zone: str) -> None:
    import duckdb

    from pipeline.investigate.render import cell

    con = duckdb.connect()
    con.execute(f"SET TimeZone = '{zone}'")
    for expr in ("TIMESTAMPTZ '2026-11-01 10:00:00.5+00'", "TIMESTAMPTZ '2026-07-01 23:59:59+00'"):
        row = con.sql(f"SELECT {expr} AS v, CAST({expr} AS VARCHAR) AS t").to_arrow_table().to_pylist()[0]
        assert cell(row["v"]) == row["t"]


# Values Arrow has no exact form for (a UHUGEINT past 2^127 came out as -1, a TIMETZ without its
# offset, BIT and BIGNUM as their internal bytes, an empty map as an empty list), also inside nested
# values: every output of a query shows what DuckDB's own CAST(x AS VARCHAR) writes.
INEXACT = [
    "'340282366920938463463374607431768211455'::UHUGEINT", "'170141183460469231731687303715884105728'::UHUGEINT",
    "7::UHUGEINT", "'12:00:00+05:30'::TIMETZ", "'23:59:59.5-11'::TIMETZ", "'101'::BIT", "'0'::BIT",
    "'-12345678901234567890123456789012345678901234567890'::BIGNUM", "MAP {}", "[MAP {}, MAP {'a': 1}]",
    "{'m': MAP {}, 'n': [MAP {}]}", "['12:00:00+05:30'::TIMETZ, NULL]", "{'b': '11'::BIT}",
    "MAP {'k': '1'::BIT}", "'170141183460469231731687303715884105727'::HUGEINT",
    "union_value(m := MAP {'a': 1})", "[union_value(m := MAP {'a': 1})]", "{'BIT': 1}",
    "'24:00:00'::TIME", "'10:00:00'::TIME", "'23:59:59.999999'::TIME", "0.1::FLOAT", "(1 / 3)::FLOAT",
    "3.4028235e38::FLOAT", "1e-8::FLOAT", "123456789::FLOAT", "'nan'::FLOAT", "-0.0::FLOAT",
    "[TIME '24:00:00', NULL]", "{'a': TIME '24:00:00'}", "[0.1::FLOAT]", "MAP {TIME '24:00:00': 0.1::FLOAT}",
    "{'f': [(1 / 3)::FLOAT]}", "'10:00:00.5'::TIME", "TIMESTAMP '2020-01-01 10:00:00.12'",
    "[TIMESTAMP '2020-01-01 10:00:00.5']", "TIMESTAMP '2020-01-01 10:00:00.000100'",
    # JSON in a list is written as it is, in a struct or map quoted (DuckDB's rule)
    "['{\"a\": 1}'::JSON, NULL]", "[['[1, 2]'::JSON]]", "{'k': '[1]'::JSON, 'l': ['{}'::JSON]}",
    "MAP {'a': '[1]'::JSON}", "'{\"a\": [1]}'::JSON",
]  # fmt: skip


def test_values_arrow_cannot_carry_are_duckdb_s_text(sample_store: Path, tmp_path: Path) -> None:
    import duckdb

    from pipeline.investigate import render, session

    select = ", ".join(f"{e} AS c{i}" for i, e in enumerate(INEXACT))
    expected = duckdb.sql(f"SELECT {', '.join(f'CAST({e} AS VARCHAR)' for e in INEXACT)}").fetchall()[0]
    result = session.run(sample_store, f"SELECT {select}, 1 AS c0", case="P-1")
    assert result.columns == [*(f"c{i}" for i in range(len(INEXACT))), "c0"]  # names kept, repeats too
    assert [render.cell(v) for v in result.rows[0][:-1]] == list(expected)
    assert result.rows[0][-1] == 1
    lines = render.render(result, "csv").splitlines()
    assert lines[1].startswith(
        "340282366920938463463374607431768211455,170141183460469231731687303715884105728,7,"
    )
    # types are walked, not read as text: a field or label called BIT keeps its column's type
    named = "SELECT {'BIT': 1} AS s, [{'UHUGEINT': 2}] AS l, 'ok'::ENUM('BIT', 'ok') AS e"
    typed = session.run(sample_store, named, case="P-1")
    assert typed.rows == [({"BIT": 1}, [{"UHUGEINT": 2}], "ok")]
    assert typed.table is not None and str(typed.table.schema.field("e").type).startswith("dictionary")
    # the scalars through the command line, into a Parquet file: text columns (an empty map has no
    # Parquet type: a usage error, tested above)
    out = tmp_path / "x.parquet"
    scalars = ", ".join(f"{e} AS c{i}" for i, e in enumerate(INEXACT[:8]))
    r = CliRunner().invoke(main, ["query", "--store", str(sample_store), "--case", "P-1", "--output", str(out),
                                  f"SELECT {scalars}"])  # fmt: skip
    assert r.exit_code == 0, r.stderr
    assert list(pq.read_table(out).to_pylist()[0].values()) == list(expected[:8])
    # a list of JSON is written as DuckDB writes it as text, and stays a list in a Parquet file
    json_list = "SELECT ['{\"a\": 1}'::JSON, NULL] AS l"
    assert render.render(session.run(sample_store, json_list, case="P-1"), "csv") == 'l\n"[{""a"": 1}, NULL]"'
    r = CliRunner().invoke(main, ["query", "--store", str(sample_store), "--case", "P-1", "--output",
                                  str(tmp_path / "j.parquet"), json_list])  # fmt: skip
    assert r.exit_code == 0 and pq.read_table(tmp_path / "j.parquet").to_pylist() == [
        {"l": ['{"a": 1}', None]}
    ]


def test_investigating_one_address_loads_no_column_engine(sample_store: Path) -> None:
    """``investigate ip`` looks up the address's pseudonyms (privacy.digests, privacy.keys) and
    queries DuckDB: polars, which those modules use for whole columns, is not loaded (~0.2 s)."""
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "try:\n"
        f"    main(['investigate', 'ip', '192.0.2.10', '--store', {str(sample_store)!r}, '--case', 'P-1',"
        " '--format', 'csv'])\n"
        "except SystemExit as e:\n"
        "    print('exit', e.code or 0)\n"
        "print('polars' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.splitlines()[-2:] == ["exit 0", "False"], out.stdout + out.stderr


def test_json_writes_intervals_as_text(sample_store: Path) -> None:
    args = ["query", "--store", str(sample_store), "--case", "P-1", "--format", "json"]
    r = CliRunner().invoke(main, [*args, "SELECT INTERVAL 1 DAY AS iv, [INTERVAL 2 MONTH] AS l, 1.50 AS d"])
    assert r.exit_code == 0 and json.loads(r.stdout) == [{"iv": "1 day", "l": ["2 months"], "d": "1.50"}]


def test_columns_of_one_name_are_all_written(sample_store: Path, tmp_path: Path) -> None:
    """``SELECT *`` over a join repeats names: every format keeps every column (JSON and Parquet,
    which need distinct names, call the second one ``name_2``)."""
    args = ["query", "--store", str(sample_store), "--case", "P-1"]
    sql = "SELECT 1 AS a, 2 AS a, 3 AS a_2"
    outputs = {f: CliRunner().invoke(main, [*args, "--format", f, sql]) for f in ("table", "csv", "json")}
    assert all(r.exit_code == 0 for r in outputs.values()), {f: r.stderr for f, r in outputs.items()}
    assert outputs["csv"].stdout == "a,a,a_2\n1,2,3\n"
    assert outputs["table"].stdout.splitlines()[2].split() == ["1", "2", "3"]
    assert json.loads(outputs["json"].stdout) == [{"a": 1, "a_2": 2, "a_2_2": 3}]
    r = CliRunner().invoke(main, [*args, "--output", str(tmp_path / "a.parquet"), sql])
    assert r.exit_code == 0 and pq.read_table(tmp_path / "a.parquet").to_pylist() == [
        {"a": 1, "a_2": 2, "a_2_2": 3}
    ]


@pytest.mark.parametrize("fmt", ["table", "csv", "json", "jsonl"])
def test_values_python_cannot_hold_are_duckdb_s_text(sample_store: Path, fmt: str) -> None:
    """'infinity' dates and timestamps, years past 9999 and nanoseconds have no Python value: they
    are written as DuckDB's text, not an internal error."""
    sql = (
        "SELECT 'infinity'::DATE AS d, '-infinity'::TIMESTAMPTZ AS t, DATE '10000-01-01' AS big, "
        "TIMESTAMP_NS '2020-01-01 10:00:00.123456789' AS ns, 1 AS n"
    )
    r = CliRunner().invoke(
        main, ["query", "--store", str(sample_store), "--case", "P-1", "--format", fmt, sql]
    )
    assert r.exit_code == 0, r.stderr
    for text in ("infinity", "-infinity", "10000-01-01", "2020-01-01 10:00:00.123456789"):
        assert text in r.stdout


@pytest.mark.parametrize("fmt", ["json", "jsonl"])
def test_json_output_is_valid_json_with_nan_and_infinities(sample_store: Path, fmt: str) -> None:
    sql = "SELECT 'nan'::DOUBLE AS n, 'inf'::DOUBLE AS i, ['-inf'::FLOAT, 1.5] AS l, 2.5 AS x"
    r = CliRunner().invoke(
        main, ["query", "--store", str(sample_store), "--case", "P-1", "--format", fmt, sql]
    )
    assert r.exit_code == 0, r.stderr

    def refuse(constant: str) -> None:
        raise AssertionError(f"not JSON: {constant}")

    rows = (
        [json.loads(r.stdout, parse_constant=refuse)]
        if fmt == "json"
        else [[json.loads(line, parse_constant=refuse) for line in r.stdout.splitlines()]]
    )
    assert rows[0] == [{"n": "nan", "i": "inf", "l": ["-inf", 1.5], "x": "2.5"}]


# One expression per type a plain result may hold (``result._NATIVE``), at its edges: these are
# fetched with DuckDB's own Python conversion, without pyarrow, and must equal the Arrow path's values.
PLAIN = {
    "boolean": ["true", "NULL::BOOLEAN"],
    "tinyint": ["(-128)::TINYINT"], "smallint": ["32767::SMALLINT"], "integer": ["(-2147483648)::INTEGER"],
    "bigint": ["9223372036854775807::BIGINT"], "utinyint": ["255::UTINYINT"],
    "usmallint": ["65535::USMALLINT"], "uinteger": ["4294967295::UINTEGER"],
    "ubigint": ["18446744073709551615::UBIGINT"],
    "double": ["'nan'::DOUBLE", "'-inf'::DOUBLE", "-0.0::DOUBLE", "0.1::DOUBLE", "1e308"],
    "decimal": ["1.50::DECIMAL(5, 2)", "'-12345678901234567890.123456789'::DECIMAL(38, 9)",
                "'0.0000001'::DECIMAL(18, 7)", "0.5::DECIMAL(3, 3)"],
    "date": ["DATE '2026-11-01'", "DATE '9999-12-30'", "DATE '0001-01-02'", "NULL::DATE"],
    "enum": ["'ok'::ENUM('BIT', 'ok')"],
    "null": ["NULL"],
    "varchar": ["''", "'é ✓ a\"b,c 😀'", "'NULL'", "'line\nbreak'"],
    "blob": ["'a\\x00b\\xFF'::BLOB", "''::BLOB"],
}  # fmt: skip
# Dates DuckDB's conversion hands over otherwise than the Arrow path: the infinities as Python's last
# and first dates, and dates Python has none for as text. A result holding one goes through Arrow.
ODD_DATES = ["'infinity'::DATE", "'-infinity'::DATE", "DATE '9999-12-31'", "DATE '0001-01-01'",
             "'-0044-03-15'::DATE", "DATE '10000-01-01'"]  # fmt: skip


def same(a: QueryResult, b: QueryResult) -> None:
    from pipeline.investigate import render

    assert a.columns == b.columns and len(a.rows) == len(b.rows)
    assert [list(map(repr, r)) for r in a.rows] == [list(map(repr, r)) for r in b.rows]  # (NaN)
    for fmt in ("table", "csv", "json", "jsonl"):
        assert render.render(a, fmt) == render.render(b, fmt)


def test_plain_results_are_fetched_as_the_arrow_path_fetches_them(sample_store: Path, tmp_path: Path) -> None:
    from pipeline.investigate import render, session
    from pipeline.investigate.result import _NATIVE

    assert set(PLAIN) == set(_NATIVE)  # every type fetched without Arrow is held here
    exprs = [e for es in PLAIN.values() for e in es]
    sql = f"SELECT {', '.join(f'{e} AS c{i}' for i, e in enumerate(exprs))}, date, 1 AS c0 FROM pageviews"
    with session.connect(sample_store, case="P-1") as sb:
        plain, typed = sb.execute(f"{sql} LIMIT 2"), sb.execute(f"{sql} LIMIT 2", arrow=True)
        odd = [(sb.execute(f"SELECT {e} AS d, 1 AS n"), sb.execute(f"SELECT {e} AS d, 1 AS n", arrow=True))
               for e in ODD_DATES]  # fmt: skip
        empty = sb.execute(f"{sql} LIMIT 0")
    assert plain.table is None and typed.table is not None  # plain: fetched without pyarrow
    same(plain, typed)
    for fetched, through_arrow in odd:
        assert fetched.table is not None  # left to Arrow, which tells them apart
        same(fetched, through_arrow)
    assert [fetched.rows[0][0] for fetched, _ in odd[:2]] == ["infinity", "-infinity"]
    # an output file of a plain result has the columns' own types, as through Arrow
    for result, name in ((plain, "plain"), (empty, "empty")):
        render.write_output(
            result, tmp_path / f"{name}.parquet", store=str(sample_store), key_dir=f"{sample_store}-keys"
        )
    render.write_output(
        typed, tmp_path / "typed.parquet", store=str(sample_store), key_dir=f"{sample_store}-keys"
    )
    assert pq.read_schema(tmp_path / "plain.parquet") == pq.read_schema(tmp_path / "typed.parquet")
    assert pq.read_schema(tmp_path / "empty.parquet") == pq.read_schema(tmp_path / "typed.parquet")
    rows = [pq.read_table(tmp_path / f"{name}.parquet").to_pylist() for name in ("plain", "typed")]
    assert repr(rows[0]) == repr(rows[1])  # (NaN)


def test_a_plain_result_over_the_limit_stops_and_the_connection_goes_on(sample_store: Path) -> None:
    """Counted as Arrow holds it: UTF-8 bytes (an emoji is 4, not 1 character), also mid-stream."""
    from pipeline.errors import QueryLimitError
    from pipeline.investigate import session
    from pipeline.investigate.limits import Limits

    too_large = [
        "SELECT range FROM range(100000000)",
        "SELECT repeat('x', 1000) FROM range(100000)",
        "SELECT repeat('😀', 1000) FROM range(20000)",  # 80 MB in UTF-8, 20 M characters
    ]
    with session.connect(sample_store, case="P-1", limits=Limits(memory_limit="64MB")) as sb:
        for sql in too_large:
            with pytest.raises(QueryLimitError, match=r"result is larger than query\.memory_limit"):
                sb.execute(sql)
            assert sb.execute("SELECT count(*) FROM pageviews").rows[0][0] > 0  # nothing left unread
        assert len(sb.execute("SELECT repeat('😀', 1000) FROM range(4000)").rows) == 4000  # 16 MB: within


def test_a_plain_statement_failing_or_stopped_in_its_first_rows_is_reported(
    sample_store: Path, tmp_path: Path
) -> None:
    """A cast error or the timeout before the first rows arrive: their own errors and exit codes
    (not an internal error), audited, and the session goes on."""
    from pipeline.investigate import session
    from pipeline.investigate.limits import Limits

    failing = "SELECT CASE WHEN i = 100000 THEN 'x' ELSE i::VARCHAR END::INTEGER AS v FROM range(200000) t(i)"
    slow = "SELECT i FROM range(10000000000) t(i) WHERE i < 3 OR hash(i) % 1000000000 = 0"
    shell = session.Session(sample_store, case="P-1", limits=Limits(timeout=0.5))
    try:
        with pytest.raises(UsageError, match="Conversion Error"):
            shell.execute(failing)
        with pytest.raises(QueryLimitError, match=r"query\.timeout"):
            shell.execute(slow)
        assert shell.execute("SELECT 1 AS one").rows == [(1,)]
    finally:
        shell.close()
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"store = '{sample_store}'\n[query]\ntimeout = '500ms'\n")
    r = CliRunner().invoke(main, ["query", "--config", str(cfg), "--case", "P-2", slow])
    assert r.exit_code == 9 and "query stopped after 0.5 s" in r.stderr, r.stderr
    statuses = [e["status"] for e in audit.AuditLog(sample_store).list("P-2")]
    assert statuses == ["started", "timeout"]


def test_explain_analyze_runs_once(sample_store: Path) -> None:
    """DuckDB runs an EXPLAIN ANALYZE (and a SELECT calling nextval) when its relation is made: it is
    never fetched by running it again (that doubled its time, counted against the timeout)."""
    from pipeline.investigate import session

    with session.connect(sample_store, case="P-1") as sb:
        sb.execute("CREATE TEMP SEQUENCE runs")  # (our own SQL: a statement of the user's cannot)
        sb.execute("EXPLAIN ANALYZE SELECT nextval('runs')")
        assert sb.execute("SELECT currval('runs') AS n").rows == [(1,)]
        assert sb.execute("SELECT nextval('runs') AS n").rows == [(2,)]
        assert sb.execute("SELECT currval('runs') AS n").rows == [(2,)]


def test_a_plain_query_process_loads_neither_pyarrow_nor_polars(sample_store: Path, tmp_path: Path) -> None:
    """~0.1 s of a query's start-up: its views and its plain result need neither; a Parquet output
    file still gets its columns' types (through Arrow)."""
    sql = "SELECT date, count(*) AS n, min(domain) AS d FROM pageviews GROUP BY date ORDER BY date LIMIT 1"
    out = tmp_path / "r.parquet"
    code = (
        "import sys\n"
        "from pipeline.cli import main\n"
        "for args in (['--format', 'csv'], ['--output', {out!r}]):\n"
        "    try:\n"
        f"        main(['query', '--store', {str(sample_store)!r}, '--case', 'P-1', *args,"
        f" {sql!r}])\n"
        "    except SystemExit as e:\n"
        "        print('exit', e.code or 0)\n"
        "    print(sorted(m for m in ('pyarrow', 'polars', 'numpy') if m in sys.modules))\n"
    ).replace("{out!r}", repr(str(out)))
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    lines = run.stdout.splitlines()
    assert lines[:4] == ["date,n,d", "2026-11-01,834,api.example.org", "exit 0", "[]"], (
        run.stdout + run.stderr
    )
    assert lines[5] == "['numpy', 'pyarrow']"  # the Parquet output, through Arrow
    assert [str(t) for t in pq.read_schema(out).types] == ["date32[day]", "int64", "string"]
