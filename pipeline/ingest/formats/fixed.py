"""Fixed-layout formats: one anchored regex per format (AWS ALB/ELB/S3, HAProxy, Envoy) as data.

A ``Layout`` is a table entry: a regex (polars/Rust syntax, also valid Python ``re`` for ``score``)
whose named groups are field columns, a time format for its ``ts`` group, and which groups give the
domain. ``FixedFormat.parse`` is the same few vectorised passes for every layout: one
``extract_groups``, ``strptime``, casts, the shared request-line split. Adding a format of this kind
is one ``LAYOUTS`` entry and one registry line.

Group names (anything else is captured but not stored; prefer ``(?:...)`` for what is not stored):

* ``ts`` (required: a line is matched when it is not null), ``client``, ``status``, ``bytes``,
  ``referrer``, ``user_agent``, and the optional columns ``forwarded_for``, ``request_id``, ``tls``,
  ``upstream`` (``fields.OPTIONAL_COLUMNS``);
* ``request``: a request line, split by ``request.py``; an absolute-form target
  ("GET https://host:443/p?q HTTP/1.1", as load balancers log it) gives its host as ``url``;
* ``Layout.domains`` and ``Layout.clients`` name the groups that give the domain (``url`` among
  them) and the client, first non-null wins (HAProxy's first word is a client or a syslog tag).

Conversions, the same for every layout: '-' and '' are none; ``bytes`` is an Int64 (a '+' prefix
cut; a value that does not fit is a ``bad_field``); ``status`` an Int16 (negative: none); the time
is parsed with ``time_format`` (null when it does not parse: a ``bad_timestamp``); a client logged
as ADDRESS:PORT (``client_port``) loses its port; the domain is normalised.

The regexes follow apache.py's rules for the regex engine's fast path: every class excludes the
delimiter that follows it, values that are not stored are non-capturing groups.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import polars as pl

from pipeline.errors import FormatError
from pipeline.ingest.fields import OPTIONAL_COLUMNS, FieldContext, Fields, normalize_domain, null_column
from pipeline.ingest.formats import registry
from pipeline.ingest.formats import request as requests
from pipeline.ingest.formats.apache_directives import QUOTED

TOKEN = r"[^ \r\n]+"  # (a line still ends with its terminator: a last field must not take it)
# A quoted value whose closing quote may be missing (cut at a length limit): it stops at the terminator.
QUOTED_CUT = r'[^"\\\r\n]*(?:\\.[^"\\\r\n]*)*'
NUM_OR_DASH = r"[0-9]+|-"
# Any further fields a newer version appends (AWS adds ALB fields over the years): matched, not stored.
EXTRA = rf'(?: (?:"{QUOTED}"|[^ "\r\n][^ \r\n]*))*'
_ISO_Z = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[^ \]]*"  # the time format decides whether it parses


def _q(name: str) -> str:
    return f'"(?P<{name}>{QUOTED})"'


_SKIP_Q = f'"{QUOTED}"'


@dataclass(frozen=True)
class Layout:
    """One format, as data."""

    regex: str  # anchored: ^...$ (the terminator is accepted by ``parse``)
    time_format: str  # strptime format of the ``ts`` group
    # True: the time carries its offset (%z) or is written in UTC ('Z'). False: a local time without
    # offset (HAProxy): read as UTC, correct when the host logs in UTC.
    zoned: bool = True
    domains: tuple[str, ...] = ("url",)  # groups giving the domain, first non-null wins
    clients: tuple[str, ...] = ("client",)  # groups giving the client, first non-null wins
    # The client is logged as ADDRESS:PORT, IPv6 without brackets ("2001:db8::1:51234"): the port is
    # cut after the match (a pattern that finds the last ':' itself would not be one-pass).
    client_port: bool = False
    strict: str | None = None  # detection's "exact" pattern (default: ``regex``)
    description: str = ""
    groups: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "groups", tuple(re.compile(self.regex).groupindex))


# ----------------------------------------------------------------------------------------------------
# The layouts. Quirks are noted where they are handled.

# AWS Application Load Balancer. Fields after trace_id came over the years (domain_name and
# chosen_cert_arn in 2017, ..., classification_reason, conn_trace_id, transformed_host in 2025):
# domain_name (the TLS SNI) is read when present, anything after it is accepted and not stored.
# client:port and target:port are logged without brackets for IPv6 ("2001:db8::1:51234").
_ALB_HEAD = (
    r"^(?:[a-z][a-z0-9]*) "  # type: http, https, h2, grpcs, ws, wss
    rf"(?P<ts>{_ISO_Z}) (?:{TOKEN}) "  # time, elb
    rf"(?P<client>{TOKEN}) (?P<upstream>{TOKEN}) "  # client:port, target:port ('-')
    r"(?:-?[0-9.]+ ){3}"  # request/target/response processing times (-1: none)
    r"(?P<status>[0-9]{3}|-) (?:[0-9]{3}|-) (?:[0-9]+|-) (?P<bytes>[0-9]+|-) "  # elb/target status, rx, tx
    rf"{_q('request')} {_q('user_agent')} (?:{TOKEN}) (?P<tls>{TOKEN}) "  # ssl_cipher, ssl_protocol
    rf"(?:{TOKEN}) {_q('request_id')}"  # target_group_arn, "trace_id"
)
_ALB_DOCUMENTED = (  # chosen_cert_arn ... classification_reason: all documented fields present
    rf" {_SKIP_Q} (?:-?[0-9]+) (?:{_ISO_Z}|-)" + f" {_SKIP_Q}" * 7
)
ALB = Layout(
    regex=rf"{_ALB_HEAD}(?: {_q('sni')}{EXTRA})?$",
    strict=rf"{_ALB_HEAD} {_q('sni')}{_ALB_DOCUMENTED}{EXTRA}$",
    time_format="%Y-%m-%dT%H:%M:%S%.fZ",
    # The request's URL is built from the Host header (or the listener's address for requests
    # without one); the SNI name is the fallback.
    domains=("url", "sni"),
    client_port=True,
    description="AWS Application Load Balancer access log",
)

# Classic ELB. ssl_cipher/ssl_protocol and user_agent came in 2015; TCP listeners log
# "- - - " as the request and '-' statuses.
ELB = Layout(
    regex=(
        rf"^(?P<ts>{_ISO_Z}) (?:{TOKEN}) "
        rf"(?P<client>{TOKEN}) (?P<upstream>{TOKEN}) "
        r"(?:-?[0-9.]+ ){3}"
        r"(?P<status>[0-9]{3}|-) (?:[0-9]{3}|-) (?:[0-9]+|-) (?P<bytes>[0-9]+|-) "
        rf"{_q('request')}(?: {_q('user_agent')} (?:{TOKEN}) (?P<tls>{TOKEN}))?$"
    ),
    time_format="%Y-%m-%dT%H:%M:%S%.fZ",
    client_port=True,
    description="AWS Classic Load Balancer (ELB) access log",
)

# S3 server access log. The requester (an IAM user name or canonical id: personal) and the object
# key are never stored; the request URI carries the key anyway. Fields from version_id on were
# added over the years and may be missing; newer ones may follow (accepted, not stored).
# version_id host_id signature_version cipher_suite authentication_type host_header tls_version, then
# access_point_arn acl_required ...: each optional after the one before it (nested, so the pattern
# stays one-pass).
_S3_TAIL = f"(?: {TOKEN}" * 5 + f"(?: (?P<host_header>{TOKEN})(?: (?P<tls>{TOKEN}){EXTRA})?" + ")?" * 6
S3 = Layout(
    regex=(
        rf"^(?:{TOKEN}) (?P<bucket>{TOKEN}) \[(?P<ts>[^\]]+)\] (?P<client>{TOKEN}) "  # owner, bucket
        rf"(?:{TOKEN}) (?P<request_id>{TOKEN}) (?:[A-Z][A-Z0-9_.]*|-) (?:{TOKEN}) "  # requester, op, key
        rf"{_q('request')} (?P<status>[0-9]{{3}}|-) (?:{TOKEN}) (?P<bytes>{NUM_OR_DASH}) "  # error_code
        rf"(?:{NUM_OR_DASH}) (?:{NUM_OR_DASH}) (?:{NUM_OR_DASH}) "  # object size, total/turn-around time
        rf"{_q('referrer')} {_q('user_agent')}{_S3_TAIL}$"
    ),
    time_format="%d/%b/%Y:%H:%M:%S %z",
    domains=("host_header", "bucket", "url"),  # the Host header; path-style requests name the bucket
    description="AWS S3 server access log",
)

# HAProxy "option httplog" (its default HTTP format):
#   %ci:%cp [%tr] %ft %b/%s %TR/%Tw/%Tc/%Tr/%Ta %ST %B %CC %CS %tsc %ac/%fc/%bc/%sc/%rc %sq/%bq %hr %hs %{+Q}r
# usually behind a syslog header (``syslog:haproxy``); "haproxy[PID]: " alone is accepted too.
# Quirks: %ci:%cp has no brackets for IPv6; "option logasap" prefixes %Ta, %B, %rc with '+';
# timers are -1 when a phase never happened; %ST is -1 when there was no response (stored null);
# the captured header blocks {...} appear only when captures are configured; a request line cut
# at the log's length limit has no closing quote; the time is local and has no offset.
_COUNT = r"[-+0-9]+"
_HAPROXY = (  # "haproxy[PID]: CLIENT:PORT [" or "CLIENT:PORT [": the first word is a client or a tag
    r"^(?P<lead>[^ \[]+)(?:\[[0-9]+\]: (?P<client>[^ \[]+))? "
    rf"\[(?P<ts>[0-9]{{2}}/[A-Za-z]{{3}}/[^\] ]+)\] (?:{TOKEN}) "  # accept date, frontend
    rf"(?P<upstream>[^ /]+/[^ ]+) (?:{_COUNT}(?:/{_COUNT}){{3,4}}) "  # backend/server, timers
    rf"(?P<status>[0-9]{{3}}|-1) (?P<bytes>\+?[0-9]+) (?:{TOKEN}) (?:{TOKEN}) (?:[-A-Za-z]{{4}}) "
    rf"(?:{_COUNT}(?:/{_COUNT}){{4}}) (?:{_COUNT}/{_COUNT})(?: \{{[^}}]*\}}){{0,2}} "
)
HAPROXY = Layout(
    regex=rf'{_HAPROXY}"(?P<request>{QUOTED_CUT})"?$',
    strict=rf'{_HAPROXY}"(?P<request>{QUOTED})"$',
    time_format="%d/%b/%Y:%H:%M:%S%.f",
    zoned=False,
    clients=("client", "lead"),
    client_port=True,
    description="HAProxy option httplog",
)

# Envoy's default access log format. It logs no peer address: client is null and the
# X-Forwarded-For chain goes to forwarded_for (rows.py resolves the client from it). A TCP proxy logs
# "- - -" as the request; %RESPONSE_CODE% is 0 when no response was sent. Newer setups append
# fields (%UPSTREAM_CLUSTER% ...): accepted, not stored.
ENVOY = Layout(
    regex=(
        rf"^\[(?P<ts>{_ISO_Z})\] {_q('request')} (?P<status>[0-9]{{1,3}}) (?:{TOKEN}) "  # flags
        rf"(?:{NUM_OR_DASH}) (?P<bytes>{NUM_OR_DASH}) (?:{NUM_OR_DASH}) (?:{NUM_OR_DASH}) "
        rf"{_q('forwarded_for')} {_q('user_agent')} {_q('request_id')} {_q('authority')} "
        rf"{_q('upstream')}{EXTRA}$"
    ),
    time_format="%Y-%m-%dT%H:%M:%S%.fZ",
    domains=("authority", "url"),
    description="Envoy default access log",
)

LAYOUTS: dict[str, Layout] = {"alb": ALB, "elb": ELB, "s3": S3, "haproxy": HAPROXY, "envoy": ENVOY}


def compile_layout(definition: str, name: str) -> FixedFormat:
    """The registry's compiler: ``definition`` is the layout's regex (what manifests record)."""
    layout = LAYOUTS.get(name)
    if layout is None or layout.regex != definition:
        raise FormatError(f"{name!r} is not a built-in fixed-layout format")
    return FixedFormat(name=name, spec=definition, layout=layout)


# The registry's entries (``formats/__init__.py`` registers them). The layouts' first fields differ
# (a type word, an ISO time, two tokens then a bracketed time, a client:port then a bracketed time, a
# bracketed ISO time), so no two of them, nor an Apache format, read the same line: the priorities
# only order ties that cannot happen.
BUILTIN: tuple[registry.FormatEntry, ...] = tuple(
    registry.FormatEntry(name, "fixed", layout.regex, compile_layout, 60 + i, layout.description)
    for i, (name, layout) in enumerate(LAYOUTS.items())
)


# ----------------------------------------------------------------------------------------------------
# Parsing a batch

_STORED_OPTIONAL = tuple(c for c in OPTIONAL_COLUMNS if c != "edge_location")
# An absolute-form target ("https://host:443/path"), as load balancers log the request line.
_ABSOLUTE = r"^[A-Za-z][A-Za-z0-9+.\-]*://"
_NO_REQUEST = r"^[- ]*$"  # "- - - " (ELB TCP listeners), "- - -" (Envoy TCP), "-"


@dataclass(frozen=True)
class FixedFormat:
    """A layout compiled for parsing (a ``fields.Format``)."""

    name: str
    spec: str
    layout: Layout

    def parse(self, lines: pl.DataFrame, ctx: FieldContext) -> Fields:
        # Values still end with their terminator: the pattern accepts it instead of a strip pass.
        pattern = self.layout.regex[:-1] + r"\r?\n?$"
        groups = lines.get_column("line").str.extract_groups(pattern).struct.unnest()
        matched = groups.get_column("ts").is_not_null()
        good = pl.concat([lines.select("offset"), groups], how="horizontal").filter(matched)
        return Fields(frame=self._fields(good), unparsed=lines.get_column("offset").filter(~matched))

    def score(self, sample: list[str]) -> tuple[int, int]:
        lenient, strict = re.compile(self.layout.regex), re.compile(self.layout.strict or self.layout.regex)
        return sum(1 for ln in sample if lenient.match(ln)), sum(1 for ln in sample if strict.match(ln))

    def _fields(self, good: pl.DataFrame) -> pl.DataFrame:
        n = good.height
        method, path, query, protocol, url_host = _request(good, n)
        candidates = {**{g: good.get_column(g) for g in self.layout.groups}, "url": url_host}
        domain = null_column(n)
        for name in self.layout.domains:  # the first that is not null
            domain = domain.fill_null(_none(candidates[name]))
        size_text = _column(good, "bytes", n).str.strip_prefix("+")
        size = size_text.cast(pl.Int64, strict=False)
        status = _column(good, "status", n).cast(pl.Int16, strict=False)
        frame = pl.DataFrame(
            {
                "offset": good.get_column("offset"),
                "ts": _timestamps(good.get_column("ts"), self.layout),
                # a number the pattern matched that does not fit its type (a 20-digit byte count)
                "bad_field": size.is_null() & size_text.is_not_null() & (size_text != "-"),
                "domain": normalize_domain(domain),
                "method": method,
                "path": path,
                "query": query,
                "protocol": protocol,
                "status": status.set(status < 0, None),  # HAProxy's -1: no response
                "bytes": size,
                "referrer": _none(_column(good, "referrer", n)),
                "user_agent": _column(good, "user_agent", n),  # a String: rows.py masks it ('-' is none)
                "client": self._client(good, n),
            }
        )
        extra = {c: _none(good.get_column(c)) for c in _STORED_OPTIONAL if c in self.layout.groups}
        return frame.with_columns(**extra) if extra else frame

    def _client(self, good: pl.DataFrame, n: int) -> pl.Series:
        client = null_column(n)
        for name in self.layout.clients:
            client = client.fill_null(_none(_column(good, name, n)))
        return client.str.replace(r":[0-9]+$", "") if self.layout.client_port else client


def _timestamps(text: pl.Series, layout: Layout) -> pl.Series:
    """UTC instants; a time that does not parse is null (rows.py makes it a bad_timestamp)."""
    if layout.zoned:
        return text.str.strptime(pl.Datetime("us", "UTC"), layout.time_format, strict=False)
    naive = text.str.strptime(pl.Datetime("us"), layout.time_format, strict=False)
    return naive.dt.replace_time_zone("UTC")


def _request(good: pl.DataFrame, n: int) -> tuple[pl.Series, ...]:
    """method, path, query, protocol and the absolute-form target's host (else null)."""
    if "request" not in good.columns:
        return tuple(null_column(n) for _ in range(5))
    line = good.get_column("request")
    line = line.set(line.str.contains(_NO_REQUEST).fill_null(False), None)
    method, path, query, protocol = requests.split_target(requests.split_request_line(line))
    absolute = path.str.contains(_ABSOLUTE).fill_null(False)
    if not absolute.any():
        return method, path, query, protocol, null_column(n)
    # "https://user@host:443/a" -> host "host:443" (userinfo dropped: it can hold credentials), "/a";
    # the origin-form of "https://host:443" (no path) is "/"
    halves = path.str.replace(_ABSOLUTE, "").str.splitn("/", 2)
    host = halves.struct.field("field_0").str.replace(r"^[^@]*@", "")
    rest = ("/" + halves.struct.field("field_1").fill_null("")).zip_with(absolute, path)
    return method, rest, query, protocol, host.set(~absolute, None)


def _column(frame: pl.DataFrame, name: str, n: int) -> pl.Series:
    return frame.get_column(name) if name in frame.columns else null_column(n, name=name)


def _none(values: pl.Series) -> pl.Series:
    """'-' and '' are how these logs write "none"."""
    return values.replace({"-": None, "": None})
