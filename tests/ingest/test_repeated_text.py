"""Repeated text columns (domain, path, query, referrer) are protected once per distinct value.

They reach the sort and the Parquet writer as an Enum of the batch's values when they repeat, and stay
strings when most values are distinct; either way every row gets exactly its own value's protection
(addresses masked, sensitive parameters redacted), which these tests compare with the per-row result.
"""

from __future__ import annotations

import io

import polars as pl
import pyarrow.parquet as pq
import pytest

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.ingest.batch import _partition
from pipeline.ingest.formats import resolve
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from pipeline.store.parquet import encode_frame

TEXT = ("domain", "path", "query", "referrer")
PATTERN = privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS)


def _line(i: int, distinct: int) -> str:
    k = i % distinct
    return (
        f"Site{k % 3}.Example.com:443 192.0.2.{i % 250} - - [06/Dec/2026:10:{k % 60:02d}:00 +0000] "
        f'"GET /u/203.0.113.{k % 250}/p{k}?token=s{k}&q=198.51.100.{k % 250} HTTP/1.1" 200 5 '
        f'"https://ref.example/{k}?from=2001:db8::{k:x}" "agent/{k}"\n'
    )


def _parsed(lines: list[str]) -> pl.DataFrame:
    """The rows ingest's parse makes of ``lines`` (vhost_combined)."""
    settings = ParseSettings(domain=None, server="web1", sensitive_param_regex=PATTERN)
    block = split_block("".join(lines).encode(), 0, 65536)
    return parse_lines(block, resolve("vhost_combined"), settings, privacy.ClientMasker()).rows


def _rows(distinct: int, n: int = 400) -> pl.DataFrame:
    return _parsed([_line(i, distinct) for i in range(n)])


@pytest.mark.parametrize(("distinct", "categorical"), [(7, True), (400, False)])
def test_each_row_gets_its_values_protection(distinct: int, categorical: bool) -> None:
    rows = _rows(distinct)
    assert rows.height == 400
    masker = privacy.ClientMasker()
    for name in TEXT:
        column = rows.get_column(name)
        assert isinstance(column.dtype, pl.Enum) is (categorical or name == "domain")
        raw = pl.Series([_raw(name, i, distinct) for i in range(400)])
        expected = privacy.protect(name, raw, masker, PATTERN)
        assert column.cast(pl.String).to_list() == expected.to_list()
    text = " ".join(str(v) for name in TEXT for v in rows.get_column(name).cast(pl.String).to_list())
    assert "203.0.113.0/24" in text and "REDACTED" in text
    for i in range(250):
        assert f"203.0.113.{i}/" not in text.replace("203.0.113.0/", "")
        assert f"198.51.100.{i} " not in text and f"2001:db8::{i:x}" not in text


def _raw(name: str, i: int, distinct: int) -> str:
    k = i % distinct
    return {
        "domain": f"site{k % 3}.example.com",
        "path": f"/u/203.0.113.{k % 250}/p{k}",
        "query": f"token=s{k}&q=198.51.100.{k % 250}",
        "referrer": f"https://ref.example/{k}?from=2001:db8::{k:x}",
    }[name]


def test_written_files_hold_only_their_dates_values() -> None:
    """A date's file carries the values of its own rows in every column's dictionary, no others
    (the batch's Enum spans both dates; what outlives a purge must be nobody else's)."""
    lines = [
        _line(i, 7).replace("06/Dec/2026", "05/Dec/2026" if i % 7 == 0 else "06/Dec/2026") for i in range(70)
    ]
    rows = _parsed(lines)
    parts = _partition(rows)
    assert sorted(parts) == ["2026-12-05", "2026-12-06"]
    for day, frame in parts.items():
        table = pq.read_table(io.BytesIO(encode_frame(frame)), read_dictionary=["path"])
        dictionary = table.column("path").combine_chunks().dictionary.to_pylist()
        assert sorted(dictionary) == sorted(set(frame.get_column("path").cast(pl.String).to_list()))
        assert ("/p0" in " ".join(dictionary)) is (day == "2026-12-05")


def test_batches_of_repeated_domains_are_sorted_by_domain() -> None:
    """Found by review: an Enum numbered its values in order of first appearance, and sorted by those
    codes the files were no longer ordered by domain (whichever sort path _partition takes)."""
    names = ["zeta.example", "alpha.example", "mid.example"]
    lines = [
        f'{names[i % 3]}:443 192.0.2.{i % 250} - - [06/Dec/2026:10:00:{i % 60:02d} +0000] "GET /x HTTP/1.1" 200 5 "-" "ua"\n'
        for i in range(60)
    ]
    far = lines[:3] + [line.replace("06/Dec/2026", "06/Dec/9000") for line in lines[3:6]]  # not packable
    for batch in (lines, far * 10):
        rows = _parsed(batch)
        assert isinstance(rows.get_column("domain").dtype, pl.Enum)
        for frame in _partition(rows).values():
            got = list(zip(frame.get_column("domain").cast(pl.String), frame.get_column("ts"), strict=True))
            assert got == sorted(got)
            assert frame.get_column("domain").n_unique() > 1


def test_each_row_group_holds_only_its_own_values() -> None:
    """Found by review: a date slice of several row groups (blocks over 32 MiB) wrote the whole slice's
    dictionary into every row group (18 % larger files)."""
    n = 300_000
    half = n // 2
    paths = pl.Series("path", [f"/p{i % 10}" if i < half else f"/q{i % 10}" for i in range(n)])
    frame = pl.DataFrame({"path": paths.cast(pl.Enum(sorted(set(paths.to_list()))))})
    meta = pq.ParquetFile(io.BytesIO(encode_frame(frame)))
    assert meta.metadata.num_row_groups == 2
    for group, prefix in enumerate(("/p", "/q")):
        table = meta.read_row_group(group, columns=["path"])
        values = table.column("path").to_pylist()
        assert values[:3] == [f"{prefix}0", f"{prefix}1", f"{prefix}2"] and len(values) == half
    reader = pq.ParquetFile(io.BytesIO(encode_frame(frame)), read_dictionary=["path"])
    for group, prefix in enumerate(("/p", "/q")):
        dictionary = reader.read_row_group(group).column("path").chunk(0).dictionary.to_pylist()
        assert sorted(dictionary) == [f"{prefix}{i}" for i in range(10)]
