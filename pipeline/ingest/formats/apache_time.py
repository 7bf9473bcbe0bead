"""Apache's custom time directives ``%{FORMAT}t``: a regex piece per directive, one timestamp per line.

``%{%d/%b/%Y %H:%M:%S}t``, ``%{sec}t``, ``%{msec_frac}t`` ... each capture their own group; the
timestamp is assembled from them vectorised (the strftime parts concatenated and parsed by one
``strptime``; epoch counts through ``from_epoch``; a fraction added as a duration). Plain ``%t``
never comes here: ``apache.py`` parses it on its own fast path.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

import polars as pl

from pipeline.errors import FormatError

Phase = Literal["begin", "end"]

# mod_log_config's own tokens (they cannot be mixed with strftime in one directive; Apache's docs use
# several directives instead: "%{%d/%b/%Y %H:%M:%S}t.%{msec_frac}t %{%z}t"). Epoch counts are
# bounded in digits so that no value overflows Int64 microseconds (year 9999 has 12 digits in s).
TOKENS: dict[str, str] = {
    "sec": "[0-9]{1,12}",
    "msec": "[0-9]{1,15}",
    "usec": "[0-9]{1,18}",
    "msec_frac": "[0-9]{3}",
    "usec_frac": "[0-9]{6}",
}
_EPOCH_UNITS: dict[str, Literal["s", "ms", "us"]] = {"sec": "s", "msec": "ms", "usec": "us"}
_FRACTION_US = {"msec_frac": 1000, "usec_frac": 1}  # microseconds per unit of the fraction
# Years 1..9999 only: a larger count would be a datetime polars cannot hold (rows.py bounds the rest).
_EPOCH_MAX = {"sec": 253_402_300_800, "msec": 253_402_300_800_000, "usec": 253_402_300_800_000_000}

# strftime conversions (the C locale) → regex; composite ones are expanded first, for chrono too.
STRFTIME: dict[str, str] = {
    "Y": "[0-9]{4}",
    "y": "[0-9]{2}",
    "m": "[0-9]{2}",
    "d": "[0-9]{2}",
    "e": "[ 0-9][0-9]",  # day of month, space-padded
    "H": "[0-9]{2}",
    "I": "[0-9]{2}",
    "M": "[0-9]{2}",
    "S": "[0-9]{2}",
    "j": "[0-9]{3}",
    "b": "[A-Za-z]{3}",
    "a": "[A-Za-z]{3}",
    "B": "[A-Za-z]+",
    "A": "[A-Za-z]+",
    "p": "[AP]M",
    "z": "[+-][0-9]{4}",
    "s": "[0-9]{1,12}",  # seconds since the epoch
}
_COMPOSITE = {"T": "%H:%M:%S", "F": "%Y-%m-%d", "D": "%m/%d/%y", "R": "%H:%M", "h": "%b"}
_CONVERSION = re.compile(r"%(.)")
_SEP = "\x1f"  # joins the strftime parts of a line: it never occurs in one


@dataclass(frozen=True)
class TimePart:
    group: str  # its regex group
    phase: Phase  # begin: when the request arrived (Apache's default); end: when it was logged
    kind: str  # "strftime" or a TOKENS name
    strftime: str = ""  # expanded, for kind "strftime"


def parse_directive(arg: str, spec: str) -> tuple[Phase, str, str, str]:
    """``%{ARG}t`` → (phase, kind, expanded strftime or "", regex piece)."""
    phase: Phase = "begin"
    for prefix in ("begin:", "end:"):
        if arg.startswith(prefix):
            phase, arg = ("begin" if prefix == "begin:" else "end"), arg[len(prefix) :]
    if arg in TOKENS:
        return phase, arg, "", TOKENS[arg]
    expanded = _CONVERSION.sub(lambda m: _COMPOSITE.get(m.group(1), m.group(0)), arg)
    pieces: list[str] = []
    pos = 0
    for m in _CONVERSION.finditer(expanded):
        pieces.append(re.escape(expanded[pos : m.start()]).replace("\\ ", " "))
        pos = m.end()
        conv = m.group(1)
        if conv == "%":
            pieces.append("%")
        elif conv in STRFTIME:
            pieces.append(STRFTIME[conv])
        else:  # %Z (a zone name), %c/%x (locale forms), %U ...: no unambiguous instant
            raise FormatError(f"time format %{{{arg}}}t: %{conv} is not supported in {spec!r}")
    pieces.append(re.escape(expanded[pos:]).replace("\\ ", " "))
    if pos == 0:
        raise FormatError(f"time format %{{{arg}}}t has no time conversion in {spec!r}")
    return phase, "strftime", expanded, "".join(pieces)


def check(parts: list[TimePart], spec: str) -> None:
    """A format whose time directives give no instant (only fractions) is refused at compile time."""
    used = _used(parts)
    if not any(p.kind == "strftime" or p.kind in _EPOCH_UNITS for p in used):
        raise FormatError(f"log format {spec!r}: a fraction of a second needs a time (%t, %{{sec}}t ...)")


def _used(parts: list[TimePart]) -> list[TimePart]:
    # The request's time is its begin time (Apache's default, what %t logs); a format that only logs
    # end: times gets those. The other phase's parts are matched and ignored.
    phase = "begin" if any(p.phase == "begin" for p in parts) else "end"
    return [p for p in parts if p.phase == phase]


def timestamp(parts: tuple[TimePart, ...]) -> pl.Expr:
    """Datetime(us, UTC) from the captured groups; null when they do not make a valid time.

    A strftime format without %z is taken as UTC: the server's local zone is not in the line, and
    guessing it from the machine that ingests would move every request by hours. Hosting servers
    log in UTC; one that does not must log %z (or %{sec}t) for its times to be right.
    """
    used = _used(list(parts))
    epochs = sorted((p for p in used if p.kind in _EPOCH_UNITS), key=lambda p: _EPOCH_MAX[p.kind])
    stamps = [p for p in used if p.kind == "strftime"]
    fractions = sorted((p for p in used if p.kind in _FRACTION_US), key=lambda p: _FRACTION_US[p.kind])
    whole_seconds = True
    if epochs:  # the finest count is the most precise instant
        finest = epochs[-1]
        count = pl.col(finest.group).cast(pl.Int64, strict=False)
        count = pl.when(count < _EPOCH_MAX[finest.kind]).then(count)
        unit: Literal["s", "ms", "us"] = _EPOCH_UNITS[finest.kind]
        base = pl.from_epoch(count, time_unit=unit).dt.replace_time_zone("UTC")
        whole_seconds = finest.kind == "sec"
    else:
        text = pl.concat_str([pl.col(p.group) for p in stamps], separator=_SEP)
        layout = _SEP.join(p.strftime for p in stamps)
        base = text.str.strptime(pl.Datetime("us", "UTC"), layout, strict=False)
    base = base.cast(pl.Datetime("us", "UTC"))
    if fractions and whole_seconds:
        frac = fractions[0]  # usec_frac before msec_frac
        micros = pl.col(frac.group).cast(pl.Int64, strict=False) * _FRACTION_US[frac.kind]
        base = base + pl.duration(microseconds=micros)
    return base  # type: ignore[no-any-return]
