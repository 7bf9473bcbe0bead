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
from collections.abc import Sequence
from typing import Literal, Protocol

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

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_TOKEN = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# A whole value that is a dotted quad without leading zeros: already the canonical text of its address.
PLAIN_IPV4 = rf"^{IPV4_TOKEN}$"
# Cheap vectorised pre-filter (one scan per row; only rows that match go to ``_mask_one``): it admits
# every value in which ``_mask_one`` could find something, in every textual form (see there):
# * a dotted quad whose parts may be zero-padded, octal-looking or 0x hex (a part of 4+ digits that
#   does not start with 0 is never an octet: version strings such as Chrome/116.0.5845.187 do not pass);
# * a hex:hex: or '::' run (IPv6, also expanded and with zero-padded groups);
# * an e-mail ('@', '%40', '%2540');
# * an escape (%HH, \xHH, %u00HH, \u00HH, &#NN;, &#xHH;, fullwidth) of a character an address can
#   be written with (digits, '.', ':', hex letters, 'x') or of one that starts another escape ('%',
#   '\', 'u', '&', '#'): encoded addresses, also double-encoded.
_PART = r"(?:0[xX][0-9A-Fa-f]+|0[0-9]*|[1-9][0-9]{0,2})"
_NEEDS_MASK = (
    rf"(?:^|[^0-9]){_PART}\.{_PART}\.{_PART}\.[0-9]"
    r"|[0-9A-Fa-f]:[0-9A-Fa-f]*:|::"
    r"|@|%(?:25)*40"
    r"|(?:%|\\[xX]|[%\\][uU]00|&#[xX]0*)(?:2[5Ee]|3[0-9Aa]|[46][1-6]|[57][58]|5[Cc])"
    r"|&#0*(?:3[5-9]|4[0-9]|5[0-8]|6[5-9]|70|8[58]|9[2-9]|10[0-2]|117|120);|[\uff10-\uff1a\uff0e\u3002]"
)
_EMAIL = r"(?i)[a-z0-9._%+\-]+(?:@|%(?:25)*40)[a-z0-9\-]+(?:\.[a-z0-9\-]+)*\.[a-z]{2,}"

# Every string column of the store and what keeps personal data out of it; tests/test_privacy.py
# fails when a string column of ``schema.PAGEVIEWS`` or ``schema.REJECTS`` has no entry here.
# * masked: free text, through ``mask_text`` (every address form, e-mails);
# * scrubbed: masked and sensitive parameters REDACTED (``scrub_params_and_text``);
# * validated: a fixed shape (``VALID``) or NULL; text that does not fit goes to a masked column;
# * derived: computed by hostlogs (networks, GeoIP names, batch ids), never text from the log;
# * operator: from the configuration (the source's file name), never from the log.
TextClass = Literal["masked", "scrubbed", "validated", "derived", "operator"]
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
    },
    "rejects": {"source": "operator", "reason": "validated", "line": "masked", "batch": "derived"},
}
METHOD_RE = r"^[A-Za-z][A-Za-z_-]*$"
PROTOCOL_RE = r"^HTTP/[0-9](?:\.[0-9])?$"  # HTTP/1.0, HTTP/1.1, HTTP/2, HTTP/2.0, HTTP/3 ...
VALID: dict[str, str] = {"method": METHOD_RE, "protocol": PROTOCOL_RE}


def protect(column: str, values: pl.Series, masker: ClientMasker, sensitive_regex: str) -> pl.Series:
    """A ``pageviews`` string column made safe by its class in ``STRING_COLUMNS``."""
    kind = STRING_COLUMNS["pageviews"][column]
    if kind == "masked":
        return mask_text(values, masker)
    if kind == "scrubbed":
        return scrub_params_and_text(values, sensitive_regex, masker)
    if kind == "validated":
        valid = values.str.contains(VALID[column]).fill_null(False)
        return values.zip_with(valid, pl.repeat(None, len(values), dtype=pl.String, eager=True))
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
        self._texts: dict[str, str] = {}  # free text → masked, across batches (user agents repeat)

    def mask_texts(self, texts: list[str | None]) -> list[str | None]:
        """``_mask_one`` of each text (None stays None), cached per distinct text."""
        cache = self._texts
        out: list[str | None] = []
        for text in texts:
            masked = None if text is None else cache.get(text)
            if masked is None and text is not None:
                masked = cache[text] = _mask_one(text, self)
            out.append(masked)
        if len(cache) > 200_000:  # bound memory on endless streams
            cache.clear()
        return out

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
        prefix = self.ipv6_prefix
        if addr in _SIX_TO_FOUR:
            # 2002:WWXX:YYZZ::/48 carries the whole IPv4 address in bits 16-48: cut it where the
            # IPv4 prefix would cut the address itself
            prefix = min(prefix, 16 + self.ipv4_prefix)
        host = 128 - prefix  # explicit class: ip_address() would read ::1 as IPv4
        return f"{ipaddress.IPv6Address(int(addr) >> host << host)}/{prefix}"

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


_SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")


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
    if packed[:2] == b"\x20\x02":  # 6to4 embeds an IPv4 address: network_of cuts it
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
    """Replace IP-looking tokens by their truncated network and e-mail addresses by a placeholder.

    One vectorised scan (``_NEEDS_MASK``) per row; the rows it admits are masked once per distinct
    value (``_mask_one``, cached in the masker across batches).
    """
    needs = values.str.contains(_NEEDS_MASK).fill_null(False)
    if not needs.any():
        return values
    subset = values.filter(needs).str.replace_all(_EMAIL, EMAIL_MASK)
    distinct, codes = factorize(subset)
    masked = pl.Series(masker.mask_texts(distinct.to_list()), dtype=pl.String).gather(codes)
    # scatter works in place: on a clone (copy-on-write), never on the caller's series
    return values.clone().scatter(needs.arg_true(), masked)


def mask_value(text: str, masker: ClientMasker) -> str:
    """``mask_text`` of one string (configured names, SQL typed by an investigator)."""
    return str(mask_text(pl.Series([text], dtype=pl.String), masker)[0])


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


# ---------------------------------------------------------------------------------------------------
# The masking of one text value: every textual form of an address.
#
# A text is searched twice: as written, and (when it holds escapes) in its decoded view, where the
# escapes of ``_ESCAPE_RE`` are decoded repeatedly (double encoding: %252E → %2E → '.'), with a map from
# every decoded character back to the span of raw text it came from. An address found in either view
# is replaced in the raw text, over the whole run of address characters around it: a replacement
# never leaves a digit of the same run behind (``::ffff:198.51.100.077`` is one run, not a mapped
# prefix, a masked 198.51.100.07 and a readable 7).
#
# * IPv6: a maximal run of hex digits, ':', '.' (and 'x') with at least two colons. The run is parsed
#   leniently (groups zero-padded beyond 4 digits, an IPv4 tail with leading zeros: mapped and
#   compatible forms); else its colon-bounded sub-ranges are tried (an address run into "client:" or
#   a port). A zone (%eth0, encoded %25eth0) is part of the replacement.
# * IPv4: a maximal run of dot-separated numbers (decimal with any leading zeros, octal-looking
#   0-prefixed, 0x hex: what inet_aton and browsers accept); any four consecutive parts that are
#   octets make the whole run an address. A part is read as decimal when it is at most 255 (the
#   zero-padded 203.000.113.012), else as octal (0313 = 203), else it is no octet. A port after the
#   run (:8080) is kept. Forms with fewer than four parts (3405803793, 203.0.29201) are not masked:
#   they cannot be told from ordinary numbers.
# ---------------------------------------------------------------------------------------------------

# %HH (URLs), \xHH (Apache/nginx escapes), %u00HH (IIS), \u00HH (JSON), &#NN; and &#xHH; (HTML);
# fullwidth digits, dot and colon (what a Unicode-aware reader turns back into an address).
_ESCAPE_RE = re.compile(
    r"%([0-9A-Fa-f]{2})|\\[xX]([0-9A-Fa-f]{2})|[%\\][uU]00([0-9A-Fa-f]{2})|&#[xX]0*([0-9A-Fa-f]{1,2});"
    r"|&#0*([0-9]{1,3});|([\uff10-\uff1a\uff0e\u3002])"
)
_FULLWIDTH = {**{chr(0xFF10 + d): str(d) for d in range(10)}, "\uff0e": ".", "\u3002": ".", "\uff1a": ":"}


def _unescape(m: re.Match[str]) -> str:
    hexa = m.group(1) or m.group(2) or m.group(3) or m.group(4)
    if hexa is not None:
        return chr(int(hexa, 16))
    if m.group(5) is not None:
        return chr(int(m.group(5)))
    return _FULLWIDTH[m.group(6)]


_V4_RUN_RE = re.compile(r"(?<![0-9])(?:0[xX][0-9A-Fa-f]+|[0-9]+)(?:\.(?:0[xX][0-9A-Fa-f]+|[0-9]+)){3,}")
_V6_RUN_RE = re.compile(r"(?<![0-9A-Fa-fxX.:])[0-9A-Fa-fxX.]*(?::[0-9A-Fa-fxX.]*){2,}")
_ZONE_RE = re.compile(r"%[0-9A-Za-z._~-]+")
_LONG_GROUP_RE = re.compile(r"[0-9A-Fa-f]{5,}")
_HEX = frozenset("0123456789abcdefABCDEF")
_MAX_DECODE_ROUNDS = 4


def _decoded(text: str) -> tuple[str, list[int], list[int]] | None:
    """(decoded view, raw start, raw end of each view character), or None when nothing is escaped."""
    if _ESCAPE_RE.search(text) is None:
        return None
    starts, ends = list(range(len(text))), list(range(1, len(text) + 1))
    view = text
    for _ in range(_MAX_DECODE_ROUNDS):
        chars: list[str] = []
        new_starts: list[int] = []
        new_ends: list[int] = []
        pos = 0
        for m in _ESCAPE_RE.finditer(view):
            a, b = m.span()
            chars.append(view[pos:a])
            new_starts += starts[pos:a]
            new_ends += ends[pos:a]
            chars.append(_unescape(m))
            new_starts.append(starts[a])
            new_ends.append(ends[b - 1])
            pos = b
        if pos == 0:
            break
        chars.append(view[pos:])
        new_starts += starts[pos:]
        new_ends += ends[pos:]
        view, starts, ends = "".join(chars), new_starts, new_ends
    return view, starts, ends


def _octet(part: str, inet: bool) -> int | None:
    """A dotted part's value: hex for 0x, else decimal unless ``inet`` (inet_aton: 0-prefixed is octal)."""
    if part[:2] in ("0x", "0X"):
        value = int(part[2:], 16) if 0 < len(part) - 2 <= 8 else 256
    elif (inet or _decimal(part) > 255) and part[0] == "0" and len(part) > 1 and set(part) <= _OCTAL:
        value = int(part, 8)
    else:
        value = _decimal(part)
    return value if value <= 255 else None


def _decimal(part: str) -> int:
    """A part's decimal value, capped at 256: any number of leading zeros (int() refuses texts of
    over 4300 digits, which would let 000…0203.0.113.5 through unmasked)."""
    digits = part.lstrip("0") or "0"
    return int(digits) if len(digits) <= 3 else 256


_OCTAL = frozenset("01234567")


def lenient_ipv4(text: str) -> ipaddress.IPv4Address | None:
    """A dotted quad in any form a log can carry it: leading zeros, octal-looking, 0x parts.

    Zero-padded decimal (203.000.113.012) reads as decimal; once a part can only be octal (0313) or
    is hex, the text is in inet_aton's notation and every 0-prefixed part reads as octal.
    """
    parts = text.split(".")
    if len(parts) != 4 or not all(parts):
        return None
    try:
        inet = any(p[:2] in ("0x", "0X") or (p[0] == "0" and _decimal(p) > 255) for p in parts)
        octets = [_octet(p, inet) for p in parts]
    except ValueError:
        return None
    if any(o is None for o in octets):
        return None
    return ipaddress.IPv4Address(".".join(str(o) for o in octets))


def lenient_address(text: str) -> IPAddress | None:
    """``parse_address`` of a bare address text, also zero-padded, octal-looking, mapped with a
    lenient IPv4 tail; IPv4-mapped and -compatible IPv6 become IPv4."""
    if ":" not in text:
        return lenient_ipv4(text)
    head, _, tail = text.rpartition(":")
    if "." in tail:
        v4 = lenient_ipv4(tail)
        if v4 is None:
            return None
        text = f"{head}:{v4}"
    text = _LONG_GROUP_RE.sub(lambda m: m[0].lstrip("0").rjust(1, "0"), text)
    if "x" in text or "X" in text:
        return None
    return parse_address(text)


def _plausible_ipv6(tok: str) -> bool:
    """'std::' or 'Moose::Role' leave 'd::' and 'e::': words, not addresses."""
    groups = [g for g in tok.split(":") if g]
    return any(c.isdigit() for c in tok) or len(groups) >= 2


def _v6_in_run(run: str) -> tuple[int, int, IPAddress | None] | None:
    """(start, end, address) of the replacement inside an IPv6-looking run, or None.

    The address is the whole run, the run without leading/trailing ':' and '.', or else the longest
    colon-bounded piece of it that parses. The replacement covers that piece and every hex digit of
    the run around it: only text without a hex digit stays (the ':' of "client:", a final '.'). A
    run that looks like an address run into other text but has none that parses (>= 4 colons, >= 2
    digits) is replaced whole (address None: "[ipv6]").
    """
    piece: tuple[int, int, IPAddress] | None = None
    core = run.strip(":.")
    for candidate in (run, core) if core != run else (run,):
        addr = lenient_address(candidate) if _plausible_ipv6(candidate) else None
        if addr is not None:
            start = run.find(candidate)
            piece = (start, start + len(candidate), addr)
            break
    if piece is None:
        piece = _v6_sub_range(run)
    if piece is None:
        if run.count(":") >= 4 and sum(c.isdigit() for c in run) >= 2:
            return 0, len(run), None
        return None
    hex_at = [i for i, c in enumerate(run) if c in _HEX]
    return min(piece[0], hex_at[0]), max(piece[1], hex_at[-1] + 1), piece[2]


def _v6_sub_range(run: str) -> tuple[int, int, IPAddress] | None:
    """The longest colon-bounded piece of ``run`` that is an IPv6 address (2 to 8 colons)."""
    colons = [i for i, c in enumerate(run) if c == ":"]
    best: tuple[int, int, IPAddress] | None = None
    for s in (0, *(i + 1 for i in colons)):
        for e in (*colons, len(run)):
            if e - s <= (0 if best is None else best[1] - best[0]) or not 2 <= run.count(":", s, e) <= 8:
                continue
            piece = run[s:e]
            addr = lenient_address(piece) if _plausible_ipv6(piece) else None
            if addr is not None:
                best = (s, e, addr)
    return best


def _address_spans(view: str, masker: ClientMasker) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of every address in ``view``, non-overlapping, in order."""
    spans: list[tuple[int, int, str]] = []
    if ":" in view:
        for m in _V6_RUN_RE.finditer(view):
            found = _v6_in_run(m.group(0))
            if found is None:
                continue
            start, end, addr = found
            end += m.start()
            if addr is not None and addr.version == 6 and end == m.end():
                zone = _ZONE_RE.match(view, end)
                end = zone.end() if zone else end
            spans.append((m.start() + start, end, "[ipv6]" if addr is None else masker.network_of(addr)))
    if "." in view:
        for m in _V4_RUN_RE.finditer(view):
            if any(s < m.end() and m.start() < e for s, e, _ in spans):
                continue  # inside an IPv6 run already replaced
            parts = m.group(0).split(".")
            for i in range(len(parts) - 3):
                v4 = lenient_ipv4(".".join(parts[i : i + 4]))
                if v4 is not None:
                    spans.append((m.start(), m.end(), masker.network_of(v4)))
                    break
    return sorted(spans)


def _mask_one(text: str, masker: ClientMasker) -> str:
    """Every address in ``text``, as written or encoded, replaced by its network (see above)."""
    spans = _address_spans(text, masker)
    decoded = _decoded(text)
    if decoded is not None:
        view, starts, ends = decoded
        spans += [(starts[a], ends[b - 1], r) for a, b, r in _address_spans(view, masker)]
        spans.sort()
    if not spans:
        return text
    merged: list[tuple[int, int, str]] = []
    for start, end, replacement in spans:
        if merged and start < merged[-1][1]:  # overlaps (the raw and decoded views): one replacement
            merged[-1] = (merged[-1][0], max(merged[-1][1], end), merged[-1][2])
        else:
            merged.append((start, end, replacement))
    out: list[str] = []
    pos = 0
    for start, end, replacement in merged:
        out += (text[pos:start], replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


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
