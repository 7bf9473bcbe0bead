"""Docs that cannot drift: the schema table matches the code."""

from __future__ import annotations

import re

from pipeline.store.schema import PAGEVIEWS, REJECTS
from tests.conftest import ROOT


def table_columns(section: str) -> dict[str, str]:
    text = (ROOT / "docs" / "schema.md").read_text()
    body = text.split(section, 1)[1].split("\n## ", 1)[0]
    return dict(re.findall(r"^\| `([a-z_]+)` \| `([^`]+)` \|", body, re.M))


def test_schema_doc_matches_pageviews() -> None:
    assert table_columns("# The `pageviews` table") == {
        f.name: str(f.type).replace("tz=", "") for f in PAGEVIEWS
    }


def test_schema_doc_matches_rejects() -> None:
    assert table_columns("## `rejects`") == {f.name: str(f.type).replace("tz=", "") for f in REJECTS}


def test_reference_config_is_valid_and_documents_every_section() -> None:
    from pipeline import config

    cfg = config.load(ROOT / "configs" / "hostlogs.toml")
    text = (ROOT / "configs" / "hostlogs.toml").read_text()
    for section in ("[privacy]", "[geoip]", "[retention]", "[query]", "[ingest]", "[[sources]]"):
        assert section in text
    assert cfg.retention.retention == "2y" and cfg.privacy.key_period == "month"


def test_exit_codes_doc_lists_every_error_class_with_its_code() -> None:
    """docs/exit-codes.md is what cron and monitoring read: each error class, its code, nothing stale."""
    from pipeline import errors

    text = (ROOT / "docs" / "exit-codes.md").read_text()
    documented = {
        name: int(code)
        for code, cell in re.findall(r"^\| ([0-9]+) \| ([^|]*)\|", text, re.M)
        for name in re.findall(r"`([A-Za-z]+)`", cell)
    }
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.HostlogsError)
    }
    assert documented == {name: cls.exit_code for name, cls in classes.items()}
