"""Every third-party log under tests/data/third_party/logs: no crash, nothing lost, no raw IP at rest."""

from __future__ import annotations

import base64
import binascii
import contextlib
import ipaddress
import re
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from pipeline.privacy.mask import ClientMasker
from tests.conftest import (
    THIRD_PARTY_LOGS,
    ingest_paths,
    ip_tokens,
    store_rejects,
    store_rows,
    third_party_log_files,
)
from tests.ingest.test_formats import DETECTED


def non_blank_lines(path: Path) -> int:
    import gzip

    if path.suffix == ".gz":
        with gzip.open(path) as f:
            data = f.read()
    else:
        data = path.read_bytes()
    return sum(1 for line in data.split(b"\n") if line.rstrip(b"\r"))


@pytest.fixture(scope="module")
def shared_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    store = tmp_path_factory.mktemp("third_party") / "store"
    # Real logs with junk on purpose: the reject-rate rule would fail several of them (it is tested
    # in test_never_silent.py); here only an unrecognised format may fail a source.
    report = ingest_paths(store, third_party_log_files(), max_reject_rate=1.0)
    return store, report


def test_every_file_ingests_and_every_line_is_a_row_or_a_reject(shared_store: tuple[Path, object]) -> None:
    store, report = shared_store
    by_path = {s.path: s for s in report.sources}  # type: ignore[attr-defined]
    for path in third_party_log_files():
        src = by_path[str(path)]
        fmt, recognised = DETECTED[str(path.relative_to(THIRD_PARTY_LOGS))]
        assert src.format == fmt, path
        # a file auto-detection is not sure of fails its source (exit 10): never silently
        assert (src.error is None) == recognised, (path, src.error)
        # header lines (W3C #Fields:) are the format's own: neither rows nor rejects, but counted
        assert src.rows + sum(src.rejects.values()) + src.directives == src.lines == non_blank_lines(path), (
            path
        )
    rows, rejects = store_rows(store), store_rejects(store)
    assert len(rows) == report.rows and len(rejects) == sum(report.rejects.values())  # type: ignore[attr-defined]
    assert report.rows > 30_000  # type: ignore[attr-defined]
    assert {r["reason"] for r in rejects} >= {"unparseable"}


def test_rejects_carry_source_offset_and_reason(shared_store: tuple[Path, object]) -> None:
    store, _ = shared_store
    rejects = store_rejects(store)
    bad = [r for r in rejects if str(r["source"]).endswith("logfile_bad_access_log.0")]
    assert len(bad) == 1
    raw = Path(str(bad[0]["source"])).read_bytes()
    line = raw[int(bad[0]["offset"]) :].split(b"\n", 1)[0].decode()
    assert "[20/Jul/2009:22:59:29 +0000]" in line and bad[0]["reason"] == "unparseable"
    assert bad[0]["line"] == line.replace("192.168.202.254", "192.168.202.0/24")


def written_texts(store: Path) -> list[tuple[Path, str]]:
    """Every byte the tool wrote, as text; Parquet also decoded (its pages are compressed)."""
    out = []
    for f in sorted(p for p in store.rglob("*") if p.is_file()):
        out.append((f, f.read_bytes().decode("latin-1")))
        if f.suffix == ".parquet":
            table = pq.read_table(f)
            out.append((f, "\n".join(str(v) for col in table.columns for v in col.to_pylist())))
    return out


def with_payloads(text: str) -> str:
    """The text and what its base64 runs decode to, at each alignment: an address in a payload (a
    log4shell probe's Base64/KGN1cmwg…) is readable by anyone who decodes it."""
    out = [text]
    for run in re.findall(r"[A-Za-z0-9+/]{12,}", text):
        for k in range(4):
            chunk = run[k:][: (len(run) - k) // 4 * 4]
            with contextlib.suppress(binascii.Error, ValueError):
                out.append(base64.b64decode(chunk).decode("latin-1"))
    return "\n".join(out)


def test_no_raw_client_ip_at_rest(shared_store: tuple[Path, object]) -> None:
    store, _ = shared_store
    masker = ClientMasker()
    inputs: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    vhost_literals: set[str] = set()
    for path in third_party_log_files():
        text = path.read_bytes().decode("latin-1")
        inputs |= ip_tokens(with_payloads(text))
        vhost_literals |= set(re.findall(r"(?m)^([0-9.]+)(?::[0-9]+)? ", text))
    # An address whose host bits are already zero *is* its own network: storing it reveals nothing.
    secret = {a for a in inputs if masker.network_of(a).split("/")[0] != str(a)}
    assert len(secret) > 2000
    # A server address used as the virtual host name (Host: 1.128.3.4) is the server's, not a visitor's.
    domains = {r["domain"] for r in store_rows(store)}
    server_ips = {d for d in domains if d and re.fullmatch(r"[0-9.]+", d)}
    assert server_ips <= vhost_literals
    secret = {a for a in secret if str(a) not in server_ips}
    leaks = []
    for f, text in written_texts(store):
        # Any textual form (compressed, exploded, mapped, upper-case) parses back to the same address.
        for addr in ip_tokens(with_payloads(text)) & secret:
            leaks.append((str(f.relative_to(store)), str(addr)))
    assert leaks == []


def test_rows_have_truncated_networks_only(shared_store: tuple[Path, object]) -> None:
    store, _ = shared_store
    for row in store_rows(store):
        net = row["client_net"]
        if net is not None:
            parsed = ipaddress.ip_network(str(net))  # strict: host bits must be zero
            assert parsed.prefixlen == (24 if parsed.version == 4 else 48)
