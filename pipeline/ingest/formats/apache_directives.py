"""Apache ``LogFormat`` directives as data: which field each one fills and the regex it matches.

``apache.py`` compiles a format string with these tables; Apache's quirks are commented here.
"""

from __future__ import annotations

import re

# Regex building blocks. Rust regex (polars) has no look-around; every class excludes the
# delimiter that follows it so that the pattern stays one-pass (unambiguous left to right).
QUOTED = r'[^"\\]*(?:\\.[^"\\]*)*'  # Apache escapes " and \ inside quoted fields as \" and \\
TOKEN = r"[^ ]*"
TOKEN1 = r"[^ ]+"
HOST = r"[^ ]+"  # an IP, [IPv6]:port, a hostname (HostnameLookups On), 'unix:', '-'
VHOST = r"\[[0-9A-Fa-f:.]+\]|[^ :\[\]]+"  # server name or [IPv6] literal, without port
NUM = r"[0-9]+"
NUM_OR_DASH = r"[0-9]+|-"

# directive → (field name or None when the value is not stored, regex when unquoted, quoted-ok)
# Field names are the regex's group names; ``_fields`` maps them to ``fields.FIELD_COLUMNS``.
DIRECTIVES: dict[str, tuple[str | None, str]] = {
    "h": ("client", HOST),  # remote host; an IP unless HostnameLookups is on
    "a": ("client", HOST),  # client IP (mod_remoteip's view when enabled)
    "l": (None, TOKEN1),  # identd: always '-' in practice, never stored
    "u": (None, TOKEN1),  # remote user: personal data, never stored
    "t": ("ts", r"\[[^\]]+\]"),  # [10/Oct/2000:13:55:36 -0700]
    "r": ("request", QUOTED),  # first line of the request, escaped by the server
    "m": ("method", r"[A-Za-z]+|-"),
    "U": ("path", r"[^ ?\"]*"),
    "q": ("query", r"(?:\?[^ \"]*)?"),  # includes the leading '?', empty when none
    "H": ("protocol", r"[^ \"]*"),
    ">s": ("status", r"[0-9]{3}"),
    "s": ("status", r"[0-9]{3}"),
    "<s": ("status", r"[0-9]{3}"),
    "b": ("bytes", NUM_OR_DASH),  # CLF: '-' for zero bytes
    "B": ("bytes", NUM),
    "O": ("bytes", NUM_OR_DASH),  # bytes sent incl. headers (mod_logio)
    "I": (None, NUM_OR_DASH),
    "S": (None, NUM_OR_DASH),
    "v": ("domain", VHOST),  # canonical ServerName
    "V": ("domain", VHOST),  # server name per UseCanonicalName
    "p": (None, NUM),  # port: the domain is stored without it
    "D": (None, NUM_OR_DASH),  # duration µs
    "T": (None, r"[0-9.]+|-"),
    "X": (None, r"[X+\-]"),
    "k": (None, NUM),
    "P": (None, NUM),
    "L": (None, TOKEN),
    "f": (None, TOKEN),
    "A": (None, TOKEN),
    "R": (None, TOKEN),
}

# %{NAME}i headers that map to stored fields; any other header is matched but not stored.
HEADER_FIELDS: dict[str, str] = {
    "referer": "referrer",
    "user-agent": "user_agent",
    "host": "domain",
    # rows.py resolves the real client from it (ingest.trusted_proxies); never stored as such
    "x-forwarded-for": "forwarded_for",
    "x-request-id": "request_id",
}
# %{VAR}x (mod_ssl) and %{VAR}e (environment) variables that map to stored fields.
VARIABLE_FIELDS: dict[tuple[str, str], str] = {
    ("x", "ssl_protocol"): "tls",
    ("e", "ssl_protocol"): "tls",
    ("e", "unique_id"): "request_id",  # mod_unique_id
}

# Directives whose pattern already excludes '"': inside quotes they keep it ("%m %U%q %H" splits).
_OWN_PATTERN_IN_QUOTES = frozenset({"m", "U", "q", "H"})
_LETTERS_WITH_ARGUMENT = frozenset("ioenCcxpPTahLt") | {"^ti", "^to"}
_DIRECTIVE_RE = re.compile(r"%(?:[!0-9,]*)(?:\{([^}]*)\})?([<>]?[a-zA-Z%])")
