"""The statement check: the sandbox's second fence (DuckDB's own lock-down is the first).

A statement runs only if DuckDB's own parser makes it a SELECT (``json_serialize_sql`` accepts it:
SELECT, WITH, FROM-first, VALUES, DESCRIBE, SUMMARIZE, SHOW), or it is EXPLAIN [ANALYZE] of such a
statement. No CREATE, DROP, ALTER, INSERT, SET, PRAGMA, ATTACH, COPY, EXPORT, CALL: in ``hostlogs
shell`` no statement can redefine a view for the statements after it.
"""

from __future__ import annotations

import json
from typing import Any

import duckdb

from pipeline.errors import UsageError
from pipeline.investigate.duck_settings import SANDBOX_HINT, first_line
from pipeline.investigate.sandbox import Sandbox


def check_statement(con: duckdb.DuckDBPyConnection | Sandbox, sql: str) -> None:
    """Refuse anything but one statement that is provably a read (see the module doc)."""
    con = con.con if isinstance(con, Sandbox) else con
    statements = _parse(con, sql)
    if len(statements) != 1:
        raise UsageError(f"give exactly one SQL statement (got {len(statements)})")
    _check_read(con, statements[0], explain_ok=True)


def _parse(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    try:
        return list(con.extract_statements(sql))
    except duckdb.Error as exc:
        raise UsageError(f"query failed: {first_line(exc)}") from None


def _check_read(con: duckdb.DuckDBPyConnection, statement: Any, explain_ok: bool) -> None:
    kind = statement.type
    if kind == duckdb.StatementType.EXPLAIN and explain_ok:
        inner = _parse(con, _explained(statement.query))
        if len(inner) == 1:
            _check_read(con, inner[0], explain_ok=False)
            return
    elif kind == duckdb.StatementType.SELECT:
        row = con.execute("SELECT json_serialize_sql(?::VARCHAR)", [statement.query]).fetchall()
        parsed: dict[str, Any] = json.loads(row[0][0]) if row else {"error": True}
        if not parsed.get("error") and len(parsed.get("statements", [])) == 1:
            return
    name = str(kind).rsplit(".", 1)[-1]
    raise UsageError(
        f"query refused by the sandbox: {name} statements are not allowed, only SELECT/WITH/FROM/"
        f"DESCRIBE/SUMMARIZE and EXPLAIN [ANALYZE] of one ({SANDBOX_HINT})"
    )


def _explained(sql: str) -> str:
    """The statement an EXPLAIN [ANALYZE] wraps (comments skipped; options are not accepted)."""
    tokens = duckdb.tokenize(sql)
    bounds = [
        (pos, tokens[i + 1][0] if i + 1 < len(tokens) else len(sql), kind)
        for i, (pos, kind) in enumerate(tokens)
    ]
    words = [
        (pos, sql[pos:end].strip().upper()) for pos, end, kind in bounds if kind != duckdb.token_type.comment
    ]
    if not words or words[0][1] != "EXPLAIN":
        return ""
    rest = words[1:]
    if rest and rest[0][1] in ("ANALYZE", "ANALYSE"):
        rest = rest[1:]
    return sql[rest[0][0] :] if rest else ""
