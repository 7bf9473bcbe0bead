"""Every textual form of an IP address: parsing client fields, lenient forms, and finding addresses in text.

* ``parse_address``: a client field (brackets, ports, zone ids, IPv4-mapped IPv6) as an address
  (``truncate.ipv6_fast``: the same for plain IPv6 through the C library).
* ``lenient_ipv4`` / ``lenient_address``: zero-padded, octal-looking and 0x forms a log can carry.
* ``mask_addresses``: every address in one text, as written or encoded, replaced by its network
  (``mask.ClientMasker`` gives the truncation, ``mask.mask_text`` runs it per distinct value).

Nothing here keeps state or writes anything: addresses come in, texts or address objects go out.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable

from pipeline.privacy.escapes import decoded_text, decoded_view
from pipeline.privacy.url_hosts import url_host_spans

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
NetworkOf = Callable[[IPAddress], str]  # an address → the truncated network that replaces it

_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
IPV4_TOKEN = rf"{_OCTET}(?:\.{_OCTET}){{3}}"
# A whole value that is a dotted quad without leading zeros: already the canonical text of its address.
PLAIN_IPV4 = rf"^{IPV4_TOKEN}$"
SIX_TO_FOUR = ipaddress.IPv6Network("2002::/16")  # 2002:WWXX:YYZZ::/48 embeds an IPv4 address


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


# ---------------------------------------------------------------------------------------------------
# The masking of one text value: every textual form of an address.
#
# A text is searched twice: as written, and (when it holds escapes) in its decoded view
# (``escapes.decoded_view``: decoded repeatedly, %252E → %2E → '.', with a map from every decoded
# character back to the span of raw text it came from). An address found in either view
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
# * IPv4 in a host or file name: four decimal octets joined by dashes or by underscores, as reverse
#   DNS names write them (ec2-203-0-113-77.compute-1…, host81-2-69-160.range…, ip-10-0-0-1.ec2…) and
#   operators name files (access_203_0_113_77.log). Only a run of exactly four numbers is one (dates
#   and times run on: backup-2024-11-03-12-30), or of five whose first is the end of a word
#   ("ec2-203-0-113-77": the whole run goes, either four could be the address). It is replaced by
#   its network as dotted text, like every other form. IPv6 in the DNS names that spell it with
#   dashes ('::' as '--', a zone after 's'): 2001-db8--1.ipv6-literal.net, 2001-db8--1.sslip.io, and
#   IPv4 as eight hex digits there (app-cb007111.nip.io).
# ---------------------------------------------------------------------------------------------------

_V4_RUN_RE = re.compile(r"(?<![0-9])(?:0[xX][0-9A-Fa-f]+|[0-9]+)(?:\.(?:0[xX][0-9A-Fa-f]+|[0-9]+)){3,}")
_V4_JOINED_RE = re.compile(r"(?<![0-9])[0-9]+([-_])[0-9]+(?:\1[0-9]+){2,}(?![0-9])")  # see above
_V6_DASHED_RE = re.compile(
    r"(?<![0-9A-Za-z])[0-9a-f]{0,4}(?:--?[0-9a-f]{0,4}){2,7}(?:s[0-9a-z]+)?"
    r"(?=\.(?:ipv6-literal\.net|sslip\.io|nip\.io)(?![0-9a-z-]))",
    re.IGNORECASE,
)
# reverse DNS (77.113.0.203.in-addr.arpa, ip6.arpa's nibbles, from a label's start); IPv6 as names
# write it: 8 groups joined by - or _ (host_2001_db8_…), 2000::/3, a hex letter (not a date, a serial)
_PTR_V4_RE = re.compile(r"(?<![0-9a-z_-])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?=\.in-addr\.arpa(?![0-9a-z-]))", re.I)
_PTR_V6_RE = re.compile(r"(?<![0-9a-z_-])(?:[0-9a-f]\.){1,32}(?=ip6\.arpa(?![0-9a-z-]))", re.I)
_G = r"[0-9a-f]{1,4}"
_V6_JOINED_RE = re.compile(rf"(?<![0-9a-z])[23][0-9a-f]{{3}}([-_]){_G}(?:\1{_G}){{6}}(?![0-9a-z])", re.I)
_V4_HEX_DNS_RE = re.compile(r"(?<![0-9a-z])[0-9a-f]{8}(?=\.(?:nip|sslip)\.io(?![0-9a-z-]))", re.IGNORECASE)
_V6_RUN_RE = re.compile(r"(?<![0-9A-Fa-fxX.:])[0-9A-Fa-fxX.]*(?::[0-9A-Fa-fxX.]*){2,}")
_ZONE_RE = re.compile(r"%[0-9A-Za-z._~-]+")
_LONG_GROUP_RE = re.compile(r"[0-9A-Fa-f]{5,}")
_HEX = frozenset("0123456789abcdefABCDEF")


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


# Longer runs of hex digits, dots and colons are address lists, fingerprints or crafted input, no one
# address (the longest text of one is 45 characters): replaced whole, not searched piece by piece.
_LONGEST_V6_RUN = 128


def _v6_in_run(run: str) -> tuple[int, int, IPAddress | None] | None:
    """(start, end, address) of the replacement inside an IPv6-looking run, or None.

    The address is the whole run, the run without leading/trailing ':' and '.', or else the longest
    colon-bounded piece of it that parses. The replacement covers that piece and every hex digit of
    the run around it: only text without a hex digit stays (the ':' of "client:", a final '.'). A
    run that looks like an address run into other text but has none that parses (>= 4 colons, >= 2
    digits), or is longer than ``_LONGEST_V6_RUN``, is replaced whole (address None: "[ipv6]").
    """
    if len(run) > _LONGEST_V6_RUN:
        return 0, len(run), None
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
    if piece is None:  # an address with a dotted suffix: a rotated log "…::17.1", "fe80::1.a"
        lead = len(run) - len(run.lstrip(":."))
        dot = run.find(".", run.rfind(":"))
        cut = _v6_sub_range(run[lead:dot]) if dot > lead else None
        piece = None if cut is None else (cut[0] + lead, cut[1] + lead, cut[2])
    if piece is None:
        if run.count(":") >= 4 and sum(c.isdigit() for c in run) >= 2:
            return 0, len(run), None
        return None
    hex_at = [i for i, c in enumerate(run) if c in _HEX]
    return min(piece[0], hex_at[0]), max(piece[1], hex_at[-1] + 1), piece[2]


def _v6_sub_range(run: str) -> tuple[int, int, IPAddress] | None:
    """The longest colon-bounded piece of ``run`` that is an IPv6 address (2 to 8 colons; the first
    of equally long ones).

    Only the ends 2 to 8 colons after a start are tried, and none past a second '::' or a '.'
    before the last colon (no address has either; longer pieces keep them): a crafted run of
    thousands of colons in a request (a few KiB of "1:2:1:2:...") took minutes per line when every
    pair of colons was tried.
    """
    colons = [i for i, c in enumerate(run) if c == ":"]
    starts = (0, *(i + 1 for i in colons))
    ends = (*colons, len(run))
    best: tuple[int, int, IPAddress] | None = None
    for k, s in enumerate(starts):  # the piece from starts[k] to ends[j] holds j - k colons
        for n_colons, e in enumerate(ends[k + 2 : k + 9], start=2):
            piece = run[s:e]
            doubles = piece.count("::")
            if doubles > 1 or "." in piece[: piece.rfind(":")]:
                break
            if e - s <= (0 if best is None else best[1] - best[0]):
                continue
            if not doubles and n_colons != 7 and not (n_colons == 6 and "." in piece):
                continue  # without '::': eight groups, or six and an IPv4 tail
            addr = lenient_address(piece) if _plausible_ipv6(piece) else None
            if addr is not None:
                best = (s, e, addr)
    return best


def _v4_in_run(parts: list[str]) -> ipaddress.IPv4Address | None:
    """The first four consecutive parts of a dotted run that are an address.

    An address glued to digits that are not its own is one too: after an escape that ends in a digit
    ("%C3%A9203.0.113.31", "\\u00e9203.0.113.31": the run starts "9203"), or run into a number
    ("203.0.113.3100"). So an outer part that is no octet is also tried without its extra leading
    (first part) or trailing (last part) digits. This masks a few numbers that are no address
    ("12.1.2.3456"): a privacy tool errs on that side.
    """
    # A middle part must be an octet in one of the notations: checked once per part, so a long run of
    # parts that are no octets ("999.999.…") costs no 16 trial parses per window.
    octet = [_octet(p, True) is not None or _octet(p, False) is not None for p in parts]
    for i in range(len(parts) - 3):
        if not (octet[i + 1] and octet[i + 2]):
            continue
        window = parts[i : i + 4]
        for first in _trimmed(window[0], leading=True):
            for last in _trimmed(window[3], leading=False):
                v4 = lenient_ipv4(".".join([first, *window[1:3], last]))
                if v4 is not None:
                    return v4
    return None


def _trimmed(part: str, *, leading: bool) -> list[str]:
    """``part``, then (a plain decimal of over 3 digits, or over 255) its last/first 3, 2, 1 digits."""
    if not part.isdigit() or (len(part) <= 3 and int(part) <= 255):
        return [part]
    return [part] + [part[-n:] if leading else part[:n] for n in (3, 2, 1)]


def _address_spans(view: str, network_of: NetworkOf) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of every address in ``view``, non-overlapping, in order."""
    spans: list[tuple[int, int, str]] = []
    if ":" in view:
        for m in _V6_RUN_RE.finditer(view):
            if _kept(view, m.end(), _unescaped(view, m).strip("."), lenient_address, network_of):
                continue
            found = _v6_in_run(m.group(0))
            if found is None:
                continue
            start, end, addr = found
            end += m.start()
            if addr is not None and addr.version == 6 and end == m.end():
                zone = _ZONE_RE.match(view, end)
                end = zone.end() if zone else end
            spans.append(_replaced(view, m.start() + start, end, addr, network_of))
    if ".arpa" in view.lower():
        spans = sorted(spans + _ptr_spans(view, network_of))
    if "." in view:
        v6 = iter(list(spans))  # in order, not overlapping: one sweep (not every span per run)
        ahead = next(v6, None)
        for m in _V4_RUN_RE.finditer(view):
            while ahead is not None and ahead[1] <= m.start():
                ahead = next(v6, None)
            if ahead is not None and ahead[0] < m.end():
                continue  # inside an IPv6 run already replaced
            if _kept(view, m.end(), m.group(0), lenient_ipv4, network_of):
                continue
            v4 = _v4_in_run(m.group(0).split("."))
            if v4 is not None:
                spans.append(_replaced(view, m.start(), m.end(), v4, network_of))
    if "-" in view or "_" in view or ".io" in view.lower():
        spans += _joined_spans(view, network_of)
    return sorted(spans + (url_host_spans(view, network_of) if "//" in view or "\\" in view else []))


def _ptr_spans(view: str, network_of: NetworkOf) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of the addresses reverse DNS names spell (found by review: the
    forward reading of 77.113.0.203.in-addr.arpa kept its host octet). A shorter ip6.arpa name is a
    network: kept when it is no narrower than the mask."""
    spans = []
    for m in _PTR_V4_RE.finditer(view):
        v4 = lenient_ipv4(".".join(reversed(m.group(0).split("."))))
        if v4 is not None:  # bracketed: masking again keeps it (a label before could run into it)
            spans.append((m.start(), m.end(), f"[{network_of(v4)}]"))
    for m in _PTR_V6_RE.finditer(view):
        nibbles = m.group(0).split(".")[-2::-1]
        network = network_of(ipaddress.IPv6Address(int("".join(nibbles).ljust(32, "0"), 16)))
        wider = len(nibbles) * 4 <= int(network.rpartition("/")[2] or 128)  # a zone: kept as it is
        spans.append((m.start(), m.end() - 1, m.group(0)[:-1] if wider else f"[{network}]"))
    return spans


def _joined_spans(view: str, network_of: NetworkOf) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of the dash- or underscore-joined IPv4 addresses in ``view``, and of
    the dashed IPv6 of the DNS names that spell addresses."""
    spans = []
    for m in _V4_JOINED_RE.finditer(view):
        parts = m.group(0).split(m.group(1))
        start = m.start()
        if len(parts) == 5 and start > 0 and view[start - 1].isalpha():
            parts = parts[1:]  # "ec2-203-0-113-77"; the whole run goes ("host203-0-113-18-1" too)
        if len(parts) != 4 or any(_decimal(p) > 255 for p in parts):
            continue
        dotted = ".".join(str(_decimal(p)) for p in parts)  # decimal: host names write no octal
        if _kept(view, m.end(), dotted, lenient_ipv4, network_of):
            continue
        v4 = lenient_ipv4(dotted)
        if v4 is not None:
            spans.append(_replaced(view, start, m.end(), v4, network_of))
    for m in _V6_DASHED_RE.finditer(view):
        text, start = m.group(0), m.start()
        if text.startswith("-") and not text.startswith("--"):  # "app--2001-db8--1": a name's dash
            text, start = text[1:], start + 1
        v6 = parse_address(text.split("s")[0].split("S")[0].replace("-", ":"))
        if v6 is not None:
            spans.append(_replaced(view, start, m.end(), v6, network_of))
    for m in _V6_JOINED_RE.finditer(view):
        if not m.group(0).replace(m.group(1), "").isdigit():
            v6 = parse_address(m.group(0).replace(m.group(1), ":"))
            spans.append(_replaced(view, m.start(), m.end(), v6, network_of))
    for m in _V4_HEX_DNS_RE.finditer(view):  # app-c0a80101.nip.io: IPv4 as eight hex digits
        spans.append(
            _replaced(view, m.start(), m.end(), ipaddress.IPv4Address(int(m.group(0), 16)), network_of)
        )
    return spans


_PREFIX_RE = re.compile(r"/([0-9]{1,3})(?![0-9])")


def _kept(
    view: str, end: int, run: str, parse: Callable[[str], IPAddress | None], network_of: NetworkOf
) -> bool:
    """Is the run ending at ``end`` a network no narrower than its mask, written with its prefix
    length ("203.0.113.0/24", "10.0.0.0/8", "2001:db8::/48": the masker's own output)? It stays.

    That makes masking idempotent. Only a run that is one address and nothing else (``alone``) can
    be one (``parse`` of the whole run): "10.0.0.0.203.0.113.77/8" is no network.
    """
    written = _PREFIX_RE.match(view, end)
    addr = parse(run) if written is not None else None
    if written is None or addr is None:
        return False
    length, allowed = int(written[1]), int(network_of(addr).rpartition("/")[2] or -1)
    host_bits = addr.max_prefixlen - length
    return length <= allowed and host_bits >= 0 and int(addr) & ((1 << host_bits) - 1) == 0


def _unescaped(view: str, m: re.Match[str]) -> str:
    """A run without the hex digits of an escape it starts in ("%5B2001:db8::" is "[2001:db8::")."""
    run, before = m.group(0), view[m.start() - 1 : m.start()]
    if before == "%":
        return run[2:]
    if before == "\\" and run[:1] in "xX":
        return run[3:]
    return run


def _replaced(
    view: str, start: int, end: int, addr: IPAddress | None, network_of: NetworkOf
) -> tuple[int, int, str]:
    """The replacement of the address at ``view[start:end]``: its network, and the prefix length
    written after it goes too ("203.0.113.77/24", "…/32" become "203.0.113.0/24")."""
    if addr is None:
        return start, end, "[ipv6]"
    written = _PREFIX_RE.match(view, end)
    return start, end if written is None else written.end(), network_of(addr)


def mask_addresses(text: str, network_of: NetworkOf) -> str:
    """Every address in ``text``, as written or encoded, replaced by ``network_of`` it (see above)."""
    spans = _address_spans(text, network_of)
    decoded = decoded_text(text)
    found = _address_spans(decoded, network_of) if decoded is not None else None
    if found and (mapped := decoded_view(text)) is not None:  # (the same text, with its map back)
        _, starts, ends = mapped
        spans = sorted(spans + [(starts[a], ends[b - 1], r) for a, b, r in found])
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
