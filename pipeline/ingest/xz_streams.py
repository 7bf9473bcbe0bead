""".xz files read stream by stream, like ``xz -d``: where the bytes after a stream are no stream.

Python's ``lzma`` reader decompresses the streams of a file one after another and, at bytes that
begin no stream, ends its output without a word: a file whose second stream's header was damaged
gave the lines of its first with exit 0, and the rest was dropped (found by review). This reader
skips stream padding (NUL bytes, as ``xz`` writes them) and reads on at each stream header; other
bytes end the output and are told: as damage (``Damaged``, the source fails: exit 10) when a stream
header follows them, else as trailing garbage (``trailing``: the run warns of it, as for gzip). The
first stream may also be the legacy ``.lzma`` ("alone") format, which has no header of its own.
"""

from __future__ import annotations

import lzma
from typing import BinaryIO

from pipeline.ingest.gzip_members import Damaged

XZ_MAGIC = b"\xfd7zXZ\x00"
_READ = 1 << 20  # compressed bytes per read
_OUT = 4 << 20  # decompressed bytes per step: a stream of zeros inflates a thousandfold


class XzStreams:
    """The decompressed bytes of the .xz (or .lzma) file at ``path``."""

    unit = "xz stream"  # (the run's warning names what the trailing bytes follow)

    def __init__(self, path: str | bytes) -> None:
        self._file: BinaryIO = open(path, "rb")  # noqa: SIM115 (closed by ``close``)
        self._dec: lzma.LZMADecompressor | None = None  # None: between streams
        self._first = True
        self._pending = b""  # compressed bytes not yet given to a decompressor
        self._pos = 0  # bytes of the file read so far
        self._stream_end = 0  # offset in the file after the last complete stream
        self._out = bytearray()
        self._done = False
        self._error: Exception | None = None
        self.trailing: tuple[int, int] | None = None  # (offset, bytes) left out after the last stream

    @property
    def verified_prefix(self) -> bool:
        """Is everything handed out whole streams (the error met between two streams)? Only then
        may the caller keep what it read before the error: a stream's data is checked at its end."""
        return isinstance(self._error, Damaged)

    def read(self, n: int = -1, /) -> bytes:
        size = self._fill(n)
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def readinto(self, view: memoryview) -> int:
        size = self._fill(len(view))
        with memoryview(self._out) as out:  # (one copy, straight into the caller's buffer)
            view[:size] = out[:size]
        del self._out[:size]
        return size

    def _fill(self, n: int) -> int:
        """How many bytes the next read hands out, decompressed into ``_out`` beforehand."""
        while not self._done and self._error is None and (n < 0 or len(self._out) < n):
            try:
                self._step()
            except (OSError, EOFError, lzma.LZMAError) as exc:  # raised once what precedes it is out
                self._error = exc
        if not self._out and self._error is not None:
            raise self._error
        return len(self._out) if n < 0 else min(n, len(self._out))

    def close(self) -> None:
        self._file.close()

    def _step(self) -> None:
        if self._dec is None:
            self._begin()
            return
        data = b""
        if self._dec.needs_input:
            data, self._pending = self._pending or self._more(), b""
            if not data:
                raise EOFError("Compressed file ended before the end-of-stream marker was reached")
        self._out += self._dec.decompress(data, _OUT)  # (LZMAError: damaged inside a stream)
        if self._dec.eof:
            self._pending = self._dec.unused_data
            self._stream_end = self._pos - len(self._pending)
            self._dec = None

    def _begin(self) -> None:
        """At a stream's start: skip padding; a stream follows, or the file ends here."""
        if self._first:  # (FORMAT_AUTO: .xz, or a legacy .lzma file, which has no magic)
            self._first = False
            self._dec = lzma.LZMADecompressor(lzma.FORMAT_AUTO)
            return
        while True:
            self._pending = self._pending.lstrip(b"\0")
            if len(self._pending) >= len(XZ_MAGIC):
                break
            more = self._more()
            if not more:
                break
            self._pending += more
        if not self._pending:  # the end, perhaps after padding
            self._done = True
        elif self._pending.startswith(XZ_MAGIC):
            self._dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        else:
            at = self._pos - len(self._pending)
            header = self._find_header(at)
            if header is not None:
                raise Damaged(
                    f"damaged xz data from byte {self._stream_end:,} (no xz stream at byte {at:,}, yet "
                    f"one begins again at byte {header:,}); the lines before the damage are read"
                )
            size = self._file.seek(0, 2)
            self.trailing = (self._stream_end, size - self._stream_end)
            self._done = True

    def _find_header(self, start: int) -> int | None:
        """The offset of the first stream header at or after ``start`` (read in bounded pieces)."""
        self._file.seek(start)
        at, carry = start, b""
        while piece := self._file.read(_READ):
            found = (carry + piece).find(XZ_MAGIC)
            if found >= 0:
                return at - len(carry) + found
            carry, at = piece[-(len(XZ_MAGIC) - 1) :], at + len(piece)
        return None

    def _more(self) -> bytes:
        data = self._file.read(_READ)
        self._pos += len(data)
        return data
