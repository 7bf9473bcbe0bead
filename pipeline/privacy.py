"""Everything that stands between a raw address (or other personal data) and the disk.

* ``ClientMasker`` turns the client field into the truncated network (``203.0.113.0/24``), once per
  distinct value with a cache across batches: distinct clients are far fewer than lines.
* ``mask_text`` replaces every IP-looking token and e-mail address in free text (paths, referrers,
  user agents, quarantined lines) by its truncated network / a placeholder.
* ``redact_params`` replaces values of sensitive query parameters by ``REDACTED``
  (``scrub_params_and_text`` does both, for query strings and referrers).

Raw addresses live only in the in-memory polars frames of the batch being processed.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable, Sequence
from typing import Protocol

import polars as pl

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

DEFAULT_SENSITIVE_PARAMS: tuple[str, ...] = (
    "password", "passwd", "pwd", "pass", "token", "access_token", "refresh_token", "id_token", "auth",
    "authorization", "session", "sessionid", "session_id", "sid", "phpsessid", "jsessionid", "key",
    "api_key", "apikey", "secret", "client_secret", "email", "mail", "e-mail", "code", "otp", "signature",
    "sig", "credentials", "ssn", "iban", "card", "cc", "cvv",
)  # fmt: skip
REDACTED = "REDACTED"
EMAIL_MASK = "[email]"

# Candidate tokens; every candidate is validated by ``ipaddress`` before it is replaced. IPv4 octets
# are bounded so that version strings such as Chrome/70.0.3538.102 are not candidates.
_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_TOKEN = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# A whole value that is a dotted quad without leading zeros: already the canonical text of its address.
PLAIN_IPV4 = rf"^{IPV4_TOKEN}$"
# IPv6: hex groups with at least two colons, optional embedded IPv4 tail and %zone; validated later.
IPV6_TOKEN = r"[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?:\.[0-9]{1,3}){0,3}(?:%[0-9A-Za-z._-]+)?"
IP_CANDIDATE = rf"(?:{IPV4_TOKEN}|{IPV6_TOKEN})"
# Cheap pre-filter: a row needs masking only if it has a dotted quad, a '::'/hex:hex run or an '@'.
# Version strings (Chrome/116.0.5845.187) must not pass it: the dotted quad needs a non-digit start.
_NEEDS_MASK = r"(?:^|[^0-9])[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]|[0-9A-Fa-f]:[0-9A-Fa-f]{0,4}:|::|@|%40"
_EMAIL = r"(?i)[a-z0-9._%+\-]+(?:@|%40)[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}"


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


class ClientMasker:
    """Maps client field values to truncated networks, caching per distinct value.

    With an ``annotator`` (pseudonyms, GeoIP) the same per-distinct-client pass also yields those
    columns, so a batch pays for one distinct/join round instead of one per feature.
    """

    def __init__(
        self, ipv4_prefix: int = 24, ipv6_prefix: int = 48, annotator: Annotator | None = None
    ) -> None:
        if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
            raise ValueError("prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self.annotator = annotator
        self._cache: dict[str, str | None] = {}

    def annotate(self, clients: pl.Series, ts: pl.Series) -> dict[str, pl.Series]:
        """The CLIENT_COLUMNS for each row's client field (``ts`` picks the pseudonym key period)."""
        if self.annotator is not None and len(clients):
            return self.annotator.annotate(clients, ts, self)
        columns = null_client_columns(len(clients))
        columns["client_net"] = self.networks(clients).rename("client_net")
        return columns

    def network(self, value: str) -> str | None:
        """Truncated network of a client field value, or None when it is not an IP address."""
        return self.address_and_network(value)[1]

    def address_and_network(self, value: str) -> tuple[str | None, str | None]:
        """Canonical address text (what pseudonyms key) and truncated network, or (None, None)."""
        fast = _ipv6_fast(value, self.ipv6_prefix)
        if fast is not None:
            return fast
        addr = parse_address(value)
        if addr is None:
            return None, None
        return str(addr), self.network_of(addr)

    def network_of(self, addr: IPAddress) -> str:
        # The network address by masking the integer: same text as IPv4Network/IPv6Network(...,
        # strict=False).with_prefixlen (tested), without building a network object (2x faster).
        if addr.version == 4:
            host = 32 - self.ipv4_prefix
            return f"{ipaddress.IPv4Address(int(addr) >> host << host)}/{self.ipv4_prefix}"
        host = 128 - self.ipv6_prefix  # explicit class: ip_address() would read ::1 as IPv4
        return f"{ipaddress.IPv6Address(int(addr) >> host << host)}/{self.ipv6_prefix}"

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


_ZEROS_80 = bytes(10)


def _ipv6_fast(value: str, prefix: int) -> tuple[str, str] | None:
    """(canonical address, network) of a plain IPv6 text through the C library, ~20x cheaper than
    ``ipaddress`` (IPv6 clients are new distinct values all day long). None sends the value to the
    reference path (``parse_address``): anything with a bracket, port, zone, dot (IPv4, embedded
    IPv4) or whitespace, and the ::/80 range where the mapped and compatible forms live (there
    inet_ntop's text could differ from ``ipaddress``'s; elsewhere both compress the first longest
    zero run of at least two groups in lower case, which a property test checks).
    """
    if value.count(":") < 2 or "." in value or "%" in value or "[" in value:
        return None
    try:
        packed = socket.inet_pton(socket.AF_INET6, value)
    except OSError:
        return None
    host = 128 - prefix
    net = (int.from_bytes(packed) >> host << host).to_bytes(16)
    if packed[:10] == _ZEROS_80 or net[:10] == _ZEROS_80:
        return None
    return socket.inet_ntop(socket.AF_INET6, packed), f"{socket.inet_ntop(socket.AF_INET6, net)}/{prefix}"


def parse_address(value: str) -> IPAddress | None:
    """Parse a client field: strips brackets, ports and zone ids; IPv4-mapped IPv6 becomes IPv4.

    Returns None for anything that is not an address (hostnames, ``unix:``, ``-``).
    """
    v = value.strip()
    if v.startswith("["):  # [2001:db8::1]:443
        v = v[1 : v.find("]")] if "]" in v else v[1:]
    elif v.count(":") == 1:  # 198.51.100.7:51234
        v = v.split(":", 1)[0]
    v = v.split("%", 1)[0]  # fe80::1%eth0
    try:
        addr = ipaddress.ip_address(v)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address):
        mapped = addr.ipv4_mapped
        if mapped is not None:
            return mapped
        if addr.packed[:12] == bytes(12) and int(addr) > 0xFFFF:
            # deprecated IPv4-compatible form ::198.51.100.7 (seen in MaxMind's test data)
            return ipaddress.IPv4Address(int(addr))
    return addr


def mask_text(values: pl.Series, masker: ClientMasker) -> pl.Series:
    """Replace IP-looking tokens by their truncated network and e-mail addresses by a placeholder."""
    needs = values.str.contains(_NEEDS_MASK).fill_null(False)
    if not needs.any():
        return values
    subset = values.filter(needs)
    subset = subset.str.replace_all(_EMAIL, EMAIL_MASK)
    tokens = subset.str.extract_all(IP_CANDIDATE).explode().drop_nulls().unique().to_list()
    mapping = _token_mapping(tokens, masker)
    if mapping:
        # Longest first + leftmost: a token never has a shorter token's replacement applied inside it.
        olds = sorted(mapping, key=len, reverse=True)
        subset = subset.str.replace_many(olds, [mapping[o] for o in olds], leftmost=True)
    # scatter works in place: on a clone (copy-on-write), never on the caller's series
    return values.clone().scatter(needs.arg_true(), subset) if len(subset) else values


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


def _token_mapping(tokens: Iterable[str], masker: ClientMasker) -> dict[str, str]:
    out: dict[str, str] = {}
    for tok in tokens:
        if ":" in tok and not _plausible_ipv6(tok):
            continue  # "std::" / "Moose::Role": a word, not an address
        addr = parse_address(tok)
        core = tok.strip(":")
        if addr is None and core != tok and (addr := parse_address(core)) is not None:
            # the candidate ran into a neighbouring ':' ("client:2001:db8::1"): keep the colons
            start = tok.find(core)
            out[tok] = tok[:start] + masker.network_of(addr) + tok[start + len(core) :]
            continue
        if addr is None and tok.count(":") >= 4 and sum(c.isdigit() for c in tok) >= 2:
            out[tok] = "[ipv6]"  # an address run into other colon-separated text: mask it whole
            continue
        if addr is None:
            # A candidate that is not an address on its own (e.g. "1.2.3.4.5"): its IPv4 prefix may
            # still be one; mask any embedded dotted quad rather than let it through.
            for sub in re.findall(IPV4_TOKEN, tok):
                sub_addr = parse_address(sub)
                if sub_addr is not None:
                    out[sub] = masker.network_of(sub_addr)
            continue
        out[tok] = masker.network_of(addr)
    return out


def _plausible_ipv6(tok: str) -> bool:
    groups = [g for g in tok.split("%")[0].split(":") if g]
    return any(c.isdigit() for c in tok) or len(groups) >= 2


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
    needs = values.str.contains(f"(?:{_NEEDS_MASK})|(?:{pattern})").fill_null(False)
    if not needs.any():
        return values
    subset = mask_text(redact_params(values.filter(needs), pattern), masker)
    return values.clone().scatter(needs.arg_true(), subset)  # not in place on the caller's series
