"""Every access to the store and every lifecycle action is in the one audit trail, with its case."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline.cli import main
from pipeline.errors import UsageError
from pipeline.investigate import audit
from pipeline.investigate import sandbox as query
from pipeline.lifecycle import export as lifecycle

from .conftest import ROOT, ingest_paths, make_config


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
