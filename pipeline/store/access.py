"""Key-based access to a store's files: the methods every stage calls instead of touching paths.

``StoreFiles`` is the base of ``Store`` (``pipeline/store/commit.py`` adds the commit protocol). Keys
are posix strings relative to the store root, built with ``pipeline.store.layout``. Every method
also accepts a ``Path`` under the root (``_key``): the stages use keys, some tests still build paths;
``root`` (deprecated, a local path) goes once those tests do not need it.
"""

from __future__ import annotations

import builtins
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:  # imported where used: commands that only read manifests, and queries, start faster
    import polars as pl
    import pyarrow as pa
    import pyarrow.dataset as ds

from pipeline.errors import StoreError, UsageError, store_error
from pipeline.store import catalogue, layout
from pipeline.store.fs import LocalFS, Payload, StoreFS
from pipeline.store.schema import DATE, arrow_schema

Key = str | os.PathLike[str]


STALE_SECONDS = 6 * 3600  # a write in progress renames its temporary within seconds


class StoreFiles:
    """A store's files by key, through its ``StoreFS`` (a local directory unless given another)."""

    fs: StoreFS

    def __init__(self, root: str | os.PathLike[str], fs: StoreFS | None = None) -> None:
        self.fs = fs if fs is not None else LocalFS(root)
        self.root = Path(root)  # deprecated: no stage uses it (the seam test); some tests still do

    # --- where ------------------------------------------------------------------------------------
    @property
    def location(self) -> str:
        """Where the store is, for messages."""
        return self.fs.describe()

    def is_store(self) -> bool:
        return self.fs.is_store()

    def _key(self, key: Key) -> str:
        if isinstance(key, str) and not os.path.isabs(key):
            return key
        if isinstance(self.fs, LocalFS):
            return self.fs.key(key)
        return Path(key).as_posix()

    def refuse_output_inside(self, output: str | os.PathLike[str]) -> None:
        """An output file (export, query, report) is never written into the store: it would not be
        committed, and it could overwrite evidence (the audit trail, a manifest) — exit 2."""
        if self.fs.holds(output):
            raise UsageError(f"--output {output} is inside the store at {self.location}: write it elsewhere")

    def key_of(self, location: str) -> str | None:
        """The key of a location the store handed out (``url``, a ``dataset`` file), None if foreign."""
        return self.fs.key_of(location)

    def url(self, key: Key) -> str:
        """Where a file is: what Parquet readers open (a path, later ``s3://…``) and messages show."""
        return self.fs.url(self._key(key))

    # --- reading ----------------------------------------------------------------------------------
    def exists(self, key: Key) -> bool:
        return self.fs.exists(self._key(key))

    def temporaries(self, under: Key) -> builtins.list[str]:
        """Keys of the temporary files writers left under ``under`` (a write killed before its rename)."""
        return self.fs.temporaries(self._key(under))

    def remove_stale_temporaries(self, under: Key) -> None:
        """The temporaries under ``under`` that no write has touched for ``STALE_SECONDS``: a killed
        ingest's file of expired rows had outlived the purge, and ``purge --verify`` had not seen it
        (found by review). By age, not by the writers' locks: maintenance never takes an ingest
        writer's lock (an ingest starting meanwhile had exited 75; found by the next review)."""
        for key in self.fs.temporaries(self._key(under), older_than=STALE_SECONDS):
            self.fs.remove(key)

    def is_folder(self, key: Key) -> bool:
        return self.fs.is_folder(self._key(key))

    def size(self, key: Key) -> int:
        """Bytes of a file (OSError, e.g. FileNotFoundError, as the filesystem raises it)."""
        return self.fs.size(self._key(key))

    def read_bytes(self, key: Key) -> bytes:
        return self.fs.read_bytes(self._key(key))

    def open_read(self, key: Key) -> IO[bytes]:
        return self.fs.open_read(self._key(key))

    def sha256(self, key: Key) -> str:
        return catalogue.sha256(self.fs, self._key(key))

    def read_json(self, key: Key) -> dict[str, Any] | None:
        """A JSON object, or None when the file is missing; unreadable: StoreError."""
        k = self._key(key)
        try:
            data = json.loads(self.fs.read_bytes(k).decode("utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError, RecursionError) as exc:  # (nesting deeper than the parser goes)
            raise StoreError(f"cannot read {self.fs.url(k)}: {exc}") from exc
        if not isinstance(data, dict):
            raise StoreError(f"cannot read {self.fs.url(k)}: a JSON {type(data).__name__}, not an object")
        return data

    def list(self, prefix: Key, suffix: str = "", pattern: str | None = None) -> builtins.list[str]:
        """Keys of the files under ``prefix`` (recursive; ``pattern``: a glob below it), sorted."""
        return self.fs.list(self._key(prefix), suffix, pattern)

    def folders(self, prefix: Key) -> builtins.list[str]:
        """Names of the immediate subfolders of ``prefix``, sorted (none when it is missing)."""
        return self.fs.folders(self._key(prefix))

    # --- Parquet ----------------------------------------------------------------------------------
    def parquet_rows(self, key: Key) -> int:
        """Row count from the footer; unreadable: StoreError."""
        k = self._key(key)
        from pipeline.store.parquet import parquet_rows

        try:
            return parquet_rows(self.fs.url(k))
        except (OSError, ValueError) as exc:  # (ValueError: pyarrow's ArrowInvalid, not Parquet)
            raise StoreError(f"cannot read {self.fs.url(k)}: {exc}") from exc

    def parquet_schema(self, key: Key) -> pa.Schema:
        from pipeline.store.parquet import parquet_schema

        return parquet_schema(self.fs.url(self._key(key)))

    def read_parquet(self, key: Key, columns: builtins.list[str] | None = None) -> pl.DataFrame:
        """A data file in the current pageviews schema (columns it predates are nulls)."""
        from pipeline.store.parquet import read_rows

        url = self.fs.url(self._key(key))
        return read_rows(url, columns, name=url)

    def dataset(
        self, table: str, keys: builtins.list[str], schema: pa.Schema, fmt: ds.FileFormat | None = None
    ) -> ds.Dataset:
        """A pyarrow dataset of ``keys`` under ``table``, with the ``date`` partition column appended."""
        import pyarrow as pa
        import pyarrow.dataset as ds

        date = arrow_schema([DATE])  # the hive partition column of ``date=YYYY-MM-DD`` folders
        afs, base = self.fs.arrow()
        return ds.dataset(
            [f"{base}/{k}" for k in keys], schema=pa.schema([*schema, *date]), format=fmt or "parquet",
            filesystem=afs, partitioning=ds.partitioning(date, flavor="hive"),
            partition_base_dir=f"{base}/{table}",
        )  # fmt: skip

    # --- writing ----------------------------------------------------------------------------------
    def put_bytes(self, key: Key, payload: Payload, writer: str) -> int:
        """Write atomically, outside any commit (state, holds, deletion records, the audit head)."""
        return self.fs.write_atomic(self._key(key), payload, writer)

    def put_json(self, key: Key, data: dict[str, Any], writer: str) -> None:
        self.put_bytes(key, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode(), writer)

    def remove(self, key: Key, missing_ok: bool = True) -> None:
        """Remove a file (a missing one is fine unless ``missing_ok=False``)."""
        self.fs.remove(self._key(key), missing_ok)

    def remove_tree(self, prefix: Key) -> None:
        self.fs.remove_tree(self._key(prefix))

    def prune(self, prefix: Key) -> None:
        """Remove the folder ``prefix`` if it is empty (an emptied partition; a writer keeps it)."""
        self.fs.prune_empty(self._key(prefix))

    def append_line(self, key: Key, build: Callable[[bytes | None], bytes], label: str = "file") -> bytes:
        """Append ``build(last line)`` under an exclusive lock, synced (the audit trail's chain)."""
        return self.fs.append_line(self._key(key), build, label)

    def make_folders(self, *prefixes: str) -> None:
        try:
            self.fs.make_folders(*prefixes)
        except OSError as exc:
            raise store_error(exc, "create the store at") from exc


__all__ = ["Key", "StoreFiles", "layout"]
