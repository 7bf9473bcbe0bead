"""Every access to the store and every lifecycle action is in the one audit trail, with its case."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.config import SourceConfig
from pipeline.errors import StoreError, UsageError
from pipeline.ingest import run as ingest
from pipeline.investigate import audit, investigations, session
from pipeline.investigate import session as query
from pipeline.investigate.sandbox import Sandbox
from pipeline.investigate.scope import Scope
from pipeline.lifecycle import export as lifecycle
from tests.conftest import ROOT, ingest_paths, make_config


@pytest.fixture()
def store(tmp_path: Path) -> Path:
    ingest_paths(tmp_path / "store", [ROOT / "sample_logs" / "other_vhosts_access.log"])
    return tmp_path / "store"


def invoke(*args: str) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, list(args))
    return r.exit_code, r.stdout, r.stderr


def trail(store: Path) -> list[tuple[object, ...]]:
    return [
        (e["command"], e.get("case"), e.get("request"), e["status"]) for e in audit.AuditLog(store).list()
    ]


def test_each_lifecycle_command_leaves_its_entries(store: Path, tmp_path: Path) -> None:
    s = ["--store", str(store)]
    out = str(tmp_path / "x.csv")
    assert invoke("export", *s, "--domain", "www.example.com", "--output", out)[0] == 2  # no case, no request
    assert invoke("export", *s, "--request", "DSR-1", "--domain", "www.example.com", "--output", out)[0] == 0
    assert invoke("erase", *s, "--domain", "www.example.com", "--dry-run")[0] == 2
    assert invoke("erase", *s, "--case", "INC-1", "--domain", "shop.example.com")[0] == 0
    assert invoke("hold", "add", *s, "--case", "INC-2", "--reason", "breach")[0] == 0
    assert invoke("hold", "release", "INC-2", *s)[0] == 0
    assert invoke("purge", *s, "--as-of", "2026-11-10")[0] == 0
    assert invoke("keys", "destroy", *s, "--before", "2026-11-01")[0] == 2
    assert invoke("keys", "destroy", *s, "--before", "2026-11-01", "--request", "DSR-9")[0] == 0
    got = trail(store)
    expected = [
        ("export", None, "DSR-1"), ("erase", "INC-1", None), ("hold add", "INC-2", None),
        ("hold release", "INC-2", None), ("purge", None, None), ("keys destroy", None, "DSR-9"),
    ]  # fmt: skip
    assert [g[:3] for g in got] == [x for x in expected for _ in (0, 1)]
    assert [g[3] for g in got] == ["started", "ok"] * len(expected)
    purge = audit.AuditLog(store).list()[8]
    assert purge["reason"] == "retention policy" and purge["params"]["retention"]
    assert audit.AuditLog(store).verify().ok


def test_the_library_cannot_skip_the_audit(store: Path, tmp_path: Path) -> None:
    cfg = make_config(store)
    lifecycle.export(cfg, domain="www.example.com", fmt="csv", output=tmp_path / "e.csv", case="INC-3")
    query.run(store, "SELECT count(*) FROM pageviews", case="INC-3")
    query.with_connection(store, lambda sb: sb.execute("SELECT 1").rows, case="INC-3")
    query.connect(store, case="INC-3").close()
    commands = [e["command"] for e in audit.AuditLog(store).list("INC-3")]
    assert commands == ["export", "export", "query", "query", "with_connection", "with_connection", "connect"]
    with pytest.raises(UsageError, match="--case"):
        audit.check_authority(None, None, "export")


def test_the_audited_session_is_the_only_door(store: Path, tmp_path: Path) -> None:
    """From Python, no CLI: ``audited`` writes started + outcome, refuses a missing case the config
    requires (before anything is written), and the sandbox cannot be opened around it."""
    cfg = make_config(store)  # query.require_case = true: the default
    assert cfg.query.require_case
    with session.audited(cfg, "python", "INC-7", "library", sql="SELECT 1") as access:
        access.record.rows = len(access.sandbox.execute("SELECT count(*) FROM pageviews").rows)
    mine = audit.AuditLog(store).list("INC-7")
    assert [(e["command"], e["status"]) for e in mine] == [("python", "started"), ("python", "ok")]
    assert mine[0]["sql"] == "SELECT 1" and mine[0]["reason"] == "library" and mine[1]["rows"] == 1
    before = len(audit.AuditLog(store).list())
    for door in (
        lambda: session.audited(cfg, "python").__enter__(),
        lambda: session.run(cfg, "SELECT 1"),
        lambda: session.connect(cfg),
        lambda: session.Session(cfg, case=None),
        lambda: investigations.run(cfg, "path", Scope(), case="", pattern="/x"),
    ):
        with pytest.raises(UsageError, match="--case"):
            door()
    with pytest.raises(UsageError, match="invalid case id"):
        session.run(cfg, "SELECT 1", case="x y")
    with pytest.raises(StoreError, match="no store at"):
        session.run(make_config(tmp_path / "none"), "SELECT 1", case="INC-7")
    assert len(audit.AuditLog(store).list()) == before  # refusals happen before the trail is written
    with pytest.raises(TypeError, match="audited"):
        Sandbox(store)  # no way around the door
    # a failing block is recorded as such
    with pytest.raises(UsageError), session.audited(cfg, "python", "INC-8") as access:
        access.sandbox.execute("SELECT * FROM no_such_view")
    assert [e["status"] for e in audit.AuditLog(store).list("INC-8")] == ["started", "error"]


def test_only_the_session_module_opens_a_sandbox() -> None:
    """The sandbox's private opener is imported by ``session.py`` alone (package, scripts, tests)."""
    root = ROOT
    opener = re.compile(r"investigate\.sandbox import [^\n]*\b_open\b|sandbox\._open\b|Sandbox\._setup\b")
    users = sorted(
        p.relative_to(root).as_posix()
        for folder in ("pipeline", "scripts", "tests")
        for p in (root / folder).rglob("*.py")
        if opener.search(p.read_text(encoding="utf-8")) and p.name != "test_audit_trail.py"
    )
    assert users == ["pipeline/investigate/session.py"]


@pytest.mark.parametrize("case", ["203.0.113.77", "INC-2001:db8::17", "abuse-198.51.100.23"])
def test_a_case_or_request_id_holding_an_address_is_refused(store: Path, case: str) -> None:
    """Ids are kept as typed (entries, holds and hold file names are found by them): an address in
    one would be kept whole, so it is refused (exit 2) before anything is recorded."""
    before = len(audit.AuditLog(store).list())
    s = ["--store", str(store)]
    assert invoke("query", *s, "--case", case, "SELECT 1")[0] == 2
    assert invoke("hold", "add", *s, "--case", case, "--reason", "r")[0] == 2
    assert invoke("export", *s, "--domain", "example.test", "--request", case, "--output", "x.csv")[0] == 2
    assert len(audit.AuditLog(store).list()) == before
    assert not (store / "_holds").exists() or not any(store.joinpath("_holds").iterdir())


def test_free_text_in_the_audit_is_masked_at_the_store_s_prefixes(tmp_path: Path) -> None:
    """A reason or an output path naming an address is kept masked, at the prefixes the store was
    ingested with when they are coarser than /24 and /48."""
    store = tmp_path / "store"
    cfg = make_config(store)
    cfg = cfg.with_overrides(privacy=replace(cfg.privacy, ipv4_prefix=16, ipv6_prefix=32))
    ingest.run(cfg, [SourceConfig(path=str(ROOT / "sample_logs" / "other_vhosts_access.log"))], final=True)
    out = tmp_path / "visitor-198.51.100.23.csv"
    code, _, err = invoke(
        "export", "--store", str(store), "--domain", "example.test", "--request", "R-1",
        "--reason", "asked by 198.51.100.23 from 2001:db8:1:2::7", "--output", str(out),
    )  # fmt: skip
    assert code == 0, err
    text = (store / "_audit" / "audit.jsonl").read_text()
    assert "asked by 198.51.0.0/16 from 2001:db8::/32" in text and "visitor-198.51.0.0/16.csv" in text
    assert "198.51.100" not in text and "2001:db8:1" not in text
