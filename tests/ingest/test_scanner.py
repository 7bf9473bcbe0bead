"""The native line scanner's plumbing: the committed module is its source's build, it runs, it is
used only where it applies, and ingest without it stores the same rows.

Its output is held to the regex stages' in tests/ingest/test_scanner_parity.py.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from pipeline.ingest.formats import apache, resolve, scanner
from pipeline.ingest.formats.apache_scan import SHAPES
from pipeline.ingest.formats.scanner import TAIL, VHOST, XFF
from tests.conftest import ROOT, THIRD_PARTY_LOGS, ingest_paths, store_rejects, store_rows

NATIVE = ROOT / "pipeline" / "ingest" / "formats" / "native"
LINE = b'www.example.test:443 192.0.2.7 - - [06/Feb/2026:12:00:01 +0100] "GET /a?b=1 HTTP/1.1" 200 5 "-" "curl/8"'


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_committed_module_is_the_build_of_the_committed_source() -> None:
    """scan.lock pins both: editing scan.c without `python scripts/build_scanner.py` fails here (the
    script's --check rebuilds with the pinned compiler and compares bytes)."""
    lock = json.loads((NATIVE / "scan.lock").read_text())
    assert lock["source_sha256"] == _sha256(NATIVE / "scan.c"), "scan.c changed: run scripts/build_scanner.py"
    assert lock["module_sha256"] == _sha256(NATIVE / "scan.wasm")
    assert lock["compiler"].startswith("ziglang==")


def test_the_module_is_shipped_with_the_package() -> None:
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert "ingest/formats/native/scan.wasm" in pyproject
    assert "wasmtime" in pyproject


def _scan(lines: list[bytes], flags: int = VHOST | TAIL) -> scanner.Scanned | None:
    data = b"\n".join(lines) + b"\n"
    starts, pos = [], 0
    for line in lines:
        starts.append(pos)
        pos += len(line) + 1
    start = np.array(starts, dtype=np.int64)
    return scanner.scan(pa.py_buffer(data), start, start + np.array([len(x) for x in lines]), flags)


def test_a_last_line_without_its_newline_is_read_from_its_own_bytes_only() -> None:
    """The scanner copies a chunk's bytes and ends them with its own newline: never the bytes after
    the buffer it was given (found by review: one allocation for all regions, written with a loop
    variable that shadowed the chunk's size, copied 64 bytes past it, and the line took them in)."""
    for end in (b"", b"\n"):
        backing = pa.py_buffer(LINE + end + b' "smuggled"' * 20)  # what follows in memory
        data = backing.slice(0, len(LINE) + len(end))
        start = np.zeros(1, dtype=np.int64)
        scanned = scanner.scan(data, start, start + len(LINE), VHOST | TAIL)
        assert scanned is not None and scanned.ok.tolist() == [True]
        assert scanned.columns["user_agent"].to_pylist() == ["curl/8"]


def test_a_line_is_read_into_values_and_views() -> None:
    scanned = _scan([LINE, b"not a log line", LINE.replace(b"/a?b=1", b"/" + b"x" * 40)])
    assert scanned is not None and scanner.status() == "wasm"
    assert scanned.ok.tolist() == [True, False, True]
    assert scanned.ts.tolist() == [1770375601000000] * 2  # 12:00:01 +0100 is 11:00:01 UTC
    assert scanned.status.tolist() == [200, 200] and scanned.bytes.tolist() == [5, 5]
    values = {name: col.to_pylist() for name, col in scanned.columns.items()}
    assert values["domain"] == ["www.example.test"] * 2
    assert values["client"] == ["192.0.2.7"] * 2
    assert values["path"] == ["/a", "/" + "x" * 40]  # inline (≤ 12 bytes) and compacted long values
    assert values["query"] == ["b=1", None]
    assert values["referrer"] == [None, None]  # "-" is no referrer
    assert values["user_agent"] == ["curl/8", "curl/8"]


def test_off_switch_and_report(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOSTLOGS_SCANNER", "off")
    assert _scan([LINE]) is None
    assert scanner.status() == "off (HOSTLOGS_SCANNER=off)"


# A module with the scanner's exports whose scan traps (WebAssembly text, compiled by wasmtime).
TRAPPING = """(module (memory (export "memory") 1)
  (func (export "reset")) (func (export "alloc") (param i32) (result i32) i32.const 1024)
  (func (export "scan") (param i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32 i32) (result i32) unreachable)
  (func (export "compact") (param i32 i32 i32 i32 i32 i32))
  (func (export "hmac8") (param i32 i32 i32 i32 i32 i32) unreachable))"""


def test_a_trap_falls_back_and_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A fault in the scanner loses no batch: scan() answers None, the regex stages read the lines,
    and the run's report names the fault's cause, not its backtrace header."""
    module = tmp_path / "scan.wasm"
    module.write_text(TRAPPING)
    monkeypatch.setattr(scanner, "MODULE_PATH", module)
    monkeypatch.setattr(scanner, "_runtime", None)  # all three restored after the test: others scan
    monkeypatch.setattr(scanner, "_problem", None)
    assert _scan([LINE]) is None
    assert scanner.status() == "off (Trap: wasm trap: wasm `unreachable` instruction executed)"
    assert _scan([LINE]) is None  # the rest of the run uses the regex stages
    assert scanner.keyed_digests(b"k", pa.array(["192.0.2.7"])) is None  # and the pseudonym loop
    log = tmp_path / "a.log"
    log.write_bytes(LINE + b"\n")
    report = ingest_paths(tmp_path / "store", [log], fmt="vhost_combined")
    assert report.rows == 1 and report.scanner.startswith("off (Trap")


def test_a_module_allocating_outside_its_memory_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The host never copies into memory the module does not have (a corrupt or hostile module)."""
    module = tmp_path / "scan.wasm"
    module.write_text(TRAPPING.replace("i32.const 1024", "i32.const 65530"))
    monkeypatch.setattr(scanner, "MODULE_PATH", module)
    monkeypatch.setattr(scanner, "_runtime", None)
    monkeypatch.setattr(scanner, "_problem", None)
    assert _scan([LINE]) is None
    assert scanner.status() == "off (WasmtimeError: the module allocated outside its memory)"
    monkeypatch.setattr(scanner, "_problem", None)  # keying checks its regions too
    assert scanner.keyed_digests(b"k", pa.array(["192.0.2.7"] * 2000)) is None
    assert scanner.status() == "off (WasmtimeError: the module allocated outside its memory)"


def test_line_bounds_outside_the_buffer_are_refused() -> None:
    bad = np.array([1 << 31], dtype=np.int64)
    with pytest.raises(ValueError, match="outside the buffer"):
        scanner.scan(pa.py_buffer(LINE + b"\n"), bad, bad + 5, VHOST | TAIL)
    with pytest.raises(ValueError, match="outside the buffer"):
        scanner.scan(pa.py_buffer(LINE), np.array([0]), np.array([len(LINE) + 1]), VHOST | TAIL)


@pytest.mark.parametrize("flags", [VHOST | TAIL, TAIL | XFF])
def test_blocks_are_scanned_in_chunks(flags: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lines over several calls give what one call gives (the instance's memory holds a chunk), with
    eight fields and with nginx_main's ninth (X-Forwarded-For)."""
    line = LINE if flags & VHOST else LINE.split(b" ", 1)[1] + b' "198.51.100.7, 10.0.0.1"'
    lines = [line.replace(b"/a?b=1", f"/{i}".encode() * (i % 7 + 1)) for i in range(50)] + [b"junk"]
    lines[3] = lines[3].replace(b'"198.51.100.7, 10.0.0.1"', b'"-" "extra"')
    whole = _scan(lines, flags)
    monkeypatch.setattr(scanner, "CHUNK_LINES", 7)
    chunked = _scan(lines, flags)
    assert whole is not None and chunked is not None
    assert whole.ok.sum() == 50 and set(whole.columns) == set(scanner.fields_of(flags))
    if flags & XFF:
        forwarded = whole.columns["forwarded_for"].to_pylist()
        assert forwarded[:4] == ["198.51.100.7, 10.0.0.1"] * 3 + ["-"]
    assert chunked.ok.tolist() == whole.ok.tolist() and chunked.ts.tolist() == whole.ts.tolist()
    assert chunked.columns.keys() == whole.columns.keys()
    for name in whole.columns:
        assert chunked.columns[name].to_pylist() == whole.columns[name].to_pylist()


@pytest.mark.parametrize(
    ("spec", "flags"),
    [
        ('%h %l %u %t "%r" %>s %b', 0),
        ('%h %l %u %t "%r" %s %O "%{Referer}i" "%{User-Agent}i"', TAIL),  # same regex, other spelling
        ('%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"', VHOST | TAIL),
        ('%v:%p %h %l %u %t "%r" %>s %O', VHOST),
        ('%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"', TAIL | XFF),
        ('%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"', None),
        ('%h %l %u %t "%r" %>s %b "%{X-Forwarded-For}i"', None),
        ('%h %l %u %t "%r" %>s %b %D', None),
        ('%v %h %l %u %t "%r" %>s %b', None),  # no port: another domain pattern
        ('%h %l %u [%{%d/%b/%Y %T}t] "%r" %>s %b', None),
    ],
)
def test_scanned_formats_are_exactly_the_shapes_it_implements(spec: str, flags: int | None) -> None:
    assert apache.compile_format(spec).scan_flags == flags


def test_named_formats() -> None:
    assert resolve("vhost_combined").scan_flags == VHOST | TAIL
    assert resolve("combined").scan_flags == TAIL
    assert resolve("common").scan_flags == 0
    assert resolve("nginx_main").scan_flags == TAIL | XFF
    assert resolve("syslog:combined").inner.scan_flags == TAIL  # type: ignore[attr-defined]
    assert set(SHAPES.values()) == {0, TAIL, VHOST, VHOST | TAIL, TAIL | XFF}


def _strip_run_columns(rows: list[dict[str, object]]) -> list[dict[str, object]]:
    """Rows without what differs between two stores of the same lines: pseudonyms (each store has its
    own keys), ingest times and batch ids."""
    varying = {"client_id", "ingested_at", "batch"}
    return sorted(
        ({k: v for k, v in r.items() if k not in varying} for r in rows),
        key=lambda r: sorted(map(str, r.items())),
    )


@pytest.mark.parametrize("fmt", ["auto", "combined"])
def test_ingest_with_and_without_the_scanner_store_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Every real combined-style log the repository carries, ingested end to end both ways."""
    logs = [p for p in sorted(THIRD_PARTY_LOGS.rglob("*")) if p.is_file() and "apache" in str(p).lower()]
    logs += sorted((ROOT / "sample_logs").glob("*access*"))
    assert logs
    with_scanner = ingest_paths(tmp_path / "a", logs, fmt=fmt)
    assert with_scanner.scanner == "wasm"
    monkeypatch.setenv("HOSTLOGS_SCANNER", "off")
    without = ingest_paths(tmp_path / "b", logs, fmt=fmt)
    assert without.scanner.startswith("off")
    assert with_scanner.rows == without.rows and with_scanner.rejects == without.rejects
    assert _strip_run_columns(store_rows(tmp_path / "a")) == _strip_run_columns(store_rows(tmp_path / "b"))
    assert _strip_run_columns(store_rejects(tmp_path / "a")) == _strip_run_columns(
        store_rejects(tmp_path / "b")
    )


def test_a_process_that_scanned_exits_cleanly(tmp_path: Path) -> None:
    """wasmtime's objects are freed before interpreter shutdown: no 'Exception ignored' noise."""
    log = tmp_path / "a.log"
    log.write_bytes(LINE + b"\n")
    code = (
        "import sys; from pipeline.cli import main; "
        f"main(['ingest', {str(log)!r}, '--store', {str(tmp_path / 's')!r}, '--format', 'vhost_combined'])"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr
    assert "warning: line scanner" not in done.stdout


def test_the_off_switch_is_a_known_variable() -> None:
    """`hostlogs config check` warns of HOSTLOGS_… variables that are no setting, not of this one."""
    from pipeline.cli import _settings

    assert list(_settings._env_warnings({"HOSTLOGS_SCANNER": "off"})) == []
    assert list(_settings._env_warnings({"HOSTLOGS_SCANER": "off"}))  # a typo is still reported


@pytest.mark.parametrize(
    ("hmac8", "why"),
    [
        (
            '(func (export "hmac8") (param i32 i32 i32 i32 i32 i32))',
            "the module's keyed digests are not HMAC-SHA256",
        ),
        ("", "the module has no export 'hmac8'"),
    ],
)
def test_a_module_that_cannot_key_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hmac8: str, why: str
) -> None:
    """Found by review: a module whose keying does nothing gave wrong pseudonyms (they must link with
    every other run's), and one without the export crashed ingest. Each instance keys a probe first:
    such a module is off, and the regex stages and Python's hmac do the work."""
    module = tmp_path / "scan.wasm"
    module.write_text(
        TRAPPING.replace('(func (export "hmac8") (param i32 i32 i32 i32 i32 i32) unreachable)', hmac8)
    )
    monkeypatch.setattr(scanner, "MODULE_PATH", module)
    monkeypatch.setattr(scanner, "_runtime", None)
    monkeypatch.setattr(scanner, "_problem", None)
    assert scanner.keyed_digests(b"k", pa.array(["192.0.2.7"])) is None
    assert scanner.status() == f"off (WasmtimeError: {why})"
    assert _scan([LINE]) is None
