"""A gzip file read member by member: where the bytes after its last member are no member.

``gzip -d`` decompresses such a file and warns "trailing garbage ignored" (a copy appended to,
a transfer that padded the file, a disk block of junk after a crash). ISA-L's reader, which
reads every ``.gz`` (``sources.open_stream``), fails the read that meets those bytes, and loses the
lines it had decompressed in that read: the whole file had failed, every run. ``SourceStream``
then reads on with this reader from the bytes it had delivered, to the end of the last member,
and ``trailing`` says what was left out (the run reports it).
"""

from __future__ import annotations

import zlib

GZIP_MAGIC = b"\x1f\x8b"
_READ = 1 << 20  # compressed bytes per read
_OUT = 4 << 20  # decompressed bytes per step: a member of zeros inflates 1000x


class GzipMembers:
    """The decompressed bytes of a gzip file's members from ``skip``, like ``gzip -d``: zero bytes
    between or after members are padding; other bytes where a member should begin end the stream
    (``trailing``: the offset in the file where the last member ended, and the bytes from there
    to the end). A member cut short raises ``EOFError``."""

    def __init__(self, path: str, skip: int = 0) -> None:
        self._file = open(path, "rb")  # noqa: SIM115 (closed by close(), like the stream it replaces)
        self._skip = skip  # discarded on the first read: errors surface there, as read errors
        self._pending = b""  # compressed bytes not yet inflated
        self._read_bytes = 0  # compressed bytes read from the file
        self._inflate: zlib._Decompress | None = None  # None: between members
        self._out = bytearray()
        self._done = False
        self._member_end = 0  # offset in the file after the last complete member
        self.trailing: tuple[int, int] | None = None

    def read(self, n: int = -1, /) -> bytes:
        while self._skip:
            self._skip -= len(self._take(min(self._skip, _OUT)))
            if not self._out and self._done:
                break
        return self._take(n)

    def readinto(self, view: memoryview) -> int:
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def close(self) -> None:
        self._file.close()

    def _take(self, n: int) -> bytes:
        while not self._done and (n < 0 or len(self._out) < n):
            self._step()
        size = len(self._out) if n < 0 else min(n, len(self._out))
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def _step(self) -> None:
        if self._inflate is None:
            self._begin_member()
            return
        if not self._pending:
            self._pending = self._more()
            if not self._pending:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        self._out += self._inflate.decompress(self._pending, _OUT)
        if self._inflate.eof:
            self._pending = self._inflate.unused_data
            self._member_end = self._read_bytes - len(self._pending)
            self._inflate = None
        else:
            self._pending = self._inflate.unconsumed_tail

    def _begin_member(self) -> None:
        """At a member's start: skip zero padding; a member follows, or the stream ends here."""
        while True:
            self._pending = self._pending.lstrip(b"\0")
            if len(self._pending) >= len(GZIP_MAGIC):
                break
            more = self._more()
            if not more:
                break
            self._pending += more
        if not self._pending:  # the end, perhaps after padding
            self._done = True
        elif self._pending.startswith(GZIP_MAGIC):
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:  # (the padding before them is left out too)
            self._file.seek(0, 2)
            self.trailing = (self._member_end, self._file.tell() - self._member_end)
            self._done = True

    def _more(self) -> bytes:
        data = self._file.read(_READ)
        self._read_bytes += len(data)
        return data
