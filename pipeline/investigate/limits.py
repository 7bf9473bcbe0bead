"""What one sandboxed statement may use, and the sizes and times its messages show."""

from __future__ import annotations

import atexit
import re
import shutil
import tempfile
from dataclasses import dataclass

from pipeline.config import QueryConfig
from pipeline.rules import timeout_seconds


@dataclass(frozen=True)
class Limits:
    """What one statement may use: DuckDB's memory limit and threads, and a wall-clock timeout;
    ``reader``: "auto" (DuckDB's own reader in a fenced thread where possible) or "arrow"."""

    memory_limit: str = "4GB"
    threads: int = 2
    timeout: float | None = 300.0  # seconds; None: no limit
    reader: str = "auto"

    @classmethod
    def of(cls, q: QueryConfig) -> Limits:
        return cls(q.memory_limit, q.threads, timeout_seconds(q.timeout), q.reader)


def spill_folder() -> str:
    """Private spill space for DuckDB (not the cwd's .tmp), removed at exit."""
    spill = tempfile.mkdtemp(prefix="hostlogs-duckdb-")
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
    return spill


_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 1 << 10, "MIB": 1 << 20,
          "GIB": 1 << 30, "TIB": 1 << 40}  # fmt: skip


def byte_size(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        return 1 << 62
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def seconds_text(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g} s" if value < 120 else f"{value / 60:g} min"
