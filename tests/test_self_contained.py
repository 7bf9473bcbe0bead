"""A fresh clone runs its tests alone: no module, test or script reads a folder beside the repository."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import ROOT, THIRD_PARTY, third_party_log_files

# a sibling folder of the repository (the old shared data), however the path to it is spelled
OUTSIDE = re.compile(r"\.\./shared|/work/shared|parents\[2\]|parent\.parent\.parent|ROOT\.parent\b")
LICENCES = {"LICENSE", "LICENSE.txt", "LICENSE-MIT", "LICENSE-APACHE", "NASA-HTTP.html"}


def _code_files() -> list[Path]:
    files: list[Path] = []
    for folder in ("pipeline", "tests", "scripts", ".ci"):
        files += [p for p in (ROOT / folder).rglob("*") if p.is_file() and p.suffix in {".py", ".sh", ""}]
    return [p for p in files if "data" not in p.relative_to(ROOT).parts]


def test_no_file_reaches_outside_the_repository() -> None:
    offenders = [
        str(p.relative_to(ROOT))
        for p in _code_files()
        if p != Path(__file__) and OUTSIDE.search(p.read_text(encoding="utf-8", errors="replace"))
    ]
    assert offenders == []


def test_every_third_party_folder_keeps_its_licence() -> None:
    folders = {p.parent for p in third_party_log_files()} | {THIRD_PARTY / "geoip" / "maxmind-test"}
    for folder in folders:
        assert {p.name for p in folder.iterdir()} & LICENCES, f"{folder} has no licence file"
    assert (THIRD_PARTY / "README.md").is_file()
