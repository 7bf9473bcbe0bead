"""Where a log line becomes a row: one vectorised pass per batch with polars.

Input: the lines of a block (``lines.SplitLines``). Output: ``pageviews`` rows (already privacy-safe,
see ``privacy.py``) and quarantine records for every line that is not a row, each with a reason.
Every non-blank line ends up in exactly one of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal

import polars as pl

from pipeline.ingest.formats.registry import QUOTED, REQUEST_PARTS, LogFormat
from pipeline.ingest.lines import SplitLines
from pipeline.privacy import mask as privacy
from pipeline.store.schema import PAGEVIEW_COLUMNS

RejectReason = Literal["unparseable", "bad_timestamp", "binary", "too_long", "bad_field"]
REJECT_REASONS: tuple[RejectReason, ...] = ("unparseable", "bad_timestamp", "binary", "too_long", "bad_field")
REJECT_TEXT_LIMIT = 2048  # bytes of a rejected line kept (after scrubbing) in the quarantine

_TS_FORMAT = "[%d/%b/%Y:%H:%M:%S %z]"  # %t with its brackets (no strip pass)
# A timestamp outside [EARLIEST_TS, LATEST_TS) is a bad_timestamp whatever it says: before the Unix
# epoch no web server logged (such a line comes from a clock that was never set), and from year 9999
# on a UTC instant can leave the calendar (year 0, 10000) that dates and partitions are made of.
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(9999, 1, 1, tzinfo=UTC)
# METHOD SP target [SP protocol]; runs of spaces inside the target happen (NASA log, Nikto probes).
_REQUEST_RE = r"^(?P<method>[A-Za-z][A-Za-z_-]*) +(?P<target>.*?)(?: +(?P<protocol>[A-Za-z]+/[0-9.]+))? *$"


@dataclass(frozen=True)
class ParseSettings:
    domain: str | None  # used when the format has no domain field
    server: str
    sensitive_param_regex: str
    # Lines dated later than the parse time plus this are bad_timestamp (ingest.max_future_skew): a
    # row from the future would escape retention. None: only LATEST_TS.
    max_future_skew: timedelta | None = None

    def ts_bounds(self) -> tuple[datetime, datetime]:
        """[earliest, latest) UTC instant a row may have, as of now."""
        if self.max_future_skew is None:
            return EARLIEST_TS, LATEST_TS
        return EARLIEST_TS, min(LATEST_TS, datetime.now(UTC) + self.max_future_skew)


@dataclass(frozen=True)
class ParsedBatch:
    rows: pl.DataFrame  # PAGEVIEW_COLUMNS (user_agent a per-batch Categorical, server a one-value Enum)
    rejects: pl.DataFrame  # offset, reason, line (scrubbed)
    lines: int  # non-blank lines seen

    @property
    def reject_counts(self) -> dict[str, int]:
        if self.rejects.height == 0:
            return {}
        counts = self.rejects.group_by("reason").len()
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def parse_lines(
    split: SplitLines, fmt: LogFormat, settings: ParseSettings, masker: privacy.ClientMasker
) -> ParsedBatch:
    frame = pl.DataFrame(
        {
            "line": pl.from_arrow(split.text),
            "offset": split.offsets,
            "blank": split.blank,
            "binary": split.binary,
            "too_long": split.too_long,
            "non_ascii": split.non_ascii,
        }
    ).filter(~pl.col("blank"))
    fields: list[pl.DataFrame] = []
    rejects: list[pl.DataFrame] = []
    todo = frame
    # User agents become a Categorical: codes into the batch's own dictionary (freed with the batch,
    # shared by all stages so that their fields concatenate), masked once per distinct value.
    agents = partial(_agents, masker=masker, labels=pl.Categorical(pl.Categories.random()))
    # The fast stages first (each a strict subset of the general pattern with the same captures); the
    # lines a stage cannot match go to the next one, the general pattern last.
    stages = _stages(fmt, agents, settings.ts_bounds())
    for i, (extract, normalized) in enumerate(stages):
        checked = extract(todo)
        good = checked.drop("line").filter(pl.col("reason").is_null())  # (the lines are not needed)
        fields.append(_fields(good, fmt, settings.domain, normalized, agents))
        failed = checked.filter(pl.col("reason").is_not_null())
        retry = failed.get_column("reason") == "unparseable"
        if i + 1 < len(stages) and retry.any():
            todo = failed.filter(retry).select(frame.columns)
            failed = failed.filter(~retry)
        else:
            todo = todo.clear()
        rejects.append(_to_rejects(failed, split, masker))
        if todo.height == 0:
            break
    return ParsedBatch(
        rows=_to_rows(pl.concat(fields) if len(fields) > 1 else fields[0], fmt, settings, masker),
        rejects=pl.concat(rejects).sort("offset") if len(rejects) > 1 else rejects[0],
        lines=frame.height,
    )


Stage = Callable[[pl.DataFrame], pl.DataFrame]
Agents = Callable[[pl.Series, pl.Series], pl.Series]
Bounds = tuple[datetime, datetime]


def _agents(
    distinct: pl.Series, codes: pl.Series, masker: privacy.ClientMasker, labels: pl.DataType
) -> pl.Series:
    """The user-agent column from its distinct values and per-row codes: '-' is none, addresses and
    e-mails masked (once per distinct value), as the batch's Categorical."""
    return privacy.mask_distinct(distinct, codes, masker, labels, null="-")


def _stages(fmt: LogFormat, agents: Agents, bounds: Bounds) -> list[tuple[Stage, bool]]:
    """(extract function, whether its domains come out normalised), in the order they are tried."""
    stages: list[tuple[Stage, bool]] = []
    if fmt.split_regex is not None:
        split = partial(_extract_split, regex=fmt.split_regex, fmt=fmt, agents=agents, bounds=bounds)
        stages.append((split, fmt.fast_domain_normalized))
    if fmt.fast_regex is not None:
        fast = partial(_extract, pattern=fmt.fast_regex, fmt=fmt, bounds=bounds)
        stages.append((fast, fmt.fast_domain_normalized))
    stages.append((partial(_extract, pattern=fmt.regex, fmt=fmt, bounds=bounds), False))
    return stages


def _extract(frame: pl.DataFrame, pattern: str, fmt: LogFormat, bounds: Bounds) -> pl.DataFrame:
    """The lines with their fields, parsed timestamp and ``reason`` (null for a good line)."""
    # Values still end with their terminator; the pattern accepts it instead of a strip pass.
    fields = frame.get_column("line").str.extract_groups(pattern[:-1] + r"\r?\n?$").struct.unnest()
    return _checked(frame, fields, fmt, bounds)


# What follows the referrer's closing '" "': the user agent, any extra quoted fields, the terminator.
_AGENT_TAIL = rf'^({QUOTED})"(?: "{QUOTED}")*\r?\n?$'


def _extract_split(
    frame: pl.DataFrame, regex: str, fmt: LogFormat, agents: Agents, bounds: Bounds
) -> pl.DataFrame:
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
    return _checked(frame, fields, fmt, bounds)


def _checked(frame: pl.DataFrame, fields: pl.DataFrame, fmt: LogFormat, bounds: Bounds) -> pl.DataFrame:
    checked = pl.concat([frame, fields], how="horizontal")
    # bytes as Int64 (null for '-'), parsed once: it both checks the field and is the stored value
    number = pl.col("bytes").cast(pl.Int64, strict=False) if "bytes" in fmt.fields else pl.lit(None, pl.Int64)
    checked = checked.with_columns(ts=_parse_ts(pl.col("ts")), ts_raw=pl.col("ts"), bytes_value=number)
    # bounded in a second step: one expression using the parse twice would parse twice
    in_range = pl.col("ts").is_between(pl.lit(bounds[0]), pl.lit(bounds[1]), closed="left")
    checked = checked.with_columns(ts=pl.when(in_range).then(pl.col("ts")), bad_field=_bad_field(fmt))
    return checked.with_columns(reason=_reject_reason())


def _parse_ts(col: pl.Expr) -> pl.Expr:
    """The UTC instant, or null (a bad_timestamp) when it does not parse (bad date, offset such as
    +9999): a parse never raises, whatever the text (``_checked`` then applies the bounds)."""
    # strptime caches repeated values (many lines share a second); %z gives the true UTC instant,
    # so a line logged at 23:30 -0700 lands on the next UTC day.
    return col.str.strptime(pl.Datetime("us", "UTC"), _TS_FORMAT, strict=False)


def _reject_reason() -> pl.Expr:
    return (
        pl.when(pl.col("too_long"))
        .then(pl.lit("too_long"))
        .when(pl.col("binary"))
        .then(pl.lit("binary"))
        .when(pl.col("ts_raw").is_null())
        .then(pl.lit("unparseable"))
        .when(pl.col("ts").is_null())
        .then(pl.lit("bad_timestamp"))
        .when(pl.col("bad_field"))
        .then(pl.lit("bad_field"))
    )


def _bad_field(fmt: LogFormat) -> pl.Expr:
    """A numeric field that matched the regex but does not fit its type (e.g. a 20-digit byte count)."""
    if "bytes" not in fmt.fields:
        return pl.lit(False)
    b = pl.col("bytes")
    return b.is_not_null() & (b != "-") & pl.col("bytes_value").is_null()


def _fields(
    good: pl.DataFrame, fmt: LogFormat, domain: str | None, domain_normalized: bool, agents: Agents
) -> pl.DataFrame:
    """A stage's good lines as the same columns whatever the stage: request split, domain
    normalised, '-' as none, user agents masked (``_to_rows`` does the rest on all stages at once)."""
    method, path, query, protocol = _request_columns(good, fmt)
    agent = _column(good, "user_agent")
    if not isinstance(agent.dtype, pl.Categorical):  # the split stage's is done already
        agent = agents(*privacy.factorize(agent))
    return pl.DataFrame(
        {
            "ts": good.get_column("ts"),
            "domain": _domain(good, fmt, domain, domain_normalized),
            "method": method,
            "path": path,
            "query": query,
            "protocol": protocol,
            "status": _column(good, "status"),
            "bytes": good.get_column("bytes_value"),
            "referrer": _dash_null(good, "referrer"),
            "user_agent": agent,
            "client": _column(good, "client"),
        }
    )


def _to_rows(
    good: pl.DataFrame, fmt: LogFormat, settings: ParseSettings, masker: privacy.ClientMasker
) -> pl.DataFrame:
    n = good.height

    def text(name: str) -> pl.Series:  # by its class in privacy.STRING_COLUMNS
        return privacy.protect(name, good.get_column(name), masker, settings.sensitive_param_regex)

    server = privacy.mask_value(settings.server, masker)
    out = pl.DataFrame(
        {
            "ts": good.get_column("ts"),
            "domain": text("domain"),
            "method": text("method"),
            "path": text("path"),
            "query": text("query"),
            "protocol": text("protocol"),
            "status": _int(good, "status", pl.Int16),
            "bytes": good.get_column("bytes"),
            "referrer": text("referrer"),
            "user_agent": good.get_column("user_agent"),  # masked per distinct value (_agents)
            # network, pseudonym and GeoIP: all from the full address, once per distinct client
            **(
                masker.annotate(good.get_column("client"), good.get_column("ts"))
                if "client" in fmt.fields
                else privacy.null_client_columns(n)
            ),
            # constant per source: a one-value Enum reaches the Parquet writer as a dictionary
            "server": pl.repeat(server, n, dtype=pl.Enum([server]), eager=True),
        }
    )
    return out.select(PAGEVIEW_COLUMNS)


Request = tuple[pl.Series, pl.Series, pl.Series, pl.Series]


def _request_columns(good: pl.DataFrame, fmt: LogFormat) -> Request:
    """method, path, query (without '?'), protocol; method and protocol validated (``_validated``)."""
    if REQUEST_PARTS[0] in good.columns:  # split by the fast pattern already
        return _validated(*(good.get_column(c) for c in REQUEST_PARTS))
    req = _split_request(good, fmt)
    halves = req.get_column("target").str.splitn("?", 2)  # the query keeps later '?' (RFI probes)
    query = halves.struct.field("field_1")
    if "query" in fmt.fields:  # %U%q formats
        query = good.get_column("query").str.strip_prefix("?").replace("", None)
    return _validated(
        req.get_column("method"), halves.struct.field("field_0"), query, req.get_column("protocol")
    )


def _validated(method: pl.Series, path: pl.Series, query: pl.Series, protocol: pl.Series) -> Request:
    """Method and protocol are fixed-shape columns (``privacy.VALID``), never free text.

    A protocol that is not HTTP/d[.d] ("HTTP/203.0.113.19", "FOO") is part of the target, as the
    general request pattern reads a last word that is no protocol: it goes to the query (or the
    path), which are masked, and the protocol is null. A method that is not a token of letters puts
    the whole request into the path (method null), like any request line that is not a request.
    """
    bad_proto = (protocol.is_not_null() & ~protocol.str.contains(privacy.PROTOCOL_RE)).fill_null(False)
    if bad_proto.any():
        tail = pl.concat_str([pl.lit(" "), protocol])
        frame = pl.DataFrame({"path": path, "query": query, "protocol": protocol, "bad": bad_proto})
        fixed = frame.select(
            path=pl.when(pl.col("bad") & pl.col("query").is_null())
            .then(pl.concat_str([pl.col("path").fill_null(""), tail]))
            .otherwise(pl.col("path")),
            query=pl.when(pl.col("bad"))
            .then(pl.concat_str([pl.col("query"), tail]))
            .otherwise(pl.col("query")),
            protocol=pl.when(~pl.col("bad")).then(pl.col("protocol")),
        )
        path, query, protocol = (fixed.get_column(c) for c in ("path", "query", "protocol"))
    bad_method = (method.is_not_null() & ~method.str.contains(privacy.METHOD_RE)).fill_null(False)
    if bad_method.any():
        whole = pl.DataFrame({"m": method, "p": path, "q": query, "v": protocol}).select(
            pl.concat_str(
                [pl.col("m"), pl.lit(" "), pl.col("p").fill_null(""),
                 pl.when(pl.col("q").is_not_null()).then(pl.lit("?") + pl.col("q")).otherwise(pl.lit("")),
                 pl.when(pl.col("v").is_not_null()).then(pl.lit(" ") + pl.col("v")).otherwise(pl.lit(""))]
            )
        ).to_series()  # fmt: skip
        path = path.zip_with(~bad_method, whole)
        none = pl.repeat(None, len(method), dtype=pl.String, eager=True)
        method, query, protocol = (c.zip_with(~bad_method, none) for c in (method, query, protocol))
    return method, path, query, protocol


def _split_request(good: pl.DataFrame, fmt: LogFormat) -> pl.DataFrame:
    n = good.height
    if "request" not in fmt.fields:  # %m %U%q %H formats

        def col(name: str) -> pl.Series:
            if name in fmt.fields:
                return good.get_column(name).replace("-", None)
            return pl.repeat(None, n, dtype=pl.String, eager=True)

        return pl.DataFrame({"method": col("method"), "target": col("path"), "protocol": col("protocol")})
    request = good.get_column("request")
    # Fast path without capture groups: "METHOD target HTTP/x" split on its two spaces.
    parts = (
        request.str.split_exact(" ", 2).struct.rename_fields(["method", "target", "protocol"]).struct.unnest()
    )
    proto = parts.get_column("protocol")
    odd = ~(
        parts.get_column("method").str.contains(r"^[A-Za-z]+$")
        & proto.str.starts_with("HTTP/")
        & ~proto.str.contains(" ", literal=True)
    ).fill_null(False)
    if odd.any():  # spaces inside the target, HTTP/0.9 without protocol, junk: the general pattern
        # (it overwrites every odd row, with nulls where even the general pattern does not match)
        slow = request.filter(odd).str.extract_groups(_REQUEST_RE).struct.unnest()
        parts = parts.with_columns(
            [parts.get_column(c).scatter(odd.arg_true(), slow.get_column(c)) for c in parts.columns]
        )
    # A request line that is not "METHOD target [protocol]" (a TLS handshake sent to port 80, "-" on a
    # timeout, junk from scanners) is still a request the server logged: keep it, verbatim, as path.
    unparsed = parts.get_column("method").is_null()
    target = parts.get_column("target")
    if unparsed.any():
        target = target.zip_with(~unparsed, request.replace({"-": None, "": None}))
    return pl.DataFrame(
        {"method": parts.get_column("method"), "target": target, "protocol": parts["protocol"]}
    )


def _dash_null(frame: pl.DataFrame, name: str) -> pl.Series:
    return _column(frame, name).replace("-", None)


def _column(frame: pl.DataFrame, name: str) -> pl.Series:
    if name not in frame.columns:
        return pl.repeat(None, frame.height, dtype=pl.String, eager=True).alias(name)
    return frame.get_column(name)


def _int(frame: pl.DataFrame, name: str, dtype: type[pl.DataType]) -> pl.Series:
    if name not in frame.columns:
        return pl.repeat(None, frame.height, dtype=dtype, eager=True).alias(name)
    return frame.get_column(name).replace("-", None).cast(dtype, strict=False)


def _domain(frame: pl.DataFrame, fmt: LogFormat, fallback: str | None, normalized: bool) -> pl.Series:
    if "domain" not in fmt.fields:
        return pl.repeat(fallback, frame.height, dtype=pl.String, eager=True).alias("domain")
    domain = frame.get_column("domain")
    if normalized:  # the pattern only matched normalised names (never '-' or empty)
        return domain
    domain = normalize_domain(domain)
    return domain if fallback is None else domain.fill_null(fallback)


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


def drop_cut_token(text: pl.Series) -> pl.Series:
    """A text cut at the limit may end in half an address that no longer parses: drop that tail."""
    cut = text.str.len_bytes() >= REJECT_TEXT_LIMIT - 8
    return text.zip_with(~cut, text.str.replace(r"[0-9A-Fa-f\[]*[:.][0-9A-Fa-f:.%\[\]]*$", "")).fill_null(
        text
    )


def _to_rejects(bad: pl.DataFrame, split: SplitLines, masker: privacy.ClientMasker) -> pl.DataFrame:
    if bad.height == 0:
        return pl.DataFrame(schema={"offset": pl.Int64, "reason": pl.String, "line": pl.String})
    text = bad.get_column("line").str.strip_chars_end("\r\n")
    raw_needed = (bad.get_column("binary") | bad.get_column("too_long")).to_numpy()
    if raw_needed.any():
        # Blanked lines are rendered from the raw bytes, escaped like Apache does (\xNN). Rejects are
        # the exception path; this loop runs per rejected line only.
        index = {int(o): i for i, o in enumerate(split.offsets)}
        offsets = bad.get_column("offset").to_numpy()
        rendered = [
            split.raw_line(index[int(offsets[k])], REJECT_TEXT_LIMIT).decode("utf-8", "backslashreplace")
            if raw_needed[k]
            else None
            for k in range(bad.height)
        ]
        text = pl.Series(rendered, dtype=pl.String).fill_null(text)
        text = text.str.replace_all(r"[\x00-\x08\x0b-\x1f\x7f]", "\u2400")  # keep control bytes visible
    text = drop_cut_token(text.str.slice(0, REJECT_TEXT_LIMIT))
    return pl.DataFrame(
        {
            "offset": bad.get_column("offset"),
            "reason": bad.get_column("reason"),
            "line": privacy.mask_text(text, masker),
        }
    )
