"""The store: its layout, its one filesystem seam, the commit protocol and the Parquet encodings.

Every byte of the store is read and written here (``fs.StoreFS``); other stages call ``Store``'s
key-based methods with keys from ``layout``.
"""

from pipeline.store import layout
from pipeline.store.catalogue import Catalogue, FileRecord, file_sha256
from pipeline.store.commit import DEFAULT_WRITER, WRITER_RE, Store
from pipeline.store.fs import LocalFS, StoreFS, fsync_dir
from pipeline.store.parquet import encode_frame, encode_indexed, encode_parquet, row_groups
from pipeline.store.progress import Progress, StreamState

__all__ = [
    "DEFAULT_WRITER",
    "WRITER_RE",
    "Catalogue",
    "FileRecord",
    "LocalFS",
    "Progress",
    "Store",
    "StoreFS",
    "StreamState",
    "encode_frame",
    "encode_indexed",
    "encode_parquet",
    "file_sha256",
    "fsync_dir",
    "layout",
    "row_groups",
]
