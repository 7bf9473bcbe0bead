"""Addresses inside base64: a scanner's payload (``${jndi:ldap://…/Base64/KGN1cmwgLXMgNDUu…}``)
carries the address it calls back to, readable by anyone who decodes it (found by review, in a real
log the repository ships: the address masked as written, kept in the base64 beside it).

A base64 run is decoded at each of its four alignments (a prefix such as ``Base64/`` is part of the
run: its characters are base64 too); when the decoded text holds an address, the run is encoded
again from the masked text. The payload stays readable evidence, its addresses masked as everywhere
else. ``HINT`` lets the vectorised pre-filter admit a value that may hold one: four base64
characters that can only encode three characters of a dotted IPv4 or of an IPv6 text.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable

# one group of four characters encoding three of [0-9.] (IPv4), or two of [0-9a-fA-F:] (IPv6)
_V4_GROUP = "[LMNO][CDSTijyz][AEIMQUYcgk4][uwxyz0-5]"
_V6_GROUP = "[MNOQRYZ][DEGTUWjkmz02][ABEFIJMNQRUVYZcdghklop][w-z0-6B-Gh-m]"
HINT = f"{_V4_GROUP}|(?:{_V6_GROUP}){{2}}"
_RUN = re.compile(r"[A-Za-z0-9+/]{12,}={0,2}|[A-Za-z0-9_-]{12,}={0,2}")
_HINT_RE = re.compile(HINT)


def mask_base64(text: str, mask: Callable[[str], str]) -> str:
    """``text`` with each base64 run whose decoded text ``mask`` changes encoded again from that."""
    if _HINT_RE.search(text) is None:
        return text
    return _RUN.sub(lambda m: _masked_run(m.group(0), mask), text)


def _masked_run(run: str, mask: Callable[[str], str]) -> str:
    if _HINT_RE.search(run) is None:
        return run
    urlsafe = "-" in run or "_" in run
    body = run.rstrip("=")
    for start in range(4):
        usable = body[start:]
        if len(usable) % 4 == 1:  # (one character encodes no byte)
            usable = usable[:-1]
        usable += "=" * (-len(usable) % 4)
        try:
            raw = base64.b64decode(usable, altchars=b"-_" if urlsafe else None, validate=True)
        except (binascii.Error, ValueError):
            continue
        decoded = raw.decode("latin-1")  # one character per byte: the bytes come back unchanged
        masked = mask(decoded)
        if masked != decoded:
            again = masked.encode("latin-1", "replace")
            encoded = base64.b64encode(again, altchars=b"-_" if urlsafe else None).decode("ascii")
            return body[:start] + encoded
    return run
