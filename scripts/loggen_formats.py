"""The benchmark log in other formats: ``loggen``'s vhost_combined lines rewritten line by line.

The same requests (clients, domains, paths, agents, times) in nginx JSON (``escape=json``), W3C
extended (IIS fields, one ``#Fields:`` header) and AWS ALB, so that formats are compared on equal
content. Stdlib only; a generator script, not the product::

    from loggen_formats import write_converted
    write_converted("/tmp/big.w3c.log", 2_000_000, "w3c", seed=1, n_domains=2000)
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from loggen import generate_chunks

CONVERTED = ("nginx_json", "w3c", "alb")

_QUOTED = r'((?:[^"\\]|\\.)*)'
_VHOST = re.compile(
    rf'^(\S+?):(\d+) (\S+) \S+ \S+ \[([^\]]+)\] "{_QUOTED}" (\d{{3}}) (\S+) "{_QUOTED}" "{_QUOTED}"$'
)
W3C_FIELDS = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs-version "
    "cs(User-Agent) cs(Referer) cs-host sc-status sc-substatus sc-win32-status sc-bytes time-taken"
)
W3C_HEADER = (
    "#Software: Microsoft Internet Information Services 10.0\n#Version: 1.0\n"
    "#Date: 2026-11-01 00:00:00\n#Fields: " + W3C_FIELDS + "\n"
)


def _unescape(value: str) -> str:
    """Apache's ``\\"`` and ``\\\\`` back to the characters (the other formats escape their own way)."""
    return value.replace('\\"', '"').replace("\\\\", "\\") if "\\" in value else value


class _Times:
    """Apache's ``10/Oct/2026:13:55:36 +0000`` → aware datetime, cached (lines share seconds)."""

    def __init__(self) -> None:
        self.cache: dict[str, datetime] = {}

    def __call__(self, text: str) -> datetime:
        ts = self.cache.get(text)
        if ts is None:
            if len(self.cache) > 100_000:
                self.cache.clear()
            ts = self.cache[text] = datetime.strptime(text, "%d/%b/%Y:%H:%M:%S %z")
        return ts


def _request_parts(request: str) -> tuple[str, str, str, str]:
    """(method, path, query, protocol) of a request line; odd lines keep their text as the path."""
    parts = request.split(" ")
    if len(parts) == 3:
        method, target, protocol = parts
    else:
        method, target, protocol = "GET", request.replace(" ", "%20") or "/", "HTTP/1.1"
    path, _, query = target.partition("?")
    return method, path, query, protocol


def _nginx_json(m: re.Match[str], ts: datetime) -> str:
    vhost, _port, client, _t, request, status, size, referrer, agent = m.groups()
    record = {
        "time_iso8601": ts.isoformat(),
        "remote_addr": client,
        "host": vhost,
        "request": _unescape(request),
        "status": int(status),
        "body_bytes_sent": 0 if size == "-" else int(size),
        "http_referer": "" if referrer == "-" else _unescape(referrer),
        "http_user_agent": "" if agent == "-" else _unescape(agent),
        "request_time": 0.012,
    }
    return json.dumps(record, separators=(",", ":"))


def _w3c(m: re.Match[str], ts: datetime) -> str:
    vhost, port, client, _t, request, status, size, referrer, agent = m.groups()
    method, path, query, protocol = _request_parts(_unescape(request))
    utc = ts.astimezone(UTC)  # W3C logs are in UTC
    plus = {"-": "-"}
    fields = (
        utc.strftime("%Y-%m-%d"), utc.strftime("%H:%M:%S"), "10.0.0.10", method,
        path.replace(" ", "%20") or "/",
        query.replace(" ", "+") or "-", port, "-", client, protocol,
        plus.get(agent) or _unescape(agent).replace(" ", "+"), plus.get(referrer) or _unescape(referrer),
        vhost, status, "0", "0", "0" if size == "-" else size, "15",
    )  # fmt: skip
    return " ".join(fields)


def _alb(m: re.Match[str], ts: datetime) -> str:
    vhost, port, client, _t, request, status, size, _referrer, agent = m.groups()
    method, path, query, protocol = _request_parts(_unescape(request))
    scheme = "https" if port == "443" else "http"
    host = f"[{client}]" if ":" in client else client
    url = f"{scheme}://{vhost}:{port}{path}" + (f"?{query}" if query else "")
    stamp = ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000000Z")
    tls = ("ECDHE-RSA-AES128-GCM-SHA256", "TLSv1.2") if scheme == "https" else ("-", "-")
    sent = "0" if size == "-" else size
    return (
        f"{scheme} {stamp} app/bench-lb/50dc6c495c0c9188 {host}:41234 "
        f'10.0.1.5:80 0.000 0.012 0.000 {status} {status} 250 {sent} "{method} {url} {protocol}" '
        f'"{agent}" {tls[0]} {tls[1]} arn:aws:elasticloadbalancing:us-east-2:123456789012:targetgroup/'
        f'bench/73e2d6bc24d8a067 "Root=1-58337262-36d228ad5d99923122bbe354" "{vhost}" "-" 0 {stamp} '
        f'"forward" "-" "-" "10.0.1.5:80" "{status}" "-" "-"'
    )


RENDER: dict[str, Callable[[re.Match[str], datetime], str]] = {
    "nginx_json": _nginx_json,
    "w3c": _w3c,
    "alb": _alb,
}


def convert(lines: Iterable[str], fmt: str) -> Iterator[str]:
    """vhost_combined lines → ``fmt`` lines (every line converts: loggen writes no broken lines)."""
    render, times = RENDER[fmt], _Times()
    for line in lines:
        m = _VHOST.match(line)
        if m is None:
            raise ValueError(f"loggen line not vhost_combined: {line[:200]!r}")
        yield render(m, times(m.group(4)))


def write_converted(path: str | Path, n_lines: int, target: str, **kw: Any) -> int:
    """Write ``n_lines`` lines of ``target`` to ``path`` (keyword arguments: ``loggen.generate``'s)."""
    written = 0
    with open(path, "wb") as out:
        if target == "w3c":
            written += out.write(W3C_HEADER.encode())
        for chunk in generate_chunks(n_lines, **{**kw, "fmt": "vhost_combined"}):
            written += out.write(("\n".join(convert(chunk, target)) + "\n").encode())
    return written
