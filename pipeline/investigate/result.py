"""A statement's result as it leaves DuckDB: Python values for text, Arrow for typed output.

A result whose columns are all of plain types (``_NATIVE``: numbers but FLOAT and HUGEINT, text,
blobs, decimals, enums, dates) is fetched with DuckDB's own Python conversion (``fetch_rows``), which
gives the values the Arrow path gives, without importing pyarrow: ~0.1 s of a query's start-up.

Other results travel as Arrow (``Sandbox.execute``; always when typed output is asked for), and a few
DuckDB types have no exact Arrow form: a UHUGEINT past 2^127 arrived as -1, a TIMETZ without its
offset, BIT and BIGNUM as their internal bytes, a TIME of 24:00:00 as Python's 00:00:00. A column of
such a type (or of a nested type holding one) is fetched as DuckDB's own text instead (``exact``; a
top-level TIME is mended in ``arrow_values``), so every output shows the value DuckDB holds. Maps keep
their type on the way to Python (``MapEntries``): an empty map is ``{}``, not an empty list; FLOATs
are the shortest decimal of their 32 bits, as DuckDB's.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, cast

from pipeline.investigate.evidence import sql_ident

if TYPE_CHECKING:
    import pyarrow as pa

# DuckDB types whose values Arrow does not carry exactly (``DuckDBPyType.id``), in nested ones too
_INEXACT = frozenset({"uhugeint", "bit", "bignum", "varint", "time with time zone"})
_NESTED = frozenset({"struct", "list", "array", "map", "union"})
# DuckDB types its Python conversion gives exactly as the Arrow path does, with the bytes a value
# holds in Arrow (text: its offset; its UTF-8 bytes are counted apart; an enum: a small index). Not
# FLOAT (widened to a double), HUGEINT (a Decimal through Arrow), times, timestamps (time zones),
# intervals (months lost), UUIDs (a UUID object, a string through Arrow), nested types. A DATE's
# infinities come back as 9999-12-31 and 0001-01-01, a date Python cannot hold as text: ``fetch_rows``
# leaves such a result to Arrow.
_NATIVE = {"boolean": 0.125, "tinyint": 1, "smallint": 2, "integer": 4, "bigint": 8, "utinyint": 1,
           "usmallint": 2, "uinteger": 4, "ubigint": 8, "double": 8, "decimal": 16, "date": 4,
           "enum": 1, "null": 0, "varchar": 4, "blob": 4}  # fmt: skip
_TEXT = frozenset({"varchar", "blob"})
FETCH_ROWS = 65_536  # rows fetched at a time, the result's size checked after each
_EDGES = frozenset({dt.date.max, dt.date.min})


class _Relation(Protocol):
    """What this module uses of a DuckDB relation (only the sandbox imports DuckDB)."""

    @property
    def types(self) -> list[Any]: ...
    @property
    def columns(self) -> list[str]: ...
    @property
    def type(self) -> Any: ...
    def query(self, virtual_table_name: str, sql_query: str) -> Any: ...


class _Connection(Protocol):
    def execute(self, query: str) -> Any: ...
    def fetchmany(self, size: int = ...) -> list[Any]: ...


R = TypeVar("R", bound=_Relation)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    table: pa.Table | None = None  # the Arrow result, when fetched as Arrow (typed output: Parquet)
    types: tuple[Any, ...] = ()  # DuckDB's column types (DuckDBPyType) of a result fetched without
    # Arrow, which typed output is built with (``arrow_values.typed``)


class MapEntries(list[tuple[Any, Any]]):
    """A MAP value: its (key, value) entries, in order (a list to JSON, ``{k=v}`` as text)."""


def exact(rel: R, *, typed: bool = False) -> R:
    """``rel`` with every column Arrow cannot carry exactly cast to DuckDB's text of it; ``typed``
    (an output file, not text) keeps a list of JSON a list (Arrow carries it; only its text differs).

    Columns are taken by position (``#n``), so names stay as they were, repeated ones included.
    """
    inexact = {i for i, t in enumerate(rel.types) if _inexact(t, json_lists=not typed)}
    if not inexact:
        return rel
    picks = []
    for i, name in enumerate(rel.columns):
        column = f"CAST(#{i + 1} AS VARCHAR)" if i in inexact else f"#{i + 1}"
        picks.append(f"{column} AS {sql_ident(name)}")
    return cast(R, rel.query("_hostlogs_result", f"SELECT {', '.join(picks)} FROM _hostlogs_result"))


def _inexact(t: Any, nested: bool = False, json_lists: bool = True) -> bool:
    """Whether a DuckDB type is, or holds, one of ``_INEXACT``: walked by type, never by its text (a
    struct field or an enum label may be called BIT). A TIME inside a nested value too: 24:00:00
    becomes Python's 00:00:00 there, where only a top-level column can be mended (``_midnight``).
    And a list of JSON: DuckDB writes JSON inside a list as it is, inside a struct or map quoted, and
    its values reach Python as plain strings (a type's own name, JSON, is no label)."""
    if t.id in _INEXACT or (nested and t.id in ("time", "time_ns")):
        return True
    # children: (name, type) pairs; an array's size and an enum's labels are no types
    types = [c for _, c in t.children if hasattr(c, "id")] if t.id in _NESTED else []
    if json_lists and t.id in ("list", "array") and any(str(c) == "JSON" for c in types):
        return True
    return any(_inexact(c, nested=True, json_lists=json_lists) for c in types)


def native(rel: _Relation) -> bool:
    """Whether ``fetch_rows`` fetches the result exactly: a statement not run yet whose every column
    is of a plain type. DuckDB runs some statements when their relation is made (EXPLAIN ANALYZE, a
    SELECT calling nextval): those hold their rows already, and running them again would do the work
    twice (or give other values)."""
    return str(rel.type) == "QUERY_RELATION" and all(t.id in _NATIVE for t in rel.types)


def fetch_rows(
    con: _Connection, sql: str, rel: _Relation, limit: int, too_large: Exception
) -> QueryResult | None:
    """The result of ``sql`` (``rel``, ``native``) as DuckDB's own Python values, streamed from the
    connection (a relation no longer fetches part of a result); ``too_large`` is raised as soon as it
    holds more than ``limit`` bytes, counted as Arrow holds them.

    None when a date is 9999-12-31 or 0001-01-01 (how DuckDB hands over the infinities) or is beyond
    Python's dates: the caller fetches the result through Arrow (the query runs twice, rarely).
    """
    duck_types = tuple(rel.types)
    types = [t.id for t in duck_types]
    dates = [i for i, t in enumerate(types) if t == "date"]
    texts = [i for i, t in enumerate(types) if t in _TEXT]
    width = sum(_NATIVE[t] for t in types)
    rows: list[tuple[Any, ...]] = []
    size, complete = 0.0, False
    try:
        con.execute(sql)
        while chunk := con.fetchmany(FETCH_ROWS):
            size += width * len(chunk) + _text_bytes(chunk, texts)
            if size > limit:
                raise too_large
            if dates and any(_odd_date(r[i]) for r in chunk for i in dates):
                return None
            rows.extend(chunk)
        complete = True
    except RuntimeError as exc:  # Ctrl-C while DuckDB runs the statement in this thread
        if "interrupted" in str(exc).lower():
            raise KeyboardInterrupt from None
        raise
    finally:
        if not complete and getattr(con, "abort", None) is not None:  # a result left unread holds
            with contextlib.suppress(Exception):  # the connection (DuckDB 2)
                con.abort()  # type: ignore[attr-defined]
    return QueryResult(rel.columns, rows, types=duck_types)


def _text_bytes(chunk: list[tuple[Any, ...]], texts: list[int]) -> int:
    """The bytes of the text and blob values of ``chunk`` in Arrow: UTF-8, not characters (an emoji
    is 4 bytes there and in memory; counting it as 1 let a result 4x the limit through)."""
    total = 0
    for i in texts:
        values = [v for r in chunk if (v := r[i]) is not None]
        total += sum(map(len, values))
        total += sum(len(v.encode()) - len(v) for v in values if isinstance(v, str) and not v.isascii())
    return total


def _odd_date(value: Any) -> bool:
    """A DATE value DuckDB's conversion does not give as the Arrow path does: an infinity's stand-in,
    or the text of a date Python cannot hold (before year 1, after 9999)."""
    return value is not None and (isinstance(value, str) or value in _EDGES)
