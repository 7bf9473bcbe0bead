"""Characters a Unicode-aware reader reads as the characters an IP address is written with.

NFKC (and a browser's IDNA mapping, which also turns the ideographic full stop into '.') reads
``¹⁹⁸․⁵¹․¹⁰⁰․¹¹``, ``①⑨⑧.⑤①.①⓪⓪.①③`` or ``２００１：ｄｂ８：：１`` as an address: such a text
is one for whoever reads it so. The masker decodes them in its view (``escapes.py``) and the
vectorised pre-filter admits them (``truncate.NEEDS_MASK``). The set is every character whose
normal form is made of address characters only (digits, hex letters, '.', ':', '-', '_'), taken
from Unicode itself, not picked by hand: a hand-picked list had missed superscript, subscript,
circled and segmented digits, the one-dot leader, small and vertical stops, and fullwidth hex
letters (found by review), and then the digits of other scripts (``٢٠٣.٠.١١٣.٧٩``: Arabic-Indic,
Devanagari, Thai …; every Unicode decimal digit) with the Arabic decimal separator. ``RANGES`` is
``compute()``'s result for Unicode 14.0.0
(``tests/privacy/test_lookalikes.py`` holds it to the running Python's Unicode).
"""

from __future__ import annotations

import unicodedata

ADDRESS_CHARS = frozenset("0123456789abcdefABCDEF.:-_")

RANGES: tuple[tuple[int, int], ...] = (
    (0xAA, 0xAA), (0xB2, 0xB3), (0xB9, 0xB9), (0x660, 0x669), (0x66B, 0x66B), (0x6D4, 0x6D4),
    (0x6F0, 0x6F9), (0x7C0, 0x7C9), (0x966, 0x96F), (0x9E6, 0x9EF), (0xA66, 0xA6F), (0xAE6, 0xAEF),
    (0xB66, 0xB6F), (0xBE6, 0xBEF), (0xC66, 0xC6F), (0xCE6, 0xCEF), (0xD66, 0xD6F), (0xDE6, 0xDEF),
    (0xE50, 0xE59), (0xED0, 0xED9), (0xF20, 0xF29), (0x1040, 0x1049), (0x1090, 0x1099),
    (0x17E0, 0x17E9), (0x1810, 0x1819), (0x1946, 0x194F), (0x19D0, 0x19D9), (0x1A80, 0x1A89),
    (0x1A90, 0x1A99), (0x1B50, 0x1B59), (0x1BB0, 0x1BB9), (0x1C40, 0x1C49), (0x1C50, 0x1C59),
    (0x1D2C, 0x1D2C), (0x1D2E, 0x1D2E), (0x1D30, 0x1D31), (0x1D43, 0x1D43), (0x1D47, 0x1D49),
    (0x1D9C, 0x1D9C), (0x1DA0, 0x1DA0), (0x2024, 0x2026), (0x2070, 0x2070), (0x2074, 0x2079),
    (0x2080, 0x2089), (0x2090, 0x2091), (0x2102, 0x2102), (0x212C, 0x212D), (0x212F, 0x2131),
    (0x2145, 0x2147), (0x216D, 0x216E), (0x217D, 0x217E), (0x2460, 0x2473), (0x2488, 0x249B),
    (0x24B6, 0x24BB), (0x24D0, 0x24D5), (0x24EA, 0x24EA), (0x3002, 0x3002), (0x3251, 0x325F),
    (0x32B1, 0x32BF), (0x3372, 0x3372), (0x33C4, 0x33C5), (0x33C8, 0x33C8), (0xA620, 0xA629),
    (0xA7F2, 0xA7F3), (0xA8D0, 0xA8D9), (0xA900, 0xA909), (0xA9D0, 0xA9D9), (0xA9F0, 0xA9F9),
    (0xAA50, 0xAA59), (0xABF0, 0xABF9), (0xFB00, 0xFB00), (0xFE12, 0xFE13), (0xFE19, 0xFE19),
    (0xFE30, 0xFE30), (0xFE33, 0xFE34), (0xFE4D, 0xFE4F), (0xFE52, 0xFE52), (0xFE55, 0xFE55),
    (0xFE63, 0xFE63), (0xFF0D, 0xFF0E), (0xFF10, 0xFF1A), (0xFF21, 0xFF26), (0xFF3F, 0xFF3F),
    (0xFF41, 0xFF46), (0xFF61, 0xFF61), (0x104A0, 0x104A9), (0x10D30, 0x10D39), (0x11066, 0x1106F),
    (0x110F0, 0x110F9), (0x11136, 0x1113F), (0x111D0, 0x111D9), (0x112F0, 0x112F9), (0x11450, 0x11459),
    (0x114D0, 0x114D9), (0x11650, 0x11659), (0x116C0, 0x116C9), (0x11730, 0x11739), (0x118E0, 0x118E9),
    (0x11950, 0x11959), (0x11C50, 0x11C59), (0x11D50, 0x11D59), (0x11DA0, 0x11DA9), (0x16A60, 0x16A69),
    (0x16AC0, 0x16AC9), (0x16B50, 0x16B59), (0x1D400, 0x1D405), (0x1D41A, 0x1D41F), (0x1D434, 0x1D439),
    (0x1D44E, 0x1D453), (0x1D468, 0x1D46D), (0x1D482, 0x1D487), (0x1D49C, 0x1D49C), (0x1D49E, 0x1D49F),
    (0x1D4B6, 0x1D4B9), (0x1D4BB, 0x1D4BB), (0x1D4D0, 0x1D4D5), (0x1D4EA, 0x1D4EF), (0x1D504, 0x1D505),
    (0x1D507, 0x1D509), (0x1D51E, 0x1D523), (0x1D538, 0x1D539), (0x1D53B, 0x1D53D), (0x1D552, 0x1D557),
    (0x1D56C, 0x1D571), (0x1D586, 0x1D58B), (0x1D5A0, 0x1D5A5), (0x1D5BA, 0x1D5BF), (0x1D5D4, 0x1D5D9),
    (0x1D5EE, 0x1D5F3), (0x1D608, 0x1D60D), (0x1D622, 0x1D627), (0x1D63C, 0x1D641), (0x1D656, 0x1D65B),
    (0x1D670, 0x1D675), (0x1D68A, 0x1D68F), (0x1D7CE, 0x1D7FF), (0x1E140, 0x1E149), (0x1E2F0, 0x1E2F9),
    (0x1E950, 0x1E959), (0x1F100, 0x1F100), (0x1F12B, 0x1F12B), (0x1F12D, 0x1F12D), (0x1F130, 0x1F135),
    (0x1FBF0, 0x1FBF9),
)  # fmt: skip


# Characters IDNA maps to nothing (RFC 3454 table B.1: soft hyphen, zero-width space and joiners,
# variation selectors, …): a browser reads 198.5\u00ad1.100.13 as 198.51.100.13 (found by review).
# ``IGNORED_RANGES`` is ``stringprep.in_table_b1`` over Unicode (a test holds it to it).
IGNORED_RANGES: tuple[tuple[int, int], ...] = (
    (0xAD, 0xAD), (0x34F, 0x34F), (0x1806, 0x1806), (0x180B, 0x180D), (0x200B, 0x200D), (0x2060, 0x2060),
    (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
)  # fmt: skip


# Stops a reader of a script with digits of its own writes between them: NFKC keeps them as they are.
_STOPS = {"\u066b": ".", "\u06d4": "."}  # Arabic decimal separator, Arabic full stop


def plain(char: str) -> str:
    """What NFKC makes of a character, and IDNA of an ideographic full stop (NFKC keeps it); a
    decimal digit of any script as its value (NFKC keeps ``٢٠٣``, which reads 203; found by review)."""
    normal = unicodedata.normalize("NFKC", char).replace("\u3002", ".")
    if len(normal) == 1 and not normal.isascii():
        digit = unicodedata.decimal(normal, None)
        return str(digit) if digit is not None else _STOPS.get(normal, normal)
    return normal


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


def _either_case(digit: str) -> str:
    return f"[{digit.upper()}{digit.lower()}]" if digit.isalpha() else digit


def _hex(byte: int) -> str:
    return "".join(_either_case(c) for c in f"{byte:02x}")


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


def _escaped_code_points() -> str:
    """Their code points escaped (``%uFF0E``, ``\\u0662``, ``\\uD835\\uDFCE``, ``\\U0001D7CE``) and
    those of what IDNA maps to nothing: the first hex digits exactly, the last as a class."""
    codes: dict[str, set[str]] = {}
    wide: dict[str, set[str]] = {}
    for a, b in RANGES + IGNORED_RANGES:
        for cp in range(a, b + 1):
            if cp > 0xFFFF:  # as a surrogate pair (its first half), or in eight digits
                code = f"{0xD800 + ((cp - 0x10000) >> 10):04x}"
                codes.setdefault(code[:3], set()).add(code[3])
                long = f"{cp:08x}"
                wide.setdefault(long[:7], set()).add(long[7])
            else:
                code = f"{cp:04x}"
                codes.setdefault(code[:3], set()).add(code[3])

    def alternatives(table: dict[str, set[str]]) -> str:
        return "|".join(
            "".join(_either_case(c) for c in head)
            + "["
            + "".join(sorted({c.lower() for c in lasts} | {c.upper() for c in lasts}))
            + "]"
            for head, lasts in sorted(table.items())
        )

    return rf"[%\\][uU](?:{alternatives(codes)})|\\U(?:{alternatives(wide)})"


ESCAPED_CODE_POINTS = _escaped_code_points()
