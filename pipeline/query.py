"""DuckDB over the store: views ``pageviews``, ``rejects`` and ``ingest_runs``.

Only committed files are visible (a batch being written, or left by a crash, is skipped).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from .errors import StoreError, UsageError
from .schema import PAGEVIEWS, REJECTS
from .store import Store

_DUCK_TYPES = {
    "timestamp[us, tz=UTC]": "TIMESTAMPTZ",
    "string": "VARCHAR",
    "int16": "SMALLINT",
    "int64": "BIGINT",
}


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]


def connect(store_root: str | Path) -> duckdb.DuckDBPyConnection:
    store = Store(store_root)
    if not store.root.is_dir():
        raise StoreError(f"no store at {store.root}: run 'hostlogs ingest' first or give --store")
    con = duckdb.connect(":memory:")
    con.execute("SET TimeZone = 'UTC'")
    _view(con, "pageviews", [str(p) for p in store.committed_parquet()], PAGEVIEWS, hive=True)
    skip = store.uncommitted_files()
    rejects = sorted(str(p) for p in store.rejects.glob("date=*/*.parquet") if p not in skip)
    _view(con, "rejects", rejects, REJECTS, hive=True)
    manifests = sorted(str(p) for p in (store.root / "_manifests").glob("*/*.json"))
    if manifests:
        con.execute(
            f"CREATE VIEW ingest_runs AS SELECT * FROM read_json({sql_list(manifests)}, format='auto', "
            "union_by_name=true)"
        )
    return con


def _view(con: duckdb.DuckDBPyConnection, name: str, files: list[str], schema: Any, hive: bool) -> None:
    if files:
        con.execute(
            f"CREATE VIEW {name} AS SELECT * FROM read_parquet({sql_list(files)}, "
            f"hive_partitioning={str(hive).lower()})"
        )
        return
    cols = ", ".join(f"NULL::{_DUCK_TYPES[str(f.type)]} AS {f.name}" for f in schema)
    con.execute(f"CREATE VIEW {name} AS SELECT {cols}, NULL::DATE AS date WHERE false")


def sql_list(values: list[str]) -> str:
    """A SQL list literal (views cannot take prepared parameters)."""
    return "[" + ", ".join("'" + v.replace("'", "''") + "'" for v in values) + "]"


def run(store_root: str | Path, sql: str) -> QueryResult:
    con = connect(store_root)
    try:
        cur = con.execute(sql)
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {str(exc).splitlines()[0]}") from None
    columns = [d[0] for d in cur.description or []]
    return QueryResult(columns=columns, rows=cur.fetchall())


def render(result: QueryResult, fmt: str) -> str:
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
    return _table(result)


def _table(result: QueryResult, max_width: int = 60) -> str:
    def cell(v: Any) -> str:
        s = "NULL" if v is None else str(v)
        return s if len(s) <= max_width else s[: max_width - 1] + "…"

    cells = [[cell(v) for v in row] for row in result.rows]
    widths = [max([len(c), *(len(r[i]) for r in cells)]) for i, c in enumerate(result.columns)]
    line = "  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in cells]
    return "\n".join([line, sep, *body, f"({len(result.rows)} row{'s' if len(result.rows) != 1 else ''})"])
