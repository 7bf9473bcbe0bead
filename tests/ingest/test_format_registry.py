"""The format registry: the built-in Apache formats are its entries, and a new format plugs in by
registering one entry, without touching the Apache compiler or rows.py (the fields seam)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import pytest

from pipeline.errors import FormatError
from pipeline.ingest import formats
from pipeline.ingest.fields import FIELD_COLUMNS, FieldContext, Fields, normalize_domain
from pipeline.ingest.formats import request
from tests.conftest import ingest_paths, store_rejects, store_rows

# ---------------------------------------------------------------------------------------------------
# The built-ins


def test_the_registry_lists_the_built_in_apache_formats_first() -> None:
    names = [e.name for e in formats.entries()]
    assert names[:3] == ["common", "combined", "vhost_combined"]
    for entry in formats.BUILTIN:
        assert formats.get(entry.name) is entry
        assert entry.family == "apache"
        assert entry.definition == formats.NAMED_FORMATS[entry.name]
        fmt = formats.resolve(entry.name)
        assert (fmt.name, fmt.spec) == (entry.name, entry.definition)


def test_built_ins_are_auto_detected_more_specific_first() -> None:
    priority = {e.name: e.detect_priority for e in formats.BUILTIN}
    assert priority["vhost_combined"] > priority["combined"] > priority["common"]  # type: ignore[operator]


def test_a_logformat_string_is_a_custom_apache_format() -> None:
    fmt = formats.resolve('%h %l %u %t "%r" %>s %b')
    assert (fmt.name, fmt.spec) == ("custom", '%h %l %u %t "%r" %>s %b')
    assert formats.is_format_spec("auto") and formats.is_format_spec("combined")
    assert formats.is_format_spec("%h %t") and not formats.is_format_spec("nginx")


def test_an_unknown_name_lists_the_registered_ones() -> None:
    with pytest.raises(FormatError) as err:
        formats.resolve("nginx")
    names = ", ".join(e.name for e in formats.entries())
    assert str(err.value) == (
        f"unknown log format 'nginx': use one of {names}, auto or a LogFormat string or "
        "syslog:FORMAT or cri:FORMAT or a JSON mapping {\"ts\": PATH, ...} or 'w3c:' and a #Fields: list"
    )
    assert names.startswith(
        "common, combined, vhost_combined, nginx_main, ssl_request, traefik_clf, nginx_json"
    )


def test_a_name_is_registered_once() -> None:
    with pytest.raises(FormatError, match="registered already"):
        formats.register(formats.BUILTIN[0])
    with pytest.raises(FormatError, match="registered already"):
        formats.register(formats.FormatEntry("auto", "toy", "", _toy))


# ---------------------------------------------------------------------------------------------------
# A toy format: pipe-separated, ISO times. It proves the seam: fields in, rows and rejects out.

_TOY_FIELDS = ["ts", "client", "host", "request", "status", "bytes", "agent"]


@dataclass(frozen=True)
class PipeFormat:
    name: str
    spec: str

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        text = lines.get_column("line").str.strip_chars_end("\r\n")
        parts = text.str.split_exact("|", 6).struct.rename_fields(_TOY_FIELDS).struct.unnest()
        ok = parts.get_column("agent").is_not_null() & parts.get_column("ts").str.ends_with("Z")
        good = pl.concat([lines.select("offset"), parts], how="horizontal").filter(ok)
        req = request.split_request_line(good.get_column("request"))
        method, path, query, protocol = request.split_target(req)
        size = good.get_column("bytes").cast(pl.Int64, strict=False)
        frame = pl.DataFrame(
            {
                "offset": good.get_column("offset"),
                "ts": good.get_column("ts")
                .str.strptime(pl.Datetime("us"), "%Y-%m-%dT%H:%M:%SZ", strict=False)
                .dt.replace_time_zone("UTC"),
                "bad_field": size.is_null(),
                "domain": normalize_domain(good.get_column("host")),
                "method": method,
                "path": path,
                "query": query,
                "protocol": protocol,
                "status": good.get_column("status").cast(pl.Int16, strict=False),
                "bytes": size,
                "referrer": pl.repeat(None, good.height, dtype=pl.String, eager=True),
                "user_agent": good.get_column("agent"),  # a plain String: rows.py masks it
                "client": good.get_column("client"),
            }
        )
        assert frame.columns == list(FIELD_COLUMNS)
        return Fields(frame=frame, unparsed=lines.get_column("offset").filter(~ok))

    def score(self, sample: list[str]) -> tuple[int, int]:
        hits = sum(1 for ln in sample if ln.count("|") == 6)
        return hits, hits


def _toy(definition: str, name: str) -> PipeFormat:
    return PipeFormat(name=name, spec=definition)


@pytest.fixture
def toy() -> Iterator[str]:
    formats.register(
        formats.FormatEntry("toy_pipe", "toy", "ts|client|host|request|status|bytes|agent", _toy, 40)
    )
    yield "toy_pipe"
    formats.unregister("toy_pipe")


TOY_LOG = (
    "2026-10-10T13:55:36Z|203.0.113.7|Shop.Example.|GET /cart?id=5 HTTP/1.1|200|512|curl/8 (203.0.113.7)\n"
    "not a toy line\n"
    "2026-13-40T99:00:00Z|198.51.100.9|shop.example|GET / HTTP/1.1|200|1|curl/8\n"
    "2026-10-10T13:55:37Z|2001:db8::1|shop.example|POST /login HTTP/2|302|99999999999999999999999|x\n"
    "2026-10-11T00:00:01Z|198.51.100.9|shop.example|GET / HTTP/1.1|404|0|curl/8\n"
)


def test_a_registered_format_ingests_through_the_seam(toy: str, tmp_path: Path, store: Path) -> None:
    log = tmp_path / "toy.log"
    log.write_text(TOY_LOG)
    report = ingest_paths(store, [log], fmt=toy)
    assert (report.lines, report.rows) == (5, 2)
    assert report.rejects == {"bad_field": 1, "bad_timestamp": 1, "unparseable": 1}
    rows = sorted(store_rows(store), key=lambda r: str(r["ts"]))
    first = rows[0]
    assert first["ts"] == dt.datetime(2026, 10, 10, 13, 55, 36, tzinfo=dt.UTC)
    assert (first["domain"], first["method"], first["path"], first["query"], first["protocol"]) == (
        "shop.example", "GET", "/cart", "id=5", "HTTP/1.1",
    )  # fmt: skip
    assert (first["status"], first["bytes"], first["client_net"]) == (200, 512, "203.0.113.0/24")
    # the privacy side is rows.py's, whatever the format: no address survives anywhere
    assert "203.0.113.7" not in str(first["user_agent"])
    assert (rows[1]["status"], rows[1]["client_net"]) == (404, "198.51.100.0/24")
    rejects = store_rejects(store)
    assert [r["reason"] for r in rejects] == ["unparseable", "bad_timestamp", "bad_field"]
    assert all("198.51.100.9" not in str(r["line"]) and "2001:db8::1" not in str(r["line"]) for r in rejects)
    (manifest,) = (json.loads(p.read_text()) for p in store.rglob("_manifests/*/*.json"))
    assert manifest["format"] == toy


def test_a_registered_format_is_auto_detected(toy: str, tmp_path: Path, store: Path) -> None:
    log = tmp_path / "toy.log"
    log.write_text(TOY_LOG)
    report = ingest_paths(store, [log], fmt="auto")
    (source,) = report.sources
    # 4 of the 5 lines have the toy's shape: confidence 4/5, above detect.MIN_CONFIDENCE
    assert (source.format, source.note, source.rows) == (toy, f"auto-detected {toy}, 4/5 sample lines", 2)


# ---------------------------------------------------------------------------------------------------
# Detection, in one module


def test_choose_names_what_it_detected_and_fails_closed(tmp_path: Path, store: Path) -> None:
    combined = '203.0.113.9 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 5 "-" "curl/8"\n'
    assert formats.choose("common", "unused")[1] is None  # named: nothing to detect, nothing read
    fmt, note = formats.choose("auto", "-", combined.encode())
    assert (fmt.name, note) == ("combined", "auto-detected combined, 1/1 sample lines")
    fmt, note = formats.choose("auto", "-", b"not a log line\n\n{}\n")
    assert (fmt.name, note) == ("unrecognised", "format not recognised: no registered format reads its lines")
    log = tmp_path / "junk.log"
    log.write_text("not a log line\nnor this one\n")
    report = ingest_paths(store, [log])
    assert (report.rows, report.rejects) == (0, {"unparseable": 2})
    assert report.sources[0].note == "format not recognised: no registered format reads its lines"
