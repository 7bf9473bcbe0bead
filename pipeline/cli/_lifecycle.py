"""What the lifecycle commands (purge, verify, compact, hold, erase, export) share: options, report lines."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from pipeline.cli._common import Finite, json_option, store_options
from pipeline.errors import IntegrityError
from pipeline.lifecycle.rewrite import PartitionChange
from pipeline.lifecycle.session import DamagedFile

F = TypeVar("F", bound=Callable[..., Any])
SHOWN = 12  # partitions listed one per line before the rest are summarised


def lifecycle_options(*, wait: bool = True) -> Callable[[F], F]:
    """--config, --store, --json (and --wait): shared by every lifecycle command."""

    def decorate(fn: F) -> F:
        if wait:
            help_text = "Seconds to wait for another maintenance run (default 0: exit 75)."
            fn = click.option("--wait", type=Finite(min=0), default=0.0, help=help_text)(fn)
        return store_options(json_option(fn))

    return decorate


def emit(report: Any, as_json: bool, render: Callable[[Any], str], quiet: bool = False) -> None:
    """The report as JSON or text; the text lists damaged files after it. ``quiet``: no text (a
    damaged file is still an error on stderr: ``damage_exit``)."""
    if quiet and not as_json:
        return
    text = json.dumps(report.to_dict(), indent=2, default=str) if as_json else render(report)
    damaged = getattr(report, "damaged", ())
    if damaged and not as_json:
        lines = [f"DAMAGED ({len(damaged)} files):", *(f"  {d.describe()}" for d in damaged)]
        text += "\n" + "\n".join(lines)
    click.echo(text)


def damage_exit(damaged: tuple[DamagedFile, ...], rest: str) -> None:
    """After the report: a damaged file is an incident (exit 8), even though the rest was done."""
    if damaged:
        first = damaged[0]
        more = f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise IntegrityError(
            f"damaged file {first.path}{more}: {first.problem}; {first.action}; {rest}; "
            "run 'hostlogs verify' and treat it as an incident"
        )


def partition_lines(changes: tuple[PartitionChange, ...]) -> list[str]:
    lines = []
    for c in changes[:SHOWN]:
        kept = f", {c.rows_left:,} kept" if c.rows_left else ""
        why = f" (hold {', '.join(c.holds)})" if c.holds else ""
        lines.append(f"  {c.date}  {c.action:<9}  {c.rows_deleted:,} rows{kept}{why}")
    if len(changes) > SHOWN:
        rest = changes[SHOWN:]
        lines.append(f"  … {len(rest)} more partitions, {sum(c.rows_deleted for c in rest):,} rows")
    return lines


def held_lines(held: dict[str, int], described: tuple[str, ...]) -> list[str]:
    lines = [f"kept under hold {case}: {n:,} rows" for case, n in held.items()]
    return lines + [f"active hold: {d}" for d in described]
