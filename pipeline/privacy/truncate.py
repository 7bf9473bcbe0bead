"""An address cut to its network, one value at a time: what needs no column engine.

``Truncator`` holds the prefix lengths and truncates single values (``network``) and the addresses in a
text (``mask_value``); ``mask.ClientMasker`` builds on it for whole columns. Kept free of polars and
pyarrow so that commands that mask a few values (the SQL an investigator types, before it is audited)
start without importing a column engine (``hostlogs query`` is a short process: imports are most
of its time).
"""

from __future__ import annotations

import contextlib
import functools
import ipaddress
import re
import socket
from typing import TYPE_CHECKING, Self

from pipeline.errors import UsageError
from pipeline.privacy import lookalikes, payloads, url_hosts
from pipeline.privacy.addresses import SIX_TO_FOUR, IPAddress, mask_addresses, parse_address
from pipeline.privacy.payloads import mask_base64

if TYPE_CHECKING:
    from pipeline.config import Config

EMAIL_MASK = "[email]"

# Cheap vectorised pre-filter (one scan per row; only rows that match go to ``mask_addresses``): it
# admits every value in which ``mask_addresses`` could find something, in every textual form (see there):
# * a dotted quad whose parts may be zero-padded, octal-looking or 0x hex (a part of 4+ digits that
#   does not start with 0 is never an octet: version strings such as Chrome/116.0.5845.187 do not pass);
# * a hex:hex: or '::' run (IPv6, also expanded and with zero-padded groups);
# * numbers joined by dashes or underscores, four in a row (IPv4 in a host or file name), an IPv6
#   address as a name writes it (2001_db8_…: eight groups joined, ``addresses._V6_JOINED_RE``), and the
#   DNS names that spell an IPv6 address with dashes (…​.ipv6-literal.net, …​.sslip.io, …​.nip.io);
# * an e-mail ('@', '%40', '%2540');
# * an escape (%HH, \xHH, %u00HH, \u00HH, &#NN;, &#xHH; with or without ';', the named HTML
#   references &period; &colon; &hyphen; &lowbar; &amp; …, fullwidth) of a character an address can
#   be written with (digits, '.', ':', '-', '_', hex letters, 'x') or of one that starts another
#   escape ('%', '\', 'u', '&', '#'), or of NUL (UTF-16: 2\x000\x003…) and its picture (%u2400),
#   also \U000000HH: encoded addresses, also double-encoded; a numeric reference of
#   any character past ASCII (&#8313;, &#x2079;: the look-alikes below); the escaped UTF-8 of a
#   look-alike (``lookalikes.ESCAPED_UTF8``), not of other text (%E3%83%86…: a Japanese site's every
#   path); their code points escaped (``lookalikes.ESCAPED_CODE_POINTS``: %uFF0E, \u0662, a
#   surrogate pair, \U0001D7CE); the look-alikes as written (``lookalikes.py``: superscript,
#   subscript, circled, fullwidth and mathematical digits, the digits of every script, stops and
#   colons, hex letters); NUL (UTF-16) and its picture; four base64
#   characters that can only encode part of an address (``payloads.HINT``); ``ip6.arpa`` (a reverse
#   DNS name of nibbles need not hold four decimal ones in a row).
_PART = r"(?:0[xX][0-9A-Fa-f]+|0[0-9]*|[1-9][0-9]{0,2})"
NEEDS_MASK = (
    rf"{_PART}\.{_PART}\.{_PART}\.[0-9]"
    r"|[0-9A-Fa-f]:[0-9A-Fa-f]*:|::"
    r"|[0-9][-_][0-9]{1,3}[-_][0-9]{1,3}[-_][0-9]|[23][0-9A-Fa-f]{3}[-_][0-9A-Fa-f]{1,4}[-_][0-9A-Fa-f]{1,4}[-_]"
    r"|[0-9A-Fa-f]\.(?:[Ii][Pp][Vv]6-[Ll][Ii][Tt][Ee][Rr][Aa][Ll]\.[Nn][Ee][Tt]|[Ss][Ss][Ll][Ii][Pp]\.[Ii][Oo]|[Nn][Ii][Pp]\.[Ii][Oo])"
    r"|@|%(?:25)*40"
    r"|(?:%|\\[xX]|[%\\][uU]00|\\U0{6}|&#[xX]0*)(?:2[356DdEe]|3[0-9Aa]|[46][1-6]|[57][58]|5[CcFf]|00)"
    r"|[%\\][uU]2400"
    r"|&#0*(?:3[5-9]|4[0-9]|5[0-8]|6[5-9]|70|8[58]|9[2-9]|10[0-2]|117|120)"
    r"|&(?:period|colon|hyphen|dash|lowbar|UnderBar|percnt|bsol|amp|num|commat);|&amp#"
    r"|&#[xX]0*[0-9A-Fa-f]{3,6}|&#0*[0-9]{3,7}"
    rf"|{lookalikes.CLASS}|[\x00\u2400]|{lookalikes.IGNORED}|{lookalikes.ESCAPED_UTF8}"
    rf"|{lookalikes.ESCAPED_CODE_POINTS}|{payloads.HINT}"
    r"|[Ii][Pp]6\.[Aa][Rr][Pp][Aa]"
    rf"|{url_hosts.HINT}|%2[fF]%2[fF]"
)
# Letters spelled out, no (?i): case folding differs between Python's re and polars' regex engine
# (Python folds 'ı' and 'İ' into [a-z], Rust does not), and both must mask the same text. Any
# character from U+00C0 up counts as a letter: internationalised addresses (josé@, @münchen.de) are
# personal data too, and masking a little more than an address is safe. Except the CJK punctuation
# and fullwidth forms blocks: their digits and full stops write IP addresses (the address masker
# reads them), and an e-mail match must not eat an octet of an address that follows it.
_L = r"A-Za-z\u00C0-\u2FFF\u3040-\uFEFF\uFFF0-\uFFFF\U00010000-\U0010FFFF"
EMAIL = rf"[{_L}0-9._%+\-]+(?:@|%(?:25)*40)[{_L}0-9\-]+(?:\.[{_L}0-9\-]+)*\.[{_L}]{{2,}}"


_ZEROS_80 = bytes(10)


def ipv6_fast(value: str, prefix: int) -> tuple[str, str] | None:
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


class Truncator:
    """Truncates one address (or the addresses in one text) to its network, caching per value."""

    def __init__(self, ipv4_prefix: int = 24, ipv6_prefix: int = 48) -> None:
        if not 0 <= ipv4_prefix <= 32 or not 0 <= ipv6_prefix <= 128:
            raise ValueError("prefix lengths must be 0-32 (IPv4) and 0-128 (IPv6)")
        self.ipv4_prefix = ipv4_prefix
        self.ipv6_prefix = ipv6_prefix
        self._cache: dict[str, str | None] = {}
        self._texts: dict[str, str] = {}  # free text → masked, across batches (user agents repeat)
        self._cached_chars = 0

    @classmethod
    def configured(cls, cfg: Config) -> Self:
        """The truncation a config sets (``privacy.ipv4_prefix`` and ``ipv6_prefix``)."""
        return cls(cfg.privacy.ipv4_prefix, cfg.privacy.ipv6_prefix)

    def mask_texts(self, texts: list[str | None]) -> list[str | None]:
        """``addresses.mask_addresses`` of each text (None stays None), cached per distinct text."""
        cache = self._texts
        out: list[str | None] = []
        for text in texts:
            masked = None if text is None else cache.get(text)
            if masked is None and text is not None:
                masked = mask_addresses(text, self.network_of)
                masked = cache[text] = mask_base64(masked, lambda t: mask_addresses(t, self.network_of))
                self._cached_chars += len(text)
                if len(cache) > 200_000 or self._cached_chars > 16_000_000:  # bound memory on endless
                    cache.clear()  # streams, by size too (binary junk: 2 KiB of distinct text a line)
                    self._cached_chars = 0
            out.append(masked)
        return out

    def network(self, value: str) -> str | None:
        """Truncated network of a client field value, or None when it is not an IP address."""
        return self.address_and_network(value)[1]

    def address_and_network(self, value: str) -> tuple[str | None, str | None]:
        """Canonical address text (what pseudonyms key) and truncated network, or (None, None)."""
        fast = ipv6_fast(value, self.ipv6_prefix)
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
        if addr in SIX_TO_FOUR:
            # 2002:WWXX:YYZZ::/48 carries the whole IPv4 address in bits 16-48: cut it where the
            # IPv4 prefix would cut the address itself
            prefix = min(prefix, 16 + self.ipv4_prefix)
        host = 128 - prefix  # explicit class: ip_address() would read ::1 as IPv4
        return f"{ipaddress.IPv6Address(int(addr) >> host << host)}/{prefix}"


@functools.cache
def _compiled(pattern: str) -> re.Pattern[str]:
    """A pattern for Python's engine, compiled on first use: every ingest and query imports this
    module, and the e-mail pattern's Unicode classes take ~15 ms to compile; most single values
    (a server name, an investigator's SQL) never pass the pre-filter that needs it."""
    return re.compile(pattern)


# Python's engine backtracks: both patterns cost time quadratic in a long run of the characters they
# take (16 KiB of "1.2.1.2…" or "%40%40…" in an investigator's SQL took 2-6 s). Longer texts go to
# polars' engine (linear, the one the column masker uses), imported only then.
PYTHON_RE_LIMIT = 1024
_SURROGATES = re.compile("([\ud800-\udfff]+)")


def mask_value(text: str, truncator: Truncator) -> str:
    """Every IP-looking token and e-mail address in ``text`` masked: ``mask.mask_text`` of one value,
    with the same patterns (the syntax is common to Python's ``re`` and polars' regex engine)."""
    if len(text) > PYTHON_RE_LIMIT:  # (the column masker's steps; mask.py imports this module)
        if _SURROGATES.search(text):  # bytes a terminal passed undecoded: polars takes no such text,
            parts = _SURROGATES.split(text)  # and no address spans them (found by review: exit 1)
            return "".join(p if i % 2 else mask_value(p, truncator) for i, p in enumerate(parts))
        import polars as pl

        values = pl.Series([text], dtype=pl.String)
        if not values.str.contains(NEEDS_MASK).item():
            return text
        emails_masked = str(values.str.replace_all(EMAIL, EMAIL_MASK).item())
    elif not _compiled(NEEDS_MASK).search(text):
        return text
    else:
        emails_masked = _compiled(EMAIL).sub(EMAIL_MASK, text)
    return truncator.mask_texts([emails_masked])[0] or ""


def stored_domain(domain: str, truncator: Truncator) -> str:
    """A domain as the store keeps it, for a filter or a record that names one (a hold, an erasure):
    ``normal_domain`` (as ingest normalises the ``domain`` column), every address in
    it masked as ingest masks it (a vhost can be an IP literal: ``203.0.113.7`` is stored, matched and
    recorded as ``203.0.113.0/24``). A pattern, or nothing once normalised, is refused (exit 2): it
    would match no stored domain, or every one."""
    normal = normal_domain(domain)
    if is_pattern(normal):
        raise UsageError(WILDCARD)
    if not normal:  # (found by review: ':443' or 'http://' had selected every customer's rows)
        raise UsageError(EMPTY_DOMAIN)
    return mask_value(normal, truncator)


def normal_domain(domain: str) -> str:
    """Lower case, without surrounding blanks, a port and a trailing dot, as ingest normalises a vhost
    (``ingest.fields.normalize_domain``); a URL stands for its host. (Found by review: a hold on
    ``www.example.com:443``, the form ``vhost_combined`` writes, or on ``https://www.example.com/``
    had matched nothing, and purge deleted what it seemed to keep.)"""
    text = domain.strip().lower()
    if "://" in text:
        text = text.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0].split("#", 1)[0].rsplit("@", 1)[-1]
    return _PORT.sub(r"\1\2", text).rstrip(".")


# A host and its port (``[2001:db8::1]:443`` too): the host is group 1 or 2. Ingest strips ports with it
# in polars (``ingest.fields.normalize_domain``), selectors here: both engines read this syntax.
HOST_PORT = r"^(\[[^\]]*\])(?::[0-9]*)?$|^([^:\[\]]*):[0-9]*$"
_PORT = re.compile(HOST_PORT)
EMPTY_DOMAIN = "the domain is empty without its scheme, port and trailing dot: give one"
WILDCARD = "give a domain, not a pattern: '*' and '?' match no stored domain (for every domain, give none)"


def is_pattern(domain: str) -> bool:
    """A selector such as ``*`` or ``*.example.com``: no stored domain is one (refused, not matched)."""
    return "*" in domain or "?" in domain


def domain_forms(stored: str) -> list[str]:
    """Every form a log may have written a (``stored_domain``) domain in: as given, and in the other
    IDNA form (``münchen.de`` and ``xn--mnchen-3ya.de`` are one site; ingest keeps what the log
    wrote). A filter, a hold or a retention rule matches any of them (found by review: a hold on
    ``münchen.de`` had let purge delete the rows of ``xn--mnchen-3ya.de``)."""
    forms = {stored}
    with contextlib.suppress(UnicodeError, ValueError):  # label by label, no mapping (IDNA 2008):
        forms.add(".".join(_other_form(label) for label in stored.split(".")))  # straße is not strasse
    return sorted(forms)


def _other_form(label: str) -> str:
    """A label's A-label (``xn--strae-oqa``) or U-label (``straße``), or the label when it has none."""
    if not label.isascii():
        return "xn--" + label.encode("punycode").decode("ascii")
    if not label.startswith("xn--") or len(label) == 4:
        return label
    unicode = label[4:].encode("ascii").decode("punycode")
    same = not unicode.isascii() and "xn--" + unicode.encode("punycode").decode("ascii") == label
    return unicode if same else label


# (found by review: 203.0.113.7 and 203.0.113.8, two customers' vhosts, are both 203.0.113.0/24;
# so are app.203.0.113.7.nip.io and app.203.0.113.8.nip.io, and the network written as such)
SHARED_DOMAIN = (
    "the domain holds an IP address (or an e-mail address): it is stored masked, as other sites' "
    "rows may be, so {what} by it would reach them too; {what} by --ip, or by the domain names the "
    "site is served as"
)


def is_shared(stored: str) -> bool:
    """Whether a ``stored_domain`` holds a network or an e-mail mask (a masked address): other sites'
    names are masked to it too."""
    return "/" in stored or EMAIL_MASK in stored
