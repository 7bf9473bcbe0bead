"""The errors catalogue: every failure a user can cause is one line saying what to do, with its code.

Each case is real (a store path under a regular file, a missing log, a bad config) except the two a
root test run cannot cause on a real disk: a full disk (ENOSPC) and a denied write (EACCES, which
root's permissions ignore). Those are injected at the one seam every store write goes through,
``pipeline/store/fs.py``, so everything above it (the error conversion, the CLI) runs for real.
"""

from __future__ import annotations

import builtins
import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import pytest
from click.testing import CliRunner

from pipeline import errors
from pipeline.cli import main
from pipeline.store import fs
from tests.conftest import ROOT

LOG = '203.0.113.5 - - [10/Oct/2026:13:55:36 +0000] "GET / HTTP/1.1" 200 12 "-" "curl/8.0"\n'


class _FullDisk:
    """A file whose writes fail like a full disk's: opened for real, no byte accepted."""

    def __init__(self, f: IO[bytes]) -> None:
        self.f = f

    def __enter__(self) -> _FullDisk:
        return self

    def __exit__(self, *exc: object) -> None:
        self.f.close()

    def write(self, data: bytes) -> int:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def flush(self) -> None:
        self.f.flush()

    def fileno(self) -> int:
        return self.f.fileno()


def fail_store_writes(monkeypatch: pytest.MonkeyPatch, code: int, only: str = "") -> None:
    """Every file the store writes (whose path contains ``only``) fails with ``code``: ENOSPC on
    write, any other on open."""

    def faulty(file: Any, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        if "w" not in mode or only not in str(file):
            return builtins.open(file, mode, *args, **kwargs)
        if code == errno.ENOSPC:
            return _FullDisk(builtins.open(file, mode, *args, **kwargs))
        raise OSError(code, os.strerror(code), str(file))

    monkeypatch.setattr(fs, "open", faulty, raising=False)  # the module's own name shadows the builtin


Setup = Callable[[Path, pytest.MonkeyPatch], list[str]]


def _keys_elsewhere(tmp: Path) -> list[str]:
    """A config whose key directory is fine: the store's own failure is the one reported."""
    (tmp / "keys.toml").write_text(f'[privacy]\nkey_dir = "{tmp / "keys"}"\n')
    return ["--config", str(tmp / "keys.toml")]


def _store_under_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "regular").write_text("")
    return ["ingest", "a.log", "--store", str(tmp / "regular" / "store"), *_keys_elsewhere(tmp)]


def _store_is_a_file(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "regular").write_text("")
    return ["ingest", "a.log", "--store", str(tmp / "regular"), *_keys_elsewhere(tmp)]


def _full_disk(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    fail_store_writes(mp, errno.ENOSPC)
    return ["ingest", "a.log", "--store", str(tmp / "s")]


def _permission_denied(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    fail_store_writes(mp, errno.EACCES)
    return ["ingest", "a.log", "--store", str(tmp / "s")]


def _read_only_fs(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    fail_store_writes(mp, errno.EROFS)
    return ["ingest", "a.log", "--store", str(tmp / "s")]


def _key_dir_cannot_be_created(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "regular").write_text("")
    (tmp / "k.toml").write_text(f'[privacy]\nkey_dir = "{tmp / "regular" / "keys"}"\n')
    return ["ingest", "a.log", "--store", str(tmp / "s"), "--config", str(tmp / "k.toml")]


def _store_links_to_nowhere(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
    (tmp / "s").symlink_to(tmp / "mnt" / "evidence")  # its volume not mounted: not made beneath it
    return ["ingest", "a.log", "--store", str(tmp / "s")]


def _args(*args: str) -> Setup:
    return lambda tmp, mp: list(args)


def _bad_config(toml: str, *args: str) -> Setup:
    def setup(tmp: Path, mp: pytest.MonkeyPatch) -> list[str]:
        (tmp / "c.toml").write_text(toml)
        return ["ingest", "a.log", "--config", str(tmp / "c.toml"), *args]

    return setup


# (what the user did, setup → arguments, exit code, what the line says, what it tells them to do)
CATALOGUE: list[tuple[str, Setup, int, str, str]] = [
    ("store under a file", _store_under_a_file, 6, "Not a directory", "check the --store path"),
    ("store is a file", _store_is_a_file, 6, "cannot create the store at", "check the --store path"),
    ("store links to nowhere", _store_links_to_nowhere, 6, "which does not exist", "mount it or create"),
    ("full disk", _full_disk, 6, "No space left on device", "free disk space"),
    ("permission denied", _permission_denied, 6, "Permission denied", "run as the store's owner"),
    ("read-only file system", _read_only_fs, 6, "Read-only file system", "remount it read-write"),
    ("key dir", _key_dir_cannot_be_created, 6, "cannot create key directory", "set privacy.key_dir"),
    ("missing log", _args("ingest", "nosuch.log", "--store", "s"), 10, "No such file", "check the path"),
    (
        "glob matching nothing",
        _args("ingest", "no*.log", "--store", "s"),
        10,
        "no file matches",
        "fix the path",
    ),
    ("missing config", _args("ingest", "--config", "nosuch.toml"), 3, "not found", "nosuch.toml"),
    # found by review: /dev/zero as --config grew to 24 GB, a FIFO hung, deep nesting was exit 1
    ("config is a device", _args("ingest", "a.log", "--config", "/dev/zero"), 3, "larger than 1 MiB", ""),
    ("config nested deep", _bad_config("x = " + "[" * 600 + "]" * 600 + "\n"), 3, "nested too deeply", ""),
    (
        "format nested deep",
        _args("ingest", "a.log", "--format", '{"ts": ' + "[" * 1200 + "]" * 1200 + "}"),
        5,
        "not valid JSON",
        "",
    ),
    ("unknown setting", _bad_config("[privacy]\nipv6_bits = 40\n"), 3, "'ipv6_bits'", "privacy"),
    ("full addresses", _bad_config("[privacy]\nipv4_prefix = 32\n"), 3, "must be 1-31", "full client"),
    ("empty store path", _args("ingest", "a.log", "--store", ""), 3, "store", "must be a path"),
    ("unknown format", _args("ingest", "a.log", "--format", "nginx"), 5, "unknown log format", "nginx"),
    ("bad LogFormat", _args("ingest", "a.log", "--format", "%h %Z"), 5, "unsupported LogFormat", "%Z"),
    (
        "query without store",
        _args("query", "--store", "nosuch", "--case", "C-1", "SELECT 1"),
        6,
        "no store",
        "",
    ),
    ("no sources", _args("ingest", "--store", "s"), 4, "no sources", "give log files"),
]


@pytest.mark.parametrize(
    ("what", "setup", "code", "says", "advice"), CATALOGUE, ids=[c[0] for c in CATALOGUE]
)
@pytest.mark.parametrize("debug", [False, True], ids=["plain", "debug"])
def test_every_user_error_is_one_line_with_advice_and_its_code(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    what: str,
    setup: Setup,
    code: int,
    says: str,
    advice: str,
    debug: bool,
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a.log").write_text(LOG)
    args = setup(tmp_path, monkeypatch)
    result = CliRunner().invoke(main, ["--debug", *args] if debug else args)
    assert result.exit_code == code, (what, result.stderr)
    lines = [line for line in result.stderr.splitlines() if line.startswith("hostlogs: error: ")]
    assert len(lines) == 1 and says in lines[0] and advice in lines[0], (what, result.stderr)
    if debug:  # the traceback (with the OS error it was raised from), then the same one line
        assert result.stderr.startswith("Traceback (most recent call last)") and result.stderr.endswith(
            lines[0] + "\n"
        )
    else:
        assert result.stderr == lines[0] + "\n"  # nothing but the one line, no traceback
    assert "203.0.113.5" not in result.stderr + result.stdout


def test_several_failed_sources_are_a_line_each_then_the_summary(tmp_path: Path) -> None:
    (tmp_path / "a.log").write_text(LOG)
    result = CliRunner().invoke(
        main,
        ["ingest", str(tmp_path / "a.log"), "nosuch-1.log", "nosuch-2.log", "--store", str(tmp_path / "s")],
    )
    lines = result.stderr.splitlines()
    assert (
        result.exit_code == 10 and len(lines) == 3 and all(x.startswith("hostlogs: error: ") for x in lines)
    )
    assert "nosuch-1.log" in lines[0] and "nosuch-2.log" in lines[1]
    assert lines[2].startswith("hostlogs: error: 2 sources failed") and "the rest was ingested" in lines[2]


def test_the_exit_codes_doc_gives_advice_for_every_error_class() -> None:
    """docs/exit-codes.md lists every class of pipeline/errors.py with its code and what to do."""
    text = (ROOT / "docs" / "exit-codes.md").read_text()
    rows = re.findall(r"^\| ([0-9]+) \| ([^|]*)\|([^|]*)\|([^|]*)\|$", text, re.M)
    advice = {name: todo.strip() for _, cell, _, todo in rows for name in re.findall(r"`([A-Za-z]+)`", cell)}
    classes = [
        n for n, c in vars(errors).items() if isinstance(c, type) and issubclass(c, errors.HostlogsError)
    ]
    assert sorted(advice) == sorted(classes)
    assert all(advice[name] for name in classes), [n for n in classes if not advice[n]]


def test_a_config_from_a_pipe_is_read_and_one_nobody_writes_does_not_hang(tmp_path: Path) -> None:
    """--config <(…) and /dev/stdin are pipes: read (a first fix had refused them); a FIFO nobody
    writes reads as an empty config instead of waiting forever (found by review)."""
    import subprocess
    import sys

    cli = [sys.executable, "-m", "pipeline.cli", "config", "check", "--config"]
    toml = f'store = "{tmp_path / "piped-store"}"\n'
    done = subprocess.run([*cli, "/dev/stdin"], input=toml, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "piped-store" in done.stdout, done.stderr
    os.mkfifo(tmp_path / "nobody.toml")
    done = subprocess.run([*cli, str(tmp_path / "nobody.toml")], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "hostlogs-store" in done.stdout, done.stderr
