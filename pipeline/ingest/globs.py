"""A source's glob → its log files, oldest first (rotated files before the live one, logrotate's
``olddir`` included), and the folders the glob goes through but cannot read (``blind_spots``).
"""

from __future__ import annotations

import glob
import os

from pipeline.ingest.sources import STDIN, mtime


def expand(patterns: list[str]) -> list[str]:
    """Glob patterns → existing files, oldest first (rotated files before the live one)."""
    found: dict[str, float] = {}
    for pattern in patterns:
        if pattern == STDIN:
            found[STDIN] = 0.0
            continue
        # a file named as it is, brackets and all ("access.log.[2001:db8::17]", "--reingest" of it)
        magic = glob.has_magic(pattern) and not os.path.isfile(os.path.expanduser(pattern))
        matches = glob.glob(os.path.expanduser(pattern)) if magic else [pattern]
        for m in matches:
            # a glob skips directories; anything else it matches (a FIFO, a socket, a dangling link)
            # is reported when opened, never skipped without a word
            if magic and os.path.isdir(m):
                continue
            found[m] = mtime(m)
    return sorted(found, key=lambda p: (found[p], p))


def blind_spots(pattern: str) -> list[tuple[str, str]]:
    """(folder, problem) for each folder a source glob goes through that cannot be read.

    ``glob`` skips such a folder without a word, so the logs in it would stop being collected
    unnoticed (found by review: a vhost's log folder made unreadable, and ingest and status were
    content with the others). A part of the pattern that does not exist is no blind spot.
    """
    if pattern == STDIN or not glob.has_magic(pattern):
        return []
    parts = os.path.expanduser(pattern).split(os.sep)
    out: dict[str, str] = {}
    for i in range(1, len(parts)):
        prefix = os.sep.join(parts[:i]) or os.sep
        for folder in glob.glob(prefix) if glob.has_magic(prefix) else [prefix]:
            if not os.path.isdir(folder) or os.path.basename(folder) == "lost+found":
                continue  # (a volume's own folder, root's: no log is written there)
            try:
                if glob.has_magic(parts[i]):
                    os.scandir(folder).close()  # what glob lists
                else:
                    os.stat(os.path.join(folder, parts[i]))  # what glob looks up
            except FileNotFoundError:
                pass
            except OSError as exc:
                why = exc.strerror or type(exc).__name__
                out[folder] = (
                    f"cannot read the folder {folder} ({why}): {pattern} misses the logs in it "
                    "(fix its permissions, or narrow the pattern if it holds none)"
                )
    return sorted(out.items())


def expand_source(pattern: str, olddir: str | None = None) -> list[tuple[str, str]]:
    """(file, where it was written) for one source glob, oldest first.

    With logrotate's ``olddir``, rotated files are moved out of the log's directory. Each one maps back
    to the log's directory (``<dir>/<olddir>/access.log.1`` → ``<dir>/access.log.1``), so it keeps
    the stream scope (and the domain from the path) it had while it was written: its unread tail is
    read on from the committed offset, never again from its start.
    """
    homes: dict[str, str] = {}
    if olddir:
        directory, name = os.path.split(os.path.expanduser(pattern))
        for d in glob.glob(directory) if glob.has_magic(directory) else [directory]:
            old = olddir if os.path.isabs(olddir) else os.path.join(d, olddir)
            for moved in glob.glob(os.path.join(glob.escape(old), name)):
                if os.path.isfile(moved):
                    homes[moved] = os.path.join(d, os.path.basename(moved))
    return [(p, homes.get(p, p)) for p in expand([pattern, *homes])]
