"""Log formats: the registry's public API, and the one place where the built-in formats register.

A format is a ``Format`` (``pipeline.ingest.fields``): it turns lines into format-independent fields.
Adding one (JSON lines, W3C/IIS, an AWS load balancer) is a module under ``formats/`` with its
compiler and one entry in ``BUILTIN`` below; ``rows.py``, the Apache compiler and detection stay as
they are (``detect.py`` scores every entry that has a ``detect_priority``).
"""

from __future__ import annotations

from pipeline.ingest.fields import Format
from pipeline.ingest.formats import apache
from pipeline.ingest.formats.detect import DETECT_SAMPLE_BYTES, choose, detect
from pipeline.ingest.formats.registry import (
    AUTO,
    Family,
    FormatEntry,
    entries,
    get,
    is_format_spec,
    register,
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
}


def _apache(definition: str, name: str) -> Format:
    return apache.compile_format(definition, name=name)


BUILTIN: tuple[FormatEntry, ...] = (
    FormatEntry("common", "apache", NAMED_FORMATS["common"], _apache, 10, "NCSA common log format"),
    FormatEntry("combined", "apache", NAMED_FORMATS["combined"], _apache, 20, "Apache/nginx combined"),
    FormatEntry(
        "vhost_combined", "apache", NAMED_FORMATS["vhost_combined"], _apache, 30, "combined with %v:%p"
    ),
)
for _entry in BUILTIN:
    register(_entry)
register_family(Family("apache", lambda text: "%" in text, _apache, "a LogFormat string"))

__all__ = [
    "AUTO",
    "BUILTIN",
    "DETECT_SAMPLE_BYTES",
    "NAMED_FORMATS",
    "Family",
    "Format",
    "FormatEntry",
    "choose",
    "detect",
    "entries",
    "get",
    "is_format_spec",
    "register",
    "register_family",
    "resolve",
    "unregister",
]
