"""Ingest behaviour on real files: partitions, idempotence, rotation basics, limits, recovery."""

from __future__ import annotations

import gzip
import json
import os
import shutil
import time
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline import config
from pipeline.errors import ConfigError, LockedError, SourceError
from pipeline.ingest import batch
from pipeline.ingest import run as ingest
from pipeline.privacy.mask import ClientMasker
from pipeline.store.commit import Store
from tests.conftest import ROOT, ingest_paths, make_config, store_rejects, store_rows

LINE = '{ip} - - [{ts}] "GET /p{n}?q={n} HTTP/1.1" 200 {n} "-" "agent/{n}"\n'


def lines(n: int, start: int = 0, ts: str = "10/Oct/2026:13:55:36 +0000") -> str:
    return "".join(LINE.format(ip=f"198.51.100.{i % 250 + 1}", ts=ts, n=i) for i in range(start, start + n))


def paths_in(store: Path) -> Counter[str]:
    return Counter(f"{r['path']}" for r in store_rows(store))


def test_partition_by_utc_event_date_across_midnight(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(
        '203.0.113.9 - - [31/Oct/2026:23:30:00 -0700] "GET /late HTTP/1.1" 200 1 "-" "ua"\n'
        '203.0.113.9 - - [01/Nov/2026:01:15:00 +0330] "GET /early HTTP/1.1" 200 1 "-" "ua"\n'
        '203.0.113.9 - - [31/Oct/2026:23:59:59 +0000] "GET /edge HTTP/1.1" 200 1 "-" "ua"\n'
    )
    ingest_paths(store, [log])
    days = {
        p.parent.name: [r["path"] for r in pq.read_table(p).to_pylist()] for p in store.glob("pageviews/*/*")
    }
    assert days == {"date=2026-11-01": ["/late"], "date=2026-10-31": ["/early", "/edge"]}


def test_files_sorted_by_domain_then_time_zstd(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "other_vhosts_access.log"
    log.write_text(
        'b.example:443 192.0.2.1 - - [10/Oct/2026:10:00:02 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n'
        'a.example:80 192.0.2.1 - - [10/Oct/2026:10:00:03 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n'
        'B.EXAMPLE 192.0.2.1 - - [10/Oct/2026:10:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "ua"\n'
    )
    ingest_paths(store, [log], fmt="vhost_combined", domain=None)
    (f,) = store.glob("pageviews/date=2026-10-10/*.parquet")
    rows = pq.read_table(f).to_pylist()
    assert [(r["domain"], r["ts"].second) for r in rows] == [
        ("a.example", 3),
        ("b.example", 1),
        ("b.example", 2),
    ]
    meta = pq.ParquetFile(f).metadata
    assert meta.row_group(0).column(0).compression == "ZSTD"
    assert meta.schema.to_arrow_schema().field("status").type == "int16"
    assert pq.read_schema(f).field("domain").type == "string"  # the Parquet type, not polars' layout
    # min/max statistics where they can prune (time, domain, ...), none on free text
    stats = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).statistics for i in range(17)
    }
    assert (
        stats["ts"].has_min_max and stats["domain"].min == "a.example" and stats["domain"].max == "b.example"
    )
    assert all(
        stats[c] is None for c in ("path", "query", "referrer", "user_agent", "client_net", "client_id")
    )
    # every column with a value is zstd; a column without any (GeoIP off, no request ids) is only its
    # definition levels and is stored as they are
    codecs = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).compression
        for i in range(meta.num_columns)
    }
    empty = {c for c in codecs if all(r[c] is None for r in pq.read_table(f).to_pylist())}
    assert {"query", "referrer", "country", "asn", "tls", "edge_location"} <= empty  # ('-' is none)
    assert {c for c, codec in codecs.items() if codec != "ZSTD"} == empty
    assert set(codecs.values()) == {"ZSTD", "UNCOMPRESSED"}


def test_a_dates_file_holds_only_its_own_domains_in_the_dictionary(tmp_path: Path, store: Path) -> None:
    """Domain, server and user agent reach the writer as dictionaries; one batch spanning two UTC dates
    must not leave the other date's values in a file's dictionary page (they would outlive that date's
    purge)."""
    log = tmp_path / "other_vhosts_access.log"
    log.write_text(
        'late.example:80 192.0.2.1 - - [10/Oct/2026:23:59:59 +0000] "GET / HTTP/1.1" 200 5 "-" "late/1"\n'
        'both.example:80 192.0.2.1 - - [10/Oct/2026:23:59:59 +0000] "GET / HTTP/1.1" 200 5 "-" "both/1"\n'
        'both.example:80 192.0.2.1 - - [11/Oct/2026:00:00:01 +0000] "GET / HTTP/1.1" 200 5 "-" "both/1"\n'
        'next.example:80 192.0.2.1 - - [11/Oct/2026:00:00:02 +0000] "GET / HTTP/1.1" 200 5 "-" "-"\n'
        'next.example:80 192.0.2.1 - - [11/Oct/2026:00:00:03 +0000] "GET / HTTP/1.1" 200 5 "-" "next/1"\n'
    )
    report = ingest_paths(store, [log], fmt="vhost_combined", domain=None)
    assert report.sources[0].batches == 1
    dictionaries = {}
    for f in store.glob("pageviews/*/*.parquet"):
        table = pq.read_table(f, read_dictionary=["domain", "server", "user_agent"])
        dictionaries[f.parent.name] = {
            c: sorted(table.column(c).chunk(0).dictionary.to_pylist())
            for c in ("domain", "server", "user_agent")
        }
        meta = pq.ParquetFile(f).metadata.row_group(0)
        domain_stats = next(
            meta.column(i).statistics for i in range(17) if meta.column(i).path_in_schema == "domain"
        )
        assert (domain_stats.min, domain_stats.max) == (
            min(table["domain"].to_pylist()),
            max(table["domain"].to_pylist()),
        )
    server = make_config(store).server
    assert dictionaries == {
        "date=2026-10-10": {
            "domain": ["both.example", "late.example"], "server": [server], "user_agent": ["both/1", "late/1"]
        },
        "date=2026-10-11": {
            "domain": ["both.example", "next.example"], "server": [server], "user_agent": ["both/1", "next/1"]
        },
    }  # fmt: skip
    assert [r["user_agent"] for r in store_rows(store)].count(None) == 1  # "-": no user agent


def test_rerun_reads_only_new_lines(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(100))
    first = ingest_paths(store, [log])
    again = ingest_paths(store, [log])
    with log.open("a") as f:
        f.write(lines(50, start=100))
    third = ingest_paths(store, [log])
    assert (first.rows, again.rows, third.rows) == (100, 0, 50)
    assert paths_in(store) == Counter(f"/p{i}" for i in range(150))


def test_partial_last_line_waits_until_complete(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    full = lines(3)
    log.write_text(full[:-20])  # last line cut mid-way, as if the server were writing it
    r1 = ingest_paths(store, [log], final=False, partial_line_grace=3600)
    log.write_text(full)
    r2 = ingest_paths(store, [log], final=False, partial_line_grace=3600)
    assert (r1.rows, r2.rows, sum(r1.rejects.values()) + sum(r2.rejects.values())) == (2, 1, 0)
    assert paths_in(store) == Counter({"/p0": 1, "/p1": 1, "/p2": 1})


def test_rotation_rename_then_gzip_is_the_same_stream(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(40))
    ingest_paths(store, [str(tmp_path / "access.log*")], final=None)
    with log.open("a") as f:
        f.write(lines(10, start=40))  # written after the run, before rotation
    os.rename(log, tmp_path / "access.log.1")
    log.write_text(lines(5, start=50))  # new live file
    ingest_paths(store, [str(tmp_path / "access.log*")], final=None)
    with open(tmp_path / "access.log.1", "rb") as src, gzip.open(tmp_path / "access.log.2.gz", "wb") as dst:
        shutil.copyfileobj(src, dst)
    os.unlink(tmp_path / "access.log.1")
    ingest_paths(store, [str(tmp_path / "access.log*")], final=None)
    assert paths_in(store) == Counter(f"/p{i}" for i in range(55))


def test_oversized_line_is_rejected_without_loading_it_whole(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    huge = '203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET /' + "A" * (3 << 20) + ' HTTP/1.1" 200 1\n'
    log.write_text(lines(2) + huge + lines(2, start=2))
    report = ingest_paths(store, [log], block_bytes=1 << 20, max_line_bytes=64 << 10)
    assert (report.rows, report.rejects) == (4, {"too_long": 1})
    (reject,) = store_rejects(store)
    # the first 2048 raw bytes are kept, then scrubbed (a masked address is a few bytes longer), and
    # the run of address characters the cut ends in goes (up to 200: it may be half an address)
    assert reject["offset"] == len(lines(2)) and 2048 - 200 <= len(str(reject["line"])) < 2100
    assert str(reject["line"]).startswith("203.0.113.0/24 - - [10/Oct/2026")


@pytest.mark.parametrize(
    "tail",
    [
        "2001%3Adb8%3Aabcd%3A1234%3A5678%3A9abc%3Adef0%3A1",
        "app-c633643c.nip.io",
        "2001&#58;db8&#58;abcd&#58;1234&#58;5",
    ],
)
@pytest.mark.parametrize("shift", range(0, 40, 3))
def test_a_quarantined_line_cut_inside_an_address_keeps_no_part_of_it(
    tmp_path: Path, store: Path, tail: str, shift: int
) -> None:
    """Found by review: the cut kept 2001%3Adb8%3Aabcd%3A1234 (a /64) or app-c633643c (an IPv4 in
    hex before .nip.io): half an address that no longer parses, finer than the mask."""
    log = tmp_path / "access.log"
    garbage = "GARBAGE " + "y" * (2048 - 8 - 20 + shift) + tail + " tail\n"
    log.write_text(lines(1) + garbage)
    ingest_paths(store, [log])
    (reject,) = store_rejects(store)
    kept = str(reject["line"])
    for part in ("abcd%3A1234", "c633643c", "abcd&#58;1234"):
        assert part not in kept, kept[-60:]


def test_crashed_batch_is_discarded_and_redone(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(20))
    ingest_paths(store, [log])
    # Leave what a run killed between data and commit would leave: an intent, a data file, a temp file.
    st = Store(store)
    orphan = store / "pageviews/date=2026-10-10/part-deadbeefdeadbeef.parquet"
    shutil.copy(next(store.glob("pageviews/date=2026-10-10/*.parquet")), orphan)
    (orphan.parent / ".part-x.parquet~files~1234abcd.tmp").write_bytes(b"half a file")
    st.begin(st.load_progress().seq + 1, [str(orphan.relative_to(store))])
    assert orphan not in st.committed_parquet()  # readers already skip it
    with log.open("a") as f:
        f.write(lines(5, start=20))
    ingest_paths(store, [log])
    assert not orphan.exists() and not list(store.rglob("*.tmp"))
    assert paths_in(store) == Counter(f"/p{i}" for i in range(25))


def test_recovery_removes_only_its_own_writers_temporaries(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(20))
    ingest_paths(store, [log])
    day = store / "pageviews/date=2026-10-10"
    mine = day / ".part-x.parquet~maintenance~0000aaaa.tmp"  # a crashed maintenance run's leftover
    theirs = day / ".part-y.parquet~files~0000bbbb.tmp"  # an ingest writing at this very moment
    for tmp in (mine, theirs):
        tmp.write_bytes(b"half a file")
    maintenance = Store(store, writer="maintenance")
    with maintenance.lock():
        maintenance.recover(peers=False)
    assert not mine.exists() and theirs.read_bytes() == b"half a file"


def test_a_batch_beginning_while_files_are_listed_stays_hidden(
    tmp_path: Path, store: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers list files, then read the intent records: a batch that begins in between stays hidden."""
    log = tmp_path / "access.log"
    log.write_text(lines(10))
    ingest_paths(store, [log])
    st = Store(store)
    (old,) = st.committed_parquet()
    late = "pageviews/date=2026-10-10/part-late.parquet"
    original = Store.hidden

    def begin_a_batch_meanwhile(self: Store) -> set[str]:
        hidden = original(self)
        if not (store / late).exists():  # right after the records were read, an ingest begins a batch
            st.begin(st.load_progress().seq + 1, [late])
            shutil.copy(old, store / late)
        return hidden

    monkeypatch.setattr(Store, "hidden", begin_a_batch_meanwhile)
    assert st.committed_parquet() == [old]  # not listed yet: not shown
    assert st.committed_parquet() == [old]  # listed, and its intent record hides it


def test_manifest_is_the_commit_record(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(10) + "garbage\n")
    ingest_paths(store, [log])
    manifest = json.loads((store / "_manifests/files/000000000001.json").read_text())
    assert manifest["source"]["start"] == 0 and manifest["source"]["end"] == log.stat().st_size
    import hashlib
    import hmac

    # chain of custody: keyed (HMAC with the custody key of the batch's period), never a bare SHA-256
    assert "sha256" not in manifest["source"] and manifest["source"]["custody_period"] == "2026-10"
    key = (Path(f"{store}-keys") / "custody" / "2026-10.key").read_bytes()
    sha = hashlib.sha256(log.read_bytes()).digest()
    assert manifest["source"]["digest"] == hmac.new(key, sha, "sha256").hexdigest()
    assert (manifest["lines"], manifest["rows"], manifest["rejects"]) == (11, 10, {"unparseable": 1})
    assert sum(f["rows"] for f in manifest["files"]) == 11
    # a crash after the manifest but before progress.json: recovery applies it
    (store / "_state/files/progress.json").unlink()
    assert ingest_paths(store, [log]).rows == 0


def test_second_writer_is_refused_while_the_lock_is_held(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(3))
    st = Store(store)
    with st.lock(), pytest.raises(LockedError, match="another hostlogs ingest is running"):
        ingest_paths(store, [log])
    assert ingest_paths(store, [log]).rows == 3


def test_unreadable_file_is_reported_and_others_ingested(tmp_path: Path, store: Path) -> None:
    good = tmp_path / "good.log"
    good.write_text(lines(3))
    bad = tmp_path / "missing.log"
    report = ingest_paths(store, [bad, good])
    assert report.rows == 3 and len(report.failed) == 1 and "missing.log" in str(report.failed[0].error)


def test_no_sources_is_an_error(store: Path) -> None:
    with pytest.raises(SourceError):
        ingest.run(make_config(store), [])


def test_domain_from_path_template(tmp_path: Path, store: Path) -> None:
    site = tmp_path / "vhosts" / "Shop.Example.com" / "logs"
    site.mkdir(parents=True)
    (site / "access_log").write_text(lines(2))
    template = str(tmp_path / "vhosts/{domain}/logs/access_log*")
    cfg = make_config(store)
    spec = config.SourceConfig(path=str(site / "access_log"), domain_from_path=template)
    ingest.run(cfg, [spec], final=True)
    assert {r["domain"] for r in store_rows(store)} == {"shop.example.com"}


@pytest.mark.parametrize("name", ["access_log[0-9]", "access_log[!a-z]", "access_log?", "access_lo[gh]*"])
def test_a_domain_template_reads_the_domain_of_every_file_its_glob_matches(
    tmp_path: Path, store: Path, name: str
) -> None:
    # Found by review: '[0-9]' in a template matched files by glob but not by the domain pattern,
    # so their rows were stored without a domain.
    site = tmp_path / "vhosts" / "shop.example.com" / "logs"
    site.mkdir(parents=True)
    (site / "access_log1").write_text(lines(2))
    spec = config.SourceConfig(path="", domain_from_path=str(tmp_path / "vhosts/{domain}/logs" / name))
    report = ingest.run(make_config(store), [spec], final=True)
    assert report.rows == 2 and {r["domain"] for r in store_rows(store)} == {"shop.example.com"}


def test_sample_config_ingests_the_bundled_samples(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "sample_logs", tmp_path / "sample_logs")
    cfg = config.load(ROOT / "configs" / "sample.toml").with_overrides(store=str(tmp_path / "store"))
    os.chdir(tmp_path)
    report = ingest.run(cfg, final=True)
    assert report.lines == 4608 and report.rows == 4602 and not report.failed
    assert report.rejects == {"bad_timestamp": 2, "binary": 2, "unparseable": 2}
    formats = {str(Path(s.path).relative_to("sample_logs")): s.format for s in report.sources}
    assert formats == {
        "other_vhosts_access.log": "vhost_combined",
        "www.example.com/access_log": "combined",
        "www.example.com/access_log.1.gz": "combined",
        "legacy.example.org/access_log": "common",
        "lb/api.example.net.json.log": "nginx_json",
    }
    rows = store_rows(tmp_path / "store")
    domains = Counter(r["domain"] for r in rows)
    assert domains["legacy.example.org"] == 300 and domains[None] == 0 and domains["www.example.com"] >= 1401
    # behind the trusted balancers the client is the right-most X-Forwarded-For entry, never the
    # forged one some lines carry in front of it; the balancer is the peer
    masker = ClientMasker()
    lines = Path("sample_logs/lb/api.example.net.json.log").read_text().splitlines()
    chains = [json.loads(ln)["http_x_forwarded_for"] for ln in lines]
    assert sum("192.0.2.66, " in c for c in chains) == 58
    expected = Counter(masker.network(c.split(", ")[-1]) for c in chains)
    api = [r for r in rows if r["domain"] == "api.example.net"]
    assert Counter(r["client_net"] for r in api) == expected and len(expected) > 5
    assert {r["peer_net"] for r in api} == {"203.0.113.0/24"}


def test_swap_flips_readers_from_old_to_new_files_atomically(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(10))
    ingest_paths(store, [log])
    st = Store(store, writer="maintenance")
    (old,) = st.committed_parquet()
    new_rel = "pageviews/date=2026-10-10/part-rewritten.parquet"
    progress = st.recover()
    # Crash after writing the new file but before the commit: readers keep the old file.
    st.begin(progress.seq + 1, [new_rel], [str(old.relative_to(store))])
    shutil.copy(old, store / new_rel)
    assert st.committed_parquet() == [old]
    st.recover()  # discards the uncommitted new file
    assert st.committed_parquet() == [old] and not (store / new_rel).exists()
    # A committed swap: readers see only the new file; the old one is gone.
    progress = st.recover()
    st.swap(progress, [str(old.relative_to(store))], {new_rel: old.read_bytes()}, {"kind": "rewrite"})
    assert st.committed_parquet() == [store / new_rel] and not old.exists()
    assert json.loads((store / "_manifests/maintenance/000000000001.json").read_text())["retired"] == [
        str(old.relative_to(store))
    ]


def test_short_file_is_rekeyed_when_it_grows(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(3))  # < 1 KiB: fingerprinted over its complete lines
    first = ingest_paths(store, [log], final=False, partial_line_grace=3600)
    with log.open("a") as f:
        f.write(lines(40, start=3))
    second = ingest_paths(store, [log], final=False, partial_line_grace=3600)
    assert (first.rows, second.rows) == (3, 40)
    assert first.sources[0].fingerprint != second.sources[0].fingerprint  # re-keyed on 1 KiB now
    progress = Store(store).load_progress()
    assert list(progress.streams) == [second.sources[0].fingerprint]  # the short key was replaced
    assert paths_in(store) == Counter(f"/p{i}" for i in range(43))


def test_lost_progress_is_rebuilt_from_surviving_manifests(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(3000))
    ingest_paths(store, [log], block_bytes=64 << 10, max_line_bytes=4096)
    manifests = sorted((store / "_manifests/files").glob("*.json"))
    assert len(manifests) > 3
    for old in manifests[:2]:  # as the purge of old manifests leaves it
        old.unlink()
    (store / "_state/files/progress.json").unlink()
    with log.open("a") as f:
        f.write(lines(10, start=3000))
    report = ingest_paths(store, [log], block_bytes=64 << 10, max_line_bytes=4096)
    assert report.rows == 10  # nothing read twice
    assert paths_in(store) == Counter(f"/p{i}" for i in range(3010))
    newest = max(int(p.stem) for p in (store / "_manifests/files").glob("*.json"))
    assert newest == len(manifests) + 1  # the sequence went on; no manifest was overwritten


# 40,000 days apart x 1,500 domains do not fit the packed int64 key: the general sort path
@pytest.mark.parametrize(("day_span", "n_domains", "packed"), [(3, 3, True), (40_000, 1_500, False)])
def test_partition_sorts_each_date_by_domain_then_time(day_span: int, n_domains: int, packed: bool) -> None:
    """Every part is ordered by (domain, ts), null domains last, whichever sort path is taken."""
    import random
    from datetime import UTC, datetime, timedelta

    import polars as pl

    rnd = random.Random(7)
    base = datetime(1969, 12, 30, tzinfo=UTC)  # across the epoch: negative timestamps
    n = 2_000
    rows = pl.DataFrame(
        {
            "ts": [
                base
                + timedelta(days=rnd.choice([0, 1, day_span]), microseconds=rnd.randrange(86_400 * 10**6))
                for _ in range(n)
            ],
            "domain": [rnd.choice([*(f"d{k}.example" for k in range(n_domains)), None]) for _ in range(n)],
            "n": range(n),
        }
    ).with_columns(pl.col("ts").dt.cast_time_unit("us"))
    key = batch._sort_key(rows.with_columns(_date=pl.col("ts").dt.date()))
    assert (key is not None) == packed
    parts = batch._partition(rows)
    assert list(parts) == sorted(parts) and len(parts) == 3
    for day, part in parts.items():
        assert part.columns == rows.columns
        assert {t.date().isoformat() for t in part.get_column("ts")} == {day}
        expected = part.sort(["domain", "ts"], nulls_last=True)
        assert part.select("domain", "ts").rows() == expected.select("domain", "ts").rows()
    assert sum(p.height for p in parts.values()) == n


def _monitor_then(paths: range) -> str:
    """Log content that starts with the same >1 KiB of lines every time (an uptime monitor), then ``paths``."""
    head = "".join(
        LINE.format(ip="192.0.2.9", ts="10/Oct/2026:13:00:00 +0000", n=9000 + i) for i in range(15)
    )
    return head + "".join(LINE.format(ip="198.51.100.4", ts="10/Oct/2026:13:55:36 +0000", n=i) for i in paths)


def test_a_file_rewritten_with_the_same_first_kib_is_read_again_and_reported(
    tmp_path: Path, store: Path
) -> None:
    log = tmp_path / "access.log"
    log.write_text(_monitor_then(range(300)))
    assert len(log.read_bytes()[:1024].splitlines()) < 15  # the first KiB is monitor lines only
    ingest_paths(store, [log])
    log.write_text(_monitor_then(range(1000, 1505)))  # same first KiB, other (and more) content after
    report = ingest_paths(store, [log])
    assert report.sources[0].note and "REWRITTEN" in report.sources[0].note
    assert report.rows == 15 + 505  # read as a new stream from its start: nothing skipped
    got = paths_in(store)
    assert all(got[f"/p{i}"] == 1 for i in [*range(300), *range(1000, 1505)])
    assert ingest_paths(store, [log]).rows == 0  # and that new stream is then up to date


def test_truncated_and_regrown_with_the_same_first_kib_is_not_skipped(tmp_path: Path, store: Path) -> None:
    log = tmp_path / "access.log"
    log.write_text(_monitor_then(range(200)))
    ingest_paths(store, [log])
    log.write_text(_monitor_then(range(500, 520)))  # copytruncate, then the monitor first again: shorter
    report = ingest_paths(store, [log])
    assert report.rows == 15 + 20 and "REWRITTEN" in (report.sources[0].note or "")
    assert all(paths_in(store)[f"/p{i}"] == 1 for i in range(500, 520))


@pytest.mark.parametrize("copy_first", [False, True])
def test_an_older_copy_of_a_stream_is_not_read_again(tmp_path: Path, store: Path, copy_first: bool) -> None:
    log = tmp_path / "access.log"
    log.write_text(lines(50))
    ingest_paths(store, [log])
    copy = tmp_path / "access.log.bak"
    shutil.copyfile(log, copy)  # a copy of what was read
    with log.open("a") as f:
        f.write(lines(20, start=50))
    # a glob reads oldest first: pin the order (found by CI: equal mtimes on a coarse clock had
    # decided it, and the copy read first is simply at its stream's end, with no note)
    now = time.time()
    os.utime(copy, (now - 60, now - 60) if copy_first else (now + 60, now + 60))
    report = ingest_paths(store, [tmp_path / "access.log*"])
    assert report.rows == 20 and paths_in(store) == Counter(f"/p{i}" for i in range(70))
    assert [s.path.endswith(".bak") for s in report.sources] == [copy_first, not copy_first]
    copy_report = next(s for s in report.sources if s.path.endswith(".bak"))
    assert copy_report.rows == 0
    if not copy_first:  # read after the stream went past it
        assert "older copy" in (copy_report.note or "")


@pytest.mark.parametrize("suffix", [".Z", ".lz", ".zip"])
def test_a_compression_hostlogs_cannot_read_fails_clearly(tmp_path: Path, store: Path, suffix: str) -> None:
    log = tmp_path / f"access.log.1{suffix}"
    log.write_bytes(b"\x1f\x9d\x90" + os.urandom(300))  # not something to parse as log lines
    report = ingest_paths(store, [log])
    assert report.failed and "cannot decompress" in str(report.failed[0].error)
    assert report.lines == 0 and not store_rejects(store)


def test_a_gzip_file_under_a_plain_name_is_decompressed(tmp_path: Path, store: Path) -> None:
    (tmp_path / "access.log.1").write_bytes(gzip.compress(lines(12).encode()))
    report = ingest_paths(store, [tmp_path / "access.log.1"])
    assert report.rows == 12 and not report.rejects


@pytest.mark.parametrize("damage", ["zeros", "truncated", "garbage"])
def test_a_corrupt_compressed_file_is_a_source_error_not_a_crash(
    tmp_path: Path, store: Path, damage: str
) -> None:
    data = gzip.compress(lines(2000).encode())
    half = len(data) // 2
    damaged = {
        "zeros": data[:half] + b"\0" * 64 + data[half:],  # an invalid deflate block
        "truncated": data[:half],  # ends before the end-of-stream marker
        "garbage": data[:20] + bytes(range(256)) * 8 + data[half:],
    }[damage]
    (tmp_path / "access.log.2.gz").write_bytes(damaged)
    # written an hour ago: a file cut short just now may still be being compressed (it waits, see
    # test_rotation.py's test_a_compressed_file_still_being_written_waits_and_is_read_whole_later)
    os.utime(tmp_path / "access.log.2.gz", (0, time.time() - 3600))
    (tmp_path / "other.log").write_text(lines(3))
    report = ingest_paths(store, [tmp_path / "access.log.2.gz", tmp_path / "other.log"])
    assert len(report.failed) == 1 and "cannot read" in str(report.failed[0].error)
    assert report.sources[1].rows == 3


def test_store_write_failure_exits_6_not_10(tmp_path: Path) -> None:
    """A full disk, for real: RLIMIT_FSIZE makes the kernel refuse the store's writes (EFBIG), as ENOSPC
    would; reading the log is not affected. Ingest must say the store failed (6), not the source (10)."""
    import resource
    import subprocess
    import sys

    log = tmp_path / "access.log"
    log.write_text(lines(3000))
    store = tmp_path / "store"

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (20_000, 20_000))

    proc = subprocess.run(
        [sys.executable, "-m", "pipeline.cli", "ingest", str(log), "--store", str(store), "--final"],
        capture_output=True, text=True, preexec_fn=limit, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 6, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "cannot write" in err[0] and "Traceback" not in proc.stderr
    assert ingest_paths(store, [log]).rows == 3000  # nothing was committed half-way


def test_a_store_copied_without_its_keys_is_refused_not_read_twice(tmp_path: Path) -> None:
    # Files are known by keyed fingerprints: a new key would make every file look unread (review).
    log = ROOT / "sample_logs" / "legacy.example.org" / "access_log"
    first = ingest_paths(tmp_path / "a", [log])
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with pytest.raises(ConfigError, match=r"has no stream key: every log would be read again"):
        ingest_paths(tmp_path / "b", [log])
    assert len(store_rows(tmp_path / "b")) == first.rows
    shutil.rmtree(tmp_path / "b-keys")
    shutil.copytree(tmp_path / "a-keys", tmp_path / "b-keys")  # restored with its keys: nothing doubles
    again = ingest_paths(tmp_path / "b", [log])
    assert again.rows == 0 and len(store_rows(tmp_path / "b")) == first.rows


@pytest.mark.parametrize("suffix", ["", ".gz"])
def test_a_file_name_that_is_no_utf8_is_read_once_and_shown_escaped(tmp_path: Path, suffix: str) -> None:
    """A Linux file name is any bytes: it must not stop the run (nor the other files of it)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    odd = os.fsdecode(bytes(logs) + b"/access\xff\xfe.log" + suffix.encode())
    text = '192.0.2.1 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 5 "-" "ua"\nnonsense\n'
    with open(odd, "wb") as f:
        f.write(gzip.compress(text.encode()) if suffix else text.encode())
    (logs / "good.log").write_text(text.replace("/a ", "/b "))
    for _ in range(2):  # read once: the second run finds both files done
        report = ingest_paths(tmp_path / "store", sorted(str(p) for p in logs.iterdir()), max_reject_rate=1.0)
        assert not report.failed
    assert sorted(r["path"] for r in store_rows(tmp_path / "store")) == ["/a", "/b"]
    sources = sorted(r["source"] for r in store_rejects(tmp_path / "store"))
    assert sources == sorted([f"{logs}/access\\xff\\xfe.log{suffix}", f"{logs}/good.log"])


def test_domains_from_directories_named_in_other_bytes_stay_apart(tmp_path: Path, store: Path) -> None:
    # Found by review: site\xfe.example and site\xff.example became one garbled domain, so an
    # erasure or export for one customer would have taken the other's rows.
    for name in ("site\udcfe.example", "site\udcff.example"):
        (tmp_path / "vhosts" / name).mkdir(parents=True)
        (tmp_path / "vhosts" / name / "access_log").write_text(lines(1))
    spec = config.SourceConfig(path="", domain_from_path=str(tmp_path / "vhosts/{domain}/access_log"))
    ingest.run(make_config(store), [spec], final=True)
    assert sorted(r["domain"] for r in store_rows(store)) == ["site\\xfe.example", "site\\xff.example"]
