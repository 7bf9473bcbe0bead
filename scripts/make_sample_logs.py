"""Regenerate ``sample_logs/`` deterministically.

Usage::

    python scripts/make_sample_logs.py            # rewrite sample_logs/
    python scripts/make_sample_logs.py --check    # exit 1 if sample_logs/ is stale

Every file is made by ``loggen`` with ``doc_ranges_only=True``; a few hand-written
malformed lines are then planted at fixed places, and ``sample_logs/README.md`` is
written from the same data so its line numbers cannot drift.
"""

from __future__ import annotations

import argparse
import gzip
import io
import ipaddress
import json
import re
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from loggen import generate
from loggen_formats import convert

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "sample_logs"

TS_RE = re.compile(rb"\[[0-9]{2}/[A-Za-z]{3}/[0-9]{4}:[0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}\]")
IPV4_RE = re.compile(rb"\b(?:[0-9]{1,3}\.){3}[0-9]{1,3}\b")
IPV6_RE = re.compile(rb"(?<![0-9A-Za-z:])(?:[0-9a-fA-F]{1,4}:){2,7}[0-9a-fA-F:]*[0-9a-fA-F]")
DOC_NETS = tuple(
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
)

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.6778.204 Safari/537.36"
)
# Raw bytes as a broken client or a corrupted disk block leaves them; no \n or \r.
BINARY_GARBAGE = (
    b"\x00\x00\x00\xff\xfe\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\x8a"
    b"\xff\x00\x00garbage\x00\xff\xc3\x28\x7f\x1b[31m\xe2\x82\x00\xff\xff"
)


@dataclass(frozen=True)
class Planted:
    """A hand-written line inserted after generated line ``after`` (1-based)."""

    after: int
    kind: str
    valid: bool
    template: bytes  # "{ts}" is replaced by the previous line's timestamp

    def render(self, previous: bytes) -> bytes:
        """The planted line, timed like the line before it."""
        found = TS_RE.search(previous)
        stamp = found.group(0) if found else b"[01/Nov/2026:00:00:00 +0000]"
        return self.template.replace(b"{ts}", stamp)


@dataclass(frozen=True)
class Sample:
    """One sample file: loggen arguments plus planted lines."""

    name: str
    fmt: str
    n_lines: int
    seed: int
    start: datetime
    tz: str
    domains: tuple[str, ...]
    n_clients: int = 300
    planted: tuple[Planted, ...] = ()
    # "nginx_json_behind_lb": the lines rewritten as nginx JSON behind a load balancer (``behind_lb``)
    rewrite: str | None = None

    @property
    def gzipped(self) -> bool:
        """Whether the file is written gzip-compressed."""
        return self.name.endswith(".gz")


VHOST_PLANTED = (
    Planted(
        400,
        "bad timestamp",
        False,
        b"www.example.com:443 198.51.100.77 - - [32/Foo/2026:99:99:99 +0000] "
        b'"GET /index.php?id=42 HTTP/1.1" 200 5120 "-" "curl/8.5.0"',
    ),
    Planted(
        900,
        "truncated line (cut mid user agent, no closing quote)",
        False,
        b'shop.example.com:443 203.0.113.50 - - {ts} "GET /static/js/app.3f9a1c2e.js HTTP/2.0" '
        b'200 48213 "https://shop.example.com/" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) '
        b"AppleWebKit/537.36 (KHTML, like Ge",
    ),
    Planted(1300, "binary garbage (NUL and 0xff bytes)", False, BINARY_GARBAGE),
    Planted(1750, "literally 'Bad line'", False, b"Bad line"),
    Planted(
        2200,
        "TLS ClientHello sent to port 80 (VALID: escapes are literal text)",
        True,
        b'www.example.com:80 192.0.2.44 - - {ts} "\\x16\\x03\\x01\\x00\\xa5\\x01" 400 0 "-" "-"',
    ),
)
WWW_PLANTED = (
    Planted(
        150,
        "TLS ClientHello sent to port 80 (VALID: escapes are literal text)",
        True,
        b'203.0.113.201 - - {ts} "\\x16\\x03\\x01\\x00\\xa5\\x01" 400 0 "-" "-"',
    ),
    Planted(
        380,
        "bad timestamp",
        False,
        b'198.51.100.9 - - [32/Foo/2026:99:99:99 +0000] "GET /feed/ HTTP/1.1" 200 38412 '
        b'"-" "' + CHROME_UA.encode() + b'"',
    ),
    Planted(610, "binary garbage (NUL and 0xff bytes)", False, BINARY_GARBAGE[::-1]),
)

SAMPLES = (
    Sample(
        "other_vhosts_access.log",
        "vhost_combined",
        2500,
        11,
        datetime(2026, 11, 1, tzinfo=UTC),
        "+0000",
        (
            "www.example.com",
            "shop.example.com",
            "blog.example.net",
            "api.example.org",
            "docs.example.com",
            "static.example.net",
            "mail.example.org",
        ),
        planted=VHOST_PLANTED,
    ),
    Sample(
        "www.example.com/access_log",
        "combined",
        800,
        12,
        datetime(2026, 11, 1, tzinfo=UTC),
        "-0700",
        ("www.example.com",),
        planted=WWW_PLANTED,
    ),
    Sample(
        "www.example.com/access_log.1.gz",
        "combined",
        600,
        13,
        datetime(2026, 10, 29, tzinfo=UTC),
        "-0700",
        ("www.example.com",),
    ),
    Sample(
        "legacy.example.org/access_log",
        "common",
        300,
        14,
        datetime(2026, 11, 1, tzinfo=UTC),
        "+0200",
        ("legacy.example.org",),
        n_clients=80,
    ),
    Sample(
        "lb/api.example.net.json.log",
        "vhost_combined",
        400,
        15,
        datetime(2026, 11, 1, tzinfo=UTC),
        "+0000",
        ("api.example.net",),
        n_clients=120,
        rewrite="nginx_json_behind_lb",
    ),
)

# The load balancers in front of api.example.net (configs/sample.toml trusts them), and a forged
# X-Forwarded-For entry some clients send (a client can write anything left of the balancer's entry).
LB_NET = ipaddress.ip_network("203.0.113.240/28")
FORGED = "192.0.2.66"


def behind_lb(lines: list[str]) -> list[str]:
    """nginx JSON lines as a server behind a load balancer logs them: ``remote_addr`` is the
    balancer, ``http_x_forwarded_for`` the chain the balancer extended with the client's address;
    every 7th client forged an entry of its own in front of it."""
    out = []
    for n, line in enumerate(convert(lines, "nginx_json")):
        record = json.loads(line)
        client = record["remote_addr"]
        if ipaddress.ip_address(client) in LB_NET:  # a client inside the balancers' range: move it
            client = client.replace("203.0.113.2", "203.0.113.1")
        record["remote_addr"] = str(LB_NET[1 + n % 2])
        record["http_x_forwarded_for"] = f"{FORGED}, {client}" if n % 7 == 0 else client
        out.append(json.dumps(record, separators=(",", ":")))
    return out


def render(sample: Sample) -> tuple[bytes, list[tuple[int, Planted]]]:
    """Uncompressed file content and the 1-based line number of each planted line."""
    generated = generate(
        sample.n_lines,
        fmt=sample.fmt,
        seed=sample.seed,
        n_clients=sample.n_clients,
        ipv6_share=0.1,
        scanner_share=0.05,
        start=sample.start,
        days=3,
        tz_offsets=(sample.tz,),
        doc_ranges_only=True,
        domains=sample.domains,
    )
    if sample.rewrite == "nginx_json_behind_lb":
        generated = iter(behind_lb(list(generated)))
    planted = {p.after: p for p in sample.planted}
    lines: list[bytes] = []
    where = []
    for number, text in enumerate(generated, start=1):
        lines.append(text.encode("ascii"))
        if number in planted:
            lines.append(planted[number].render(lines[-1]))
            where.append((len(lines), planted[number]))
    return b"\n".join(lines) + b"\n", where


def check_doc_ranges(name: str, data: bytes) -> None:
    """Fail if anything that looks like an IP is outside the documentation ranges."""
    for regex in (IPV4_RE, IPV6_RE):
        for match in regex.finditer(data):
            try:
                address = ipaddress.ip_address(match.group(0).decode())
            except ValueError:
                continue  # e.g. a time like 10:05:03 is no address
            if not any(address in net for net in DOC_NETS):
                raise SystemExit(f"{name}: {address} is not in a documentation range")


def gzip_bytes(data: bytes) -> bytes:
    """Gzip with a zero mtime and no file name, so the output is reproducible."""
    buffer = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buffer, mtime=0) as out:
        out.write(data)
    return buffer.getvalue()


def first_last_stamp(data: bytes) -> tuple[str, str]:
    """First and last timestamp in ``data`` (the planted bad one does not match)."""
    stamps = [m.group(0).decode() for m in TS_RE.finditer(data)]
    if not stamps:  # JSON lines
        stamps = [m.decode() for m in re.findall(rb'"time_iso8601":"([^"]+)"', data)]
    return stamps[0], stamps[-1]


def readme(rows: list[tuple[Sample, bytes, list[tuple[int, Planted]]]]) -> str:
    """Markdown describing the files and where the malformed lines are."""
    out = [
        "# sample_logs",
        "",
        "Synthetic Apache access logs for tests, docs and demos. Generated by",
        "`python scripts/make_sample_logs.py` (deterministic; do not edit by hand).",
        "Every IP address is in a documentation range (192.0.2.0/24, 198.51.100.0/24,",
        "203.0.113.0/24, 2001:db8::/32); e-mail addresses and tokens are made up.",
        "",
        "| file | format | lines | malformed | first / last timestamp |",
        "|---|---|---|---|---|",
    ]
    for sample, data, where in rows:
        bad = sum(not p.valid for _, p in where)
        first, last = first_last_stamp(data)
        n_lines = data.count(b"\n")
        fmt = "nginx_json" if sample.rewrite else sample.fmt
        out.append(f"| `{sample.name}` | {fmt} | {n_lines} | {bad} | `{first}` / `{last}` |")
    out += [
        "",
        "`www.example.com/access_log*` log in -0700, so their local dates change at 17:00 "
        "while UTC dates change at midnight; `access_log.1.gz` holds the three days before "
        "`access_log` (line counts above are uncompressed). `lb/api.example.net.json.log` is nginx JSON "
        f"written behind load balancers ({LB_NET}, trusted in `configs/sample.toml`): `remote_addr` is "
        f"a balancer, the visitor is the right-most `X-Forwarded-For` entry; every 7th line carries a "
        f"forged entry ({FORGED}) in front of it, which must never be taken for the client.",
        "",
        "## Planted lines",
        "",
        "| file:line | what | valid |",
        "|---|---|---|",
    ]
    for sample, _, where in rows:
        for number, planted in where:
            out.append(f"| `{sample.name}:{number}` | {planted.kind} | {'yes' if planted.valid else 'no'} |")
    out += [
        "",
        "Generated lines also contain scanner traffic that is valid and must parse: "
        '`"-" 408` requests, escaped quotes (`\\"`) in paths and user agents, '
        "`${jndi:...}` user agents, IPv6 clients and TLS handshakes logged as `\\x16\\x03...`.",
        "",
    ]
    return "\n".join(out)


def build() -> dict[Path, bytes]:
    """Every file of ``sample_logs/`` (path → exact bytes)."""
    files: dict[Path, bytes] = {}
    rows = []
    for sample in SAMPLES:
        data, where = render(sample)
        check_doc_ranges(sample.name, data)
        files[OUT_DIR / sample.name] = gzip_bytes(data) if sample.gzipped else data
        rows.append((sample, data, where))
    files[OUT_DIR / "README.md"] = readme(rows).encode()
    return files


def main() -> int:
    """Write or check ``sample_logs/``."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only report whether files are up to date")
    args = parser.parse_args()
    stale = []
    for path, data in build().items():
        if args.check:
            if not path.is_file() or path.read_bytes() != data:
                stale.append(path)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        print(f"wrote {path.relative_to(ROOT)} ({len(data)} bytes)")
    for path in stale:
        print(f"stale: {path.relative_to(ROOT)}", file=sys.stderr)
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
