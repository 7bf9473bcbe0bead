"""An .xz file is read stream by stream like ``xz -d``: padding skipped, every stream read, bytes
after the last stream reported (a warning), damage between streams a failed source after the lines
before it. Python's lzma reader had ended its output silently at the first bytes that begin no
stream: a damaged second stream's header dropped it and every stream after it, with exit 0."""

from __future__ import annotations

import lzma
from collections import Counter
from pathlib import Path

import pytest

from pipeline.ingest import sources
from tests.conftest import ingest_paths, store_rows
from tests.ingest.test_gzip_trailing import lines, written

STREAMS = [lines(400, k * 400) for k in range(3)]


def paths(store: Path) -> Counter[str]:
    return Counter(str(r["path"]) for r in store_rows(store))


def expected(n: int) -> Counter[str]:
    return Counter(f"/p/{i}" for i in range(n))


@pytest.mark.parametrize("padding", [b"", b"\0" * 8])
def test_every_stream_is_read_padding_skipped(tmp_path: Path, padding: bytes) -> None:
    body = padding.join(lzma.compress(s) for s in STREAMS) + padding
    log = written(tmp_path / "access.log.2.xz", body)
    report = ingest_paths(tmp_path / "s", [log], fmt="combined", block_bytes=64 << 10)
    assert not report.failed and report.sources[0].warning is None
    assert paths(tmp_path / "s") == expected(1200)


def test_bytes_after_the_last_stream_are_reported_not_silent(tmp_path: Path) -> None:
    log = written(tmp_path / "access.log.2.xz", b"".join(lzma.compress(s) for s in STREAMS) + b"junk\n")
    report = ingest_paths(tmp_path / "s", [log], fmt="combined")
    (src,) = report.sources
    assert src.problem is None and src.warning is not None and "after the last xz stream" in src.warning
    assert paths(tmp_path / "s") == expected(1200)


def test_a_damaged_stream_header_fails_the_file_after_the_streams_before_it(tmp_path: Path) -> None:
    first, second, third = (lzma.compress(s) for s in STREAMS)
    log = written(tmp_path / "access.log.2.xz", first + b"XXXXXX" + second[6:] + third)
    store = tmp_path / "s"
    report = ingest_paths(store, [log], fmt="combined", block_bytes=64 << 10)
    assert report.failed and "damaged xz data" in str(report.sources[0].problem)
    assert paths(store) == expected(400)  # the first stream, whole; nothing of the rest
    written(log, first + second + third)  # repaired: read on, once
    report = ingest_paths(store, [log], fmt="combined", block_bytes=64 << 10)
    assert not report.failed and paths(store) == expected(1200)


def test_a_legacy_lzma_file_and_a_cut_stream(tmp_path: Path) -> None:
    alone = written(tmp_path / "old.log.lzma", lzma.compress(STREAMS[0], format=lzma.FORMAT_ALONE))
    with sources.open_stream(str(alone)) as stream:
        assert stream.read() == STREAMS[0]
    cut = lzma.compress(STREAMS[1])
    log = written(tmp_path / "access.log.3.xz", lzma.compress(STREAMS[0]) + cut[: len(cut) // 2])
    report = ingest_paths(tmp_path / "s", [log], fmt="combined", partial_line_grace=0)
    assert report.failed and "ends early" in str(report.sources[0].problem)
