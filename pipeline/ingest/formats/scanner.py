"""The native line scanner: ``native/scan.wasm`` (from ``native/scan.c``) run by wasmtime.

Apache's common, combined and vhost_combined lines and nginx's main are read in one pass per line
instead of a regex pass per field group: a 134k-line block in ~60 ms of WebAssembly, 95-120 ms with
its columns built (one block alone / thread CPU in a whole run), against ~190 ms for the regex
stages (the cut, the head regex, the tail slice, the checks). The module is compiled once to
WebAssembly and committed (``scripts/build_scanner.py`` rebuilds it reproducibly), so nothing is
compiled on the user's machine and one 7 KB file serves every platform wasmtime has wheels for.

It only ever *accepts* lines (a subset of what the format's fast regex accepts, with the same
captures); every line it refuses goes to the regex stages as before, and when wasmtime cannot be
loaded at all (or ``HOSTLOGS_SCANNER=off``) the regex stages read everything: same rows, slower.
Each thread has its own wasm instance (a store is single-threaded); wasmtime releases the GIL during
the call, so the ingest workers scan in parallel. The module also keys a batch's new clients
(``keyed_digests``: the pseudonyms' HMAC-SHA256, registered with ``privacy.digests`` by ingest).
"""

from __future__ import annotations

import atexit
import ctypes
import hmac
import os
import threading
import weakref
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

MODULE_PATH = Path(__file__).with_name("native") / "scan.wasm"
_PROBE_KEY = bytes(range(32))  # (checks each instance's keying against Python's hmac)
# The string fields scan.c writes views of, in its order (enum F_*); forwarded_for only with XFF.
FIELDS = (
    "domain", "client", "method", "path", "query", "protocol", "referrer", "user_agent", "forwarded_for",
)  # fmt: skip
# layout flags (scan.c): "%v:%p " first; ' "%{Referer}i" "%{User-Agent}i"' after the bytes; with
# TAIL, ' "%{X-Forwarded-For}i"' after the user agent
VHOST, TAIL, XFF = 1, 2, 4
_PAD = 24  # bytes after the copied block: a '\n' sentinel and the 8-byte loads' overrun
_MAX_BYTES = 1 << 30  # wasm32 addresses 4 GiB and takes 32-bit sizes; blocks are 32 MiB by default
CHUNK_LINES = 32_768  # lines per call: ~4 MB of views, the bytes of ~8 MB of lines


@dataclass(frozen=True)
class Scanned:
    """The scanner's reading of n lines: which it accepted, and their values (in line order)."""

    ok: np.ndarray  # bool, one per line given
    ts: np.ndarray  # int64 epoch microseconds UTC, one per accepted line
    status: np.ndarray  # int32
    bytes: np.ndarray  # int64, -1 for '-'
    columns: dict[str, pa.Array | pa.ChunkedArray]  # fields_of(flags) as arrow string views (nulls: absent)


def fields_of(flags: int) -> tuple[str, ...]:
    """The fields the scanner outputs for a layout (scan.c's fields_of)."""
    return FIELDS if flags & XFF else FIELDS[:-1]


class _Runtime:
    """The compiled module, shared by all threads; one instance per thread."""

    def __init__(self) -> None:
        import wasmtime  # (38 ms): loaded by the first batch that can use it, never by queries

        self.engine = wasmtime.Engine()
        self.module = wasmtime.Module.from_file(self.engine, str(MODULE_PATH))
        self.local = threading.local()
        self.wasmtime = wasmtime
        # weakly: a store lives as long as its thread (the ingest pool's workers come and go)
        self.stores: weakref.WeakSet[Any] = weakref.WeakSet()
        atexit.register(self.close)

    def instance(self) -> _Instance:
        inst: _Instance | None = getattr(self.local, "instance", None)
        if inst is None:
            inst = self.local.instance = _Instance(self)
            with _lock:
                self.stores.add(inst.store)
        return inst

    def close(self) -> None:
        """Free wasmtime's objects before interpreter shutdown, while its bindings still exist (their
        finalizers fail noisily once module globals are gone)."""
        for store in list(self.stores):
            store.close()
        self.module.close()
        self.engine.close()


class _Instance:
    def __init__(self, runtime: _Runtime) -> None:
        self.wasmtime = wasmtime = runtime.wasmtime
        self.store = wasmtime.Store(runtime.engine)
        exports = wasmtime.Instance(self.store, runtime.module, []).exports(self.store)
        try:
            self.memory: Any = exports["memory"]
            self.reset, self.alloc, self.scan = exports["reset"], exports["alloc"], exports["scan"]
            self.compact, self.hmac8 = exports["compact"], exports["hmac8"]
        except KeyError as exc:  # an older or foreign module: off, as after a trap (found by review)
            raise wasmtime.WasmtimeError(f"the module has no export {exc}") from None
        # Keyed digests become pseudonyms that must link with every other run's: a module that keys
        # wrongly (damaged, foreign) is off before it keys anything (found by review)
        probe = b"198.51.100.7"
        got = self.keyed(_PROBE_KEY, pa.py_buffer(probe), np.array([0, len(probe)], dtype=np.uint32))
        want = int.from_bytes(hmac.digest(_PROBE_KEY, probe, "sha256")[:8], "big", signed=True)
        if got is None or got.tolist() != [want]:
            raise wasmtime.WasmtimeError("the module's keyed digests are not HMAC-SHA256")

    def keyed(self, key: bytes, data: pa.Buffer | None, offsets: np.ndarray) -> np.ndarray | None:
        """``hmac8`` of the texts ``data[offsets[i]:offsets[i + 1]]`` (offsets from 0, uint32)."""
        n, size = len(offsets) - 1, int(offsets[-1]) if len(offsets) else 0
        if len(key) > 64:
            return None
        mem = self._regions({"key": len(key), "data": size, "offsets": 4 * (n + 1), "out": 8 * n})
        if mem is None:
            return None
        mem.put_array("key", np.frombuffer(key, dtype=np.uint8))
        if data is not None and size:
            mem.put("data", data.address, size)
        mem.put_array("offsets", np.asarray(offsets, dtype=np.uint32))
        at = mem.at
        self.hmac8(self.store, at["key"], len(key), at["data"], at["offsets"], n, at["out"])
        return np.frombuffer(mem.buffer("out", 8 * n), dtype=">i8").astype(np.int64)

    def _regions(self, sizes: dict[str, int]) -> _Memory | None:
        """One allocation for all of a call's regions, each 16-byte aligned (a wasmtime call costs
        ~0.1 ms of Python, holding the GIL, whatever it does: each region had been one). None when it
        cannot be had: 32-bit sizes (a larger one would wrap) or out of wasm memory."""
        offsets, total = {}, 0
        for name, region in sizes.items():
            offsets[name], total = total, total + (max(region, 1) + 15) // 16 * 16
        if total >= 1 << 31:
            return None
        self.reset(self.store)
        base = self.alloc(self.store, total)
        if not base:
            return None
        at = {name: base + offset for name, offset in offsets.items()}
        if any(at[name] + region > self.memory.data_len(self.store) for name, region in sizes.items()):
            raise self.wasmtime.WasmtimeError("the module allocated outside its memory")  # never write there
        return _Memory(ctypes.addressof(self.memory.data_ptr(self.store).contents), at)  # after growth

    def run(self, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray, flags: int) -> Scanned | None:
        """The lines in chunks of CHUNK_LINES: the instance's memory (which never shrinks) holds one
        chunk's bytes and outputs, not a block's (measured: 83 MB a thread for 32 MiB blocks)."""
        parts = []
        for at in range(0, len(starts), CHUNK_LINES):
            part = self._chunk(data, starts[at : at + CHUNK_LINES], ends[at : at + CHUNK_LINES], flags)
            if part is None:
                return None
            parts.append(part)
        if len(parts) == 1:
            return parts[0]
        columns = {name: pa.chunked_array([p.columns[name] for p in parts]) for name in fields_of(flags)}
        ok, ts, status, sent = (
            np.concatenate([getattr(p, x) for p in parts]) for x in ("ok", "ts", "status", "bytes")
        )
        return Scanned(ok, ts, status, sent, columns)

    def _chunk(self, data: pa.Buffer, starts: np.ndarray, ends: np.ndarray, flags: int) -> Scanned | None:
        lo, hi = int(starts[0]), int(ends[-1])  # the bytes of these lines (and of any left out between)
        fields = fields_of(flags)
        size, n, nf = hi - lo, len(starts), len(fields)
        vb = (n + 7) // 8  # bytes of one validity bitmap
        sizes = {"buf": size + _PAD, "starts": 4 * n, "ends": 4 * n, "ok": n, "ts": 8 * n, "status": 4 * n}
        sizes |= {"bytes": 8 * n, "views": 16 * n * nf, "valid": vb * nf, "long": 4 * nf}
        sizes["out"] = size + 8 * nf  # the long values compacted: at most the lines, + slack per field
        mem = self._regions(sizes)
        if mem is None:
            return None  # the regex stages read this batch
        at = mem.at
        mem.put("buf", data.address + lo, size)
        ctypes.memset(mem.base + at["buf"] + size, 10, _PAD)  # '\n' ends the last line and every search
        for name, values in (("starts", starts), ("ends", ends)):
            mem.put_array(name, (values - lo).astype(np.uint32))
        outputs = [at[x] for x in ("ok", "ts", "status", "bytes", "views", "valid", "long")]
        k = self.scan(self.store, at["buf"], n, at["starts"], at["ends"], flags, *outputs)
        self.compact(self.store, at["buf"], n, k, nf, at["views"], at["long"], at["out"])
        values = mem.buffer("out", int(mem.get("long", np.uint32, nf).sum()) + 8 * nf)
        columns = {}
        for f, name in enumerate(fields):
            views = mem.buffer("views", 16 * k, skip=16 * n * f)
            valid = mem.buffer("valid", (k + 7) // 8, skip=vb * f)
            columns[name] = pa.Array.from_buffers(pa.string_view(), k, [valid, views, values])
        ok = mem.get("ok", np.uint8, n).view(bool)
        ts, status = mem.get("ts", np.int64, k), mem.get("status", np.int32, k)
        return Scanned(ok, ts, status, mem.get("bytes", np.int64, k), columns)


@dataclass(frozen=True)
class _Memory:
    """The regions of one call in the instance's linear memory (valid until it grows again)."""

    base: int
    at: dict[str, int]  # each region's address in the module's memory (from its base)

    def put(self, name: str, address: int, size: int) -> None:
        ctypes.memmove(self.base + self.at[name], address, size)

    def put_array(self, name: str, values: np.ndarray) -> None:
        """An array's bytes, the array referenced while they are copied (found in review: the
        address of a temporary array had been copied after the array was freed)."""
        values = np.ascontiguousarray(values)
        ctypes.memmove(self.base + self.at[name], values.ctypes.data, values.nbytes)

    def get(self, name: str, dtype: type[np.generic], count: int, skip: int = 0) -> np.ndarray:
        """A copy (the next call reuses the memory) of ``count`` values at the region plus ``skip`` bytes."""
        size = np.dtype(dtype).itemsize * count
        return np.frombuffer(self.buffer(name, size, skip), dtype=dtype)

    def buffer(self, name: str, size: int, skip: int = 0) -> pa.Buffer:
        """A copy in Arrow's memory pool, which reuses its pages (fresh numpy arrays of this size are
        mapped and faulted in anew each time: +10 % system time measured)."""
        out = pa.allocate_buffer(size)
        ctypes.memmove(out.address, self.base + self.at[name] + skip, size)
        return out


_lock = threading.Lock()
_runtime: _Runtime | None = None
_problem: str | None = None


def status() -> str:
    """What read the Apache fast formats in this process: "wasm", "unused" (nothing asked yet), or
    "off (why)": wasmtime missing or incompatible, a trap (a scanner bug), or ``HOSTLOGS_SCANNER=off``.
    Reported by ``hostlogs ingest``; never loads anything itself."""
    if _disabled():
        return "off (HOSTLOGS_SCANNER=off)"
    if _problem is not None:
        return f"off ({_problem})"
    return "wasm" if _runtime is not None else "unused"


def _disabled() -> bool:
    return os.environ.get("HOSTLOGS_SCANNER", "").lower() in ("off", "0", "no", "false")


def _load() -> _Runtime | None:
    global _runtime, _problem
    with _lock:
        if _runtime is None and _problem is None:
            try:
                _runtime = _Runtime()
            except Exception as exc:  # no wheel for this platform, an incompatible wasmtime, a bad file
                _problem = _describe(exc)
        return _runtime


def scan(data: pa.Buffer, starts: np.ndarray, ends: np.ndarray, flags: int) -> Scanned | None:
    """Scan the lines [starts[i], ends[i]) of ``data`` (each followed by its '\\n' or '\\r\\n', or by
    the end of ``data``). None when the scanner is unavailable: the caller reads the lines otherwise."""
    global _problem
    if len(starts) and not (starts.min() >= 0 and (starts <= ends).all() and ends.max() <= data.size):
        raise ValueError("line bounds outside the buffer")  # the caller's bug: never read outside it
    if not len(starts) or data.size > _MAX_BYTES or _disabled() or _problem is not None:
        return None
    runtime = _load()
    if runtime is None:
        return None
    try:
        return runtime.instance().run(data, starts, ends, flags)
    except (runtime.wasmtime.Trap, runtime.wasmtime.WasmtimeError) as exc:
        # a trap is a scanner bug: the regex stages read this batch and the rest of the run, and the
        # run's report says so
        with _lock:
            _problem = _describe(exc)
        return None


KEYED_TEXTS = 1 << 18  # texts per hmac8 call: the instance's memory (never shrinking) stays small


def keyed_digests(key: bytes, texts: pa.Array | pa.ChunkedArray) -> np.ndarray | None:
    """``privacy.digests.pseudonym_values(key, texts)`` computed by the module, outside the GIL: the
    first 8 bytes of HMAC-SHA256(key, text) of each text as a signed big-endian int64. None when the
    scanner is unavailable (the caller computes them itself). ``texts`` holds no null."""
    global _problem
    if _disabled() or _problem is not None:
        return None
    if texts.null_count:
        raise ValueError("a null text to key")  # the caller's bug: it keys present addresses only
    if not len(texts):
        return np.zeros(0, dtype=np.int64)
    runtime = _load()
    if runtime is None:
        return None
    strings = pa.concat_arrays(texts.chunks) if isinstance(texts, pa.ChunkedArray) else texts
    strings = strings.cast(pa.large_string())  # (64-bit offsets: any number of texts)
    parts = []
    try:
        for at in range(0, len(strings), KEYED_TEXTS):
            part = strings.slice(at, KEYED_TEXTS)
            offsets = np.frombuffer(part.buffers()[1], dtype=np.int64)
            bounds = offsets[part.offset : part.offset + len(part) + 1]
            lo = int(bounds[0]) if len(bounds) else 0
            data = part.buffers()[2]
            got = runtime.instance().keyed(key, data.slice(lo) if data is not None else None, bounds - lo)
            if got is None:
                return None
            parts.append(got)
    except (runtime.wasmtime.Trap, runtime.wasmtime.WasmtimeError) as exc:
        with _lock:
            _problem = _describe(exc)
        return None
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def _describe(exc: Exception) -> str:
    """One line for the report: a trap's cause ("wasm trap: …") rather than its backtrace header."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    cause = next((ln for ln in lines if ln.startswith("wasm trap:")), lines[0] if lines else "")
    return f"{type(exc).__name__}: {cause}"[:200]
