"""Apache ``LogFormat`` directives → one anchored regex with named groups (a ``fields.Format``).

A format is compiled once into a regex whose named groups are the *fields* hostlogs keeps
(``client``, ``ts``, ``request``, ``status`` ...). Directives whose value is never stored
(``%l``, ``%u``, ``%D`` ...) become non-capturing groups: fewer groups keep the regex engine on
its fast one-pass path (measured before hostlogs existed: the shape of the regex mattered 3x).
Parsing a batch is a few regex passes (``LogFormat.parse``): fast patterns first, the general one
for the lines they miss; the fields go to ``rows.py`` through the format-independent seam.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cache, partial

import polars as pl

from pipeline.errors import FormatError
from pipeline.ingest.fields import (
    OPTIONAL_COLUMNS,
    Agents,
    FieldContext,
    Fields,
    normalize_domain,
    null_column,
)
from pipeline.ingest.formats import apache_scan, apache_time
from pipeline.ingest.formats import request as requests
from pipeline.ingest.formats.apache_directives import (
    _DIRECTIVE_RE,
    _LETTERS_WITH_ARGUMENT,
    _OWN_PATTERN_IN_QUOTES,
    DIRECTIVES,
    HEADER_FIELDS,
    QUOTED,
    TOKEN,
    VARIABLE_FIELDS,
    VHOST,
)
from pipeline.privacy import mask as privacy


@dataclass(frozen=True)
class LogFormat:
    """A compiled log format: the regex (polars/Rust syntax) and the fields it captures."""

    name: str
    spec: str
    regex: str
    fields: tuple[str, ...]
    strict_regex: str  # every directive required, nothing extra: used to score auto-detection
    # ``regex`` with a quoted ``%r`` already split into REQUEST_PARTS, for the common request shape
    # only ("GET /path?query HTTP/1.1"); lines it misses fall back to ``regex``. None without "%r".
    fast_regex: str | None = None
    # The fast pattern only accepts a %v/%V domain that is already normalised (lower case, no
    # trailing dot, not '-'): its rows skip ``fields.normalize_domain``.
    fast_domain_normalized: bool = False
    # For formats ending in "%{Referer}i" "%{User-Agent}i" (combined, vhost_combined): the fast
    # pattern's head up to and including the referrer, anchored at its end. ``parse`` cuts a line at
    # its first '" "' (which only the referrer/user-agent boundary can hold: quoted values escape
    # '"') and matches the user agent per distinct value instead of per line. None otherwise.
    split_regex: str | None = None
    # %{FORMAT}t directives (apache_time.py), whose groups make the timestamp. Empty for plain %t,
    # which keeps its own fast path (the "ts" group, one strptime).
    time_parts: tuple[apache_time.TimePart, ...] = ()
    # The native scanner's layout flags when the fast pattern is one it reads (apache_scan.py): its
    # stage runs before the regex stages. None: regex stages only.
    scan_flags: int | None = None
    has_domain: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_domain", "domain" in self.fields)

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        """The native scanner first where it applies (``scan_flags``, ``ctx.raw``), else the fast
        stages (each a strict subset of the general pattern with the same captures); the lines a stage
        cannot match go to the next one, the general pattern last."""
        parts: list[pl.DataFrame] = []
        todo = lines
        unparsed = todo.get_column("offset").clear()
        stages = _stages(self, ctx.agents)
        if self.scan_flags is not None and ctx.raw is not None:
            scanned = apache_scan.scan_stage(lines, ctx.raw, self.scan_flags, ctx.agents)
            if scanned is not None:
                parts.append(scanned[0])
                todo = scanned[1]
                if todo.height == 0:
                    return Fields(frame=parts[0], unparsed=unparsed)
                # The scanner leaves the odd lines (~0.5 %), which the fast stages mostly miss too:
                # the general pattern alone costs less than a pass of each stage (~15 ms per batch).
                stages = stages[-1:]
        for i, (extract, normalized) in enumerate(stages):
            extracted = extract(todo)
            matched = extracted.get_column("ts_raw").is_not_null()
            good = extracted.drop("line").filter(matched)  # (the lines are not needed)
            parts.append(_fields(good, self, normalized, ctx.agents))
            if matched.all():
                break
            missed = extracted.filter(~matched)
            if i + 1 < len(stages):
                todo = missed.select(lines.columns)
            else:
                unparsed = missed.get_column("offset")
        return Fields(frame=pl.concat(parts) if len(parts) > 1 else parts[0], unparsed=unparsed)

    def score(self, sample: list[str]) -> tuple[int, int]:
        # The generated syntax is common to Rust regex and Python re. Lines parsed decide; lines that
        # match every directive exactly break ties (a common log also parses as combined).
        lenient, strict = re.compile(self.regex), re.compile(self.strict_regex)
        return sum(1 for ln in sample if lenient.match(ln)), sum(1 for ln in sample if strict.match(ln))


def compile_format(spec: str, *, name: str = "custom") -> LogFormat:
    """``_compile``, with the native scanner's flags when its fast pattern is one the scanner reads."""
    fmt = _compile(spec, name=name)
    return replace(fmt, scan_flags=_scan_shapes().get((fmt.fast_regex, fmt.fields)))


@cache
def _scan_shapes() -> dict[tuple[str | None, tuple[str, ...]], int]:
    """(fast pattern, fields) of each shape the scanner reads → its layout flags."""
    shapes = {spec: _compile(spec) for spec in apache_scan.SHAPES}
    return {(f.fast_regex, f.fields): apache_scan.SHAPES[spec] for spec, f in shapes.items()}


def _compile(spec: str, *, name: str = "custom") -> LogFormat:
    """Translate an Apache LogFormat string into an anchored regex with named groups.

    Trailing quoted request headers (combined's ``"%{Referer}i" "%{User-Agent}i"``) are optional as
    a block, so common-format lines mixed into a combined log still parse (those fields are null).
    Extra quoted fields after the format (nginx setups often append ``"$http_x_forwarded_for"``) are
    matched but never stored: they hold client addresses. Anything else is a reject. The pattern is
    kept one-pass (every branch starts with a distinct character) for the regex engine's fast path.
    """
    head_spec, tail_spec = _split_optional_tail(spec)
    fields: list[str] = []
    times: list[apache_time.TimePart] = []
    head = _translate(head_spec, fields, spec, times)
    extra = f'(?: "{QUOTED}")*'
    if tail_spec:
        tail = _translate(tail_spec, fields, spec, times)
        regex = f"^{head}(?:{tail}{extra})?$"
    else:
        tail = ""
        regex = f"^{head}{extra}$"
    if "ts" not in fields:
        raise FormatError(f"log format {spec!r} has no %t: hostlogs needs the request time")
    if times:
        apache_time.check(times, spec)
    fast, fast_domain_normalized = _fast_variant(regex, spec)
    split = None
    if fast is not None and tail_spec.lower() == _REFERER_AGENT_TAIL:
        split, _ = _fast_variant(f'^{head} "(?P<referrer>{QUOTED})"$', spec)
    return LogFormat(
        name=name,
        spec=spec,
        regex=regex,
        fields=tuple(fields),
        strict_regex=f"^{head}{tail}$",
        fast_regex=fast,
        fast_domain_normalized=fast_domain_normalized,
        split_regex=split,
        time_parts=tuple(times),
    )


# The request line split inside the main pattern: one regex pass instead of a second split pass
# (measured ~7 % of a batch). Deliberately narrow (letters, no space/quote/backslash in the target,
# HTTP/x.y): exactly the lines the general split would cut the same way; anything else uses it.
REQUEST_PARTS = ("req_method", "req_path", "req_query", "req_protocol")
_FAST_REQUEST = (
    r'(?P<req_method>[A-Za-z]+) (?P<req_path>[^ ?"\\]*)(?:\?(?P<req_query>[^ "\\]*))?'
    r" (?P<req_protocol>HTTP/[0-9.]+)"
)


# A server name as normalize_domain leaves it: lower case, dot-separated labels, no trailing dot.
# Costs the regex nothing measurable and saves a per-row scan; other names take the general pattern.
_NORMAL_VHOST = r"[a-z0-9_][a-z0-9_-]*(?:\.[a-z0-9_-]+)*"


def _fast_variant(regex: str, spec: str) -> tuple[str | None, bool]:
    """(the fast pattern, whether its domain group only accepts normalised names)."""
    request = f"(?P<request>{QUOTED})"
    if '"%r"' not in spec or regex.count(request) != 1:
        return None, False
    fast = regex.replace(request, _FAST_REQUEST)
    domain = f"(?P<domain>{VHOST})"
    if fast.count(domain) != 1:
        return fast, False
    return fast.replace(domain, f"(?P<domain>{_NORMAL_VHOST})"), True


_REFERER_AGENT_TAIL = ' "%{referer}i" "%{user-agent}i"'
_OPTIONAL_TAIL_RE = re.compile(r'((?: "%\{[^}]+\}i")+)$')


def _split_optional_tail(spec: str) -> tuple[str, str]:
    m = _OPTIONAL_TAIL_RE.search(spec)
    if not m or m.start() == 0:
        return spec, ""
    return spec[: m.start()], m.group(1)


def _translate(spec: str, fields: list[str], whole: str, times: list[apache_time.TimePart]) -> str:
    parts: list[str] = []
    pos = 0
    in_quotes = False
    for m in _DIRECTIVE_RE.finditer(spec):
        literal = spec[pos : m.start()]
        in_quotes ^= literal.count('"') % 2 == 1
        arg, letter = m.group(1), m.group(2)
        parts.append(_literal(literal, before_port=letter == "p"))
        pos = m.end()
        if letter == "%":
            parts.append("%")
            continue
        if letter == "t" and (arg is not None or times):
            parts.append(_time_directive(arg, fields, whole, times))
            continue
        fname, pattern = _directive(arg, letter, whole)
        if in_quotes and letter not in _OWN_PATTERN_IN_QUOTES:
            pattern = QUOTED  # inside quotes the server escapes " and \; any quoted text is valid
        if fname is None or fname in fields:
            parts.append(f"(?:{pattern})")
        else:
            fields.append(fname)
            parts.append(f"(?P<{fname}>{pattern})")
        if letter == "p" and parts[-2].endswith("(?::"):
            parts.append(")?")
    tail = spec[pos:]
    if (in_quotes ^ (tail.count('"') % 2 == 1)) is True:
        raise FormatError(f"unbalanced quotes in log format {whole!r}")
    parts.append(_literal(tail, before_port=False))
    return "".join(parts)


def _directive(arg: str | None, letter: str, spec: str) -> tuple[str | None, str]:
    if arg is not None:
        if letter == "i":
            return HEADER_FIELDS.get(arg.lower()), TOKEN
        if letter not in _LETTERS_WITH_ARGUMENT:
            raise FormatError(f"unsupported LogFormat directive %{{{arg}}}{letter} in {spec!r}")
        # %{VAR}e, %{Foo}o, %{cookie}C, %{format}p ...: matched, not stored unless listed
        return VARIABLE_FIELDS.get((letter, arg.lower())), TOKEN
    if letter not in DIRECTIVES:
        raise FormatError(f"unsupported LogFormat directive %{letter} in {spec!r}")
    return DIRECTIVES[letter]


def _time_directive(arg: str | None, fields: list[str], spec: str, times: list[apache_time.TimePart]) -> str:
    """``%{FORMAT}t``: its own capture group (the first time group of a format is "ts", which marks a
    matched line). A plain ``%t`` in a format with ``%{FORMAT}t`` (arg None) is one of the parts."""
    phase: apache_time.Phase = "begin"
    if arg is None:
        kind, strftime, pattern = "strftime", _TS_FORMAT, DIRECTIVES["t"][1]
    else:
        phase, kind, strftime, pattern = apache_time.parse_directive(arg, spec)
    if not times and "ts" in fields:  # a plain %t came first: it is a part too
        times.append(apache_time.TimePart("ts", "begin", "strftime", _TS_FORMAT))
    group = "ts" if "ts" not in fields else f"ts_{len(times)}"
    fields.append(group)
    times.append(apache_time.TimePart(group, phase, kind, strftime))
    return f"(?P<{group}>{pattern})"


def _literal(text: str, *, before_port: bool) -> str:
    escaped = re.escape(text).replace("\\ ", " ")
    # Quirk: in "%v:%p" the ':' and port are optional together; nginx "$host" lines often lack the port.
    if before_port and text.endswith(":"):
        return escaped[: -len(re.escape(":"))] + "(?::"
    return escaped


# ----------------------------------------------------------------------------------------------------
# Parsing a batch: regex passes over the lines, vectorised

Stage = Callable[[pl.DataFrame], pl.DataFrame]
_TS_FORMAT = "[%d/%b/%Y:%H:%M:%S %z]"  # %t with its brackets (no strip pass)


def _stages(fmt: LogFormat, agents: Agents) -> list[tuple[Stage, bool]]:
    """(extract function, whether its domains come out normalised), in the order they are tried."""
    stages: list[tuple[Stage, bool]] = []
    if fmt.split_regex is not None:
        split = partial(_extract_split, regex=fmt.split_regex, fmt=fmt, agents=agents)
        stages.append((split, fmt.fast_domain_normalized))
    if fmt.fast_regex is not None:
        stages.append((partial(_extract, pattern=fmt.fast_regex, fmt=fmt), fmt.fast_domain_normalized))
    stages.append((partial(_extract, pattern=fmt.regex, fmt=fmt), False))
    return stages


def _extract(frame: pl.DataFrame, pattern: str, fmt: LogFormat) -> pl.DataFrame:
    """The lines with their captures, parsed timestamp and ``ts_raw`` (null: the line did not match)."""
    # Values still end with their terminator; the pattern accepts it instead of a strip pass.
    fields = frame.get_column("line").str.extract_groups(pattern[:-1] + r"\r?\n?$").struct.unnest()
    return _checked(frame, fields, fmt)


# What follows the referrer's closing '" "': the user agent, any extra quoted fields, the terminator.
_AGENT_TAIL = rf'^({QUOTED})"(?: "{QUOTED}")*\r?\n?$'


def _extract_split(frame: pl.DataFrame, regex: str, fmt: LogFormat, agents: Agents) -> pl.DataFrame:
    """``_extract`` for combined-style formats, with the user agent matched per distinct value.

    The regex engine's cost grows with the bytes it walks, and the user agent is the longest field
    while a batch holds far fewer distinct ones than lines (hundreds to thousands per 130k lines).
    So each line is cut at its first '" "' (the referrer/user-agent boundary: a quoted value escapes
    its '"', and nothing before the referrer can end the head pattern there): the head is matched per
    line up to the referrer's closing quote; the rest (user agent, extra quoted fields, terminator)
    once per distinct value. A line is this stage's only if both parts match, which makes it a line
    of the fast pattern with the same captures (that pattern is one-pass: a line has one parse).
    Everything else is left to the next stage.
    """
    lines = frame.get_column("line")
    # find() counts bytes, head() and slice() characters: lines with non-ASCII bytes are not cut.
    cut = lines.str.find('" "', literal=True).set(frame.get_column("non_ascii"), None)
    fields = lines.str.head(cut + 1).str.extract_groups(regex).struct.unnest()
    tails, codes = privacy.factorize(lines.str.slice(cut + 3))
    agent = tails.str.extract(_AGENT_TAIL, 1)
    matched = agent.is_not_null().gather(codes).fill_null(False)
    fields = fields.with_columns(
        user_agent=agents(agent, codes), ts=pl.when(matched).then(fields.get_column("ts"))
    )  # no user agent: unparseable here, the next stage decides
    return _checked(frame, fields, fmt)


def _checked(frame: pl.DataFrame, fields: pl.DataFrame, fmt: LogFormat) -> pl.DataFrame:
    checked = pl.concat([frame, fields], how="horizontal")
    # bytes as Int64 (null for '-'), parsed once: it both checks the field and is the stored value
    number = pl.col("bytes").cast(pl.Int64, strict=False) if "bytes" in fmt.fields else pl.lit(None, pl.Int64)
    # strptime caches repeated values (many lines share a second); %z gives the true UTC instant, so
    # a line logged at 23:30 -0700 lands on the next UTC day. A time that does not parse (bad date,
    # offset such as +9999) is null, never an exception, whatever the text: rows.py bounds it.
    ts = pl.col("ts").str.strptime(pl.Datetime("us", "UTC"), _TS_FORMAT, strict=False)
    if fmt.time_parts:  # %{FORMAT}t directives
        ts = apache_time.timestamp(fmt.time_parts)
    checked = checked.with_columns(ts=ts, ts_raw=pl.col("ts"), bytes_value=number)
    return checked.with_columns(bad_field=_bad_field(fmt))


def _bad_field(fmt: LogFormat) -> pl.Expr:
    """A numeric field that matched the regex but does not fit its type (e.g. a 20-digit byte count)."""
    if "bytes" not in fmt.fields:
        return pl.lit(False)
    b = pl.col("bytes")
    return b.is_not_null() & (b != "-") & pl.col("bytes_value").is_null()


def _fields(good: pl.DataFrame, fmt: LogFormat, domain_normalized: bool, agents: Agents) -> pl.DataFrame:
    """A stage's good lines as ``FIELD_COLUMNS`` whatever the stage: request split, domain
    normalised, '-' as none, user agents masked."""
    method, path, query, protocol = _request_columns(good, fmt)
    agent = _column(good, "user_agent")
    if not isinstance(agent.dtype, pl.Categorical):  # the split stage's is done already
        agent = agents(*privacy.factorize(agent))
    status = _column(good, "status").replace("-", None).cast(pl.Int16, strict=False)
    return pl.DataFrame(
        {
            "offset": good.get_column("offset"),
            "ts": good.get_column("ts"),
            "bad_field": good.get_column("bad_field"),
            "domain": _domain(good, fmt, domain_normalized),
            "method": method,
            "path": path,
            "query": query,
            "protocol": protocol,
            "status": status,
            "bytes": good.get_column("bytes_value"),
            "referrer": _column(good, "referrer").replace("-", None),
            "user_agent": agent,
            "client": _column(good, "client"),
            **{c: _column(good, c) for c in OPTIONAL_COLUMNS if c in fmt.fields},
        }
    )


def _request_columns(good: pl.DataFrame, fmt: LogFormat) -> requests.Request:
    """method, path, query (without '?'), protocol, from whichever directives the format has."""
    if REQUEST_PARTS[0] in good.columns:  # split by the fast pattern already
        method, path, query, protocol = (good.get_column(c) for c in REQUEST_PARTS)
        return method, path, query, protocol
    if "request" in fmt.fields:
        parts = requests.split_request_line(good.get_column("request"))
    else:  # %m %U%q %H formats
        parts = requests.from_columns(good, {"method": "method", "target": "path", "protocol": "protocol"})
    return requests.split_target(parts, good.get_column("query") if "query" in fmt.fields else None)


def _column(frame: pl.DataFrame, name: str) -> pl.Series:
    if name not in frame.columns:
        return null_column(frame.height, name=name)
    return frame.get_column(name)


def _domain(frame: pl.DataFrame, fmt: LogFormat, normalized: bool) -> pl.Series:
    if "domain" not in fmt.fields:
        return null_column(frame.height, name="domain")
    domain = frame.get_column("domain")
    return domain if normalized else normalize_domain(domain)  # (the pattern only matched normal names)
