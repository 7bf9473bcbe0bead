"""docs/quickstart.md cannot drift: its console blocks are run on a copy of sample_logs/ and print
what the page shows, once timings, stream ids and hashes are set aside."""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import ROOT

QUICKSTART = ROOT / "docs" / "quickstart.md"
ECHO_EXIT = '; echo "exit $?"'


def console_sessions(text: str) -> list[tuple[str, str]]:
    """(command, expected output) for every ``$ `` line of the page's ```console blocks."""
    sessions: list[tuple[str, str]] = []
    for block in re.findall(r"^```console\n(.*?)^```$", text, re.M | re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, _, output = chunk.partition("\n")
            sessions.append((command, output))
    return sessions


def normalise(output: str) -> list[str]:
    """What may differ between runs replaced; the per-file lines of an ingest report sorted, since
    files are read oldest first and a checkout's modification times are its own."""
    text = re.sub(r"\b[0-9a-f]{64}\b", "<hash>", output)
    text = re.sub(r"of stream [0-9a-f]+\b", "of stream <id>", text)
    text = re.sub(r"^throughput: .*$", "throughput: <timing>", text, flags=re.M)
    lines: list[str] = []
    files: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("  sample_logs/"):
            files.append([line])
        elif line.startswith("    ") and files:
            files[-1].append(line)
        else:
            lines.extend(line for entry in sorted(files) for line in entry)
            files = []
            lines.append(line)
    return lines + [line for entry in sorted(files) for line in entry]


def run(command: str) -> str:
    """A ``hostlogs …`` line in process (stdout and stderr as a terminal shows them), with the exit
    code echoed where the page asks for it; anything else through /bin/sh."""
    words = shlex.split(command.removesuffix(ECHO_EXIT))
    if words[0] == "hostlogs" and not set(";|&><").intersection(command.removesuffix(ECHO_EXIT)):
        result = CliRunner().invoke(main, words[1:])
        exit_line = f"exit {result.exit_code}\n" if command.endswith(ECHO_EXIT) else ""
        if not exit_line:
            assert result.exit_code == 0, result.output
        return result.output + exit_line
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    done = subprocess.run(
        ["/bin/sh", "-c", command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    )
    return done.stdout


def test_quickstart_sessions_are_found() -> None:
    sessions = console_sessions(QUICKSTART.read_text())
    assert len(sessions) >= 6 and all(c.startswith("hostlogs ") for c, _ in sessions)
    assert normalise(
        "throughput: 1 lines/s\n  sample_logs/b: 1\n    bytes\n  sample_logs/a: 2\nfiles: 2"
    ) == [
        "throughput: <timing>",
        "  sample_logs/a: 2",
        "  sample_logs/b: 1",
        "    bytes",
        "files: 2",
    ]


@pytest.mark.parametrize("page", [QUICKSTART, ROOT / "README.md"], ids=["quickstart", "readme"])
def test_quickstart_commands_print_what_the_page_shows(
    page: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    shutil.copytree(ROOT / "sample_logs", tmp_path / "sample_logs")
    (tmp_path / "configs").mkdir()
    shutil.copy(ROOT / "configs" / "sample.toml", tmp_path / "configs" / "sample.toml")
    monkeypatch.chdir(tmp_path)
    sessions = console_sessions(page.read_text())
    assert len(sessions) >= 6
    for command, expected in sessions:
        assert normalise(run(command)) == normalise(expected), command
