"""The sandbox's DuckDB settings (the lock), what DuckDB reads besides the store's files, and its
errors as one line."""

from __future__ import annotations

import duckdb

from pipeline.errors import HostlogsError, UsageError
from pipeline.investigate.evidence import sql_str
from pipeline.investigate.limits import Limits, byte_size

SANDBOX_HINT = "queries can read only the store's views; use --output FILE to save results"

# What DuckDB reads besides the files it is given, where it runs (when a connection is made): the
# CPU and memory limits of the process's control group, and the local time zone.
DUCKDB_READS = ("/proc/self/cgroup", "/sys/fs/cgroup", "/sys/devices/system/cpu/online", "/etc/localtime")


def lock(con: duckdb.DuckDBPyConnection, limits: Limits, spill: str, paths: dict[str, str] | None) -> int:
    """Limits, then no file access (but reading ``paths``), then the lock; returns the result size limit."""
    try:
        con.execute(f"SET memory_limit = {sql_str(limits.memory_limit)}")
        con.execute(f"SET threads = {int(limits.threads)}")
    except duckdb.Error as exc:
        raise UsageError(f"invalid query.memory_limit or query.threads: {first_line(exc)}") from None
    con.execute(f"SET temp_directory = {sql_str(spill)}")
    for setting in (
        "autoinstall_known_extensions", "autoload_known_extensions", "allow_community_extensions",
        "allow_persistent_secrets", "python_enable_replacements",
    ):  # fmt: skip
        con.execute(f"SET {setting} = false")
    # DuckDB's reader may open the committed files; the fence denies the thread any write to them
    con.execute(f"SET allowed_paths = [{', '.join(sql_str(p) for p in sorted((paths or {}).values()))}]")
    con.execute("SET allowed_directories = []")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return byte_size(str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]))


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def usage_error(exc: duckdb.Error) -> HostlogsError:
    """DuckDB's error as a one-line usage error (a refusal names the sandbox)."""
    if isinstance(exc, duckdb.PermissionException):
        return UsageError(f"query refused by the sandbox: {_permission(exc)} ({SANDBOX_HINT})")
    if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in str(exc):
        return UsageError(f"query refused by the sandbox: settings are locked ({SANDBOX_HINT})")
    return UsageError(f"query failed: {first_line(exc)}")


def _permission(exc: duckdb.Error) -> str:
    text = first_line(exc).removeprefix("Permission Error: ")
    return text.replace(" - file system operations are disabled by configuration", " (no file access)")
