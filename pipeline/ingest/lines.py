"""Split a block of raw bytes into lines without a Python loop per line.

numpy finds the newlines; arrow wraps the block zero-copy as one string array whose values still
carry their line terminator (stripped later in polars, one vectorised pass). Lines that are not clean
text (control bytes, invalid UTF-8) or are longer than the limit are flagged here and blanked in the
array, so the parser only ever sees valid UTF-8.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa


@dataclass(frozen=True)
class SplitLines:
    """Lines of one block; ``offsets`` are absolute byte offsets of each line start in the source."""

    text: pa.LargeStringArray  # one value per line, terminator included; flagged lines blanked
    offsets: np.ndarray  # int64
    lengths: np.ndarray  # int64, bytes without the terminator
    blank: np.ndarray  # bool: empty line (neither a row nor a reject)
    binary: np.ndarray  # bool: control bytes or invalid UTF-8
    too_long: np.ndarray  # bool: longer than max_line_bytes
    non_ascii: np.ndarray  # bool: has bytes ≥ 0x80 (valid UTF-8 unless binary): byte ≠ character offsets
    block: bytes | memoryview
    base_offset: int

    def __len__(self) -> int:
        return len(self.offsets)

    def raw_line(self, i: int, limit: int) -> bytes:
        start = int(self.offsets[i]) - self.base_offset
        return bytes(self.block[start : start + min(int(self.lengths[i]), limit)])


class TooManyLines(Exception):
    """A block holds more lines than one batch may (``split_block``'s ``max_lines``)."""


def split_block(
    block: bytes | memoryview, base_offset: int, max_line_bytes: int, max_lines: int | None = None
) -> SplitLines:
    """The block's lines; ``TooManyLines`` as soon as more than ``max_lines`` newlines are seen
    (before any per-line array is made: a block of one-byte lines must be cut first)."""
    arr = np.frombuffer(block, dtype=np.uint8)
    newlines, ctrl_lines, high_lines = _scan(arr, max_lines)
    starts = np.concatenate(([0], newlines + 1)).astype(np.int64)
    if len(arr) == 0 or arr[-1] == 10:  # nothing after the last '\n'
        starts = starts[:-1]
    bounds = np.concatenate((starts, [len(arr)])).astype(np.int64)
    ends = np.minimum(np.concatenate((newlines, [len(arr)]))[: len(starts)], bounds[1:])
    has_cr = (ends > starts) & (arr[np.maximum(ends - 1, 0)] == 13) if len(starts) else np.zeros(0, bool)
    ends = ends - has_cr
    lengths = ends - starts
    binary = np.zeros(len(starts), dtype=bool)
    high = np.zeros(len(starts), dtype=bool)
    binary[ctrl_lines] = True
    high[high_lines] = True
    for i in np.flatnonzero(high & ~binary):  # rare: Apache and nginx escape non-ASCII bytes
        try:
            bytes(block[starts[i] : ends[i]]).decode("utf-8")
        except UnicodeDecodeError:
            binary[i] = True
    too_long = lengths > max_line_bytes
    bad = np.flatnonzero(binary | too_long)
    data: bytes | memoryview | np.ndarray = block
    if len(bad):
        # Blank flagged lines in a copy (their raw bytes are rendered separately for the quarantine);
        # vectorised: a block of binary garbage holds hundreds of thousands of them.
        flagged = np.zeros(len(starts), dtype=bool)
        flagged[bad] = True
        copy = arr.copy()
        copy[np.repeat(flagged, np.diff(bounds))] = 32
        data = copy
    text = pa.LargeStringArray.from_buffers(len(starts), pa.py_buffer(bounds.tobytes()), pa.py_buffer(data))
    return SplitLines(
        text=text,
        offsets=starts + base_offset,
        lengths=lengths,
        blank=lengths == 0,
        binary=binary & ~too_long,
        too_long=too_long,
        non_ascii=high,
        block=block,
        base_offset=base_offset,
    )


_SCAN_BYTES = 1 << 20


def _scan(arr: np.ndarray, max_lines: int | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(positions of the newlines, the lines with control bytes, the lines with bytes ≥ 0x80);
    ``TooManyLines`` once more than ``max_lines`` newlines were found.

    One pass for the unusual bytes (< 32 or ≥ 127: normally the newlines alone), in 1 MiB slices:
    the temporaries stay in cache and are reused by the allocator (block-sized ones cost a page
    fault per 4 KiB, measured: a third of this function), and they stay small when most bytes are
    unusual (binary garbage: the positions of a whole 32 MiB block's bytes had taken 900 MB). Each
    slice's bytes are mapped to their lines there, by the newlines found so far. Tab is tolerated
    (W3C and some custom formats use it); a CR counts only where it is not the line's terminator.
    """
    newlines: list[np.ndarray] = []
    ctrl: list[np.ndarray] = []
    high: list[np.ndarray] = []
    seen = 0  # newlines before this slice: the index of the line it begins in
    for at in range(0, len(arr), _SCAN_BYTES):
        part = arr[at : at + _SCAN_BYTES]
        found = np.flatnonzero((part - np.uint8(32)) >= np.uint8(95))  # uint8 wraps: one compare
        if not len(found):
            continue
        values = part[found]
        is_newline = values == 10
        local = found[is_newline]
        if max_lines is not None and seen + len(local) > max_lines:
            raise TooManyLines(f"more than {max_lines} lines")
        newlines.append(local + at)
        if len(local) < len(found):
            odd, values = found[~is_newline], values[~is_newline]
            line = seen + np.searchsorted(local, odd)
            is_ctrl = ((values < 32) & (values != 9)) | (values == 127)
            cr = np.flatnonzero(values == 13)
            if len(cr):  # a CR before the '\n' (or ending the block) ends its line: not a control byte
                after = odd[cr] + at + 1
                is_ctrl[cr[(after >= len(arr)) | (arr[np.minimum(after, len(arr) - 1)] == 10)]] = False
            ctrl.append(_distinct(line[is_ctrl]))
            high.append(_distinct(line[values >= 128]))
        seen += len(local)
    return _joined(newlines), _joined(ctrl), _joined(high)


def _distinct(ascending: np.ndarray) -> np.ndarray:
    """The distinct values of an ascending array (np.unique would sort it again)."""
    if len(ascending) < 2:
        return ascending
    return ascending[np.concatenate(([True], ascending[1:] != ascending[:-1]))]


def _joined(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
