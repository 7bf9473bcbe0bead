"""[formats.NAME] tables: a provider's own log formats, declared in the config like the built-ins."""

from __future__ import annotations

import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipeline import config
from pipeline.cli import main
from pipeline.errors import ConfigError, FormatError
from pipeline.ingest import formats
from pipeline.ingest import run as ingest
from pipeline.ingest.paths import check_sources
from tests.conftest import ROOT, store_rows


@pytest.fixture(autouse=True)
def _forget_config_formats() -> Iterator[None]:
    yield
    formats.register_config({})


def test_a_config_format_is_registered_and_ingested(tmp_path: Path) -> None:
    log = tmp_path / "app.log"
    log.write_text('203.0.113.7 [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 12 shop.example\n')
    cfg = config.from_dict(
        {
            "store": str(tmp_path / "store"),
            "formats": {"edge": {"family": "apache", "definition": '%h %t "%r" %>s %b %v'}},
            "sources": [{"path": str(log), "format": "edge"}],
        },
        origin="c.toml",
    )
    check_sources(cfg, "c.toml")  # what every command does with a config file
    report = ingest.run(cfg, final=True)
    assert (report.sources[0].format, report.rows) == ("edge", 1)
    (row,) = store_rows(tmp_path / "store")
    assert (row["domain"], row["path"], row["client_net"]) == ("shop.example", "/a", "203.0.113.0/24")


def test_the_next_config_replaces_the_formats_of_the_last() -> None:
    formats.register_config({"edge": {"family": "apache", "definition": "%h %t"}})
    assert formats.get("edge") is not None
    formats.register_config({})
    assert formats.get("edge") is None


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"family": "cobol"}, r"c.toml: formats.x: unknown family 'cobol' \(known: apache"),
        (
            {"family": "apache", "definition": "%h %Z"},
            r"c.toml: formats.x: unsupported LogFormat directive %Z",
        ),
        ({"family": "apache", "definition": 7}, r"c.toml: formats.x: definition must be text"),
        (
            {"family": "apache", "definition": "%h %t", "detect": "yes"},
            r"formats.x: detect must be true or false",
        ),
        (
            {"family": "apache", "definition": "%h %t", "description": ["a"]},
            r"formats.x: description must be text",
        ),
        ({"family": "json", "ts": "t", "time_format": "%Q"}, r"formats.x: time format '%Q' does not read"),
    ],
)
def test_a_bad_format_table_is_a_config_error(table: dict[str, object], message: str) -> None:
    cfg = config.from_dict({"formats": {"x": table}}, origin="c.toml")
    with pytest.raises(FormatError, match=message):
        formats.register_config(cfg.formats, "c.toml")
    with pytest.raises(ConfigError, match=message):  # as the config loader of every command reports it
        check_sources(cfg, "c.toml")


def test_a_format_table_needs_a_family_and_a_plain_name() -> None:
    with pytest.raises(ConfigError, match=r"formats.x needs a family"):
        config.from_dict({"formats": {"x": {"definition": "%h %t"}}})
    with pytest.raises(ConfigError, match=r"format name 'My-Format' must be lower-case"):
        config.from_dict({"formats": {"My-Format": {"family": "apache"}}})
    with pytest.raises(ConfigError, match=r"'combined' is the name of a built-in format"):
        check_sources(config.from_dict({"formats": {"combined": {"family": "apache"}}}), "c.toml")


def test_the_commented_examples_in_the_config_template_compile() -> None:
    """configs/hostlogs.toml shows [formats.NAME] tables commented out: uncommented, they register."""
    text = (ROOT / "configs" / "hostlogs.toml").read_text()
    start = text.index("# [formats.")
    lines = [ln.removeprefix("# ") for ln in text[start:].splitlines() if ln.startswith("# ")]
    block = "\n".join(ln for ln in lines if not ln.startswith("("))  # (prose between the tables)
    cfg = config.from_dict(tomllib.loads(block), origin="hostlogs.toml")
    assert set(cfg.formats) == {"app_json", "edge"}
    formats.register_config(cfg.formats, "hostlogs.toml")
    assert formats.get("app_json").family == "json"  # type: ignore[union-attr]
    assert formats.get("edge").family == "apache"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "table",
    [
        'family = "apache"\ndefinition = "%h %{"',
        'family = "apache"\nlogformat = \'%h %l %u %t "%r" %>s %b\'',
        'family = "apache"\ndefinition = "%h %t"\nlogformat = "%h %t"',
        'family = "w3c"',
        'family = "json"\nfields = 7',
        'family = "cobol"',
    ],
)
@pytest.mark.parametrize(
    "command", [["ingest", "--format", "bad"], ["ingest", "--format", "combined"], ["status"]]
)
def test_a_bad_format_table_without_sources_is_a_config_error_of_every_command(
    tmp_path: Path, table: str, command: list[str]
) -> None:
    """Exit 3 naming the file, as documented, also when the config has no [[sources]] (ingest had
    compiled the table itself: exit 5, naming "config")."""
    log = tmp_path / "a.log"
    log.write_text('203.0.113.7 - - [10/Oct/2026:13:55:36 +0000] "GET /a HTTP/1.1" 200 12\n')
    cfg = tmp_path / "c.toml"
    cfg.write_text(f"[formats.bad]\n{table}\n")
    args = [*command, *([str(log)] if command[0] == "ingest" else []), "--config", str(cfg)]
    result = CliRunner().invoke(main, [*args, "--store", str(tmp_path / "store")])
    assert result.exit_code == 3, result.output
    assert f"{cfg}: formats.bad" in result.output or f"{cfg}: [formats]" in result.output
    assert not (tmp_path / "store").exists()
