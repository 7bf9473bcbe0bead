"""DuckDB over the store, sandboxed and audited: views ``pageviews``, ``rejects`` and ``ingest_runs``.

**Read-only by construction.** DuckDB gets no file access at all. The committed Parquet files (the
manifests' list, ``Store.catalogue``: a file no manifest commits is never shown, whatever lies in
``pageviews/date=…/``) are registered as pyarrow datasets, which open them read-only; DuckDB pushes
the projection and the filters, the ``date`` partition included, into that scan. The manifests are
loaded into an in-memory table. Then every door is shut and the configuration locked:

==============================  ====================================================================
control                         what it blocks
==============================  ====================================================================
enable_external_access=false    every file and network access: COPY ... TO (onto a store file too),
allowed_paths=[],               read_csv/read_text/read_blob/read_parquet/glob of any path, ATTACH
allowed_directories=[]          of a file, EXPORT DATABASE, INSTALL/LOAD, CREATE (persistent) SECRET
autoload/autoinstall=false      a query pulling in an extension (httpfs, ...) behind our back
python_enable_replacements=off  a query reading Python objects of the calling code by name
lock_configuration=true         SET / RESET / PRAGMA lifting any of the above, memory_limit, threads
==============================  ====================================================================

The statement check (``statement.py``) is the second fence, not the first: only a statement DuckDB's
own parser makes a SELECT runs (or EXPLAIN [ANALYZE] of one). tests/investigate/test_query_sandbox.py runs a
catalogue of write attempts under every wrapper against the bare connection and through ``run`` and
the shell.

**Limits.** ``query.timeout`` interrupts a statement from a timer thread; ``query.memory_limit`` is
DuckDB's (it spills to a private temporary directory) and also bounds the result fetched into
Python. Both stop the query with ``QueryLimitError`` (exit 9).

**A file that cannot be read** (truncated, corrupt, missing) does not end the query: it is left out,
the query runs over the rest, and a warning names the file and says to run ``hostlogs verify``.

**Audited.** A ``Sandbox`` cannot be constructed here: ``pipeline/investigate/session.py`` opens it,
after it has validated the case and written the audit entry (``audited``, ``run``, ``Session``,
``with_connection``, ``connect``), so no caller reaches the store's rows unaudited.
"""

from __future__ import annotations

import atexit
import datetime as dt
import re
import shutil
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds

from pipeline.config import QueryConfig, timeout_seconds
from pipeline.errors import HostlogsError, QueryLimitError, StoreChangedError, StoreError, UsageError
from pipeline.investigate import bloom
from pipeline.store import layout
from pipeline.store.catalogue import FileRecord
from pipeline.store.commit import Store
from pipeline.store.schema import PAGEVIEWS, REJECTS

SANDBOX_HINT = "queries can read only the store's views; use --output FILE to save results"
DICT = pa.dictionary(pa.int32(), pa.string())
TABLES = {"pageviews": (layout.PAGEVIEWS, PAGEVIEWS), "rejects": (layout.REJECTS, REJECTS)}
EMPTY_RUNS = pa.table({"seq": pa.array([], pa.int64()), "batch": pa.array([], pa.string())})
MAX_ISOLATED = 64  # unreadable files left out of one statement before it gives up


@dataclass(frozen=True)
class Limits:
    """What one statement may use: DuckDB's memory limit and threads, and a wall-clock timeout."""

    memory_limit: str = "4GB"
    threads: int = 2
    timeout: float | None = 300.0  # seconds; None: no limit

    @classmethod
    def of(cls, q: QueryConfig) -> Limits:
        return cls(q.memory_limit, q.threads, timeout_seconds(q.timeout))


@dataclass(frozen=True)
class QueryResult:
    columns: list[str]
    rows: list[tuple[Any, ...]]
    table: pa.Table | None = None  # the Arrow result, for typed output (Parquet)


@dataclass
class _Evidence:
    """The committed files of the store at one moment, and those found unreadable since."""

    store: Store
    files: dict[str, list[str]]  # view → store keys
    isolated: dict[str, str] = field(default_factory=dict)  # key → what is wrong

    @classmethod
    def load(cls, store: Store) -> _Evidence:
        committed = sorted(store.catalogue().files)
        files = {
            view: [key for key in committed if layout.in_table(key, folder)]
            for view, (folder, _) in TABLES.items()
        }
        return cls(store, files)

    def dataset(self, view: str, only: list[str] | None = None) -> ds.Dataset:
        """The view's committed files (``only`` those of them, if given) that are not isolated."""
        folder, schema = TABLES[view]
        keys = [k for k in (self.files[view] if only is None else only) if k not in self.isolated]
        # Strings are read as dictionaries (DuckDB still sees VARCHAR): the Parquet pages hold them
        # dictionary-encoded, and decoding every value took most of a scan's time (one network over
        # a year of 20M rows: 2.7 → 0.9 s; a path pattern 0.77 → 0.22 s).
        strings = [f.name for f in schema if f.type == pa.string()]
        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=strings))
        fields = [pa.field(f.name, DICT, f.nullable) if f.name in strings else f for f in schema]
        while True:
            try:
                return self.store.dataset(folder, keys, pa.schema(fields), fmt)
            except (FileNotFoundError, IsADirectoryError):  # pyarrow checks every path when it
                self._left_out_missing(keys)  # builds the views: one gone would end every query
                keys = [k for k in keys if k not in self.isolated]

    def _left_out_missing(self, keys: list[str]) -> None:
        """Isolate the committed files that are gone or are a folder now; a file no manifest lists
        any more was retired by a maintenance run meanwhile (``StoreChangedError``: open new views)."""
        gone: dict[str, str] = {}
        for k in keys:
            if self.store.is_folder(k):
                gone[k] = "a folder, not a file"
            elif not self.store.exists(k):
                gone[k] = "missing"
        if not gone:
            raise StoreError(f"cannot open the store's files at {self.store.location}")
        self.still_committed(list(gone))
        self.isolated.update(gone)

    def still_committed(self, keys: list[str]) -> dict[str, FileRecord]:
        """The store's committed files, when ``keys`` are still among them; a file no manifest lists
        any more was retired by a maintenance run meanwhile (``StoreChangedError``: reopen)."""
        committed = self.store.catalogue().files
        if any(k not in committed for k in keys):
            raise StoreChangedError(STORE_CHANGED)
        return committed


class Sandbox:
    """A sandboxed DuckDB connection over the store's committed files (see the module doc).

    Opened only by ``pipeline/investigate/session.py`` (audited): calling ``Sandbox(...)`` raises.
    ``execute`` runs SQL within the limits; ``con`` is the bare DuckDB connection (already locked down).
    """

    limits: Limits
    evidence: _Evidence
    warnings: list[str]
    con: duckdb.DuckDBPyConnection

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a Sandbox is opened through pipeline.investigate.session (audited), not directly")

    def _setup(self, store: Store, limits: Limits) -> None:
        self.limits = limits
        self.evidence = _Evidence.load(store)
        self.warnings = []
        self._runs_loaded = False
        self._narrowed: dict[str, list[str]] = {}  # view name → the pageviews files it scans
        self._warned: set[str] = set()  # isolated files already warned of
        self.con = duckdb.connect(":memory:")
        try:
            self.con.execute("SET TimeZone = 'UTC'")
            for view in TABLES:
                self.con.register(view, self.evidence.dataset(view))
            self._warn_isolated()
            self.con.register("ingest_runs", EMPTY_RUNS)  # filled on first use (_load_runs)
            self._result_limit = _lock(self.con, self.limits)
        except BaseException:
            self.con.close()
            raise

    def close(self) -> None:
        self.con.close()

    def narrowed(self, column: str, values: Sequence[tuple[object, dt.date, dt.date]]) -> str:
        """A view of ``pageviews`` over the files whose bloom filters may hold ``column`` = one of the
        ``values`` (value, first day, last day): for statements whose WHERE requires exactly that, the
        same rows with fewer files read (``bloom.py``). ``pageviews`` when the probe cannot tell."""
        ev = self.evidence
        keys = [k for k in ev.files["pageviews"] if k not in ev.isolated]
        kept = bloom.candidates(ev.store, keys, column, values)
        if kept is None or len(kept) == len(keys):
            return "pageviews"
        name = f"_pageviews_{len(self._narrowed) + 1}"
        self._narrowed[name] = kept
        self.con.register(name, ev.dataset("pageviews", kept))
        self._warn_isolated()
        return name

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str) -> QueryResult:
        """Run SQL (checked by the caller, or our own); unreadable store files are left out, warned of."""
        if not self._runs_loaded and "ingest_runs" in sql.lower():
            self._load_runs()
        for _ in range(MAX_ISOLATED):
            try:
                return self._once(sql)
            except duckdb.Error as exc:
                if not self._isolate(exc):
                    raise _usage(exc) from None
        raise UsageError(
            f"query failed: more than {MAX_ISOLATED} store files cannot be read; run 'hostlogs verify'"
        )

    def _once(self, sql: str) -> QueryResult:
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            self.con.interrupt()

        timer = threading.Timer(self.limits.timeout, stop) if self.limits.timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            rel = self.con.sql(sql)
            if rel is None:  # a statement without a result (our own CREATE TEMP TABLE)
                return QueryResult([], [])
            reader = rel.to_arrow_reader(65_536)
            batches, size = [], 0
            for batch in reader:
                size += batch.nbytes
                if size > self._result_limit:
                    raise QueryLimitError(
                        f"the result is larger than query.memory_limit ({self.limits.memory_limit}): "
                        "aggregate, add a LIMIT, or narrow the dates"
                    )
                batches.append(batch)
            table = pa.Table.from_batches(batches, schema=reader.schema)
        except duckdb.InterruptException:
            if fired.is_set():
                raise QueryLimitError(
                    f"query stopped after {_seconds(self.limits.timeout)} (query.timeout): narrow it "
                    "(dates, domain, LIMIT) or raise query.timeout"
                ) from None
            raise UsageError("query interrupted") from None
        except duckdb.OutOfMemoryException:
            raise QueryLimitError(
                f"the query needs more than query.memory_limit ({self.limits.memory_limit}): narrow it "
                "(dates, domain, fewer columns) or raise query.memory_limit"
            ) from None
        finally:
            if timer is not None:
                timer.cancel()
        columns = [self._values(table, i) for i in range(table.num_columns)]
        return QueryResult(columns=table.column_names, rows=list(zip(*columns, strict=True)), table=table)

    def _values(self, table: pa.Table, i: int) -> list[Any]:
        """Column ``i`` as Python values, column by column (two columns may share a name). Values
        Python has no type for ('infinity' dates, years past 9999, nanoseconds) as DuckDB's text."""
        try:
            values: list[Any] = table.column(i).to_pylist()
            return values
        except (OverflowError, ValueError):
            self.con.register("_hostlogs_values", table.select([i]).rename_columns(["v"]))
            try:
                text = self.con.execute('SELECT CAST("v" AS VARCHAR) FROM _hostlogs_values').fetchall()
                return [v for (v,) in text]
            finally:
                self.con.unregister("_hostlogs_values")

    def _isolate(self, exc: duckdb.Error) -> bool:
        """Leave out the store file DuckDB's scan failed on; False when the error is not about one.

        A file the manifests no longer list was retired by a maintenance run meanwhile:
        ``StoreChangedError`` (the caller retries on a fresh connection).
        """
        text = str(exc)
        if "registered as '" not in text and "No such file" not in text:
            return False
        ev = self.evidence
        views = {v: ev.files[v] for v in TABLES} | self._narrowed  # a narrowed view scans pageviews files
        view = next((v for v in views if f"registered as '{v}'" in text), None)
        # DuckDB names the file by the location the dataset gave it, which ends with its key
        named = [k for v in TABLES for k in ev.files[v] if k in text and k not in ev.isolated]
        if not named and view is not None:  # the error does not say which file: check them
            named = [
                k for k in views[view] if k not in ev.isolated and ev.store.check_file(k, checksum=False)
            ][:1]
        if not named:
            return False
        key = named[0]
        problem = ev.store.check_file(key, ev.still_committed([key])[key], checksum=False)
        ev.isolated[key] = problem or f"not readable: {first_line(exc)}"
        for v in TABLES:
            if key in ev.files[v]:
                self.con.register(v, ev.dataset(v))
        for name, kept in self._narrowed.items():
            if key in kept:
                self.con.register(name, ev.dataset("pageviews", kept))
        self._warn_isolated()
        return True

    def _warn_isolated(self) -> None:
        """One warning per store file left out of the views (unreadable or missing)."""
        for key, problem in self.evidence.isolated.items():
            if key not in self._warned:
                self._warned.add(key)
                self.warnings.append(
                    f"{key} cannot be read ({problem}): left out, the result misses its rows; "
                    "run 'hostlogs verify'"
                )

    def _load_runs(self) -> None:
        """``ingest_runs``: every manifest, one row each (loaded when a statement names it)."""
        manifests = list(self.evidence.store.iter_manifests())
        if manifests:
            runs = pa.Table.from_struct_array(pa.array(manifests))
            self.con.register(
                "ingest_runs", runs.sort_by([("seq", "ascending")]) if "seq" in runs.column_names else runs
            )
        self._runs_loaded = True


def _open(store: Store, limits: Limits) -> Sandbox:
    """A new sandbox (for ``session.py`` only, after the audit entry: the one door to the store)."""
    sb = object.__new__(Sandbox)
    sb._setup(store, limits)
    return sb


def _lock(con: duckdb.DuckDBPyConnection, limits: Limits) -> int:
    """Limits, then no file access, then the lock; returns the result size limit in bytes."""
    spill = tempfile.mkdtemp(prefix="hostlogs-duckdb-")  # private spill space, not the cwd's .tmp
    atexit.register(shutil.rmtree, spill, ignore_errors=True)
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
    con.execute("SET allowed_paths = []")
    con.execute("SET allowed_directories = []")
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return _bytes(str(con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]))


_UNITS = {"": 1, "B": 1, "KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12, "KIB": 1 << 10, "MIB": 1 << 20,
          "GIB": 1 << 30, "TIB": 1 << 40}  # fmt: skip


def _bytes(text: str) -> int:
    m = re.fullmatch(r"\s*([0-9.]+)\s*([A-Za-z]*)\s*", text)
    if not m or m.group(2).upper() not in _UNITS:
        return 1 << 62
    return int(float(m.group(1)) * _UNITS[m.group(2).upper()])


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:g} s" if value < 120 else f"{value / 60:g} min"


def sql_str(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def _usage(exc: duckdb.Error) -> HostlogsError:
    """DuckDB's error as a one-line usage error (a refusal names the sandbox)."""
    if isinstance(exc, duckdb.PermissionException):
        return UsageError(f"query refused by the sandbox: {_permission(exc)} ({SANDBOX_HINT})")
    if isinstance(exc, duckdb.InvalidInputException) and "configuration has been locked" in str(exc):
        return UsageError(f"query refused by the sandbox: settings are locked ({SANDBOX_HINT})")
    return UsageError(f"query failed: {first_line(exc)}")


def _permission(exc: duckdb.Error) -> str:
    text = first_line(exc).removeprefix("Permission Error: ")
    return text.replace(" - file system operations are disabled by configuration", " (no file access)")


STORE_CHANGED = (
    "the store changed while the query ran (a compaction, purge or erase replaced its files): run it again"
)
