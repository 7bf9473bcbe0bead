"""JSON-lines access logs (nginx ``escape=json``, Caddy, Traefik, Envoy, Cloudflare): a format is DATA,
a mapping from hostlogs' field columns to JSON paths.

Definition grammar (a JSON object; the built-ins below are written in it, and so are user formats:
``--format '{"ts": "time", "client": "ip"}'`` or a ``[formats.NAME] family = "json"`` table)::

    {
      "ts": PATHS | {"PATH": TIME_FORMAT, ...},   required: no time, no row
      "time_format": TIME_FORMAT,                  for "ts" given as PATHS (default "auto")
      COLUMN: PATHS, ...                           any of COLUMNS below
      "require": [PATHS, ...],                     lines lacking one are not this format's
      "match": {PATH: REGEX, ...},                 lines whose value does not match are not either
      "escape": "json" | "default"                 "default": also nginx's escape=default \\xHH
    }

- PATHS: one JSON path or a list of them; per line the first one present (not null, not "" nor
  "-") wins. A path is keys separated by dots, ``[N]`` for an array's N-th element, ``["a.b"]`` for
  a key holding a dot: ``request.headers.User-Agent[0]``. Keys, header names included, are matched
  case-sensitively, exactly as the producer writes them (Caddy ``User-Agent``, Envoy ``user-agent``).
- COLUMN: a field column (``client`` domain method path query protocol status bytes referrer
  user_agent; ``client`` is the socket peer), an optional column (``forwarded_for`` request_id tls
  upstream edge_location), or ``request`` (a whole request line "GET /p?q HTTP/1.1") or ``uri``
  (path and query together). A request line wins over ``uri``, which wins over ``path``/``query``.
- TIME_FORMAT: ``iso8601`` (RFC 3339, with an offset or Z), ``clf`` (10/Oct/2000:13:55:36 -0700),
  ``epoch`` (seconds, may be fractional), ``epoch_ms``, ``epoch_us``, ``epoch_ns``, a strftime
  format (read as UTC without ``%z``), or ``auto``: numbers by magnitude, text as ISO 8601 or CLF.
  A time that does not parse makes a ``bad_timestamp`` reject.
- ``match``: a value a line must have (a regex searched in its text): Caddy's access lines are the
  ``http.log.access`` logger's, its error lines carry the same request and must not make a second
  row. Unmatched lines are ``unparseable`` and do not count for detection.
- ``require``: each entry is PATHS of which one must be present. Auto-detection counts the lines
  that have the time and every required path; ``parse`` quarantines the others as ``unparseable``
  (Caddy's debug lines in an access log, say).

A line that is not a JSON object, or lacks the time, is ``unparseable``. ``tls`` values that are
TLS version numbers (Caddy's 772, Traefik's "1.3") are written as ``TLSv1.3``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

import polars as pl

from pipeline.errors import FormatError
from pipeline.ingest.fields import (
    OPTIONAL_COLUMNS,
    FieldContext,
    Fields,
    normalize_domain,
    null_column,
    typed_numbers,
)
from pipeline.ingest.formats import jsonl_builtin, registry
from pipeline.ingest.formats import request as requests
from pipeline.ingest.formats.jsonl_decode import (
    REQUEST_PARTS,
    JsonPath,
    Layout,
    check_time_format,
    decode,
    decode_layout,
    layout_of,
    parse_path,
    parse_time,
    struct_dtype,
)

FAMILY_NAME = "json"
FIELD_KEYS = ("client", "domain", "method", "path", "query", "protocol", "status", "bytes", "referrer")
COLUMNS = (*FIELD_KEYS, "user_agent", "request", "uri", *OPTIONAL_COLUMNS)
_OPTIONS = frozenset({"ts", "time_format", "require", "match", "escape"})
_SAMPLE_SCHEMA = {"line": pl.String, "offset": pl.Int64}
_UTC = pl.Datetime("us", "UTC")


@dataclass(frozen=True)
class JsonFormat:
    """A compiled JSON definition (a ``fields.Format``)."""

    name: str
    spec: str
    times: tuple[tuple[JsonPath, str], ...]  # (path, time format), first present wins
    columns: dict[str, tuple[JsonPath, ...]]  # COLUMNS key -> candidate paths
    require: tuple[tuple[JsonPath, ...], ...]
    match: tuple[tuple[JsonPath, str], ...]  # (path, regex its value must contain)
    nginx_escapes: bool
    paths: tuple[JsonPath, ...]  # every path above, once: what a line is decoded into
    dtype: pl.Struct  # the struct those paths make (json_decode's dtype)
    # The request line's path when it is split in the fast stage's pattern (a single candidate).
    split_request: JsonPath | None = None
    fast: bool = True  # a fast stage for flat formats (False: every line through the decoder; tests)

    @property
    def flat(self) -> bool:
        return all(len(p.steps) == 1 for p in self.paths)

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        stages, unparsed = self._read(lines)
        parts = [self._fields(good) for good in stages]
        return Fields(frame=pl.concat(parts) if len(parts) > 1 else parts[0], unparsed=unparsed)

    def score(self, sample: list[str]) -> tuple[int, int]:
        return self.full_score(sample) if self.may_fit(sample) else (0, 0)

    @staticmethod
    def may_fit(sample: list[str]) -> bool:
        """Whether a line could be an object: detection tries every format on every source, and
        the full score cost ~5 ms a JSON format on lines that are not (str.strip drops what polars'
        strip_chars drops, and more; a test holds every sample log to it)."""
        return any(ln.strip().startswith("{") for ln in sample)

    def full_score(self, sample: list[str]) -> tuple[int, int]:
        lines = pl.DataFrame({"line": sample, "offset": range(len(sample))}, schema=_SAMPLE_SCHEMA)
        stages, _ = self._read(lines)
        complete = pl.all_horizontal([pl.col(c).is_not_null() for c in self.columns] or [pl.lit(True)])
        return sum(s.height for s in stages), sum(int(s.select(complete.sum()).item()) for s in stages)

    def _read(self, lines: pl.DataFrame) -> tuple[list[pl.DataFrame], pl.Series]:
        """The lines that are ours, per stage (``offset``, ``ts_raw``, ``ts``, one String column per
        COLUMNS key mapped; the fast stage's split request line, if any); the offsets of the others.

        The fast stage reads the lines laid out like the batch's first object (what nginx writes:
        every line has its log_format's keys in its order, so almost every line is the fast stage's)
        with one regex without captures and a split on '"' (``jsonl_decode.layout_of``), the request
        line split too; the decoder reads the rest. Rows come stage by stage, not in line order.
        Measured on 90k nginx lines (32 MiB, polars 2.1, loaded 2-core machine): 0.18 s against
        0.21 s with capture groups and 0.22 s with json_decode (+0.04 s taking its struct apart,
        +0.03 s stripping, +0.03 s splitting the request); ingest's peak RSS ~1,030 -> ~560 MiB."""
        stages, unparsed = [], []
        layout = self._layout(lines.get_column("line"))
        if layout is not None:
            raw, matched = decode_layout(lines.get_column("line"), layout, len(self.paths))
            good, other = self._ours(lines.get_column("offset").filter(matched), raw)
            stages.append(good)
            unparsed.append(other)
            lines = lines.filter(~matched)
        if lines.height or not stages:
            text = lines.get_column("line").str.strip_chars()  # the terminator, blanks around an object
            if self.nginx_escapes:
                text = _nginx_escapes(text)
            # Only objects: a line that is a JSON string or array is never ours; none reaches the decoder.
            is_object = text.str.starts_with("{") & text.str.ends_with("}")
            raw = decode(text.set(~is_object, None), self.paths, self.dtype)
            good, other = self._ours(lines.get_column("offset"), raw)
            stages.append(good)
            unparsed.append(other)
        return stages, pl.concat(unparsed) if len(unparsed) > 1 else unparsed[0]

    def _layout(self, line: pl.Series) -> Layout | None:
        """The fast stage's layout, from the batch's first line that makes one (None: no fast stage)."""
        if not self.fast or not self.flat:
            return None
        for sample in line.head(4):
            layout = layout_of(sample, self.paths, self.split_request)
            if layout is not None:
                return layout
        return None

    def _ours(self, offset: pl.Series, raw: pl.DataFrame) -> tuple[pl.DataFrame, pl.Series]:
        """(the lines of ``raw`` that are ours, as ``_read`` gives them; the offsets of the others).
        ``raw``: ``p<i>`` columns (null where a line lacks path i; absent: no line has it)."""
        names = [c for c in raw.columns if c not in REQUEST_PARTS]
        none = pl.col(names).is_in(["", "-"])
        raw = raw.with_columns(pl.when(~none).then(pl.col(names)).name.keep())
        col = {p: pl.col(f"p{i}") for i, p in enumerate(self.paths) if f"p{i}" in names}

        def first(candidates: tuple[JsonPath, ...]) -> pl.Expr:
            present = [col[p] for p in candidates if p in col]
            return pl.coalesce(present) if present else pl.lit(None, pl.String)

        times = [(col[p], fmt) for p, fmt in self.times if p in col]
        frame = raw.select(
            offset=pl.lit(offset),
            ts_raw=first(tuple(p for p, _ in self.times)),
            ts=_first_time(times) if times else pl.lit(None, _UTC),
            **{name: first(paths) for name, paths in self.columns.items()},
            **{c: pl.col(c) for c in REQUEST_PARTS if c in raw.columns},
        )
        present = [first(req).is_not_null() for req in self.require]
        present += [first((p,)).str.contains(rx).fill_null(False) for p, rx in self.match]
        # (a line that is not an object has no ts_raw: the decoder was not given it)
        ours = (
            raw.select(pl.all_horizontal(pl.lit(True), *present)).to_series()
            & frame.get_column("ts_raw").is_not_null()
        )
        return frame.filter(ours), offset.filter(~ours)

    def _fields(self, good: pl.DataFrame) -> pl.DataFrame:
        def column(name: str) -> pl.Series:
            return good.get_column(name) if name in good.columns else null_column(good.height, name=name)

        if REQUEST_PARTS[0] in good.columns:  # split by the fast stage's pattern already
            method, path, query, protocol = (good.get_column(c) for c in REQUEST_PARTS)
        else:
            method, path, query, protocol = _request(column)
        status_value, size_value, bad = typed_numbers(column("status"), column("bytes"))
        frame = pl.DataFrame(
            {
                "offset": good.get_column("offset"),
                "ts": good.get_column("ts"),
                "bad_field": bad,
                "domain": normalize_domain(column("domain")),
                "method": method,
                "path": path,
                "query": query,
                "protocol": protocol,
                "status": status_value,
                "bytes": size_value,
                "referrer": column("referrer"),
                "user_agent": column("user_agent"),  # a String: rows.py masks it
                "client": column("client"),
            }
        )
        optional = [column(c).alias(c) for c in OPTIONAL_COLUMNS if c in self.columns]
        frame = frame.with_columns(optional)
        return frame.with_columns(_tls(frame.get_column("tls"))) if "tls" in self.columns else frame


def _first_time(candidates: list[tuple[pl.Expr, str]]) -> pl.Expr:
    """The time of the first candidate present, read in its own format (null if it does not parse)."""
    (raw, fmt), *rest = candidates
    return (
        pl.when(raw.is_not_null()).then(parse_time(raw, fmt)).otherwise(_first_time(rest) if rest else None)
    )


def _request(get: Callable[[str], pl.Series]) -> requests.Request:
    """method, path, query, protocol: from the request line where logged, else ``uri``, else path/query."""
    line, uri = get("request"), get("uri")
    from_line = requests.split_target(requests.split_request_line(line))
    from_uri = uri.str.splitn("?", 2).struct.unnest()
    parts = pl.DataFrame(
        {
            "line": line.is_not_null(),
            "uri": uri.is_not_null(),
            **dict(zip(("line_method", "line_path", "line_query", "line_protocol"), from_line, strict=True)),
            "uri_path": from_uri.get_column("field_0"),
            "uri_query": from_uri.get_column("field_1"),
            "method": get("method"),
            "path": get("path"),
            "query": get("query").str.strip_prefix("?").replace("", None),
            "protocol": get("protocol"),
        }
    )
    out = parts.select(
        method=pl.coalesce("line_method", "method"),
        path=pl.when("line").then("line_path").when("uri").then("uri_path").otherwise("path"),
        query=pl.when("line").then("line_query").when("uri").then("uri_query").otherwise("query"),
        protocol=pl.coalesce("line_protocol", "protocol"),
    )
    return out["method"], out["path"], out["query"], out["protocol"]


_TLS_CODES = {
    "769": "TLSv1.0",
    "770": "TLSv1.1",
    "771": "TLSv1.2",
    "772": "TLSv1.3",
    "none": None,
    "unknown": None,
}


_TLS_NAME = r"^(?:SSLv[23]|TLSv1(?:\.[0-3])?|QUIC)$"


def _tls(values: pl.Series) -> pl.Series:
    """Caddy's numeric versions (0x0304 = 772) and Traefik's "1.3" as OpenSSL names them: TLSv1.3.
    ``tls`` is not a masked column: anything but a protocol name (a user mapping's mistake, an
    address) is none."""
    named = values.replace(_TLS_CODES).str.replace(r"^(1\.[0-3])$", "TLSv$1")
    return named.set(~named.str.contains(_TLS_NAME).fill_null(True), None).alias("tls")


def _nginx_escapes(text: pl.Series) -> pl.Series:
    r"""nginx ``escape=default`` writes '"', '\' and bytes outside printable ASCII as ``\xHH``: invalid
    JSON. ASCII ones become ``\u00HH`` (the character itself once decoded); bytes >= 0x80 stay written
    as the text ``\xHH``, the way Apache formats keep them. Lines holding ``\\`` are ``escape=json``
    lines (escape=default writes a backslash as ``\x5C``) and are left alone."""
    fix = text.str.contains(r"\x", literal=True)
    if not fix.any():
        return text
    fix &= ~text.str.contains("\\\\", literal=True)
    fixed = (
        text.filter(fix)
        .str.replace_all(r"\\x([89A-Fa-f][0-9A-Fa-f])", r"\\x$1")  # (a replacement has no escapes but $)
        .str.replace_all(r"\\x([0-7][0-9A-Fa-f])", r"\u00$1")
    )
    return text.scatter(fix.arg_true(), fixed)


# ---------------------------------------------------------------------------------------------------
# Compiling a definition


def is_definition(text: str) -> bool:
    """Is ``text`` a JSON definition (the family's ``accepts``)? An Apache LogFormat can write JSON
    too (``{"time":"%t"}``): text with a '%' is ours only if its keys are all this grammar's."""
    text = text.strip()
    if not (text.startswith("{") and text.endswith("}")):
        return False
    if "%" not in text:
        return True
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError):
        return False
    return isinstance(spec, dict) and "ts" in spec and set(spec) <= set(COLUMNS) | _OPTIONS


def compile_definition(text: str, name: str = "custom") -> JsonFormat:
    """A JSON definition (the grammar in this module's docstring) → a format; FormatError if invalid."""
    try:
        spec = json.loads(text)
    except (ValueError, RecursionError) as e:  # (nested a thousand deep)
        raise FormatError(f"JSON log format {name!r} is not valid JSON: {e or 'nested too deeply'}") from None
    if not isinstance(spec, dict):
        raise FormatError(f"JSON log format {name!r} must be a JSON object mapping columns to paths")
    unknown = sorted(set(spec) - set(COLUMNS) - _OPTIONS)
    if unknown:
        raise FormatError(
            f"JSON log format {name!r}: unknown key(s) {', '.join(unknown)}; "
            f"use ts, time_format, require, match, escape or a column: {', '.join(COLUMNS)}"
        )
    if "ts" not in spec:
        raise FormatError(f'JSON log format {name!r} has no "ts": hostlogs needs the request time')
    escape = spec.get("escape", "json")
    if escape not in ("json", "default"):
        raise FormatError(f'JSON log format {name!r}: escape must be "json" or "default"')
    times = _times(spec["ts"], check_time_format(str(spec.get("time_format", "auto"))))
    columns = {c: _paths(spec[c], c) for c in COLUMNS if c in spec}
    require = tuple(_paths(r, "require") for r in _as_list(spec.get("require", []), "require"))
    match = _match(spec.get("match", {}), name)
    every = [p for p, _ in times] + [p for ps in (*columns.values(), *require) for p in ps]
    every += [p for p, _ in match]
    paths = tuple(dict.fromkeys(every))
    return JsonFormat(
        name=name,
        spec=text,
        times=times,
        columns=columns,
        require=require,
        match=match,
        nginx_escapes=escape == "default",
        paths=paths,
        dtype=struct_dtype(paths),  # (checks that no path is inside another)
        split_request=columns["request"][0] if len(columns.get("request", ())) == 1 else None,
    )


def _match(value: object, name: str) -> tuple[tuple[JsonPath, str], ...]:
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise FormatError(f'JSON log format {name!r}: "match" must map JSON paths to regexes')
    for rx in value.values():
        try:
            pl.select(pl.lit("").str.contains(rx))
        except pl.exceptions.PolarsError:
            raise FormatError(f'JSON log format {name!r}: bad regex {rx!r} in "match"') from None
    return tuple((parse_path(str(p)), rx) for p, rx in value.items())


def _times(value: object, default: str) -> tuple[tuple[JsonPath, str], ...]:
    if isinstance(value, dict):
        if not value:
            raise FormatError('"ts" names no JSON path')
        return tuple((parse_path(str(p)), check_time_format(str(f))) for p, f in value.items())
    return tuple((p, default) for p in _paths(value, "ts"))


def _paths(value: object, key: str) -> tuple[JsonPath, ...]:
    items = _as_list(value, key)
    if not items or not all(isinstance(v, str) for v in items):
        raise FormatError(f'"{key}" must be a JSON path or a list of them')
    return tuple(parse_path(str(v)) for v in items)


def _as_list(value: object, key: str) -> list[object]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list):
        return list(value)
    raise FormatError(f'"{key}" must be a JSON path or a list of them')


# Registered by ``formats/__init__.py``: the built-ins, and ``--format '{"ts": ...}'`` as a user format.
BUILTIN: tuple[registry.FormatEntry, ...] = tuple(
    registry.FormatEntry(name, FAMILY_NAME, text, compile_definition, priority, description)
    for name, (text, priority, description) in jsonl_builtin.DEFINITIONS.items()
)
FAMILY = registry.Family(
    FAMILY_NAME, is_definition, compile_definition, 'a JSON mapping {"ts": PATH, ...}', keyed=True
)
