"""The store's one filesystem seam: keys in, bytes out.

``StoreFS`` is what the rest of ``pipeline/store/`` uses; nothing else in the package opens, lists or
removes a store file. ``LocalFS`` is a directory on a local disk; an object store (S3, GCS) will be a
second implementation of the same protocol, and ``arrow()`` hands pyarrow the matching filesystem.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import fcntl
import fnmatch
import os
import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Protocol, TypeAlias

if TYPE_CHECKING:  # imported where used: a query on a local store starts without pyarrow.fs
    import pyarrow as pa
    import pyarrow.fs as pafs

from pipeline.errors import LockedError, StoreError, store_error

Payload: TypeAlias = "bytes | bytearray | memoryview | pa.Buffer"


class StoreFS(Protocol):
    """Byte access to a store by key (posix path relative to the store root)."""

    def describe(self) -> str:
        """Where the store is, for messages (a path, later a URL)."""
        ...

    def is_store(self) -> bool:
        """Whether the store exists at all (its root folder)."""
        ...

    def read_bytes(self, key: str) -> bytes:
        """The file's bytes (FileNotFoundError when missing)."""
        ...

    def open_read(self, key: str) -> IO[bytes]:
        """A binary stream of the file (FileNotFoundError when missing)."""
        ...

    def write_atomic(self, key: str, payload: Payload, writer: str) -> int:
        """Write complete-or-absent (temporary carrying ``writer``, fsync, rename); returns the size."""
        ...

    def exists(self, key: str) -> bool: ...

    def is_folder(self, key: str) -> bool: ...

    def size(self, key: str) -> int: ...

    def list(self, prefix: str, suffix: str = "", pattern: str | None = None) -> builtins.list[str]:
        """Keys of the files under ``prefix`` (recursive), sorted; ``pattern``: a glob below it."""
        ...

    def folders(self, prefix: str) -> builtins.list[str]:
        """Names of the immediate subfolders of ``prefix``, sorted."""
        ...

    def make_folders(self, *prefixes: str) -> None: ...

    def remove(self, key: str, missing_ok: bool = True) -> None:
        """Remove a file (FileNotFoundError for a missing one unless ``missing_ok``)."""
        ...

    def remove_tree(self, prefix: str) -> None: ...

    def prune_empty(self, prefix: str) -> None:
        """Remove the folder ``prefix`` if it holds nothing (a concurrent writer keeps it)."""
        ...

    def lock(self, key: str, wait_seconds: float, busy: str) -> contextlib.AbstractContextManager[None]:
        """Exclusive lock; ``LockedError(busy)`` when still held after ``wait_seconds``."""
        ...

    def append_line(self, key: str, build: Callable[[bytes | None], bytes], label: str = "file") -> bytes:
        """Under an exclusive lock: ``build(last line or None)`` → a line, appended and synced."""
        ...

    def temporaries(self, under: str, older_than: float = 0.0) -> builtins.list[str]:
        """Keys of every writer's temporary files under ``under`` untouched for ``older_than`` s."""
        ...

    def remove_temporaries(self, writer: str, under: str = "", lock: str | None = None) -> None:
        """Remove what a crashed ``write_atomic`` of ``writer`` left below the folder ``under`` (the
        whole store by default). Call under the writer's lock, or name the file it locks (``lock``):
        then only if that lock is free at once (a live writer's temporary is never removed)."""
        ...

    def holds(self, location: str | os.PathLike[str]) -> bool:
        """Whether a location outside the seam (a user's ``--output`` file) would be inside the store."""
        ...

    def key_of(self, location: str) -> str | None:
        """The key of a location ``url`` or ``arrow`` gave (a file a reader named in an error)."""
        ...

    def url(self, key: str) -> str:
        """A location Parquet readers (pyarrow, polars) open directly: a path, later ``s3://…``."""
        ...

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        """The pyarrow filesystem and the base path of the store in it (for datasets)."""
        ...


_TEMPORARY = re.compile(r"\..+~(?P<writer>[A-Za-z0-9._-]+)~[0-9a-f]{8}\.tmp")


def check_key(key: str) -> str:
    """A key names a file *inside* the store: relative, posix, no ``..`` (refused: a bug, not input)."""
    if key.startswith("/") or "\\" in key or "\0" in key or ".." in key.split("/"):
        raise StoreError(f"internal error: {key!r} is not a key of the store")
    return key


def _walk(folder: str, levels: builtins.list[str] | None, depth: int = 0) -> Iterator[str]:
    """The files below ``folder`` (every level), or with ``levels`` the entries matching one glob
    pattern per level (``date=*/*.parquet``; any kind of entry at the last level, as pathlib's glob).

    A folder that does not exist yields nothing (never made, or removed meanwhile). Anything else is
    raised: a folder that cannot be read, a file or a link to nowhere where the listed folder (or a
    folder the pattern goes through) should be. Skipping them silently made a ``_holds/`` replaced
    by a file, or a partition folder turned into a dangling link, look like no holds and no day.
    Except below the listed folder of a whole-tree listing (no pattern: the store's size, stray
    files): a folder there that cannot be read is no store folder (a volume's ``lost+found``) and is
    passed over, as before.
    """
    try:
        entries = builtins.list(os.scandir(folder))
    except FileNotFoundError:
        if depth == 0 and os.path.lexists(folder):  # a link to nowhere
            raise
        return
    except PermissionError:
        if levels is None and depth > 0:
            return
        raise
    for entry in entries:
        if levels is None:
            if entry.is_dir(follow_symlinks=False):  # (as rglob: a link to a folder is not walked)
                yield from _walk(entry.path, None, depth + 1)
            elif entry.is_file():
                yield entry.path
        elif fnmatch.fnmatchcase(entry.name, levels[depth]):
            if depth + 1 == len(levels):
                yield entry.path
            elif entry.is_dir():
                yield from _walk(entry.path, levels, depth + 1)
            elif entry.is_symlink():  # a link to nowhere where a folder of the pattern belongs
                raise FileNotFoundError(errno.ENOENT, "a link to nowhere", entry.path)


class LocalFS:
    """A store in a local directory: atomic renames, fsync and flock give its crash safety."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.base = Path(root)

    def path(self, key: str) -> Path:
        """The local path of a key (for this module and its tests only)."""
        return self.base / check_key(key) if key else self.base

    def key(self, path: str | os.PathLike[str]) -> str:
        """The key of a local path under the root (a relative path is a key already)."""
        p = Path(path)
        try:
            return p.relative_to(self.base).as_posix()
        except ValueError:
            if p.is_absolute():
                raise StoreError(f"internal error: {p} is not in the store at {self.base}") from None
            return check_key(p.as_posix())

    def describe(self) -> str:
        return str(self.base)

    def is_store(self) -> bool:
        return self.base.is_dir()

    # --- reading --------------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        return self.path(key).read_bytes()

    def open_read(self, key: str) -> IO[bytes]:
        return open(self.path(key), "rb")

    def exists(self, key: str) -> bool:
        """Whether the store has an entry by that name. A link to nowhere (or a loop of links) is one:
        reading it is then an error, where ``Path.exists`` said "absent" and a damaged record was taken
        for a record never written (``keys_expected``: keys no longer required by the purge)."""
        return os.path.lexists(self.path(key))

    def is_folder(self, key: str) -> bool:
        return self.path(key).is_dir()

    def size(self, key: str) -> int:
        return self.path(key).stat().st_size

    def list(self, prefix: str, suffix: str = "", pattern: str | None = None) -> builtins.list[str]:
        """A folder that cannot be read is an error (``StoreError``), never an empty folder: pathlib's
        glob skipped it silently, and a ``_holds/`` the purge could not read meant no holds."""
        base = self.path(prefix)
        # the walk keeps the root's spelling as the prefix of every path: cutting it off is a key, and
        # much cheaper than relative_to on each of a large store's files (str keys also sort faster)
        cut = 0 if str(self.base) == "." else len(str(self.base)) + 1
        levels = pattern.split("/") if pattern else None
        root = str(base)
        if root == ".":  # (the relative root itself: scandir spells its entries "./name")
            cut = 2
        try:
            found = list(_walk(root, levels))
        except OSError as exc:
            raise store_error(exc, "list") from exc
        return sorted(path[cut:] for path in found if path.endswith(suffix))

    def folders(self, prefix: str) -> builtins.list[str]:
        """As ``list``: a missing folder has none; one that cannot be read, or a file or a link to
        nowhere in its place, is an error (it had no subfolders: a writer's manifests unseen)."""
        try:
            with os.scandir(self.path(prefix)) as entries:
                return sorted(e.name for e in entries if e.is_dir())
        except FileNotFoundError as exc:
            if os.path.lexists(self.path(prefix)):
                raise store_error(exc, "list") from exc
            return []
        except OSError as exc:
            raise store_error(exc, "list") from exc

    # --- writing --------------------------------------------------------------------------------
    def write_atomic(self, key: str, payload: Payload, writer: str) -> int:
        """Temporary name in the same directory, fsync, rename, fsync the directory.

        The temporary name carries the writer (``.<name>~<writer>~<id>.tmp``; ``~`` is not allowed in
        a writer name) so that a writer's recovery removes its own leftovers only, never a file another
        writer is writing at that moment.
        """
        path = self.path(key)
        tmp = path.with_name(f".{path.name}~{writer}~{uuid.uuid4().hex[:8]}.tmp")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            try:
                f = open(tmp, "wb")  # noqa: SIM115 (closed below)
            except FileNotFoundError:  # the purge removed an emptied date= directory meanwhile
                path.parent.mkdir(parents=True, exist_ok=True)
                f = open(tmp, "wb")  # noqa: SIM115
            with f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            size = tmp.stat().st_size
            os.replace(tmp, path)
            fsync_dir(path.parent)
            return size
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink()
            named = exc if exc.filename else OSError(exc.errno, exc.strerror, str(path))
            raise store_error(named, "write") from exc

    def make_folders(self, *prefixes: str) -> None:
        if os.path.islink(self.base) and not os.path.exists(self.base):
            # mkdir said "File exists". Its target is not made here: it may be a volume not mounted,
            # and the evidence would go to the disk beneath the mount point
            raise StoreError(
                f"cannot create the store at {self.base}: it is a link to {os.readlink(self.base)}, "
                "which does not exist (a volume not mounted?); mount it or create that folder first"
            )
        for prefix in prefixes:
            self.path(prefix).mkdir(parents=True, exist_ok=True)

    def remove(self, key: str, missing_ok: bool = True) -> None:
        try:
            os.unlink(self.path(key))
        except FileNotFoundError:
            if not missing_ok:
                raise

    def remove_tree(self, prefix: str) -> None:
        shutil.rmtree(self.path(prefix), ignore_errors=True)

    def prune_empty(self, prefix: str) -> None:
        with contextlib.suppress(OSError):
            os.rmdir(self.path(prefix))

    def temporaries(self, under: str, older_than: float = 0.0) -> builtins.list[str]:
        found, now = [], time.time()
        for tmp in sorted(self.path(under).glob("**/.*.tmp")):
            with contextlib.suppress(OSError):  # (gone meanwhile: its writer renamed it)
                age = now - tmp.stat().st_mtime  # (in the future: a clock stepped back; no write of now)
                if _TEMPORARY.fullmatch(tmp.name) and (age >= older_than or age < -60):
                    found.append(self.key(tmp))
        return found

    def remove_temporaries(self, writer: str, under: str = "", lock: str | None = None) -> None:
        fd = None
        if lock is not None:
            try:
                fd = os.open(self.path(lock), os.O_RDONLY)
            except OSError:  # no such file (yet: a first writer may be creating it now), or unreadable
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:  # held: a live writer, whose temporary this may be
                os.close(fd)
                return
        try:
            for tmp in self.path(under).glob("**/.*.tmp"):
                m = _TEMPORARY.fullmatch(tmp.name)
                if m is not None and m["writer"] == writer:
                    with contextlib.suppress(OSError):
                        tmp.unlink()
        finally:
            if fd is not None:
                os.close(fd)  # releases the flock

    # --- locks and appends ----------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, key: str, wait_seconds: float, busy: str) -> Iterator[None]:
        """flock on ``key``: the kernel releases it if the process dies."""
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise store_error(exc, "lock the store at") from exc
        try:
            deadline = time.monotonic() + wait_seconds
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockedError(busy) from None
                    time.sleep(0.2)
            yield
        finally:
            os.close(fd)

    def append_line(self, key: str, build: Callable[[bytes | None], bytes], label: str = "file") -> bytes:
        """O_APPEND under flock: concurrent appenders serialise, each sees the line before its own.

        ``build`` gets the last complete line (without its newline) and returns the line to append
        (with its newline). Failing to open is a StoreError ("cannot open the <label> …"); errors of
        ``build``, of the write and of the fsync pass through.
        """
        path = self.path(key)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o640)
        except OSError as exc:
            raise StoreError(f"cannot open the {label} {path}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            line = build(_last_line(fd))
            os.write(fd, line)
            os.fsync(fd)
            return line
        finally:
            os.close(fd)  # releases the flock

    def holds(self, location: str | os.PathLike[str]) -> bool:
        # realpath on both sides: a symlink or ``..`` into the store is still inside it
        base, there = os.path.realpath(self.base), os.path.realpath(location)
        return there == base or there.startswith(base.rstrip(os.sep) + os.sep)

    def key_of(self, location: str) -> str | None:
        p = Path(location)
        for base in (self.base, Path(os.path.abspath(self.base))):
            with contextlib.suppress(ValueError):
                return p.relative_to(base).as_posix()
        return None

    def url(self, key: str) -> str:
        return str(self.path(key))

    def arrow(self) -> tuple[pafs.FileSystem, str]:
        # pyarrow's local filesystem wants absolute paths; a store given as "store" is relative
        import pyarrow.fs as pafs

        return pafs.LocalFileSystem(), os.path.abspath(self.base)


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """fsync a local directory: the store's own renames, and local files outside it (keys, exports)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _last_line(fd: int) -> bytes | None:
    """The last complete line of the file (read backwards in blocks), without its newline."""
    end = os.lseek(fd, 0, os.SEEK_END)
    if end == 0:
        return None
    block, pos, tail = 1 << 16, end, b""
    while pos > 0:
        start = max(0, pos - block)
        chunk = os.pread(fd, pos - start, start)
        tail = chunk + tail
        pos = start
        stripped = tail.rstrip(b"\n")
        if b"\n" in stripped or pos == 0:
            return stripped.rsplit(b"\n", 1)[-1]
    return None
