"""The committed files a sandbox shows, and how a view reads them: a pyarrow dataset, or DuckDB's own
Parquet reader (``read_parquet`` of the very files, inside the fenced thread of ``fence.py``).

Both readings give one schema: the store's (``store/schema.py``) with the ``date`` partition last.
A file written before a column existed reads NULL in it; a column no file has yet is still there.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

from pipeline.errors import StoreChangedError, StoreError
from pipeline.store import layout
from pipeline.store.catalogue import FileRecord
from pipeline.store.commit import Store
from pipeline.store.fs import check_key
from pipeline.store.schema import DATE, PAGEVIEW_FIELDS, REJECT_FIELDS, arrow_schema

TABLES = {"pageviews": (layout.PAGEVIEWS, PAGEVIEW_FIELDS), "rejects": (layout.REJECTS, REJECT_FIELDS)}
GLOB = frozenset("*?[]{}")  # characters DuckDB's read_parquet would take for a pattern
STORE_CHANGED = (
    "the store changed while the query ran (a compaction, purge or erase replaced its files): run it again"
)


@dataclass
class Evidence:
    """The committed files of the store at one moment, and those found unreadable since."""

    store: Store
    files: dict[str, list[str]]  # view → store keys
    records: dict[str, FileRecord]  # key → its manifest's record
    isolated: dict[str, str] = field(default_factory=dict)  # key → what is wrong
    local: dict[str, str] = field(default_factory=dict)  # key → absolute path (``paths``)

    @classmethod
    def load(cls, store: Store) -> Evidence:
        records = store.catalogue().files
        committed = sorted(records)
        files = {
            view: [key for key in committed if layout.in_table(key, folder)]
            for view, (folder, _) in TABLES.items()
        }
        return cls(store, files, records)

    def screen(self) -> None:
        """Leave out, before any scan, the files that are gone or not of their committed size: a
        file replaced, cut or grown since its commit is not read as evidence (a changed byte of the
        same size is found by ``hostlogs verify``, or when a scan fails on it). One stat a file (an
        object store, when it comes, would list a prefix once instead)."""
        gone = []
        for keys in self.files.values():
            for k in keys:
                committed = self.records[k].bytes
                try:
                    size = os.stat(self.local[k]).st_size if k in self.local else self.store.size(k)
                except (FileNotFoundError, NotADirectoryError):
                    gone.append(k)
                    continue
                except OSError as exc:  # (a folder this user may not enter)
                    self.isolated[k] = f"unreadable: {exc.strerror or exc}"
                    continue
                if committed is not None and size != committed:
                    if self.store.is_folder(k):
                        gone.append(k)
                    else:
                        self.isolated[k] = f"altered: {size:,} bytes, committed with {committed:,}"
        if gone:
            self.left_out_missing(gone)

    def keys(self, view: str, only: list[str] | None = None) -> list[str]:
        """The view's committed files (``only`` those of them, if given) that are not isolated."""
        return [k for k in (self.files[view] if only is None else only) if k not in self.isolated]

    # --- pyarrow ------------------------------------------------------------------------------------
    def dataset(self, view: str, only: list[str] | None = None) -> object:
        """The files as one pyarrow dataset (DuckDB scans it through Arrow, with no file access)."""
        import pyarrow as pa  # imports a fenced sandbox does without
        import pyarrow.dataset as ds

        folder, columns = TABLES[view]
        keys = self.keys(view, only)
        # Strings are read as dictionaries (DuckDB still sees VARCHAR): the Parquet pages hold them
        # dictionary-encoded, and decoding every value took most of a scan's time (one network over
        # a year of 20M rows: 2.7 → 0.9 s; a path pattern 0.77 → 0.22 s).
        strings = [c.name for c in columns if c.type == "VARCHAR"]
        fmt = ds.ParquetFileFormat(read_options=ds.ParquetReadOptions(dictionary_columns=strings))
        dictionary = pa.dictionary(pa.int32(), pa.string())
        fields = [pa.field(f.name, dictionary, f.nullable) if f.name in strings else f
                  for f in arrow_schema(columns)]  # fmt: skip
        while True:
            try:
                return self.store.dataset(folder, keys, pa.schema(fields), fmt)
            except (FileNotFoundError, IsADirectoryError):  # pyarrow checks every path when it
                self.left_out_missing(keys)  # builds the views: one gone would end every query
                keys = self.keys(view, keys)

    # --- DuckDB's reader ----------------------------------------------------------------------------
    def paths(self) -> dict[str, str] | None:
        """Every committed file's local path by key; None when DuckDB cannot be handed plain paths:
        an object store, a store folder whose name read_parquet would take for a pattern, or one
        below a ``name=value`` folder (hive partitioning reads every such folder of the path, and
        the first ``date=`` wins: ``/srv/domain=x/store`` would make every row's domain ``x``)."""
        base = self.store.url("")
        if "://" in base or GLOB.intersection(base := os.path.abspath(base)) or "=" in base:
            return None
        if any(k.count("=") != 1 for keys in self.files.values() for k in keys):
            return None
        if not self.local:  # as LocalFS.path makes them, without a Path object each (730 files: 25 ms)
            self.local = {k: f"{base}/{check_key(k)}" for keys in self.files.values() for k in keys}
        if any(GLOB.intersection(p) for p in self.local.values()):
            return None
        return self.local

    def scan(self, view: str, only: list[str] | None = None, union: bool = False) -> str | None:
        """``read_parquet`` of the view's files, or None when there are none. Without ``union``
        DuckDB takes the columns from the first file (a file lacking one of them is an error, which
        the sandbox answers with ``union``: every file's footer read when the view is bound)."""
        keys = self.keys(view, only)
        if not keys:
            return None
        files = ", ".join(sql_str(self.local[k]) for k in keys)
        return (
            f"read_parquet([{files}], hive_partitioning = true, hive_types = {{'date': DATE}}, "
            f"union_by_name = {str(union).lower()})"
        )

    def columns(self, view: str) -> set[str]:
        """The columns of the view's schema, the ``date`` partition included."""
        return {c.name for c in [*TABLES[view][1], DATE]}

    def select(self, view: str, scan: str | None, present: set[str]) -> str:
        """The SELECT a view is defined by: every column of the schema, cast to its type, from
        ``scan``; NULL for a column ``present`` (the columns the files have) lacks."""
        _, columns = TABLES[view]
        typed = ", ".join(
            f"CAST({name if c.name in present else 'NULL'} AS {c.type}) AS {name}"
            for c in [*columns, DATE]
            if (name := sql_ident(c.name))
        )
        return f"SELECT {typed} FROM {scan}" if scan else f"SELECT {typed} WHERE false"

    # --- files that went missing --------------------------------------------------------------------
    def left_out_missing(self, keys: list[str]) -> None:
        """Isolate the committed files that are gone or are a folder now; a file no manifest lists
        any more was retired by a maintenance run meanwhile (``StoreChangedError``: open new views)."""
        gone = {k: p for k in keys if (p := self.gone(k))}
        if not gone:
            raise StoreError(f"cannot open the store's files at {self.store.location}")
        self.still_committed(list(gone))
        self.isolated.update(gone)

    def gone(self, key: str) -> str | None:
        """Why a committed file cannot be opened at all ("missing", "a folder, not a file"), or None."""
        if self.store.is_folder(key):
            return "a folder, not a file"
        return None if self.store.exists(key) else "missing"

    def problem(self, key: str, error: str) -> str:
        """What is wrong with a committed file a scan failed on (``error``: the reader's message)."""
        found = self.gone(key) or self.store.check_file(key, self.still_committed([key])[key], checksum=False)
        return found or f"not readable: {error}"

    def still_committed(self, keys: list[str]) -> dict[str, FileRecord]:
        """The store's committed files, when ``keys`` are still among them; a file no manifest lists
        any more was retired by a maintenance run meanwhile (``StoreChangedError``: reopen)."""
        committed = self.store.catalogue().files
        if any(k not in committed for k in keys):
            raise StoreChangedError(STORE_CHANGED)
        return committed


def sql_ident(name: str) -> str:
    """A quoted SQL identifier (the views' columns, the result's names)."""
    return '"' + name.replace('"', '""') + '"'


def sql_str(value: str) -> str:
    """A SQL string literal (the sandbox's and the investigations' one quoting)."""
    return "'" + value.replace("'", "''") + "'"
