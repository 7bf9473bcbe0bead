"""The format registry: every log format hostlogs reads is an entry here, built-ins included.

An entry is data: a name, the family that compiles it (``apache``; JSON, W3C and AWS formats are
families to come) and the family's own definition text. ``formats/__init__.py`` registers the
built-ins through ``register`` exactly as a new format registers itself; a family may also accept
definitions typed by the user (a raw Apache ``LogFormat`` string) through ``register_family``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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


_ENTRIES: dict[str, FormatEntry] = {}
_FAMILIES: list[Family] = []
AUTO = "auto"


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
