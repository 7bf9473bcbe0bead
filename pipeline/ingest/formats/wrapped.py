"""Wrapped lines: an access log forwarded over syslog, or written by a container runtime (CRI).

``syslog:INNER`` and ``cri:INNER`` (``syslog:combined``, ``cri:envoy_json``, ``syslog:%h %l ...``)
strip the transport's header from every line with one anchored regex pass, then hand the rest to the
inner format, offsets unchanged. A line without the header is unparseable. The header's own fields
are never stored: its timestamp is when the line was forwarded, not the request time (and RFC 3164
has no year), and the host and program names say nothing an investigator needs from a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from typing import Literal

import polars as pl

from pipeline.errors import FormatError
from pipeline.ingest.fields import FieldContext, Fields, Format, directed
from pipeline.ingest.formats import registry

Kind = Literal["syslog", "cri"]

# The patterns are common to Rust regex (polars) and Python re (``score``); both are anchored, so a
# pass stops after the header. Every piece excludes the delimiter that follows it (one-pass).
_PRI = r"<[0-9]{1,3}>"
_ISO = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:Z|[+-][0-9]{2}:?[0-9]{2})"
# RFC 3164 "Feb  6 12:00:01", journald "Feb 06 12:00:01"
_BSD = r"[A-Z][a-z]{2} [ 0-9][0-9] [0-9]{2}:[0-9]{2}:[0-9]{2}"
# RFC 5424 structured data: "-" or [id k="v" ...]..., where a value escapes '"', '\' and ']'.
_SD = r'(?:-|(?:\[[^ \]"]+(?: [^ =\]"]+="[^"\\]*(?:\\.[^"\\]*)*")*\])+)'
# "TAG: " or "TAG[PID]: " (a tag is the program name: nginx, apache2, docker/abc, php-fpm); the
# hostname before it is optional (lines written from the local socket have none). The tag excludes
# ':' so that a bare log line ("www.example.com:80 ...", "2001:db8::1 - -") is never taken for a tag.
_TAG = r"(?:[^ ]+ )?[^ :\[\]]+(?:\[[^\] ]*\])?: "
SYSLOG_PREFIX = (
    # RFC 5424: <PRI>1 TIMESTAMP HOST APP PROCID MSGID SD [BOM]MSG
    rf"^(?:{_PRI}1 (?:-|{_ISO}) [^ ]+ [^ ]+ [^ ]+ [^ ]+ {_SD} (?:\x{{FEFF}})?"
    # RFC 3164 with or without PRI; rsyslog's RSYSLOG_FileFormat/ForwardFormat and journald's
    # short/short-iso exports: the same shape with an ISO time (with year and offset)
    rf"|(?:{_PRI})?(?:{_BSD}|{_ISO}) {_TAG})"
)
# Kubernetes CRI (containerd, CRI-O): TIME STREAM F|P MSG. Only full lines ("F"): a "P" line is a
# piece of a line longer than the runtime's buffer (16 KiB), which pieces are not rejoined: it is
# unparseable, like any line without the header.
CRI_PREFIX = rf"^{_ISO} (?:stdout|stderr) F "

PREFIXES: dict[Kind, str] = {"syslog": SYSLOG_PREFIX, "cri": CRI_PREFIX}
# Python's re spells a code point \uFEFF; Rust's \x{FEFF}.
_PY_PREFIXES = {k: re.compile(v.replace(r"\x{FEFF}", "\ufeff")) for k, v in PREFIXES.items()}


def strip(kind: Kind, sample: list[str]) -> list[str | None]:
    """Each sample line without its header (None: the line has none). Python re, for detection."""
    rx = _PY_PREFIXES[kind]
    return [None if (m := rx.match(ln)) is None else ln[m.end() :] for ln in sample]


@dataclass(frozen=True)
class Wrapped:
    """An inner format read from behind a transport header (a ``fields.Format``)."""

    name: str
    spec: str
    kind: Kind
    inner: Format

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        line = lines.get_column("line")
        # One anchored pass; the header is never empty, so a line it shortened is a wrapped line.
        # ``non_ascii`` stays as given: a line's byte and character offsets still differ or not.
        bare = line.str.replace(PREFIXES[self.kind], "")
        wrapped = bare.str.len_bytes() < line.str.len_bytes()
        inner = self.inner.parse(lines.with_columns(line=bare).filter(wrapped), replace(ctx, raw=None))
        missing = lines.get_column("offset").filter(~wrapped)
        unparsed = pl.concat([inner.unparsed, missing]) if len(missing) else inner.unparsed
        return Fields(frame=inner.frame, unparsed=unparsed, directives=inner.directives)

    def score(self, sample: list[str]) -> tuple[int, int]:
        bare = [ln for ln in strip(self.kind, sample) if ln is not None]
        return self.inner.score(bare) if bare else (0, 0)


def parse_spec(definition: str) -> tuple[Kind, str]:
    kind, sep, inner = definition.partition(":")
    if not sep or kind not in PREFIXES or not inner:
        raise FormatError(f"{definition!r} is not a wrapped format: use syslog:FORMAT or cri:FORMAT")
    return kind, inner  # type: ignore[return-value]


def accepts(text: str) -> bool:
    return text.startswith(tuple(f"{k}:" for k in PREFIXES))


def compile_wrapped(definition: str, name: str) -> Wrapped:
    """``syslog:INNER`` / ``cri:INNER``, INNER any registered format name or family definition."""
    kind, inner_spec = parse_spec(definition)
    inner = registry.resolve(inner_spec)
    if directed(inner) is not None:
        # Header directives are tracked on the raw lines (``#Fields:``), which a transport header hides.
        raise FormatError(f"{inner_spec!r} reads '#' header lines and cannot be read from behind {kind}")
    if name == "custom" and inner.name != "custom":
        name = f"{kind}:{inner.name}"  # a named inner format: the wrapped format has a name too
    return Wrapped(name=name, spec=definition, kind=kind, inner=inner)


def wrap(kind: Kind, inner: Format) -> Wrapped:
    """``inner`` (already built, e.g. by detection) read from behind ``kind``'s header."""
    spec = f"{kind}:{inner.name if inner.name != 'custom' else inner.spec}"
    return Wrapped(name=spec if inner.name != "custom" else "custom", spec=spec, kind=kind, inner=inner)


FAMILY = registry.Family("wrapped", accepts, compile_wrapped, "syslog:FORMAT or cri:FORMAT")
