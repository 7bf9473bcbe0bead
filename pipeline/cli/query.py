"""hostlogs query: read-only DuckDB SQL over the store."""

from __future__ import annotations

import click

from .. import config, query
from ._common import handle_errors, main


@main.command("query")
@click.argument("sql")
@click.option("--store", default=None, help="Store directory (default from --config or ./hostlogs-store).")
@click.option("--config", "config_path", type=click.Path(dir_okay=False))
@click.option("--format", "out_format", type=click.Choice(["table", "csv", "json"]), default="table")
@handle_errors
def query_cmd(sql: str, store: str | None, config_path: str | None, out_format: str) -> None:
    """Run read-only DuckDB SQL over the store (views: pageviews, rejects, ingest_runs).

    Example:

        hostlogs query --store ./store "SELECT domain, count(*) FROM pageviews GROUP BY 1"
    """
    cfg = config.load(config_path).with_overrides(store=store)
    result = query.run(cfg.store, sql)
    click.echo(query.render(result, out_format))
