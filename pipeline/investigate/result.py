"""A statement's result as it leaves DuckDB: Arrow for typed output, Python values for text.

Results travel as Arrow (``Sandbox.execute``), and a few DuckDB types have no exact Arrow form: a
UHUGEINT past 2^127 arrived as -1, a TIMETZ without its offset, BIT and BIGNUM as their internal
bytes. A column of such a type (or of a nested type holding one) is fetched as DuckDB's own text
instead (``exact``), so every output shows the value DuckDB holds. Maps keep their type on the way
to Python (``MapEntries``): an empty map is ``{}``, not an empty list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar, cast

import pyarrow as pa

# DuckDB type names whose values Arrow does not carry exactly (in nested types too)
_INEXACT = re.compile(r"\b(?:UHUGEINT|BIT|BIGNUM|VARINT)\b|\bTIME WITH TIME ZONE\b")


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
    inexact = {i for i, t in enumerate(rel.types) if _INEXACT.search(str(t))}
    if not inexact:
        return rel
    picks = (
        f"CAST(#{i + 1} AS VARCHAR) AS {_ident(name)}" if i in inexact else f"#{i + 1} AS {_ident(name)}"
        for i, name in enumerate(rel.columns)
    )
    return cast(R, rel.query("_hostlogs_result", f"SELECT {', '.join(picks)} FROM _hostlogs_result"))


def python_values(column: pa.ChunkedArray) -> list[Any]:
    """A column's values in Python; maps (at any depth) as ``MapEntries``. Raises OverflowError or
    ValueError for values Python has no type for (the caller asks DuckDB for their text)."""
    values: list[Any] = column.to_pylist()
    if not _has_map(column.type):
        return values
    return [_marked(v, column.type) for v in values]


def _has_map(t: pa.DataType) -> bool:
    if pa.types.is_map(t):
        return True
    return any(_has_map(t.field(i).type) for i in range(t.num_fields))


def _marked(value: Any, t: pa.DataType) -> Any:
    """``value`` of Arrow type ``t`` with every map in it as ``MapEntries``."""
    if value is None:
        return None
    if pa.types.is_map(t):
        return MapEntries((_marked(k, t.key_type), _marked(v, t.item_type)) for k, v in value)
    if isinstance(value, list):  # list, large list, fixed-size list
        return [_marked(v, t.value_type) for v in value]
    if isinstance(value, dict) and pa.types.is_struct(t):
        fields = [t.field(i) for i in range(t.num_fields)]
        return {f.name: _marked(value[f.name], f.type) for f in fields}
    return value


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
