"""Memory follows a batch's lines, not its bytes: a block holds at most block_bytes / 64 lines.

32 MiB of "\\0\\n" (16.7M one-byte binary lines) was one batch of 4 GB and 77 s; 32 MiB of "x\\n"
6.7 GB. The reader now cuts such a block into batches of a bounded number of lines.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.ingest import blocks
from pipeline.ingest.blocks import MIN_LINE_BYTES, _pieces
from pipeline.store.commit import Store
from tests.conftest import ingest_paths, store_rejects, store_rows


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
