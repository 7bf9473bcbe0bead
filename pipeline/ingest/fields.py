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

import polars as pl

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
    "client",  # the client address as logged: rows.py truncates, pseudonymises and drops it
)

Agents = Callable[[pl.Series, pl.Series], pl.Series]


@dataclass(frozen=True)
class FieldContext:
    """What a format may use from the privacy side without knowing it."""

    # (distinct user agents, per-row codes) -> the masked column as the batch's Categorical. A
    # format that sees few distinct agents (combined logs) masks them per distinct value here;
    # a String user_agent column is masked by rows.py the same way.
    agents: Agents


@dataclass(frozen=True)
class Fields:
    """A format's reading of a batch: what every line it understood says, and what it could not read."""

    frame: pl.DataFrame  # FIELD_COLUMNS, one row per parsed line
    unparsed: pl.Series  # Int64 offsets of the lines the format could not parse (unparseable)


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


def null_column(n: int, dtype: pl.DataType | type[pl.DataType] = pl.String, name: str = "") -> pl.Series:
    return pl.repeat(None, n, dtype=dtype, eager=True).alias(name)


def normalize_domain(values: pl.Series) -> pl.Series:
    """Lower-case, port stripped (also from ``[v6]:443``), trailing dot removed; '-' and '' → null.

    Only values that need it are rewritten (one cheap scan instead of a capture regex per row).
    """
    needs = values.str.contains(r"[A-Z:\[]|\.$|^-?$").fill_null(False)
    if not needs.any():
        return values
    fixed = (
        values.filter(needs)
        .str.to_lowercase()
        .str.replace(r"^(\[[^\]]*\])(?::[0-9]*)?$|^([^:\[\]]*):[0-9]*$", "${1}${2}")
        .str.strip_chars_end(".")
        .replace({"-": None, "": None})
    )
    return values.clone().scatter(needs.arg_true(), fixed)  # scatter works in place: not on the caller's
