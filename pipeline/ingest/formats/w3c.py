"""W3C extended log files (IIS, CloudFront standard logs): fields named by ``#Fields:`` headers.

A W3C file says what its columns are in a ``#Fields: date time c-ip ...`` directive, and IIS writes
a new header (``#Software``/``#Version``/``#Date``/``#Fields``) on every restart, with possibly
other fields: the field list can change in the middle of a file, even of a batch. The format is
therefore ``fields.Directed``: the ingest loop folds the directive lines in stream order into a
*state* (the last ``#Fields:``, ``#Date:`` and ``#GMT-Offset:`` lines, as text) and hands every block
the state at its start (``bind``); inside a batch, ``parse`` cuts the lines into segments at each
such directive and reads each distinct field list with one vectorised pass (a loop over the few
field lists of a batch, never over lines). Every directive line is reported in ``Fields.directives``.

A definition (``--format 'w3c:...'``, a ``[formats.NAME]`` table with ``family = "w3c"``, the
built-ins) is words: ``key=value`` options, then the field list used before any ``#Fields:`` (none:
IIS's default). Options: ``separator=space|tab`` (CloudFront: tab); ``decode=plus|url``, how user
agent, referrer and forwarded-for write spaces (IIS: ``+``, unquoted values only; CloudFront:
``%20``); ``utc_offset=+01:00`` (the logged times are local at this offset).

Time zones (a decision): the W3C draft and IIS write ``date``/``time`` in UTC (IIS's "local time
rollover" option only names the files by local time), and CloudFront documents UTC, so these are
read as UTC unless a ``utc_offset`` is configured, or the file itself states a ``#GMT-Offset:``
(Oracle Web Cache). ``date-local``/``time-local`` (IIS Advanced Logging) are only used when a file
has no ``date``/``time`` and only with a known offset: without one the time is unknown and the line
is a ``bad_timestamp`` reject, rather than a row hours off in an evidence store.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from functools import lru_cache

import polars as pl

from pipeline.errors import FormatError
from pipeline.ingest.fields import FieldContext, Fields, normalize_domain, null_column, typed_numbers
from pipeline.ingest.formats import registry
from pipeline.ingest.formats import request as requests
from pipeline.ingest.formats.w3c_fields import CLOUDFRONT_DEFAULT, FIELDS, IIS_DEFAULT, IIS_DEFAULT_XFF

OPTIONAL = ("forwarded_for", "request_id", "tls", "edge_location")  # in OPTIONAL_COLUMNS' order
_DECODED = ("user_agent", "referrer", "forwarded_for")  # free text an investigator reads
_KEPT_DIRECTIVES = ("fields", "date", "gmt-offset")  # what the state holds, in this order
_IDENTIFIER = re.compile(r"^[A-Za-z][A-Za-z0-9()_.-]*$")
_OFFSET = re.compile(r"^([+-])([0-9]{1,2}):?([0-9]{2})?$")
_DATE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_TS_FORMAT = "%Y-%m-%d %H:%M:%S%.f"  # IIS Advanced Logging adds milliseconds
_DATE_LIKE = re.compile(r"[0-9]-\s*[0-9]")  # in any date _TS_FORMAT reads (also "2026- 1- 5")
# A field: a quoted string ("" escapes a quote; Advanced Logging, Oracle) or a run of non-spaces.
_QUOTED_FIELD = r'"(?:[^"]|"")*"|[^ "][^ ]*'
# %XX of printable ASCII, decoded once (CloudFront encodes spaces, quotes ...; %25 stays a single '%').
_HEX = [(c, f"{c:02X}") for c in range(0x20, 0x7F)]
_URL_FROM = [f"%{h}" for _, h in _HEX] + [f"%{h.lower()}" for _, h in _HEX if h != h.lower()]
_URL_TO = [chr(c) for c, _ in _HEX] + [chr(c) for c, h in _HEX if h != h.lower()]


@dataclass(frozen=True)
class Header:
    """What a state says: the field lists to try (in order), the date and offset the file gives."""

    fields: tuple[tuple[str, ...], ...]
    explicit: bool  # from a #Fields: line (not the format's default)
    date: str | None
    gmt_offset: int | None  # minutes east of UTC


@dataclass(frozen=True)
class W3CFormat:
    name: str
    spec: str
    default: tuple[tuple[str, ...], ...]  # field lists for lines before any #Fields:
    separator: str = " "
    decode: str = "plus"
    utc_offset: int | None = None  # minutes east of UTC, configured
    state: str | None = None  # the directives in force at the start of the batch (``bind``)
    directive_prefix: bytes = b"#"

    # -- Directed ------------------------------------------------------------------------------
    def fold(self, state: str | None, directives: list[str]) -> str | None:
        kept = {_key(line): line for line in (state or "").split("\n") if line}
        for line in directives:
            clean = _sanitized(line)
            if clean is not None:
                kept[_key(clean)] = clean
        folded = "\n".join(kept[k] for k in _KEPT_DIRECTIVES if k in kept)
        return folded or state

    def bind(self, state: str | None) -> W3CFormat:
        return replace(self, state=state)

    # -- Format ---------------------------------------------------------------------------------
    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        text = lines.get_column("line").str.strip_chars_end("\r\n")
        offsets = lines.get_column("offset")
        is_directive = text.str.starts_with("#")
        frames, unparsed = [], [offsets.clear()]
        for state, segment in self._segments(text, offsets, is_directive):
            frame, missed = self._read(segment, _header(state, self.default))
            frames.append(frame)
            unparsed.append(missed)
        frame = pl.concat(frames)  # (one segment at least, empty or not)
        return Fields(frame=frame, unparsed=pl.concat(unparsed), directives=offsets.filter(is_directive))

    def score(self, sample: list[str]) -> tuple[int, int]:
        """(data lines that fit, of which with a valid time and fields).

        Under a ``#Fields:`` header seen in the sample a line that fits counts (a W3C file by its own
        word, even when its local times cannot be placed); under the default field list only a line
        with a valid time does, so that other formats' lines are not claimed by a lucky field count.
        """
        return self.full_score(sample) if self.may_fit(sample) else (0, 0)

    def may_fit(self, sample: list[str]) -> bool:
        """Whether a line could fit: a header, or a line with a separator and a date (every default
        field list has one). Detection tries every format on every source; the full score cost
        ~30 ms on other logs (a test holds every sample log to it)."""
        return any(ln.startswith("#") or (self.separator in ln and _DATE_LIKE.search(ln)) for ln in sample)

    def full_score(self, sample: list[str]) -> tuple[int, int]:
        text = pl.Series("line", sample, dtype=pl.String).str.strip_chars_end("\r\n")
        offsets = pl.int_range(0, len(sample), dtype=pl.Int64, eager=True)
        hits = exact = 0
        for state, segment in self.bind(None)._segments(text, offsets, text.str.starts_with("#")):
            header = _header(state, self.default)
            frame, _ = self._read(segment, header)
            good = int((frame.get_column("ts").is_not_null() & ~frame.get_column("bad_field")).sum())
            hits += frame.height if header.explicit else good
            exact += good
        headers_only = not (~text.str.starts_with("#")).any()
        if headers_only and self.separator == " " and text.str.contains(_W3C_DIRECTIVE.pattern).all():
            # only headers so far (a new IIS file before its first request): a W3C file, not junk
            # (CloudFront delivers whole files: never a file of headers only)
            return len(sample), len(sample)
        return hits, exact

    # -- parts ----------------------------------------------------------------------------------
    def _segments(
        self, text: pl.Series, offsets: pl.Series, is_directive: pl.Series
    ) -> list[tuple[str | None, pl.DataFrame]]:
        """The batch's data lines grouped by the state they follow (one group per distinct state)."""
        data = pl.DataFrame({"text": text, "offset": offsets})
        kept = is_directive & text.str.contains(r"^#(?i:fields|date|gmt-offset):")
        if not kept.any():
            return [(self.state, data.filter(~is_directive))]
        # segment k follows the k-th kept directive; directive lines are few (headers, restarts)
        states = [self.state]
        for line in text.filter(kept).to_list():
            states.append(self.fold(states[-1], [line]))
        data = data.with_columns(segment=kept.cum_sum()).filter(~is_directive)
        by_state: dict[str | None, list[int]] = {}
        for i, state in enumerate(states):
            by_state.setdefault(state, []).append(i)
        return [
            (state, data.filter(pl.col("segment").is_in(ids)).drop("segment"))
            for state, ids in by_state.items()
        ]

    def _read(self, data: pl.DataFrame, header: Header) -> tuple[pl.DataFrame, pl.Series]:
        """(fields of the lines that fit one of the header's field lists, offsets of the others)."""
        parts: list[pl.DataFrame] = []
        todo = data
        for names in header.fields:
            columns = _wanted(names)
            if self.separator == " ":
                quoted = todo.get_column("text").str.contains('"', literal=True)
                raw, ok = _split(todo.filter(~quoted), names, columns, " ")
                parts.append(self._fields(raw.filter(ok), header, quoted=False))
                rest = pl.concat([todo.filter(~quoted).filter(~ok), todo.filter(quoted)])
                raw, ok = _match(rest, names, columns)
                parts.append(self._fields(raw.filter(ok), header, quoted=True))
            else:
                raw, ok = _split(todo, names, columns, self.separator)
                parts.append(self._fields(raw.filter(ok), header, quoted=False))
                rest = todo
            todo = rest.filter(~ok)
        return pl.concat(parts), todo.get_column("offset")

    def _fields(self, raw: pl.DataFrame, header: Header, *, quoted: bool) -> pl.DataFrame:
        n = raw.height

        def col(name: str) -> pl.Series:
            return raw.get_column(name) if name in raw.columns else null_column(n, name=name)

        if "target" in raw.columns and "path" not in raw.columns:
            split = pl.DataFrame(
                {"method": col("method"), "target": col("target"), "protocol": col("protocol")}
            )
            method, path, query, protocol = requests.split_target(split)
        else:
            method, path, query, protocol = col("method"), col("path"), col("query"), col("protocol")
        status_value, size_value, bad = typed_numbers(col("status"), col("bytes"))
        frame = pl.DataFrame(
            {
                "offset": raw.get_column("offset"),
                "ts": self._timestamps(raw, header),
                "bad_field": bad,
                "domain": normalize_domain(col("domain")),
                "method": method,
                "path": path,
                "query": query,
                "protocol": protocol,
                "status": status_value,
                "bytes": size_value,
                "referrer": self._decoded(raw, "referrer", quoted),
                "user_agent": self._decoded(raw, "user_agent", quoted),
                "client": col("client"),
                "forwarded_for": self._decoded(raw, "forwarded_for", quoted),
                **{name: col(name) for name in OPTIONAL[1:]},
            }
        )
        return frame.cast({"status": pl.Int16, "bytes": pl.Int64, "ts": pl.Datetime("us", "UTC")})

    def _decoded(self, raw: pl.DataFrame, name: str, quoted: bool) -> pl.Series:
        if name not in raw.columns:
            return null_column(raw.height, name=name)
        values = raw.get_column(name)
        if self.decode == "url":
            return values.str.replace_many(_URL_FROM, _URL_TO)
        plus = values.str.replace_all("+", " ", literal=True)  # IIS writes a space as '+'
        if quoted:  # a quoted value holds its spaces as they are: its '+' is a '+'
            return plus.zip_with(~raw.get_column(f"{name}_quoted"), values)
        return plus

    def _timestamps(self, raw: pl.DataFrame, header: Header) -> pl.Series:
        n = raw.height
        offset = self.utc_offset if self.utc_offset is not None else header.gmt_offset
        if "time" in raw.columns:
            date, time = raw.get_column("date", default=None), raw.get_column("time")
        elif "time_local" in raw.columns and offset is not None:
            date, time = raw.get_column("date_local", default=None), raw.get_column("time_local")
        else:  # no time, or a local time in an unknown zone: a bad_timestamp reject
            return null_column(n, pl.Datetime("us", "UTC"), "ts")
        if date is None:  # time-only files (IIS FTP): the day is the header's #Date
            date = pl.repeat(header.date, n, dtype=pl.String, eager=True)
        text = pl.DataFrame({"d": date, "t": time}).select(pl.concat_str("d", pl.lit(" "), "t")).to_series()
        ts = text.str.strptime(pl.Datetime("us", "UTC"), _TS_FORMAT, strict=False)
        return (ts.dt.offset_by(f"{-offset}m") if offset else ts).alias("ts")


def _wanted(names: tuple[str, ...]) -> dict[str, int]:
    """target -> index of the field that feeds it (the first identifier of ``FIELDS`` present)."""
    position = {name: i for i, name in reversed(list(enumerate(names)))}
    wanted: dict[str, int] = {}
    for ident, target in FIELDS.items():
        if ident in position and target not in wanted:
            wanted[target] = position[ident]
    return wanted


def _split(
    data: pl.DataFrame, names: tuple[str, ...], columns: dict[str, int], sep: str
) -> tuple[pl.DataFrame, pl.Series]:
    """Fields cut at every separator; a line fits when it has exactly ``len(names)`` of them."""
    n = len(names)
    parts = data.select("offset", p=pl.col("text").str.split_exact(sep, n)).unnest("p")
    fits = pl.col(f"field_{n - 1}").is_not_null() & pl.col(f"field_{n}").is_null()
    raw = parts.select(
        "offset",
        *[_dash(pl.col(f"field_{i}")).alias(t) for t, i in columns.items()],
        ok=fits.fill_null(False),
    )
    return raw.drop("ok"), raw.get_column("ok")


def _match(
    data: pl.DataFrame, names: tuple[str, ...], columns: dict[str, int]
) -> tuple[pl.DataFrame, pl.Series]:
    """Fields that may be quoted and separated by runs of spaces (one regex per field list)."""
    if not columns:  # a #Fields: list of nothing hostlogs reads
        return data.select("offset"), pl.repeat(False, data.height, eager=True)
    groups = {i: target for target, i in columns.items()}
    pattern = " +".join(
        f"(?P<{groups[i]}>{_QUOTED_FIELD})" if i in groups else f"(?:{_QUOTED_FIELD})"
        for i in range(len(names))
    )
    found = data.select("offset", g=pl.col("text").str.extract_groups(f"^ *{pattern} *$")).unnest("g")
    exprs: list[pl.Expr] = []
    for target in columns:
        value = pl.col(target)
        quoted = value.str.starts_with('"').fill_null(False)
        inner = value.str.slice(1, value.str.len_chars() - 2).str.replace_all('""', '"', literal=True)
        exprs += [
            _dash(pl.when(quoted).then(inner).otherwise(value)).alias(target),
            quoted.alias(f"{target}_quoted"),
        ]
    raw = found.select("offset", *exprs, ok=pl.col(groups[min(groups)]).is_not_null())
    return raw.drop("ok"), raw.get_column("ok")


def _dash(value: pl.Expr) -> pl.Expr:
    return pl.when((value != "-") & (value != "")).then(value)


# ----------------------------------------------------------------------------------------------------
# Directives and definitions


def _key(directive: str) -> str:
    """``fields`` of "#Fields: ...": exactly the form ``_segments`` cuts at ("#Fields :" is no
    directive for either, so where a header takes effect never depends on the block size)."""
    m = _DIRECTIVE_KEY.match(directive)
    return m.group(1).lower() if m else ""


_DIRECTIVE_KEY = re.compile(r"#([A-Za-z-]+):")
# The directives of the W3C draft (and IIS's, CloudFront's): a file of only these is a W3C file
# whose first request has not come yet.
_W3C_DIRECTIVE = re.compile(r"^#(?i:version|fields|software|date|start-date|end-date|remark|gmt-offset):")


# Real field lists have up to ~35 names (CloudFront 33). Each name is a group of the line pattern:
# one junk "#Fields:" line of 4,000 words made a regex over polars' size limit, which ended every run
# that met it (auto-detection reads the first lines of any file).
MAX_FIELDS = 128


def _sanitized(line: str) -> str | None:
    """A directive the state keeps, rebuilt from what it means only (no other text of the line:
    the state outlives the batch and must never carry log data), or None."""
    key = _key(line)
    value = line.split(":", 1)[1] if ":" in line else ""
    if key == "fields":  # a word that is no field identifier (an address, junk) becomes a placeholder
        words = [w if _IDENTIFIER.match(w) else "x-unknown" for w in value.split()]
        if len(words) > MAX_FIELDS:  # junk, not a header: the lines under it are unparseable rejects
            words = ["x-too-many-fields"]
        return "#Fields: " + " ".join(words) if words else None
    if key == "date":
        day = value.split()[0] if value.split() else ""
        return f"#Date: {day}" if _DATE.match(day) else None
    if key == "gmt-offset":
        minutes = _offset(value.strip())
        return None if minutes is None else f"#GMT-Offset: {minutes}"
    return None


@lru_cache(maxsize=256)
def _header(state: str | None, default: tuple[tuple[str, ...], ...]) -> Header:
    entries = {_key(line): line.split(":", 1)[1].strip() for line in (state or "").split("\n") if line}
    fields = entries.get("fields")
    return Header(
        fields=((tuple(fields.lower().split()),) if fields else default),
        explicit=fields is not None,
        date=entries.get("date"),
        gmt_offset=int(entries["gmt-offset"]) if "gmt-offset" in entries else None,
    )


def _offset(text: str) -> int | None:
    """'+01:00', '-0800', '+5' -> minutes east of UTC; 'Z', 'UTC', '0' -> 0; else None."""
    if text.upper() in {"Z", "UTC", "GMT", "0"}:
        return 0
    m = _OFFSET.match(text)
    if m is None or int(m.group(2)) > 14 or int(m.group(3) or 0) > 59:
        return None
    minutes = int(m.group(2)) * 60 + int(m.group(3) or 0)
    return -minutes if m.group(1) == "-" else minutes


def compile_w3c(definition: str, name: str = "custom") -> W3CFormat:
    """A definition (``[w3c:] [key=value ...] [#Fields:] field ...``) -> the format."""
    words = definition.removeprefix("w3c:").replace("#Fields:", " ").split()
    options = dict(w.split("=", 1) for w in words if "=" in w)
    fields = tuple(w.lower() for w in words if "=" not in w)
    unknown = set(options) - {"separator", "decode", "utc_offset"}
    if unknown:
        raise FormatError(f"unknown W3C option {sorted(unknown)[0]!r} in {definition!r}")
    separator = {"space": " ", "tab": "\t"}.get(options.get("separator", "space"))
    decode = options.get("decode", "url" if separator == "\t" else "plus")
    if separator is None or decode not in {"plus", "url"}:
        raise FormatError(f"W3C separator must be space or tab, decode plus or url, in {definition!r}")
    utc_offset = None
    if "utc_offset" in options:
        utc_offset = _offset(options["utc_offset"])
        if utc_offset is None:
            raise FormatError(f"W3C utc_offset {options['utc_offset']!r} is not like +01:00 or -0800")
    if bad := [f for f in fields if not _IDENTIFIER.match(f)]:
        raise FormatError(f"{bad[0]!r} is not a W3C field name in {definition!r}")
    if len(fields) > MAX_FIELDS:
        raise FormatError(f"W3C field list of {len(fields)} names: at most {MAX_FIELDS} are supported")
    if fields and "time" not in fields and "time-local" not in fields:
        raise FormatError(f"W3C field list {definition!r} has no time: hostlogs needs the request time")
    iis = tuple(tuple(d.lower().split()) for d in (IIS_DEFAULT, IIS_DEFAULT_XFF))
    default = iis if not fields or fields == iis[0] else (fields,)
    return W3CFormat(name, definition, default, separator, decode, utc_offset)


def _accepts(text: str) -> bool:
    return text.startswith("w3c:")


# Registered by ``formats/__init__.py``. ``w3c`` is auto-detected for every space-separated W3C file
# (IIS or not: the file's own #Fields: decide); ``iis`` is the same reader under the name IIS users
# look for; ``cloudfront`` reads tab-separated, URL-encoded lines (its headerless samples included).
BUILTIN: tuple[registry.FormatEntry, ...] = (
    registry.FormatEntry("w3c", "w3c", "", compile_w3c, 50, "W3C extended (IIS ...): #Fields: headers"),
    registry.FormatEntry("iis", "w3c", IIS_DEFAULT, compile_w3c, None, "IIS W3C logs (= w3c)"),
    registry.FormatEntry(
        "cloudfront",
        "w3c",
        "separator=tab decode=url " + CLOUDFRONT_DEFAULT,
        compile_w3c,
        55,
        "AWS CloudFront standard logs",
    ),
)
FAMILY = registry.Family("w3c", _accepts, compile_w3c, "'w3c:' and a #Fields: list")
