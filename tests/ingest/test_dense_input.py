"""Memory follows a batch's lines, not its bytes: a block holds at most block_bytes / 64 lines.

32 MiB of "\\0\\n" (16.7M one-byte binary lines) was one batch of 4 GB and 77 s; 32 MiB of "x\\n"
6.7 GB. The reader now cuts such a block into batches of a bounded number of lines.
"""

from __future__ import annotations

import itertools
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import blocks, rows
from pipeline.ingest import lines as lines_module
from pipeline.ingest.blocks import MIN_LINE_BYTES, _pieces
from pipeline.ingest.lines import split_block
from pipeline.privacy import mask
from pipeline.store.commit import Store
from tests.conftest import ingest_paths, store_rejects, store_rows
from tests.ingest.test_parse_golden import parse_block


@settings(max_examples=300, deadline=None)
@given(
    lines=st.lists(
        st.binary(max_size=6).map(lambda b: b.replace(b"\n", b"") + b"\n"), min_size=1, max_size=400
    ),
    max_lines=st.integers(1, 60),
    slice_bytes=st.sampled_from([1, 2, 3, 7, 64, 1 << 20]),
)
def test_pieces_are_whole_lines_of_at_most_max_lines(
    lines: list[bytes], max_lines: int, slice_bytes: int
) -> None:
    data = b"".join(lines)
    original = blocks._COUNT_BYTES
    blocks._COUNT_BYTES = slice_bytes  # the count runs in slices: cuts must not depend on where they fall
    try:
        pieces = [bytes(p) for p in _pieces(memoryview(data), max_lines)]
    finally:
        blocks._COUNT_BYTES = original
    assert b"".join(pieces) == data
    assert all(p.endswith(b"\n") for p in pieces)
    assert [p.count(b"\n") for p in pieces[:-1]] == [max_lines] * (len(pieces) - 1)
    assert 1 <= pieces[-1].count(b"\n") <= max_lines


def test_a_file_of_tiny_lines_is_read_in_batches_of_bounded_lines(tmp_path: Path) -> None:
    good = '203.0.113.7 - - [05/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "UA"\n'
    text = good + "\0\n" * 40_000 + "x\n" * 30_000 + good * 3
    log = tmp_path / "dense.log"
    log.write_text(text)
    store = tmp_path / "store"
    block = 1 << 20
    report = ingest_paths(store, [log], fmt="combined", block_bytes=block, max_reject_rate=1.0)
    assert report.lines == 70_004 and len(store_rows(store)) == 4
    rejects = store_rejects(store)
    assert len(rejects) == 70_000
    assert {r["reason"] for r in rejects} == {"binary", "unparseable"}
    manifests = list(Store(store).iter_manifests())
    assert max(m["lines"] for m in manifests) <= block // MIN_LINE_BYTES
    assert sum(m["lines"] for m in manifests) == 70_004 and len(manifests) >= 5
    # the batches tile the file: nothing lost, nothing read twice
    spans = sorted((m["source"]["start"], m["source"]["end"]) for m in manifests)
    assert spans[0][0] == 0 and spans[-1][1] == len(text.encode())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))


def test_a_dense_block_is_cut_where_its_lines_are_counted_and_each_piece_is_proven(tmp_path: Path) -> None:
    """The reader hands a block over whole; the worker that finds more lines in it than a batch holds
    has it cut into pieces, committed in order. Each piece's custody digest covers exactly its own
    bytes, the first one's the oversized line skipped before it too: ``keys prove`` checks them all
    against the file."""
    from click.testing import CliRunner

    from pipeline.cli import main

    good = '203.0.113.7 - - [05/Dec/2026:10:00:00 +0000] "GET /a HTTP/1.1" 200 5 "-" "UA"\n'
    text = good + "y" * 100_000 + "\n" + "x\n" * 20_000 + good + "\0\n" * 9_000 + good
    log = tmp_path / "dense.log"
    log.write_text(text)
    store = tmp_path / "store"
    block = 1 << 15
    report = ingest_paths(
        store, [log], fmt="combined", block_bytes=block, max_line_bytes=4096, max_reject_rate=1.0
    )
    assert report.lines == 29_004 and len(store_rows(store)) == 3
    assert {r["reason"] for r in store_rejects(store)} == {"binary", "unparseable", "too_long"}
    manifests = list(Store(store).iter_manifests())
    # (+ 1: the skipped oversized line is a reject of the piece after it)
    assert max(m["lines"] for m in manifests) <= block // MIN_LINE_BYTES + 1 < 20_000
    spans = sorted((m["source"]["start"], m["source"]["end"]) for m in manifests)
    assert spans[0][0] == 0 and spans[-1][1] == len(text.encode())
    assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
    proof = CliRunner().invoke(main, ["keys", "prove", str(log), "--store", str(store)])
    assert proof.exit_code == 0 and f"{len(manifests)} of {len(manifests)} batch(es) verified" in proof.stdout


def test_too_many_lines_are_found_before_any_line_array_is_made() -> None:
    """16 MiB of one-byte lines (8.4M lines) against a limit of 1,000: the scan stops within its
    first slice, long before per-line arrays (8 bytes a line each: 67 MB apiece) are made."""
    data = b"\0\n" * (8 << 20)
    tracemalloc.start()
    try:
        with pytest.raises(lines_module.TooManyLines):
            split_block(data, 0, 1 << 16, max_lines=1_000)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * lines_module._SCAN_BYTES <= len(data)  # one slice's temporaries
    assert len(split_block(data[:2_000], 0, 1 << 16, max_lines=1_000)) == 1_000  # the limit is allowed


def _reference_flags(data: bytes) -> tuple[list[bool], list[bool], list[bool]]:
    """Per line, read one at a time: (binary, non-ASCII, blank), as split_block documents them."""
    body = data[:-1] if data.endswith(b"\n") else data
    binary, high, blank = [], [], []
    for raw in body.split(b"\n") if data else []:
        line = raw[:-1] if raw.endswith(b"\r") else raw
        ctrl = any((c < 32 and c != 9) or c == 127 for c in line)
        try:
            line.decode("utf-8")
            valid = True
        except UnicodeDecodeError:
            valid = False
        binary.append(ctrl or not valid)
        high.append(any(c >= 128 for c in line))
        blank.append(not line)
    return binary, high, blank


@settings(max_examples=400, deadline=None)
@given(
    data=st.lists(
        st.sampled_from([b"a", b"1", b"\n", b"\r", b"\t", b"\0", b"\x7f", b"\xc3\xa9", b"\xff", b"\x1b"]),
        max_size=80,
    ).map(b"".join),
    slice_bytes=st.sampled_from([1, 2, 3, 5, 16, 1 << 20]),
)
def test_line_flags_do_not_depend_on_where_the_scan_slices_fall(data: bytes, slice_bytes: int) -> None:
    """The unusual bytes are mapped to their lines slice by slice (binary garbage had taken 900 MB
    of positions per 32 MiB block): every slicing gives the flags a line-by-line reading gives."""
    original = lines_module._SCAN_BYTES
    lines_module._SCAN_BYTES = slice_bytes
    try:
        split = split_block(data, 100, 1 << 20)
    finally:
        lines_module._SCAN_BYTES = original
    binary, high, blank = _reference_flags(data)
    assert split.binary.tolist() == binary
    assert split.non_ascii.tolist() == high
    assert split.blank.tolist() == blank
    body = data[:-1] if data.endswith(b"\n") else data
    assert split.offsets.tolist() == ([100 + i for i in _starts(body)] if data else [])


def _starts(body: bytes) -> list[int]:
    starts, at = [0], body.find(b"\n")
    while at >= 0:
        starts.append(at + 1)
        at = body.find(b"\n", at + 1)
    return starts


def test_a_block_of_random_bytes_is_split_in_bounded_memory() -> None:
    """8 MiB of random bytes: the scan's temporaries stay per slice (the positions of every unusual
    byte at once had cost ~27x the block: 900 MB for 32 MiB)."""
    data = random.Random(7).randbytes(8 << 20)
    tracemalloc.start()
    try:
        split = split_block(data, 0, 1 << 16)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert split.binary.sum() > 0.99 * len(split)
    assert peak < 5 * len(data)  # the blanked copy, its mask and the line arrays


def test_binary_rejects_are_rendered_and_masked_a_slice_at_a_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """A block of binary garbage is ~130k rejects of ~1 KB of escapes: rendered and masked in slices
    (at once it had taken 1.4 GB for one 32 MiB block). Slicing changes nothing in the records:
    same order, offsets, reasons and masked text, the addresses among them masked."""
    rnd = random.Random(3)
    lines = []
    for i in range(300):
        junk = rnd.randbytes(rnd.randrange(1, 120)).replace(b"\n", b"")
        address = f"203.0.113.{i % 250}".encode()
        lines.append(
            junk + b" " + address + b" \x00" if i % 3 else b'203.0.113.9 - - "GET /a HTTP/1.1" ' + junk
        )
    block = b"\n".join(lines) + b"\n"
    whole = parse_block(block, "combined")
    monkeypatch.setattr(rows, "_RENDER_LINES", 7)
    monkeypatch.setattr(mask, "_MASK_SLICE", 5)
    sliced = parse_block(block, "combined")
    assert sliced.rejects.equals(whole.rejects)
    assert whole.rejects.height == 300
    assert whole.rejects.get_column("offset").is_sorted()
    text = "\n".join(whole.rejects.get_column("line").to_list())
    assert not any(f"203.0.113.{i % 250} " in text for i in range(300) if i % 250 != 0)
