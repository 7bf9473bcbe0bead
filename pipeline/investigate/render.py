"""Query results as text (aligned table, CSV, JSON lines) or files (CSV, JSON lines, Parquet).

Output files are written by hostlogs after the query, never by the query: the sandbox has no file access.
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from pipeline.errors import UsageError
from pipeline.investigate.sandbox import QueryResult
from pipeline.store.commit import Store


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


def write_output(result: QueryResult, path: str | Path, fmt: str | None = None, *, store: str) -> str:
    """Write the result to a file (written by hostlogs, never by the query); returns the format used.

    ``store`` is the store the result came from: the file is never written inside it.
    """
    Store(store).refuse_output_inside(path)
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
