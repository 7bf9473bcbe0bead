"""Where a log line becomes a row: a format's fields become pageview rows and rejects.

Input: the lines of a block (``lines.SplitLines``) and a registered format (``formats``). The format
reads the lines into format-independent fields (``fields.Fields``); this module turns them into
``pageviews`` rows (already privacy-safe, see ``privacy``) and quarantine records for every line that
is not a row, each with a reason. Every non-blank line ends up in exactly one of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Literal, cast

import numpy as np
import polars as pl
import pyarrow as pa

from pipeline.ingest.fields import FIELD_COLUMNS, OPTIONAL_COLUMNS, FieldContext, Format, RawLines
from pipeline.ingest.lines import SplitLines
from pipeline.privacy import mask as privacy
from pipeline.privacy.forwarded import ProxyResolver
from pipeline.rules import REJECT_TEXT_LIMIT
from pipeline.store.schema import PAGEVIEW_COLUMNS

RejectReason = Literal["unparseable", "bad_timestamp", "binary", "too_long", "bad_field"]
REJECT_REASONS: tuple[RejectReason, ...] = ("unparseable", "bad_timestamp", "binary", "too_long", "bad_field")

# A timestamp outside [EARLIEST_TS, LATEST_TS) is a bad_timestamp whatever it says: before the Unix
# epoch no web server logged (such a line comes from a clock that was never set), and from year 9999
# on a UTC instant can leave the calendar (year 0, 10000) that dates and partitions are made of.
EARLIEST_TS = datetime(1970, 1, 1, tzinfo=UTC)
LATEST_TS = datetime(9999, 1, 1, tzinfo=UTC)
_REJECT_SCHEMA = {"offset": pl.Int64, "reason": pl.String, "line": pl.String}


@dataclass(frozen=True)
class ParseSettings:
    domain: str | None  # used when the format has no domain field
    server: str
    sensitive_param_regex: str
    # Lines dated later than the parse time plus this are bad_timestamp (ingest.max_future_skew): a
    # row from the future would escape retention. None: only LATEST_TS.
    max_future_skew: timedelta | None = None
    # Picks the real client from the peer and X-Forwarded-For (``ingest.trusted_proxies``).
    proxies: ProxyResolver = field(default_factory=ProxyResolver)

    def ts_bounds(self) -> tuple[datetime, datetime]:
        """[earliest, latest) UTC instant a row may have, as of now."""
        if self.max_future_skew is None:
            return EARLIEST_TS, LATEST_TS
        return EARLIEST_TS, min(LATEST_TS, datetime.now(UTC) + self.max_future_skew)


@dataclass(frozen=True)
class ParsedBatch:
    # PAGEVIEW_COLUMNS (user agent a per-batch Categorical; domain, path, query, referrer Enums of
    # the batch's values when they repeat; server a one-value Enum)
    rows: pl.DataFrame
    rejects: pl.DataFrame  # offset, reason, line (scrubbed)
    lines: int  # non-blank lines seen
    directives: int = 0  # of which the format's own metadata lines (W3C headers): no row, no reject

    @property
    def reject_counts(self) -> dict[str, int]:
        if self.rejects.height == 0:
            return {}
        counts = self.rejects.group_by("reason").len()
        return dict(zip(counts["reason"].to_list(), counts["len"].to_list(), strict=True))


def parse_lines(
    split: SplitLines, fmt: Format, settings: ParseSettings, masker: privacy.ClientMasker
) -> ParsedBatch:
    keep = ~split.blank
    flagged = split.binary | split.too_long  # not text: quarantined from their raw bytes, never parsed
    frame = pl.DataFrame(
        {"line": _string_views(split.text), "offset": split.offsets, "non_ascii": split.non_ascii}
    ).filter(pl.Series(keep & ~flagged))
    # User agents become a Categorical: codes into the batch's own dictionary (freed with the batch,
    # shared by all of a format's stages so that their fields concatenate), masked once per distinct value.
    agents = partial(_agents, masker=masker, labels=pl.Categorical(pl.Categories.random()))
    fields = fmt.parse(frame, FieldContext(agents=agents, raw=_raw_lines(split, keep & ~flagged)))
    _check_columns(fmt, fields.frame.columns)
    checked = fields.frame.select("offset", reason=_reject_reason(settings.ts_bounds()))
    bad = checked.get_column("reason").is_not_null()
    good = fields.frame.filter(~bad) if bad.any() else fields.frame
    unparsed = pl.DataFrame(
        {"offset": fields.unparsed, "reason": pl.repeat("unparseable", len(fields.unparsed), eager=True)},
        schema={"offset": pl.Int64, "reason": pl.String},
    )
    failed = pl.concat([unparsed, checked.filter(bad)])
    return ParsedBatch(
        rows=_to_rows(good, settings, masker, agents),
        rejects=_to_rejects(failed, frame, split, keep & flagged, masker),
        lines=int(keep.sum()),
        directives=0 if fields.directives is None else len(fields.directives),
    )


def _raw_lines(split: SplitLines, rows: np.ndarray) -> RawLines:
    starts = split.offsets[rows] - split.base_offset
    return RawLines(split.text.buffers()[2], starts, starts + split.lengths[rows])


def _check_columns(fmt: Format, columns: list[str]) -> None:
    """A format returns FIELD_COLUMNS then some OPTIONAL_COLUMNS, in order: anything else is the
    format's bug, not the log's, and fails loudly instead of mis-mapping columns."""
    core, extra = tuple(columns[: len(FIELD_COLUMNS)]), columns[len(FIELD_COLUMNS) :]
    optional = [c for c in OPTIONAL_COLUMNS if c in extra]
    if core != FIELD_COLUMNS or extra != optional:
        expected = [*FIELD_COLUMNS, "(+ optional: " + ", ".join(OPTIONAL_COLUMNS) + ")"]
        raise TypeError(f"format {fmt.name!r} returned {columns}, not {expected}")


def _agents(
    distinct: pl.Series, codes: pl.Series, masker: privacy.ClientMasker, labels: pl.DataType
) -> pl.Series:
    """The user-agent column from its distinct values and per-row codes: '-' is none, addresses and
    e-mails masked (once per distinct value), as the batch's Categorical."""
    return privacy.mask_distinct(distinct, codes, masker, labels, null="-")


def _reject_reason(bounds: tuple[datetime, datetime]) -> pl.Expr:
    """Why a parsed line is no row: its time (unparsed or out of bounds), or a field that does not fit."""
    in_range = pl.col("ts").is_between(pl.lit(bounds[0]), pl.lit(bounds[1]), closed="left").fill_null(False)
    return (
        pl.when(~in_range).then(pl.lit("bad_timestamp")).when(pl.col("bad_field")).then(pl.lit("bad_field"))
    )


def _to_rows(
    good: pl.DataFrame, settings: ParseSettings, masker: privacy.ClientMasker, agents: Agents
) -> pl.DataFrame:
    n = good.height

    def text(name: str, values: pl.Series) -> pl.Series:  # by its class in privacy.STRING_COLUMNS
        return privacy.protect(name, values, masker, settings.sensitive_param_regex)

    def repeated(name: str, values: pl.Series) -> pl.Series:
        """``text`` once per distinct value. Paths, queries and referrers repeat (a block of 134k
        lines held 0.4-8 % distinct values in the bench logs): their privacy scans then cost a hash
        per row instead of a regex per row, and as an Enum of the batch's values the sort moves
        integer codes and the Parquet writer takes them as a dictionary. Mostly distinct values stay
        strings: for them an Enum would only add its own hashing."""
        if values.dtype != pl.String:
            return text(name, values)
        distinct, codes = privacy.factorize(values)
        return _coded(text(name, distinct), codes)

    method, path, query, protocol = _validated(
        *(good.get_column(c) for c in ("method", "path", "query", "protocol"))
    )
    domain = good.get_column("domain")
    if settings.domain is not None:
        domain = domain.fill_null(settings.domain)  # the source's domain, for lines that name none
    agent = good.get_column("user_agent")
    if not isinstance(agent.dtype, pl.Categorical):  # a format that did not mask them per distinct value
        agent = agents(*privacy.factorize(agent))
    peer = good.get_column("client")
    chain = good.get_column("forwarded_for") if "forwarded_for" in good.columns else None
    client = settings.proxies.resolve(peer, chain)  # the real client: a raw address, in memory only
    server = privacy.mask_value(settings.server, masker)
    out = pl.DataFrame(
        {
            "ts": good.get_column("ts"),
            "domain": repeated("domain", domain),
            # method and protocol: ``_validated`` applied their class (privacy.VALID) already; a
            # second scan of each costs ~3 % of a batch and changes nothing
            "method": method,
            "path": repeated("path", path),
            "query": repeated("query", query),
            "protocol": protocol,
            "status": good.get_column("status"),
            "bytes": good.get_column("bytes"),
            "referrer": repeated("referrer", good.get_column("referrer")),
            "user_agent": agent,  # masked per distinct value (_agents)
            # network, pseudonym and GeoIP: all from the full address, once per distinct client
            **(
                masker.annotate(client, good.get_column("ts"))
                if client.null_count() < n
                else privacy.null_client_columns(n)
            ),
            # constant per source: a one-value Enum reaches the Parquet writer as a dictionary
            "server": pl.repeat(server, n, dtype=pl.Enum([server]), eager=True),
        }
    )
    # the socket peer's network: the client's unless a forwarding chain named another client
    peer_net = out.get_column("client_net") if chain is None else masker.networks(peer.cast(pl.String))
    out = out.with_columns(peer_net=peer_net)
    extras = {
        name: text(name, good.get_column(name))
        if name in good.columns
        else pl.repeat(None, n, dtype=pl.String, eager=True)
        for name in OPTIONAL_COLUMNS
        if name != "forwarded_for"  # resolved into client_net above; never stored
    }
    return out.with_columns(**extras).select(PAGEVIEW_COLUMNS)


def _string_views(text: pa.LargeStringArray) -> pl.Series:
    """The block's lines as a polars string column. Arrow makes the views (its compute releases the
    GIL) and polars takes them as they are: polars' own conversion of the large strings held the GIL
    for ~12 ms a batch, while the other worker waited for it (py-spy ``--gil``: 0.19 s a run).
    Views address at most 2 GiB of one buffer: larger blocks take polars' conversion."""
    if text.nbytes < 1 << 31:
        text = text.cast(pa.string_view())
    return cast(pl.Series, pl.from_arrow(text))


def _coded(distinct: pl.Series, codes: pl.Series) -> pl.Series:
    """``distinct.gather(codes)``, as an Enum of the values when they repeat: the sort moves integer
    codes and the Parquet writer takes them as a dictionary (instead of hashing every row). Mostly
    distinct values stay strings: for them an Enum would only add its own hashing."""
    if len(distinct) > len(codes) // 2:
        return distinct.gather(codes)
    # Its values sorted: an Enum sorts by its codes, and the batch is sorted by domain (found by
    # review: in order of first appearance, files were no longer sorted by domain). (Masking can
    # make two distinct values one: an Enum's values are unique.)
    return distinct.cast(pl.Enum(distinct.drop_nulls().unique().sort())).gather(codes)


Request = tuple[pl.Series, pl.Series, pl.Series, pl.Series]
Agents = Callable[[pl.Series, pl.Series], pl.Series]


def _validated(method: pl.Series, path: pl.Series, query: pl.Series, protocol: pl.Series) -> Request:
    """Method and protocol are fixed-shape columns (``privacy.VALID``), never free text: what is
    returned for them is null or matches its ``VALID`` pattern (``protect``'s "validated" class).

    A protocol that is not HTTP/d[.d] ("HTTP/203.0.113.19", "FOO") is part of the target, as the
    general request pattern reads a last word that is no protocol: it goes to the query (or the
    path), which are masked, and the protocol is null. A method that is not a token of letters puts
    the whole request into the path (method null), like any request line that is not a request.
    """
    bad_proto = privacy.invalid("protocol", protocol)
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
    bad_method = privacy.invalid("method", method)
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


# The tail a cut text loses: a run of the characters an address is written with, escapes and DNS
# names included (2001%3Adb8%3Aabcd%3A1234: a /64 left by the cut; app-c633643c, cut before .nip.io),
# up to the longest an address is written (~160 characters, encoded twice): found by review.
_CUT_TAIL = r"[0-9A-Za-z%&#;:._\\\[\]-]{1,200}$"


def drop_cut_token(text: pl.Series) -> pl.Series:
    """A text cut at the limit may end in half an address that no longer parses: drop that tail."""
    cut = text.str.len_bytes() >= REJECT_TEXT_LIMIT - 8
    return text.zip_with(~cut, text.str.replace(_CUT_TAIL, "")).fill_null(text)


def _to_rejects(
    failed: pl.DataFrame,
    frame: pl.DataFrame,
    split: SplitLines,
    flagged: np.ndarray,
    masker: privacy.ClientMasker,
) -> pl.DataFrame:
    """Quarantine records: ``failed`` (offset, reason) lines of ``frame``, and the ``flagged`` lines."""
    # the lines' text, by offset (``frame`` is in offset order): rejects are few, no join needed
    at = np.searchsorted(frame.get_column("offset").to_numpy(), failed.get_column("offset").to_numpy())
    text = frame.get_column("line").gather(at).str.strip_chars_end("\r\n")
    parts = [_masked(failed.with_columns(line=text), masker)]
    # Blanked lines are rendered from the raw bytes, escaped like Apache does (\xNN), a slice at a
    # time: a block of binary garbage is ~130k of them, ~3x their bytes once escaped, and masking
    # holds a few copies (1.4 GB for one 32 MiB block rendered and masked at once).
    index = np.flatnonzero(flagged)
    parts += [
        _masked(_rendered(split, index[at : at + _RENDER_LINES]), masker)
        for at in range(0, len(index), _RENDER_LINES)
    ]
    bad = pl.concat(parts) if len(parts) > 1 else parts[0]
    return bad.sort("offset") if bad.height else pl.DataFrame(schema=_REJECT_SCHEMA)


_RENDER_LINES = 8192


def _rendered(split: SplitLines, index: np.ndarray) -> pl.DataFrame:
    """The raw lines ``index`` of ``split`` as reject records (this loop runs per rejected line only)."""
    rendered = [split.raw_line(int(i), REJECT_TEXT_LIMIT).decode("utf-8", "backslashreplace") for i in index]
    raw = pl.Series(rendered, dtype=pl.String)
    raw = raw.str.replace_all(r"[\x00-\x08\x0b-\x1f\x7f]", "\u2400")  # keep control bytes visible
    reason = np.where(split.too_long[index], "too_long", "binary")
    return pl.DataFrame(
        {"offset": split.offsets[index], "reason": reason, "line": raw}, schema=_REJECT_SCHEMA
    )


def _masked(rejects: pl.DataFrame, masker: privacy.ClientMasker) -> pl.DataFrame:
    """``rejects`` with their text cut at the limit and masked."""
    text = drop_cut_token(rejects.get_column("line").str.slice(0, REJECT_TEXT_LIMIT))
    return rejects.with_columns(line=privacy.mask_text(text, masker))


def add_oversized(
    parsed: ParsedBatch, oversized: tuple[tuple[int, int, bytes], ...], masker: privacy.ClientMasker
) -> ParsedBatch:
    """``parsed`` with the lines the reader skipped as too long (offset, length, first bytes) as rejects."""
    if not oversized:
        return parsed
    text = pl.Series([o[2][:REJECT_TEXT_LIMIT].decode("utf-8", "backslashreplace") for o in oversized])
    extra = pl.DataFrame(
        {
            "offset": pl.Series([o[0] for o in oversized], dtype=pl.Int64),
            "reason": pl.Series(["too_long"] * len(oversized), dtype=pl.String),
            "line": privacy.mask_text(drop_cut_token(text), masker),
        }
    )
    return ParsedBatch(
        rows=parsed.rows,
        rejects=pl.concat([parsed.rejects, extra]),
        lines=parsed.lines + len(oversized),
        directives=parsed.directives,
    )
