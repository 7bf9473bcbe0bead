"""Settings as an operator meets them: the environment and flags over the config file, where each value
came from, ``hostlogs config check``, and the example config and docs/configuration.md.

Each setting is declared once, in ``pipeline/config.py`` (a typed field, its rule, the docstring under
it); everything here is derived from that. Precedence: default < file < ``HOSTLOGS_<SECTION>_<NAME>``
environment variable < command-line flag (``--store``). Regenerate the example and the docs with
``python scripts/config_docs.py``; with ``--check`` it (and a test) fails when they are stale.
"""

from __future__ import annotations

import ast
import difflib
import functools
import glob
import itertools
import json
import os
import textwrap
from collections.abc import Iterator, Mapping
from dataclasses import Field, dataclass, fields
from pathlib import Path
from typing import Any

from pipeline import config
from pipeline.cli import _masking
from pipeline.config import Config, Origin
from pipeline.errors import ConfigError

# environment variables of hostlogs that are not settings (docs/operations.md)
NOT_SETTINGS = {"HOSTLOGS_DEBUG", "HOSTLOGS_SCANNER"}


def env_name(name: str, f: Field[Any]) -> str | None:
    """HOSTLOGS_<SECTION>_<NAME> (``HOSTLOGS_INGEST_WORKERS``); lists and tables are set in the file only."""
    scalar = isinstance(config.default_of(f), str | int | float | bool)
    return "HOSTLOGS_" + name.replace(".", "_").upper() if scalar else None


# ----------------------------------------------------------------------------------------------------
# default < file < environment < flag


@dataclass(frozen=True)
class Resolved:
    """A validated config and where each value came from (dotted name → origin; absent: the default)."""

    config: Config
    path: str | None
    origins: dict[str, Origin]

    def source(self, name: str) -> str:
        """``default``, ``file``, ``env HOSTLOGS_…`` or ``flag --store``."""
        kind = self.origins.get(name, "default")
        if kind == "env":
            return f"env {'HOSTLOGS_' + name.replace('.', '_').upper()}"
        return f"flag --{name}" if kind == "flag" else kind


def resolve(
    path: str | Path | None, *, store: str | None = None, environ: Mapping[str, str] | None = None
) -> Resolved:
    """The config file (or the defaults), the ``HOSTLOGS_…`` environment and ``--store`` over it, validated
    once as a whole; a message names where the bad value came from (file, variable or flag)."""
    data = config.read(path) if path is not None else {}
    origins: dict[str, Origin] = {k: "file" for k in data}
    origins |= {
        f"{k}.{n}": "file" for k, v in data.items() if k in config.SECTIONS and isinstance(v, dict) for n in v
    }
    environ = os.environ if environ is None else environ
    for name, f in config.declared():
        if (var := env_name(name, f)) is None or var not in environ:
            continue
        section = name.rpartition(".")[0]
        table = data.setdefault(section, {}) if section else data
        if isinstance(table, dict):  # (a section that is not a table: from_dict says so)
            table[f.name], origins[name] = _from_env(var, environ[var], config.default_of(f)), "env"
    if store is not None:
        data["store"], origins["store"] = store, "flag"
    origin = str(path) if path is not None else "config"
    return Resolved(config.from_dict(data, origin, origins), None if path is None else str(path), origins)


def _from_env(var: str, text: str, default: Any) -> Any:
    """An environment value typed like the file's value of that setting (``4`` is an integer)."""
    try:
        if isinstance(default, bool):
            return {"true": True, "yes": True, "1": True, "false": False, "no": False, "0": False}[
                text.lower()
            ]
        if isinstance(default, int | float) and not text.strip().isascii():
            raise ValueError(text)  # (int() reads Arabic-Indic and other digits: ٢ is 2)
        return type(default)(text.strip()) if isinstance(default, int | float) else text
    except (KeyError, ValueError):
        kind = "true or false" if isinstance(default, bool) else f"a number such as {default!r}"
        raise ConfigError(f"{var} (environment): invalid value {text!r}, expected {kind}") from None


# ----------------------------------------------------------------------------------------------------
# hostlogs config check


@dataclass(frozen=True)
class ConfigCheck:
    """A config that loads: every effective value with where it came from, and what looks wrong but works."""

    path: str | None
    settings: tuple[tuple[str, Any, str], ...]  # (name, value, source)
    warnings: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "config": self.path,
            "ok": True,
            "warnings": list(self.warnings),
            "settings": {name: {"value": _plain(v), "from": src} for name, v, src in self.settings},
        }


def check(
    path: str | Path | None, *, store: str | None = None, environ: Mapping[str, str] | None = None
) -> ConfigCheck:
    """Everything a run would refuse (a ``ConfigError``, exit 3), and more: the sources' formats, the
    GeoIP databases opened, the store path; warnings for what works but is probably a mistake."""
    environ = os.environ if environ is None else environ
    r = resolve(path, store=store, environ=environ)
    cfg, origin = r.config, str(path) if path is not None else "config"
    _masking.mask_as(cfg)  # its warnings and errors (found by review: at /24 under a /16 config)
    from pipeline.ingest.paths import check_sources  # the same checks as every command's load_config

    check_sources(cfg, origin)
    _check_geoip(cfg)
    _check_store(cfg.store)
    _check_privacy_record(cfg)
    warnings = [*_source_warnings(cfg, origin), *_env_warnings(environ)]
    textfile = Path(cfg.metrics.textfile) if cfg.metrics.textfile else None
    if textfile is not None:
        from pipeline.lifecycle.metrics import check_textfile

        check_textfile(textfile)
    if textfile is not None and not textfile.parent.is_dir():
        warnings.append(
            f"metrics.textfile: directory {textfile.parent} does not exist: no metrics are written"
        )
    return ConfigCheck(r.path, tuple(_effective(r)), tuple(warnings))


def _check_geoip(cfg: Config) -> None:
    """Open the databases the way ingest does (type and format checked), then close them."""
    if cfg.geoip.country_db or cfg.geoip.asn_db:
        from pipeline.privacy.geo import Geo

        paths = (Path(p) if p else None for p in (cfg.geoip.country_db, cfg.geoip.asn_db))
        with Geo(*paths):
            pass


def _check_store(store: str) -> None:
    path = Path(store).absolute()
    existing = next(p for p in (path, *path.parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"store {store}: {existing} is not a directory; choose another store path")


def _check_privacy_record(cfg: Config) -> None:
    """An existing store's privacy record against the config (what ingest would refuse on it)."""
    from pipeline.ingest import privacy_record
    from pipeline.store.commit import Store

    store = Store(cfg.store)
    if store.is_folder(""):  # no store yet: its first ingest records the settings
        why = privacy_record.mismatch(store, cfg)
        if why is not None:
            raise ConfigError(why)


def _source_warnings(cfg: Config, origin: str) -> Iterator[str]:
    for i, src in enumerate(cfg.sources):
        if src.path == "-":
            continue
        parts = Path(src.path).parts
        fixed = Path(*itertools.takewhile(lambda p: not glob.has_magic(p), parts[:-1])) if parts else Path()
        if not fixed.is_dir():
            yield f"{origin}: sources[{i}]: directory {fixed} does not exist: {src.path} matches no file"
        elif not glob.glob(src.path):
            yield f"{origin}: sources[{i}]: {src.path} matches no file yet"


def _env_warnings(environ: Mapping[str, str]) -> Iterator[str]:
    known = {v for n, f in config.declared() if (v := env_name(n, f))}
    # lists and tables (ingest.trusted_proxies, retention.domains...) have no variable: say so
    file_only = {
        "HOSTLOGS_" + n.replace(".", "_").upper(): n for n, f in config.declared() if not env_name(n, f)
    }
    for var in sorted(v for v in environ if v.startswith("HOSTLOGS_") and v not in known | NOT_SETTINGS):
        if var in file_only:
            yield f"environment variable {var} is ignored: {file_only[var]} is set in the config file only"
            continue
        close = difflib.get_close_matches(var, sorted(known), n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        yield f"environment variable {var} is not a setting and is ignored{hint}"


def _effective(r: Resolved) -> Iterator[tuple[str, Any, str]]:
    cfg = r.config
    for name, _ in config.declared():
        yield name, config.value_of(cfg, name), r.source(name)
    for i, src in enumerate(cfg.sources):
        for f in fields(src):
            if (value := getattr(src, f.name)) is not None:
                yield f"sources[{i}].{f.name}", value, r.source("sources")
    for name, table in cfg.formats.items():
        yield f"formats.{name}", table, r.source("formats")


def render_check(report: ConfigCheck) -> str:
    """The effective configuration as text: name, where it came from, value (TOML); nothing cut."""
    rows = [(name, src, toml_value(value)) for name, value, src in report.settings]
    w1, w2 = (max(len(row[i]) for row in rows) for i in (0, 1))
    head = f"config {report.path or '(none: defaults)'}: ok" + (
        f", {len(report.warnings)} warning(s)" * bool(report.warnings)
    )
    return "\n".join([head, *(f"{n:<{w1}}  {s:<{w2}}  {v}" for n, s, v in rows)])


# ----------------------------------------------------------------------------------------------------
# the example config and the docs, from the declarations

BEGIN_TOML = "# --- settings: generated from pipeline/config.py by `python scripts/config_docs.py` ---"
END_TOML = "# --- end of the generated settings ---"
BEGIN_MD = "<!-- settings: generated from pipeline/config.py by `python scripts/config_docs.py` -->"
END_MD = "<!-- end of the generated settings -->"


@functools.cache
def helps() -> dict[tuple[str, str], str]:
    """(class name, field) → the docstring under that field in pipeline/config.py, on one line."""
    out: dict[tuple[str, str], str] = {}
    for node in ast.parse(Path(config.__file__).read_text(encoding="utf-8")).body:
        for stmt, doc in itertools.pairwise(node.body if isinstance(node, ast.ClassDef) else []):
            field_ = (
                stmt.target.id
                if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
                else ""
            )
            if field_ and isinstance(doc, ast.Expr) and isinstance(doc.value, ast.Constant):
                out[node.name, field_] = " ".join(str(doc.value.value).split())  # type: ignore[attr-defined]
    return out


def _groups() -> Iterator[tuple[str, type, list[tuple[str, Field[Any]]]]]:
    """(section, its class, its settings) in declaration order; the top level first."""
    for section, entries in itertools.groupby(config.declared(), key=lambda e: e[0].rpartition(".")[0]):
        yield section, config.SECTIONS.get(section, Config), list(entries)


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return (
            "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
            if value
            else "{}"
        )
    return json.dumps(value) if isinstance(value, str) else repr(value)


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def render_example() -> str:
    """The generated part of configs/hostlogs.toml: every setting with its help; the default commented
    out (uncomment to change it), what a server install sets (store, key_dir) as a value."""
    out = [BEGIN_TOML]
    for section, cls, entries in _groups():
        out += [f"\n[{section}]"] if section else []
        for _, f in entries:
            shown, default = f.metadata.get("shown", {}), config.default_of(f)
            said = shown.get("said") or toml_value(default)
            out += textwrap.wrap(
                helps().get((cls.__name__, f.name), ""), 98, initial_indent="# ", subsequent_indent="# "
            )
            if "recommended" in shown:
                out.append(f"{f.name} = {toml_value(shown['recommended'])}   # default: {said}")
            else:
                value = shown.get("example", default) if "example" in shown else default
                note = f"   # default: {said}" if value != default or "said" in shown else ""
                out += _commented(f"{f.name} = {toml_value(value)}{note}")
    return "\n".join([*out, END_TOML])


def _commented(line: str) -> list[str]:
    """``# name = value``; a long list goes over several lines."""
    if len(line) <= 100 or "[" not in line:
        return [f"# {line}"]
    head, items = line.split("[", 1)
    rows = textwrap.wrap(items.rstrip("]"), 92, break_on_hyphens=False, break_long_words=False)
    return [f"# {head}[", *(f"#     {row}" for row in rows), "# ]"]


def render_docs() -> str:
    """The generated part of docs/configuration.md: a table per section."""
    out = [BEGIN_MD]
    for section, cls, entries in [
        *_groups(),
        ("sources", config.SourceConfig, list(config.declared(config.SourceConfig))),
    ]:
        title = {"": "Top level", "sources": "`[[sources]]` (one table per log source)"}.get(
            section, f"`[{section}]`"
        )
        out += [
            f"\n### {title}\n",
            "| setting | default | environment | rule | meaning |",
            "|---|---|---|---|---|",
        ]
        for name, f in entries:
            shown, rule = f.metadata.get("shown", {}), f.metadata.get("rule")
            said = shown.get("said", "")
            default = (f"`{said}`" if "<" in said else said) or f"`{toml_value(config.default_of(f))}`"
            env = f"`{var}`" if section != "sources" and (var := env_name(name, f)) else "—"
            cells = [
                f"`{f.name}`",
                default,
                env,
                rule.says if rule else "",
                helps().get((cls.__name__, f.name), ""),
            ]
            out.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join([*out, END_MD])


def generated_block(text: str, begin: str, end: str) -> str:
    """The part of ``text`` from ``begin`` to ``end`` (inclusive); empty when the markers are missing."""
    start, stop = text.find(begin), text.find(end)
    return text[start : stop + len(end)] if -1 < start < stop else ""
