"""hostlogs config check: validate a configuration and show each effective value with where it came from."""

from __future__ import annotations

import json

import click

from pipeline.cli import _settings
from pipeline.cli._common import handle_errors, json_option, main, shown_line, store_options, warn


@main.group("config")
def config_group() -> None:
    """Check a configuration: what is wrong, and where each value comes from.

    Example:

        hostlogs config check --config /etc/hostlogs/hostlogs.toml
    """


@config_group.command("check")
@store_options
@json_option
@handle_errors
def check_cmd(config_path: str | None, store: str | None, as_json: bool) -> None:
    """Validate a config and print the effective configuration.

    Refuses (one line, exit 3) what every command would refuse, and also GeoIP databases that cannot
    be opened and a store path that cannot be a directory; warns (stderr, exit 0) of a source whose
    directory does not exist, a metrics directory that does not exist and unknown HOSTLOGS_…
    variables. Each value is shown with where it came from: default, file, env (HOSTLOGS_<SECTION>_<NAME>,
    e.g. HOSTLOGS_INGEST_WORKERS=4) or flag (--store). Settings: docs/configuration.md.

    Example:

        HOSTLOGS_INGEST_WORKERS=4 hostlogs config check --config /etc/hostlogs/hostlogs.toml --json
    """
    report = _settings.check(config_path, store=store)
    for warning in report.warnings:
        warn(warning)
    if as_json:  # (its warnings name sources: masked like the lines on stderr, found by review)
        data = report.to_dict()
        click.echo(json.dumps({**data, "warnings": [shown_line(w) for w in data["warnings"]]}, indent=2))
    else:
        click.echo(_settings.render_check(report))
