"""Header directives in stream order, for formats whose lines depend on them (W3C ``#Fields:``).

Blocks are parsed out of order by worker threads, so a block cannot learn from the block before it
which ``#Fields:`` line is in force. The ingest loop reads blocks in stream order on one thread:
there, ``Tracker`` finds a block's directive lines (a byte search, no parsing: they are rare) and
folds them into the format's state, and each block is parsed by the format bound to the state at its
start. A run that resumes a file mid-way rebuilds the state from the directive lines before its
offset (``state_before``), so nothing about a file's headers needs to be stored.
"""

from __future__ import annotations

from collections.abc import Iterator

from pipeline.ingest import sources
from pipeline.ingest.fields import Directed, Format, directed

_SCAN_BYTES = 8 << 20


def directive_lines(data: bytes | memoryview, prefix: bytes) -> list[str]:
    """The lines of ``data`` (complete lines) that start with ``prefix``, in order, without terminators."""
    raw = bytes(data)
    out: list[str] = []
    at = 0 if raw.startswith(prefix) else _next(raw, prefix, 0)
    while at >= 0:
        end = raw.find(b"\n", at)
        out.append(raw[at : len(raw) if end < 0 else end].rstrip(b"\r").decode("utf-8", "replace"))
        at = -1 if end < 0 else _next(raw, prefix, end)
    return out


def _next(raw: bytes, prefix: bytes, start: int) -> int:
    found = raw.find(b"\n" + prefix, start)
    return found + 1 if found >= 0 else -1


class Tracker:
    """The format for each block of a stream, in stream order."""

    def __init__(self, fmt: Format, state: str | None = None) -> None:
        self.fmt = fmt
        self.directed: Directed | None = directed(fmt)
        self.state = state

    def format_for(self, data: bytes | memoryview) -> Format:
        """The format that parses ``data`` (the next block); the state moves past its directives."""
        if self.directed is None:
            return self.fmt
        bound = self.directed.bind(self.state)
        found = directive_lines(data, self.directed.directive_prefix)
        if found:
            self.state = self.directed.fold(self.state, found)
        return bound


def state_before(fmt: Format, path: str, offset: int) -> str | None:
    """The state of a directed format at ``offset`` of a file (None for other formats or offset 0)."""
    d = directed(fmt)
    if d is None or offset <= 0:
        return None
    state: str | None = None
    with sources.open_stream(path) as stream:
        for chunk in _lines_until(stream, offset):
            found = directive_lines(chunk, d.directive_prefix)
            if found:
                state = d.fold(state, found)
    return state


def _lines_until(stream: sources.Readable, offset: int) -> Iterator[bytes]:
    """Chunks of complete lines of ``stream`` up to ``offset`` (a line boundary)."""
    read, carry = 0, b""
    while read < offset:
        chunk = stream.read(min(_SCAN_BYTES, offset - read))
        if not chunk:
            break
        read += len(chunk)
        data = carry + chunk
        cut = data.rfind(b"\n") + 1 if read < offset else len(data)
        carry = data[cut:]
        yield data[:cut]
