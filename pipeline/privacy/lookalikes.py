"""Characters a Unicode-aware reader reads as the characters an IP address is written with.

NFKC (and a browser's IDNA mapping, which also turns the ideographic full stop into '.') reads
``¹⁹⁸․⁵¹․¹⁰⁰․¹¹``, ``①⑨⑧.⑤①.①⓪⓪.①③`` or ``２００１：ｄｂ８：：１`` as an address: such a text
is one for whoever reads it so. The masker decodes them in its view (``escapes.py``) and the
vectorised pre-filter admits them (``truncate.NEEDS_MASK``). The set is every character whose
normal form is made of address characters only (digits, hex letters, '.', ':', '-', '_'), taken
from Unicode itself, not picked by hand: a hand-picked list had missed superscript, subscript,
circled and segmented digits, the one-dot leader, small and vertical stops, and fullwidth hex
letters (found by review). ``RANGES`` is ``compute()``'s result for Unicode 14.0.0
(``tests/privacy/test_lookalikes.py`` holds it to the running Python's Unicode).
"""

from __future__ import annotations

import unicodedata

ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:-_")

RANGES: tuple[tuple[int, int], ...] = (
    (0xAA, 0xAA), (0xB2, 0xB3), (0xB9, 0xB9), (0x1D2C, 0x1D2C), (0x1D2E, 0x1D2E), (0x1D30, 0x1D31),
    (0x1D43, 0x1D43), (0x1D47, 0x1D49), (0x1D9C, 0x1D9C), (0x1DA0, 0x1DA0), (0x2024, 0x2026),
    (0x2070, 0x2070), (0x2074, 0x2079), (0x2080, 0x2089), (0x2090, 0x2091), (0x2102, 0x2102),
    (0x212C, 0x212D), (0x212F, 0x2131), (0x2145, 0x2147), (0x216D, 0x216E), (0x217D, 0x217E),
    (0x2460, 0x2473), (0x2488, 0x249B), (0x24B6, 0x24BB), (0x24D0, 0x24D5), (0x24EA, 0x24EA),
    (0x3002, 0x3002), (0x3251, 0x325F), (0x32B1, 0x32BF), (0x3372, 0x3372), (0x33C4, 0x33C5),
    (0x33C8, 0x33C8), (0xA7F2, 0xA7F3), (0xFB00, 0xFB00), (0xFE12, 0xFE13), (0xFE19, 0xFE19),
    (0xFE30, 0xFE30), (0xFE33, 0xFE34), (0xFE4D, 0xFE4F), (0xFE52, 0xFE52), (0xFE55, 0xFE55),
    (0xFE63, 0xFE63), (0xFF0D, 0xFF0E), (0xFF10, 0xFF1A), (0xFF21, 0xFF26), (0xFF3F, 0xFF3F),
    (0xFF41, 0xFF46), (0xFF61, 0xFF61), (0x1D400, 0x1D405), (0x1D41A, 0x1D41F), (0x1D434, 0x1D439),
    (0x1D44E, 0x1D453), (0x1D468, 0x1D46D), (0x1D482, 0x1D487), (0x1D49C, 0x1D49C), (0x1D49E, 0x1D49F),
    (0x1D4B6, 0x1D4B9), (0x1D4BB, 0x1D4BB), (0x1D4D0, 0x1D4D5), (0x1D4EA, 0x1D4EF), (0x1D504, 0x1D505),
    (0x1D507, 0x1D509), (0x1D51E, 0x1D523), (0x1D538, 0x1D539), (0x1D53B, 0x1D53D), (0x1D552, 0x1D557),
    (0x1D56C, 0x1D571), (0x1D586, 0x1D58B), (0x1D5A0, 0x1D5A5), (0x1D5BA, 0x1D5BF), (0x1D5D4, 0x1D5D9),
    (0x1D5EE, 0x1D5F3), (0x1D608, 0x1D60D), (0x1D622, 0x1D627), (0x1D63C, 0x1D641), (0x1D656, 0x1D65B),
    (0x1D670, 0x1D675), (0x1D68A, 0x1D68F), (0x1D7CE, 0x1D7FF), (0x1F100, 0x1F100), (0x1F12B, 0x1F12B),
    (0x1F12D, 0x1F12D), (0x1F130, 0x1F135), (0x1FBF0, 0x1FBF9),
)  # fmt: skip


# Characters IDNA maps to nothing (RFC 3454 table B.1: soft hyphen, zero-width space and joiners,
# variation selectors, …): a browser reads 198.5\u00ad1.100.13 as 198.51.100.13 (found by review).
# ``IGNORED_RANGES`` is ``stringprep.in_table_b1`` over Unicode (a test holds it to it).
IGNORED_RANGES: tuple[tuple[int, int], ...] = (
    (0xAD, 0xAD), (0x34F, 0x34F), (0x1806, 0x1806), (0x180B, 0x180D), (0x200B, 0x200D), (0x2060, 0x2060),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
)  # fmt: skip


def plain(char: str) -> str:
    """What NFKC makes of a character, and IDNA of an ideographic full stop (NFKC keeps it)."""
    return unicodedata.normalize("NFKC", char).replace("\u3002", ".")


def address_text(char: str) -> str:
    """``char``'s normal form when it is made of address characters only, else ``char`` itself."""
    normal = plain(char)
    return normal if normal and set(normal) <= ADDRESS_CHARS else char


def compute() -> tuple[tuple[int, int], ...]:
    """``RANGES`` as the running Python's Unicode database gives them (~0.3 s: tests and scripts)."""
    ranges: list[list[int]] = []
    for cp in range(0x80, 0x110000):
        if 0xD800 <= cp <= 0xDFFF or address_text(chr(cp)) == chr(cp):
            continue
        if ranges and ranges[-1][1] == cp - 1:
            ranges[-1][1] = cp
        else:
            ranges.append([cp, cp])
    return tuple((a, b) for a, b in ranges)


def _escape(cp: int) -> str:
    return f"\\u{cp:04x}" if cp <= 0xFFFF else f"\\U{cp:08x}"


def _class(ranges: tuple[tuple[int, int], ...]) -> str:
    """A regular-expression class (Python's re and polars' Rust regex read the same escapes)."""
    return "[" + "".join(_escape(a) if a == b else f"{_escape(a)}-{_escape(b)}" for a, b in ranges) + "]"


CLASS = _class(RANGES)
IGNORED = _class(IGNORED_RANGES)


def _hex(byte: int) -> str:
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in f"{byte:02x}")


def _escaped_utf8() -> str:
    """Their UTF-8 escaped (``%E2%81%B9``: a superscript nine; the first three bytes of four), not
    other text (``%E2%80%99``: a quotation mark; ``%E3%83%86…``: a Japanese site's every path)."""
    heads: dict[bytes, set[int]] = {}
    for a, b in RANGES:
        for cp in range(a, b + 1):
            code = chr(cp).encode("utf-8")[:3]
            heads.setdefault(code[:-1], set()).add(code[-1])
    sep = r"(?:%|\\[xX])"
    alts = (
        sep.join(_hex(byte) for byte in head) + f"{sep}(?:{'|'.join(_hex(last) for last in sorted(lasts))})"
        for head, lasts in sorted(heads.items())
    )
    return f"{sep}(?:{'|'.join(alts)})"


ESCAPED_UTF8 = _escaped_utf8()
