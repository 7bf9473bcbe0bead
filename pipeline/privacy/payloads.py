"""Addresses inside base64: a scanner's payload (``${jndi:ldap://…/Base64/KGN1cmwgLXMgNDUu…}``)
carries the address it calls back to, readable by anyone who decodes it (found by review, in a real
log the repository ships: the address masked as written, kept in the base64 beside it).

A base64 run is decoded at each of its four alignments (a prefix such as ``Base64/`` is part of the
run: its characters are base64 too); when the decoded text holds an address, the run is encoded
again from the masked text. The payload stays readable evidence, its addresses masked as everywhere
else. Decoded text is read as bytes, as UTF-16 and UTF-32 (PowerShell's ``-enc`` payloads are
UTF-16LE) and as base64 once more (two levels deep); runs of 10 characters and more (``1.1.1.1``
encodes to 10). ``HINT`` lets the vectorised pre-filter admit a value that may hold one: base64
characters that can only encode part of a dotted IPv4 or an IPv6 text, in bytes, UTF-16 or UTF-32,
or part of the base64 of an IPv4 text (found by review: the wide forms, short runs and base64 in
base64 had been kept as written).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator

# one group of four characters encoding three of [0-9.] (IPv4), or two of [0-9a-fA-F:] (IPv6)
_V4_GROUP = "[LMNO][CDSTijyz][AEIMQUYcgk4][uwxyz0-5]"
_V6_GROUP = "[MNOQRYZ][DEGTUWjkmz02][ABEFIJMNQRUVYZcdghklop][w-z0-6B-Gh-m]"
_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
_URLSAFE = {62: "-", 63: "_"}  # what base64url writes for 62 and 63 ('+' and '/' stay in the class)
_ADDRESS_BYTES = frozenset(b"0123456789.:abcdefABCDEF")


def _groups(period: list[frozenset[int]], groups: int = 2) -> str:
    """Base64 of bytes drawn from ``period`` (each byte's set, repeating), ``groups`` groups of four
    characters at each phase; each character a class of what it can be (a superset: the pre-filter
    may admit more, never less)."""
    phases = []
    for k in range(len(period)):
        chars = []
        for g in range(groups):
            b1, b2, b3 = (period[(k + 3 * g + i) % len(period)] for i in range(3))
            values = (
                {x >> 2 for x in b1},
                {(x & 3) << 4 | y >> 4 for x in b1 for y in b2},
                {(y & 15) << 2 | z >> 6 for y in b2 for z in b3},
                {z & 63 for z in b3},
            )
            chars += [_class({c for v in vs for c in _ALPHABET[v] + _URLSAFE.get(v, "")}) for vs in values]
        phases.append("".join(chars))
    return "|".join(phases)


def _class(chars: set[str]) -> str:
    return "[" + "".join(sorted(chars)).replace("-", "\\-") + "]"


_ZERO = frozenset({0})
_UTF16 = _groups([_ADDRESS_BYTES, _ZERO])
_UTF32 = _groups([_ADDRESS_BYTES, _ZERO, _ZERO, _ZERO], groups=4)
# the base64 of the base64 of an IPv4 text: _V4_GROUP's characters, as bytes
_NESTED = _groups([frozenset(c.encode()) for c in ("LMNO", "CDSTijyz", "AEIMQUYcgk4", "uwxyz012345")])
HINT = f"{_V4_GROUP}|(?:{_V6_GROUP}){{2}}|{_UTF16}|{_UTF32}|{_NESTED}"
# a line break between the lines of wrapped base64 (``base64`` wraps at 76): URL-encoded, as a
# server escapes it, or as it is (found by review: an address across a break was kept, or its second
# half decoded alone and masked into another network)
_BREAK = r"(?:(?:%0[dD])?%0[aA]|(?:\\[rR])?\\[nN]|(?:\\[xX]0[dD])?\\[xX]0[aA]|\r?\n)"
_BREAK_SPLIT = re.compile(f"({_BREAK})")
_BREAK_RE = re.compile(_BREAK)
_MIN_WRAP = 40  # the shortest line length taken for wrapped base64
_PAD = "(?:=|%3[dD]){0,2}"  # (URL-encoded too: kept beside the padding of the base64 encoded again)
_RUN = re.compile(
    rf"[A-Za-z0-9+/]{{10,}}(?:{_BREAK}[A-Za-z0-9+/]{{4,}})*{_PAD}"
    rf"|[A-Za-z0-9_-]{{10,}}(?:{_BREAK}[A-Za-z0-9_-]{{4,}})*{_PAD}"
)
_HINT_RE = re.compile(HINT)
_DEPTH = 2  # base64 in base64 in base64 …: each level is linear, two are what attacks were seen with
_WIDE = ("utf-32-le", "utf-32-be", "utf-16-le", "utf-16-be")  # (UTF-32 read as UTF-16 has NULs)


def mask_base64(text: str, mask: Callable[[str], str], depth: int = 1) -> str:
    """``text`` with each base64 run whose decoded text ``mask`` changes encoded again from that."""
    if _HINT_RE.search(text) is None:
        return text
    return _RUN.sub(lambda m: _masked_run(m.group(0), mask, depth), text)


def _masked_run(run: str, mask: Callable[[str], str], depth: int) -> str:
    """A run, its lines joined where they are the lines of wrapped base64 (all as long as the first,
    a multiple of 4 from 40 on: ``base64`` wraps at 76, PEM at 64) and wrapped again as they were
    when masked; what follows them is masked on its own (found by review: a word after a line break
    had been joined to the payload and encoded into it)."""
    parts = _BREAK_SPLIT.split(run)
    texts, breaks = parts[0::2], parts[1::2]
    width = len(texts[0])
    lines = 1
    if width % 4 == 0 and width >= _MIN_WRAP:
        while lines < len(texts) and len(texts[lines - 1]) == width and len(texts[lines]) <= width:
            lines += 1
        if lines > 1 and len(_padded(texts[lines - 1])) % 4:  # a last line base64 cannot end with
            lines -= 1
    head = "".join(texts[:lines])
    masked = _masked_one(head, mask, depth)
    if masked == head:
        out = [run[: sum(map(len, texts[:lines])) + sum(map(len, breaks[: lines - 1]))]]
    elif lines > 1:  # wrapped again at the width it had, with its own line break
        out = [breaks[0].join(masked[i : i + width] for i in range(0, len(masked), width))]
    else:
        out = [masked]
    for brk, text in zip(breaks[lines - 1 :], texts[lines:], strict=True):
        out += [brk, _masked_one(text, mask, depth)]
    masked_run = "".join(out)
    if len(texts) == 1:
        return masked_run
    # an address still across a break (lines not told apart above: a header line before the payload,
    # unpadded base64): the run masked as one line, its breaks gone (found by review)
    if _leaks(masked_run, mask, depth):
        return _masked_one(_BREAK_RE.sub("", run), mask, depth)
    return masked_run


def _leaks(run: str, mask: Callable[[str], str], depth: int) -> bool:
    """Does a run, its breaks and padding taken out, still decode to an address at some alignment?
    (Lines masked one by one carry padding in the middle: a strict decode of it fails.)"""
    body = re.sub(r"[^A-Za-z0-9+/_-]", "", _BREAK_RE.sub("", _padded(run)))
    return any(_masked_bytes(raw, mask, depth) is not None for _, raw in _decodings(body, strict=False))


def _decodings(body: str, *, strict: bool) -> Iterator[tuple[int, bytes]]:
    """(alignment, bytes) at each of the four alignments where ``body`` decodes as base64 (standard
    or URL-safe): ``strict``, as written and padded; else its characters past the last whole group
    of four dropped, and what is no base64 skipped."""
    altchars = b"-_" if "-" in body or "_" in body else None
    for start in range(4):
        usable = body[start:]
        if strict:
            if len(usable) % 4 == 1:  # (one character encodes no byte)
                usable = usable[:-1]
            usable += "=" * (-len(usable) % 4)
        else:
            usable = usable[: len(usable) - len(usable) % 4]
        try:
            yield start, base64.b64decode(usable, altchars=altchars, validate=strict)
        except (binascii.Error, ValueError):
            continue


def _padded(text: str) -> str:
    return text.replace("%3D", "=").replace("%3d", "=")  # (padding URL-encoded: encoded again as '=')


def _masked_one(run: str, mask: Callable[[str], str], depth: int) -> str:
    joined = _padded(run)
    if _HINT_RE.search(joined) is None:
        return run
    urlsafe = "-" in joined or "_" in joined
    body = joined.rstrip("=")
    for start, raw in _decodings(body, strict=True):
        again = _masked_bytes(raw, mask, depth)
        if again is not None:
            encoded = base64.b64encode(again, altchars=b"-_" if urlsafe else None).decode("ascii")
            return body[:start] + encoded
    return run


def _masked_bytes(raw: bytes, mask: Callable[[str], str], depth: int) -> bytes | None:
    """``raw`` with the addresses in its text masked, each in the encoding it is written in, and in
    base64 inside it; None when it holds none. Every reading in turn (found by review: the first one
    that masked something had been the only one): wide encodings first, as bytes UTF-16 text is an
    address with NULs between."""
    out = raw
    for codec in (*(_WIDE if b"\0" in raw else ()), "latin-1"):  # latin-1: each byte, unchanged
        unit = 4 if "32" in codec else 2 if "16" in codec else 1
        whole = len(out) - len(out) % unit
        try:
            decoded = out[:whole].decode(codec)
        except UnicodeDecodeError:
            continue
        masked = mask(decoded)
        if depth < _DEPTH:
            masked = mask_base64(masked, mask, depth + 1)
        if masked != decoded:
            out = masked.encode(codec, "replace") + out[whole:]
    return None if out == raw else out
