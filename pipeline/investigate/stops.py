"""How Ctrl-C and SIGTERM end an audited action (``audit.AuditLog.record``): as an exception, so its
outcome entry is written, except once the action is committing its last step.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from pipeline.errors import Terminated


@dataclass
class _Stops:
    """Ctrl-C and SIGTERM during the audited action running on the main thread."""

    deferred: bool = False  # set by ``committing``: from there on a stop waits for the action's end
    pending: list[str] = field(default_factory=list)  # the stops that waited


_stops: _Stops | None = None


@contextlib.contextmanager
def stops_raise() -> Iterator[_Stops]:
    """SIGTERM raises ``Terminated`` inside an audited action (main thread only), as Ctrl-C raises
    ``KeyboardInterrupt``, so that its outcome entry is written (found by review: a query, then an
    erase or a purge stopped by systemd or ``kill`` left only its start entry). Safe wherever Ctrl-C
    is: every action already survives a ``KeyboardInterrupt`` at any point (and ``kill -9``). Once
    the action is ``committing`` its last step, a first one waits for its end instead. The handlers
    before are restored before the outcome entry is written."""
    global _stops
    state = _Stops()
    if threading.current_thread() is not threading.main_thread() or _stops is not None:
        yield state  # (a nested record: the outer one handles the signals)
        return

    def stop(signum: int, frame: Any) -> None:
        if state.deferred and not state.pending:  # (a second one stops it even there: it may hang)
            state.pending.append(signal.Signals(signum).name)
            return
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    # not where a signal is ignored (``nohup``, ``&``, a caller's SIG_IGN); Ctrl-C only where it
    # raises KeyboardInterrupt anyway
    ours = [signal.SIGTERM] if signal.getsignal(signal.SIGTERM) is not signal.SIG_IGN else []
    ours += [signal.SIGINT] if signal.getsignal(signal.SIGINT) is signal.default_int_handler else []
    previous = {sig: signal.signal(sig, stop) for sig in ours}
    _stops = state
    try:
        yield state
    finally:
        _stops = None
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@contextlib.contextmanager
def committing() -> Iterator[None]:
    """The commit that ends an audited action (its last step: nothing but returning follows): a
    stop (Ctrl-C, SIGTERM) from here on waits until the action ends, and the action is recorded as
    completed, with a warning. A second stop stops it at once, as before (a store that hangs).

    Found by review: ``hold add`` stopped just after its hold file was written was recorded as an
    error and told the operator to run it again, which then failed ("already has an active hold").
    What is committed is done: the action ends as it would have, and says a stop came."""
    state = _stops
    if state is None or threading.current_thread() is not threading.main_thread():
        # not audited, or not the audited action's thread (found by review: a hold placed on a
        # worker thread made the main thread's query ignore SIGTERM): a stop raises as it would
        yield
        return
    state.deferred = True
    try:
        yield
    except BaseException:
        state.deferred = False  # the commit failed: the action ends with that error
        raise
