"""DuckDB over the store, sandboxed and audited: views ``pageviews``, ``rejects`` and ``ingest_runs``.

**Read-only by construction.** The views show the committed Parquet files only (the manifests'
list, ``Store.catalogue``: a file no manifest commits is never shown, whatever lies in
``pageviews/date=…/``), read one of two ways (``query.reader``, ``evidence.py``):

* **DuckDB's own reader, fenced** (``auto``, a local store on a kernel with Landlock): the views are
  ``read_parquet`` of exactly those files, and ``allowed_paths`` lists exactly them, so DuckDB may
  open them and nothing else. Because ``allowed_paths`` admits writes too (``COPY ... TO`` a committed
  file with ``USE_TMP_FILE false``), the connection lives in a thread the kernel keeps from writing
  anywhere but its spill folder, nor read any file but those (DuckDB checks ``allowed_paths`` as text,
  the kernel follows links: ``fence.py``); every use of it runs there, ``con`` included. An
  investigator may read a committed file by its path (``read_blob``, ``read_parquet``): the same rows.
* **pyarrow datasets** (``arrow``, an object store, or no Landlock): DuckDB gets no file access at all;
  the files are registered as pyarrow datasets, which open them read-only.

Either way DuckDB pushes the projection and the filters, the ``date`` partition included, into the
scan. The manifests are loaded into an in-memory table. Then every door is shut and the configuration
locked:

==============================  ====================================================================
control                         what it blocks
==============================  ====================================================================
enable_external_access=false    every file and network access: COPY ... TO, read_csv/read_text/
allowed_paths=[committed files] read_blob/read_parquet/glob of any other path, ATTACH of a file,
allowed_directories=[]          EXPORT DATABASE, INSTALL/LOAD, CREATE (persistent) SECRET
Landlock (fenced reader)        any write, truncation, removal, link or TCP connection by its threads,
                                and any read of a file not committed, whatever the path
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
the query runs over the rest, and a warning names the file and says to run ``hostlogs verify``. (With
DuckDB's reader a file is left out only when it is gone or not as committed: an error naming a path
is not enough, a statement's own text may name one.)

**Audited.** A ``Sandbox`` cannot be constructed here: ``pipeline/investigate/session.py`` opens it,
after it has validated the case and written the audit entry (``audited``, ``run``, ``Session``,
``with_connection``, ``connect``), so no caller reaches the store's rows unaudited.
"""

from __future__ import annotations

import datetime as dt
import functools
import shutil
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar, cast

import duckdb

from pipeline.errors import QueryLimitError, StoreError, UsageError
from pipeline.investigate import bloom
from pipeline.investigate.duck_settings import DUCKDB_READS, first_line, lock, usage_error
from pipeline.investigate.evidence import TABLES, Evidence
from pipeline.investigate.fence import Fence, Fenced
from pipeline.investigate.limits import Limits, seconds_text, spill_folder
from pipeline.investigate.result import QueryResult, fetch_rows, native
from pipeline.store.commit import Store

if TYPE_CHECKING:  # imported when a result travels as Arrow (``result.py``)
    import pyarrow as pa

T = TypeVar("T")

MAX_ISOLATED = 64  # unreadable files left out of one statement before it gives up
READ_ERRORS = (duckdb.IOException, duckdb.InvalidInputException)  # what a damaged file raises
LAZY = (duckdb.DuckDBPyConnection, duckdb.DuckDBPyRelation, duckdb.Appender)  # their use runs SQL


class Sandbox:
    """A sandboxed DuckDB connection over the store's committed files (see the module doc).

    Opened only by ``pipeline/investigate/session.py`` (audited): calling ``Sandbox(...)`` raises.
    ``execute`` runs SQL within the limits; ``con`` is the bare DuckDB connection (already locked
    down; when fenced, every call through it runs in the fenced thread).
    """

    limits: Limits
    evidence: Evidence
    warnings: list[str]

    def __init__(self, *args: object, **kwargs: object) -> None:
        raise TypeError("a Sandbox is opened through pipeline.investigate.session (audited), not directly")

    def _setup(self, store: Store, limits: Limits) -> None:
        self.limits = limits
        self.evidence = Evidence.load(store)
        self.warnings = []
        self._runs_loaded = False
        self._narrowed: dict[str, list[str]] = {}  # view name → the pageviews files it scans
        self._shown: dict[str, set[str]] = {}  # view name → the files its definition scans
        self._warned: set[str] = set()  # isolated files already warned of
        self._spill = spill = spill_folder()
        self._fence: Fence | None = None
        self._union = False  # whether views read each file's columns by name (files differ)
        try:
            paths = self.evidence.paths() if limits.reader == "auto" else None
            self.evidence.screen()
            self._fence = Fence.start(spill, [*paths.values(), *DUCKDB_READS]) if paths is not None else None
            self._paths = paths if self._fence is not None else None  # None: pyarrow datasets
            self._con = self._run(lambda: duckdb.connect(":memory:"))
            if self._fence is not None:
                self._fence.interrupt = self._con.interrupt
            self._views(spill)
        except BaseException:
            self.close()
            raise

    def _views(self, spill: str) -> None:
        """The views, then the lock. Store files are checked here, DuckDB is used in the fence: its
        thread reads no file but the committed ones (not the manifests, not a module to import)."""
        con = self._con
        self._run(lambda: con.execute("SET TimeZone = 'UTC'"))
        self._run(lambda: con.execute("SET parquet_metadata_cache = true"))  # footers: read at bind and scan
        for view in TABLES:
            self._show(view, view)
        self._warn_isolated()
        runs = (
            "CREATE TEMP VIEW ingest_runs AS SELECT NULL::BIGINT AS seq, NULL::VARCHAR AS batch WHERE false"
        )
        self._run(lambda: con.execute(runs))  # filled on first use (_load_runs)
        # a file found altered or gone before the lock is not even readable by its path
        readable = {k: p for k, p in (self._paths or {}).items() if k not in self.evidence.isolated}
        self._result_limit = self._run(lambda: lock(con, self.limits, spill, readable))

    @property
    def fenced(self) -> bool:
        """Whether DuckDB reads the files itself, in a thread the kernel keeps from writing."""
        return self._fence is not None

    @property
    def con(self) -> duckdb.DuckDBPyConnection:
        if self._fence is None:
            return self._con
        return cast(duckdb.DuckDBPyConnection, Fenced(self._con, self._fence, LAZY))

    def _run(self, fn: Callable[[], T]) -> T:
        """``fn`` where the connection may be used: in the fenced thread, if there is one."""
        return fn() if self._fence is None else self._fence.call(fn)

    def close(self) -> None:
        if getattr(self, "_closed", False):
            return
        self._closed = True
        try:
            if hasattr(self, "_con"):
                self._run(self._con.close)
        finally:
            if self._fence is not None:
                self._fence.stop()
            shutil.rmtree(self._spill, ignore_errors=True)  # (also at exit: a sandbox left open)

    def _show(self, name: str, view: str, only: list[str] | None = None) -> None:
        """(Re)define the view ``name`` over ``view``'s files (``only`` those, if given)."""
        ev = self.evidence
        if self._paths is None:
            self._con.register(name, ev.dataset(view, only))
            self._shown[name] = set(ev.keys(view, only))
            return
        for _ in range(MAX_ISOLATED):
            scan = ev.scan(view, only, self._union)
            try:  # without union, the first file has every column (else binding fails: union then)
                self._run(functools.partial(self._define, name, view, scan))
                self._shown[name] = set(ev.keys(view, only))
                return
            except duckdb.Error as exc:  # a damaged file among them: leave it out, try again
                if scan and not self._union and (_mismatch(exc) or isinstance(exc, duckdb.BinderException)):
                    self._union = True
                elif not scan or self._unreadable(exc) is None:
                    raise StoreError(f"cannot open the store's files: {first_line(exc)}") from None
        raise StoreError(f"more than {MAX_ISOLATED} store files cannot be read; run 'hostlogs verify'")

    def _define(self, name: str, view: str, scan: str | None) -> None:
        """CREATE the view ``name`` over ``scan`` (in the fence)."""
        ev = self.evidence
        if scan is None:
            present: set[str] = set()
        elif self._union:
            present = {c[0] for c in self._con.execute(f"DESCRIBE SELECT * FROM {scan}").fetchall()}
        else:
            present = ev.columns(view)
        self._con.execute(f"CREATE OR REPLACE VIEW {name} AS {ev.select(view, scan, present)}")

    def narrowed(self, column: str, values: Sequence[tuple[object, dt.date, dt.date]]) -> str:
        """A view of ``pageviews`` over the files whose bloom filters may hold ``column`` = one of the
        ``values`` (value, first day, last day): for statements whose WHERE requires exactly that, the
        same rows with fewer files read (``bloom.py``). ``pageviews`` when the probe cannot tell."""
        ev = self.evidence
        keys = ev.keys("pageviews")
        kept = bloom.candidates(ev.store, keys, column, values)
        if kept is None or len(kept) == len(keys):
            return "pageviews"
        name = f"_pageviews_{len(self._narrowed) + 1}"
        self._narrowed[name] = kept
        self._show(name, "pageviews", kept)
        self._warn_isolated()
        return name

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def execute(self, sql: str, *, arrow: bool = False) -> QueryResult:
        """Run SQL (checked by the caller, or our own); unreadable store files are left out, warned of.

        ``arrow``: the result's ``table`` is the Arrow result (typed output); otherwise a result of
        plain types is fetched without pyarrow and has none.
        """
        if not self._runs_loaded and "ingest_runs" in sql.lower():
            self._load_runs()
        for _ in range(MAX_ISOLATED):
            try:
                return self._once(sql, arrow)
            except duckdb.Error as exc:
                if not self._isolate(exc):
                    raise usage_error(exc) from None
        raise UsageError(
            f"query failed: more than {MAX_ISOLATED} store files cannot be read; run 'hostlogs verify'"
        )

    def _once(self, sql: str, arrow: bool) -> QueryResult:
        fired = threading.Event()

        def stop() -> None:
            fired.set()
            self._con.interrupt()

        timer = threading.Timer(self.limits.timeout, stop) if self.limits.timeout else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            fetched = self._run(lambda: self._fetch(sql, arrow))
            if not isinstance(fetched, QueryResult):  # a relation to fetch through Arrow
                # imported here: the fenced thread may read no file but the store's, no module either
                from pipeline.investigate.arrow_values import fetch_table

                rel, limit, too_large = fetched, self._result_limit, self._too_large()
                fetched = self._run(lambda: fetch_table(rel, limit, too_large, typed=arrow))
        except duckdb.InterruptException:
            if fired.is_set():
                raise QueryLimitError(
                    f"query stopped after {seconds_text(self.limits.timeout)} (query.timeout): narrow it "
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
        if isinstance(fetched, QueryResult):
            return fetched
        table = fetched  # Python values outside the fenced thread (``_as_text`` runs SQL in it)
        columns = [self._values(table, i) for i in range(table.num_columns)]
        return QueryResult(columns=table.column_names, rows=list(zip(*columns, strict=True)), table=table)

    def _fetch(self, sql: str, arrow: bool) -> QueryResult | duckdb.DuckDBPyRelation:
        """The result, or the relation when it is to be fetched through Arrow (``_once``)."""
        rel = self._con.sql(sql)
        if rel is None:  # a statement without a result (our own CREATE TEMP TABLE)
            return QueryResult([], [])
        if not arrow and native(rel):
            result = fetch_rows(self._con, sql, rel, self._result_limit, self._too_large())
            if result is not None:
                return result
        return rel

    def _too_large(self) -> QueryLimitError:
        return QueryLimitError(
            f"the result is larger than query.memory_limit ({self.limits.memory_limit}): "
            "aggregate, add a LIMIT, or narrow the dates"
        )

    def _values(self, table: pa.Table, i: int) -> list[Any]:
        """Column ``i`` as Python values, column by column (two columns may share a name). Values
        Python has no type for ('infinity' dates, years past 9999, nanoseconds) as DuckDB's text."""
        from pipeline.investigate.arrow_values import python_values

        try:
            return python_values(table.column(i))
        except (OverflowError, ValueError):
            return self._run(lambda: self._as_text(table.select([i]).rename_columns(["v"])))

    def _as_text(self, column: pa.Table) -> list[Any]:
        self._con.register("_hostlogs_values", column)
        try:
            text = self._con.execute('SELECT CAST("v" AS VARCHAR) FROM _hostlogs_values').fetchall()
            return [v for (v,) in text]
        finally:
            self._con.unregister("_hostlogs_values")

    def _unreadable(self, exc: duckdb.Error) -> str | None:
        """The store file DuckDB's scan failed on, now isolated; None when the error is not about one.

        A file the manifests no longer list was retired by a maintenance run meanwhile:
        ``StoreChangedError`` (the caller retries on a fresh connection).
        """
        text = str(exc)
        ev = self.evidence
        if self._paths is not None:  # DuckDB names the file by its path (a statement's text may too:
            named = [k for k, p in self._paths.items() if p in text]
            if not named or not isinstance(exc, (*READ_ERRORS, duckdb.PermissionException)):
                return None  # so a file is left out only when it is gone or its bytes are not as committed)
            fresh = [k for k in named if k not in ev.isolated]
            if not fresh:  # left out already: a view still scanning it is shown again
                stale = [k for k in named if any(k in keys for keys in self._shown.values())]
                return max(stale, key=len) if stale else None
            key = max(fresh, key=len)
            record = ev.still_committed([key])[key]
            if ev.gone(key):  # and every other file gone with it, at once
                ev.left_out_missing([k for v in TABLES for k in ev.keys(v)])
                return key
            problem = ev.store.check_file(key, record)
            if problem is not None:
                ev.isolated[key] = problem
            return key if problem else None
        if "registered as '" not in text and "No such file" not in text:
            return None
        views = {v: ev.files[v] for v in TABLES} | self._narrowed  # a narrowed view scans pageviews files
        view = next((v for v in views if f"registered as '{v}'" in text), None)
        # DuckDB names the file by the location the dataset gave it, which ends with its key
        named = [k for v in TABLES for k in ev.files[v] if k in text and k not in ev.isolated]
        if not named and view is not None:  # the error does not say which file: check them
            named = [k for k in ev.keys(view, views[view]) if ev.store.check_file(k, checksum=False)][:1]
        if not named:
            return None
        ev.isolated[named[0]] = ev.problem(named[0], first_line(exc))
        return named[0]

    def _isolate(self, exc: duckdb.Error) -> bool:
        """Leave out the store file a statement failed on (``_unreadable``) and show the views again."""
        everything = self._paths is not None and not self._union and _mismatch(exc)
        if everything:
            self._union = True  # a file lacks a column the first one has: every view reads by name
        elif self._unreadable(exc) is None:
            return False
        # every view that still scans a file left out is shown again (which may leave out more)
        isolated = self.evidence.isolated.keys()
        while stale := [n for n, keys in self._shown.items() if everything or keys & isolated]:
            everything = False
            for name in stale:
                self._show(name, "pageviews" if name in self._narrowed else name, self._narrowed.get(name))
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
            import pyarrow as pa

            runs = pa.Table.from_struct_array(pa.array(manifests))
            runs = runs.sort_by([("seq", "ascending")]) if "seq" in runs.column_names else runs
            self._run(lambda: self._con.execute("DROP VIEW ingest_runs").register("ingest_runs", runs))
        self._runs_loaded = True


def _open(store: Store, limits: Limits) -> Sandbox:
    """A new sandbox (for ``session.py`` only, after the audit entry: the one door to the store)."""
    sb = object.__new__(Sandbox)
    sb._setup(store, limits)
    return sb


def _mismatch(exc: duckdb.Error) -> bool:
    """DuckDB's error for a file without a column the first file of the scan has."""
    return isinstance(exc, (*READ_ERRORS, duckdb.BinderException)) and "union_by_name" in str(exc)
