"""W3C extended logs as data: the default field lists and which W3C field feeds which column.

``w3c.py`` reads lines with these tables; adding a field identifier is one entry here.
"""

from __future__ import annotations

# IIS's default W3C field selection, used by ``w3c``/``iis`` for lines before any ``#Fields:``.
IIS_DEFAULT = (
    "date time s-ip cs-method cs-uri-stem cs-uri-query s-port cs-username c-ip cs(User-Agent) "
    "cs(Referer) sc-status sc-substatus sc-win32-status time-taken"
)
# IIS >= 8.5 can append custom fields; X-Forwarded-For is the one everybody adds. Headerless lines with
# one field more than the IIS default are read as the default plus X-Forwarded-For (filebeat does too).
IIS_DEFAULT_XFF = IIS_DEFAULT + " x-forwarded-for"
# CloudFront standard (legacy) logs: the 33 documented fields, in order, separated by tabs.
CLOUDFRONT_DEFAULT = (
    "date time x-edge-location sc-bytes c-ip cs-method cs(Host) cs-uri-stem sc-status cs(Referer) "
    "cs(User-Agent) cs-uri-query cs(Cookie) x-edge-result-type x-edge-request-id x-host-header "
    "cs-protocol cs-bytes time-taken x-forwarded-for ssl-protocol ssl-cipher "
    "x-edge-response-result-type cs-protocol-version fle-status fle-encrypted-fields c-port "
    "time-to-first-byte x-edge-detailed-result-type sc-content-type sc-content-len sc-range-start "
    "sc-range-end"
)

# W3C field identifier (lower case) -> what it feeds. The first identifier present wins for a target
# (CloudFront's x-host-header is the site the viewer asked for; its cs(Host) the cloudfront.net name).
# Every other field (cs-username, cs(Cookie), s-sitename = W3SVC1, ...) is matched and never stored.
_TARGETS: tuple[tuple[str, str], ...] = (
    ("date", "date"),
    ("time", "time"),
    ("date_local", "date-local"),
    ("time_local", "time-local"),
    ("client", "c-ip"),  # the socket peer as IIS/CloudFront saw it
    ("method", "cs-method"),
    ("path", "cs-uri-stem"),
    ("query", "cs-uri-query"),
    ("target", "cs-uri"),  # path and query in one (Oracle, Incapsula)
    ("protocol", "cs-version cs-protocol-version"),  # (CloudFront's cs-protocol is http/https)
    ("status", "sc-status"),
    ("bytes", "sc-bytes bytes"),  # "bytes": the W3C draft's name
    ("referrer", "cs(referer) cs(referrer)"),
    ("user_agent", "cs(user-agent)"),
    ("domain", "x-host-header cs-host cs(host)"),
    ("forwarded_for", "x-forwarded-for cs(x-forwarded-for)"),  # CloudFront, IIS custom field
    ("request_id", "x-edge-request-id"),
    ("tls", "ssl-protocol"),
    ("edge_location", "x-edge-location"),
)
FIELDS: dict[str, str] = {ident: target for target, idents in _TARGETS for ident in idents.split()}
