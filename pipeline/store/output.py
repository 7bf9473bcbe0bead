"""A user's output file (``query``/``investigate``/``report``/``export --output``), never where evidence is.

An output is refused inside the store (it could overwrite the audit trail or a manifest) and inside
the key directory (a file there is taken for a key: a planted known key undoes the pseudonyms, an
overwritten one makes a month unlinkable) — the ones configured, and any other: a folder that holds
a store's own folders or key files, and a name a key directory would read (found by review: a query
of one store wrote into another's ``_holds``, and with a --store alone over a key directory the
config had named, a known key into it). A check of the path, then a write by the path, left a
window: a link swapped in between (the investigator's own output file, replaced by a link to
``_audit/head.json`` in a loop) sent the write into the store (found by review). So the folder is
opened once, the check is of what that descriptor is, and the file is written under a temporary
name in it and renamed over the name: a link standing at the name is replaced, never followed.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import uuid
from collections.abc import Callable
from typing import BinaryIO, TypeVar

from pipeline.errors import UsageError
from pipeline.store import layout
from pipeline.store.commit import Store

T = TypeVar("T")
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def refuse_inside(output: str | os.PathLike[str], *, store: Store, key_dir: str) -> None:
    """Refuse (exit 2) an output inside the store or the key directory, before any work is done."""
    full = os.path.realpath(output)
    _refuse(full, output, store, key_dir)


def write_outside(
    output: str | os.PathLike[str], fill: Callable[[BinaryIO], T], *, store: Store, key_dir: str
) -> T:
    """``fill`` the output file: complete or absent, never inside the store or the key directory.

    A link is written through to its target as a shell's ``>`` would (the link stays); a FIFO or a
    character device (``/dev/stdout``) is written in place. OSError as the system raises it.
    """
    special = _special(os.path.abspath(output))
    if special is not None:
        with special as f:
            return fill(f)
    folder, name = os.path.split(os.path.realpath(output))
    dfd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        _refuse(os.path.join(_where(dfd, folder), name), output, store, key_dir)
        tmp = f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        # (never written in place: a folder the user may not add to refuses, as a hard link to a
        # store file there would have been written through: found by review)
        fd = os.open(tmp, _NEW_FILE, 0o666, dir_fd=dfd)
        _keep_mode(dfd, name, fd)
        try:
            with os.fdopen(fd, "wb") as f:
                result = fill(f)
                f.flush()
                os.fsync(f.fileno())
            os.rename(tmp, name, src_dir_fd=dfd, dst_dir_fd=dfd)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dfd)
            raise
        with contextlib.suppress(OSError):  # (a file system that cannot sync a folder)
            os.fsync(dfd)
        return result
    finally:
        os.close(dfd)


def _keep_mode(dfd: int, name: str, fd: int) -> None:
    """The file it replaces keeps its mode and, where this user may, its owner (a result file made
    0600 beforehand stays 0600: found by review)."""
    was = _existing(dfd, name)
    if was is not None:
        os.fchmod(fd, stat.S_IMODE(was.st_mode))
        with contextlib.suppress(OSError):
            os.fchown(fd, was.st_uid, was.st_gid)


def _existing(dfd: int, name: str) -> os.stat_result | None:
    """The regular file at ``name`` (not a link's target), if there is one."""
    try:
        was = os.stat(name, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return None
    return was if stat.S_ISREG(was.st_mode) else None


def _refuse(full: str, output: str | os.PathLike[str], store: Store, key_dir: str) -> None:
    if store.fs.holds(full):
        raise UsageError(f"--output {output} is inside the store at {store.location}: write it elsewhere")
    keys = os.path.realpath(key_dir)
    if full == keys or full.startswith(keys.rstrip(os.sep) + os.sep) or _is_key_dir(os.path.dirname(full)):
        raise UsageError(f"--output {output} is inside a key directory: write it elsewhere")
    if KEY_NAME.fullmatch(os.path.basename(full)):
        raise UsageError(f"--output {output}: a key directory would read a file so named; name it otherwise")
    folder = os.path.dirname(full)
    while True:
        if sum(os.path.isdir(os.path.join(folder, own)) for own in _STORE_FOLDERS) >= 2:
            raise UsageError(f"--output {output} is inside a hostlogs store at {folder}: write it elsewhere")
        parent = os.path.dirname(folder)
        if parent == folder:
            return
        folder = parent


# The files a key directory reads: a period's key or the record of its destruction (2026-11,
# 2026-W47, 2026-11-22) and the stream key, as privacy.keys names them (tests/store/test_store_fs.py
# holds them equal: the store stage imports no privacy module). Not every ``*.key``: a folder of TLS
# keys is no key directory, and a result file may be written there (found by review).
KEY_NAME = re.compile(r"(?:[0-9]{4}-(?:[0-9]{2}(?:-[0-9]{2})?|W[0-9]{2})\.(?:key|destroyed)|streams\.key)")
# A store's own folders: two of them make a folder a store (one alone may be anyone's ``_state``)
_STORE_FOLDERS = (*layout.OWN, layout.AUDIT)


def _is_key_dir(folder: str) -> bool:
    """Whether ``folder`` holds key files (a key directory or its custody folder)."""
    try:
        with os.scandir(folder) as entries:
            return any(KEY_NAME.fullmatch(e.name) for e in entries)
    except OSError:
        return False


def _where(dfd: int, folder: str) -> str:
    """The folder an open descriptor is, whatever its path names now."""
    try:
        return os.readlink(f"/proc/self/fd/{dfd}")
    except OSError:  # (no /proc: the path, resolved now)
        return os.path.realpath(folder)


def _special(path: str) -> BinaryIO | None:
    """An open FIFO or character device at ``path`` (opened without creating or truncating, and
    checked once open: a regular file is never written this way), else None."""
    try:
        if not (stat.S_ISFIFO(os.stat(path).st_mode) or stat.S_ISCHR(os.stat(path).st_mode)):
            return None
        fd = os.open(path, os.O_WRONLY | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return None
    mode = os.fstat(fd).st_mode
    if stat.S_ISFIFO(mode) or stat.S_ISCHR(mode):
        return os.fdopen(fd, "wb")
    os.close(fd)
    return None
