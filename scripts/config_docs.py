"""Regenerate the settings part of configs/hostlogs.toml and docs/configuration.md from pipeline/config.py.

python scripts/config_docs.py           # rewrite what is stale
python scripts/config_docs.py --check   # exit 1 when either is stale (tests/test_config.py checks too)
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.cli._settings import (
    BEGIN_MD,
    BEGIN_TOML,
    END_MD,
    END_TOML,
    generated_block,
    render_docs,
    render_example,
)

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE, DOCS = ROOT / "configs" / "hostlogs.toml", ROOT / "docs" / "configuration.md"


def write(check_only: bool = False) -> list[Path]:
    """Regenerate the example config and the docs (or, with ``check_only``, name the stale ones)."""
    stale = []
    for path, block, begin, end in (
        (EXAMPLE, render_example(), BEGIN_TOML, END_TOML),
        (DOCS, render_docs(), BEGIN_MD, END_MD),
    ):
        text = path.read_text(encoding="utf-8")
        old = generated_block(text, begin, end)
        if old != block:
            stale.append(path)
            if not check_only:
                path.write_text(
                    text.replace(old, block) if old else text.rstrip("\n") + "\n\n" + block + "\n"
                )
    return stale


if __name__ == "__main__":
    check = "--check" in sys.argv[1:]
    stale = write(check_only=check)
    for path in stale:
        print(f"{'stale' if check else 'rewrote'}: {path.relative_to(ROOT)}")
    sys.exit(1 if stale and check else 0)
