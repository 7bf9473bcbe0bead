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
import os

from pipeline.ingest.frames import Damaged, Frames

XZ_MAGIC = b"\xfd7zXZ\x00"
_OUT = 4 << 20  # decompressed bytes per step: a stream of zeros inflates a thousandfold


class XzStreams(Frames):
    """The decompressed bytes of the .xz (or .lzma) file at ``path``."""

    unit = "xz stream"
    magic = header = XZ_MAGIC

    def __init__(self, path: str | bytes) -> None:
        super().__init__(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
        self._dec: lzma.LZMADecompressor | None = None  # None: between streams
        self._first = True
        self._out = bytearray()
        self._done = False
        self._error: Exception | None = None

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
            self._frame_end = self._pos - len(self._pending)
            self._dec = None

    def _begin(self) -> None:
        if self._first:  # (FORMAT_AUTO: .xz, or a legacy .lzma file, which has no magic)
            self._first = False
            self._dec = lzma.LZMADecompressor(lzma.FORMAT_AUTO)
        elif self._frame_begins():
            self._dec = lzma.LZMADecompressor(lzma.FORMAT_XZ)
        else:
            self._done = True
