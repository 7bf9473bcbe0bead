"""Erasure, export and compaction (pipeline/lifecycle/erase.py, export.py, compact.py), crash safety of every
rewrite (kill -9 mid-purge, mid-erase, mid-compaction), and the lifecycle commands' wiring.

The helpers at the top build real stores with the ingest library; test_retention.py and
test_holds.py use them too.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import itertools
import json
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

import duckdb
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipeline import config
from pipeline.cli import main
from pipeline.errors import StoreChangedError, UsageError
from pipeline.ingest.run import IngestReport
from pipeline.investigate import audit
from pipeline.investigate import session as query
from pipeline.lifecycle import deletions, retention
from pipeline.lifecycle.compact import compact
from pipeline.lifecycle.erase import erase_unaudited as erase  # the work; the audited door: audited.erase
from pipeline.lifecycle.export import ExportFormat, export
from pipeline.lifecycle.rewrite import encode_sorted
from pipeline.privacy import keys
from pipeline.store.commit import Store
from pipeline.store.parquet import encode_frame, encode_indexed, row_groups
from pipeline.store.schema import PAGEVIEW_COLUMNS, PAGEVIEWS
from tests.conftest import cases, ingest_paths, ip_tokens, make_config

D = dt.date
Row = tuple[int, dt.date, str, str]  # (n → path /r<n>, UTC event date, domain, client address)


def line(n: int, day: dt.date, domain: str, ip: str, clock: str = "12:00:00", tz: str = "+0000") -> str:
    stamp = f"{day.day:02d}/{day.strftime('%b')}/{day.year}:{clock} {tz}"
    return f'{domain}:443 {ip} - - [{stamp}] "GET /r{n} HTTP/1.1" 200 {n} "-" "ua/{n}"\n'


def build(store: Path, rows: Iterable[Row], name: str = "access.log", **ingest: object) -> Path:
    """Ingest the rows (one vhost_combined line each) into ``store`` with the real ingest stage."""
    log = store.parent / f"{store.name}-{name}"
    log.write_text("".join(line(n, day, dom, ip) for n, day, dom, ip in rows))
    report = ingest_paths(store, [log], fmt="vhost_combined", domain=None, **ingest)
    assert not report.failed
    return log


def cfg_for(store: Path, **retention_settings: object) -> config.Config:
    base = make_config(store)
    return base.with_overrides(retention=config.replace(config.RetentionConfig(), **retention_settings))


def visible(store: Path) -> Counter[str]:
    """Paths of the rows a reader sees (committed files only)."""
    out: Counter[str] = Counter()
    for f in Store(store).committed_parquet():
        out.update(str(p) for p in pq.read_table(f, columns=["path"]).column("path").to_pylist())
    return out


def by_date(store: Path) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for f in Store(store).committed_parquet():
        paths = pq.read_table(f, columns=["path"]).column("path").to_pylist()
        out.setdefault(f.parent.name[5:], Counter()).update(str(p) for p in paths)
    return out


def tree_hash(*roots: Path) -> dict[str, str]:
    """Every file and directory under ``roots`` with a hash of its content."""
    out = {}
    for root in roots:
        for p in sorted(root.rglob("*")):
            out[str(p)] = hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
    return out


def assert_consistent(store: Path) -> None:
    """No work in flight, no temporary files, every data file readable and in the store's format."""
    assert not list(store.rglob("*.tmp")) and not list(store.glob("_state/*/pending.json"))
    for f in store.glob("pageviews/date=*/*.parquet"):
        meta = pq.ParquetFile(f).metadata
        assert meta.schema.to_arrow_schema().names == PAGEVIEW_COLUMNS
        if meta.num_row_groups:
            assert meta.row_group(0).column(0).compression == "ZSTD"


def invoke(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def paths(rows: Iterable[Row]) -> Counter[str]:
    return Counter(f"/r{n}" for n, *_ in rows)


A, B, C = "a.example", "b.example", "c.example"
V1, V2 = "198.51.100.7", "198.51.100.8"  # same /24: erasing by network would take both


def two_visitors() -> list[Row]:
    """Two visitors in one /24 over two key periods (Oct and Nov 2026), on two domains."""
    rows: list[Row] = []
    for n in range(40):
        day = D(2026, 10, 28) + dt.timedelta(days=n % 8)
        rows.append((n, day, A if n % 3 else B, V1 if n % 2 else V2))
    return rows


# ----------------------------------------------------------------------------------------------------
# erase


def test_erase_domain_everywhere_and_in_a_range(store: Path) -> None:
    rows = two_visitors()
    build(store, rows)
    cfg = cfg_for(store)
    report = erase(cfg, domain="B.example", date_to=D(2026, 10, 31))
    gone = [r for r in rows if r[2] == B and r[1] <= D(2026, 10, 31)]
    assert report.rows_deleted == len(gone) and report.domain == B
    assert visible(store) == paths(rows) - paths(gone)
    report = erase(cfg, domain=B)
    assert visible(store) == paths(r for r in rows if r[2] != B)
    assert {c.action for c in report.partitions} == {"rewritten"}
    assert_consistent(store)
    record = json.loads(Path(str(report.record)).read_text())
    assert record["operation"] == "erase" and record["status"] == "complete"
    assert record["rows_deleted"] == report.rows_deleted and record["params"]["domain"] == B
    # commit records of the rewrites sit beside the ingest manifests; the view still reads them all
    runs = query.run(store, "SELECT count(*) FROM ingest_runs WHERE operation = 'erase'")
    assert runs.rows[0][0] == len({r[1] for r in rows if r[2] == B})  # one swap per partition


def test_erase_one_visitor_through_pseudonyms(store: Path) -> None:
    rows = two_visitors()
    build(store, rows)
    report = erase(cfg_for(store), address=V1)
    assert visible(store) == paths(r for r in rows if r[3] != V1)  # V2, same /24, untouched
    assert report.by_address and not report.not_erasable and report.rows_deleted == 20
    text = Path(str(report.record)).read_text()
    assert not ip_tokens(text) and "not recorded" in text


def test_erase_by_address_reports_periods_whose_key_is_destroyed(store: Path) -> None:
    rows = two_visitors()
    build(store, rows)
    cfg = cfg_for(store)
    keys.KeyStore(Path(cfg.key_dir), "month").destroy_before(D(2026, 11, 1))  # October's key
    code, out, _ = invoke("erase", "--store", str(store), "--request", "DSR-1", "--ip", V1)
    assert code == 0 and "NOT erasable: period 2026-10 (key destroyed" in out
    october = [r for r in rows if r[1].month == 10]
    assert visible(store) == paths(r for r in rows if r[3] != V1 or r[1].month == 10)
    assert any(r[3] == V1 for r in october)
    code, out, _ = invoke("erase", "--store", str(store), "--request", "DSR-1", "--ip", V1, "--json")
    data = json.loads(out)
    assert data["rows_deleted"] == 0 and data["not_erasable"][0]["reason"] == "key destroyed"


def test_erase_dry_run_changes_nothing(store: Path) -> None:
    rows = two_visitors()
    build(store, rows)
    before = tree_hash(store, Path(f"{store}-keys"))
    report = erase(cfg_for(store), domain=A, dry_run=True)
    assert tree_hash(store, Path(f"{store}-keys")) == before
    assert report.rows_deleted == sum(1 for r in rows if r[2] == A) and report.record is None
    assert erase(cfg_for(store), domain=A).rows_deleted == report.rows_deleted


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "say what to erase"),
        (["--ip", "not-an-address"], "not an IP address"),
        (["--domain", "a.example", "--from", "2026-11-02", "--to", "2026-11-01"], "is after"),
    ],
)
def test_erase_usage_errors_exit_2(store: Path, args: list[str], message: str) -> None:
    build(store, two_visitors())
    code, _, err = invoke("erase", "--store", str(store), "--request", "DSR-1", *args)
    assert code == 2 and message in err and err.startswith("hostlogs: error: ")


# ----------------------------------------------------------------------------------------------------
# export


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_export_round_trip(store: Path, tmp_path: Path, fmt: ExportFormat) -> None:
    rows = two_visitors()
    build(store, rows)
    out = tmp_path / f"a.{fmt}"
    report = export(cfg_for(store), domain=A, fmt=fmt, output=out, date_from=D(2026, 10, 30), request="DSR-1")
    expected = (
        pl.concat([pl.read_parquet(f) for f in Store(store).committed_parquet()])
        .filter((pl.col("domain") == A) & (pl.col("ts") >= dt.datetime(2026, 10, 30, tzinfo=dt.UTC)))
        .sort("ts")
    )
    assert report.rows == expected.height == sum(1 for r in rows if r[2] == A and r[1] >= D(2026, 10, 30))
    if fmt == "parquet":
        got = pl.read_parquet(out)
    else:
        text = out.read_text()
        assert "T12:00:00Z" in text and not list(tmp_path.glob(".*.tmp"))
        got = pl.read_csv(out, infer_schema=False) if fmt == "csv" else pl.read_ndjson(out)
        got = got.select(
            pl.col("ts").str.to_datetime("%Y-%m-%dT%H:%M:%S%.fZ", time_zone="UTC", time_unit="us"),
            *[pl.col(c).cast(expected.schema[c]) for c in expected.columns if c != "ts"],
        )
    assert got.columns == PAGEVIEW_COLUMNS
    assert got.equals(expected.select(got.columns), null_equal=True)


def test_the_library_export_needs_a_case_or_request_and_is_audited(store: Path, tmp_path: Path) -> None:
    build(store, two_visitors())
    out, trail = tmp_path / "a.csv", audit.AuditLog(store)
    before = len(trail.list())
    with pytest.raises(UsageError, match="--case CASE-ID or --request"):
        export(cfg_for(store), domain=A, fmt="csv", output=out)
    with pytest.raises(UsageError, match="invalid request id"):
        export(cfg_for(store), domain=A, fmt="csv", output=out, request="-x")
    assert not out.exists() and len(trail.list()) == before  # refused before anything is read or written
    report = export(cfg_for(store), domain=A, fmt="csv", output=out, request="jira:DSR/4#1", reason="access")
    entries = trail.list()[before:]
    assert [(e["command"], e["status"], e["request"]) for e in entries] == [
        ("export", "started", "jira:DSR/4#1"), ("export", "ok", "jira:DSR/4#1"),
    ]  # fmt: skip
    assert entries[0]["params"]["domain"] == A and entries[1]["rows"] == report.rows > 0


def test_export_of_an_unknown_domain_is_a_header(store: Path, tmp_path: Path) -> None:
    build(store, two_visitors())
    code, out, err = invoke(
        "export",
        "--store",
        str(store),
        "--request",
        "DSR-2",
        "--domain",
        "none.example",
        "--output",
        str(tmp_path / "x.csv"),
    )
    assert code == 0 and "exported 0 rows" in err and out == ""  # --output: the file only on stdout's side
    assert (tmp_path / "x.csv").read_text().strip() == ",".join(PAGEVIEW_COLUMNS)


# ----------------------------------------------------------------------------------------------------
# compaction


def many_files(store: Path, n: int = 3000, days: int = 4, **ingest: object) -> list[Row]:
    """Small ingest blocks: every batch writes one small file into each day."""
    rows = [
        (i, D(2026, 11, 1) + dt.timedelta(days=i % days), (A, B, C)[i % 3], f"192.0.2.{i % 250 + 1}")
        for i in range(n)
    ]
    build(store, rows, block_bytes=16384, max_line_bytes=4096, **ingest)
    return rows


def files_per_day(store: Path) -> dict[str, int]:
    return dict(Counter(f.parent.name[5:] for f in Store(store).committed_parquet()))


def test_compaction_preserves_rows_and_is_idempotent(store: Path) -> None:
    rows = many_files(store)
    before = pl.concat([pl.read_parquet(f) for f in Store(store).committed_parquet()])
    assert min(files_per_day(store).values()) > 10
    report = compact(cfg_for(store))
    assert files_per_day(store) == {d: 1 for d in files_per_day(store)}  # 128 MB target: one file a day
    assert [d.files_after for d in report.days] == [1] * 4 and report.days_unchanged == 0
    after = pl.concat([pl.read_parquet(f) for f in Store(store).committed_parquet()])
    key = ["path", "ts", "client_id"]
    assert after.sort(key).equals(before.sort(key), null_equal=True)  # the exact multiset of rows
    for f in Store(store).committed_parquet():
        assert_compacted_order(f)
        # compacted files carry bloom filters on client_id and client_net: lookups skip row groups
        blooms = dict(
            duckdb.connect()
            .execute(
                "SELECT path_in_schema, max(bloom_filter_length) FROM parquet_metadata(?) GROUP BY 1",
                [str(f)],
            )
            .fetchall()
        )
        assert (blooms["client_id"] or 0) > 0 and (blooms["client_net"] or 0) > 0
        assert not blooms["path"]  # only where an investigation looks up single values
        ts_encodings = (
            duckdb.connect()
            .sql(f"SELECT DISTINCT encodings FROM parquet_metadata('{f}') WHERE path_in_schema = 'ts'")
            .fetchall()
        )
        assert all("DELTA_BINARY_PACKED" in e for (e,) in ts_encodings)  # sorted ts: delta-encoded
    assert_consistent(store)
    again = tree_hash(store)
    second = compact(cfg_for(store))
    assert not second.days and second.days_unchanged == 4 and tree_hash(store) == again
    assert visible(store) == paths(rows)


def assert_compacted_order(source: Path | pa.Buffer) -> None:
    """Row groups in domain order (disjoint domain ranges: min/max prune); inside each, path order."""
    parquet = pq.ParquetFile(pa.BufferReader(source) if isinstance(source, pa.Buffer) else source)
    meta, table = parquet.metadata, parquet.read()
    ranges = []
    start = 0
    for i in range(meta.num_row_groups):
        n = meta.row_group(i).num_rows
        group = pl.from_arrow(table.slice(start, n))
        assert isinstance(group, pl.DataFrame)
        assert group.equals(group.sort(["path", "domain", "ts"], nulls_last=True))
        ranges.append((group.get_column("domain").min(), group.get_column("domain").max()))
        start += n
    assert all(a[1] <= b[0] for a, b in itertools.pairwise(ranges)), ranges


def test_compacted_row_groups_split_by_domain_and_order_paths_inside() -> None:
    """Three row groups of a busy day: a domain query prunes by min/max, a path's rows are adjacent."""
    n = 400_000
    i = pl.int_range(n, eager=True)
    frame = pl.DataFrame(
        {
            "ts": pl.datetime_range(
                dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dt.datetime(2026, 11, 1, 23, tzinfo=dt.UTC),
                interval="100ms", time_unit="us", eager=True,
            )[:n],
            "domain": (i * 7919 % 300).cast(pl.String).str.zfill(3) + ".example",
            "path": "/p" + (i * 104_729 % 50).cast(pl.String),
        }
    )  # fmt: skip
    empty = pl.from_arrow(PAGEVIEWS.empty_table())
    assert isinstance(empty, pl.DataFrame)
    full = frame.select(
        pl.col(c) if c in frame.columns else pl.lit(None, dtype).alias(c) for c, dtype in empty.schema.items()
    )
    data = encode_sorted(full)
    table = pq.read_table(pa.BufferReader(data))
    meta = pq.ParquetFile(pa.BufferReader(data)).metadata
    assert meta.num_row_groups == 3
    assert_compacted_order(data)
    # every path forms one run per row group: matches of a path pattern cluster
    first = pl.from_arrow(table.slice(0, meta.row_group(0).num_rows))
    assert isinstance(first, pl.DataFrame)
    assert first.get_column("path").rle().len() == first.get_column("path").n_unique()
    back = pl.from_arrow(table)
    assert isinstance(back, pl.DataFrame) and back.sort("ts").equals(full.sort("ts"))  # same rows


@pytest.mark.parametrize("encode", [encode_indexed, encode_frame], ids=["compacted", "ingest"])
@pytest.mark.parametrize(("rows", "groups"), [(1, [1]), (137_000, [137_000]), (300_000, [150_000] * 2)])
def test_row_groups_are_balanced(
    rows: int, groups: list[int], encode: Callable[[pl.DataFrame], bytes]
) -> None:
    """No tiny tail group (131,072 + 5,928 rows was a whole set of column chunks for a few rows), in
    compacted files and in ingest's."""
    empty = pl.from_arrow(PAGEVIEWS.empty_table())
    assert isinstance(empty, pl.DataFrame)
    frame = empty.select(
        pl.repeat(pl.lit(None, dtype), rows).alias(name) for name, dtype in empty.schema.items()
    ).with_columns(ts=pl.lit(dt.datetime(2026, 11, 1, tzinfo=dt.UTC), dtype=empty.schema["ts"]))
    meta = pq.ParquetFile(pa.BufferReader(encode(frame))).metadata
    assert [meta.row_group(i).num_rows for i in range(meta.num_row_groups)] == groups
    sizes = [n for _, n in row_groups(5_000_000)]
    assert sum(sizes) == 5_000_000 and max(sizes) - min(sizes) <= 1 and len(sizes) == 38


def test_compaction_to_a_small_target_leaves_at_most_one_small_file_a_day(store: Path) -> None:
    rows = many_files(store, n=9000, days=2)
    target_mb = 0.02  # ~21 kB: a day's rows make several files of it
    dry = compact(cfg_for(store), target_mb=target_mb, day=D(2026, 11, 1), dry_run=True)
    report = compact(cfg_for(store), target_mb=target_mb, day=D(2026, 11, 1))
    assert [str(d.date) for d in report.days] == ["2026-11-01"]  # --date: only that day
    assert dry.days[0].files_after == report.days[0].files_after  # the dry run was exact
    small = [f for f in Store(store).committed_parquet() if f.stat().st_size < target_mb * (1 << 20) / 2]
    assert Counter(f.parent.name for f in small)["date=2026-11-01"] <= 1
    assert files_per_day(store)["2026-11-01"] == report.days[0].files_after > 1
    assert not compact(cfg_for(store), target_mb=target_mb, day=D(2026, 11, 1)).days
    assert visible(store) == paths(rows)


def test_compaction_during_ingest_loses_nothing(store: Path, tmp_path: Path) -> None:
    rows = many_files(store)
    more = [(10_000 + i, D(2026, 11, 1 + i % 4), A, "203.0.113.9") for i in range(3000)]
    log = tmp_path / "more.log"
    log.write_text("".join(line(*r) for r in more))
    errors: list[BaseException] = []
    reports: list[IngestReport] = []

    def ingest_more() -> None:
        try:
            reports.append(
                ingest_paths(
                    store, [log], fmt="vhost_combined", domain=None, block_bytes=16384, max_line_bytes=4096
                )
            )
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    worker = threading.Thread(target=ingest_more)
    worker.start()
    compact(cfg_for(store))
    worker.join()
    assert not errors
    # a source error here once meant the compaction removed the ingest's in-flight temporary file
    assert [(src.error, src.rows) for src in reports[0].sources] == [(None, len(more))]
    assert visible(store) == paths(rows) + paths(more)
    compact(cfg_for(store))
    assert visible(store) == paths(rows) + paths(more) and set(files_per_day(store).values()) == {1}


def test_queries_survive_a_compaction_that_commits_meanwhile(store: Path, tmp_path: Path) -> None:
    """The views list the files committed when a connection opens; a compaction retires them."""
    rows = many_files(store)
    con = query.connect(store)
    compact(cfg_for(store))
    with pytest.raises(StoreChangedError, match="the store changed while the query ran"):
        con.execute("SELECT count(*) FROM pageviews")  # not "refused by the sandbox"
    # query.run and the investigations run their work once more on a fresh connection
    more = [(10_000 + i, D(2026, 11, 1 + i % 4), A, "203.0.113.9") for i in range(600)]
    build(store, more, name="more.log", block_bytes=16384, max_line_bytes=4096)
    attempts: list[int] = []

    def work(c: duckdb.DuckDBPyConnection) -> int:
        attempts.append(1)
        if len(attempts) == 1:
            compact(cfg_for(store))  # commits while the first attempt runs
        return int(c.execute("SELECT count(*) FROM pageviews").rows[0][0])

    assert query.with_connection(store, work) == len(rows) + len(more) and len(attempts) == 2
    # the shell reopens its views and runs the statement again
    build(store, more[:300], name="again.log", block_bytes=16384, max_line_bytes=4096)

    class CompactOnFirstRead(io.BytesIO):
        def read1(self, n: int | None = -1) -> bytes:
            if self.tell() == 0 and n != 0:  # (click probes the stream with read(0) first)
                compact(cfg_for(store))  # after the shell connected, before its first statement
            return super().read1(n)

        read = read1

    stdin = CompactOnFirstRead(b"SELECT count(*) AS n FROM pageviews;\n")
    result = CliRunner().invoke(main, ["shell", "--store", str(store), "--case", "T-1"], input=stdin)
    assert result.exit_code == 0, result.output
    assert "views reopened" in result.stderr and f"\n{len(rows) + 900}\n" in result.stdout


# ----------------------------------------------------------------------------------------------------
# kill -9 mid-operation, then re-run


TRIALS = cases(2)


@pytest.fixture(scope="module")
def crash_template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[Row]]:
    """A store of 200 small files over 20 days: every operation below takes many swaps (~0.3 s)."""
    root = tmp_path_factory.mktemp("crash")
    rows = [
        (i, D(2024, 1, 1) + dt.timedelta(days=i % 20), (A, B)[i % 2], f"192.0.2.{i % 9 + 1}")
        for i in range(1500)
    ]
    build(root / "store", rows, block_bytes=16384, max_line_bytes=4096)
    return root / "store", rows


def kill_mid_operation(template: Path, dest: Path, args: list[str], rng: random.Random) -> bool:
    """Copy the store, start the operation in a subprocess, SIGKILL it at a random moment of its writes.

    The moment is drawn after its first intent record appears (planning, which only reads, is over),
    so the kill lands between or inside the partition swaps: before, during or after a commit.
    """
    shutil.copytree(template, dest)
    shutil.copytree(f"{template}-keys", f"{dest}-keys")
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.cli", *args, "--store", str(dest)], stdout=subprocess.DEVNULL
    )
    writing = dest / "_state" / "maintenance" / "pending.json"
    deadline = time.monotonic() + 10
    while not writing.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)
    time.sleep(rng.uniform(0.0, 0.12))
    if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
    # Killed only if the signal ended it: it may have finished between poll() and the signal.
    return proc.wait() == -signal.SIGKILL


@pytest.mark.parametrize("operation", ["purge", "erase", "compact"])
def test_sigkill_mid_operation_then_rerun(
    crash_template: tuple[Path, list[Row]], tmp_path: Path, operation: str
) -> None:
    template, rows = crash_template
    original = by_date(template)
    as_of = D(2026, 1, 11)  # "2y": first day kept 2024-01-11, so 10 of the 20 days go
    expected = {
        "purge": [r for r in rows if r[1] >= D(2024, 1, 11)],
        "erase": [r for r in rows if r[2] != B],
        "compact": rows,
    }[operation]
    args = {
        "purge": ["purge", "--as-of", str(as_of)],
        "erase": ["erase", "--domain", B, "--request", "DSR-3"],
        "compact": ["compact"],
    }
    after = {d: c for d, c in by_date_of(expected).items()}
    rng = random.Random(operation)
    kills = 0
    for trial in range(TRIALS):
        store = tmp_path / f"s{trial}"
        killed = kill_mid_operation(template, store, args[operation], rng)
        kills += killed
        # before any recovery, a reader sees each partition either as it was or as it will be
        for day, seen in by_date(store).items():
            assert seen in (original.get(day), after.get(day)), f"{operation} trial {trial}: {day} torn"
        cfg = cfg_for(store)
        if operation == "purge":
            retention.purge(cfg, as_of=as_of)
            assert retention.verify(cfg, as_of=as_of).ok
        elif operation == "erase":
            erase(cfg, domain=B)
        else:
            compact(cfg)
            assert set(files_per_day(store).values()) == {1}
        assert visible(store) == paths(expected), f"{operation} trial {trial}"
        assert_consistent(store)
        records = deletions.records(store)
        assert all(r["status"] in ("complete", "interrupted") for r in records)
        if operation != "compact":  # the proof covers every deleted row, across the killed run and the re-run
            assert sum(r["rows_deleted"] for r in records) == len(rows) - len(expected)
            statuses = [r["status"] for r in records]
            if statuses[0] == "complete":
                # the run finished its deletions before the signal (or was not reached by it): the
                # re-run had nothing left to delete, and says so in a record of its own (a purge
                # always writes one; an erasure with nothing to erase does not)
                assert statuses in (["complete"], ["complete", "complete"])
                assert sum(r["rows_deleted"] for r in records[1:]) == 0
            else:
                assert killed and statuses == ["interrupted", "complete"]
    assert kills >= 1, f"no {operation} run was killed mid-way: the store is too small to test this"


def by_date_of(rows: Iterable[Row]) -> dict[str, Counter[str]]:
    out: dict[str, Counter[str]] = {}
    for n, day, *_ in rows:
        out.setdefault(day.isoformat(), Counter())[f"/r{n}"] += 1
    return out


# ----------------------------------------------------------------------------------------------------
# command line


def test_every_lifecycle_command_has_help_with_an_example() -> None:
    for args in (
        ["purge"],
        ["hold"],
        ["hold", "add"],
        ["hold", "list"],
        ["hold", "release"],
        ["erase"],
        ["export"],
        ["compact"],
    ):
        code, out, _ = invoke(*args, "--help")
        assert code == 0 and "Example:" in out, args


def test_lifecycle_commands_on_a_missing_store_exit_6(tmp_path: Path) -> None:
    for args in (
        ["purge"],
        ["purge", "--verify"],
        ["erase", "--domain", "x"],
        ["compact"],
        ["hold", "add", "--case", "X", "--reason", "r"],
    ):
        code, _, err = invoke(*args, "--store", str(tmp_path / "none"))
        assert code == 6 and "no store at" in err, args


def test_compact_cli_reports_and_json(store: Path) -> None:
    many_files(store, n=600, days=2)
    code, out, _ = invoke("compact", "--store", str(store), "--dry-run")
    assert code == 0 and "would merge" in out and "dry run" in out
    code, out, _ = invoke("compact", "--store", str(store), "--json")
    data = json.loads(out)
    assert code == 0 and [d["files_after"] for d in data["days"]] == [1, 1]
    with pytest.raises(UsageError):
        export(cfg_for(store), domain=A, fmt="xml", output=store / "x", request="DSR-1")  # type: ignore[arg-type]
