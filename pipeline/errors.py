"""One error hierarchy; the CLI turns each class into its documented exit code (see docs/exit-codes.md)."""

from __future__ import annotations


class HostlogsError(Exception):
    """Base class. ``exit_code`` is what the CLI exits with; messages say what to do next."""

    exit_code = 1


class UsageError(HostlogsError):
    """Bad arguments (click's own usage errors exit 2 as well)."""

    exit_code = 2


class ConfigError(HostlogsError):
    """The configuration file or a setting in it is invalid."""

    exit_code = 3


class SourceError(HostlogsError):
    """A source cannot be found or read at all (a missing glob match is not an error)."""

    exit_code = 4


class FormatError(HostlogsError):
    """A LogFormat string is invalid or uses an unsupported directive, or auto-detection failed."""

    exit_code = 5


class StoreError(HostlogsError):
    """The store cannot be written or read (permissions, disk full, corrupt state)."""

    exit_code = 6


class LockedError(HostlogsError):
    """Another ingest holds the store lock (cron overlap). EX_TEMPFAIL, so cron wrappers can retry."""

    exit_code = 75


class StoreChangedError(HostlogsError):
    """A maintenance run (compaction, purge, erase) replaced files a query was about to read.

    Temporary, like a held lock: the same query on a fresh connection sees the new files.
    """

    exit_code = 75


class PartialFailure(HostlogsError):
    """The run finished but some sources could not be read; their lines stay unconsumed for the next run."""

    exit_code = 10
