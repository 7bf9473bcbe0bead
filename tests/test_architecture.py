"""The folder layout is the architecture: stages depend on each other in one direction only.

    kernel (config, errors, rules)  <-  store  <-  privacy  <-  ingest
                                                        ^-- investigate  <-  lifecycle  <-  cli

A module may import its own stage, the kernel and the stages to its left; nothing imports ``cli``.
Every import counts, also the ones inside functions (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGE = ROOT / "pipeline"
KERNEL = {"pipeline", "pipeline.config", "pipeline.errors", "pipeline.rules"}
# stage -> the stages it may import (besides itself and the kernel)
ALLOWED: dict[str, set[str]] = {
    "kernel": set(),
    "store": set(),
    "privacy": {"store"},
    "ingest": {"store", "privacy"},
    "investigate": {"store", "privacy"},
    "lifecycle": {"store", "privacy", "investigate"},
    "cli": {"store", "privacy", "ingest", "investigate", "lifecycle"},
}
MAX_LINES = 420  # "no module over ~400 lines"


def _module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _stage(module: str) -> str:
    if module in KERNEL:
        return "kernel"
    return module.split(".")[1]


def _imports(path: Path) -> set[str]:
    """Every pipeline module ``path`` imports (absolute or relative, at any depth)."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("pipeline")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("pipeline"):
                out.add(target)
                out |= {f"{target}.{a.name}" for a in node.names if _is_module(f"{target}.{a.name}")}
    return out


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


MODULES = sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_a_module_imports_only_its_stage_the_kernel_and_the_stages_below(path: Path) -> None:
    me = _stage(_module_name(path))
    wrong = sorted(
        imported
        for imported in _imports(path)
        if (other := _stage(imported)) not in {me, "kernel"} and other not in ALLOWED[me]
    )
    assert not wrong, f"{path.relative_to(ROOT)} ({me}) imports {wrong}"


def test_there_is_no_import_cycle_between_modules() -> None:
    graph = {_module_name(p): {m for m in _imports(p) if _is_module(m)} for p in MODULES}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            # a package's __init__ re-exporting its modules is not a cycle with them
            if nxt == node or node.startswith(nxt + ".") or nxt.startswith(node + "."):
                continue
            if state.get(nxt) == 1:
                raise AssertionError("import cycle: " + " -> ".join([*trail, node, nxt]))
            if nxt not in state:
                visit(nxt, [*trail, node])
        state[node] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [])


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_no_module_is_over_about_400_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it by job"


def test_a_newcomer_finds_the_stages_by_folder_name() -> None:
    folders = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    assert {"store", "privacy", "ingest", "lifecycle", "investigate", "cli"} <= folders
    assert (PACKAGE / "ingest" / "formats" / "__init__.py").is_file()
