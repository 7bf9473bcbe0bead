"""DuckDB over the store, sandboxed: views ``pageviews``, ``rejects`` and ``ingest_runs``.

Only committed files are visible (a batch being written, or left by a crash, is skipped). What a
query may do is fenced by DuckDB's own controls, set after the views are made and then locked:

============================  =====================================================================
control                       what it blocks
============================  =====================================================================
enable_external_access=false  every file/network access not allowed below: read_csv('/etc/passwd'),
                              read_parquet/glob outside the store, COPY ... TO, ATTACH, EXPORT
                              DATABASE, INSTALL/LOAD, CREATE (persistent) SECRET
allowed_paths=[files]         the exceptions: exactly the committed Parquet files and the manifests
                              (not their directories: uncommitted files stay unreadable too)
autoload/autoinstall=false    a query pulling in an extension (httpfs, ...) behind our back
lock_configuration=true       SET / RESET / PRAGMA lifting any of the above, memory_limit, threads
============================  =====================================================================

DuckDB cannot make an allowed path read-only, so a write *into* the store (``COPY ... TO
'<store>/pageviews/...'``) is stopped by the statement check: only SELECT-like statements and
EXPLAIN run. The check is the second fence, not the first: every escape above fails in DuckDB even
without it (tests/test_query_sandbox.py runs them against the bare connection too).
"""

from __future__ import annotations

import atexit
import csv
import io
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from .errors import StoreChangedError, StoreError, UsageError
from .schema import PAGEVIEWS, REJECTS
from .store import Store

_DUCK_TYPES = {
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "int16": "SMALLINT",
    "int64": "BIGINT",
}
READ_ONLY_STATEMENTS = {duckdb.StatementType.SELECT, duckdb.StatementType.EXPLAIN}
SANDBOX_HINT = "queries can read only the store's views; use --output FILE to save results"


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    table: pa.Table | None = None  # the Arrow result, for typed output (Parquet)


def connect(
    store_root: str | Path, *, memory_limit: str = "4GB", threads: int = 2
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the store's views, then sandboxed and locked (see module doc)."""
    if not Path(store_root).is_dir():
        raise StoreError(f"no store at {store_root}: run 'hostlogs ingest' first or give --store")
    # Absolute paths for the sandbox's allow-list: the root resolved once, not each file (that took
    # half of this function for a two-year store).
    store = Store(Path(store_root).resolve())
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    pageviews = [str(p) for p in store.committed_parquet()]
    _view(con, "pageviews", pageviews, PAGEVIEWS)
    rejects = [str(p) for p in store.committed(store.rejects)]
    _view(con, "rejects", rejects, REJECTS)
    manifests = sorted(str(p) for p in (store.root / "_manifests").glob("*/*.json"))
    if manifests:
        con.execute(
            f"CREATE VIEW ingest_runs AS SELECT * FROM read_json({sql_list(manifests)}, format='auto', "
            "union_by_name=true)"
        )
    else:
        con.execute(
            "CREATE VIEW ingest_runs AS SELECT NULL::BIGINT AS seq, NULL::VARCHAR AS batch WHERE false"
        )
    _sandbox(con, [*pageviews, *rejects, *manifests], memory_limit, threads)
    return con


def _sandbox(con: duckdb.DuckDBPyConnection, readable: list[str], memory_limit: str, threads: int) -> None:
    spill = tempfile.mkdtemp(prefix="hostlogs-duckdb-")  # private spill space, not the cwd's .tmp
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
    try:
        con.execute(f"SET memory_limit = {sql_str(memory_limit)}")
        con.execute(f"SET threads = {int(threads)}")
    except duckdb.Error as exc:
        raise UsageError(f"invalid query.memory_limit or query.threads: {first_line(exc)}") from None
    con.execute(f"SET temp_directory = {sql_str(spill)}")
    # Investigations scan the same files several times (matches, rows, summaries): parse each
    # file's footer once per session instead of once per scan (730 footers on a two-year store).
    con.execute("SET parquet_metadata_cache = true")
    con.execute("SET autoinstall_known_extensions = false")
    con.execute("SET autoload_known_extensions = false")
    con.execute("SET allow_community_extensions = false")
    con.execute("SET allow_persistent_secrets = false")
    con.execute(f"SET allowed_paths = {sql_list(readable)}")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[str], schema: Any) -> None:
    if files:
        # No union_by_name: it would open every file's footer at bind time and defeat date pruning.
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({sql_list(files)}, "
            "hive_partitioning=true, hive_types={'date': DATE})"
        )
        return
    cols = ", ".join(f"NULL::{_DUCK_TYPES[str(f.type)]} AS {f.name}" for f in schema)
    con.execute(f"CREATE VIEW {name} AS SELECT {cols}, NULL::DATE AS date WHERE false")


def sql_list(values: list[str]) -> str:
    """A SQL list literal (views cannot take prepared parameters)."""
    return "[" + ", ".join(sql_str(v) for v in values) + "]"


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def check_statement(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Refuse anything but one read-only statement (the second fence; see the module doc)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {first_line(exc)}") from None
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement (got {len(statements)})")
    kind = statements[0].type
    if kind not in READ_ONLY_STATEMENTS:
        name = str(kind).rsplit(".", 1)[-1]
        raise UsageError(
            f"query refused by the sandbox: {name} statements are not allowed, only SELECT/WITH/"
            f"DESCRIBE/SUMMARIZE/EXPLAIN ({SANDBOX_HINT})"
        )


def execute(con: duckdb.DuckDBPyConnection, sql: str) -> QueryResult:
    """Run SQL on an open connection; DuckDB errors become one-line usage errors."""
    try:
        rel = con.sql(sql)
        if rel is None:  # a statement without a result (our own CREATE TEMP TABLE)
            return QueryResult([], [])
        table: pa.Table = rel.to_arrow_table()
    except (duckdb.PermissionException, duckdb.IOException) as exc:
        if _vanished(exc):
            raise StoreChangedError(STORE_CHANGED) from None
        if not isinstance(exc, duckdb.PermissionException):
            raise UsageError(f"query failed: {first_line(exc)}") from None
        raise UsageError(f"query refused by the sandbox: {_permission(exc)} ({SANDBOX_HINT})") from None
    except duckdb.InvalidInputException as exc:
        if "configuration has been locked" in str(exc):
            raise UsageError(f"query refused by the sandbox: settings are locked ({SANDBOX_HINT})") from None
        raise UsageError(f"query failed: {first_line(exc)}") from None
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {first_line(exc)}") from None
    rows = [tuple(r.values()) for r in table.to_pylist()]
    return QueryResult(columns=table.column_names, rows=rows, table=table)


STORE_CHANGED = (
    "the store changed while the query ran (a compaction, purge or erase replaced its files): run it again"
)
_FILE_IN_ERROR = re.compile(r'"([^"]+?\.parquet)(?:/\*\*/\*\.parquet)?"')


def _vanished(exc: duckdb.Error) -> bool:
    """DuckDB failed on a store file that is gone: a maintenance run retired it after the views were made.

    (The sandbox then reports the missing file as a path outside the store: DuckDB tries it as a glob.)
    """
    return any(
        ("/pageviews/date=" in f or "/_rejects/date=" in f) and not os.path.exists(f)
        for f in _FILE_IN_ERROR.findall(str(exc))
    )


T = TypeVar("T")


def with_connection(
    store_root: str | Path, work: Callable[[duckdb.DuckDBPyConnection], T], *,
    memory_limit: str = "4GB", threads: int = 2,
) -> T:  # fmt: skip
    """``work`` on a fresh sandboxed connection, once more on a new one if the store changed meanwhile.

    The views list the files committed when the connection opened; a compaction, purge or erase that
    commits during the query retires some of them. The second connection lists the new ones.
    """
    for attempt in (1, 2):
        con = connect(store_root, memory_limit=memory_limit, threads=threads)
        try:
            return work(con)
        except StoreChangedError:
            if attempt == 2:
                raise
        finally:
            con.close()
    raise AssertionError("unreachable")


def _permission(exc: duckdb.Error) -> str:
    text = first_line(exc).removeprefix("Permission Error: ")
    return text.replace(" - file system operations are disabled by configuration", " (outside the store)")


def run(store_root: str | Path, sql: str, *, memory_limit: str = "4GB", threads: int = 2) -> QueryResult:
    """One read-only statement over the sandboxed views."""

    def work(con: duckdb.DuckDBPyConnection) -> QueryResult:
        check_statement(con, sql)
        return execute(con, sql)

    return with_connection(store_root, work, memory_limit=memory_limit, threads=threads)


# --- output -------------------------------------------------------------------------------------


def render(result: QueryResult, fmt: str, width: int | None = None) -> str:
    if fmt == "json":
        return "\n".join(
            json.dumps(dict(zip(result.columns, r, strict=True)), default=str) for r in result.rows
        )
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(result.columns)
        w.writerows(result.rows)
        return buf.getvalue().rstrip("\n")
    return table(result, width=width)


def table(result: QueryResult, max_width: int = 60, width: int | None = None) -> str:
    """Aligned text table; cells cut at ``max_width`` and the widest columns narrowed to ``width``."""

    def cell(v: Any, limit: int) -> str:
        s = "NULL" if v is None else str(v).replace("\n", "\\n")
        return s if len(s) <= limit else s[: max(limit - 1, 0)] + "…"

    widths = [
        max([len(c), *(len(cell(r[i], max_width)) for r in result.rows)])
        for i, c in enumerate(result.columns)
    ]
    if width:
        while sum(widths) + 2 * (len(widths) - 1) > width and max(widths, default=0) > 8:
            widths[widths.index(max(widths))] -= 1
    header = "  ".join(cell(c, w).ljust(w) for c, w in zip(result.columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = [
        "  ".join(cell(v, w).ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in result.rows
    ]
    n = len(result.rows)
    return "\n".join([header.rstrip(), sep, *body, f"({n} row{'s' if n != 1 else ''})"])


def write_output(result: QueryResult, path: str | Path, fmt: str | None = None) -> str:
    """Write the result to a file (written by hostlogs, never by the query); returns the format used."""
    path = Path(path)
    fmt = fmt or {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}.get(
        path.suffix.lower(), "csv"
    )
    try:
        if fmt == "parquet":
            data = result.table if result.table is not None else _to_arrow(result)
            pq.write_table(data, path, compression="zstd")
        else:
            path.write_text(render(result, fmt) + "\n", encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return fmt


def _to_arrow(result: QueryResult) -> pa.Table:
    return pa.Table.from_pylist([dict(zip(result.columns, r, strict=True)) for r in result.rows])
