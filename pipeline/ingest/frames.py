"""What follows a compressed file's member or stream: the next one, padding, trailing bytes, damage.

gzip files are members one after another, xz files streams; ``gzip -d`` and ``xz -d`` read them all,
skip NUL padding between and after them, and stop at bytes that begin none. ``Frames`` is that
boundary logic for ``gzip_members.GzipMembers`` and ``xz_streams.XzStreams``: bytes that begin no
frame end the file, as trailing bytes when no frame header follows them (``trailing``: the run warns
of them), as damage when one does (``Damaged``: the source fails, after the whole frames before).
"""

from __future__ import annotations

import gzip
import os

READ = 1 << 20  # compressed bytes per read


class Damaged(gzip.BadGzipFile):
    """The file is damaged where no frame begins though one follows (not trailing garbage)."""


class Frames:
    """Reads the compressed file open as ``fd`` (taken over: closed by ``close``) by ``pread``: the
    caller's file offset is left alone. Subclasses name their frame (``unit``), its first bytes
    (``magic``) and the header that tells damage from trailing bytes (``header``)."""

    unit = "frame"
    magic = b""
    header = b""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._pos = 0  # next byte of the file to read
        self._pending = b""  # compressed bytes not yet decompressed
        self._frame_end = 0  # offset in the file after the last complete frame
        self.trailing: tuple[int, int] | None = None  # (offset, bytes) left out after the last frame

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __del__(self) -> None:  # a reader dropped unclosed (custody's) leaks no descriptor
        self.close()

    def _frame_begins(self) -> bool:
        """At a frame's start: skip padding; True when a frame follows, False at the file's end
        (``trailing`` set when bytes that begin no frame end it)."""
        while True:
            self._pending = self._pending.lstrip(b"\0")
            if len(self._pending) >= len(self.magic):
                break
            more = self._more()
            if not more:
                break
            self._pending += more
        if not self._pending:  # the end, perhaps after padding
            return False
        if self._pending.startswith(self.magic):
            return True
        at = self._pos - len(self._pending)
        header = self._find_header(at)
        codec = self.unit.split()[0]
        if header is not None:
            raise Damaged(
                f"damaged {codec} data from byte {self._frame_end:,} (no {self.unit} at byte {at:,}, "
                f"yet one begins again at byte {header:,}); the lines before the damage are read"
            )
        self.trailing = (self._frame_end, os.fstat(self._fd).st_size - self._frame_end)
        return False

    def _find_header(self, start: int) -> int | None:
        """The offset of the first frame header at or after ``start`` (read in bounded pieces)."""
        at, carry = start, b""
        while piece := os.pread(self._fd, READ, at):
            found = (carry + piece).find(self.header)
            if found >= 0:
                return at - len(carry) + found
            carry, at = piece[-(len(self.header) - 1) :], at + len(piece)
        return None

    def _more(self) -> bytes:
        data = os.pread(self._fd, READ, self._pos)
        self._pos += len(data)
        return data
