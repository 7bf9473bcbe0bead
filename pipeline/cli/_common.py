"""The command group and the one place where library errors become exit codes.

Exit codes (docs/exit-codes.md): 0 ok · 1 internal error · 2 usage · 3 config · 4 source ·
5 format · 6 store · 7 key destroyed · 8 integrity · 10 some sources failed · 75 another ingest holds
the lock. An ``OSError`` that reaches a command (a read-only or full store, an I/O error) is a store
error (6), an unexpected exception an internal error (1): one line each; ``--debug`` adds the traceback.
"""

from __future__ import annotations

import importlib
import os
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from pipeline import __version__
from pipeline.errors import HostlogsError, StoreError, os_error_message

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Turn library errors into a one-line message on stderr and the documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own usage errors (exit 2) and exits
        except HostlogsError as exc:
            _fail(exc, str(exc), exc.exit_code)
        except OSError as exc:  # a store path that cannot be written or read, wherever it was hit
            _fail(exc, os_error_message(exc), StoreError.exit_code)
        except Exception as exc:
            text = f"internal error: {type(exc).__name__}: {exc} (run with --debug and report a bug)"
            _fail(exc, text, 1)

    return wrapper  # type: ignore[return-value]


def _fail(exc: BaseException, message: str, code: int) -> None:
    if _debug():
        traceback.print_exception(exc, file=sys.stderr)
    click.echo(f"hostlogs: error: {' '.join(message.split())}", err=True)
    sys.exit(code)


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.params.get("debug")) or bool(os.environ.get("HOSTLOGS_DEBUG"))


# command → the module that defines it. Modules load on first use: ``hostlogs ingest`` does not pay
# for DuckDB and the investigation code at start-up (measured 0.15 s of a cron run).
COMMAND_MODULES: dict[str, str] = {
    "ingest": "ingest",
    "query": "query", "shell": "query", "audit": "query",
    "investigate": "investigate",
    "keys": "keys",
    "purge": "lifecycle", "hold": "lifecycle", "erase": "lifecycle", "export": "lifecycle",
    "compact": "lifecycle", "verify": "lifecycle",
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose subcommands register themselves when their module is first imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hostlogs")
@click.option("--debug", is_flag=True, help="On an error, print the traceback too.")
def main(debug: bool) -> None:
    """hostlogs: web-hosting access logs → privacy-safe, date-partitioned Parquet evidence store.

    Example:

        hostlogs ingest sample_logs/other_vhosts_access.log --store ./store
    """
