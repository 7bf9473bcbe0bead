"""A .gz with bytes after its last member is read like ``gzip -d`` reads it: every member's lines,
the rest reported as ignored. ISA-L's reader had failed the whole file, every run (exit 10), and
lost the lines it had decompressed in the read that met those bytes."""

from __future__ import annotations

import gzip
import itertools
import os
import time
import zlib
from pathlib import Path

import pytest

from pipeline.errors import SourceCutShort
from pipeline.ingest import sources
from pipeline.ingest.gzip_members import GzipMembers
from tests.conftest import RECENT_CLF, ingest_paths, store_rejects, store_rows


def lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        f'203.0.113.{i % 250} - - [{RECENT_CLF}:10:{i // 60 % 60:02d}:{i % 60:02d} +0000] "GET /p/{i} HTTP/1.1" '
        f'200 {i} "-" "UA {i}"\n'.encode()
        for i in range(start, start + n)
    )


def written(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    old = time.time() - 3600  # rotated an hour ago: complete
    os.utime(path, (old, old))
    return path


TAILS = {
    "garbage": b"garbage\x00\x01 after the member",
    "padding then garbage": b"\0" * 700 + b"junk",
    "a half magic number": b"\x1f",
    "a line of text": b'198.51.100.7 - - [05/Dec/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 1\n',
}


@pytest.mark.parametrize(
    ("tail", "members"),
    [(tail, 3) for tail in TAILS.values()] + [(TAILS["garbage"], 1)],
    ids=[*TAILS.keys(), "one member"],
)
def test_every_line_before_trailing_bytes_is_ingested_once_and_they_are_reported(
    tmp_path: Path, tail: bytes, members: int
) -> None:
    data = lines(3000)
    cut = [0, *sorted({len(data) * k // members for k in range(1, members)}), len(data)]
    body = b"".join(gzip.compress(data[a:b]) for a, b in itertools.pairwise(cut))
    log = written(tmp_path / "access.log.2.gz", body + tail)
    store = tmp_path / "store"
    # small blocks: the trailing bytes are met in the middle of a block's read, after several blocks
    report = ingest_paths(store, [log], fmt="combined", block_bytes=64 << 10, max_line_bytes=4096)
    (src,) = report.sources
    assert src.error is None
    assert (src.lines, src.rows) == (3000, 3000)
    expected = (
        f"{len(tail):,} bytes after the last gzip member (at byte {len(body):,}) are no gzip data: ignored"
    )
    assert src.warning == expected
    again = ingest_paths(store, [log], fmt="combined", block_bytes=64 << 10, max_line_bytes=4096)
    assert again.sources[0].error is None and again.rows == 0
    rows = store_rows(store)
    assert sorted(r["bytes"] for r in rows) == list(range(3000))
    assert store_rejects(store) == []
    assert "198.51.100" not in str(rows)


def test_zero_padding_alone_is_no_trailing_data(tmp_path: Path) -> None:
    log = written(tmp_path / "access.log.1.gz", gzip.compress(lines(50)) + b"\0" * 1024)
    report = ingest_paths(tmp_path / "store", [log], fmt="combined")
    assert (report.rows, report.sources[0].error) == (50, None)
    assert report.sources[0].warning is None


def test_a_member_cut_short_is_still_a_file_cut_short(tmp_path: Path) -> None:
    whole = gzip.compress(lines(2000))
    log = written(tmp_path / "access.log.1.gz", gzip.compress(lines(10)) + whole[: len(whole) // 2])
    with sources.open_stream(str(log)) as stream, pytest.raises(SourceCutShort):
        sources.read_exact(stream, 10 << 20)
    report = ingest_paths(tmp_path / "store", [log], fmt="combined")
    assert report.sources[0].error is not None and "ends early" in report.sources[0].error


@pytest.mark.parametrize("skip", [0, 1, 999, 4000, 10**9])
@pytest.mark.parametrize("size", [1, 7, 1 << 16, -1])
def test_the_member_reader_skips_and_reads_what_gzip_decompresses(
    tmp_path: Path, skip: int, size: int
) -> None:
    data = lines(400)
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(data[:1000]) + b"\0\0" + gzip.compress(data[1000:]) + b"\0\0tail")
    reader = GzipMembers(os.open(path, os.O_RDONLY), skip)
    got = bytearray()
    while chunk := reader.read(size):
        got += chunk
        if size < 0:
            break
    reader.close()
    assert bytes(got) == data[skip:]
    assert reader.trailing == (path.stat().st_size - 6, 6)  # the padding before the tail too


def test_the_fallback_reads_on_from_the_open_file_not_from_its_name(tmp_path: Path) -> None:
    """Found by review: the fallback reopened the path, where logrotate had meanwhile put another
    file, whose lines were read as the rest of this one (lost and doubled lines next run)."""
    old, new = lines(3000), lines(6000, start=10_000)
    log = written(tmp_path / "access.log.2.gz", gzip.compress(old) + b"junk")
    with sources.open_stream(str(log)) as stream:
        got = stream.read(len(old) // 2)
        os.rename(log, tmp_path / "access.log.3.gz")
        log.write_bytes(gzip.compress(new))
        while chunk := stream.read(1 << 20):
            got += chunk
        assert got == old
        assert stream.trailing is not None and stream.trailing.startswith(
            "4 bytes after the last gzip member"
        )


def zeroed_member_start(tmp_path: Path) -> tuple[Path, bytes]:
    """Three members of 1000 lines; a crash zeroed 4 KiB from the start of the second."""
    a, b, c = (gzip.compress(lines(1000, start=k * 1000)) for k in range(3))
    damaged = bytearray(a + b + c)
    damaged[len(a) : len(a) + 4096] = bytes(4096)
    return written(tmp_path / "access.log.1.gz", bytes(damaged)), a


def test_damage_at_a_members_start_fails_the_file_after_the_lines_before_it(tmp_path: Path) -> None:
    """Found by review: zeros over a member's start were taken for trailing garbage, and the valid
    members after them dropped with exit 0. Damage followed by a gzip header is damage: the lines
    before it are committed, the file fails (exit 10) every run, like a bad CRC."""
    log, first = zeroed_member_start(tmp_path)
    report = ingest_paths(
        tmp_path / "store", [log], fmt="combined", block_bytes=16 << 10, max_line_bytes=4096
    )
    (src,) = report.sources
    assert src.error is not None and f"damaged gzip data from byte {len(first):,}" in src.error
    assert "yet one begins again at byte" in src.error
    assert src.warning is None
    assert sorted(r["bytes"] for r in store_rows(tmp_path / "store")) == list(range(1000))
    again = ingest_paths(tmp_path / "store", [log], fmt="combined", block_bytes=16 << 10, max_line_bytes=4096)
    assert again.sources[0].error is not None and again.rows == 0


@pytest.mark.parametrize("tail", [b"\x1f\x8b", b"\x1f\x8b\x09garbage"], ids=["magic alone", "bad method"])
def test_complete_members_are_ingested_before_a_tail_that_begins_like_a_member(
    tmp_path: Path, tail: bytes
) -> None:
    """Found by review: the read that met such a tail discarded what it had decompressed (up to a
    block): the complete members' lines were never ingested, however often the run was repeated."""
    log = written(
        tmp_path / "access.log.1.gz", gzip.compress(lines(1000)) + gzip.compress(lines(500, 1000)) + tail
    )
    report = ingest_paths(tmp_path / "store", [log], fmt="combined")
    (src,) = report.sources
    assert src.error is not None and src.rows == 1500
    assert sorted(r["bytes"] for r in store_rows(tmp_path / "store")) == list(range(1500))


def test_quiet_still_warns_of_what_was_left_out(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from pipeline.cli import main

    log = written(tmp_path / "access.log.1.gz", gzip.compress(lines(10)) + b"junk")
    argv = ["ingest", str(log), "--store", str(tmp_path / "store"), "--format", "combined", "--quiet"]
    result = CliRunner().invoke(main, argv)
    assert result.exit_code == 0
    assert result.stderr == (
        f"hostlogs: warning: {log}: 4 bytes after the last gzip member (at byte {log.stat().st_size - 4:,}) "
        "are no gzip data: ignored\n"
    )


def damaged_inside(data: bytes, how: str) -> bytes:
    """One member, damaged past the first 4 MiB it inflates to (what one step of the reader gives)."""
    whole = bytearray(gzip.compress(data))
    at = len(whole) * 7 // 8
    if how == "zeroed block":  # a crash's zeroed 4 KiB inside the member: inflates to garbage
        whole[at : at + 4096] = bytes(4096)
    else:  # one flipped bit: only the CRC tells
        whole[at] ^= 8
    return bytes(whole)


@pytest.mark.parametrize(("how", "before"), [("zeroed block", 0), ("flipped bit", 2000)])
def test_damage_inside_a_member_stores_nothing_of_it_and_the_repaired_file_reads_on(
    tmp_path: Path, how: str, before: int
) -> None:
    """Found by review: lines inflated from a damaged member (garbage, or copies of earlier lines)
    were committed before its CRC failed, and the repaired file was then read again from its start
    (REWRITTEN): every line twice. A member's lines are committed only once its CRC is checked."""
    good = gzip.compress(lines(before)) if before else b""
    data = lines(60_000, start=before)
    assert len(data) > 5 << 20
    log = written(tmp_path / "access.log.1.gz", good + damaged_inside(data, how))
    store = tmp_path / "store"
    report = ingest_paths(store, [log], fmt="combined")
    assert report.sources[0].error is not None and report.sources[0].warning is None
    assert sorted(r["bytes"] for r in store_rows(store)) == list(range(before))
    assert store_rejects(store) == []
    written(log, good + gzip.compress(data))  # repaired from a backup
    repaired = ingest_paths(store, [log], fmt="combined")
    assert repaired.sources[0].error is None and "REWRITTEN" not in (repaired.sources[0].note or "")
    assert sorted(r["bytes"] for r in store_rows(store)) == list(range(before + 60_000))


def test_a_member_cut_short_by_a_zeroed_tail_stores_only_the_whole_members_before_it(tmp_path: Path) -> None:
    """Found by review: a compressor that died leaves its member cut, then zeros; inflated, the
    zeros are back-references, copies of earlier lines, which were committed as the "prefix" of a
    file cut short; the repaired file was then read again as a new stream. A cut member is not
    verified (its CRC is at its end): only whole members are kept."""
    data = lines(6000)
    members = [gzip.compress(data[i : i + len(data) // 6]) for i in range(0, len(data), len(data) // 6)]
    whole = b"".join(members)
    log = written(
        tmp_path / "access.log.1.gz",
        b"".join(members[:-1]) + members[-1][: len(members[-1]) * 6 // 10] + bytes(4096),
    )
    store = tmp_path / "store"
    report = ingest_paths(store, [log], fmt="combined")
    assert report.sources[0].error is not None and "ends early" in report.sources[0].error
    stored = sorted(r["bytes"] for r in store_rows(store))
    assert stored == list(range(len(stored))) and len(stored) < 6000  # whole members, nothing twice
    assert store_rejects(store) == []
    written(log, whole)
    repaired = ingest_paths(store, [log], fmt="combined")
    assert repaired.sources[0].error is None and "REWRITTEN" not in (repaired.sources[0].note or "")
    assert sorted(r["bytes"] for r in store_rows(store)) == list(range(6000))


def test_what_the_first_reader_handed_out_of_a_damaged_member_is_no_verified_prefix(tmp_path: Path) -> None:
    """Found by review: when the damage was in the first member, part of which ISA-L's reader had
    handed out already, the member reader still called the rest a verified prefix."""
    path = tmp_path / "x.gz"
    path.write_bytes(damaged_inside(lines(60_000), "flipped bit"))
    reader = GzipMembers(os.open(path, os.O_RDONLY), skip=1_000_000)
    with pytest.raises((OSError, zlib.error)):
        while reader.read(1 << 20):
            pass
    assert not reader.verified_prefix
    reader.close()
    clean = tmp_path / "y.gz"
    clean.write_bytes(gzip.compress(lines(100)) + gzip.compress(lines(100, 100))[:-20])  # second member cut
    reader = GzipMembers(os.open(clean, os.O_RDONLY), skip=10)
    got = reader.read(1 << 20)
    with pytest.raises(EOFError):
        reader.read(1 << 20)
    assert got == lines(100)[10:] and reader.verified_prefix
    reader.close()
