"""One error hierarchy; the CLI turns each class into its documented exit code (see docs/exit-codes.md)."""

from __future__ import annotations

import errno


class HostlogsError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; messages say what to do next."""

    exit_code = 1
    details: tuple[str, ...] = ()
    """Lines shown before the message, one error each (the sources a partial run could not read)."""


class UsageError(HostlogsError):
    """Bad arguments (click's own usage errors exit 2 as well)."""

    exit_code = 2


class ConfigError(HostlogsError):
    """The configuration file or a setting in it is invalid."""

    exit_code = 3


class SourceError(HostlogsError):
    """A source cannot be found or read at all (a missing glob match is not an error)."""

    exit_code = 4
    # True: every byte read before this error is known to be a correct prefix of the source, so
    # ingest commits the lines read but not yet committed before the source fails; otherwise they
    # are dropped and read again next run (data inflated before a CRC check is not known to be right)
    verified_prefix = False


class SourceGone(SourceError):
    """A file is no longer there when opened. For a file a glob listed, logrotate renamed or removed
    it meanwhile: the run lists the glob again instead of failing (``ingest.run``)."""


class SourceRewritten(SourceError):
    """A file was truncated or rewritten while it was read (logrotate's copytruncate): what was read
    of it before is kept, the rest is read from its copy next run (``sources.rewrite_guard``)."""

    verified_prefix = True  # (each read is checked against the file before its lines are handed on)


class SourceCutShort(SourceError):
    """A compressed source ends before its end-of-stream marker: cut short, or still being written
    (logrotate compressing it). The lines before the cut are read; the rest waits for a whole file."""


class SourceDamaged(SourceError):
    """A compressed source is damaged where something else was expected (a gzip member's start)."""


class FormatError(HostlogsError):
    """A LogFormat string is invalid or uses an unsupported directive, or auto-detection failed."""

    exit_code = 5


class StoreError(HostlogsError):
    """The store cannot be written or read (permissions, disk full, corrupt state)."""

    exit_code = 6


class IntegrityError(HostlogsError):
    """A committed file is altered, missing or unreadable, a file is in no manifest, or a manifest or
    deletion record is damaged (``hostlogs verify`` names them). Treat it as an incident."""

    exit_code = 8


class ProofFailed(IntegrityError):
    """``hostlogs keys prove``: a batch's digest does not match the file it names, or no batch of the
    store was read from the file."""


class KeyDestroyedError(HostlogsError):
    """The key of a period was destroyed by the retention purge; no pseudonym can be made for it."""

    exit_code = 7


class LockedError(HostlogsError):
    """Another ingest holds the store lock (cron overlap). EX_TEMPFAIL, so cron wrappers can retry."""

    exit_code = 75


class StoreChangedError(HostlogsError):
    """A maintenance run (compaction, purge, erase) replaced files a query was about to read.

    Temporary, like a held lock: the same query on a fresh connection sees the new files.
    """

    exit_code = 75


class PartialFailure(HostlogsError):
    """The run finished but some sources failed: unreadable or matching no file (their lines stay
    unconsumed for the next run), in no known format, or rejecting more than ``ingest.max_reject_rate``
    of the lines this run read (their rows were committed)."""

    exit_code = 10

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class AttentionNeeded(HostlogsError):
    """``hostlogs status``: the store or a source needs attention (data past the retention horizon
    under no hold, a source matching no file, unreadable, lagging, or rejecting too much in its last
    run). The report was printed; ``details`` names each problem."""

    exit_code = 11

    def __init__(self, message: str, details: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.details = details


class QueryLimitError(HostlogsError):
    """A query ran past ``query.timeout`` or needed more than ``query.memory_limit``; it was stopped."""

    exit_code = 9


class Terminated(KeyboardInterrupt):
    """SIGTERM during an audited access: raised like Ctrl-C, so that the audit trail records how it
    ended (found by review: a query killed by SIGTERM had left only its "started" entry)."""


INTERRUPTED_EXIT, TERMINATED_EXIT = 130, 143  # 128 + the signal, as a shell reports them


_ADVICE = {
    errno.ENOSPC: "free disk space on the store's file system, then run again",
    errno.EDQUOT: "raise the quota of this user on the store's file system (or free space), then run again",
    errno.EROFS: "the store's file system is mounted read-only: remount it read-write or give --store",
    errno.EACCES: "this user may not read or write there: run as the store's owner or fix the permissions",
    errno.EPERM: "this user may not do that there (permissions or an immutable attribute, see lsattr)",
    errno.EIO: "the disk reported an I/O error: check it, then run 'hostlogs verify'",
    errno.ENOTDIR: "a file stands where the store expects a directory: check the --store path",
}


def os_error_message(exc: OSError, action: str = "use") -> str:
    """One line for an OS error on a store path: what failed and what to do about it."""
    where = f" {exc.filename}" if exc.filename else ""
    what = exc.strerror or str(exc)
    advice = _ADVICE.get(exc.errno or 0, "check the store path, its permissions and free space")
    return f"cannot {action}{where}: {what}; {advice}"


def store_error(exc: OSError, action: str = "use") -> StoreError:
    """The ``StoreError`` (exit 6) for an OS error on a store path."""
    return StoreError(os_error_message(exc, action))
