"""Log formats: the registry's public API, and the one place where the built-in formats register.

A format is a ``Format`` (``pipeline.ingest.fields``): it turns lines into format-independent fields.
Adding one (JSON lines, W3C/IIS, an AWS load balancer) is a module under ``formats/`` with its
compiler and one entry in ``BUILTIN`` below; ``rows.py``, the Apache compiler and detection stay as
they are (``detect.py`` scores every entry that has a ``detect_priority``).
"""

from __future__ import annotations

from pipeline.ingest.fields import Format
from pipeline.ingest.formats import apache, fixed, jsonl, w3c, wrapped
from pipeline.ingest.formats.detect import DETECT_SAMPLE_BYTES, Choice, choose, choose_format, detect
from pipeline.ingest.formats.registry import (
    AUTO,
    Family,
    FormatEntry,
    entries,
    get,
    is_format_spec,
    register,
    register_config,
    register_family,
    resolve,
    unregister,
)

# The built-in Apache formats, as Apache names them (their LogFormat strings).
NAMED_FORMATS: dict[str, str] = {
    "common": '%h %l %u %t "%r" %>s %b',
    # Apache's and nginx's default "combined". Referer and User-Agent are optional so that
    # the common-format lines some servers mix in still parse (their fields become null).
    "combined": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i"',
    "vhost_combined": '%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i"',
    # nginx's "main" (the nginx.conf of nginx.org's packages): combined + "$http_x_forwarded_for",
    # which rows.py resolves with ingest.trusted_proxies
    "nginx_main": '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" "%{X-Forwarded-For}i"',
    # mod_ssl's SSLRequestLog as its documentation (and Debian's default-ssl site) writes it
    "ssl_request": '%t %h %{SSL_PROTOCOL}x %{SSL_CIPHER}x "%r" %b',
    # Traefik's "common" access log: combined + request count, router, backend URL, duration ("12ms")
    "traefik_clf": (
        '%h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-Agent}i" %k "%{router}e" "%{backend}e" %{ms}T'
    ),
}


def _apache(definition: str, name: str) -> Format:
    return apache.compile_format(definition, name=name)


BUILTIN: tuple[FormatEntry, ...] = (
    FormatEntry("common", "apache", NAMED_FORMATS["common"], _apache, 10, "NCSA common log format"),
    FormatEntry("combined", "apache", NAMED_FORMATS["combined"], _apache, 20, "Apache/nginx combined"),
    FormatEntry(
        "vhost_combined", "apache", NAMED_FORMATS["vhost_combined"], _apache, 30, "combined with %v:%p"
    ),
    FormatEntry("nginx_main", "apache", NAMED_FORMATS["nginx_main"], _apache, 21, "nginx main (+ XFF)"),
    FormatEntry("ssl_request", "apache", NAMED_FORMATS["ssl_request"], _apache, 15, "mod_ssl request log"),
    FormatEntry("traefik_clf", "apache", NAMED_FORMATS["traefik_clf"], _apache, 25, "Traefik common log"),
)
for _entry in BUILTIN:
    register(_entry)
# "syslog:%h %l ..." is a wrapped LogFormat string, not a LogFormat starting with "syslog:"
# and '{"ts": "t", "time_format": "%d/%m/%Y"}' a JSON mapping (jsonl.is_definition)
register_family(
    Family(
        "apache",
        lambda text: "%" in text and not wrapped.accepts(text) and not jsonl.is_definition(text),
        _apache,
        "a LogFormat string",
    )
)
register_family(wrapped.FAMILY)  # syslog:FORMAT, cri:FORMAT (formats/wrapped.py)
for _entry in jsonl.BUILTIN:  # nginx_json, caddy, traefik_json, envoy_json, cloudflare (formats/jsonl.py)
    register(_entry)
register_family(jsonl.FAMILY)  # {"ts": PATH, COLUMN: PATH, ...} (a JSON mapping)
for _entry in w3c.BUILTIN:  # w3c, iis, cloudfront (formats/w3c.py)
    register(_entry)
register_family(w3c.FAMILY)  # w3c:FIELD ... (a #Fields: list)
for _entry in fixed.BUILTIN:  # alb, elb, s3, haproxy, envoy (formats/fixed.py)
    register(_entry)

__all__ = [
    "AUTO",
    "BUILTIN",
    "DETECT_SAMPLE_BYTES",
    "NAMED_FORMATS",
    "Choice",
    "Family",
    "Format",
    "FormatEntry",
    "choose",
    "choose_format",
    "detect",
    "entries",
    "get",
    "is_format_spec",
    "register",
    "register_config",
    "register_family",
    "resolve",
    "unregister",
]
