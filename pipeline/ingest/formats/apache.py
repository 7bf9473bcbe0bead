"""Log formats as data: Apache ``LogFormat`` directives → one anchored regex with named groups.

A format is compiled once into a regex whose named groups are the *fields* hostlogs keeps
(``client``, ``ts``, ``request``, ``status`` ...). Directives whose value is never stored
(``%l``, ``%u``, ``%D`` ...) become non-capturing groups: fewer groups keep the regex engine on
its fast one-pass path (measured before hostlogs existed: the shape of the regex mattered 3x).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pipeline.errors import FormatError

# Regex building blocks. Rust regex (polars) has no look-around; every class excludes the
# delimiter that follows it so that the pattern stays one-pass (unambiguous left to right).
QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'  # Apache escapes " and \ inside quoted fields as \" and \\
TOKEN = r"[^ ]*"
TOKEN1 = r"[^ ]+"
HOST = r"[^ ]+"  # an IP, [IPv6]:port, a hostname (HostnameLookups On), 'unix:', '-'
VHOST = r"\[[0-9A-Fa-f:.]+\]|[^ :\[\]]+"  # server name or [IPv6] literal, without port
NUM = r"[0-9]+"
NUM_OR_DASH = r"[0-9]+|-"

# directive → (field name or None when the value is not stored, regex when unquoted, quoted-ok)
# Field names are the parser's internal names; parse.py maps them to the pageviews schema.
DIRECTIVES: dict[str, tuple[str | None, str]] = {
    "h": ("client", HOST),  # remote host; an IP unless HostnameLookups is on
    "a": ("client", HOST),  # client IP (mod_remoteip's view when enabled)
    "l": (None, TOKEN1),  # identd: always '-' in practice, never stored
    "u": (None, TOKEN1),  # remote user: personal data, never stored
    "t": ("ts", r"\[[^\]]+\]"),  # [10/Oct/2000:13:55:36 -0700]
    "r": ("request", QUOTED),  # first line of the request, escaped by the server
    "m": ("method", r"[A-Za-z]+|-"),
    "U": ("path", r"[^ ?\"]*"),
    "q": ("query", r"(?:\?[^ \"]*)?"),  # includes the leading '?', empty when none
    "H": ("protocol", r"[^ \"]*"),
    ">s": ("status", r"[0-9]{3}"),
    "s": ("status", r"[0-9]{3}"),
    "<s": ("status", r"[0-9]{3}"),
    "b": ("bytes", NUM_OR_DASH),  # CLF: '-' for zero bytes
    "B": ("bytes", NUM),
    "O": ("bytes", NUM_OR_DASH),  # bytes sent incl. headers (mod_logio)
    "I": (None, NUM_OR_DASH),
    "S": (None, NUM_OR_DASH),
    "v": ("domain", VHOST),  # canonical ServerName
    "V": ("domain", VHOST),  # server name per UseCanonicalName
    "p": (None, NUM),  # port: the domain is stored without it
    "D": (None, NUM_OR_DASH),  # duration µs
    "T": (None, r"[0-9.]+|-"),
    "X": (None, r"[X+\-]"),
    "k": (None, NUM),
    "P": (None, NUM),
    "L": (None, TOKEN),
    "f": (None, TOKEN),
    "A": (None, TOKEN),
    "R": (None, TOKEN),
}

# %{NAME}i headers that map to stored fields; any other header is matched but not stored.
HEADER_FIELDS: dict[str, str] = {"referer": "referrer", "user-agent": "user_agent", "host": "domain"}

NAMED_FORMATS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    # Apache's and nginx's default "combined". Referer and User-Agent are optional so that
    # the common-format lines some servers mix in still parse (their fields become null).
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
}
# Auto-detection preference on ties: the more specific format first.
DETECT_ORDER = ("vhost_combined", "combined", "common")

# Directives whose pattern already excludes '"': inside quotes they keep it ("%m %U%q %H" splits).
_OWN_PATTERN_IN_QUOTES = frozenset({"m", "U", "q", "H"})
_LETTERS_WITH_ARGUMENT = frozenset("ioenCcxpPTahLt") | {"^ti", "^to"}
_DIRECTIVE_RE = re.compile(r"%(?:[!0-9,]*)(?:\{([^}]*)\})?([<>]?[a-zA-Z%])")


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
    # trailing dot, not '-'): its rows skip ``parse.normalize_domain``.
    fast_domain_normalized: bool = False
    # For formats ending in "%{Referer}i" "%{User-Agent}i" (combined, vhost_combined): the fast
    # pattern's head up to and including the referrer, anchored at its end. parse.py cuts a line at
    # its first '" "' (which only the referrer/user-agent boundary can hold: quoted values escape
    # '"') and matches the user agent per distinct value instead of per line. None otherwise.
    split_regex: str | None = None
    has_domain: bool = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "has_domain", "domain" in self.fields)


def resolve(name_or_spec: str) -> LogFormat:
    """A named format (``combined``) or a raw Apache LogFormat string (``%h %l ...``)."""
    if name_or_spec in NAMED_FORMATS:
        return compile_format(NAMED_FORMATS[name_or_spec], name=name_or_spec)
    if "%" not in name_or_spec:
        known = ", ".join([*NAMED_FORMATS, "auto"])
        raise FormatError(f"unknown log format {name_or_spec!r}: use one of {known} or a LogFormat string")
    return compile_format(name_or_spec, name="custom")


def compile_format(spec: str, *, name: str = "custom") -> LogFormat:
    """Translate an Apache LogFormat string into an anchored regex with named groups.

    Trailing quoted request headers (combined's ``"%{Referer}i" "%{User-Agent}i"``) are optional as
    a block, so common-format lines mixed into a combined log still parse (those fields are null).
    Extra quoted fields after the format (nginx setups often append ``"$http_x_forwarded_for"``) are
    matched but never stored: they hold client addresses. Anything else is a reject. The pattern is
    kept one-pass (every branch starts with a distinct character) for the regex engine's fast path.
    """
    head_spec, tail_spec = _split_optional_tail(spec)
    fields: list[str] = []
    head = _translate(head_spec, fields, spec)
    extra = f'(?: "{QUOTED}")*'
    if tail_spec:
        tail = _translate(tail_spec, fields, spec)
        regex = f"^{head}(?:{tail}{extra})?$"
    else:
        tail = ""
        regex = f"^{head}{extra}$"
    if "ts" not in fields:
        raise FormatError(f"log format {spec!r} has no %t: hostlogs needs the request time")
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


def _translate(spec: str, fields: list[str], whole: str) -> str:
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
        if letter == "t":
            raise FormatError(f"custom time format %{{{arg}}}t is not supported yet in {spec!r}; use %t")
        return None, TOKEN  # %{VAR}e, %{Foo}o, %{cookie}C, %{format}p ...: matched, not stored
    if letter not in DIRECTIVES:
        raise FormatError(f"unsupported LogFormat directive %{letter} in {spec!r}")
    return DIRECTIVES[letter]


def _literal(text: str, *, before_port: bool) -> str:
    escaped = re.escape(text).replace("\\ ", " ")
    # Quirk: in "%v:%p" the ':' and port are optional together; nginx "$host" lines often lack the port.
    if before_port and text.endswith(":"):
        return escaped[: -len(re.escape(":"))] + "(?::"
    return escaped


def detect(sample_lines: list[str]) -> LogFormat | None:
    """Pick the named format matching most sample lines (ties → the more specific format)."""
    best: tuple[int, int, int] | None = None
    chosen: LogFormat | None = None
    for rank, name in enumerate(DETECT_ORDER):
        fmt = resolve(name)
        # The generated syntax is common to Rust regex and Python re. Lines parsed decide; lines that
        # match every directive exactly break ties (a common log also parses as combined).
        lenient, strict = re.compile(fmt.regex), re.compile(fmt.strict_regex)
        hits = sum(1 for line in sample_lines if lenient.match(line))
        exact = sum(1 for line in sample_lines if strict.match(line))
        if hits and (best is None or (hits, exact, -rank) > best):
            best, chosen = (hits, exact, -rank), fmt
    return chosen


def is_format_spec(value: str) -> bool:
    return value == "auto" or value in NAMED_FORMATS or "%" in value
