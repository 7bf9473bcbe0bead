"""Everything that stands between a raw address (or other personal data) and the disk.

* ``ClientMasker`` turns the client field into the truncated network (``203.0.113.0/24``), once per
  distinct value with a cache across batches: distinct clients are far fewer than lines.
* ``mask_text`` replaces every IP-looking token and e-mail address in free text (paths, referrers,
  user agents, quarantined lines) by its truncated network / a placeholder.
  (``privacy.addresses`` finds the addresses, in every form a log can carry them).
* ``redact_params`` replaces values of sensitive query parameters by ``REDACTED``
  (``scrub_params_and_text`` does both, for query strings and referrers).

Raw addresses live only in the in-memory polars frames of the batch being processed.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol

import polars as pl

from pipeline.privacy.addresses import PLAIN_IPV4
from pipeline.privacy.truncate import EMAIL, EMAIL_MASK, NEEDS_MASK, Truncator
from pipeline.privacy.truncate import mask_value as mask_value  # re-exported: one masking API

REDACTED = "REDACTED"

# Every string column of the store and what keeps personal data out of it; tests/privacy/test_privacy.py
# fails when a string column of ``schema.PAGEVIEWS`` or ``schema.REJECTS`` has no entry here.
# * masked: free text, through ``mask_text`` (every address form, e-mails);
# * scrubbed: masked and sensitive parameters REDACTED (``scrub_params_and_text``);
# * validated: a fixed shape (``VALID``) or NULL; text that does not fit goes to a masked column;
# * derived: computed by hostlogs (networks, GeoIP names, batch ids), never text from the log;
TextClass = Literal["masked", "scrubbed", "validated", "derived"]
STRING_COLUMNS: dict[str, dict[str, TextClass]] = {
    "pageviews": {
        "domain": "masked",  # %v/%V/Host header: a vhost can be an IP literal
        "method": "validated",
        "path": "masked",
        "query": "scrubbed",
        "protocol": "validated",
        "referrer": "scrubbed",
        "user_agent": "masked",  # per distinct value at extraction (parse._agents)
        "client_net": "derived",
        "country": "derived",
        "as_org": "derived",
        "geo_db": "derived",
        "server": "masked",  # the configured server name, masked like the domain
        "peer_net": "derived",
        "request_id": "masked",
        "tls": "masked",
        "upstream": "masked",  # backends are often named by address:port
        "edge_location": "masked",
    },
    # the log file's name (``sources.stored_name``): operators name files and directories by address
    "rejects": {"source": "masked", "reason": "validated", "line": "masked", "batch": "derived"},
}
METHOD_RE = r"^[A-Za-z][A-Za-z_-]*$"
PROTOCOL_RE = r"^HTTP/[0-9](?:\.[0-9])?$"  # HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/2.0, HTTP/3 ...
VALID: dict[str, str] = {"method": METHOD_RE, "protocol": PROTOCOL_RE}
# The values nearly every line carries, each of its VALID shape (a test holds it): a hash lookup
# settles them; only the rest is matched against the pattern (134.8k rows: 4 ms instead of 11 ms).
USUAL: dict[str, tuple[str, ...]] = {
    "method": ("GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH", "PROPFIND", "CONNECT"),
    "protocol": ("HTTP/1.1", "HTTP/1.0", "HTTP/2.0", "HTTP/2", "HTTP/3", "HTTP/3.0", "HTTP/0.9"),
}


def invalid(column: str, values: pl.Series) -> pl.Series:
    """Per row: a value that does not have the column's ``VALID`` shape (null is not invalid)."""
    odd = (values.is_not_null() & ~values.is_in(USUAL[column])).fill_null(False)
    if not odd.any():
        return odd
    return (odd & ~values.str.contains(VALID[column])).fill_null(False)


def protect(column: str, values: pl.Series, masker: ClientMasker, sensitive_regex: str) -> pl.Series:
    """A ``pageviews`` string column made safe by its class in ``STRING_COLUMNS``."""
    kind = STRING_COLUMNS["pageviews"][column]
    if kind == "masked":
        return mask_text(values, masker)
    if kind == "scrubbed":
        return scrub_params_and_text(values, sensitive_regex, masker)
    if kind == "validated":
        bad = invalid(column, values)
        if not bad.any():
            return values
        return values.zip_with(~bad, pl.repeat(None, len(values), dtype=pl.String, eager=True))
    return values


CLIENT_COLUMNS: dict[str, type[pl.DataType]] = {
    "client_net": pl.String, "client_id": pl.Int64, "country": pl.String, "asn": pl.Int64,
    "as_org": pl.String, "geo_db": pl.String,
}  # fmt: skip


def null_client_columns(n: int) -> dict[str, pl.Series]:
    return {
        name: pl.repeat(None, n, dtype=dtype, eager=True).alias(name)
        for name, dtype in CLIENT_COLUMNS.items()
    }


class Annotator(Protocol):
    """Adds pseudonym and GeoIP columns from the full address (``enrich.Enricher``)."""

    def annotate(self, clients: pl.Series, ts: pl.Series, masker: ClientMasker) -> dict[str, pl.Series]: ...


class ClientMasker(Truncator):
    """A ``Truncator`` that works on whole columns, caching per distinct value.

    With an ``annotator`` (pseudonyms, GeoIP) the same per-distinct-client pass also yields those
    columns, so a batch pays for one distinct/join round instead of one per feature.
    """

    def __init__(
        self, ipv4_prefix: int = 24, ipv6_prefix: int = 48, annotator: Annotator | None = None
    ) -> None:
        super().__init__(ipv4_prefix, ipv6_prefix)
        self.annotator = annotator

    def annotate(self, clients: pl.Series, ts: pl.Series) -> dict[str, pl.Series]:
        """The CLIENT_COLUMNS for each row's client field (``ts`` picks the pseudonym key period)."""
        if self.annotator is not None and len(clients):
            return self.annotator.annotate(clients, ts, self)
        columns = null_client_columns(len(clients))
        columns["client_net"] = self.networks(clients).rename("client_net")
        return columns

    def addresses_and_networks(self, values: pl.Series) -> tuple[pl.Series, pl.Series]:
        """For distinct client values: the canonical address text (what pseudonyms key) and network.

        Equal to ``keys.canonical_addresses`` and ``networks``, with one parse per value that is not a
        plain dotted quad (instead of one per answer).
        """
        values = values.cast(pl.String)
        plain = values.str.contains(PLAIN_IPV4).fill_null(False)
        addresses = values.zip_with(plain, pl.repeat(None, len(values), dtype=pl.String, eager=True))
        nets = self._ipv4_networks(values)
        others = (~plain & values.is_not_null()).arg_true()
        if len(others) == 0:
            return addresses, nets
        pairs = [self.address_and_network(v) for v in values.gather(others).to_list()]
        texts = pl.Series([a for a, _ in pairs], dtype=pl.String)
        networks = pl.Series([n for _, n in pairs], dtype=pl.String)
        # scatter works in place: on clones, never on a caller's series
        return addresses.clone().scatter(others, texts), nets.clone().scatter(others, networks)

    def networks(self, values: pl.Series) -> pl.Series:
        """Vectorised on the distinct values of the batch (far fewer than lines), mapped back."""
        distinct, codes = factorize(values)
        return self._networks_distinct(distinct).gather(codes)

    def _networks_distinct(self, values: pl.Series) -> pl.Series:
        """Plain dotted-quad IPv4 in polars; anything else once per distinct value in Python."""
        fast = self._ipv4_networks(values)
        rest = (fast.is_null() & values.is_not_null()).arg_true()
        if len(rest) == 0:
            return fast
        # scatter works in place: on a clone, never on a series the caller holds
        return fast.clone().scatter(rest, self._slow_networks(values.gather(rest)))

    def _ipv4_networks(self, values: pl.Series) -> pl.Series:
        if self.ipv4_prefix in _OCTET_CUTS:  # /24 and friends: a validating scan and a text cut
            zeros = ".0" * (4 - self.ipv4_prefix // 8)
            cut = values.str.replace(_OCTET_CUTS[self.ipv4_prefix], zeros) + f"/{self.ipv4_prefix}"
            return pl.select(pl.when(values.str.contains(PLAIN_IPV4)).then(cut)).to_series()
        octets = values.str.extract_groups(_IPV4_OCTETS).struct.unnest().cast(pl.Int64, strict=False)
        host = 1 << (32 - self.ipv4_prefix)  # integer arithmetic: polars has no shift operators
        addr = pl.col("a") * (1 << 24) + pl.col("b") * (1 << 16) + pl.col("c") * (1 << 8) + pl.col("d")
        addr = (addr // host) * host
        valid = pl.all_horizontal([pl.col(c) <= 255 for c in "abcd"])
        net = pl.concat_str(
            [((addr // (1 << s)) % 256).cast(pl.String) for s in (24, 16, 8, 0)], separator="."
        ) + pl.lit(f"/{self.ipv4_prefix}")
        return octets.select(pl.when(valid).then(net).alias("client_net")).to_series()

    def _slow_networks(self, distinct: pl.Series) -> pl.Series:
        """Networks of distinct non-null values (IPv6, mapped, ports, hostnames), in their order:
        one Python call per value never seen before."""
        keys = distinct.to_list()
        for v in keys:
            if v not in self._cache:
                self._cache[v] = self.network(v)
        nets = [self._cache[k] for k in keys]
        if len(self._cache) > 2_000_000:  # bound memory on endless streams
            self._cache = dict(zip(keys, nets, strict=True))
        return pl.Series(nets, dtype=pl.String)


# No leading zeros (ipaddress rejects them as ambiguous octal; both paths must agree).
_O = r"(?:0|[1-9][0-9]{0,2})"
_IPV4_OCTETS = rf"^(?P<a>{_O})\.(?P<b>{_O})\.(?P<c>{_O})\.(?P<d>{_O})$"
_OCTET_CUTS = {24: r"\.[0-9]+$", 16: r"\.[0-9]+\.[0-9]+$", 8: r"\.[0-9]+\.[0-9]+\.[0-9]+$"}


def factorize(values: pl.Series) -> tuple[pl.Series, pl.Series]:
    """(distinct values, per row the index of its value): one hash pass, for per-distinct work.

    ``f(distinct).gather(codes)`` equals ``f(values)`` for any per-value function ``f``; nulls map
    to null. Arrow's dictionary encoding is local to the call (a polars Categorical would put every
    raw address into the process-wide string cache).
    """
    # string views: zero-copy to arrow; arrow's hash pass is local to the call
    encoded = values.to_arrow(compat_level=pl.CompatLevel.newest()).dictionary_encode()
    distinct = pl.Series(values.name, encoded.dictionary, dtype=values.dtype)
    return distinct, pl.Series(encoded.indices, dtype=pl.UInt32)


_MASK_SLICE = 8192  # distinct values masked per Python pass


def mask_text(values: pl.Series, masker: ClientMasker) -> pl.Series:
    """Replace IP-looking tokens by their truncated network and e-mail addresses by a placeholder.

    One vectorised scan (``NEEDS_MASK``) per row; the rows it admits are masked once per distinct
    value (``addresses.mask_addresses``, cached in the masker across batches).
    """
    needs = values.str.contains(NEEDS_MASK).fill_null(False)
    if not needs.any():
        return values
    subset = values.filter(needs).str.replace_all(EMAIL, EMAIL_MASK)
    distinct, codes = factorize(subset)
    # in slices: the Python strings of one slice at a time (a block of binary garbage is ~130k
    # distinct rejects of ~1 KB of escapes each, several copies of which had taken 1.4 GB at once)
    slices = range(0, len(distinct), _MASK_SLICE)
    parts = [
        pl.Series(masker.mask_texts(distinct.slice(at, _MASK_SLICE).to_list()), dtype=pl.String)
        for at in slices
    ]
    masked = pl.concat(parts).gather(codes)
    # scatter works in place: on a clone (copy-on-write), never on the caller's series
    return values.clone().scatter(needs.arg_true(), masked)


def mask_text_distinct(values: pl.Series, masker: ClientMasker) -> pl.Series:
    """``mask_text`` over the distinct values, joined back: for columns that repeat."""
    return mask_distinct(*factorize(values), masker)


def mask_distinct(
    distinct: pl.Series,
    codes: pl.Series,
    masker: ClientMasker,
    dtype: pl.DataType | None = None,
    null: str | None = None,
) -> pl.Series:
    """``mask_text_distinct`` of a column given as ``factorize`` returns it.

    ``null``: a value that stands for "none" (the log's '-'); ``dtype``: a Categorical to return the
    column as (codes into the distinct values: the sort and the Parquet writer then move integers).
    """
    if null is not None:
        distinct = distinct.replace(null, None)
    masked = mask_text(distinct, masker)
    return (masked if dtype is None else masked.cast(dtype)).gather(codes)


def sensitive_param_regex(names: Sequence[str]) -> str:
    """Regex matching ``name=value`` pairs whose name is sensitive (also ``user[password]``, ``x_token``)."""
    alts = "|".join(re.escape(n) for n in sorted(set(names), key=len, reverse=True))
    # group 1: separator + name, group 2 would be the value (replaced)
    return rf"(?i)((?:^|[?&;])(?:[^=&;#]*(?:[_\-.\[]|%5b))?(?:{alts})(?:\]|%5d)?=)[^&;#]*"


def redact_params(values: pl.Series, pattern: str) -> pl.Series:
    needs = values.str.contains(pattern).fill_null(False)  # DFA scan, no captures: cheap
    if not needs.any():
        return values
    redacted = values.filter(needs).str.replace_all(pattern, "${1}" + REDACTED)
    return values.clone().scatter(needs.arg_true(), redacted)  # not in place on the caller's series


def scrub_params_and_text(values: pl.Series, pattern: str, masker: ClientMasker) -> pl.Series:
    """``mask_text(redact_params(values, pattern))`` (query strings, referrers) with one scan.

    Rows that match neither pattern are untouched by both, and one scan for either costs about what
    the slower of the two separate scans cost (a polars string scan is dominated by its per-row
    cost): the rest runs on the rows that need it.
    """
    needs = values.str.contains(f"(?:{NEEDS_MASK})|(?:{pattern})").fill_null(False)
    if not needs.any():
        return values
    subset = mask_text(redact_params(values.filter(needs), pattern), masker)
    return values.clone().scatter(needs.arg_true(), subset)  # not in place on the caller's series
