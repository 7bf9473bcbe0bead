"""A thread that cannot write: the operating system's read-only fence around the sandbox's DuckDB.

DuckDB reads Parquet fastest with its own reader, but the only way to let it read the store's
files (``allowed_paths``) also lets a ``COPY ... TO`` write over them. So the sandbox's DuckDB
lives in a thread the kernel keeps from writing: a Linux Landlock domain (``landlock(7)``) applied
to that one thread (Landlock restricts the calling thread and everything it starts; DuckDB's worker
threads are started by it, when the connection is made there and ``SET threads`` runs there).
The domain denies every file write, truncation, creation, removal, rename/link, device ioctl and
program execution, everywhere but one private spill folder, and every TCP bind and connect (ABI 4
on). It also denies every read but of the files it is given (the store's committed files) and of
the spill folder. DuckDB checks its ``allowed_paths`` (the same files) as text, after folding
``..`` away, while the kernel follows links: ``/proc/self/cwd/../../..<a committed file's path>``
passed DuckDB's check and opened whatever link the investigator had placed at that path below the
folder they ran from (found by review: the key directory, read and used to undo the pseudonyms).
The kernel's rule is on the file itself, whatever the path. The rest of the process, and other
threads, are not affected.

``Fence.start`` returns None where the kernel has no Landlock (not Linux, older than 5.13, disabled
at boot, or a seccomp profile refusing the calls): the sandbox then reads through pyarrow datasets
and DuckDB gets no file access at all, as before this module.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import os
import queue
import signal
import sys
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, wait
from typing import Any, TypeVar

T = TypeVar("T")

_CREATE_RULESET, _ADD_RULE, _RESTRICT_SELF = 444, 445, 446  # one syscall table for every architecture
_VERSION = 1  # LANDLOCK_CREATE_RULESET_VERSION
_PATH_BENEATH = 1
_NO_NEW_PRIVS = 38  # PR_SET_NO_NEW_PRIVS

# Access rights by the ABI that introduced them (include/uapi/linux/landlock.h).
_EXECUTE, _WRITE_FILE, _READ_FILE, _READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
_REMOVE_DIR, _REMOVE_FILE, _MAKE_CHAR, _MAKE_DIR, _MAKE_REG = 1 << 4, 1 << 5, 1 << 6, 1 << 7, 1 << 8
_MAKE_SOCK, _MAKE_FIFO, _MAKE_BLOCK, _MAKE_SYM = 1 << 9, 1 << 10, 1 << 11, 1 << 12
_REFER, _TRUNCATE, _IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15  # ABI 2, 3, 5
_ABI1_FS = (1 << 13) - 1
_NET_ALL = 0b11  # bind and connect TCP, ABI 4
_SPILL = _WRITE_FILE | _REMOVE_DIR | _REMOVE_FILE | _MAKE_DIR | _MAKE_REG | _TRUNCATE | _REFER


_ASYNC_SIGNALS = {signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGALRM,
                  signal.SIGUSR1, signal.SIGUSR2, signal.SIGWINCH}  # fmt: skip


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def abi() -> int:
    """The kernel's Landlock ABI version; 0 when there is none to use."""
    libc = _libc()
    if libc is None:
        return 0
    version = int(libc.syscall(_CREATE_RULESET, None, ctypes.c_size_t(0), ctypes.c_uint32(_VERSION)))
    return max(version, 0)


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:  # the process's own symbols: libc's syscall() and prctl() (find_library runs ldconfig)
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _handled(version: int) -> tuple[int, int]:
    """(file system, network) rights the domain handles: every right the ABI knows."""
    fs = _ABI1_FS
    fs |= _REFER if version >= 2 else 0
    fs |= _TRUNCATE if version >= 3 else 0
    fs |= _IOCTL_DEV if version >= 5 else 0
    return fs, _NET_ALL if version >= 4 else 0


def restrict_this_thread(writable: str, readable: Iterable[str] = ()) -> None:
    """Deny the calling thread (and the threads it starts) every write but beneath ``writable``, and
    every read but of the files ``readable`` and beneath ``writable``.

    Raises OSError when the kernel refuses; irreversible for the thread once it succeeded.
    """
    libc = _libc()
    version = abi()
    if libc is None or version < 1:
        raise OSError("Landlock is not available")
    fs, net = _handled(version)
    attr = (ctypes.c_uint64 * 2)(fs, net)
    size = 16 if version >= 4 else 8
    ruleset = int(libc.syscall(_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0))
    if ruleset < 0:
        raise _errno("landlock_create_ruleset")
    try:
        _allow(libc, ruleset, writable, (_SPILL | _READ_FILE | _READ_DIR) & fs, os.O_DIRECTORY)
        for path in readable:  # (a rule holds the file's inode: a later link to it is read too)
            if os.path.isdir(path):
                _allow(libc, ruleset, path, _READ_FILE | _READ_DIR, os.O_DIRECTORY)
            elif os.path.exists(path):
                _allow(libc, ruleset, path, _READ_FILE, 0)
        if libc.prctl(_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
            raise _errno("prctl(PR_SET_NO_NEW_PRIVS)")
        if libc.syscall(_RESTRICT_SELF, ruleset, ctypes.c_uint32(0)) != 0:
            raise _errno("landlock_restrict_self")
    finally:
        os.close(ruleset)


def _allow(libc: ctypes.CDLL, ruleset: int, path: str, rights: int, kind: int) -> None:
    fd = os.open(path, os.O_PATH | os.O_CLOEXEC | kind)
    try:
        rule = _PathBeneath(rights, fd)
        if libc.syscall(_ADD_RULE, ruleset, _PATH_BENEATH, ctypes.byref(rule), ctypes.c_uint32(0)) != 0:
            raise _errno("landlock_add_rule")
    finally:
        os.close(fd)


def _errno(call: str) -> OSError:
    err = ctypes.get_errno()
    return OSError(err, f"{call}: {os.strerror(err)}")


class Fence:
    """One fenced thread that runs what it is given, in order (``call``), until ``stop``."""

    def __init__(self) -> None:
        self._jobs: queue.SimpleQueue[tuple[Callable[[], Any], Future[Any]] | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self.interrupt: Callable[[], None] | None = None  # stops the running job (DuckDB's interrupt)

    @classmethod
    def start(cls, writable: str, readable: Iterable[str] = ()) -> Fence | None:
        """A running fence, or None when this kernel cannot fence a thread. Its thread reads only
        ``readable`` and what is beneath ``writable``: what it runs must not import a module."""
        if abi() < 1:
            return None
        fence = cls()
        ready: Future[None] = Future()
        fence._thread = threading.Thread(target=fence._serve, args=(writable, list(readable), ready),
                                         daemon=True, name="hostlogs-sandbox")  # fmt: skip
        fence._thread.start()
        try:
            ready.result()
        except OSError:
            fence._thread.join()
            return None
        return fence

    def _serve(self, writable: str, readable: list[str], ready: Future[None]) -> None:
        # Process signals go to the main thread: a Ctrl-C taken by one of DuckDB's threads (they
        # inherit this mask) left a shell's prompt asleep in readline until the next key.
        signal.pthread_sigmask(signal.SIG_BLOCK, _ASYNC_SIGNALS)
        try:
            restrict_this_thread(writable, readable)
        except OSError as exc:
            ready.set_exception(exc)
            return
        ready.set_result(None)
        while (job := self._jobs.get()) is not None:
            fn, done = job
            try:
                done.set_result(fn())
            except BaseException as exc:  # handed to the caller, who sees it as if it ran there
                done.set_exception(exc)

    def call(self, fn: Callable[[], T]) -> T:
        """Run ``fn`` in the fenced thread and return its result (or raise its exception)."""
        if self._thread is None or not self._thread.is_alive():
            raise RuntimeError("the sandbox's fenced thread has stopped")
        if threading.current_thread() is self._thread:
            return fn()
        done: Future[T] = Future()
        self._jobs.put((fn, done))
        try:
            while not wait([done], timeout=0.5).done:  # wakes twice a second: a Ctrl-C that
                pass  # another thread took (its handler runs here) is seen within half a second
            return done.result()
        except KeyboardInterrupt:  # the job would run on in the fenced thread, and hold it
            if self.interrupt is not None:
                self.interrupt()
                with contextlib.suppress(KeyboardInterrupt):  # let it unwind before the caller
                    wait([done], timeout=10)  # goes on: an exiting interpreter would kill it mid-C++
            raise

    def stop(self) -> None:
        if self._thread is not None and self._thread.is_alive():
            self._jobs.put(None)
            self._thread.join()


_ARROW, _PANDAS = ("pyarrow",), ("pandas",)
# What DuckDB imports to give a result as another library's object, by method
_IMPORTS: dict[str, tuple[str, ...]] = {
    "pl": ("polars", "duckdb.polars_io"), "fetchnumpy": ("numpy",),
    "arrow": _ARROW, "fetch_arrow_table": _ARROW, "to_arrow_table": _ARROW, "to_arrow_reader": _ARROW,
    "fetch_record_batch": _ARROW, "fetch_arrow_reader": _ARROW,
    "df": _PANDAS, "fetchdf": _PANDAS, "fetch_df": _PANDAS, "fetch_df_chunk": _PANDAS, "to_df": _PANDAS,
}  # fmt: skip


class Fenced:
    """An object used through the fence: every method call and attribute read runs in the fenced
    thread, and what comes back is plain data or, if it is one of ``lazy`` (a relation, cursor or
    connection: objects that run queries when used), wrapped the same way, so nothing another thread
    holds can make DuckDB work outside the fence. An Arrow stream or an iterator is read to its end
    in there; other lazy results (an Arrow C stream, a polars LazyFrame) are refused, and so are the
    target's private attributes. ``interrupt`` is the exception: it has to reach a busy thread.
    (The proxy's own ``_target`` is reachable, as ``Sandbox._con`` is: a fence against mistakes in
    code that holds the sandbox, not against that code itself.)
    """

    def __init__(self, target: Any, fence: Fence, lazy: tuple[type, ...]) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_fence", fence)
        object.__setattr__(self, "_lazy", lazy)

    def __getattr__(self, name: str) -> Any:
        target, fence = self._target, self._fence
        if name == "interrupt":
            return target.interrupt
        if name.startswith("_"):  # e.g. __arrow_c_stream__: a stream another thread would fill
            raise AttributeError(f"{name} is not available through the sandbox's fence")
        attr = fence.call(lambda: _settled(getattr(target, name)))
        if not callable(attr):
            return self._wrapped(attr)

        def method(*args: Any, **kwargs: Any) -> Any:
            for module in _IMPORTS.get(name, ()):  # here: the fenced thread may read no module
                with contextlib.suppress(ImportError):
                    importlib.import_module(module)
            return self._wrapped(fence.call(lambda: _settled(attr(*args, **kwargs))))

        return method

    def _wrapped(self, value: Any) -> Any:
        return Fenced(value, self._fence, self._lazy) if isinstance(value, self._lazy) else value

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("a fenced connection cannot be changed")

    def __repr__(self) -> str:
        return f"Fenced({self._target!r})"


def _settled(value: Any) -> Any:
    """An Arrow stream DuckDB would fill lazily (in the reading thread): read now, in the fence."""
    pa = sys.modules.get("pyarrow")  # (not loaded: no Arrow stream can have been made)
    if pa is not None and isinstance(value, pa.RecordBatchReader):
        table = value.read_all()
        return pa.RecordBatchReader.from_batches(table.schema, table.to_batches())
    if type(value).__name__ == "PyCapsule" or callable(getattr(value, "collect", None)):
        # an Arrow C stream, a polars LazyFrame (.pl(lazy=True)): each would run the query later,
        # in whatever thread reads it
        raise TypeError(f"a lazy {type(value).__name__} cannot leave the sandbox's fence: fetch the rows")
    if isinstance(value, Iterator):  # a generator of rows (iter_rows) runs the query as it is read
        return iter(list(value))
    return value
