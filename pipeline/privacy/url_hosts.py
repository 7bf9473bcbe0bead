"""IPv4 addresses in a URL's host written as numbers: ``http://3405803853/``, ``http://0xcb00714d:8080/``,
``//203.7.29005/``. Elsewhere such a number cannot be told from any other number (``docs/privacy.md``);
in a host position it is an address, as browsers and HTTP clients read it (the WHATWG URL standard
and ``inet_aton``: the last part fills the bytes left, ``0x`` is hex, a leading 0 octal). Server-side
request forgery probes write them so (found by review: they were stored as written).

The four-part forms (``0313.0.0x71.077``) are read where any dotted quad is (``addresses``).
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

NetworkOf = Callable[[ipaddress.IPv4Address | ipaddress.IPv6Address], str]

_PART = r"(?:0[xX][0-9a-fA-F]{1,8}|[0-9]{1,12})"
# the two slashes: as written, as a browser takes backslashes (``http:\\\\…``), JSON-escaped (``\/\/``)
_SLASHES = r"(?://|\\\\|\\/\\/)"
# after a scheme's slashes (or bare slashes that start a value), and any user info; the host (a
# trailing dot aside) ends at a port, a path, a query, a fragment, a quote, a blank or the end
_URL_HOST_RE = re.compile(
    rf"(?:[A-Za-z][A-Za-z0-9+.-]*:|(?<![^\s=\"'(<,;])){_SLASHES}(?:[^/\\?#@\s\"']*@)?"
    rf"({_PART}(?:\.{_PART}){{0,2}})\.?(?=[:/?#\s\"'\\>)&;,\]]|$)"
)
SMALLEST = 1 << 24  # a host number below 1.0.0.0 is a path's number more likely than an address
# The pre-filter's part: a superset (found by review: a host followed by '&' or a quote had not been
# admitted), in the syntax polars' regex engine and Python's share
HINT = rf"{_SLASHES}(?:[^/?#@\s]*@)?(?:0[xX][0-9a-fA-F]|[0-9]{{8}}|[0-9]{{1,12}}\.[0-9])"


def url_host_spans(view: str, network_of: NetworkOf) -> list[tuple[int, int, str]]:
    """(start, end, replacement) of the numeric IPv4 hosts of the URLs in ``view``."""
    spans = []
    for m in _URL_HOST_RE.finditer(view):
        host = m.group(1)
        if host.count(".") == 3:
            continue  # a dotted quad: read as one wherever it is
        address = _numeric_host(host)
        if address is not None:
            spans.append((m.start(1), m.end(1), network_of(address)))
    return spans


def _numeric_host(host: str) -> ipaddress.IPv4Address | None:
    """The address a numeric host names (``inet_aton``'s reading), or None: out of range, or below
    ``SMALLEST``."""
    try:
        packed = socket.inet_aton(host)
    except OSError:
        return None
    address = ipaddress.IPv4Address(packed)
    return address if int(address) >= SMALLEST else None
