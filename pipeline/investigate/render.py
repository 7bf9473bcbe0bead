"""Query results as text (aligned table, CSV, JSON, JSON lines) or files (CSV, JSON, JSON lines, Parquet).

``json`` is one JSON document (an array of row objects), as ``--json`` is on every command; ``jsonl``
is one object per line, for streams. Tables never cut an identifier (a network, a pseudonym, a case,
a hash, a sequence number): only free text (paths, user agents, SQL) is shortened, at a word boundary,
so a value inside it is shown whole or not at all. Output files are written by hostlogs after the
query, never by the query: the sandbox writes no file (it may read the store's committed files only).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import math
import re
import sys
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported for Parquet output only: text output of a plain result needs no pyarrow
    import pyarrow as pa

from pipeline.errors import UsageError
from pipeline.investigate.result import MapEntries, QueryResult
from pipeline.store.commit import Store
from pipeline.store.output import write_outside

# Columns shown whole, whatever the width: cutting them would show a different identifier.
IDENTIFIERS = frozenset(
    {"seq", "of", "case", "request", "user", "command", "status", "client_net", "client_id", "pseudonym",
     "period", "key", "hash", "head_hash", "prev", "fingerprint", "stream", "domain", "detector", "asn",
     "country", "date", "time", "ts", "first", "last", "hour", "day", "method", "server", "writer", "run_id",
     "id", "network", "created", "destroyed"}
)  # fmt: skip
_BOUNDARY = re.compile(r"[\s,;&]")


def render(result: QueryResult, fmt: str, width: int | None = None) -> str:
    if fmt == "json":
        return json.dumps([_jsonable(r) for r in rows_of(result)], default=cell, indent=1, allow_nan=False)
    if fmt == "jsonl":
        return "\n".join(json.dumps(_jsonable(row), default=cell, allow_nan=False) for row in rows_of(result))
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(result.columns)
        w.writerows([None if v is None else cell(v) for v in r] for r in result.rows)
        return buf.getvalue().rstrip("\n")
    return table(result, width=width)


def cell(value: Any) -> str:
    """A value as text, nested and special ones as DuckDB writes them (``[1.50, NULL]``,
    ``{'a': 1, 'b': x}``, a map ``{k=1}``, ``2 months 3 days 00:01:30``, a blob ``a\\x00b``), not
    as Python's reprs; scalars as ``str`` does."""
    if value is None:
        return "NULL"
    if isinstance(value, list):
        # a MAP's entries: marked by the sandbox (also when empty), or pairs from Arrow directly
        pairs = value and all(isinstance(x, tuple) and len(x) == 2 for x in value)
        if isinstance(value, MapEntries) or pairs:
            return "{" + ", ".join(f"{_element(k)}={_element(v)}" for k, v in value) + "}"
        return "[" + ", ".join(_element(x) for x in value) + "]"
    if isinstance(value, dict):  # a STRUCT
        return "{" + ", ".join(f"{_quoted(str(k))}: {_element(v)}" for k, v in value.items()) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal):
        return format(value, "f")  # its scale's digits, never an exponent (1E-7)
    if isinstance(value, dt.datetime) and value.tzinfo is not None:
        return cell(value.replace(tzinfo=None)) + _offset(value.utcoffset() or dt.timedelta())
    if isinstance(value, dt.datetime | dt.time) and value.microsecond:
        return _fraction(str(value))
    if isinstance(value, bytes):
        return "".join(chr(b) if 32 <= b < 127 and b != 92 else f"\\x{b:02X}" for b in value)
    if _is_interval(value):
        return _interval(value)
    return str(value)


def _is_interval(value: Any) -> bool:
    """Whether ``value`` is an INTERVAL (pyarrow's MonthDayNano): only a result fetched through
    pyarrow holds one, so without pyarrow loaded there is none to find."""
    arrow = sys.modules.get("pyarrow")
    return arrow is not None and isinstance(value, arrow.MonthDayNano)


# An element of a nested value is quoted when its text could be read as something else (DuckDB's rule).
_SPECIAL = re.compile(r"""[,'"\[\]{}():=\\]""")


def _element(value: Any) -> str:
    """A value inside a list, struct or map: nested ones as they are, others as text, quoted (with
    ' and \\ escaped) when empty, "NULL", padded with whitespace or holding a separator."""
    if value is None:
        return "NULL"
    if isinstance(value, list | dict):
        return cell(value)
    text = ("true" if value else "false") if isinstance(value, bool) else cell(value)
    plain = text and text.upper() != "NULL" and not (text[0].isspace() or text[-1].isspace())
    return text if plain and not _SPECIAL.search(text) else _quoted(text)


def _quoted(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _fraction(text: str) -> str:
    """A time's fraction of a second without trailing zeros, as DuckDB writes it (10:00:00.5)."""
    return re.sub(r"(\.[0-9]*?)0+\b", r"\1", text, count=1)


def _offset(offset: dt.timedelta) -> str:
    """A TIMESTAMPTZ's offset as DuckDB writes it: +00, +05:30, -03:30:52 (Python writes +00:00)."""
    sign, seconds = ("-", -offset) if offset < dt.timedelta() else ("+", offset)
    hours, rest = divmod(int(seconds.total_seconds()), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [hours, minutes, secs][: 3 if secs else 2 if minutes else 1]
    return sign + ":".join(f"{n:02d}" for n in parts)


def _interval(value: pa.MonthDayNano) -> str:
    """DuckDB's text of an INTERVAL: years, months, days, then the time of day if any."""
    years = int(value.months / 12)  # towards zero, as DuckDB: -13 months is "-1 year -1 month"
    months = value.months - 12 * years
    parts = [f"{n} {unit}{'s' if abs(n) != 1 else ''}" for n, unit in
             ((years, "year"), (months, "month"), (value.days, "day")) if n]  # fmt: skip
    micros = value.nanoseconds // 1000
    if micros or not parts:
        sign, micros = ("-", -micros) if micros < 0 else ("", micros)
        seconds, fraction = divmod(micros, 1_000_000)
        hours, rest = divmod(seconds, 3600)
        clock = f"{sign}{hours:02d}:{rest // 60:02d}:{rest % 60:02d}"
        parts.append(clock + (f".{fraction:06d}".rstrip("0") if fraction else ""))
    return " ".join(parts)


def _jsonable(value: Any) -> Any:
    """Intervals (a tuple to ``json``) and NaN/infinities (no JSON numbers: "nan", "inf", "-inf" as
    DuckDB writes them) as text, inside nested values too; what else JSON has no type for (decimals,
    times, blobs, UUIDs) goes to ``cell`` as json's ``default``."""
    if _is_interval(value) or (isinstance(value, float) and not math.isfinite(value)):
        return cell(value)
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


def rows_of(result: QueryResult) -> list[dict[str, Any]]:
    """The rows as objects (column → value): what ``json`` prints. Two columns of one name (``SELECT
    *`` over a join) keep both: the second is ``name_2``."""
    names = _unique(result.columns)
    return [dict(zip(names, r, strict=True)) for r in result.rows]


def _unique(columns: list[str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for name in columns:
        unique, n = name, 1
        while unique in seen:
            n += 1
            unique = f"{name}_{n}"
        seen.add(unique)
        out.append(unique)
    return out


def table(result: QueryResult, max_width: int = 60, width: int | None = None) -> str:
    """Aligned text table; free-text cells cut at ``max_width`` and the widest free-text columns
    narrowed to ``width``; identifier columns (``IDENTIFIERS``) are never cut."""
    whole = [c in IDENTIFIERS for c in result.columns]

    def text(v: Any) -> str:
        return cell(v).replace("\n", "\\n")

    widths = [
        max(
            [len(c), *(len(text(r[i])) if whole[i] else min(len(text(r[i])), max_width) for r in result.rows)]
        )
        for i, c in enumerate(result.columns)
    ]
    if width:
        while sum(widths) + 2 * (len(widths) - 1) > width:
            free = [w if not whole[i] else 0 for i, w in enumerate(widths)]
            if max(free, default=0) <= 8:
                break
            widths[free.index(max(free))] -= 1
    header = "  ".join(c.ljust(w) for c, w in zip(result.columns, widths, strict=True))
    sep = "  ".join("-" * w for w in widths)
    body = [
        "  ".join((text(v) if keep else cut(text(v), w)).ljust(w)
                  for v, w, keep in zip(r, widths, whole, strict=True)).rstrip()
        for r in result.rows
    ]  # fmt: skip
    n = len(result.rows)
    return "\n".join([header.rstrip(), sep, *body, f"({n} row{'s' if n != 1 else ''})"])


def cut(s: str, limit: int) -> str:
    """``s`` shortened to ``limit`` characters with "…", at a word boundary where there is one in
    its second half (a number or hash inside free text is shown whole or not at all)."""
    if len(s) <= limit:
        return s
    head = s[: max(limit - 1, 0)]
    stops = [m.start() for m in _BOUNDARY.finditer(head)]
    if stops and stops[-1] >= len(head) // 2:
        head = head[: stops[-1]]
    return head + "…"


def write_output(
    result: QueryResult, path: str | Path, fmt: str | None = None, *, store: str, key_dir: str
) -> str:
    """Write the result to a file (written by hostlogs, never by the query); returns the format used.

    ``store`` is the store the result came from, ``key_dir`` its keys: the file is never written
    inside either (``store/output.py``).
    """
    fmt = output_format(path, fmt)
    if fmt == "parquet":
        payload: bytes | memoryview = _parquet(
            result.table if result.table is not None else _to_arrow(result)
        )
    else:
        payload = (render(result, fmt) + "\n").encode("utf-8")
    try:
        write_outside(path, lambda f: f.write(payload), store=Store(store), key_dir=key_dir)
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None
    return fmt


def output_format(path: str | Path, fmt: str | None = None) -> str:
    """The format an output file is written in: ``fmt``, else its extension's, else CSV."""
    by_suffix = {".csv": "csv", ".json": "json", ".jsonl": "jsonl", ".parquet": "parquet"}
    return fmt or by_suffix.get(Path(path).suffix.lower(), "csv")


def _parquet(data: pa.Table) -> memoryview:
    """Encoded in memory first (the result is in memory already): a failure writes nothing and never
    touches a file that was there. A column type Parquet has no type for (DuckDB's INTERVAL) is the
    query's to change: a one-line usage error."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    try:  # (two columns of one name, as in JSON: a reader finds each by its name)
        pq.write_table(data.rename_columns(_unique(data.column_names)), sink, compression="zstd")
    except (pa.ArrowNotImplementedError, pa.ArrowInvalid, pa.ArrowTypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise UsageError(
            f"the result cannot be written as Parquet ({reason}): cast that column in the query "
            "(e.g. CAST(x AS VARCHAR)) or choose --format csv, json or jsonl"
        ) from None
    return memoryview(sink.getvalue())


def _to_arrow(result: QueryResult) -> pa.Table:
    """A result fetched without Arrow, by its DuckDB types; one made by hand, by its values."""
    import pyarrow as pa

    if result.types:
        from pipeline.investigate.arrow_values import typed

        return typed(result)
    return pa.Table.from_pylist(rows_of(result))
