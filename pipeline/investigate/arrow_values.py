"""A result fetched through Arrow, and its columns as Python values where ``to_pylist`` alone would
differ from DuckDB. Imported only for such results (``result.py`` says which).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa

from pipeline.investigate.result import MapEntries, QueryResult, exact

# DuckDB's plain types (``result._NATIVE``) as its Arrow export gives them
_PLAIN = {"boolean": pa.bool_(), "tinyint": pa.int8(), "smallint": pa.int16(), "integer": pa.int32(),
          "bigint": pa.int64(), "utinyint": pa.uint8(), "usmallint": pa.uint16(), "uinteger": pa.uint32(),
          "ubigint": pa.uint64(), "double": pa.float64(), "date": pa.date32(), "null": pa.null(),
          "varchar": pa.string(), "blob": pa.binary()}  # fmt: skip


def fetch_table(rel: Any, limit: int, too_large: Exception, *, typed: bool = False) -> pa.Table:
    """The result of DuckDB relation ``rel`` (``exact``); ``too_large`` raised past ``limit`` bytes."""
    reader = exact(rel, typed=typed).to_arrow_reader(65_536)
    batches, size = [], 0
    for batch in reader:
        size += batch.nbytes
        if size > limit:
            raise too_large
        batches.append(batch)
    return pa.Table.from_batches(batches, schema=reader.schema)


def typed(result: QueryResult) -> pa.Table:
    """A result fetched without Arrow as the Arrow path gives it: typed by its DuckDB types, not by
    its values (a SMALLINT stays int16, a DECIMAL(10, 2) keeps its scale, an empty result its columns)."""
    arrays = [pa.array([r[i] for r in result.rows], _arrow_type(t)) for i, t in enumerate(result.types)]
    return pa.Table.from_arrays(arrays, names=result.columns)


def _arrow_type(t: Any) -> pa.DataType:
    if t.id == "decimal":
        (_, precision), (_, scale) = t.children
        return pa.decimal128(precision, scale)
    if t.id == "enum":  # indices as narrow as DuckDB's own
        labels = len(t.children[0][1])
        index = pa.uint8() if labels <= 255 else pa.uint16() if labels <= 65_535 else pa.uint32()
        return pa.dictionary(index, pa.string())
    return _PLAIN[t.id]


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
