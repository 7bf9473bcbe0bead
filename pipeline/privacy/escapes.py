"""The decoded view of a text: the escapes an address can be written in, undone, with a map back.

A masker searches a text as written and in this view (``addresses.mask_addresses``), so an address
hidden behind escapes (``203%2E0%2E113%2E17``, ``%32%30%33…``, ``203%252E0…`` encoded twice) is found,
and the map names the span of raw text to replace.
"""

from __future__ import annotations

import re

from pipeline.privacy import lookalikes

# %HH (URLs), \xHH (Apache/nginx escapes), %uHHHH (IIS) and \uHHHH (JSON, JavaScript) of any
# character, also as a UTF-16 surrogate pair, and \UHHHHHHHH (Python, C); &#NN; and &#xHH; (HTML,
# of any character, also without the ';' where a browser does without — before a character that is
# no digit of it, nor the start of another escape (&#5%30; is &#50; once percent-decoded) — and the
# named &period; &colon; &amp; … (&amp without ';' before '#', as browsers read it);
# characters a Unicode-aware reader (NFKC, a browser's IDNA mapping) turns into address characters
# (``lookalikes.py``: superscript, circled, fullwidth, mathematical digits, stops, hex letters, the
# digits of every script …); the UTF-8 bytes of any character, once escapes made them characters of
# their own (%EF%BC%8E, \xE3\x80\x82: a full stop); NUL and its picture, which UTF-16 text puts
# between the characters of an address (2\x000\x003\x00.), and what IDNA maps to nothing (a soft
# hyphen). (%uFF0E, \u0662: a full stop and a digit found by review behind a 00HH-only escape.)
_ESCAPE_RE = re.compile(
    r"%(?P<pct>[0-9A-Fa-f]{2})|\\[xX](?P<x>[0-9A-Fa-f]{2})"
    r"|[%\\][uU](?P<high>[dD][89aAbB][0-9A-Fa-f]{2})[%\\][uU](?P<low>[dD][c-fC-F][0-9A-Fa-f]{2})"
    r"|[%\\]u(?P<u>[0-9A-Fa-f]{4})|%U(?P<pu>[0-9A-Fa-f]{4})|\\U(?P<wide>0{2}[0-9A-Fa-f]{6}|[0-9A-Fa-f]{4})"
    r"|&#[xX]0*(?P<hexref>[0-9A-Fa-f]{1,6})(?:;|(?![0-9A-Fa-f%\\&]))|&#0*(?P<ref>[0-9]{1,7})(?:;|(?![0-9%\\&]))"
    rf"|(?P<alike>{lookalikes.CLASS})"
    r"|(?P<utf8>[\xc2-\xdf][\x80-\xbf]|[\xe0-\xef][\x80-\xbf]{2}|[\xf0-\xf4][\x80-\xbf]{3})"
    rf"|(?P<gone>[\x00\u2400]|{lookalikes.IGNORED})"
    r"|&(?P<named>period|colon|hyphen|dash|lowbar|UnderBar|percnt|bsol|amp|num|commat);|&(?P<amp>amp)(?=#)"
)
# HTML's named references of the characters above (``&amp;#46;``: an entity escaped once more)
_NAMED = {
    "period": ".", "colon": ":", "hyphen": "-", "dash": "-", "lowbar": "_", "UnderBar": "_",
    "percnt": "%", "bsol": "\\", "amp": "&", "num": "#", "commat": "@",
}  # fmt: skip


def _unescape(m: re.Match[str]) -> str:
    groups = m.groupdict()
    byte = groups["pct"] or groups["x"]
    if byte is not None:
        return chr(int(byte, 16))
    code = _code_point(groups)
    if code is not None:  # any character (&#65294;, %uFF0E: a fullwidth full stop)
        return lookalikes.address_text(chr(code) if code <= 0x10FFFF else "\ufffd")
    if groups["alike"] is not None:
        return lookalikes.address_text(groups["alike"])
    if groups["utf8"] is not None:
        try:
            char = groups["utf8"].encode("latin-1").decode("utf-8")
        except UnicodeDecodeError:
            return groups["utf8"]
        return lookalikes.address_text(char)
    if groups["named"] or groups["amp"]:
        return _NAMED[groups["named"] or groups["amp"]]
    return ""  # NUL: not there


def _code_point(groups: dict[str, str | None]) -> int | None:
    """The character an escape names: %uHHHH, a surrogate pair, \\UHHHHHHHH, &#…; (None: no such)."""
    if groups["high"] is not None and groups["low"] is not None:
        return 0x10000 + ((int(groups["high"], 16) - 0xD800) << 10) + int(groups["low"], 16) - 0xDC00
    for name in ("u", "pu", "wide", "hexref"):
        if groups[name] is not None:
            code = int(groups[name] or "", 16)
            return 0xFFFD if 0xD800 <= code <= 0xDFFF else code  # a lone surrogate is no character
    return int(groups["ref"]) if groups["ref"] is not None else None


_MAX_DECODE_ROUNDS = 8  # %25252E… : encoded twice, three times, … (each round is linear)


def decoded_text(text: str) -> str | None:
    """``decoded_view``'s text alone, or None when nothing is escaped: the map from each decoded
    character back to the raw text costs ~10x more (binary lines are escapes from end to end, 0.5 ms
    each: found by review), and is only needed where the decoded text holds an address."""
    if _ESCAPE_RE.search(text) is None:
        return None
    view = text
    for _ in range(_MAX_DECODE_ROUNDS):
        decoded = _ESCAPE_RE.sub(_unescape, view)
        if decoded == view:
            break
        view = decoded
    return view


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
            char = _unescape(m)  # (a NUL leaves no character: its neighbours meet; ⑩ leaves two)
            chars.append(char)
            new_starts += [starts[a]] * len(char)
            new_ends += [ends[b - 1]] * len(char)
            pos = b
        if pos == 0:
            break
        chars.append(view[pos:])
        new_starts += starts[pos:]
        new_ends += ends[pos:]
        view, starts, ends = "".join(chars), new_starts, new_ends
    return view, starts, ends
