"""A source's stream: its read errors turned into ``SourceError``s (``sources.open_stream`` opens it)."""

from __future__ import annotations

import contextlib
import gzip
import lzma
import os
import zlib
from typing import Any, cast

import pyarrow as pa
from isal import isal_zlib

from pipeline.errors import SourceCutShort, SourceDamaged, SourceError
from pipeline.ingest.frames import Damaged
from pipeline.ingest.gzip_members import GzipMembers


def cut_short(path: str) -> SourceCutShort:
    why = "the compressed file ends early (cut short, or still being compressed)"
    return SourceCutShort(f"cannot read {path} to its end: {why}")


_INFLATE_ERROR = cast("type[Exception]", isal_zlib.error)  # (its stub types it as an instance)
_READ_ERRORS = (OSError, EOFError, ValueError, pa.ArrowException, lzma.LZMAError, zlib.error, _INFLATE_ERROR)


class SourceStream:
    """A source stream whose read errors (I/O, corrupt compression) are ``SourceError``s.

    Reading a source and writing the store fail differently: a source that cannot be read is
    reported and retried next run (exit 10), a store that cannot be written stops the run (exit 6).
    Wrapping the reads makes the difference explicit instead of guessing from an ``OSError``.
    """

    def __init__(self, stream: Any, path: str, *, compressed: bool = False, gzip: bool = False) -> None:
        self._stream = stream
        self._path = path
        self._compressed = compressed  # offsets are into the decompressed bytes: read, never seek
        self._gzip = gzip  # ``stream`` is ISA-L's gzip reader (``_members`` reads on from its file)
        self._delivered = 0  # decompressed bytes read

    @property
    def trailing(self) -> str | None:
        """What a gzip or xz file held after its last member or stream, ignored as ``gzip -d`` does."""
        left = getattr(self._stream, "trailing", None)
        if left is None:
            return None
        unit = str(getattr(self._stream, "unit", "member"))
        codec = unit.split()[0]
        return f"{left[1]:,} bytes after the last {unit} (at byte {left[0]:,}) are no {codec} data: ignored"

    def _fail(self, exc: BaseException) -> SourceError:
        error: SourceError
        if self._compressed and (isinstance(exc, EOFError) or "Truncated compressed stream" in str(exc)):
            # gzip, xz: EOFError; zstd, bz2, lz4, brotli (pyarrow): "Truncated compressed stream"
            error = cut_short(self._path)
        elif isinstance(exc, Damaged):
            error = SourceDamaged(f"cannot read {self._path}: {exc}")
        else:
            detail = getattr(exc, "strerror", None) or exc
            error = SourceError(f"cannot read {self._path}: {detail}")
        # only the gzip member and xz stream readers know that what they handed out is whole members
        # or streams (other codecs hand out data before their checks too: a cut zstd frame had given
        # garbage)
        error.verified_prefix = getattr(self._stream, "verified_prefix", False) is True
        return error

    def _call(self, method: str, *args: Any) -> Any:
        try:
            return getattr(self._stream, method)(*args)
        except _READ_ERRORS as exc:
            if not self._members(exc):
                raise self._fail(exc) from exc
        try:
            return getattr(self._stream, method)(*args)
        except _READ_ERRORS as exc:
            raise self._fail(exc) from exc

    def _members(self, exc: BaseException) -> bool:
        """ISA-L's gzip reader fails at bytes after a member that are no member (trailing garbage)
        and at zero padding followed by them, and loses what that read had decompressed: the file is
        read on member by member from the bytes delivered (``gzip_members``), through the file this
        stream opened, never its name again (found by review: logrotate had put another file there,
        whose lines were read as this one's). A file damaged or cut short fails there too, after the
        lines before the damage."""
        if not self._gzip or isinstance(self._stream, GzipMembers):
            return False
        if not isinstance(exc, (gzip.BadGzipFile, EOFError, zlib.error, _INFLATE_ERROR)):
            return False  # (an I/O error is no damage: it fails the read as it is)
        try:
            members = GzipMembers(os.dup(self._stream.fileno()), self._delivered)  # (the file it opened)
        except OSError:  # (out of descriptors): the first error stands
            return False
        with contextlib.suppress(*_READ_ERRORS):
            self._stream.close()
        self._stream = members
        return True

    def read(self, n: int = -1, /) -> bytes:
        data = bytes(self._call("read", n))
        self._delivered += len(data)
        return data

    def readinto(self, view: memoryview) -> int:
        n = int(self._call("readinto", view))
        self._delivered += n
        return n

    def fileno(self) -> int | None:
        """The descriptor of a plain file (None for a compressed stream or a pipe wrapper)."""
        fileno = getattr(self._stream, "fileno", None)
        return None if self._compressed or fileno is None else int(fileno())

    def seek(self, offset: int) -> int:
        if self._compressed or not self._stream.seekable():
            raise OSError("not seekable")
        return int(self._call("seek", offset))

    def close(self) -> None:
        with contextlib.suppress(*_READ_ERRORS):
            self._stream.close()

    def __enter__(self) -> SourceStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
