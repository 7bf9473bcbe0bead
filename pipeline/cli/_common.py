"""The command group, the options every command shares, and the one place where errors become exit codes.

Exit codes (docs/exit-codes.md): 0 ok · 1 internal error · 2 usage · 3 config · 4 source ·
5 format · 6 store · 7 key destroyed · 8 integrity · 9 query limit · 10 some sources failed ·
11 status: needs attention · 75 another run holds the lock. An ``OSError`` that reaches a command
(a read-only or full store, an I/O error) is a store error (6), an unexpected exception an internal
error (1): one line each; ``--debug`` adds the traceback.

Commands use the shared pieces below instead of defining their own: ``store_options`` (--config,
--store) with ``load_config``, ``DATE`` and ``date_range``, ``json_option``; ``notice``/``warn`` for
lines on stderr, ``echo_error`` and ``exit_with`` where a command goes on after an error (the shell).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import importlib
import json
import os
import re
import sys
import traceback
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from pipeline import __version__, config
from pipeline.cli import _masking
from pipeline.errors import (
    INTERRUPTED_EXIT,
    TERMINATED_EXIT,
    HostlogsError,
    StoreError,
    Terminated,
    os_error_message,
)
from pipeline.privacy.truncate import Truncator, mask_value
from pipeline.rules import undecodable

F = TypeVar("F", bound=Callable[..., Any])

# ----------------------------------------------------------------------------------------------------
# shared options


class Finite(click.FloatRange):
    """A float range that refuses NaN and infinity: click's range check lets NaN through (every
    comparison with it is false), and a NaN interval or limit never elapses or never trips. Nor
    above 10^15 (seconds, megabytes: ~30 million years, a zettabyte): 1e308 MB in bytes is infinity,
    which became an internal error where a size or a time is made an integer (found by review)."""

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        number = super().convert(value, param, ctx)
        if number != number or number in (float("inf"), float("-inf")):
            self.fail(f"{value!r} is not a finite number.", param, ctx)
        if abs(number) > LARGEST:
            self.fail(f"{value!r} is too large (at most {LARGEST:.0e}).", param, ctx)
        return number


LARGEST = 1e15


class Text(click.ParamType):  # type: ignore[type-arg]
    """Text stored in rows or records or selecting them (a domain, a server name, a pattern): UTF-8
    without NUL, not blank. A byte a terminal passed undecoded would be stored garbled or fail the
    run (exit 1); an empty value (a script's unset variable: ``erase --domain "$CUSTOMER"``) had
    selected every row, and erased them all (found by review)."""

    name = "TEXT"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str:
        text = str(value)
        if (raw := undecodable(text)) is not None:
            self.fail(f"{raw!r} is not UTF-8 text", param, ctx)
        if "\x00" in text:
            self.fail("a NUL character is no text", param, ctx)
        if not text.strip():
            self.fail("is empty: give a value (an empty one would select every row, or none)", param, ctx)
        return text


TEXT = Text()


def store_options(fn: F) -> F:
    """--config and --store (parameters ``config_path`` and ``store``): every command that uses a store."""
    fn = click.option(
        "--store", default=None, help="Store directory (overrides the config; default ./hostlogs-store)."
    )(fn)
    return click.option(
        "--config",
        "config_path",
        type=click.Path(dir_okay=False),
        help="TOML config (store, sources, privacy).",
    )(fn)


def load_config(config_path: str | None, store: str | None) -> config.Config:
    """The config file (or the defaults), with ``HOSTLOGS_…`` environment variables and then --store
    over it (``_settings.resolve``), validated as a whole: ``--store ""`` is refused (exit 3).

    Its sources are checked here for every command, not only ``ingest``: a config that cannot be
    ingested is broken for everyone (exit 3, naming the file and the entry).
    """
    from pipeline.cli._settings import resolve

    cfg = resolve(config_path, store=store).config
    _masking.mask_as(cfg)
    if cfg.sources or cfg.formats:  # (a format table alone is checked too: ingest --format NAME uses it)
        from pipeline.ingest.paths import check_sources

        check_sources(cfg, str(config_path))
    return cfg


def case_options(fn: F) -> F:
    """--case and --reason (parameters ``case``, ``reason``): what an access is recorded under."""
    fn = click.option("--reason", default=None, help="Why (recorded in the audit trail).")(fn)
    return click.option("--case", default=None, help="Case id the action is recorded under (audit trail).")(
        fn
    )


def authority_options(fn: F) -> F:
    """--case, --request and --reason: an action that needs a case or a request (erase, export, keys
    destroy); which one is required is checked by the library (``audit.check_authority``)."""
    fn = click.option("--request", default=None, help="Request id (access/erasure request), if no case.")(fn)
    return case_options(fn)


def quiet_option(fn: F) -> F:
    """--quiet/-q (parameter ``quiet``): print nothing on success (cron); errors still go to stderr."""
    return click.option(
        "--quiet", "-q", is_flag=True, help="Print nothing unless something failed (for cron)."
    )(fn)


def json_option(fn: F) -> F:
    """--json (parameter ``as_json``): print the command's report as JSON instead of text."""
    return click.option("--json", "as_json", is_flag=True, help="Print the report as JSON.")(fn)


# click.ParamType is generic only in newer click releases: not subscripted, so older ones still work
class DateType(click.ParamType):  # type: ignore[type-arg]
    """A UTC calendar day given as YYYY-MM-DD; the command receives a ``datetime.date``."""

    name = "DATE"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> dt.date:
        if isinstance(value, dt.date):
            return value.date() if isinstance(value, dt.datetime) else value
        # only the documented form: fromisoformat alone would also take 20260105 and 2026-W01-1
        if _DAY_RE.fullmatch(str(value)):
            with contextlib.suppress(ValueError):  # 2026-02-30: well-formed, but no such day
                return dt.date.fromisoformat(str(value))
        self.fail(f"{value!r} is not a date (YYYY-MM-DD)", param, ctx)


_DAY_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
DATE = DateType()


def date_range(
    first: str = "First UTC event date (default: all).", last: str = "Last UTC event date (default: all)."
) -> Callable[[F], F]:
    """--from and --to (parameters ``date_from``, ``date_to``: ``datetime.date`` or None), inclusive.

    Whether --from is after --to is checked by the library (``rules.check_range``), not here.
    """

    def decorate(fn: F) -> F:
        fn = click.option("--to", "date_to", type=DATE, help=last)(fn)
        return click.option("--from", "date_from", type=DATE, help=first)(fn)

    return decorate


# ----------------------------------------------------------------------------------------------------
# stderr and exit codes: the one mapping


def exit_code(exc: BaseException) -> int:
    """The documented exit code of an exception (docs/exit-codes.md)."""
    if isinstance(exc, HostlogsError):
        return exc.exit_code
    return StoreError.exit_code if isinstance(exc, OSError) else 1


def error_message(exc: BaseException) -> str:
    """The one line shown for an exception (after ``hostlogs: error:``)."""
    if isinstance(exc, HostlogsError):
        return str(exc)
    if isinstance(exc, OSError):  # a store path that cannot be written or read, wherever it was hit
        return os_error_message(exc)
    return f"internal error: {type(exc).__name__}: {exc} (run with --debug and report a bug)"


def shown(text: str, truncator: Truncator | None = None) -> str:
    """Text the commands print about the operator's files (reports, warnings, errors), as cron mail
    and the journal keep it: every address in it masked as the store masks it (found by review: a
    log named ``access.log.203.0.113.77`` was printed whole, on stdout and stderr). Names in it go
    through ``printable`` first. Query results are not passed through here."""
    return mask_value(text, truncator or _masking.current())


def shown_json(data: Any, truncator: Truncator | None = None, **dumps: Any) -> str:
    """``data`` as JSON, each string in it ``shown`` before it is encoded (found by review: masking
    the encoded text read a ``\\u00fc`` escape's hex digits as part of the IPv6 address after it and
    broke the escape: invalid JSON)."""

    def each(value: Any) -> Any:  # (JSON as decoded: keys are strings, sequences lists)
        if isinstance(value, str):
            return shown(value, truncator)
        if isinstance(value, dict):
            return {shown(k, truncator): each(v) for k, v in value.items()}
        if isinstance(value, list):
            return [each(v) for v in value]
        return value

    # (a round trip first: what ``default`` makes of dates and the like is text to mask as well)
    plain = json.loads(json.dumps(data, default=dumps.pop("default", None)))
    return json.dumps(each(plain), **dumps)


# C0 and C1 controls and the Unicode line and paragraph separators: each may end a line for a
# reader (found by review: U+2028 and U+0085 split an error line in two once no longer collapsed)
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def printable(name: str) -> str:
    """A file name on one line: a newline or another control character in it escaped (found by
    review: a name with a newline split a report line in two, and could forge one). As ``\\n``,
    ``\\t``, ``<0x1b>``: no hex digits that could run into an address after it when masked."""
    return _CONTROL.sub(lambda m: _NAMED.get(m.group(), f"<0x{ord(m.group()):02x}>"), name)


def shown_line(text: str) -> str:
    """``shown(printable(text))``: text from outside (a file name, a record, a typed value) as one
    printed line, its addresses masked. In that order: the escapes carry no hex digit that could
    join an address."""
    return shown(printable(text))


def echo_error(exc: BaseException) -> int:
    """Print the error line(s) of ``exc`` (traceback too under --debug); return its exit code."""
    if _debug():
        traceback.print_exception(exc, file=sys.stderr)
    for detail in getattr(exc, "details", ()):  # e.g. each source a PartialFailure could not read
        click.echo(f"hostlogs: error: {shown_line(str(detail).strip())}", err=True)
    click.echo(f"hostlogs: error: {shown_line(error_message(exc).strip())}", err=True)
    return exit_code(exc)


def exit_with(code: int) -> None:
    """End the command with ``code`` (after its own messages), e.g. the worst of a shell's statements."""
    raise click.exceptions.Exit(code)


def notice(message: str) -> None:
    """An informational line on stderr, as given, so stdout stays the result ("12 rows written to …")."""
    click.echo(message, err=True)


def warn(message: str) -> None:
    """A warning on stderr (``hostlogs: warning: …``): the command goes on."""
    notice(f"hostlogs: warning: {shown_line(message)}")


def handle_errors(fn: F) -> F:
    """Turn library errors into a one-line message on stderr and the documented exit code."""

    @wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        _masking.begin()  # (until this command loads its config: not the last command's, in-process)
        try:
            return fn(*args, **kwargs)
        except (click.ClickException, click.exceptions.Exit, click.Abort):
            raise  # click's own usage errors (exit 2) and exits
        except KeyboardInterrupt as exc:  # (here, before click turns it into an Abort after a blank line)
            sys.exit(_interrupted(exc))
        except Exception as exc:
            sys.exit(echo_error(exc))
        finally:  # no state left behind for the code that runs next in this process (found by review)
            _masking.end()

    return wrapper  # type: ignore[return-value]


def _debug() -> bool:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx is not None else None
    return bool(root is not None and root.params.get("debug")) or bool(os.environ.get("HOSTLOGS_DEBUG"))


# ----------------------------------------------------------------------------------------------------
# the command group

# command → the module that defines it. Modules load on first use: ``hostlogs ingest`` does not pay
# for DuckDB and the investigation code at start-up (measured 0.15 s of a cron run).
COMMAND_MODULES: dict[str, str] = {
    "ingest": "ingest",
    "query": "query", "shell": "query", "audit": "query",
    "investigate": "investigate",
    "keys": "keys",
    "purge": "maintenance", "verify": "maintenance", "compact": "maintenance",
    "hold": "hold",
    "status": "status",
    "config": "config",
    "erase": "rights", "export": "rights",
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose subcommands register themselves when their module is first imported."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *COMMAND_MODULES})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            importlib.import_module(f"{__package__}.{COMMAND_MODULES[cmd_name]}")
        return super().get_command(ctx, cmd_name)

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:  # type: ignore[override]
        """click's own handling, except that a usage error is one line like every other error
        (``hostlogs: error: …``, exit 2), not click's usage block: cron mails and logs read it."""
        run: Any = super().main  # (click types its overloads by the literal standalone_mode)
        if not standalone_mode:
            return run(*args, standalone_mode=False, **kwargs)
        try:
            code = run(*args, standalone_mode=False, **kwargs)
        except click.exceptions.NoArgsIsHelpError as exc:  # `hostlogs`, `hostlogs keys`: the help
            exc.show()
            sys.exit(exc.exit_code)
        except click.UsageError as exc:
            names, ctx = [], exc.ctx
            while ctx is not None and ctx.parent is not None:  # the subcommands, whatever ran us
                names.append(ctx.info_name or "")
                ctx = ctx.parent
            where = " ".join(["hostlogs", *reversed(names)])
            message = _one_line(exc.format_message()).rstrip(".")
            message = message[:1].lower() + message[1:]
            click.echo(f"hostlogs: error: {message} (see '{where} --help')", err=True)
            sys.exit(exc.exit_code)
        except click.ClickException as exc:
            click.echo(f"hostlogs: error: {_one_line(exc.format_message())}", err=True)
            sys.exit(exc.exit_code)
        except (KeyboardInterrupt, click.Abort, EOFError) as exc:  # (click makes Ctrl-C an Abort)
            sys.exit(_interrupted(exc))
        sys.exit(code if isinstance(code, int) else 0)


def _one_line(message: str) -> str:
    """click's message as one line, the values typed in it masked like every printed line (found by
    review: ``erase 203.0.113.77`` printed "got unexpected extra argument (203.0.113.77)" whole)."""
    return shown_line(message.strip().replace("\n", " "))


def _interrupted(exc: BaseException) -> int:
    """Ctrl-C, SIGTERM in an audited access (``Terminated``) or a prompt without input: one line and
    128 + the signal (found by review: "Aborted!" and exit 1, which says "report a bug")."""
    cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__cause__ or exc.__context__
    if not isinstance(cause, KeyboardInterrupt):
        click.echo("hostlogs: error: aborted (no input)", err=True)
        return INTERRUPTED_EXIT
    terminated = isinstance(cause, Terminated)
    why = "terminated (SIGTERM)" if terminated else "interrupted (Ctrl-C)"
    click.echo(f"hostlogs: error: {why}: what was committed before stays; run it again", err=True)
    return TERMINATED_EXIT if terminated else INTERRUPTED_EXIT


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="hostlogs")
@click.option("--debug", is_flag=True, help="On an error, print the traceback too.")
def main(debug: bool) -> None:
    """hostlogs: web-hosting access logs → privacy-safe, date-partitioned Parquet evidence store.

    Example:

        hostlogs ingest sample_logs/other_vhosts_access.log --store ./store
    """
