"""JSON lines → one String column per JSON path, and JSON times → UTC instants (for ``jsonl.py``).

Decoding is ``str.json_decode`` with an explicit struct dtype built from the paths a format needs:
one parse per line. Measured on 100k lines (2 cores, polars 2.1): nginx-style flat objects, 16
paths: 0.25 s with ``json_decode`` against 2.4 s with one ``str.json_path_match`` per path; Caddy's
nested objects, 13 paths: 1.5 s against 6.0 s. But ``json_decode`` fails a whole batch on one line
that is not JSON or whose value has another type than the dtype (an object where a string is
expected), so a failing chunk is halved until the bad lines are isolated in small chunks, which
``json_path_match`` reads (null for a line that is not JSON). Both read scalars as their JSON text
(``1.5``, ``true``); a duplicated key gives the first value with ``json_decode``, the last with
``json_path_match``. Flat objects whose keys come in one order (nginx's log_format) are read by one
regex per key layout first (``layout_pattern``), which captures only what the decoder would read
the same way; the decoder reads the other lines.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import polars as pl

from pipeline.errors import FormatError

Step = str | int  # an object key, or an array index (ALL: every element, joined)
ALL = -1
PATH_STEP_RE = re.compile(r'\.?(?:\["([^"\\]+)"\]|\[([0-9]+|\*)\]|([^.\["\]]+))')


@dataclass(frozen=True)
class JsonPath:
    """A path in a JSON object, as the definition writes it (``request.headers.User-Agent[0]``)."""

    text: str
    steps: tuple[Step, ...]

    def expr(self, column: str) -> pl.Expr:
        """The value at this path in the decoded struct ``column`` (null where missing)."""
        e = pl.col(column)
        for step in self.steps:
            if step == ALL:  # (the last step only) a header sent several times, as one value
                e = e.list.join(", ")
            elif isinstance(step, int):
                e = e.list.get(step, null_on_oob=True)
            else:
                e = e.struct.field(step)
        return e

    def json_path(self) -> str:
        """The path in ``json_path_match``'s syntax: ``$['request']['headers']['User-Agent'][0]``."""
        return "$" + "".join(_json_path_step(s) for s in self.steps)


def _json_path_step(step: Step) -> str:
    return f"[{step}]" if isinstance(step, int) else f"['{step}']"


_STRING = r'"(?:[^"\\]|\\.)*"'


def _path_match(path: JsonPath) -> pl.Expr:
    """``path`` read with ``json_path_match`` (the fallback for lines ``json_decode`` cannot read).

    ``[*]`` (a header sent several times, Caddy's ``X-Forwarded-For: [..., ...]``) must give every
    element joined, as the decoder does: json_path_match would give the first only, which for a
    forwarding chain is the entry the client wrote itself. The array's text is read and its strings
    taken in order (escapes are left as written: such an entry is no address, which ends the walk).
    """
    if not path.steps or path.steps[-1] != ALL:
        return pl.col("j").str.json_path_match(path.json_path())
    array = pl.col("j").str.json_path_match("$" + "".join(_json_path_step(s) for s in path.steps[:-1]))
    strings = array.str.extract_all(_STRING).list.eval(
        pl.element().str.slice(1, pl.element().str.len_chars() - 2)
    )
    joined = strings.list.join(", ")
    return pl.when(array.str.starts_with("[") & (strings.list.len() > 0)).then(joined)


def parse_path(text: str) -> JsonPath:
    """Keys separated by dots, ``[N]`` for the N-th element of an array, ``[*]`` (last only) for all
    its elements joined with ", ", ``["a.b"]`` for a key that holds a dot or a bracket. Keys are
    matched exactly as written (case-sensitively)."""
    steps: list[Step] = []
    pos = 0
    while pos < len(text):
        m = PATH_STEP_RE.match(text, pos)
        if m is None or (m.group(0).startswith(".") and pos == 0) or m.end() == pos:
            raise FormatError(f"bad JSON path {text!r} at {text[pos:]!r}: use keys.separated.by.dots[0]")
        quoted, index, key = m.groups()
        if index is not None:
            if not steps:
                raise FormatError(f"bad JSON path {text!r}: a line is an object, not an array")
            if steps[-1] == ALL:
                raise FormatError(f"bad JSON path {text!r}: [*] must be its last step")
            steps.append(ALL if index == "*" else int(index))
        elif steps and steps[-1] == ALL:
            raise FormatError(f"bad JSON path {text!r}: [*] must be its last step")
        elif "'" in (quoted or key or ""):
            raise FormatError(f"bad JSON path {text!r}: keys with a ' are not supported")
        else:
            steps.append(quoted if quoted is not None else key)
        pos = m.end()
    if not steps:
        raise FormatError("empty JSON path in a JSON log format definition")
    if len(steps) > MAX_PATH_STEPS:  # (the decoder's nested dtype is built recursively)
        raise FormatError(f"JSON path {text[:60]!r}... has {len(steps)} steps: at most {MAX_PATH_STEPS}")
    return JsonPath(text, tuple(steps))


MAX_PATH_STEPS = 64


Tree = dict[Step, "Tree | None"]  # None: a leaf (read as String)


def struct_dtype(paths: tuple[JsonPath, ...]) -> pl.Struct:
    """The decoding dtype holding exactly ``paths`` (a path that is a prefix of another is an error:
    one value cannot be both a string and an object)."""
    root: Tree = {}
    for path in paths:
        node = root
        for i, step in enumerate(path.steps):
            last = i == len(path.steps) - 1
            kind_ok = all(isinstance(s, int) == isinstance(step, int) for s in node)
            if not kind_ok or (step in node and (last or node[step] is None)):
                raise FormatError(f"JSON path {path.text!r} conflicts with another path of the format")
            if last:
                node[step] = None
            else:
                child = node.setdefault(step, {})
                assert child is not None
                node = child
    dtype = _dtype(root)
    assert isinstance(dtype, pl.Struct)
    return dtype


def _dtype(node: Tree | None) -> pl.DataType:
    if node is None:
        return pl.String()
    if any(isinstance(s, int) for s in node):  # an array: one element type whatever the index
        children = list(node.values())
        merged: Tree | None = None if children[0] is None else {}
        for child in children:
            if (child is None) != (merged is None):
                raise FormatError("JSON paths index one array both as values and as objects")
            if child is not None and merged is not None:
                merged.update(child)
        return pl.List(_dtype(merged))
    return pl.Struct({str(k): _dtype(v) for k, v in node.items()})


SMALLEST_DECODE = 64  # a failing chunk this small is read with json_path_match instead


def decode(text: pl.Series, paths: tuple[JsonPath, ...], dtype: pl.Struct) -> pl.DataFrame:
    """One String column per path (named by position: ``p0``, ``p1``...), null where a line lacks it
    or is not JSON. ``text``: the lines without their terminators; ``dtype``: ``struct_dtype(paths)``."""
    names = [f"p{i}" for i in range(len(paths))]
    return _decode(pl.DataFrame({"j": text}), paths, dtype, names)


def _decode(
    frame: pl.DataFrame, paths: tuple[JsonPath, ...], dtype: pl.Struct, names: list[str]
) -> pl.DataFrame:
    try:
        decoded = frame.select(pl.col("j").str.json_decode(dtype))
    except pl.exceptions.PolarsError:  # a line that is not JSON, or a value of another type
        if frame.height > SMALLEST_DECODE:
            half = frame.height // 2
            return pl.concat(
                [
                    _decode(frame.slice(0, half), paths, dtype, names),
                    _decode(frame.slice(half), paths, dtype, names),
                ]
            )
        # A value of another type than the dtype's (an object where a string is expected) comes out
        # as its JSON text here, where json_decode fails: such a line is odd in any case.
        return frame.select([_path_match(p).alias(n) for p, n in zip(paths, names, strict=True)])
    return decoded.select([p.expr("j").alias(n) for p, n in zip(paths, names, strict=True)])


# ---------------------------------------------------------------------------------------------------
# The fast path: one regex per key layout (flat objects with their keys in one order, as nginx writes)

# A layout's pattern (no capture groups: the regex crate's DFA, 3x faster than capturing) matches
# only lines whose JSON the decoder reads as the text between its quotes, which it keeps to the
# obvious cases: strings without escapes or control characters (a value holding a backslash sends its
# line to the decoder), integers json_decode writes as logged (it writes 1.0 as "1", -0 as "0"),
# null. Every '"' of such a line delimits a key or a string, so its values are at fixed places of
# ``str.split('"')``; a scalar that is no string sits in the text between two strings (":5,").
_BLANK = r"[ \t]*"
_PLAIN = r'[^"\\\x00-\x1f]*'  # a string's content without escapes or control characters
_INT = r"-?[1-9][0-9]{0,17}|0|null"  # where a path reads a number
_OTHER = r"-?(?:0|[1-9][0-9]{0,17})(?:\.[0-9]{1,17})?|true|false|null"  # where none does
_AROUND = " \t:,}\r\n"  # what surrounds a scalar that is no string between two quotes
# A request line of the common shape: ``request.split_request_line`` would find nothing odd in it.
_REQUEST = r'[A-Za-z]+ [^ ?"\\\x00-\x1f]*(?:\?[^ "\\\x00-\x1f]*)? HTTP/[0-9.]+'
REQUEST_PARTS = ("req_method", "req_path", "req_query", "req_protocol")
SPLIT_LINES = 16_384


@dataclass(frozen=True)
class Layout:
    """The lines laid out as one sample object: the pattern they match; where path i's value is in
    a line split on '"' (and whether it is a number, between other text), by path index."""

    pattern: str
    values: dict[int, tuple[int, bool]]
    request: int | None  # the path index whose value has the common request shape, if any


class _Members(list[tuple[str, object]]):
    """An object's members in their order (``json.loads``' object_pairs_hook)."""


def layout_of(sample: str, paths: tuple[JsonPath, ...], request: JsonPath | None) -> Layout | None:
    """The layout of the JSON object ``sample``: the same keys in the same order, strings where it has
    strings, integers (or null) where a path reads one of its numbers, scalars elsewhere. None when
    ``sample`` makes none (not a flat object, a key twice, a float where a path reads...). Only for
    paths of a single key. The pattern accepts the line's terminator and blanks around the object."""
    wanted = {p.steps[0]: i for i, p in enumerate(paths) if len(p.steps) == 1}
    if len(wanted) != len(paths):
        return None
    try:
        pairs = json.loads(sample, object_pairs_hook=_Members)
    except ValueError:
        return None
    if not isinstance(pairs, _Members) or len({k for k, _ in pairs}) != len(pairs):
        return None
    members, values, split = [], {}, None
    token = 1  # the key's place in the line split on '"'
    for key, value in pairs:
        if not re.fullmatch(_PLAIN, key) or isinstance(value, (list, dict)):
            return None
        i = wanted.get(key)
        if isinstance(value, str):
            shape = _PLAIN
            if i is not None and paths[i] == request and re.fullmatch(_REQUEST, value):
                shape, split = _REQUEST, i  # (lines with another request line go to the decoder)
            pattern = f'"{shape}"'
            if i is not None:
                values[i] = (token + 2, False)
            token += 4
        elif i is None:
            pattern, token = f"(?:{_OTHER})", token + 2
        elif value is None or (isinstance(value, int) and not isinstance(value, bool)):
            pattern, values[i], token = f"(?:{_INT})", (token + 1, True), token + 2
        else:  # floats and booleans a path reads: their text would be json_decode's own writing
            return None
        members.append(f'"{_escape(key)}"{_BLANK}:{_BLANK}{pattern}')
    if not values:
        return None
    body = f"{_BLANK},{_BLANK}".join(members)
    return Layout(rf"^{_BLANK}\{{{_BLANK}{body}{_BLANK}\}}[ \t\r]*\n?$", values, split)


def _escape(key: str) -> str:
    """``key`` as a literal of the regex crate (which lets ASCII punctuation only be escaped)."""
    return "".join(f"\\{c}" if c.isascii() and not c.isalnum() and c not in " <>_" else c for c in key)


def decode_layout(line: pl.Series, layout: Layout, n_paths: int) -> tuple[pl.DataFrame, pl.Series]:
    """(``decode``'s columns of the lines laid out as ``layout``, in order, only those of the paths the
    layout has, and ``REQUEST_PARTS`` if it splits the request; which lines those are)."""
    matched = line.str.contains(layout.pattern)
    ours = line if matched.all() else line.filter(matched)
    # In slices: a line split on '"' is some 30 strings (16 bytes each, and a copy of the longer ones)
    places = {f"p{i}": layout.values[i] for i in range(n_paths) if i in layout.values}
    parts: list[pl.DataFrame] = []
    for start in range(0, len(ours), SPLIT_LINES) if len(ours) else [0]:
        tokens = ours.slice(start, SPLIT_LINES).str.split('"')
        parts.append(
            pl.DataFrame({n: tokens.list.get(place, null_on_oob=True) for n, (place, _) in places.items()})
        )
    values = pl.concat(parts) if len(parts) > 1 else parts[0]
    columns = {n: values.get_column(n) for n in places}
    for n, (_, number) in places.items():
        if number:
            columns[n] = columns[n].str.strip_chars(_AROUND).replace("null", None)
    if layout.request is not None:
        # (what split_request_line and split_target make of a request line of this shape)
        words = columns[f"p{layout.request}"].str.split_exact(" ", 2).struct.unnest()
        target = words.get_column("field_1").str.splitn("?", 2).struct.unnest()
        split = (words.get_column("field_0"), *target.get_columns(), words.get_column("field_2"))
        columns |= dict(zip(REQUEST_PARTS, split, strict=True))
    return pl.DataFrame(columns), matched


# ---------------------------------------------------------------------------------------------------
# Times

TIME_FORMATS = ("auto", "iso8601", "clf", "epoch", "epoch_ms", "epoch_us", "epoch_ns")
_EPOCH_US = {"epoch": 1_000_000, "epoch_ms": 1_000, "epoch_us": 1, "epoch_ns": 0}  # 0: divide by 1000
_UTC = pl.Datetime("us", "UTC")


def check_time_format(fmt: str) -> str:
    if fmt in TIME_FORMATS:
        return fmt
    if "%" in fmt:
        # a strftime format must read back what it writes: "%Q" or a time without a date would make
        # every line a bad_timestamp reject (and consume the log), so it is refused at compile time
        written = datetime(2026, 11, 1, 13, 55, 36, tzinfo=UTC).strftime(fmt)
        try:
            back = pl.select(parse_time(pl.lit(written), fmt)).item()
        except pl.exceptions.PolarsError:
            back = None
        if back is None or back.date() != datetime(2026, 11, 1).date():  # "%H:%M": no date at all
            raise FormatError(
                f"time format {fmt!r} does not read a date and time back (it writes {written!r})"
            )
        return fmt
    raise FormatError(
        f"unknown time format {fmt!r}: use one of {', '.join(TIME_FORMATS)} or a strftime format"
    )


def parse_time(raw: pl.Expr, fmt: str) -> pl.Expr:
    """The instant ``raw`` names (null when it does not parse). A strftime format without ``%z`` is
    read as UTC; ISO 8601 without an offset is not a time (it could be any zone's)."""
    if fmt == "iso8601":
        return raw.str.strptime(_UTC, "%+", strict=False)  # RFC 3339 / ISO 8601, "Z" or ±hh:mm
    if fmt == "clf":
        return raw.str.strptime(_UTC, "%d/%b/%Y:%H:%M:%S %z", strict=False)  # nginx $time_local
    if fmt in _EPOCH_US:
        return _epoch(raw, _EPOCH_US[fmt])
    if fmt == "auto":
        # Numbers by magnitude (seconds until the year 5138, then ms, µs, ns); text as ISO 8601 or CLF.
        number = raw.cast(pl.Float64, strict=False).abs()
        return (
            pl.when(number < 1e11)
            .then(_epoch(raw, 1_000_000))
            .when(number < 1e14)
            .then(_epoch(raw, 1_000))
            .when(number < 1e17)
            .then(_epoch(raw, 1))
            .when(number.is_not_null())
            .then(_epoch(raw, 0))
            .otherwise(pl.coalesce(parse_time(raw, "iso8601"), parse_time(raw, "clf")))
        )
    if re.search(r"%[#:]?z", fmt):
        return raw.str.strptime(_UTC, fmt, strict=False)
    return raw.str.strptime(pl.Datetime("us"), fmt, strict=False).dt.replace_time_zone("UTC")


def _epoch(raw: pl.Expr, us_per_unit: int) -> pl.Expr:
    """Integers exactly (a nanosecond count does not fit a float); decimals as floats (µs precision)."""
    whole = raw.cast(pl.Int64, strict=False)
    if us_per_unit == 0:
        micros = whole // 1000
    else:
        fraction = (raw.cast(pl.Float64, strict=False) * us_per_unit).round(0).cast(pl.Int64, strict=False)
        fits = whole.abs() < (1 << 62) // us_per_unit  # (an overflow would wrap, not fail)
        micros = pl.coalesce(pl.when(fits).then(whole * us_per_unit), fraction)
    return micros.cast(_UTC)
