"""Rules every stage applies the same way, defined once (kernel: imports only ``errors``).

Each of these existed two or three times with differences (a case id valid for a query could be
refused by ``hold add``; the OS user was ``uid 1000`` in one record and ``uid:1000`` in another).
A stage that needs one of them imports it from here; no other module spells them.
"""

from __future__ import annotations

import calendar
import contextlib
import datetime as dt
import ipaddress
import math
import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import ConfigError, UsageError

# A case or request id: what an incident ticket system issues (``INC-2026-042``, ``jira:SEC/17``,
# ``case#12``). The first character is alphanumeric so that an id is never read as an option.
ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/#-]{0,79}")
ID_RULE = "letters, digits and . _ : / # - (max 80, starting with a letter or digit)"

# Bytes of a rejected line kept, after scrubbing, in the quarantine (the rest is cut, and a token
# the cut would split is dropped whole). The reader of oversized lines keeps the same prefix.
REJECT_TEXT_LIMIT = 2048


def check_id(value: str, kind: str = "case") -> str:
    """A case or request id, validated (exit 2 with the rule when it is not one)."""
    if not ID_RE.fullmatch(value):
        raise UsageError(f"invalid {kind} id {value!r}: {ID_RULE}")
    return value


def os_user() -> str:
    """The operating-system user running the command, as recorded in audit, holds and deletions:
    the account of the real uid, not ``$LOGNAME``/``$USER``, which anyone sets (found by review:
    ``LOGNAME=alice`` was recorded as alice); who ran it through sudo: ``$SUDO_USER`` only when
    the parent process is sudo running as root (anyone can set the variable, not that); and the
    account that logged in, when it is another (the kernel's login uid, set at login by
    pam_loginuid and kept through ``sudo -s``, ``su`` and every shell after: the one attribution
    an intermediate shell does not lose)."""
    name = _account(os.getuid())
    sudo = os.environ.get("SUDO_USER")
    sudo = sudo if sudo and sudo != name and _run_by_sudo() else None
    login = _login_account()
    said = [f"sudo by {sudo}"] if sudo else []
    said += [f"login {login}"] if login not in (None, name, sudo) else []
    return f"{name} ({'; '.join(said)})" if said else name


def _account(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (containers): the uid still identifies the account
        return f"uid:{uid}"


LOGIN_UID = "/proc/self/loginuid"
_NO_LOGIN = 4294967295  # (uid_t)-1: no login session (cron, services, containers)


def _login_account() -> str | None:
    """The account of the process's login uid, or None (unset, or no /proc)."""
    try:
        with open(LOGIN_UID, encoding="ascii") as f:
            uid = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if uid == _NO_LOGIN or uid < 0 else _account(uid)


def _run_by_sudo() -> bool:
    """Is the parent process sudo, running as root? (/proc/PID/status is readable by everyone.)"""
    try:
        with open(f"/proc/{os.getppid()}/status", encoding="utf-8", errors="replace") as f:
            fields = dict(line.split(":", 1) for line in f if ":" in line)
    except OSError:
        return False
    effective = (fields.get("Uid", "").split() or ["", ""])[1:2]
    return fields.get("Name", "").strip() == "sudo" and effective == ["0"]


def escaped_text(text: str) -> str:
    """``text`` with the bytes that are no UTF-8 written as ``\\xHH``: a file name is any bytes on
    Linux, and a terminal passes bytes it could not decode as surrogates, which no UTF-8 file, JSON
    record or Parquet string can hold. UTF-8 text comes back unchanged."""
    try:
        return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that no byte gave (\ud800): escaped as such
        return text.encode("utf-8", "backslashreplace").decode()


def undecodable(text: str) -> bytes | None:
    """The bytes of ``text`` when it is no UTF-8 text (bytes a terminal or a file name gave
    undecoded, which Python holds as surrogates), to name in an error; None when it is UTF-8."""
    try:
        text.encode()
    except UnicodeEncodeError:
        with contextlib.suppress(UnicodeEncodeError):
            return text.encode(errors="surrogateescape")
        return text.encode(errors="backslashreplace")  # a lone surrogate that no byte gave (\ud800)
    return None


def check_range(date_from: dt.date | None, date_to: dt.date | None) -> None:
    """``--from`` must not be after ``--to`` (both are inclusive UTC event dates)."""
    if date_from is not None and date_to is not None and date_from > date_to:
        raise UsageError(f"--from {date_from} is after --to {date_to}")


# ----------------------------------------------------------------------------------------------------
# the rules of setting values (``pipeline.config`` declares each setting with one of them)


@dataclass(frozen=True)
class Rule:
    """What a setting's value must be; ``says`` completes "<setting> …" in a message and in the docs."""

    says: str
    ok: Callable[[Any], bool]
    notes: tuple[tuple[Any, str], ...] = ()  # a value and why it is refused: shown after the message
    template: str = "{name} {says}, got {value!r}{note}"

    def problem(self, name: str, value: Any) -> str | None:
        note = "".join(f" ({why})" for v, why in self.notes if v == value and type(v) is type(value))
        if self.ok(value):
            return None
        return self.template.format(name=name, says=self.says, value=value, note=note)


def _number(v: Any) -> bool:
    """A real, finite number (TOML has inf and nan: neither is a count, a size or a time)."""
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


def between(lo: float, hi: float | None, unit: str = "", notes: tuple[tuple[Any, str], ...] = ()) -> Rule:
    says = f"must be {lo}-{hi}{unit}" if hi is not None else f"must be at least {lo}"
    return Rule(says, lambda v: _number(v) and lo <= v <= (hi if hi is not None else v), notes)


def one_of(*choices: str) -> Rule:
    return Rule(f"must be {', '.join(choices[:-1])} or {choices[-1]}", lambda v: v in choices)


def like(regex: re.Pattern[str], examples: str) -> Rule:
    return Rule(f"must look like {examples}", lambda v: isinstance(v, str) and bool(regex.fullmatch(v)))


def _is_network(value: Any) -> bool:
    with contextlib.suppress(ValueError, AttributeError):
        return bool(ipaddress.ip_network(value.strip(), strict=False))
    return False


def setting(default: Any, rule: Rule | None = None, **shown: Any) -> Any:
    """A field with its rule (a callable default is a factory). For the docs and the example config:
    ``example`` (shown commented out), ``recommended`` (set there), ``said`` (a computed default in words)."""
    md = {"rule": rule, "shown": shown}
    kind = {"default_factory": default} if callable(default) else {"default": default}
    return field(**kind, metadata=md)


POSITIVE = Rule("must be positive", lambda v: _number(v) and v > 0)
NETWORK = Rule("must be CIDRs", _is_network, template="{name}: {value!r} is not an address or CIDR")
# Starts at 1: the shortest retention is one day ("0d", purge everything, is refused). Bounded so
# that today minus it is a date (273 years at most): a typo of many digits is refused, not a crash.
DURATION_RE = re.compile(r"[1-9][0-9]{0,2}y|[1-9][0-9]{0,3}m|[1-9][0-9]{0,4}d")
DURATION = like(DURATION_RE, "2y, 18m or 730d (at most 999y, 9999m or 99999d)")


def first_day_kept(as_of: dt.date, duration: str) -> dt.date:
    """``as_of`` minus ``"2y"``/``"18m"``/``"730d"``: the first day a retention keeps.

    ``"730d"`` is days; ``"2y"`` and ``"18m"`` are calendar years and months counted back from
    ``as_of``; a day the month does not have (29 February in a common year, 31 in a short month)
    becomes the month's last day: as of 2028-02-29, "2y" keeps 2026-02-28 onwards. Rounding down
    keeps at most one extra day and never deletes a day early.
    """
    if not DURATION_RE.fullmatch(duration):
        raise ConfigError(f"retention must look like 2y, 18m or 730d, got {duration!r}")
    count, unit = int(duration[:-1]), duration[-1]
    try:
        if unit == "d":
            return as_of - dt.timedelta(days=count)
        months = as_of.year * 12 + as_of.month - 1 - count * (12 if unit == "y" else 1)
        year, month = divmod(months, 12)
        last = calendar.monthrange(year, month + 1)[1]
        return dt.date(year, month + 1, min(as_of.day, last))
    except (ValueError, OverflowError):  # "5000y": before the first representable day, keep everything
        return dt.date.min


def today() -> dt.date:
    """The UTC date: partitions, retention horizons and holds are UTC dates."""
    return dt.datetime.now(dt.UTC).date()


TIMEOUT_RE = re.compile(r"\s*([0-9]{1,9}(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*")
TIMEOUTS = re.compile(rf"\s*off\s*|{TIMEOUT_RE.pattern}")
_TIMEOUT_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MAX_TIMEOUT = 7 * 86400.0  # a week: longer is a typo (and past what a timer thread accepts)
SKEW_RE = re.compile(r"\s*([0-9]{1,6})\s*([dhms])\s*")  # 999999d: still a date
# DuckDB's memory_limit as DuckDB reads it: a number and a unit (4GB, 512MiB, 4G, 1.5 GB, 4e3MB,
# 4 gigabytes), or a share of the machine's memory (80%); between 1 MB (less runs no query) and 1 PB
_MEMORY_RE = re.compile(
    r"\s*([0-9]+(?:\.[0-9]+)?(?:e[0-9]{1,2})?)\s*(%|b|bytes|[kmgt]i?b?|(?:kilo|mega|giga|tera)bytes?)\s*",
    re.IGNORECASE,
)
_MEMORY_UNITS = {"b": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}


def memory_bytes(value: str) -> float | None:
    """``query.memory_limit`` in bytes, or a share of memory as a negative fraction; None: not one."""
    m = _MEMORY_RE.fullmatch(value)
    if m is None:
        return None
    number, unit = float(m.group(1)), m.group(2).lower()
    if unit == "%":
        return -number / 100
    binary = unit[1:3] in ("i", "ib")  # KiB, MiB: powers of 1024 (KB, kilobytes: of 1000)
    scale = _MEMORY_UNITS[unit[0]] if unit not in ("b", "bytes") else 1
    return number * (1024 ** "bkmgt".index(unit[0]) if binary else scale)


def _memory_ok(value: object) -> bool:
    size = memory_bytes(value) if isinstance(value, str) else None
    return size is not None and (-1 <= size <= -0.01 or 1e6 <= size <= 1e15)


MEMORY = Rule("must look like 4GB, 512MiB or 80% (1 MB to 1 PB, or 1-100 %)", _memory_ok)
# A full-length prefix stores every client's whole address; 0 stores nothing worth keeping (and is a
# typo far more often than a choice). Both break the privacy policy's promise: refused.
FULL_PREFIX = "it would store full client addresses"


def future_skew(value: str) -> dt.timedelta:
    """``ingest.max_future_skew`` as a timedelta ('3d' → 3 days); validated by ``config.validate``."""
    m = SKEW_RE.fullmatch(value)
    if m is None:
        raise ConfigError(f"ingest.max_future_skew must look like 3d, 12h or 30m, got {value!r}")
    return dt.timedelta(seconds=int(m.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[m.group(2)])


def timeout_seconds(value: str) -> float | None:
    """``query.timeout`` in seconds ('5m' → 300.0); None for no limit ('0', 'off') or a bad value."""
    m = TIMEOUT_RE.fullmatch(value) if value.strip() != "off" else None
    seconds = float(m.group(1)) * _TIMEOUT_UNITS[m.group(2)] if m else 0.0
    return seconds or None


TIMEOUT = Rule(
    "must look like 30s, 5m or 1h (0: none), at most a week",
    lambda v: (
        isinstance(v, str) and bool(TIMEOUTS.fullmatch(v)) and (timeout_seconds(v) or 0.0) <= MAX_TIMEOUT
    ),
)


def check_domain_retention(domains: dict[str, str], retention: str, at: Callable[[str], str]) -> None:
    """A domain's retention may only be shorter than the global one. Purge applies the global horizon to
    every row, so a longer one would be cut to it silently: a customer promised 5 years loses its rows
    at 2. Refused, so that a person reconciles the contract and the config. (Calendar units compare at
    their average length; an equal one is allowed, and purge notes that it has no effect.) A domain
    holding an address is refused where its stored form is known (``retention.Policy``)."""
    days = {"d": 1.0, "m": 365.25 / 12, "y": 365.25}
    for domain, value in domains.items():
        if int(value[:-1]) * days[value[-1]] > int(retention[:-1]) * days[retention[-1]] + 0.5:
            why = f"is longer than retention {retention!r}: purge would delete its rows at {retention}"
            raise ConfigError(f"{at('retention.domains')}.{domain} = {value!r} {why}; raise retention")
