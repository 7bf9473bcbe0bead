"""Configuration: one TOML file (see configs/hostlogs.toml), typed, validated with one-line errors.

Every setting has a default chosen for privacy; command-line options override the file.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import tomllib
from dataclasses import MISSING, dataclass, field, replace
from datetime import timedelta

__all__ = [
    "Config", "GeoipConfig", "IngestConfig", "MetricsConfig", "PrivacyConfig", "QueryConfig",
    "RetentionConfig", "SourceConfig", "load", "replace",
]  # fmt: skip
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError

# Query and referrer parameters whose values are replaced by REDACTED (privacy.sensitive_params).
DEFAULT_SENSITIVE_PARAMS: tuple[str, ...] = (
    "password", "passwd", "pwd", "pass", "token", "access_token", "refresh_token", "id_token", "auth",
    "authorization", "session", "sessionid", "session_id", "sid", "phpsessid", "jsessionid", "key",
    "api_key", "apikey", "secret", "client_secret", "email", "mail", "e-mail", "code", "otp", "signature",
    "sig", "credentials", "ssn", "iban", "card", "cc", "cvv",
)  # fmt: skip


@dataclass(frozen=True)
class SourceConfig:
    """One [[sources]] entry."""

    path: str
    """Glob of log files, e.g. /var/log/apache2/*access.log* ('-' = stdin)."""
    format: str = "auto"
    """auto, common, combined, vhost_combined, or an Apache LogFormat string."""
    domain: str | None = None
    """Domain for formats without %v/%V/%{Host}i."""
    domain_from_path: str | None = None
    """Template such as /var/www/vhosts/{domain}/logs/access_log* when the domain is in the path."""
    olddir: str | None = None
    """logrotate's olddir: where rotated files are moved (absolute, or relative to the log's directory)."""


@dataclass(frozen=True)
class PrivacyConfig:
    ipv4_prefix: int = 24
    """Bits of an IPv4 client address kept (24 → 203.0.113.0/24)."""
    ipv6_prefix: int = 48
    """Bits of an IPv6 client address kept (48: what ISPs hand to one customer site)."""
    sensitive_params: tuple[str, ...] = DEFAULT_SENSITIVE_PARAMS
    """Query/referrer parameters whose values become REDACTED."""
    pseudonym: str = "hmac"
    """hmac: keyed pseudonym client_id per key period; off: no client_id."""
    key_period: str = "month"
    """Period of one pseudonym key: day, week or month (of the event date)."""
    key_dir: str = ""
    """Directory of the pseudonym keys, outside the store (default: <store>-keys beside the store)."""


@dataclass(frozen=True)
class GeoipConfig:
    country_db: str = ""
    """MaxMind GeoLite2/GeoIP2 Country or City database (.mmdb); empty = no country."""
    asn_db: str = ""
    """MaxMind GeoLite2-ASN (or GeoIP2-ISP) database; empty = no ASN."""


@dataclass(frozen=True)
class RetentionConfig:
    retention: str = "2y"
    """Rows older than this (by UTC event date) are purged: '2y', '730d', '18m'."""
    rejects: str = "30d"
    """Retention of the quarantine (by ingest date)."""
    manifests: str = "2y"
    """Retention of ingest manifests (chain of custody), by creation date."""
    domains: dict[str, str] = field(default_factory=dict)
    """Shorter retention per domain (customer contracts), e.g. {"example.com" = "1y"}."""


@dataclass(frozen=True)
class QueryConfig:
    require_case: bool = True
    """Refuse queries without --case (exit 2)."""
    memory_limit: str = "4GB"
    """DuckDB memory limit for queries."""
    threads: int = 2
    """DuckDB threads for queries."""
    timeout: str = "5m"
    """Longest a query, shell statement or investigation may run (30s, 5m, 1h; 0 = no limit)."""


@dataclass(frozen=True)
class IngestConfig:
    block_bytes: int = 32 << 20
    """Bytes read and parsed per batch; bounds memory (about 6x this at peak)."""
    max_line_bytes: int = 64 << 10
    """Longer lines are rejected as too_long without being loaded whole."""
    partial_line_grace: float = 300.0
    """Seconds after which a live file's trailing line without newline is taken as complete."""
    workers: int = 2
    """Blocks parsed in parallel (threads); memory grows by one block per worker."""
    flush_seconds: float = 30.0
    """Piped mode (source '-'): longest time a line waits in memory before it is committed."""
    flush_lines: int = 100_000
    """Piped mode: commit at least every this many lines."""
    lock_wait: float = 0.0
    """Seconds to wait for a concurrent ingest to finish before exiting with code 75."""
    max_future_skew: str = "3d"
    """Lines dated later than now plus this ('3d', '12h', '30m') are rejected as bad_timestamp."""
    max_reject_rate: float = 0.05
    """A source whose share of rejected lines in a run exceeds this fails the run (exit 10); 1 = never."""
    trusted_proxies: tuple[str, ...] = ()
    """CIDRs of your proxies, load balancers and CDN: the client is the right-most X-Forwarded-For
    address that is not one of them (empty: the socket peer is the client)."""


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str = ""
    """Prometheus text file written after every run, for node_exporter's textfile collector
    (e.g. /var/lib/node_exporter/textfile/hostlogs.prom); empty = none."""


@dataclass(frozen=True)
class Config:
    store: str = "./hostlogs-store"
    server: str = field(default_factory=socket.gethostname)
    sources: tuple[SourceConfig, ...] = ()
    privacy: PrivacyConfig = PrivacyConfig()
    ingest: IngestConfig = IngestConfig()
    geoip: GeoipConfig = GeoipConfig()
    retention: RetentionConfig = RetentionConfig()
    query: QueryConfig = QueryConfig()
    metrics: MetricsConfig = MetricsConfig()
    formats: dict[str, dict[str, Any]] = field(default_factory=dict)
    """User-defined log formats: [formats.NAME] tables with a family and its definition."""

    @property
    def key_dir(self) -> str:
        """Pseudonym keys live outside the store so that a copy of the store carries no keys."""
        return self.privacy.key_dir or str(self.store).rstrip("/") + "-keys"

    def with_overrides(self, **changes: Any) -> Config:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})


def load(path: str | Path | None) -> Config:
    if path is None:
        return Config()
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return from_dict(data, origin=str(path))


def from_dict(data: dict[str, Any], origin: str = "config") -> Config:
    known = {
        "store",
        "server",
        "sources",
        "privacy",
        "ingest",
        "geoip",
        "retention",
        "query",
        "metrics",
        "formats",
    }
    _no_unknown(data, known, origin)
    base = Config()
    sources = tuple(_source(s, f"{origin}: sources[{i}]") for i, s in enumerate(data.get("sources", [])))
    privacy = _section(PrivacyConfig, data.get("privacy", {}), f"{origin}: [privacy]")
    ingest = _section(IngestConfig, data.get("ingest", {}), f"{origin}: [ingest]")
    cfg = Config(
        store=_location(data, "store", base.store, origin),
        server=_location(data, "server", base.server, origin),
        sources=sources,
        privacy=privacy,
        ingest=ingest,
        geoip=_section(GeoipConfig, data.get("geoip", {}), f"{origin}: [geoip]"),
        retention=_section(RetentionConfig, data.get("retention", {}), f"{origin}: [retention]"),
        query=_section(QueryConfig, data.get("query", {}), f"{origin}: [query]"),
        metrics=_section(MetricsConfig, data.get("metrics", {}), f"{origin}: [metrics]"),
        formats=_formats(data.get("formats", {}), f"{origin}: [formats]"),
    )
    validate(cfg, origin)
    return cfg


FORMAT_NAME_RE = re.compile(r"[a-z][a-z0-9_]*")


def _formats(raw: Any, where: str) -> dict[str, dict[str, Any]]:
    """The shape of [formats.NAME] tables; the format registry compiles them (exit 5 when wrong)."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table of [formats.NAME] tables")
    for name, table in raw.items():
        if not FORMAT_NAME_RE.fullmatch(name):
            raise ConfigError(f"{where}: format name {name!r} must be lower-case letters, digits and _")
        if not isinstance(table, dict) or not isinstance(table.get("family"), str):
            raise ConfigError(f"{where}: formats.{name} needs a family (json, w3c, apache, ...)")
    return dict(raw)


def _location(data: dict[str, Any], name: str, default: str, origin: str) -> str:
    """A top-level path or name: text (a table such as ``[store]`` would otherwise become a folder
    literally named ``{'path': ...}``), and not empty (the current directory is not a store)."""
    value = data.get(name, default)
    if isinstance(value, dict | list | bool) or str(value).strip() == "":
        raise ConfigError(f"{origin}: {name} must be a path (text), got {value!r}")
    return str(value)


def validate(cfg: Config, origin: str = "config") -> None:
    p = cfg.privacy
    # A full-length prefix stores every client's whole address; 0 stores nothing worth keeping (and
    # is a typo far more often than a choice). Both break the privacy policy's promise: refused.
    for setting, prefix, full in (("ipv4_prefix", p.ipv4_prefix, 32), ("ipv6_prefix", p.ipv6_prefix, 128)):
        if isinstance(prefix, bool) or not 1 <= prefix < full:
            keeps = " (it would store full client addresses)" if prefix == full else ""
            raise ConfigError(f"{origin}: privacy.{setting} must be 1-{full - 1}, got {prefix}{keeps}")
    if p.pseudonym not in ("hmac", "off"):
        raise ConfigError(f"{origin}: privacy.pseudonym must be 'hmac' or 'off', got {p.pseudonym!r}")
    if p.key_period not in ("day", "week", "month"):
        raise ConfigError(f"{origin}: privacy.key_period must be day, week or month, got {p.key_period!r}")
    r = cfg.retention
    for name, value in [
        ("retention", r.retention),
        ("rejects", r.rejects),
        ("manifests", r.manifests),
        *((f"domains.{d}", v) for d, v in r.domains.items()),
    ]:
        if not DURATION_RE.fullmatch(value):
            raise ConfigError(f"{origin}: retention.{name} must look like 2y, 18m or 730d, got {value!r}")
    if cfg.query.timeout.strip() != "off" and not TIMEOUT_RE.fullmatch(cfg.query.timeout):
        raise ConfigError(
            f"{origin}: query.timeout must look like 30s, 5m or 1h (0: none), got {cfg.query.timeout!r}"
        )
    i = cfg.ingest
    if i.flush_seconds <= 0 or i.flush_lines < 1:
        raise ConfigError(f"{origin}: ingest.flush_seconds and ingest.flush_lines must be positive")
    if not 1 <= i.workers <= 64:
        raise ConfigError(f"{origin}: ingest.workers must be 1-64, got {i.workers}")
    if SKEW_RE.fullmatch(i.max_future_skew) is None:
        skew = i.max_future_skew
        raise ConfigError(f"{origin}: ingest.max_future_skew must look like 3d, 12h or 30m, got {skew!r}")
    if not 0 <= i.max_reject_rate <= 1:
        raise ConfigError(f"{origin}: ingest.max_reject_rate must be 0-1 (a share), got {i.max_reject_rate}")
    for proxy in i.trusted_proxies:
        try:
            ipaddress.ip_network(proxy.strip(), strict=False)
        except ValueError:
            raise ConfigError(
                f"{origin}: ingest.trusted_proxies: {proxy!r} is not an address or CIDR"
            ) from None
    if i.max_line_bytes < 256 or i.block_bytes < 2 * i.max_line_bytes:
        raise ConfigError(f"{origin}: ingest.block_bytes must be at least twice ingest.max_line_bytes (≥256)")


def _source(raw: Any, where: str) -> SourceConfig:
    """The shape of one [[sources]] entry. Its format and olddir are checked where they are used, by
    the ingest stage (``ingest.run``: the format registry, ``ingest.paths.check_olddir``), so that the
    kernel needs no other stage and a format given on the command line meets the same rule."""
    if not isinstance(raw, dict) or "path" not in raw:
        raise ConfigError(f"{where}: each source needs a path")
    src: SourceConfig = _section(SourceConfig, raw, where)
    if src.domain_from_path is not None and "{domain}" not in src.domain_from_path:
        raise ConfigError(f"{where}: domain_from_path must contain {{domain}}")
    return src


def _section(cls: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    fields = cls.__dataclass_fields__
    _no_unknown(raw, set(fields), where)
    values: dict[str, Any] = {}
    for name, value in raw.items():
        f = fields[name]
        default = f.default_factory() if f.default_factory is not MISSING else f.default
        values[name] = _coerce(value, "" if default is MISSING else default, f"{where}.{name}")
    return cls(**values)


DURATION_RE = re.compile(r"[1-9][0-9]*[ymd]")
TIMEOUT_RE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*(ms|s|m|h)?\s*")
_TIMEOUT_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


SKEW_RE = re.compile(r"\s*([0-9]+)\s*([dhms])\s*")


def future_skew(value: str) -> timedelta:
    """``ingest.max_future_skew`` as a timedelta ('3d' → 3 days); validated by ``validate``."""
    m = SKEW_RE.fullmatch(value)
    if m is None:
        raise ConfigError(f"ingest.max_future_skew must look like 3d, 12h or 30m, got {value!r}")
    return timedelta(seconds=int(m.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1}[m.group(2)])


def timeout_seconds(value: str) -> float | None:
    """``query.timeout`` in seconds ('5m' → 300.0); None for no limit ('0', 'off') or a bad value."""
    m = TIMEOUT_RE.fullmatch(value) if value.strip() != "off" else None
    seconds = float(m.group(1)) * _TIMEOUT_UNITS[m.group(2)] if m else 0.0
    return seconds or None


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where}: expected a table of strings")
        return {str(k).lower(): v for k, v in value.items()}
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float) and not isinstance(default, bool):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        value = type(default)(value) if ok else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        raise ConfigError(f"{where}: invalid value {value!r}")
    return value


def _no_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(f"{where}: unknown setting {unknown[0]!r} (known: {', '.join(sorted(known))})")
