"""The format registry: every log format hostlogs reads is an entry here, built-ins included.

An entry is data: a name, the family that compiles it (``apache``; JSON, W3C and AWS formats are
families to come) and the family's own definition text. ``formats/__init__.py`` registers the
built-ins through ``register`` exactly as a new format registers itself; a family may also accept
definitions typed by the user (a raw Apache ``LogFormat`` string) through ``register_family``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pipeline.errors import FormatError
from pipeline.ingest.fields import Format

Compile = Callable[[str, str], Format]  # (definition, name) -> the compiled format


@dataclass(frozen=True)
class FormatEntry:
    """A named format."""

    name: str
    family: str  # which compiler reads ``definition``: "apache" (LogFormat strings), ...
    definition: str  # the family's text for this format, e.g. '%h %l %u %t "%r" %>s %b'
    compile: Compile
    # Auto-detection: the formats whose score ties are told apart by this (the more specific format
    # higher: vhost_combined over combined over common). None: never chosen by auto-detection.
    detect_priority: int | None = None
    description: str = ""

    def build(self) -> Format:
        return self.compile(self.definition, self.name)


@dataclass(frozen=True)
class Family:
    """A compiler of user-written definitions (``--format '%h %l ...'``)."""

    name: str
    accepts: Callable[[str], bool]  # is this text one of this family's definitions?
    compile: Compile
    hint: str  # how the "unknown format" message names such a definition ("a LogFormat string")
    # a [formats.NAME] table may give the definition as its keys (a JSON mapping written as TOML)
    keyed: bool = False


_ENTRIES: dict[str, FormatEntry] = {}
_FAMILIES: list[Family] = []
_FROM_CONFIG: set[str] = set()  # names registered by ``register_config`` (replaced by the next config)
AUTO = "auto"
USER_DETECT_PRIORITY = 40  # a user format with ``detect = true`` wins ties against the built-ins


def register_config(tables: dict[str, dict[str, Any]], origin: str = "config") -> None:
    """A config's ``[formats.NAME]`` tables as named formats, compiled now (a bad one fails before
    any work), replacing those of the config registered before.

    ``family`` names the compiler; ``definition`` is its text, or else every other key of the table
    is the definition as a JSON object (the JSON family's mapping written as TOML keys);
    ``detect = true`` lets auto-detection choose it.
    """
    for name in _FROM_CONFIG:
        _ENTRIES.pop(name, None)
    _FROM_CONFIG.clear()
    meta = {"family", "definition", "description", "detect"}
    for name, table in tables.items():
        where = f"{origin}: formats.{name}"
        family = next((f for f in _FAMILIES if f.name == table.get("family")), None)
        if family is None:
            known = ", ".join(f.name for f in _FAMILIES)
            raise FormatError(f"{where}: unknown family {table.get('family')!r} (known: {known})")
        if name in _ENTRIES or name == AUTO:
            raise FormatError(f"{where}: {name!r} is the name of a built-in format; choose another")
        definition = table.get("definition")
        keys = sorted(k for k in table if k not in meta)
        if definition is None and not family.keyed:
            # (found by review: the keys were compiled as the family's text, {"logformat": ...})
            raise FormatError(
                f"{where}: family {family.name} needs definition = '…' (its text)"
                + (f"; not a setting of a format table: {', '.join(keys)}" if keys else "")
            )
        if definition is None:
            definition = json.dumps({k: table[k] for k in keys})
        elif not isinstance(definition, str):
            raise FormatError(f"{where}: definition must be text")
        elif keys:
            raise FormatError(f"{where}: unknown key(s) {', '.join(keys)} beside definition")
        if not isinstance(table.get("detect", False), bool):
            raise FormatError(f"{where}: detect must be true or false, got {table['detect']!r}")
        if not isinstance(table.get("description", ""), str):
            raise FormatError(f"{where}: description must be text")
        priority = USER_DETECT_PRIORITY if table.get("detect") is True else None
        entry = FormatEntry(
            name, family.name, definition, family.compile, priority, str(table.get("description", ""))
        )
        try:
            entry.build()
        except FormatError as exc:
            raise FormatError(f"{where}: {exc}") from None
        _ENTRIES[name] = entry
        _FROM_CONFIG.add(name)


def register(entry: FormatEntry) -> None:
    """Add a named format (a name already taken is an error: one name, one meaning)."""
    if entry.name in _ENTRIES or entry.name == AUTO:
        raise FormatError(f"log format {entry.name!r} is registered already")
    _ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    """Remove a named format (tests that register toy formats clean up with this)."""
    _ENTRIES.pop(name, None)


def register_family(family: Family) -> None:
    _FAMILIES.append(family)


def entries() -> tuple[FormatEntry, ...]:
    """Every named format, in registration order."""
    return tuple(_ENTRIES.values())


def get(name: str) -> FormatEntry | None:
    return _ENTRIES.get(name)


def resolve(name_or_spec: str) -> Format:
    """A named format (``combined``) or a definition one family accepts (``%h %l ...``)."""
    entry = _ENTRIES.get(name_or_spec)
    if entry is not None:
        return entry.build()
    for family in _FAMILIES:
        if family.accepts(name_or_spec):
            return family.compile(name_or_spec, "custom")
    known = ", ".join([*_ENTRIES, AUTO])
    hints = " or ".join(f.hint for f in _FAMILIES)
    raise FormatError(
        f"unknown log format {name_or_spec!r}: use one of {known}" + (f" or {hints}" if hints else "")
    )


def is_format_spec(value: str) -> bool:
    """Could ``value`` name a format (checked cheaply, without compiling it)?"""
    return value == AUTO or value in _ENTRIES or any(f.accepts(value) for f in _FAMILIES)
