"""Auto-detection: which registered format a source is written in, from its first lines.

Every entry with a ``detect_priority`` scores a sample (``Format.score``: lines it parses, lines it
matches exactly); the most lines parsed wins, then the most matched exactly, then the priority
(the more specific format: a vhost_combined log also parses as combined).
"""

from __future__ import annotations

from pipeline.ingest import sources
from pipeline.ingest.fields import Format
from pipeline.ingest.formats import registry

DETECT_SAMPLE_BYTES = 64 << 10
DETECT_SAMPLE_LINES = 200
FALLBACK = "combined"  # what an unrecognised source is parsed as: every line becomes a reject


def detect(sample_lines: list[str]) -> Format | None:
    """The registered format matching most sample lines (ties → the higher ``detect_priority``)."""
    best: tuple[int, int, int] | None = None
    chosen: Format | None = None
    for entry in registry.entries():
        if entry.detect_priority is None:
            continue
        fmt = entry.build()
        hits, exact = fmt.score(sample_lines)
        if hits and (best is None or (hits, exact, entry.detect_priority) > best):
            best, chosen = (hits, exact, entry.detect_priority), fmt
    return chosen


def sample(head: bytes) -> list[str]:
    """The non-blank lines of a source's first bytes that detection looks at."""
    return [ln for ln in head.decode("utf-8", "replace").splitlines() if ln.strip()][:DETECT_SAMPLE_LINES]


def choose(format_name: str, path: str, head: bytes | None = None) -> tuple[Format, str | None]:
    """The format of a source (``format_name`` or, for "auto", detected) and what the report says.

    ``head``: the source's first bytes when already read (stdin cannot be read twice).
    """
    if format_name != registry.AUTO:
        return registry.resolve(format_name), None
    if head is None:
        with sources.open_stream(path) as stream:
            head = stream.read(DETECT_SAMPLE_BYTES)
    fmt = detect(sample(head))
    if fmt is None:
        # Fail closed: every line becomes a counted, scrubbed reject rather than a guess.
        return registry.resolve(FALLBACK), "format not recognised: all lines quarantined"
    return fmt, f"auto-detected {fmt.name}"
