"""Addresses written in characters a Unicode-aware reader reads as digits, stops, colons and hex
letters (``privacy/lookalikes.py``): every such character of Unicode, through the vectorised path
ingest takes (``mask_text``: the pre-filter, then the masker) and through ``mask_value`` (names).

Found by review: the masker knew fullwidth and mathematical digits only, and kept
``¹⁹⁸.⁵¹.¹⁰⁰.¹¹``, ``①⑨⑧.⑤①.①⓪⓪.①③``, ``198․51․100․15`` and ``２００１：ｄｂ８：ａ：…`` as written.
"""

from __future__ import annotations

import ipaddress

import polars as pl

from pipeline.privacy import lookalikes
from pipeline.privacy.mask import ClientMasker, mask_text
from pipeline.privacy.truncate import Truncator, mask_value

CHARS = [chr(cp) for a, b in lookalikes.RANGES for cp in range(a, b + 1)]


def by_normal_form(wanted: str) -> list[str]:
    return [c for c in CHARS if lookalikes.plain(c) == wanted]


def test_the_table_is_unicode_itself() -> None:
    """A Python with a newer Unicode gives more look-alikes: the table is regenerated from it."""
    assert lookalikes.compute() == lookalikes.RANGES
    assert len(CHARS) > 350 and {"¹", "₉", "①", "⓪", "\u2024", "\ufe52", "\ufe13", "ｄ", "\U0001fbf7"} <= set(
        CHARS
    )


def test_the_characters_idna_maps_to_nothing_are_rfc_3454_table_b1() -> None:
    import stringprep

    table = {cp for cp in range(0x110000) if not 0xD800 <= cp <= 0xDFFF and stringprep.in_table_b1(chr(cp))}
    assert table == {cp for a, b in lookalikes.IGNORED_RANGES for cp in range(a, b + 1)}


def written_with(digit: dict[str, str], dot: str = ".", colon: str = ":") -> tuple[str, str]:
    """An IPv4 and an IPv6 address text spelled with the given characters for digits and separators."""
    v4 = dot.join("".join(digit.get(d, d) for d in octet) for octet in ("198", "51", "100", "77"))
    v6 = colon.join(
        "".join(digit.get(d, d) for d in group) for group in ("2001", "db8", "a7", "1", "2", "3", "4", "ce")
    )
    return v4, v6


def samples() -> list[str]:
    texts = []
    for digit in "0123456789abcdefABCDEF":
        for c in by_normal_form(digit):
            spelled = {digit.lower(): c, digit.upper(): c} if digit.isalpha() else {digit: c}
            texts += [f"/p?ip={t}&x=1" for t in written_with(spelled)]
    texts += [f"/p/{written_with({}, dot=c)[0]}" for c in by_normal_form(".")]
    texts += [f"/p/{written_with({}, colon=c)[1]}" for c in by_normal_form(":")]
    for a, b in lookalikes.IGNORED_RANGES:  # what IDNA deletes, between an address's characters
        texts += [f"/p/198.5{chr(cp)}1.100.7{chr(cp)}7" for cp in range(a, b + 1)]
    for c in CHARS:  # a character that reads as several (⑲ → 19, ⒎ → 7.) where it fits
        normal = lookalikes.plain(c)
        if len(normal) > 1 and normal.rstrip(".").isdigit() and int(normal.rstrip(".")) <= 255:
            texts.append(f"/p/{c}.51.100.77" if not normal.endswith(".") else f"/p/{c}51.100.77")
    return texts


def test_every_lookalike_address_is_masked_on_the_ingest_path_and_in_names() -> None:
    texts = samples()
    assert len(texts) > 400
    masked = mask_text(pl.Series("path", texts), ClientMasker(24, 48)).to_list()
    named = [mask_value(t, Truncator(24, 48)) for t in texts]
    for text, out, name in zip(texts, masked, named, strict=True):
        for result in (out, name):
            readable = lookalikes_read(result)
            assert "198.51.100.77" not in readable and "2001:db8:a7:1:2:3:4:ce" not in readable, (
                text,
                result,
            )
            assert "/24" in result or "/48" in result or "[ipv6]" in result, (text, result)


def lookalikes_read(text: str) -> str:
    """The text as a Unicode-aware reader reads it (what must not be an address any more)."""
    out = "".join(lookalikes.address_text(c) for c in text)
    for token in out.replace("?", "/").replace("=", "/").replace("&", "/").split("/"):
        try:
            ipaddress.ip_address(token)
        except ValueError:
            continue
        return out  # an address survived: the caller's assertion shows it
    return out


def test_text_with_lookalikes_but_no_address_is_kept() -> None:
    kept = ["/m²/1ª-planta", "/cafe/①-intro", "/x…y", "/notes/⑩"]
    assert mask_text(pl.Series("path", kept), ClientMasker(24, 48)).to_list() == kept
