"""A statement's result as it leaves DuckDB: Arrow for typed output, Python values for text.

Results travel as Arrow (``Sandbox.execute``), and a few DuckDB types have no exact Arrow form: a
UHUGEINT past 2^127 arrived as -1, a TIMETZ without its offset, BIT and BIGNUM as their internal
bytes, a TIME of 24:00:00 as Python's 00:00:00. A column of such a type (or of a nested type holding
one) is fetched as DuckDB's own text instead (``exact``; a top-level TIME is mended here), so every
output shows the value DuckDB holds. Maps keep their type on the way to Python (``MapEntries``): an
empty map is ``{}``, not an empty list; FLOATs are the shortest decimal of their 32 bits, as DuckDB's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import numpy as np
import pyarrow as pa

from pipeline.investigate.evidence import sql_ident

# DuckDB types whose values Arrow does not carry exactly (``DuckDBPyType.id``), in nested ones too
_INEXACT = frozenset({"uhugeint", "bit", "bignum", "varint", "time with time zone"})
_NESTED = frozenset({"struct", "list", "array", "map", "union"})


class _Relation(Protocol):
    """What ``exact`` uses of a DuckDB relation (only the sandbox imports DuckDB)."""

    @property
    def types(self) -> list[Any]: ...
    @property
    def columns(self) -> list[str]: ...
    def query(self, virtual_table_name: str, sql_query: str) -> Any: ...


R = TypeVar("R", bound=_Relation)


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    table: pa.Table | None = None  # the Arrow result, for typed output (Parquet)


class MapEntries(list[tuple[Any, Any]]):
    """A MAP value: its (key, value) entries, in order (a list to JSON, ``{k=v}`` as text)."""


def exact(rel: R) -> R:
    """``rel`` with every column Arrow cannot carry exactly cast to DuckDB's text of it.

    Columns are taken by position (``#n``), so names stay as they were, repeated ones included.
    """
    inexact = {i for i, t in enumerate(rel.types) if _inexact(t)}
    if not inexact:
        return rel
    picks = []
    for i, name in enumerate(rel.columns):
        column = f"CAST(#{i + 1} AS VARCHAR)" if i in inexact else f"#{i + 1}"
        picks.append(f"{column} AS {sql_ident(name)}")
    return cast(R, rel.query("_hostlogs_result", f"SELECT {', '.join(picks)} FROM _hostlogs_result"))


def _inexact(t: Any, nested: bool = False) -> bool:
    """Whether a DuckDB type is, or holds, one of ``_INEXACT``: walked by type, never by its text (a
    struct field or an enum label may be called BIT). A TIME inside a nested value too: 24:00:00
    becomes Python's 00:00:00 there, where only a top-level column can be mended (``_midnight``)."""
    if t.id in _INEXACT or (nested and t.id in ("time", "time_ns")):
        return True
    # children: (name, type) pairs; an array's size and an enum's labels are no types
    return t.id in _NESTED and any(hasattr(c, "id") and _inexact(c, nested=True) for _, c in t.children)


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values in Python: maps (at any depth) as ``MapEntries``, FLOATs as DuckDB writes
    them, a TIME of 24:00:00 as that text. Raises OverflowError or ValueError for values Python has
    no type for (the caller asks DuckDB for their text)."""
    values: list[Any] = column.to_pylist()
    if pa.types.is_time(column.type):
        return _midnight(column, values)
    if not _walked(column.type):
        return values
    return [_marked(v, column.type) for v in values]


def _midnight(column: pa.ChunkedArray, values: list[Any]) -> list[Any]:
    """DuckDB's TIME goes up to 24:00:00, which Python's ``time`` wraps to 00:00:00: as text."""
    day = 86_400 * {"s": 1, "ms": 1_000, "us": 1_000_000, "ns": 1_000_000_000}[column.type.unit]
    ticks = column.cast(pa.int32() if column.type.bit_width == 32 else pa.int64()).to_pylist()
    return ["24:00:00" if t == day else v for t, v in zip(ticks, values, strict=True)]


def _listlike(t: pa.DataType) -> bool:
    return bool(pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t))


def _walked(t: pa.DataType) -> bool:
    """Whether values of ``t`` hold a map or a FLOAT, found by their type: not below a union (its
    values do not say which member they are; the renderer recognises a non-empty map by its pairs)."""
    if pa.types.is_map(t) or pa.types.is_float32(t):
        return True
    if _listlike(t):
        return _walked(t.value_type)
    return pa.types.is_struct(t) and any(_walked(t.field(i).type) for i in range(t.num_fields))


def _marked(value: Any, t: pa.DataType) -> Any:
    """``value`` of Arrow type ``t`` with every map in it as ``MapEntries`` and every FLOAT as DuckDB
    writes it (0.1, not the 0.10000000149011612 of the double Arrow widens it to)."""
    if value is None:
        return None
    if pa.types.is_float32(t):
        return float(str(np.float32(value)))
    if pa.types.is_map(t):
        return MapEntries((_marked(k, t.key_type), _marked(v, t.item_type)) for k, v in value)
    if _listlike(t):
        return [_marked(v, t.value_type) for v in value]
    if pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return {f.name: _marked(value[f.name], f.type) for f in fields}
    return value
