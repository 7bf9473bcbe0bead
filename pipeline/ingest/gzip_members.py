"""A gzip file read member by member: where the bytes after its last member are no member.

``gzip -d`` decompresses such a file and warns "trailing garbage ignored" (a copy appended to,
a transfer that padded the file, a disk block of junk after a crash). ISA-L's reader, which
reads every ``.gz`` (``sources.open_stream``), fails the read that meets those bytes, and loses the
lines it had decompressed in that read: the whole file had failed, every run. ``SourceStream``
then reads on with this reader, from the same open file (a rotation meanwhile puts another file
under its name), from the bytes it had delivered, to the end of the last member; ``trailing``
says what was left out (the run warns of it).

Damage is no trailing garbage: bytes that are no member followed, further on, by a gzip header
(a crash's zeroed block over a member's start) fail the file (``Damaged``). Damage, and a member cut
short, end the output at the last whole member: a member's bytes are verified only by its CRC, at
its end. ``verified_prefix`` tells the caller whether all it was handed is such whole members (not
so when ISA-L's reader, or a read larger than a member's rest, handed out part of a member first).
"""

from __future__ import annotations

import zlib

from pipeline.ingest.frames import Damaged, Frames

__all__ = ["Damaged", "GzipMembers"]

GZIP_MAGIC = b"\x1f\x8b"
_OUT = 4 << 20  # decompressed bytes per step: a member of zeros inflates 1000x


class GzipMembers(Frames):
    """The decompressed bytes of the gzip file open as ``fd`` (taken over: closed by ``close``)
    from ``skip``, like ``gzip -d``: zero bytes between or after members are padding; bytes where a
    member should begin that are no member end the stream when no gzip header follows them
    (``trailing``: the offset where the last member ended, and the bytes from there to the end)."""

    unit = "gzip member"
    magic = GZIP_MAGIC
    header = GZIP_MAGIC + b"\x08"  # magic and deflate, the only method gzip writes

    def __init__(self, fd: int, skip: int = 0) -> None:
        super().__init__(fd)
        self._skip = skip  # discarded on the first read: errors surface there, as read errors
        self._inflate: zlib._Decompress | None = None  # None: between members
        self._out = bytearray()
        self._verified = 0  # bytes of _out that whole members gave (the rest: the current member's)
        self._gave_unverified = False  # bytes of the current member were handed out before its end
        self._skipped = False  # the bytes the caller had (from ISA-L's reader) were all read again
        self._done = False
        self._error: Exception | None = None  # raised once what came before it is delivered

    @property
    def verified_prefix(self) -> bool:
        """Is everything handed out (ISA-L's reader's bytes before this one took over included) whole
        members, their CRCs checked? Only then may the caller keep what it read before an error."""
        return self._skipped and not self._gave_unverified

    def read(self, n: int = -1, /) -> bytes:
        while self._skip:
            self._skip -= len(self._take(min(self._skip, _OUT)))  # (raises: before the skip's end)
            if not self._out and (self._done or self._error is not None):
                break
        self._skipped = self._skip == 0
        return self._take(n)

    def readinto(self, view: memoryview) -> int:
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def _take(self, n: int) -> bytes:
        while not self._done and self._error is None and (n < 0 or len(self._out) < n):
            try:
                self._step()
            except (OSError, EOFError, zlib.error) as exc:
                # Cut short or damaged: whole members only. A member is verified by its CRC at its
                # end: inflated from a crashed compressor's zeroed tail, a cut member had given
                # copies of earlier lines (found by review).
                del self._out[self._verified :]
                self._error = exc
        if not self._out and self._error is not None:
            raise self._error
        size = len(self._out) if n < 0 else min(n, len(self._out))
        data = bytes(self._out[:size])
        del self._out[:size]
        self._gave_unverified = self._gave_unverified or size > self._verified
        self._verified = max(self._verified - size, 0)
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
        if self._inflate.eof:  # (its CRC and length checked)
            self._pending = self._inflate.unused_data
            self._frame_end = self._pos - len(self._pending)
            self._verified = len(self._out)
            self._gave_unverified = False
            self._inflate = None
        else:
            self._pending = self._inflate.unconsumed_tail

    def _begin_member(self) -> None:
        if self._frame_begins():
            self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        else:
            self._done = True
