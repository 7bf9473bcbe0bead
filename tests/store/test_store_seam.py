"""One storage seam: only ``pipeline/store/`` names the store's layout or touches its files.

Two checks. Static: no module outside ``pipeline/store/`` spells a layout name, reaches for a store's
``.root`` or opens Parquet itself. Runtime: every command runs in-process under an audit hook, and
any file operation on a path inside the store whose nearest ``pipeline`` frame is not
``pipeline.store.*`` is a violation. Together they mean an object-store implementation of
``pipeline.store.fs.StoreFS`` is the only change S3 needs.
"""

from __future__ import annotations

import ast
import os
import shutil
import sys
import types
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from tests.conftest import ROOT

PIPELINE = ROOT / "pipeline"
STORE_PACKAGE = PIPELINE / "store"
LAYOUT_WORDS = ("_manifests", "_state", "_rejects", "_deletions", "_holds", "_audit", "date=", "part-", "rejects-", ".jsonl")  # fmt: skip
# Parquet readers, by the module that defines them: caught under any alias (``import pyarrow.parquet as
# x``, ``from polars import read_parquet as r``). Writers (an export's output file) are not readers.
PARQUET_READERS = {
    *(
        f"pyarrow.parquet.{n}"
        for n in ("read_table", "ParquetFile", "read_schema", "read_metadata", "ParquetDataset")
    ),
    "polars.read_parquet",
    "polars.scan_parquet",
    "pyarrow.dataset.dataset",
    "pyarrow.dataset.parquet_dataset",
}
# DuckDB can read any file: only the sandbox (file access off) and the statement check import it.
DUCKDB_USERS = {
    "pipeline/investigate/sandbox.py",
    "pipeline/investigate/statement.py",
    "pipeline/investigate/duck_settings.py",  # the sandbox's settings and DuckDB's errors
    # one fixed statement with bound parameters, no investigator text (tests/investigate/test_bloom.py)
    "pipeline/investigate/bloom.py",
}


def outside_store() -> list[Path]:
    return [p for p in sorted(PIPELINE.rglob("*.py")) if STORE_PACKAGE not in p.parents]


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings or bare string statements (prose, not paths)."""
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant):
            out.add(id(node.value))
    return out


def _aliases(tree: ast.AST) -> dict[str, str]:
    """Every name a module binds by import, to the full name it stands for (``pq`` -> pyarrow.parquet)."""
    out: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                out[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for a in node.names:
                out[a.asname or a.name] = f"{node.module}.{a.name}"
    return out


def static_violations(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    prose = _docstrings(tree)
    rel = path.relative_to(ROOT).as_posix()
    aliases = _aliases(tree)
    found = []
    for node in ast.walk(tree):
        where = f"{rel}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in prose:
            # a bare ".jsonl" is an output file's suffix (query --output), not the audit log's name
            words = [w for w in LAYOUT_WORDS if w in node.value and node.value != ".jsonl"]
            if words:
                found.append(f"{where} names the layout ({', '.join(words)}): use pipeline.store.layout")
        elif isinstance(node, ast.Attribute) and node.attr == "root":
            found.append(f"{where} uses .root: pass keys to Store methods (store.location for messages)")
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            full = f"{aliases.get(node.value.id, node.value.id)}.{node.attr}"
            if full in PARQUET_READERS:
                found.append(f"{where} reads Parquet with {full}: use Store's readers")
        elif isinstance(node, ast.Name) and aliases.get(node.id) in PARQUET_READERS:
            found.append(f"{where} reads Parquet with {aliases[node.id]}: use Store's readers")
        if isinstance(node, ast.Import | ast.ImportFrom) and rel not in DUCKDB_USERS:
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            if any(m == "duckdb" or m.startswith("duckdb.") for m in modules):
                found.append(f"{where} imports duckdb: only the sandbox may (it can read any file)")
    return found


def test_no_module_outside_the_store_names_its_layout_or_reads_its_files() -> None:
    found = [v for path in outside_store() for v in static_violations(path)]
    assert not found, "\n".join(found)


def test_the_static_check_catches_each_kind() -> None:
    """The checker itself: each banned form is found, prose and unrelated names are not."""
    sample = (
        '"""Docstring naming date= and _manifests is prose."""\n'
        "import duckdb\n"
        "import polars as x\n"
        "import pyarrow.parquet as pq\n"
        "from polars import read_parquet as rp\n"
        "from pyarrow.parquet import ParquetFile\n"
        'a = f"pageviews/date={day}"\n'
        'b = store.root / "x"\n'
        "c = pq.read_table(p)\n"
        "f = rp(p), x.scan_parquet(p), ParquetFile(p)\n"
        'd = "pageviews"\n'
        "e = pq.write_table(t, out), x.read_csv(p)\n"
    )
    tmp = PIPELINE / "_seam_probe.py"
    try:
        tmp.write_text(sample, encoding="utf-8")
        found = static_violations(tmp)
    finally:
        tmp.unlink()
    kinds = sorted(v.split(" ", 1)[1].split(" ")[0] for v in found)
    assert kinds == ["imports", "names", "reads", "reads", "reads", "reads", "uses"], found


# ----------------------------------------------------------------------------------------------------
# Runtime: the audit hook
EVENTS = {
    "open", "os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.listdir", "os.scandir", "shutil.rmtree",
    "os.chmod", "os.truncate", "os.link", "os.symlink", "os.utime", "glob.glob", "shutil.copyfile", "shutil.move",
}  # fmt: skip


FILESYSTEMS = {"pipeline.store.fs"}  # the StoreFS implementations: store's own file access goes there


class _Watch:
    """What the audit hook records while ``root`` is set (audit hooks cannot be removed)."""

    root: str | None = None
    violations: list[str] = []  # noqa: RUF012 (one watcher per process)
    inner: list[str] = []  # noqa: RUF012 (store modules other than its filesystem touching files)
    seen: int = 0
    installed: bool = False


def _inside(arg: Any, root: str) -> str | None:
    if isinstance(arg, bytes):
        arg = os.fsdecode(arg)
    elif isinstance(arg, os.PathLike):
        arg = os.fspath(arg)
    if not isinstance(arg, str):
        return None  # a file descriptor
    path = (
        os.path.normpath(os.path.join(os.getcwd(), arg)) if not os.path.isabs(arg) else os.path.normpath(arg)
    )
    return path if path == root or path.startswith(root + os.sep) else None


def _hook(event: str, args: tuple[Any, ...]) -> None:
    root = _Watch.root
    if root is None or event not in EVENTS:
        return
    if event == "open" and len(args) > 2 and isinstance(args[2], int) and args[2] & os.O_PATH:
        return  # a path handle reads and writes nothing: the sandbox's fence names its readable files
    paths = [p for p in (_inside(a, root) for a in args[:2]) if p is not None]
    if not paths:
        return
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None:
        name = frame.f_globals.get("__name__", "")
        if name == "pipeline" or name.startswith("pipeline."):
            _Watch.seen += 1
            rel = os.path.relpath(paths[0], root)
            if not name.startswith("pipeline.store"):
                _Watch.violations.append(f"{name}:{frame.f_lineno} {event} {rel}")
            elif name not in FILESYSTEMS:
                _Watch.inner.append(f"{name}:{frame.f_lineno} {event} {rel}")
            return
        frame = frame.f_back


@pytest.fixture()
def watched(tmp_path: Path) -> Iterator[Path]:
    if not _Watch.installed:  # once per process, and only when a seam test runs: hooks stay for good
        sys.addaudithook(_hook)
        _Watch.installed = True
    store = tmp_path / "store"
    _Watch.violations, _Watch.inner, _Watch.seen = [], [], 0
    _Watch.root = os.path.normpath(str(store))
    try:
        yield store
    finally:
        _Watch.root = None


def _run(*args: str) -> tuple[int, str]:
    piped = "SELECT count(*) FROM pageviews;\n.tables\n.quit\n" if args[0] == "shell" else None
    r = CliRunner().invoke(main, list(args), input=piped)
    crash = "" if r.exception is None or isinstance(r.exception, SystemExit) else repr(r.exception)
    return r.exit_code, (r.stdout + r.stderr + crash)[-2000:]


def commands(store: Path, out: Path) -> list[tuple[str, ...]]:
    s = ("--store", str(store))
    c = ("--case", "SEAM-1", "--reason", "seam test")
    logs = [
        str(p) for p in sorted((ROOT / "sample_logs").rglob("*")) if p.is_file() and p.name != "README.md"
    ]
    one = str(ROOT / "sample_logs" / "other_vhosts_access.log")
    return [
        ("ingest", *s, "--final", "--server", "seam-1", *logs),
        ("keys", "prove", one, *s),  # before the purge takes the manifests it proves from
        ("query", *s, *c, "SELECT count(*) FROM pageviews"),
        ("query", *s, *c, "SELECT count(*) FROM rejects"),
        ("shell", *s, *c),  # piped statements, as from a script
        ("investigate", "ip", "203.0.113.4", *s, *c),
        ("investigate", "net", "203.0.113.0/24", *s, *c),
        ("investigate", "path", "/index.php", *s, *c),
        ("investigate", "ua", "Firefox", *s, *c),
        ("investigate", "domain", "shop.example.com", *s, *c),
        ("investigate", "attacks", *s, *c),
        ("investigate", "report", *s, *c, "--output", str(out / "report.html")),
        ("hold", "add", *s, "--case", "SEAM-HOLD", "--reason", "seam test"),
        ("hold", "list", *s),
        ("hold", "release", "SEAM-HOLD", *s),
        ("export", *s, *c, "--domain", "shop.example.com", "--output", str(out / "export.csv")),
        ("erase", *s, *c, "--domain", "shop.example.com", "--dry-run"),
        ("erase", *s, *c, "--domain", "shop.example.com"),
        ("compact", *s),
        ("verify", *s),
        ("keys", "destroy", *s, "--before", "2026-11-01", "--request", "SEAM-DSR"),  # its proof goes in
        ("purge", *s, "--dry-run"),
        ("purge", *s, "--as-of", "2028-12-31"),
        ("purge", *s, "--verify"),
        ("audit", "list", *s),
        ("audit", "verify", *s),
    ]


def test_every_command_reaches_the_store_only_through_pipeline_store(watched: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    failed = []
    for args in commands(watched, out):
        code, output = _run(*args)
        if code != 0:
            failed.append(f"{' '.join(args[:2])}: exit {code}: {output}")
    _Watch.root = None
    assert _Watch.seen, "the audit hook saw no store access at all"
    unique = sorted(set(_Watch.violations))
    inner = sorted(set(_Watch.inner))
    report = os.environ.get("SEAM_REPORT")  # for the helpers migrating call sites
    if report:
        lines = ["## runtime", *unique, "## inner", *inner, "## failed", *failed]
        Path(report).write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert not unique, f"{len(unique)} store accesses outside pipeline/store/:\n" + "\n".join(unique)
    assert not inner, "store modules touching files without pipeline.store.fs:\n" + "\n".join(inner)
    assert not failed, "\n".join(failed)


def test_the_hook_sees_an_access_from_outside_the_store(watched: Path) -> None:
    """The runtime check itself: a pipeline module opening a store file is caught, store's own is not."""
    from pipeline.store.commit import Store

    store = Store(watched)
    store.init()
    store.write_json("x.json", {"a": 1})
    probe = types.ModuleType("pipeline._seam_probe")
    exec(f"def touch():\n    open({str(watched / 'x.json')!r}).close()\n", probe.__dict__)
    probe.touch()
    shutil.rmtree(watched)  # from the test itself: not pipeline, ignored
    assert [v.split(" ", 1)[1] for v in _Watch.violations] == ["open x.json"], _Watch.violations
