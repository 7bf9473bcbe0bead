"""The key files' own I/O: a 0700 directory outside the store, 0600 files written once, shredded.

Keys are never overwritten in place: a key is created under a temporary name and hard-linked to its
final name (exactly one of two racing processes wins), and destroyed by zeroing then unlinking.
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
import shlex
import stat
from pathlib import Path

from pipeline.errors import StoreError
from pipeline.store.fs import fsync_dir

KEY_BYTES = 32


def prepare_key_dir(path: Path) -> None:
    """Create the key directory 0700, or check that an existing one is a directory open to no one else."""
    try:
        path.mkdir(mode=0o700, parents=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except FileExistsError:
        pass
    except OSError as e:
        raise StoreError(
            f"cannot create key directory {path}: {e.strerror}; set privacy.key_dir to a directory "
            "this user may create, outside the store"
        ) from e
    try:
        mode = path.stat().st_mode
    except OSError as e:
        raise StoreError(f"cannot read key directory {path}: {e.strerror}") from e
    if not stat.S_ISDIR(mode):
        raise StoreError(f"key directory {path} is not a directory; point privacy.key_dir at a directory")
    if mode & 0o077:
        quoted = shlex.quote(str(path))
        raise StoreError(
            f"key directory {path} is open to group/other (mode {stat.S_IMODE(mode):04o}): "
            f"run chmod 700 {quoted}"
        )


def new_key() -> bytes:
    """A fresh random key."""
    return secrets.token_bytes(KEY_BYTES)


def write_exclusive(path: Path, data: bytes) -> None:
    """Create ``path`` (never an existing one) with mode 0600, write ``data`` and fsync it."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchmod(fd, 0o600)  # exact mode whatever the umask
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Readers see the old file or the complete new one, never a partial one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    write_exclusive(tmp, data)
    try:
        os.replace(tmp, path)
    except OSError:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def shred(path: Path) -> None:
    """Overwrite with zeros, fsync, unlink. Zeroing reaches every hard link of the file too."""
    try:
        with path.open("r+b") as f:
            f.write(bytes(os.fstat(f.fileno()).st_size))
            f.flush()
            os.fsync(f.fileno())
    except FileNotFoundError:
        return
    path.unlink(missing_ok=True)


def mtime(path: Path) -> dt.datetime:
    try:
        return dt.datetime.fromtimestamp(path.stat().st_mtime, dt.UTC)
    except FileNotFoundError:
        return dt.datetime.now(dt.UTC)  # raced with a purge: the date is informational only


def iso_utc(t: dt.datetime) -> str:
    """``t`` in UTC, ISO 8601 (the tombstones' dates)."""
    return t.astimezone(dt.UTC).isoformat()
