"""A MaxMind DB search tree walked for many addresses at once: each address to the record it resolves to.

Why: decoding a record is what a GeoIP lookup costs (a GeoLite2-City record is a map of place names
in eight languages, subdivisions and coordinates: tens of µs in the C reader), while many clients
share one record (a city, an ISP). The tree walk gives every address the data-section offset of its
record exactly (the same bits the reader follows, so no guess at a network size), in numpy, a bit
position at a time for all addresses; ``geo.Geo`` then decodes each distinct record once, through
the reader, and keeps the answer by offset for the whole run.

Format (MaxMind DB spec, "Search Tree Section"): ``node_count`` nodes of two records each, 24, 28 or
32 bits per record; a record below ``node_count`` is the next node, equal to it means "no data",
above it points into the data section. IPv4 addresses in an IPv6 tree start at the node reached by
96 zero bits (``ipv4_start``), as the reader does.
"""

from __future__ import annotations

import mmap
import os
import socket
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl

NOT_FOUND = -1  # the tree has no data for the address
INVALID = -2  # not an address, an IPv6 address in an IPv4-only tree, or a corrupt tree

_IPV4 = r"^([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})\.([0-9]{1,3})$"


class SearchTree:
    """The search tree of one MaxMind DB file, memory-mapped read-only (shared with the page cache)."""

    def __init__(self, path: Path, node_count: int, record_size: int, ip_version: int) -> None:
        if record_size not in (24, 28, 32):
            raise ValueError(f"unknown record size {record_size}")
        with open(path, "rb") as f:
            self.identity = file_identity(os.fstat(f.fileno()))  # the file mapped
            self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._bytes = np.frombuffer(self._map, dtype=np.uint8)
        self.node_count = node_count
        self.record_size = record_size
        self.ip_version = ip_version
        if node_count * record_size // 4 + 16 > len(self._bytes):
            self.close()
            raise ValueError("the search tree extends past the end of the file")
        start = np.zeros(1, dtype=np.int64)
        if ip_version == 6:
            start = self._walk(start, lambda i: np.zeros(1, dtype=np.int64), 96)
        self._ipv4_start = int(start[0])

    @property
    def buffer(self) -> mmap.mmap:
        """The whole file, mapped: the data section follows the tree (``geo_data``)."""
        return self._map

    @property
    def size(self) -> int:
        """Bytes of the search tree section."""
        return self.node_count * self.record_size // 4

    def close(self) -> None:
        del self._bytes  # the array holds an export of the map: release it first
        self._map.close()

    def records(self, addresses: pl.Series) -> np.ndarray:
        """Per canonical address text: its record's offset (> node_count), NOT_FOUND or INVALID."""
        out = np.full(len(addresses), INVALID, dtype=np.int64)
        octets = addresses.str.extract_groups(_IPV4).struct.unnest().cast(pl.Int64, strict=False)
        v4 = octets.select(pl.all_horizontal(pl.all().is_not_null() & (pl.all() <= 255))).to_series()
        rows = np.flatnonzero(v4.to_numpy())
        if len(rows):
            quad = octets.filter(v4).to_numpy().astype(np.int64)
            value = (quad[:, 0] << 24) | (quad[:, 1] << 16) | (quad[:, 2] << 8) | quad[:, 3]
            start = np.full(len(rows), self._ipv4_start, dtype=np.int64)
            out[rows] = self._finish(self._walk(start, lambda i: (value >> (31 - i)) & 1, 32))
        others = np.flatnonzero(~v4.to_numpy() & addresses.is_not_null().to_numpy())
        if len(others):
            packed, ok = _packed_ipv6(addresses.gather(others).to_list())
            if self.ip_version == 4:  # an IPv4-only tree has no answer for IPv6 (the reader raises)
                out[others[ok]] = NOT_FOUND
                return out
            # bit i of each address read from its 16 bytes per step (unpacking all 128 bits up front
            # cost 1 KiB per address)
            walked = self._walk(
                np.zeros(len(others), dtype=np.int64),
                lambda i: ((packed[:, i >> 3] >> (7 - (i & 7))) & 1).astype(np.int64),
                128,
            )
            out[others[ok]] = self._finish(walked)[ok]
        return out

    def _walk(self, nodes: np.ndarray, bit: Callable[[int], np.ndarray], depth: int) -> np.ndarray:
        """Follow ``depth`` bits (``bit(i)``: bit i of every address) from ``nodes``, in place."""
        for i in range(depth):
            active = np.flatnonzero(nodes < self.node_count)
            if not len(active):
                break
            nodes[active] = self._read(nodes[active], bit(i)[active])
        return nodes

    def _read(self, nodes: np.ndarray, bits: np.ndarray) -> np.ndarray:
        """Record ``bits`` (0 left, 1 right) of each node, as the spec lays records out."""
        b = self._bytes
        if self.record_size == 24:
            at = nodes * 6 + bits * 3
            return _be(b, at, 3)
        if self.record_size == 32:
            at = nodes * 8 + bits * 4
            return _be(b, at, 4)
        base = nodes * 7  # 28 bits: the middle byte's high nibble is the left record's, low the right's
        middle = b[base + 3].astype(np.int64)
        high = np.where(bits == 1, middle & 0x0F, middle >> 4)
        record: np.ndarray = (high << 24) | _be(b, base + bits * 4, 3)
        return record

    def _finish(self, nodes: np.ndarray) -> np.ndarray:
        """Walk ends as record offsets, NOT_FOUND, or INVALID (a walk that never left the tree)."""
        out = np.where(nodes > self.node_count, nodes, INVALID)
        out[nodes == self.node_count] = NOT_FOUND
        return out


def file_identity(st: os.stat_result) -> tuple[int, int, int, int]:
    """Which file (and which version of it) a stat describes: a file renamed over another differs."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)


def _be(b: np.ndarray, at: np.ndarray, width: int) -> np.ndarray:
    """Big-endian unsigned integers of ``width`` bytes at offsets ``at``."""
    value: np.ndarray = b[at].astype(np.int64)
    for k in range(1, width):
        value = (value << 8) | b[at + k]
    return value


def _packed_ipv6(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """16 bytes per IPv6 text (zeros where it is not one) and which parsed."""
    packed = np.zeros((len(texts), 16), dtype=np.uint8)
    ok = np.zeros(len(texts), dtype=bool)
    for i, text in enumerate(texts):  # per distinct client new to the run: inet_pton is ~0.3 µs
        try:
            packed[i] = np.frombuffer(socket.inet_pton(socket.AF_INET6, text), dtype=np.uint8)
            ok[i] = True
        except (OSError, ValueError):
            pass
    return packed, ok
