"""Progress bars: click's own bar on stderr, fed by a library's ``progress(done, total)`` callback.

The library only counts (bytes of the sources, partitions, days); the command decides whether a
bar is drawn: only when stderr is a terminal and ``--quiet``/``--json`` were not given. Under cron,
systemd, a pipe or ``CliRunner`` nothing is drawn and nothing extra is printed.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any

import click

Progress = Callable[[int, int], None]


def _rate(value: float, unit: str) -> str:
    if unit == "bytes":
        return f"{value / 1e6:,.1f} MB/s"
    return f"{value:,.1f} {unit}/s"


@contextlib.contextmanager
def progress_bar(label: str, unit: str, *, quiet: bool = False) -> Iterator[Progress | None]:
    """A callback drawing a bar with percentage, rate and ETA, or None when nothing is to be drawn."""
    stream = sys.stderr
    if quiet or not stream.isatty():
        yield None
        return
    started = time.monotonic()
    state: dict[str, Any] = {"bar": None, "shown": 0}

    def show(rate: str | None) -> str | None:
        return rate

    def update(done: int, total: int) -> None:
        bar = state["bar"]
        if bar is None:
            if total <= 0:
                return
            bar = click.progressbar(
                length=total, label=label, file=stream, show_eta=True, show_percent=True,
                item_show_func=show,
            )  # fmt: skip
            bar.__enter__()
            state["bar"] = bar
        bar.length = max(total, 1)
        step = min(done, total) - state["shown"]
        seconds = time.monotonic() - started
        if step > 0:
            state["shown"] += step
            bar.update(step, _rate(state["shown"] / seconds if seconds > 0 else 0.0, unit))

    try:
        yield update
    finally:
        if state["bar"] is not None:
            state["bar"].__exit__(None, None, None)
