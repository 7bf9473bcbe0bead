"""Write docs/cli.md, the command-line reference, from every command's ``--help``.

    .venv/bin/python scripts/cli_reference.py           # rewrite docs/cli.md
    .venv/bin/python scripts/cli_reference.py --check   # exit 1 if docs/cli.md is stale

The help texts are the single source: ``tests/cli/test_cli_reference.py`` fails when the file differs
from what this script writes, so the reference cannot drift from the commands.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipeline.cli import main  # noqa: E402

OUTPUT = ROOT / "docs" / "cli.md"
WIDTH = 100  # fixed, so the file does not depend on the terminal it was made in

HEAD = """# Command-line reference

Generated from each command's `--help` by `scripts/cli_reference.py`; a test fails when this file is
stale (run `.venv/bin/python scripts/cli_reference.py` after changing a command). Conventions shared
by every command:

- `--config FILE` and `--store DIR` select the store; `--json` prints the command's report as one
  JSON document on stdout and nothing else (`--format json`, where a command has `--format`, means
  the same; `jsonl` is one row per line); `--output FILE` writes that file only, with a notice on
  stderr.
- Messages, warnings and progress bars go to stderr; a progress bar (rate and ETA) is drawn only
  when stderr is a terminal, never under cron, systemd or a pipe, nor with `--quiet` or `--json`.
- Exit codes are listed in [exit-codes.md](exit-codes.md); `hostlogs --debug COMMAND` adds the
  traceback to an error.
"""


def commands(cmd: click.Command, name: str, parent: click.Context | None = None) -> Iterator[tuple[str, str]]:
    """(full command name, its help text) for ``cmd`` and every subcommand, depth first, by name."""
    ctx = click.Context(cmd, info_name=name, parent=parent, terminal_width=WIDTH, max_content_width=WIDTH)
    yield ctx.command_path, cmd.get_help(ctx)
    if isinstance(cmd, click.Group):
        for sub in cmd.list_commands(ctx):
            child = cmd.get_command(ctx, sub)
            if child is not None and not child.hidden:
                yield from commands(child, sub, ctx)


def reference() -> str:
    parts = [HEAD]
    listed = list(commands(main, "hostlogs"))
    parts.append("## Commands\n\n" + "\n".join(f"- [`{p}`](#{_anchor(p)})" for p, _ in listed) + "\n")
    for path, text in listed:
        parts.append(f"## {path}\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def _anchor(path: str) -> str:
    return path.replace(" ", "-")


if __name__ == "__main__":
    text = reference()
    if sys.argv[1:] == ["--check"]:
        stale = not OUTPUT.exists() or OUTPUT.read_text(encoding="utf-8") != text
        print(f"{OUTPUT.relative_to(ROOT)} is {'STALE' if stale else 'up to date'}")
        sys.exit(1 if stale else 0)
    OUTPUT.write_text(text, encoding="utf-8")
    print(f"wrote {OUTPUT.relative_to(ROOT)} ({len(text.splitlines())} lines)")
