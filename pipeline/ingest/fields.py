"""The seam between a log format and the pageview rows: what every format hands to ``rows.py``.

A format (``formats/``) turns the lines of a batch into *fields*: one row per line it understood,
in the columns of ``FIELD_COLUMNS``, plus the offsets of the lines it could not parse. It knows its
own syntax (regexes, JSON paths, ``#Fields:`` headers) and nothing of privacy, the store or the
quarantine; ``rows.py`` turns the fields into ``pageviews`` rows (``protect``, time bounds, client
networks) and every line that is not a row into a scrubbed reject. A new format implements
``Format`` and touches neither side.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.privacy.truncate import HOST_PORT

# The lines a format is given: non-blank lines that are valid text (binary and oversized lines are
# quarantined before, from their raw bytes). ``line`` still ends with its terminator ("\n", "\r\n",
# or none for a last line); ``non_ascii`` marks lines whose byte and character offsets differ.
LINE_COLUMNS = ("line", "offset", "non_ascii")

# The columns of ``Fields.frame``, in this order. Every column is present (null where the format does
# not carry it); string values are raw log text: ``rows.py`` masks and classifies them.
FIELD_COLUMNS: tuple[str, ...] = (
    "offset",  # Int64: the line's offset, as given
    "ts",  # Datetime(us, UTC): null when the line's time does not parse (a bad_timestamp)
    "bad_field",  # Boolean: a field matched but does not fit its type (e.g. a 20-digit byte count)
    "domain",  # normalised (``normalize_domain``); null: the source's configured domain, if any
    "method",  # the request's parts; method and protocol are checked for their shape in rows.py
    "path",
    "query",  # without the leading '?'
    "protocol",
    "status",  # Int16
    "bytes",  # Int64
    "referrer",  # null for none ('-')
    "user_agent",  # String, or already masked by ``FieldContext.agents`` (a Categorical)
    "client",  # the socket peer's address as logged: rows.py truncates, pseudonymises and drops it
)

# Columns a format may add after ``FIELD_COLUMNS`` (any subset, in this order); rows.py fills the
# others with nulls. Only what investigators need and a format really carries.
OPTIONAL_COLUMNS: dict[str, type[pl.DataType]] = {
    # The X-Forwarded-For chain as logged ("client, proxy1, proxy2"): rows.py resolves the real client
    # from it and ``ingest.trusted_proxies`` (right-most untrusted address) and stores none of it raw.
    "forwarded_for": pl.String,
    "request_id": pl.String,  # X-Request-Id, ALB trace id, CloudFront x-edge-request-id
    "tls": pl.String,  # TLS protocol version (TLSv1.3)
    "upstream": pl.String,  # the backend that served the request (masked: often an address)
    "edge_location": pl.String,  # CDN point of presence (CloudFront x-edge-location)
}

Agents = Callable[[pl.Series, pl.Series], pl.Series]


@dataclass(frozen=True)
class RawLines:
    """The bytes under the lines a format is given, for a format that reads bytes (the native scanner):
    row i's line is ``data[starts[i]:ends[i]]``, its terminator excluded, valid UTF-8."""

    data: pa.Buffer
    starts: np.ndarray  # int64, into data
    ends: np.ndarray


@dataclass(frozen=True)
class FieldContext:
    """What a format may use from the privacy side without knowing it."""

    # (distinct user agents, per-row codes) -> the masked column as the batch's Categorical. A
    # format that sees few distinct agents (combined logs) masks them per distinct value here;
    # a String user_agent column is masked by rows.py the same way.
    agents: Agents
    # The lines' bytes, row for row. A format that hands another format *changed* lines (a transport
    # header cut off) must drop it: ``dataclasses.replace(ctx, raw=None)``.
    raw: RawLines | None = None


@dataclass(frozen=True)
class Fields:
    """A format's reading of a batch: what every line it understood says, and what it could not read."""

    frame: pl.DataFrame  # FIELD_COLUMNS (+ some OPTIONAL_COLUMNS), one row per parsed line
    unparsed: pl.Series  # Int64 offsets of the lines the format could not parse (unparseable)
    # Int64 offsets of the format's own metadata lines (W3C ``#Fields:``/``#Date:`` headers): neither
    # rows nor rejects, counted as ``directives`` in the report.
    directives: pl.Series | None = None


class Format(Protocol):
    """A log format: a registry entry compiles its definition into one of these."""

    @property
    def name(self) -> str: ...  # the registry name, or "custom"

    @property
    def spec(self) -> str: ...  # its definition as the user wrote it (recorded in manifests)

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        """``lines`` (``LINE_COLUMNS``) -> fields and unparsed offsets; vectorised, no per-line loop."""
        ...

    def score(self, sample: list[str]) -> tuple[int, int]:
        """(sample lines it parses, lines it matches exactly): auto-detection's evidence."""
        ...


class Directed(Protocol):
    """A format whose lines are read under header directives that can change mid-file (W3C
    ``#Fields:``). Blocks are parsed out of order on worker threads, so the ingest loop tracks the
    directives in stream order on its own thread and hands each block the state at its start.
    Resuming a file mid-way, the state is rebuilt from the directive lines before the resume offset.
    """

    # Lines starting with this are directives: ``fold`` sees them in order (b"#" for W3C).
    directive_prefix: bytes

    def fold(self, state: str | None, directives: list[str]) -> str | None:
        """The state after ``directives`` (directive lines, in stream order, without terminators).

        The state is plain text (for W3C: the last ``#Fields:`` line) and never holds log data."""
        ...

    def bind(self, state: str | None) -> Format:
        """This format, reading lines that follow ``state`` (None: the start of a stream)."""
        ...


def directed(fmt: Format) -> Directed | None:
    """``fmt`` as a ``Directed`` format, or None when its lines need no header."""
    return fmt if isinstance(getattr(fmt, "directive_prefix", None), bytes) else None  # type: ignore[return-value]


def typed_numbers(status: pl.Series, size: pl.Series) -> tuple[pl.Series, pl.Series, pl.Series]:
    """(status as Int16, bytes as Int64, bad_field): a logged value that does not fit its type
    (a 20-digit byte count, a status of letters) is a ``bad_field``, not a silent null."""
    status_value = status.cast(pl.Int16, strict=False)
    size_value = size.cast(pl.Int64, strict=False)
    bad = (status.is_not_null() & status_value.is_null()) | (size.is_not_null() & size_value.is_null())
    return status_value, size_value, bad


def null_column(n: int, dtype: pl.DataType | type[pl.DataType] = pl.String, name: str = "") -> pl.Series:
    return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)


def normalize_domain(values: pl.Series) -> pl.Series:
    """Lower-case, port stripped (also from ``[v6]:443``), trailing dot removed; '-' and '' → null.

    Only values that need it are rewritten (one cheap scan instead of a capture regex per row).
    """
    needs = values.str.contains(r"[A-Z:\[\p{Lu}]|\.$|^-?$").fill_null(False)  # (ÖÄ.de too: found by review)
    if not needs.any():
        return values
    fixed = (
        values.filter(needs)
        .str.to_lowercase()
        .str.replace(HOST_PORT, "${1}${2}")
        .str.strip_chars_end(".")
        .replace({"-": None, "": None})
    )
    return values.clone().scatter(needs.arg_true(), fixed)  # scatter works in place: not on the caller's
