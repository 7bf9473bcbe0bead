"""The decoded view of a text: the escapes an address can be written in, undone, with a map back.

A masker searches a text as written and in this view (``addresses.mask_addresses``), so an address
hidden behind escapes (``203%2E0%2E113%2E17``, ``%32%30%33…``, ``203%252E0…`` encoded twice) is found,
and the map names the span of raw text to replace.
"""

from __future__ import annotations

import re

# %HH (URLs), \xHH (Apache/nginx escapes), %u00HH (IIS), \u00HH (JSON), &#NN; and &#xHH; (HTML);
# fullwidth digits, dot, colon, hyphen and low line (what a Unicode-aware reader turns back into an
# address).
_ESCAPE_RE = re.compile(
    r"%([0-9A-Fa-f]{2})|\\[xX]([0-9A-Fa-f]{2})|[%\\][uU]00([0-9A-Fa-f]{2})|&#[xX]0*([0-9A-Fa-f]{1,2});"
    r"|&#0*([0-9]{1,3});|([\uff10-\uff1a\uff0d\uff0e\uff3f\u3002])"
)
_FULLWIDTH = {
    **{chr(0xFF10 + d): str(d) for d in range(10)},
    **{"\uff0e": ".", "\u3002": ".", "\uff1a": ":", "\uff0d": "-", "\uff3f": "_"},
}


def _unescape(m: re.Match[str]) -> str:
    hexa = m.group(1) or m.group(2) or m.group(3) or m.group(4)
    if hexa is not None:
        return chr(int(hexa, 16))
    if m.group(5) is not None:
        return chr(int(m.group(5)))
    return _FULLWIDTH[m.group(6)]


_MAX_DECODE_ROUNDS = 4  # %25252E… : double, triple and quadruple encoding


def decoded_view(text: str) -> tuple[str, list[int], list[int]] | None:
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
