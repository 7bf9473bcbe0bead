"""Where a source's log files are: olddir rules, the {domain} of a path template, the template's glob.

Pure string logic over a ``SourceConfig`` (no file access): ``ingest.sources`` expands the globs.
"""

from __future__ import annotations

import glob
import os
import re
from pathlib import Path

from pipeline.config import Config, SourceConfig
from pipeline.errors import ConfigError, FormatError
from pipeline.ingest import formats
from pipeline.rules import escaped_text


def check_olddir(src: SourceConfig, where: str) -> None:
    """An olddir must name one directory per log directory (see ``globs.expand_source``)."""
    if src.olddir is None:
        return
    old = Path(src.olddir)
    directory = os.path.dirname(src.path or template_glob(src.domain_from_path or ""))
    if not src.olddir or ".." in old.parts or glob.has_magic(src.olddir):
        raise ConfigError(
            f"{where}: olddir must be a directory without '..' or wildcards, got {src.olddir!r}"
        )
    if old.is_absolute() and glob.has_magic(directory):
        raise ConfigError(
            f"{where}: olddir {src.olddir!r} is absolute but the path's directory has wildcards: "
            "give it relative to each log's directory (e.g. 'old')"
        )


def domain_from_path(template: str, path: str) -> str | None:
    """The {domain} part of ``path`` per a template such as /var/www/vhosts/{domain}/logs/access_log*."""
    m = re.fullmatch(_template_regex(template), path)
    if m is None:
        return None
    # a directory named in bytes that are no UTF-8: \xHH, so two such names stay two domains
    return escaped_text(m.group("domain")).lower()


_GLOB_PART_RE = re.compile(r"\{domain\}|\*|\?|\[!?\]?[^\]]*\]")


def _template_regex(template: str) -> str:
    """The template as a regular expression that matches what its glob matches (``*``, ``?`` and
    ``[...]`` within one path segment, as ``glob`` reads them), with ``{domain}`` captured."""
    out, pos = [], 0
    for m in _GLOB_PART_RE.finditer(template):
        out.append(re.escape(template[pos : m.start()]))
        part = m.group(0)
        if part == "{domain}":
            out.append(r"(?P<domain>[^/]+)")
        elif part in ("*", "?"):
            out.append(r"[^/]*" if part == "*" else r"[^/]")
        else:  # a character class: [!...] negates, as in glob
            inner = part[1:-1]
            inner = "^" + inner[1:] if inner.startswith("!") else inner
            out.append("[" + inner.replace("\\", "\\\\") + "]")
        pos = m.end()
    out.append(re.escape(template[pos:]))
    return "".join(out)


def template_glob(template: str) -> str:
    """The glob of every file a {domain} template can name (``{domain}`` → ``*``)."""
    return template.replace("{domain}", "*")


def source_glob(spec: SourceConfig) -> str:
    """The glob a source names: its path, or its domain template's glob when it has only that."""
    if spec.path == "" and spec.domain_from_path:
        return template_glob(spec.domain_from_path)
    return spec.path


def check_source(src: SourceConfig, where: str) -> None:
    """A source can be ingested: its format is registered (FormatError, exit 5) and its olddir valid."""
    if src.format != "auto":
        formats.resolve(src.format)
    check_olddir(src, where)


def check_sources(cfg: Config, origin: str) -> None:
    """Every ``[[sources]]`` entry of a config file meets ``check_source``; a bad one is a config error.

    The config loader calls it for every command (a broken config fails closed, exit 3, naming the file
    and the entry, even for a command that reads no logs); ``ingest.run`` applies ``check_source`` to
    sources given on the command line.
    """
    try:
        formats.register_config(cfg.formats, origin)  # the sources may name them
    except FormatError as exc:
        raise ConfigError(str(exc)) from None
    for i, src in enumerate(cfg.sources):
        where = f"{origin}: sources[{i}]"
        try:
            check_source(src, where)
        except FormatError as exc:
            raise ConfigError(f"{where}: {exc}") from None
