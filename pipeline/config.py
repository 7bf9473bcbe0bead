"""Configuration: one TOML file (see configs/hostlogs.toml), typed, validated with one-line errors.

Every setting is declared once, below: a typed field, its rule (``setting(default, rule)``) and the
docstring under it. That feeds the loader, ``validate``, and (``pipeline/cli/_settings.py``) the
``HOSTLOGS_<SECTION>_<NAME>`` environment overrides, ``hostlogs config check``, the example config and
docs/configuration.md (a test fails when they drift). Defaults are chosen for privacy.
"""

from __future__ import annotations

import contextlib
import difflib
import math
import os
import re
import socket
import stat
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import MISSING, Field, dataclass, field, fields, replace
from pathlib import Path
from shlex import quote
from typing import Any, Literal

__all__ = [
    "Config", "GeoipConfig", "IngestConfig", "MetricsConfig", "PrivacyConfig", "QueryConfig",
    "RetentionConfig", "SourceConfig", "declared", "load", "replace", "value_of",
]  # fmt: skip

from pipeline.errors import ConfigError
from pipeline.rules import (  # the rules of values
    DURATION,
    FULL_PREFIX,
    MEMORY,
    NETWORK,
    POSITIVE,
    SKEW_RE,
    TIMEOUT,
    Rule,
    between,
    check_domain_retention,
    like,
    one_of,
    setting,
    undecodable,
)

Origin = Literal["default", "file", "env", "flag"]
Origins = Mapping[str, Origin]  # dotted setting name → where its value came from (absent: the default)


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
    """auto, common, combined, vhost_combined, a [formats.NAME], or an Apache LogFormat string."""
    domain: str | None = None
    """Domain for formats without %v/%V/%{Host}i."""
    domain_from_path: str | None = None
    """Template such as /var/www/vhosts/{domain}/logs/access_log* when the domain is in the path."""
    olddir: str | None = None
    """logrotate's olddir: where rotated files are moved (absolute, or relative to the log's directory)."""


@dataclass(frozen=True)
class PrivacyConfig:
    ipv4_prefix: int = setting(24, between(1, 31, notes=((32, FULL_PREFIX),)))
    """Bits of an IPv4 client address kept (24: 203.0.113.77 is stored as 203.0.113.0/24)."""
    ipv6_prefix: int = setting(48, between(1, 127, notes=((128, FULL_PREFIX),)))
    """Bits of an IPv6 client address kept (48: what ISPs hand to one customer site)."""
    sensitive_params: tuple[str, ...] = DEFAULT_SENSITIVE_PARAMS
    """Query/referrer parameters whose values become REDACTED (docs/privacy.md)."""
    pseudonym: str = setting("hmac", one_of("hmac", "off"))
    """hmac: client_id is a keyed pseudonym of the full address per key period; off: no client_id."""
    key_period: str = setting("month", one_of("day", "week", "month"))
    """Period of one pseudonym key (by event date): pseudonyms link requests within one period only."""
    key_dir: str = setting("", recommended="/var/lib/hostlogs/keys", said="<store>-keys")
    """Directory of the pseudonym keys (mode 0700), outside the store: a copy of the store carries no keys."""


@dataclass(frozen=True)
class IngestConfig:
    block_bytes: int = setting(32 << 20, between(512, 1 << 32))
    """Bytes per batch (and at most 1/200 as many lines), ≥ 2x max_line_bytes. Peak memory is about
    150 MiB + 8x this per worker (two workers, 32 MiB: ~670 MiB); up to ~15x on binary garbage."""
    max_line_bytes: int = setting(64 << 10, between(256, 1 << 30))
    """Longer lines are rejected as too_long without being loaded whole."""
    partial_line_grace: float = setting(300.0, between(0, None))
    """Seconds after which a file's trailing line without newline is complete (rotated ones too)."""
    workers: int = setting(2, between(1, 64))
    """Blocks parsed in parallel (threads), each a block of memory; polars gets the cores left (≥ 1)."""
    flush_seconds: float = setting(30.0, POSITIVE)
    """Piped mode (source '-'): longest time a line waits in memory before it is committed."""
    flush_lines: int = setting(100_000, POSITIVE)
    """Piped mode: commit at least every this many lines."""
    lock_wait: float = setting(0.0, between(0, None))
    """Seconds to wait for a concurrent ingest to finish before exiting with code 75."""
    max_future_skew: str = setting("3d", like(SKEW_RE, "3d, 12h or 30m"))
    """Lines dated later than now plus this are rejected as bad_timestamp."""
    max_reject_rate: float = setting(0.05, between(0, 1, " (a share)"))
    """A source whose share of rejected lines in a run exceeds this fails the run (exit 10); 1 = never."""
    trusted_proxies: tuple[str, ...] = setting((), NETWORK, example=["10.0.0.0/8", "127.0.0.1"])
    """Your proxies, load balancers and CDN: the client is the right-most X-Forwarded-For not among them."""


@dataclass(frozen=True)
class GeoipConfig:
    country_db: str = setting("", example="/var/lib/GeoIP/GeoLite2-Country.mmdb")
    """MaxMind GeoLite2/GeoIP2 Country or City database (.mmdb); empty = no country."""
    asn_db: str = setting("", example="/var/lib/GeoIP/GeoLite2-ASN.mmdb")
    """MaxMind GeoLite2-ASN (or GeoIP2-ISP) database; empty = no ASN."""


@dataclass(frozen=True)
class RetentionConfig:
    retention: str = setting("2y", DURATION)
    """Rows older than this (by UTC event date) are purged: 2y, 18m and 730d work."""
    rejects: str = setting("30d", DURATION)
    """Retention of the quarantine (by ingest date)."""
    manifests: str = setting("2y", DURATION)
    """Retention of ingest manifests (chain of custody), by creation date."""
    domains: dict[str, str] = setting(dict, DURATION, example={"example.com": "1y"})  # noqa: RUF009
    """Shorter retention for some domains (customer contracts); never longer than retention."""


# (It could be switched off once, by the config or HOSTLOGS_QUERY_REQUIRE_CASE: an investigator's own
# environment could then query without a case. Kept as a setting so that configs saying true still load.)
CASE_ALWAYS = Rule(
    "must be true (every access to the store is under a case: --case; the switch was removed)",
    lambda v: v is True,
)


@dataclass(frozen=True)
class QueryConfig:
    require_case: bool = setting(True, CASE_ALWAYS)
    """Queries and investigations without --case are refused (exit 2). Always true: the store is
    consulted only under a documented reason, whoever edits the config or the environment."""
    memory_limit: str = setting("4GB", MEMORY)
    """DuckDB memory limit (it spills beyond it); a larger result exits with 9."""
    threads: int = setting(2, between(1, 256))
    """DuckDB threads for queries."""
    timeout: str = setting("5m", TIMEOUT)
    """Longest a query, shell statement or investigation runs (0 = no limit); exit 9 beyond."""
    reader: str = setting("auto", one_of("auto", "arrow"))
    """auto: DuckDB reads a local store itself, in a thread Landlock keeps from writing; arrow: pyarrow."""


@dataclass(frozen=True)
class MetricsConfig:
    textfile: str = setting("", example="/var/lib/node_exporter/textfile/hostlogs.prom")
    """Prometheus metrics written after every run, for node_exporter's textfile collector; empty = none."""


@dataclass(frozen=True)
class Config:
    store: str = setting("./hostlogs-store", recommended="/var/lib/hostlogs/store")
    """The evidence store: a directory (the first ingest creates it)."""
    server: str = setting(socket.gethostname, said="this machine's hostname", example="web-01")
    """Name of this web server, recorded in every row and manifest."""
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


SECTIONS: dict[str, Any] = {
    f.name: type(f.default) for f in fields(Config) if hasattr(f.default, "__dataclass_fields__")
}


def declared(cls: Any = Config, section: str = "") -> Iterator[tuple[str, Field[Any]]]:
    """(dotted name, field) of every setting: the top level, then each section (or ``SourceConfig``'s)."""
    for f in fields(cls):
        if cls is not Config or "rule" in f.metadata:  # (not a section, the sources or the formats)
            yield (f"{section}.{f.name}" if section else f.name), f
    for name, sub in SECTIONS.items() if cls is Config else ():
        yield from declared(sub, name)


def default_of(f: Field[Any]) -> Any:
    if f.default_factory is not MISSING:
        return f.default_factory()
    return None if f.default is MISSING else f.default


# loading (the environment and flags are layered on by pipeline/cli/_settings.py, which records origins)


def load(path: str | Path | None) -> Config:
    """The config file ``path`` (or the defaults), validated."""
    return Config() if path is None else from_dict(read(path), origin=str(path))


MAX_CONFIG_BYTES = 1 << 20  # a config is a few KiB; more is some other file given by mistake


def read(path: str | Path) -> dict[str, Any]:
    try:
        with open(path, "rb", opener=_no_wait) as f:
            data = f.read(MAX_CONFIG_BYTES + 1)
        if len(data) > MAX_CONFIG_BYTES:
            raise ConfigError(f"config file {path} is larger than 1 MiB: not a config file")
        return tomllib.loads(data.decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:  # TOML is UTF-8
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    except RecursionError:  # (arrays nested hundreds deep)
        raise ConfigError(f"config file {path} is not valid TOML: nested too deeply") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None


def _no_wait(path: str, flags: int) -> int:
    """A file, pipe (``<(…)``, /dev/stdin) or device, opened without waiting for a writer (a FIFO nobody
    writes reads empty; /dev/zero stops at the bound: both had run forever, found by review)."""
    fd = os.open(path, flags | os.O_NONBLOCK)
    os.set_blocking(fd, True)
    return fd


def from_dict(data: dict[str, Any], origin: str = "config", origins: Origins | None = None) -> Config:
    _no_unknown(data, {f.name for f in fields(Config)}, origin)
    sections = {n: _section(cls, data.get(n, {}), f"{origin}: [{n}]") for n, cls in SECTIONS.items()}
    cfg = Config(
        store=_location(data, "store", Config.store, origin),
        sources=tuple(_source(s, f"{origin}: sources[{i}]") for i, s in enumerate(data.get("sources", []))),
        formats=_formats(data.get("formats", {}), f"{origin}: [formats]"),
        **sections,
    )
    cfg = replace(cfg, server=_location(data, "server", "", origin)) if "server" in data else cfg
    validate(cfg, origin, origins)
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
    """Text: a table such as ``[store]`` would otherwise become a folder named ``{'path': ...}``."""
    value = data.get(name, default)
    if not isinstance(value, str):  # (a number is a typo too: `store = 5` is not a folder "5")
        raise ConfigError(f"{origin}: {name} must be a path (text), got {value!r}")
    return str(value)


def validate(cfg: Config, origin: str = "config", origins: Origins | None = None) -> None:
    """Each setting meets its declared rule, then the rules between settings. A message names where the
    value came from: ``c.toml: ingest.workers``, ``HOSTLOGS_INGEST_WORKERS (environment): …``, ``--store``."""

    def at(name: str) -> str:
        kind = (origins or {}).get(name)
        if kind == "env":
            return f"HOSTLOGS_{name.replace('.', '_').upper()} (environment): {name}"
        return f"--{name}: {name}" if kind == "flag" else f"{origin}: {name}"

    for name, f in declared():
        rule: Rule | None = f.metadata.get("rule")
        value = value_of(cfg, name)
        if isinstance(value, dict):  # each value of a table, named by its key; each element of a list
            items = [(f"{at(name)}.{k}", v) for k, v in value.items()]
        else:
            items = [(at(name), v) for v in (value if isinstance(value, tuple) else [value])]
        for where, item in items if rule else ():
            if rule and (problem := rule.problem(where, item)):
                raise ConfigError(problem)
    for name in ("store", "server"):
        if str(getattr(cfg, name)).strip() == "":  # the current directory is not a store
            raise ConfigError(f"{at(name)} must be a path (text), got ''")
    _check_text(cfg, at)
    if cfg.ingest.block_bytes < 2 * cfg.ingest.max_line_bytes:
        raise ConfigError(f"{at('ingest.block_bytes')} must be at least twice ingest.max_line_bytes (≥256)")
    check_domain_retention(cfg.retention.domains, cfg.retention.retention, at)
    _check_key_dir(cfg, at("privacy.key_dir") + ("" if cfg.privacy.key_dir else " (default <store>-keys)"))


def value_of(cfg: Config, name: str) -> Any:
    """A setting's value by its dotted name (``ingest.workers``, ``store``)."""
    section, _, key = name.rpartition(".")
    return getattr(getattr(cfg, section) if section else cfg, key)


# Stored in rows and records, or opened by every command: UTF-8 (a log's file name may be any bytes)
_UTF8 = ("store", "server", "privacy.key_dir", "geoip.country_db", "geoip.asn_db", "metrics.textfile")


def _check_text(cfg: Config, at: Callable[[str], str]) -> None:
    """No setting holds a NUL (no path or name can: every command failed on it with exit 1), and
    the store, names and paths every command opens are UTF-8 (an environment in Latin-1 gave a
    server name no row can hold, and a store whose files verify reported as altered)."""

    values = [(n, value_of(cfg, n)) for n, _ in declared()]
    values += [(f"sources[{i}].{k}", v) for i, src in enumerate(cfg.sources) for k, v in vars(src).items()]
    for name, value in values:
        texts = (
            [*value, *value.values()]
            if isinstance(value, dict)
            else value
            if isinstance(value, tuple)
            else [value]
        )
        if any(isinstance(t, str) and "\x00" in t for t in texts):
            raise ConfigError(f"{at(name)} holds a NUL character")
    for name in _UTF8:
        if (raw := undecodable(str(value_of(cfg, name)))) is not None:
            raise ConfigError(f"{at(name)} must be UTF-8 text, got {raw!r}")


def _check_key_dir(cfg: Config, where: str) -> None:
    """The pseudonym keys must not travel with the store (a copy or backup of it would carry them), nor
    be open to others: with the keys, pseudonyms can be linked to the addresses they were made from."""
    keys, store = Path(cfg.key_dir).absolute(), Path(cfg.store).absolute()
    if keys.resolve().is_relative_to(store.resolve()):
        raise ConfigError(f"{where} {keys} is inside the store: put the keys beside it ({store}-keys)")
    # the directory and its custody/ subdirectory (chain-of-custody keys), as ingest checks them;
    # missing: the first run makes it 0700; not ours to enter (an investigator): closed, fine
    for folder, what in ((keys, where), (keys / "custody", f"{where}: its custody directory")):
        with contextlib.suppress(PermissionError):
            mode = folder.stat().st_mode if folder.is_dir() else 0
            if mode & 0o077:
                opened = f"is open to group/other (mode {stat.S_IMODE(mode):04o})"
                raise ConfigError(f"{what} {folder} {opened}: run chmod 700 {quote(str(folder))}")


def _source(raw: Any, where: str) -> SourceConfig:
    """The shape of one [[sources]] entry; its format and olddir are checked by the ingest stage (where
    they are used: a format given on the command line meets the same rule; the kernel needs no stage)."""
    if not isinstance(raw, dict) or "path" not in raw:
        raise ConfigError(f"{where}: each source needs a path")
    src: SourceConfig = _section(SourceConfig, raw, where)
    if src.domain_from_path is not None and src.domain_from_path.count("{domain}") != 1:
        raise ConfigError(f"{where}: domain_from_path must contain {{domain}} once")
    return src


def _section(cls: Any, raw: Any, where: str) -> Any:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a table")
    known = cls.__dataclass_fields__
    _no_unknown(raw, set(known), where)
    defaults = {name: default_of(known[name]) for name in raw}
    return cls(
        **{k: _coerce(v, "" if defaults[k] is None else defaults[k], f"{where}.{k}") for k, v in raw.items()}
    )


def _coerce(value: Any, default: Any, where: str) -> Any:
    if isinstance(default, dict):
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise ConfigError(f"{where}: expected a table of strings")
        return {str(k).lower(): v for k, v in value.items()}
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int | float):  # 24.5 bits or 1.9 workers is a typo, not 24 or 1
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        ok = ok and (isinstance(default, float) or isinstance(value, int) or value.is_integer())
        value = type(default)(value) if ok and math.isfinite(value) else value
    elif isinstance(default, tuple):
        ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        value = tuple(value) if ok else value
    else:
        ok = isinstance(value, str)
    if not ok:
        kinds = {bool: "true or false", int: "a whole number", float: "a number", tuple: "a list of text"}
        raise ConfigError(f"{where}: invalid value {value!r}, expected {kinds.get(type(default), 'text')}")
    return value


def _no_unknown(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = sorted(set(raw) - known)
    if unknown:
        close = difflib.get_close_matches(unknown[0], sorted(known), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ConfigError(
            f"{where}: unknown setting {unknown[0]!r} ({hint}known: {', '.join(sorted(known))})"
        )
