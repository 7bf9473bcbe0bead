"""Auto-detection: the best-scoring registered format, wrapped ones included, with its confidence; a
source below ``MIN_CONFIDENCE`` is not recognised and every line of it is quarantined."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from pipeline.ingest import formats, sources
from pipeline.ingest.formats import registry
from pipeline.ingest.formats.detect import (
    DETECT_SAMPLE_BYTES,
    MIN_CONFIDENCE,
    NOT_RECOGNISED,
    choose_format,
    detection,
    sample,
)
from tests.conftest import ROOT, THIRD_PARTY_LOGS, ingest_paths, store_rows, third_party_log_files
from tests.ingest.test_format_registry import PipeFormat
from tests.ingest.test_format_w3c import CLOUDFRONT_LINE

TS = "[06/Feb/2026:12:00:01 +0000]"
COMBINED = f'192.0.2.10 - - {TS} "GET /a HTTP/1.1" 200 5 "-" "curl/8"'
VHOST = f'www.example.com:80 192.0.2.10 - - {TS} "GET /a HTTP/1.1" 200 5 "-" "curl/8"'
JUNK = ["PHP Warning: something broke", "", "=== log rotated by cron ==="]


def choice(lines: list[str]) -> formats.Choice:
    return choose_format("auto", "-", "".join(f"{ln}\n" for ln in lines).encode())


def test_junk_at_the_top_costs_confidence_not_the_format() -> None:
    found = choice([*JUNK, *[COMBINED] * 20])
    assert (found.fmt.name, found.recognised) == ("combined", True)
    assert found.note == "auto-detected combined, 20/22 sample lines"  # the blank line is not a sample line


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("<134>Feb  6 12:00:01 web01 nginx: ", "syslog:"),
        ("Feb  6 12:00:01 web01 apache2[123]: ", "syslog:"),
        ("<134>1 2026-02-06T12:00:01.123Z web01 nginx 123 - - ", "syslog:"),
        ('<134>1 2026-02-06T12:00:01Z web01 nginx 1 - [meta seq="1"] ', "syslog:"),
        ("2026-02-06T12:00:01+00:00 web01 nginx: ", "syslog:"),
        ("2025-12-31T17:37:40.493035218+01:00 stdout F ", "cri:"),
    ],
)
@pytest.mark.parametrize(("line", "inner"), [(COMBINED, "combined"), (VHOST, "vhost_combined")])
def test_a_wrapped_log_is_detected_with_its_inner_format(
    header: str, expected: str, line: str, inner: str
) -> None:
    found = choice(["junk line", *[header + line] * 9])
    assert (found.fmt.name, found.recognised) == (expected + inner, True)
    assert found.note == f"auto-detected {expected}{inner}, 9/10 sample lines"


def test_real_wrapped_logs() -> None:
    wordpress = THIRD_PARTY_LOGS / "crowdsec-hub-tests/http-bf-wordpress-bf__http-bf-wordpress-bf.log"
    found = choose_format("auto", str(wordpress))
    assert (found.fmt.name, found.note) == (
        "syslog:combined",
        "auto-detected syslog:combined, 9/9 sample lines",
    )
    if formats.get("envoy_json") is not None:
        envoy = choose_format("auto", str(THIRD_PARTY_LOGS / "crowdsec-hub-tests/envoy-logs__envoy.log"))
        assert envoy.fmt.name == "cri:envoy_json" and envoy.recognised  # 6 JSON lines of 10; 4 are Envoy text


def test_a_bare_reading_wins_a_tie_against_a_wrapped_one() -> None:
    # Both readings parse the same lines; the bare format needs no assumption about a header.
    assert choice([COMBINED] * 3).fmt.name == "combined"


def test_nothing_fits_fails_closed(tmp_path: Path, store: Path) -> None:
    found = choice(["not a log line", "nor this", "{}"])
    assert (found.fmt.name, found.note, found.recognised) == ("unrecognised", NOT_RECOGNISED, False)
    assert formats.choose("auto", "-", b"not a log line\n") == (found.fmt, NOT_RECOGNISED)  # the old call
    assert choice([]).recognised is False


def test_below_the_minimum_confidence_the_best_guess_reads_and_the_run_fails(
    tmp_path: Path, store: Path
) -> None:
    lines = [*["some application output"] * 7, COMBINED, "more output", COMBINED]
    found = choice(lines)
    assert (found.fmt.name, found.recognised) == ("combined", False)
    assert found.note == (
        "format not recognised: read as combined, the best guess (2/10 sample lines, below 50%); "
        "lines it cannot read are quarantined"
    )
    assert found.detection is not None and found.detection.confidence == 0.2 < MIN_CONFIDENCE
    log = tmp_path / "mostly-junk.log"
    log.write_text("".join(f"{ln}\n" for ln in lines))
    report = ingest_paths(store, [log])
    # The lines the strict format reads are kept (quarantining them would consume the evidence for
    # good); the source failed, so the run exits non-zero until the operator names the format.
    assert (report.rows, report.rejects) == (2, {"unparseable": 8})
    (source,) = report.sources
    assert source.note == found.note
    assert source.error == f"{found.note}: 8 of 10 lines quarantined; name its --format"
    assert len(store_rows(store)) == 2
    again = ingest_paths(store, [log])  # nothing new: nothing failed
    assert (again.sources[0].lines, again.sources[0].error) == (0, None)
    named = ingest_paths(store, [log], fmt="combined")  # the operator names it: no failure
    assert named.sources[0].error is None


def test_the_threshold_is_inclusive() -> None:
    assert choice([COMBINED, "junk"]).recognised is True  # 1/2 = MIN_CONFIDENCE
    assert choice([COMBINED, "junk", "junk"]).recognised is False


def test_header_lines_are_not_data() -> None:
    found = detection(["#Version: 1.0", "#Date: 2026-02-06 12:00:01", COMBINED, COMBINED])
    assert (found.parsed, found.lines, found.recognised) == (2, 2, True)


def test_a_sample_cut_by_its_size_loses_its_last_line() -> None:
    head = (COMBINED + "\n") * (DETECT_SAMPLE_BYTES // (len(COMBINED) + 1) + 1)
    cut = head.encode()[:DETECT_SAMPLE_BYTES]
    assert sample(cut)[-1] == COMBINED
    assert (
        choose_format("auto", "-", cut).note
        == f"auto-detected combined, {len(sample(cut))}/{len(sample(cut))} sample lines"
    )
    assert sample(b"a\nb") == ["a", "b"]  # a short source's last line is whole


# ---------------------------------------------------------------------------------------------------
# Toy formats registered by the test: scores decide, then exact matches, then priority


class Strict(PipeFormat):
    """Claims the lines that start with a date (``PipeFormat.score`` only counts the pipes)."""

    def score(self, sample: list[str]) -> tuple[int, int]:
        hits = sum(1 for ln in sample if ln.count("|") == 6 and ln[:4].isdigit())
        return hits, hits


class Lenient(PipeFormat):
    """Claims every line with a request in it, exactly none."""

    def score(self, sample: list[str]) -> tuple[int, int]:
        return sum(1 for ln in sample if '"GET ' in ln), 0


@pytest.fixture
def toys() -> Iterator[None]:
    formats.register(formats.FormatEntry("toy_pipe", "toy", "pipe", lambda d, n: Strict(n, d), 40))
    formats.register(formats.FormatEntry("toy_lenient", "toy", "lenient", lambda d, n: Lenient(n, d), 99))
    yield
    formats.unregister("toy_pipe")
    formats.unregister("toy_lenient")


TOY = "2026-02-06T12:00:01Z|192.0.2.1|shop.example|GET / HTTP/1.1|200|5|curl/8"


def test_parsed_lines_then_exact_matches_then_priority(toys: None) -> None:
    assert choice([TOY, TOY, COMBINED]).fmt.name == "toy_pipe"  # more lines parsed
    # the lenient toy parses as many combined lines, but matches none exactly: its priority does not count
    assert choice([COMBINED, COMBINED]).fmt.name == "combined"
    assert choice(["<13>Feb  6 12:00:01 web01 shop: " + TOY] * 3).fmt.name == "syslog:toy_pipe"


EDGE_LINES = [
    ' \t{"time": "2026-02-06T12:00:01Z"}',  # an object after blanks
    '\x1c{"a": 1}',  # Python strips U+001C, polars does not: still tried in full
    "\u3000{}",
    "#Fields: date time c-ip cs-method cs-uri-stem sc-status",
    "2026-02-06 12:00:01 192.0.2.10 GET /a 200",
    "2026-2-6\t12:00:01\tFRA2\t5\t192.0.2.10\tGET",
    CLOUDFRONT_LINE.replace("2019-12-04", "2019-12- 4"),  # polars reads a blank-padded day
    CLOUDFRONT_LINE.replace("2019-12-04", "2019- 1- 4"),
    COMBINED,
    VHOST,
]


def test_a_format_that_rules_out_a_line_reads_nothing_of_it() -> None:
    """The cheap pre-check (``may_fit``: any line that could fit) never turns a score into nothing:
    every sample line of every log the repository carries, and edge lines, that a format's check
    rules out, read together in full, score (0, 0) (each line is read on its own: a W3C line under
    the default field lists, a JSON line as one object)."""
    logs = [
        *third_party_log_files(),
        *sorted(p for p in (ROOT / "sample_logs").rglob("*.log*") if p.is_file()),
    ]
    lines = list(EDGE_LINES)
    for path in logs:
        with sources.open_stream(str(path)) as stream:
            lines += sample(stream.read(DETECT_SAMPLE_BYTES))
    lines += [blank + ln for ln in list(lines) if ln.startswith("{") for blank in (" \t", "\u3000")]
    checked = [f for e in registry.entries() if hasattr(f := e.build(), "may_fit")]
    assert {type(f).__name__ for f in checked} == {"JsonFormat", "W3CFormat"}
    for fmt in checked:
        ruled_out = [ln for ln in lines if not fmt.may_fit([ln])]
        assert len(ruled_out) > 1000 and not fmt.may_fit(ruled_out)
        assert fmt.score(ruled_out) == fmt.full_score(ruled_out) == (0, 0), fmt.name
        fits = [ln for ln in lines if fmt.may_fit([ln])]
        assert fmt.full_score(fits) != (0, 0) or fmt.name not in ("nginx_json", "w3c"), fmt.name
