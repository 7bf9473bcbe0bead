"""The location country of a MaxMind DB record, read from the data section without decoding the rest.

Why: the C reader decodes a whole record into Python objects; a GeoLite2-City record (place names in
eight languages, subdivisions, coordinates) took 13 µs, and a log's clients resolve to tens of
thousands of distinct records. The store keeps one key of it, ``country.iso_code``. MaxMind's builds
store each country map once and point to it from every record: the walk below reads the record's
keys up to ``country`` and the map it names, and each country map is read once per run.

Anything the walk does not follow (a map or array to step over before the key, an unknown type, a
pointer to a pointer, bytes past the end) answers ``UNKNOWN``: ``geo.Geo`` then asks the reader, which
decodes the whole record (or reports the database as invalid). So the answer is always the reader's:
tests compare the two on every record of MaxMind's test databases and on crafted ones.

Format (MaxMind DB spec, "Output Data Section"): a control byte holds the type (top 3 bits; 0 means
"extended": the next byte + 7) and the size (low 5 bits; 29, 30, 31 take 1-3 more bytes). Pointers
(type 1) are offsets from the data section's start, which follows the search tree and 16 zero bytes.
"""

from __future__ import annotations

import mmap
from typing import Final

_POINTER, _STRING, _MAP, _ARRAY, _CONTAINER, _END, _BOOLEAN = 1, 2, 7, 11, 12, 13, 14
_POINTER_BIAS = (0, 2048, 526336, 0)  # added to a pointer of 1, 2, 3, 4 bytes (spec)


class _Unknown:
    """A record the walk does not follow: ask the reader."""

    def __repr__(self) -> str:
        return "UNKNOWN"


UNKNOWN: Final = _Unknown()


class DataSection:
    """The data section of one MaxMind DB file (the search tree's memory map, shared)."""

    def __init__(self, buffer: mmap.mmap, tree_size: int, node_count: int) -> None:
        self._buf = buffer
        self._start = tree_size + 16  # pointers count from here
        self._record_base = tree_size - node_count  # a tree record r points to r + this
        self._countries: dict[int, str | _Unknown | None] = {}  # country map offset → iso_code
        self._keys: dict[int, bytes] = {}  # pointer target → key (b"": no string there)

    def location_country(self, record: int) -> str | _Unknown | None:
        """``record["country"]["iso_code"]`` of the record a tree walk ended at (``record`` >
        node_count), None where the record has none, UNKNOWN where the walk stops."""
        try:
            country = self._find(record + self._record_base, b"country")
            if not isinstance(country, int):
                return country  # absent (None) or UNKNOWN
            kind, target, _ = self._control(country)
            if kind != _POINTER:
                return self._iso_code(country)
            shared = self._start + target  # the country map many records point to: read once
            if shared not in self._countries:
                self._countries[shared] = self._iso_code(country)
            return self._countries[shared]
        except (IndexError, ValueError):  # past the end of the file, or not UTF-8: the reader decides
            return UNKNOWN

    def _iso_code(self, offset: int) -> str | _Unknown | None:
        """The ``iso_code`` string of the country value at ``offset`` (None if it is no map or has none)."""
        code = self._find(offset, b"iso_code")
        if not isinstance(code, int):
            return code
        kind, size, at = self._target(code)
        if kind is UNKNOWN:
            return UNKNOWN
        return self._bytes(at, size).decode() if kind == _STRING else None

    def _find(self, offset: int, key: bytes) -> int | _Unknown | None:
        """Offset of the value of ``key`` in the map at ``offset`` (a pointer to one is followed):
        None when the value there is no map or lacks the key."""
        kind, size, at = self._target(offset)
        if kind is UNKNOWN:
            return UNKNOWN
        if kind != _MAP:
            return None  # the reader's answer is no dict: no country
        for _ in range(size):
            name, at = self._key(at)
            if name is None:
                return UNKNOWN
            if name == key:
                return at
            skipped = self._skip(at)
            if skipped is None:
                return UNKNOWN
            at = skipped
        return None

    def _key(self, offset: int) -> tuple[bytes | None, int]:
        """(a map key's bytes, offset after it): a string, inline or through a pointer."""
        kind, size, at = self._control(offset)
        if kind == _POINTER:  # keys are shared strings in MaxMind's builds: each read once
            name = self._keys.get(size)
            if name is None:
                target_kind, length, start = self._control(self._start + size)
                name = self._keys[size] = self._bytes(start, length) if target_kind == _STRING else b""
            return name or None, at
        if kind != _STRING:
            return None, at + size
        return self._bytes(at, size), at + size

    def _bytes(self, at: int, size: int) -> bytes:
        if at + size > len(self._buf):
            raise IndexError("a string past the end")
        return self._buf[at : at + size]

    def _target(self, offset: int) -> tuple[int | _Unknown, int, int]:
        """(type, size, payload offset) of the value at ``offset``, a pointer followed once."""
        kind, size, at = self._control(offset)
        if kind == _POINTER:
            kind, size, at = self._control(self._start + size)
            if kind == _POINTER:  # a pointer to a pointer is invalid (spec): the reader says so
                return UNKNOWN, 0, 0
        if kind in (_CONTAINER, _END) or kind > 15:
            return UNKNOWN, 0, 0
        return kind, size, at

    def _skip(self, offset: int) -> int | None:
        """The offset after the value at ``offset``; None for a map or an array (not stepped over)."""
        kind, size, at = self._control(offset)
        if kind == _POINTER:
            return at
        if kind in (_MAP, _ARRAY, _CONTAINER, _END) or kind > 15:
            return None
        return at if kind == _BOOLEAN else at + size  # a boolean's value is its size

    def _control(self, offset: int) -> tuple[int, int, int]:
        """(type, size, offset after the control bytes); for a pointer the size is its target."""
        buf = self._buf
        ctrl = buf[offset]
        offset += 1
        kind = ctrl >> 5
        if kind == _POINTER:
            width = ((ctrl >> 3) & 3) + 1
            value = int.from_bytes(buf[offset : offset + width], "big")
            if width < 4:
                value |= (ctrl & 7) << (8 * width)
            if offset + width > len(buf):
                raise IndexError("pointer past the end")
            return kind, value + _POINTER_BIAS[width - 1], offset + width
        if kind == 0:
            kind = buf[offset] + 7
            offset += 1
        size = ctrl & 0x1F
        if size >= 29:
            width = size - 28
            if offset + width > len(buf):
                raise IndexError("size past the end")
            size = (29, 285, 65821)[width - 1] + int.from_bytes(buf[offset : offset + width], "big")
            offset += width
        return kind, size, offset
