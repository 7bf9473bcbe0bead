"""The country read from a record's bytes (pipeline/privacy/geo_data.py) is the reader's, always.

Checked on every network of MaxMind's test databases, and on a database written here whose records
take every path of the walk: keys inline and through pointers, every scalar type to step over, sizes
of one to three extra bytes, a map to step over (the reader answers), a country that is no map, an
iso_code that is no string, no location country beside a registered or represented one.
"""

from __future__ import annotations

import struct
from pathlib import Path
from typing import Any

import maxminddb
import polars as pl
import pytest

from pipeline.privacy.geo import Geo, _iso_code
from pipeline.privacy.geo_data import UNKNOWN, DataSection
from pipeline.privacy.geo_tree import SearchTree
from tests.conftest import THIRD_PARTY

MM = THIRD_PARTY / "geoip" / "maxmind-test"
COUNTRY_DATABASES = ["GeoIP2-Country-Test", "GeoLite2-Country-Test", "GeoIP2-City-Test", "GeoLite2-City-Test"]


def readers_answer(reader: Any, address: str) -> str | None:
    try:
        record = reader.get(address)
    except (ValueError, RuntimeError):
        return None
    return _iso_code(record if isinstance(record, dict) else None)


@pytest.mark.parametrize("name", COUNTRY_DATABASES)
def test_every_network_of_the_test_databases(name: str) -> None:
    path = MM / f"{name}.mmdb"
    with maxminddb.open_database(str(path)) as reader:
        meta = reader.metadata()
        tree = SearchTree(path, meta.node_count, meta.record_size, meta.ip_version)
        data = DataSection(tree.buffer, tree.size, meta.node_count)
        addresses = [str(network.network_address) for network, _ in reader]
        records = tree.records(pl.Series(addresses))
        read = 0
        for address, record in zip(addresses, records, strict=True):
            answer = data.location_country(int(record))
            if answer is not UNKNOWN:
                read += 1
                assert answer == readers_answer(reader, address), address
        tree.close()
    assert read > len(addresses) // 2  # the walk, not the reader, answered most


# --- a database written here -----------------------------------------------------------------------


def control(kind: int, size: int) -> bytes:
    head, extra = (size, b"") if size < 29 else (29, bytes([size - 29])) if size < 285 else (
        (30, (size - 285).to_bytes(2, "big")) if size < 65821 else (31, (size - 65821).to_bytes(3, "big"))
    )  # fmt: skip
    if kind < 8:
        return bytes([kind << 5 | head]) + extra
    return bytes([head, kind - 7]) + extra


class Pointer:
    def __init__(self, target: int, width: int = 4) -> None:
        self.target, self.width = target, width


def encode(value: Any) -> bytes:
    if isinstance(value, Pointer):
        p, w = value.target, value.width
        if w == 1:
            return bytes([0x20 | p >> 8, p & 0xFF])
        if w == 2:
            p -= 2048
            return bytes([0x28 | p >> 16]) + (p & 0xFFFF).to_bytes(2, "big")
        return bytes([0x38]) + p.to_bytes(4, "big")
    if isinstance(value, bool):
        return control(14, int(value))
    if isinstance(value, str):
        return control(2, len(value.encode())) + value.encode()
    if isinstance(value, bytes):
        return control(4, len(value)) + value
    if isinstance(value, float):
        return control(3, 8) + struct.pack(">d", value)
    if isinstance(value, tuple):  # (type, int): uint16 5, uint32 6, int32 8, uint64 9, float 15
        kind, number = value
        if kind == 15:
            return control(15, 4) + struct.pack(">f", number)
        if kind == 8:
            return control(8, 4) + number.to_bytes(4, "big", signed=True)
        raw = number.to_bytes(8, "big").lstrip(b"\0")
        return control(kind, len(raw)) + raw
    if isinstance(value, list):
        return control(11, len(value)) + b"".join(encode(v) for v in value)
    assert isinstance(value, dict)
    return control(7, len(value)) + b"".join(encode(k) + encode(v) for k, v in value.items())


def crafted_database(path: Path, records: list[Any]) -> None:
    """An IPv4 database of 8 records, one per first three address bits (``records`` are values; a
    callable gets the offsets of shared values to point at)."""
    shared = [encode("country"), encode({"iso_code": "FR", "geoname_id": (6, 3017382)}), encode("x" * 3000)]
    shared.append(encode("DE"))  # past 2048: a pointer of 2 bytes
    data = b""
    offsets = []
    for item in shared:
        offsets.append(len(data))
        data += item
    leaves = []
    for record in records:
        leaves.append(len(data))
        data += encode(record(offsets) if callable(record) else record)
    node_count = 7  # a complete tree of depth 3: node i's children are 2i+1 and 2i+2
    children = [(2 * i + 1, 2 * i + 2) for i in range(3)]
    children += [tuple(node_count + 16 + leaves[2 * (i - 3) + b] for b in (0, 1)) for i in range(3, 7)]
    tree = b"".join(left.to_bytes(3, "big") + right.to_bytes(3, "big") for left, right in children)
    meta = {
        "binary_format_major_version": (5, 2), "binary_format_minor_version": (5, 0),
        "build_epoch": (9, 1_700_000_000), "database_type": "Crafted-Country", "description": {},
        "ip_version": (5, 4), "languages": [], "node_count": (6, node_count), "record_size": (5, 24),
    }  # fmt: skip
    path.write_bytes(tree + bytes(16) + data + b"\xab\xcd\xefMaxMind.com" + encode(meta))


RECORDS: list[Any] = [
    {"country": {"iso_code": "GB"}},  # inline
    lambda o: {"continent": Pointer(o[0], 1), Pointer(o[0]): Pointer(o[1])},  # key and value shared
    {"registered_country": {"iso_code": "US"}},  # no location country: null
    {"city": {"names": {"en": "Town"}}, "country": {"iso_code": "SE"}},  # a map to step over
    {
        "a": 1.5,
        "b": True,
        "c": (9, 2**40),
        "d": (8, -5),
        "e": (15, 0.5),
        "f": b"\x01" * 300,
        "g": "x" * 70_000,
        "h": (5, 7),
        "i": (6, 0),
        "country": {"iso_code": "NO", "names": []},
    },  # every scalar before the key, sizes of 1, 2 and 3 extra bytes (and a list after it)
    {"country": "GB", "represented_country": {"iso_code": "US"}},  # country no map: null
    lambda o: {"country": {"iso_code": (5, 12)}, "x": Pointer(o[3], 2)},  # iso_code no string: null
    lambda o: {"country": {"geoname_id": (6, 1), "iso_code": Pointer(o[3], 2)}},  # iso_code shared
]
EXPECTED = ["GB", "FR", None, "SE", "NO", None, None, "DE"]
ADDRESSES = [f"{32 * i + 1}.0.0.1" for i in range(8)]


def test_a_crafted_database_read_and_decoded_alike(tmp_path: Path) -> None:
    path = tmp_path / "crafted.mmdb"
    crafted_database(path, RECORDS)
    with maxminddb.open_database(str(path)) as reader:
        assert [readers_answer(reader, a) for a in ADDRESSES] == EXPECTED  # the database is as meant
    with Geo(path, None) as g:
        got = g.enrich(pl.Series([*ADDRESSES, None, "10.0.0.1", "::1"])).get_column("country").to_list()
        assert got == [*EXPECTED, None, "GB", None]
        assert g.lookups == 8 and g.errors == 0
    tree = SearchTree(path, 7, 24, 4)
    data = DataSection(tree.buffer, tree.size, 7)
    walked = [data.location_country(int(r)) for r in tree.records(pl.Series(ADDRESSES))]
    # a map to step over before the key (or no key after one): the reader answers
    assert walked == ["GB", "FR", UNKNOWN, UNKNOWN, "NO", None, None, "DE"]
    tree.close()


def test_a_record_cut_short_is_left_to_the_reader() -> None:
    record = encode({"country": {"iso_code": "GB"}})
    pointer = encode({"country": Pointer(5000)})
    for cut in (
        record[:-1],  # the string runs past the end
        record[:-3],  # its control byte is the last
        pointer[:-2],  # inside a pointer
        control(7, 1) + control(2, 300)[:1],  # a size's extra bytes missing
    ):
        assert DataSection(cut, 0, 0).location_country(0) is UNKNOWN, cut  # type: ignore[arg-type]
    assert DataSection(record, 0, 0).location_country(0) == "GB"  # type: ignore[arg-type]
    assert DataSection(record, 0, 0).location_country(len(record)) is UNKNOWN  # type: ignore[arg-type]
    assert DataSection(pointer, 0, 0).location_country(0) is UNKNOWN  # type: ignore[arg-type]
