"""Auto-detection: which registered format a source is written in, from its first lines.

Every entry with a ``detect_priority`` scores a sample (``Format.score``: lines it parses, lines it
matches exactly); the most lines parsed wins, then the most matched exactly, then the priority
(the more specific format: a vhost_combined log also parses as combined). When most sample lines
carry a syslog or CRI header (``formats/wrapped.py``), the entries also score the lines without it
and may win as ``syslog:NAME`` / ``cri:NAME``.

A few junk lines at the top cost a few points of confidence, nothing more. Below
``MIN_CONFIDENCE`` the source is *not recognised* and the ``Choice`` says so, for the run to exit
non-zero (the operator must name its format). Its lines are still read by the best guess: every
format is strict, so the lines it parses are rows of that format, and the rest are quarantined.
Quarantining the lines it does read instead would consume them for good (progress moves on) and
keep only scrubbed 2 KiB excerpts for 30 days: evidence lost because detection was unsure. A source
of which no line parses is read by ``Unrecognised``: every line quarantined.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

from pipeline.ingest import sources
from pipeline.ingest.fields import FIELD_COLUMNS, FieldContext, Fields, Format, directed
from pipeline.ingest.formats import registry, wrapped

DETECT_SAMPLE_BYTES = 64 << 10
DETECT_SAMPLE_LINES = 200
# The share of the sample's data lines the best format must parse for the source to count as
# recognised. Half: a log whose lines mostly fail would be mostly rejects anyway, and a format that
# reads fewer than half of them is more likely a coincidence (a common-log line inside a text file)
# than the source's format. Three junk lines above 197 good ones are 98.5 %, well above it.
MIN_CONFIDENCE = 0.5
NOT_RECOGNISED = "format not recognised: no registered format reads its lines"
LOW_CONFIDENCE = "format not recognised"


@dataclass(frozen=True)
class Detection:
    """The best-scoring format for a sample, and how much of the sample it read."""

    fmt: Format | None  # None: no registered format parses a single sample line
    parsed: int  # sample lines it parses
    lines: int  # the sample's data lines (header lines starting with '#' are not counted)

    @property
    def confidence(self) -> float:
        return self.parsed / self.lines if self.lines else 0.0

    @property
    def recognised(self) -> bool:
        return self.fmt is not None and self.confidence >= MIN_CONFIDENCE

    def describe(self) -> str:
        """What the report says: "auto-detected combined, 197/200 sample lines", or why not."""
        if self.fmt is None:
            return NOT_RECOGNISED
        seen = f"{self.parsed}/{self.lines} sample lines"
        if self.recognised:
            return f"auto-detected {self.fmt.name}, {seen}"
        return (
            f"{LOW_CONFIDENCE}: read as {self.fmt.name}, the best guess "
            f"({seen}, below {MIN_CONFIDENCE:.0%}); lines it cannot read are quarantined"
        )


@dataclass(frozen=True)
class Choice:
    """A source's format and what the report says about it."""

    fmt: Format
    note: str | None  # None: named by the user, nothing detected
    recognised: bool  # False: auto-detection failed; every line is quarantined (the run should fail)
    detection: Detection | None = None  # the evidence, for "auto"


def detection(sample_lines: list[str]) -> Detection:
    """The registered format matching most sample lines, with its evidence (below the threshold too)."""
    best: tuple[int, int, int] | None = None
    chosen: Format | None = None
    built = [(e.build(), e.detect_priority) for e in registry.entries() if e.detect_priority is not None]
    candidates: list[tuple[Format, int]] = list(built)
    for kind in wrapped.PREFIXES:
        carried = sum(1 for ln in wrapped.strip(kind, sample_lines) if ln is not None)
        if 2 * carried > len(sample_lines):  # most lines carry the header: try what follows it
            # A wrapped reading loses ties to a bare one. Formats read under '#' header lines
            # (Directed) are not tried: the ingest loop tracks their headers on the raw lines.
            candidates += [(wrapped.wrap(kind, f), p - 1000) for f, p in built if directed(f) is None]
    for fmt, priority in candidates:
        hits, exact = fmt.score(sample_lines)
        if hits and (best is None or (hits, exact, priority) > best):
            best, chosen = (hits, exact, priority), fmt
    # Header lines ('#Fields:', '#Version:') are not data: a W3C file with four of them above one
    # request is read in full. A sample of headers only counts them (a format may read them).
    data = sum(1 for ln in sample_lines if not ln.startswith("#")) or len(sample_lines)
    return Detection(chosen, min(best[0] if best else 0, data), data)


def detect(sample_lines: list[str]) -> Format | None:
    """The recognised format of a sample (ties → the higher ``detect_priority``), or None."""
    found = detection(sample_lines)
    return found.fmt if found.recognised else None


def sample(head: bytes) -> list[str]:
    """The non-blank lines of a source's first bytes that detection looks at."""
    lines = head.decode("utf-8", "replace").splitlines()
    if len(head) >= DETECT_SAMPLE_BYTES and not head.endswith(b"\n") and len(lines) > 1:
        lines.pop()  # cut by the sample's size, not by its writer: a junk line it is not
    return [ln for ln in lines if ln.strip()][:DETECT_SAMPLE_LINES]


_TYPED: dict[str, pl.DataType] = {
    "offset": pl.Int64(),
    "ts": pl.Datetime("us", "UTC"),
    "bad_field": pl.Boolean(),
    "status": pl.Int16(),
    "bytes": pl.Int64(),
}
_NO_ROWS = {c: _TYPED.get(c, pl.String()) for c in FIELD_COLUMNS}


@dataclass(frozen=True)
class Unrecognised:
    """What a source no registered format reads a line of is read as: every line an ``unparseable``
    reject (fail closed)."""

    name: str = "unrecognised"
    spec: str = "auto"

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        return Fields(frame=pl.DataFrame(schema=_NO_ROWS), unparsed=lines.get_column("offset"))

    def score(self, sample: list[str]) -> tuple[int, int]:
        return 0, 0


def choose_format(format_name: str, path: str, head: bytes | None = None) -> Choice:
    """The format of a source (``format_name`` or, for "auto", detected) and what the report says.

    ``head``: the source's first bytes when already read (stdin cannot be read twice).
    """
    if format_name != registry.AUTO:
        return Choice(registry.resolve(format_name), None, True)
    if head is None:
        with sources.open_stream(path) as stream:
            head = stream.read(DETECT_SAMPLE_BYTES)
    found = detection(sample(head))
    if found.fmt is None:
        return Choice(Unrecognised(), found.describe(), False, found)
    return Choice(found.fmt, found.describe(), found.recognised, found)


def choose(format_name: str, path: str, head: bytes | None = None) -> tuple[Format, str | None]:
    """``choose_format`` as (format, note), for the call sites that do not need the flag."""
    chosen = choose_format(format_name, path, head)
    return chosen.fmt, chosen.note
