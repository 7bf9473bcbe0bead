"""``recorded``: the metrics file is updated after each ingest, purge and compact, success or failure.

A decorator between ``handle_errors`` and the command, so it sees the command's own exception (and so
its documented exit code) before ``handle_errors`` turns it into a message. Dry runs and ``--verify``
change nothing and are not recorded. A metrics file that cannot be written is a warning on stderr:
the command's own result and exit code stand.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, TypeVar

import click

from pipeline.cli._common import exit_code, load_config, warn

F = TypeVar("F", bound=Callable[..., Any])


def recorded(command: str) -> Callable[[F], F]:
    """Write this command's metrics (``metrics.textfile``) after it ran."""

    def decorate(fn: F) -> F:
        @wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if kwargs.get("dry_run") or kwargs.get("verify"):
                return fn(*args, **kwargs)
            started, t0, code = dt.datetime.now(dt.UTC), time.monotonic(), 0
            try:
                return fn(*args, **kwargs)
            except click.exceptions.Exit as exc:
                code = exc.exit_code
                raise
            except click.ClickException as exc:
                code = exc.exit_code
                raise
            except Exception as exc:
                code = exit_code(exc)
                raise
            finally:
                _record(kwargs, command, code, started, time.monotonic() - t0)

        return wrapper  # type: ignore[return-value]

    return decorate


def _record(kwargs: dict[str, Any], command: str, code: int, started: dt.datetime, seconds: float) -> None:
    try:
        cfg = load_config(kwargs.get("config_path"), kwargs.get("store"))
    except Exception:
        return  # the command reported its own config error; without a config there is no metrics path
    if not cfg.metrics.textfile:
        return
    # imported here: a cron ingest without metrics does not load the lifecycle stage
    from pipeline.ingest import lag
    from pipeline.lifecycle import metrics

    lags: dict[str, int | None] = {}
    matched: dict[str, int] = {}
    # a store or key directory that cannot be read (why the run failed) has no lag: the run's exit
    # code is what must reach the metrics then
    with contextlib.suppress(Exception):
        sources = lag.source_lags(cfg)
        lags = {f.path: f.lag for s in sources for f in s.files}
        matched = {s.pattern: len(s.files) for s in sources}
    try:
        metrics.record(cfg, metrics.Run(command, code, started, seconds, lags, matched), on_problem=warn)
    except Exception as exc:  # never hide the command's own outcome behind a metrics failure
        what = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        warn(f"cannot write the metrics file {cfg.metrics.textfile}: {what} ({command}'s exit code stands)")
