"""How addresses are masked in what the commands print (``_common.shown``): at most at the
prefixes of the config a command loaded, or of its store, and never less than /24 and /48.

One module of state, read by ``_common`` and set by whatever loads a config (``load_config``,
``config check``), so that neither imports the other. Each thread (context) has its own; what any
thread prints is masked at least as much as every command running in the process masks (found by
review: two commands in threads of one embedding process used each other's prefixes, and a thread a
command starts begins with a fresh context).
"""

from __future__ import annotations

import contextlib
import threading
from collections import Counter
from contextvars import ContextVar

from pipeline import config
from pipeline.errors import HostlogsError
from pipeline.privacy.truncate import Truncator

_DEFAULT = Truncator()
_own: ContextVar[Truncator | None] = ContextVar("hostlogs_masking", default=None)
_live: Counter[tuple[int, int]] = Counter()  # the prefixes of every command's own masking now set
_lock = threading.Lock()


_made: dict[tuple[int, int], Truncator] = {(_DEFAULT.ipv4_prefix, _DEFAULT.ipv6_prefix): _DEFAULT}


def current() -> Truncator:
    """The masking for text printed now: this context's, or a coarser one another command set."""
    with _lock:
        prefixes = [(_DEFAULT.ipv4_prefix, _DEFAULT.ipv6_prefix), *_live]
        key = (min(v4 for v4, _ in prefixes), min(v6 for _, v6 in prefixes))
        if key not in _made:  # (one per pair of prefixes: each caches what it masked)
            _made[key] = Truncator(*key)
        return _made[key]


def reset() -> None:
    """The defaults again for this context (each command starts and ends with them)."""
    _set(None)


def _set(truncator: Truncator | None) -> None:
    with _lock:
        before = _own.get()
        if before is not None:
            key = (before.ipv4_prefix, before.ipv6_prefix)
            _live[key] -= 1
            if _live[key] <= 0:
                del _live[key]
        if truncator is not None:
            _live[(truncator.ipv4_prefix, truncator.ipv6_prefix)] += 1
        _own.set(truncator)


def mask_as(cfg: config.Config) -> None:
    """Mask what is printed from now on at most to the config's (and its store's) prefixes (found
    by review: with ``ipv4_prefix = 16``, warnings and error lines printed the /24 of an address in
    a file name: one octet more than the store keeps). Never less than the default /24 and /48: an
    error before any config is read has only those."""
    p = cfg.privacy
    v4, v6 = min(p.ipv4_prefix, _DEFAULT.ipv4_prefix), min(p.ipv6_prefix, _DEFAULT.ipv6_prefix)
    # best effort: a damaged record fails where a command reads it, not here (found by review: a
    # prefix of 1e400 had failed every command, verify and status included)
    with contextlib.suppress(HostlogsError, OSError, ValueError, TypeError, KeyError, OverflowError):
        from pipeline.investigate.audit import text_masker
        from pipeline.store.commit import Store

        # ... and the store's own, where it was ingested coarser (found by review: ``--store`` of a
        # /16 store without its config printed /24)
        recorded = text_masker(Store(cfg.store))
        v4, v6 = min(v4, recorded.ipv4_prefix), min(v6, recorded.ipv6_prefix)
    _set(Truncator(v4, v6))
