"""Log rotation scenarios between cron runs: each ends with the exact multiset of lines in the store.

Steps: ("write", file, n) appends n new lines; ("run",) ingests the glob access.log*; ("mv", a, b);
("gzip", a) compresses a to a.gz; ("copytruncate", a, b); ("rm", a); ("partial", file) writes half a line;
("finish", file) completes it. Lines are numbered; ``lost`` lists numbers that cannot be in the store.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from pipeline import config
from pipeline.ingest import run as ingest
from tests.conftest import ingest_paths, make_config, store_rejects, store_rows

Step = tuple[object, ...]

SCENARIOS: dict[str, tuple[list[Step], set[int]]] = {
    "rename-and-create": (
        [
            ("write", "access.log", 30),
            ("run",),
            ("write", "access.log", 10),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 5),
            ("run",),
        ],
        set(),
    ),
    "rename-then-gzip-at-once": (
        [
            ("write", "access.log", 30),
            ("run",),
            ("write", "access.log", 10),
            ("mv", "access.log", "access.log.1"),
            ("gzip", "access.log.1"),
            ("write", "access.log", 5),
            ("run",),
        ],
        set(),
    ),
    "delaycompress": (
        [
            ("write", "access.log", 20),
            ("run",),
            ("write", "access.log", 5),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 7),
            ("run",),
            ("write", "access.log", 3),
            ("mv", "access.log.1", "access.log.2"),
            ("gzip", "access.log.2"),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 4),
            ("run",),
            ("run",),
        ],
        set(),
    ),
    "copytruncate": (
        [
            ("write", "access.log", 25),
            ("run",),
            ("write", "access.log", 8),
            ("copytruncate", "access.log", "access.log.1"),
            ("write", "access.log", 6),
            ("run",),
        ],
        set(),
    ),
    "many-rotations-between-runs": (
        [
            ("write", "access.log", 15),
            ("run",),
            ("write", "access.log", 5),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 6),
            ("mv", "access.log.1", "access.log.2"),
            ("gzip", "access.log.2"),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 7),
            ("mv", "access.log.2.gz", "access.log.3.gz"),
            ("mv", "access.log.1", "access.log.2"),
            ("gzip", "access.log.2"),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 2),
            ("run",),
        ],
        set(),
    ),
    "inode-reuse": (
        [("write", "access.log", 12), ("run",), ("rm", "access.log"), ("write", "access.log", 9), ("run",)],
        set(),
    ),
    "deleted-before-fully-read": (
        [
            ("write", "access.log", 12),
            ("run",),
            ("write", "access.log", 4),
            ("mv", "access.log", "access.log.1"),
            ("rm", "access.log.1"),
            ("write", "access.log", 3),
            ("run",),
        ],
        {12, 13, 14, 15},  # rotated away and deleted before any run saw them
    ),
    "empty-file": (
        [("touch", "access.log"), ("run",), ("write", "access.log", 3), ("run",)],
        set(),
    ),
    "only-a-partial-line": (
        [
            ("partial", "access.log"),
            ("run",),
            ("run",),
            ("finish", "access.log"),
            ("write", "access.log", 2),
            ("run",),
        ],
        set(),
    ),
    # logrotate dateext in other dateformats, backup names, other compressions: one stream throughout
    **{
        f"rotated-as-{suffix}": (
            [
                ("write", "access.log", 20),
                ("run",),
                ("write", "access.log", 6),
                ("mv", "access.log", f"access.log{suffix}"),
                ("write", "access.log", 4),
                ("run",),
                ("run",),
            ],
            set(),
        )
        for suffix in ("-2026111013", "-20261110-1762779600", "-2026-11-10-13", ".old", ".bak", ".1.bak")
    },
    **{
        f"compressed-with-{codec}": (
            [
                ("write", "access.log", 20),
                ("run",),
                ("write", "access.log", 6),
                ("mv", "access.log", "access.log.1"),
                ("write", "access.log", 4),
                ("run",),
                ("write", "access.log", 3),
                (codec, "access.log.1"),  # the rotated file compressed after it was read plain
                ("mv", "access.log", "access.log.1"),
                ("run",),
            ],
            set(),
        )
        for codec in ("xz", "bz2", "zst", "lz4", "gzip")
    },
    # renamed to a name no rotation scheme explains, after (part of) it was read: resumed by identity
    "renamed-away-mid-read": (
        [
            ("write", "access.log", 40),
            ("run",),
            ("write", "access.log", 7),
            ("mv", "access.log", "access.log.gone"),
            ("run",),
            ("write", "access.log.gone", 2),
            ("run",),
        ],
        set(),
    ),
    "renamed-away-and-recreated": (
        [
            ("write", "access.log", 40),
            ("run",),
            ("mv", "access.log", "access.log.gone"),
            ("write", "access.log", 5),
            ("write", "access.log.gone", 3),  # (the server still had it open)
            ("run",),
            ("run",),
        ],
        set(),
    ),
    "hard-link-under-another-name": (
        [
            ("write", "access.log", 15),
            ("link", "access.log", "access.log.hardlink"),
            ("run",),
            ("write", "access.log", 4),
            ("run",),
        ],
        set(),
    ),
    "copytruncate-grows-past-the-old-offset": (
        [
            ("write", "access.log", 10),
            ("run",),
            ("copytruncate", "access.log", "access.log.1"),
            ("rm", "access.log.1"),
            ("write", "access.log", 30),  # new content, longer than what was read before
            ("run",),
        ],
        set(),
    ),
    # logrotate at the minute cron runs ingest: a listed file is gone when opened. The run lists the
    # glob again and reads the file under its new name, from where it was read up to (no failure).
    "compressed-between-listing-and-reading": (
        [
            ("write", "access.log", 20),
            ("run",),
            ("write", "access.log", 5),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 4),
            ("run", ("gzip", "access.log.1")),
        ],
        set(),
    ),
    "dateext-rename-between-listing-and-reading": (
        [
            ("write", "access.log", 20),
            ("run",),
            ("write", "access.log", 5),
            ("run", ("mv", "access.log", "access.log-20261207")),
            ("write", "access.log", 3),
            ("run",),
        ],
        set(),
    ),
    "oldest-removed-between-listing-and-reading": (
        [
            ("write", "access.log", 10),
            ("mv", "access.log", "access.log.1"),
            ("write", "access.log", 10),
            ("run",),
            ("write", "access.log", 3),
            ("run", ("rm", "access.log.1")),
        ],
        set(),
    ),
    "rerun-changes-nothing": (
        [
            ("write", "access.log", 10),
            ("run",),
            ("run",),
            ("mv", "access.log", "access.log.1"),
            ("run",),
            ("gzip", "access.log.1"),
            ("run",),
        ],
        set(),
    ),
}


def _arrow_writer(codec: str) -> Callable[[str], Any]:
    return lambda path: pa.CompressedOutputStream(path, codec)


COMPRESSORS: dict[str, tuple[str, Callable[[str], Any]]] = {
    "gzip": (".gz", lambda path: gzip.open(path, "wb")),  # noqa: SIM115
    "xz": (".xz", lambda path: lzma.open(path, "wb")),  # noqa: SIM115
    "bz2": (".bz2", lambda path: bz2.open(path, "wb")),  # noqa: SIM115
    "zst": (".zst", _arrow_writer("zstd")),
    "lz4": (".lz4", _arrow_writer("lz4")),
}


def line(n: int) -> str:
    return f'198.51.100.{n % 250 + 1} - - [10/Oct/2026:13:{n // 60 % 60:02d}:{n % 60:02d} +0000] "GET /l{n} HTTP/1.1" 200 {n}\n'


class _Logs:
    """A log folder the steps act on; ``written`` lines so far (numbered from 0)."""

    def __init__(self, folder: Path, store: Path) -> None:
        self.folder, self.store, self.written, self.partial = folder, store, 0, ""

    def do(self, step: Step) -> None:
        op, *args = step
        p = [self.folder / str(a) for a in args if isinstance(a, str)]
        if op == "write":
            with p[0].open("a") as f:
                f.write("".join(line(n) for n in range(self.written, self.written + int(args[1]))))  # type: ignore[call-overload]
            self.written += int(args[1])  # type: ignore[call-overload]
        elif op == "partial":
            self.partial = line(self.written)
            with p[0].open("a") as f:
                f.write(self.partial[:25])
        elif op == "finish":
            with p[0].open("a") as f:
                f.write(self.partial[25:])
            self.written += 1
        elif op == "touch":
            p[0].touch()
        elif op == "mv":
            os.rename(p[0], p[1])
        elif op in COMPRESSORS:
            suffix, opener = COMPRESSORS[str(op)]
            with p[0].open("rb") as src, opener(f"{p[0]}{suffix}") as dst:
                shutil.copyfileobj(src, dst)
            p[0].unlink()
        elif op == "link":
            os.link(p[0], p[1])
        elif op == "copytruncate":
            shutil.copyfile(p[0], p[1])
            with p[0].open("r+") as f:
                f.truncate(0)
        elif op == "rm":
            p[0].unlink()
        elif op == "run":
            self.run([s for s in args if isinstance(s, tuple)])

    def run(self, meanwhile: list[Step]) -> None:
        """Ingest the glob access.log*; ``meanwhile`` happens after the run listed the files and
        before it opens them (logrotate at the same minute as cron)."""

        def rotate(done: int, total: int) -> None:
            while meanwhile:
                self.do(meanwhile.pop(0))

        # A live file counts as complete only after the grace period: a half-written line waits.
        cfg = make_config(self.store, partial_line_grace=3600)
        spec = config.SourceConfig(path=str(self.folder / "access.log*"), domain="example.test")
        raced = bool(meanwhile)
        report = ingest.run(cfg, [spec], progress=rotate)
        assert not report.failed and not report.rejects, report
        assert raced == any(s.gone for s in report.sources), report  # the race did happen


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_rotation_scenario(tmp_path: Path, name: str) -> None:
    steps, lost = SCENARIOS[name]
    logs = _Logs(tmp_path / "logs", tmp_path / "store")
    logs.folder.mkdir()
    for step in steps:
        logs.do(step)
    store = logs.store
    got = Counter(str(r["path"]) for r in store_rows(store)) if (store / "pageviews").exists() else Counter()
    assert got == Counter(f"/l{n}" for n in range(logs.written) if n not in lost)


def test_logs_that_start_identically_are_different_streams(tmp_path: Path) -> None:
    """An uptime monitor hits every site in the same second right after rotation: per-vhost logs (no
    domain in the line) then begin with identical bytes. None of them may be taken for another."""
    monitor = "".join(line(n) for n in range(3))  # the same first lines everywhere (< 1 KiB)
    logs = [
        tmp_path / "a.example" / "access_log",
        tmp_path / "b.example" / "access_log",
        tmp_path / "domlogs" / "c.example",
    ]
    for i, log in enumerate(logs):
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(monitor + "".join(line(n) for n in range(100 * (i + 1), 100 * (i + 1) + 5)))
    (tmp_path / "domlogs" / "d.example").write_text(monitor)  # same directory, another site's log
    store = tmp_path / "store"
    # The short, monitor-only log first: the others' first bytes equal all of it.
    report = ingest_paths(store, [tmp_path / "domlogs" / "d.example", *logs])
    assert [s.rows for s in report.sources] == [3, 8, 8, 8]
    got = Counter(str(r["path"]) for r in store_rows(store))
    assert got["/l0"] == 4 and sum(got.values()) == 27


def test_blocks_are_sized_so_that_workers_finish_together() -> None:
    from pipeline.ingest.blocks import _even_chunk

    mib = 1 << 20
    assert _even_chunk(10 * mib, 32 * mib, 2) == 32 * mib  # one block: a small increment stays one file
    assert _even_chunk(100 * mib, 32 * mib, 1) == 32 * mib  # one worker: nothing to balance
    chunk = _even_chunk(475 * mib, 32 * mib, 2)  # 15 blocks of 32 MiB would leave one worker alone
    n = -(-475 * mib // chunk)
    assert chunk <= 32 * mib and n % 2 == 0 and n == 16
    assert _even_chunk(64 * mib + 1, 32 * mib, 3) == -(-(64 * mib + 1) // 3)  # 3 blocks for 3 workers


def _run_with_olddir(store: Path, pattern: str, olddir: str, **source: str) -> ingest.IngestReport:
    spec = config.SourceConfig(path=pattern, format="common", olddir=olddir, **source)
    report = ingest.run(make_config(store, partial_line_grace=3600), [spec])
    assert not report.failed and not report.rejects, report
    return report


@pytest.mark.parametrize("absolute", [False, True])
def test_olddir_rotation_reads_each_line_once(tmp_path: Path, absolute: bool) -> None:
    """logrotate's olddir moves rotated files out of the log's directory: their unread tail is read on
    from the committed offset, and compressing them there later reads nothing again."""
    logs, store = tmp_path / "logs", tmp_path / "store"
    old = logs / "old"
    old.mkdir(parents=True)
    olddir = str(old) if absolute else "old"
    live = logs / "access.log"

    def write(first: int, n: int) -> None:
        with live.open("a") as f:
            f.write("".join(line(i) for i in range(first, first + n)))

    write(0, 30)
    _run_with_olddir(store, str(logs / "access.log*"), olddir)
    write(30, 10)  # written after the run, then rotated away before the next one
    os.rename(live, old / "access.log.1")
    write(40, 5)
    report = _run_with_olddir(store, str(logs / "access.log*"), olddir)
    assert sorted(s.rows for s in report.sources) == [5, 10]
    # delaycompress: .1 → .2.gz, the live log → .1, all inside olddir
    os.rename(old / "access.log.1", old / "access.log.2")
    with (old / "access.log.2").open("rb") as src, gzip.open(old / "access.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    (old / "access.log.2").unlink()
    write(45, 3)
    os.rename(live, old / "access.log.1")
    write(48, 4)
    for _ in range(2):
        _run_with_olddir(store, str(logs / "access.log*"), olddir)
    got = Counter(str(r["path"]) for r in store_rows(store))
    assert got == Counter(f"/l{n}" for n in range(52))


def test_olddir_per_vhost_keeps_the_domain_of_the_log_directory(tmp_path: Path) -> None:
    """Plesk/cPanel layout with a relative olddir: a moved file keeps its site's domain and stream."""
    template = str(tmp_path / "vhosts" / "{domain}" / "logs" / "access_log*")
    for k, site in enumerate(["a.example", "b.example"]):
        logs = tmp_path / "vhosts" / site / "logs"
        (logs / "old").mkdir(parents=True)
        (logs / "access_log").write_text("".join(line(100 * k + i) for i in range(10)))
    store = tmp_path / "store"
    _run_with_olddir(store, "", "old", domain_from_path=template)
    for k, site in enumerate(["a.example", "b.example"]):
        logs = tmp_path / "vhosts" / site / "logs"
        with (logs / "access_log").open("a") as f:
            f.write("".join(line(100 * k + i) for i in range(10, 15)))
        os.rename(logs / "access_log", logs / "old" / "access_log.1")
    report = _run_with_olddir(store, "", "old", domain_from_path=template)
    assert sorted(s.rows for s in report.sources) == [5, 5]
    got = Counter((str(r["domain"]), str(r["path"])) for r in store_rows(store))
    expected = [("a.example", f"/l{i}") for i in range(15)] + [
        ("b.example", f"/l{100 + i}") for i in range(15)
    ]
    assert got == Counter(expected)


def _compress(codec: str, data: bytes) -> bytes:
    if codec == "gz":
        return gzip.compress(data)
    if codec == "xz":
        return lzma.compress(data)
    if codec == "bz2":
        return bz2.compress(data, compresslevel=1)  # 100 kB blocks: a cut leaves whole ones before it
    return bytes(pa.compress(data, codec="zstd", asbytes=True))


@pytest.mark.parametrize("codec", ["gz", "xz", "zst", "bz2"])
def test_a_compressed_file_still_being_written_waits_and_is_read_whole_later(
    tmp_path: Path, codec: str
) -> None:
    """logrotate compresses a rotated log into its final name: a run in between sees a compressed
    file that ends early. Its complete blocks are committed, the run does not fail (the file was
    just written), and once whole the file is read on: every line exactly once."""
    n = 4000
    data = b"".join(
        f'198.51.100.{i % 200} - - [01/Nov/2026:10:00:00 +0000] "GET /p{i} HTTP/1.1" 200 {i} "-" "ua"\n'.encode()
        for i in range(n)
    )
    whole = _compress(codec, data)
    path = tmp_path / f"access.log.2.{codec}"
    path.write_bytes(whole[: len(whole) * 7 // 10])
    store = tmp_path / "store"
    small = {"block_bytes": 32768, "max_line_bytes": 4096}
    report = ingest_paths(store, [path], fmt="combined", final=None, **small)
    (src,) = report.sources
    assert src.error is None and not report.failed and "the compressed file ends early" in (src.note or "")
    seen = Counter(str(r["path"]) for r in store_rows(store))
    assert 0 < src.rows == sum(seen.values()) < n  # the complete blocks before the cut
    assert seen == Counter(f"/p{i}" for i in range(src.rows))  # a prefix, once each
    path.write_bytes(whole)  # compression finished
    report = ingest_paths(store, [path], fmt="combined", final=None, **small)
    assert report.sources[0].error is None and report.sources[0].rows == n - src.rows
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/p{i}" for i in range(n))


def test_a_compressed_file_cut_short_long_ago_fails_its_source(tmp_path: Path) -> None:
    """Written before ``ingest.partial_line_grace``: nobody is finishing it; the run says so (exit 10),
    with what it committed before the cut."""
    data = b"".join(
        f'198.51.100.1 - - [01/Nov/2026:10:00:00 +0000] "GET /p{i} HTTP/1.1" 200 {i}\n'.encode()
        for i in range(3000)
    )
    path = tmp_path / "access.log.3.gz"
    whole = gzip.compress(data)
    path.write_bytes(whole[: len(whole) // 2])
    os.utime(path, (0, os.stat(path).st_mtime - 3600))
    report = ingest_paths(tmp_path / "store", [path], fmt="common", final=None, block_bytes=32768)
    (src,) = report.sources
    assert report.failed and "ends early (cut short" in (src.error or "") and src.rows > 0
    assert len(store_rows(tmp_path / "store")) == src.rows
    tiny = tmp_path / "access.log.4.gz"  # cut within its first bytes: nothing committed, same report
    tiny.write_bytes(whole[:40])
    os.utime(tiny, (0, os.stat(tiny).st_mtime - 3600))
    (src,) = ingest_paths(tmp_path / "store2", [tiny], fmt="common", final=None).sources
    assert "ends early" in (src.error or "") and src.rows == 0


def _lines(n: int, start: int = 0) -> bytes:
    return b"".join(
        f'198.51.100.{i % 200} - - [01/Nov/2026:10:00:00 +0000] "GET /p{i} HTTP/1.1" 200 {i}\n'.encode()
        for i in range(start, start + n)
    )


@pytest.mark.parametrize("kind", ["gzip-members", "bz2-streams", "rotated-still-written"])
def test_a_file_still_being_written_keeps_its_partial_last_line_whatever_its_name(
    tmp_path: Path, kind: str
) -> None:
    """A rotated or compressed name is no sign that nobody writes the file: Apache appends to
    access.log.1 until logrotate's reload, copytruncate's copy and pbzip2/pigz-style compressors
    write progressively, and a gzip/bz2 file ends cleanly after each member. Written within
    ``partial_line_grace``, its last line without a newline waits; once complete it is one row."""
    data = _lines(3000)
    cut = len(data) // 2 + 17  # inside a line
    name = {"gzip-members": "access.log.2.gz", "bz2-streams": "access.log.2.bz2"}.get(kind, "access.log.1")
    path = tmp_path / name

    def content(upto: int) -> bytes:
        if kind == "gzip-members":  # members of the whole file so far: it ends cleanly at each
            return gzip.compress(data[:cut]) + (gzip.compress(data[cut:upto]) if upto > cut else b"")
        if kind == "bz2-streams":
            return bz2.compress(data[:cut]) + (bz2.compress(data[cut:upto]) if upto > cut else b"")
        return data[:upto]

    store = tmp_path / "store"
    path.write_bytes(content(cut))
    first = ingest_paths(store, [path], fmt="common", final=None)
    assert not first.failed and not first.rejects and first.rows == data[:cut].count(b"\n")
    path.write_bytes(content(len(data)))  # the writer finished
    second = ingest_paths(store, [path], fmt="common", final=None)
    assert not second.failed and not second.rejects, second
    assert Counter(str(r["path"]) for r in store_rows(store)) == Counter(f"/p{i}" for i in range(3000))


def test_an_old_rotated_file_without_final_newline_is_read_to_its_end(tmp_path: Path) -> None:
    """Untouched for ``partial_line_grace``: nobody will finish its last line; it is a row now."""
    path = tmp_path / "access.log.1"
    path.write_bytes(_lines(10)[:-1])  # no newline after the last line
    os.utime(path, (0, os.stat(path).st_mtime - 3600))
    report = ingest_paths(tmp_path / "store", [path], fmt="common", final=None)
    assert report.rows == 10 and not report.rejects


@pytest.mark.parametrize(("codec", "kept"), [("gz", 1), ("bz2", 2), ("zst", 3), ("xz", 5)])
def test_a_compressed_file_cut_inside_its_magic_number_is_not_read_as_text(
    tmp_path: Path, codec: str, kept: int
) -> None:
    """The first bytes a compressor writes are its magic number: fewer than all of them, under a
    compressed name, are a compressed file still being written, not a log line of binary junk."""
    whole = _compress(codec, _lines(50))
    path = tmp_path / f"access.log.2.{codec}"
    path.write_bytes(whole[:kept])
    store = tmp_path / "store"
    first = ingest_paths(store, [path], fmt="common", final=None)
    assert not first.failed and first.lines == 0 and "ends early" in (first.sources[0].note or "")
    path.write_bytes(whole)
    second = ingest_paths(store, [path], fmt="common", final=None)
    assert second.rows == 50 and not second.rejects and not store_rejects(store)


@pytest.mark.parametrize("rewritten", [3000, 10], ids=["past-the-offset", "short"])
def test_copytruncate_while_a_run_reads_the_file_reads_each_line_once(tmp_path: Path, rewritten: int) -> None:
    """Found by review: the run read on at its offset into the new content the server wrote after
    the truncate, and kept it as the rest of the old stream: the next run read the copy again from
    its start, and the new file too (every line of that run doubled, one line made of two)."""
    logs = _Logs(tmp_path / "logs", tmp_path / "store")
    logs.folder.mkdir()
    logs.do(("write", "access.log", 2000))
    done: list[int] = []

    def copytruncate(n: int, total: int) -> None:
        if n and not done:  # after the first batch is committed, the rest of the file still unread
            done.append(n)
            logs.do(("copytruncate", "access.log", "access.log.1"))
            logs.do(("write", "access.log", rewritten))

    cfg = make_config(logs.store, partial_line_grace=3600, block_bytes=4096, workers=1)
    spec = config.SourceConfig(path=str(logs.folder / "access.log"), domain="example.test")
    report = ingest.run(cfg, [spec], progress=copytruncate)
    assert done and not report.failed, report
    assert "truncated or rewritten while read" in str(report.sources[0].note), report
    logs.run([])  # the next cron run: the copy read on from where the first stopped, the new file whole
    got = Counter(str(r["path"]) for r in store_rows(logs.store))
    assert got == Counter(f"/l{n}" for n in range(logs.written))
    assert not store_rejects(logs.store)


def _read_in_two_runs(tmp_path: Path, first: int, then: int) -> tuple[_Logs, Path]:
    """access.log written with ``first`` lines and ingested, then ``then`` more and ingested again."""
    logs = _Logs(tmp_path / "logs", tmp_path / "store")
    logs.folder.mkdir()
    for n in (first, then):
        logs.do(("write", "access.log", n))
        logs.run([])
    return logs, logs.folder / "access.log"


def test_a_shorter_file_with_the_same_first_lines_is_never_skipped_without_a_word(tmp_path: Path) -> None:
    """Found by review: a log replaced by a shorter one that begins with the same lines was taken
    for a stale copy of its stream and never read, exit 0. What a copy has past the last batch end
    it covers is now checked against the stream's file; the stream's own file cannot be a copy of
    itself: it was rewritten, and is read as a new stream (lines twice rather than lines lost)."""
    logs, live = _read_in_two_runs(tmp_path, 15, 2985)
    logs.written = 3100
    first = "".join(live.read_text().splitlines(keepends=True)[:15])
    live.write_text(first + "".join(line(n) for n in range(3000, 3100)))  # same beginning, other lines
    cfg = make_config(logs.store, partial_line_grace=3600)
    spec = config.SourceConfig(path=str(live), domain="example.test")
    report = ingest.run(cfg, [spec])  # its own stream's file, shorter, the rest unchecked: rewritten
    assert not report.failed and "REWRITTEN" in str(report.sources[0].note), report
    got = Counter(str(r["path"]) for r in store_rows(logs.store))
    assert all(got[f"/l{n}"] >= 1 for n in range(3100))  # nothing lost (the 15 shared lines twice, said so)


def test_a_stale_copy_cut_between_two_batches_is_checked_against_the_live_file(tmp_path: Path) -> None:
    logs, live = _read_in_two_runs(tmp_path, 20, 10)  # batches end at lines 20 and 30
    bak = logs.folder / "access.log.bak"  # an operator's copy taken at line 25, seen afterwards
    bak.write_text("".join(live.read_text().splitlines(keepends=True)[:25]))
    logs.run([])
    got = Counter(str(r["path"]) for r in store_rows(logs.store))
    assert got == Counter(f"/l{n}" for n in range(logs.written))


def test_a_copy_cut_while_a_run_read_the_live_file_is_no_failure(tmp_path: Path) -> None:
    """copytruncate while a run reads: the run read lines past the copy's end, then the live file
    was truncated. The copy's last lines cannot be checked against anything: a note, not a failure
    every five minutes (found by review of the first fix), and no line read twice."""
    logs = _Logs(tmp_path / "logs", tmp_path / "store")
    logs.folder.mkdir()
    live = logs.folder / "access.log"
    logs.do(("write", "access.log", 20))
    logs.run([])
    logs.do(("write", "access.log", 10))
    copy = "".join(live.read_text().splitlines(keepends=True)[:25])  # the copy ends at line 25 …
    logs.run([])  # … the run read to line 30 …
    (logs.folder / "access.log.1").write_text(copy)
    live.write_text("")  # … then the truncate
    logs.do(("write", "access.log", 5))
    cfg = make_config(logs.store, partial_line_grace=3600)
    spec = config.SourceConfig(path=str(logs.folder / "access.log*"), domain="example.test")
    report = ingest.run(cfg, [spec])
    assert not report.failed and any("unchecked" in str(s.note) for s in report.sources), report
    got = Counter(str(r["path"]) for r in store_rows(logs.store))
    assert got == Counter(f"/l{n}" for n in range(logs.written))


def test_a_replaced_log_read_through_a_linked_folder_is_read_as_rewritten(tmp_path: Path) -> None:
    """Found by review: the stream's own file, reached by another spelling (a link to its folder),
    was taken for a stale copy with only a note: its new lines were never read."""
    logs = _Logs(tmp_path / "real", tmp_path / "store")
    logs.folder.mkdir()
    (tmp_path / "link").symlink_to(logs.folder)
    live = logs.folder / "access.log"
    logs.do(("write", "access.log", 15))
    logs.run([])
    logs.do(("write", "access.log", 2985))
    logs.run([])
    first = "".join(live.read_text().splitlines(keepends=True)[:15])
    live.write_text(first + "".join(line(n) for n in range(3000, 3100)))
    cfg = make_config(logs.store, partial_line_grace=3600)
    spec = config.SourceConfig(path=str(tmp_path / "link" / "access.log"), domain="example.test")
    report = ingest.run(cfg, [spec])
    assert not report.failed and "REWRITTEN" in str(report.sources[0].note), report
    got = Counter(str(r["path"]) for r in store_rows(logs.store))
    assert all(got[f"/l{n}"] >= 1 for n in range(3100))


def test_a_file_ingested_under_another_name_of_it_is_read_once(tmp_path: Path) -> None:
    """Found by review: the same file through a hard link in another folder (or a bind mount, a
    changed config path) was a new stream in each run, every line stored again. It is the stream its
    other name was read as: read on from where it stopped, whichever name a run uses."""
    line = 'www.example.com:443 198.51.100.9 - - [10/Oct/2026:10:{m:02d}:{s:02d} +0000] "GET /p{n} HTTP/1.1" 200 5 "-" "ua"\n'
    first, second = tmp_path / "a" / "access.log", tmp_path / "b" / "access.log"
    first.parent.mkdir()
    second.parent.mkdir()
    first.write_text("".join(line.format(m=0, s=n % 60, n=n) for n in range(300)))
    os.link(first, second)
    store = tmp_path / "store"
    ingest_paths(store, [first], fmt="vhost_combined", domain=None)
    report = ingest_paths(store, [second], fmt="vhost_combined", domain=None)
    assert report.rows == 0 and "the same file as" in (report.sources[0].note or "")
    with first.open("a") as f:
        f.write("".join(line.format(m=1, s=n % 60, n=n) for n in range(300, 350)))
    ingest_paths(store, [second], fmt="vhost_combined", domain=None)
    ingest_paths(store, [first], fmt="vhost_combined", domain=None)
    paths = Counter(str(r["path"]) for r in store_rows(store))
    assert paths == Counter(f"/p{n}" for n in range(350))
