"""How addresses are masked in what the commands print (``_common.shown``): at most at the
prefixes of the config a command loaded, or of its store, and never less than /24 and /48.

One module of state, read by ``_common`` and set by whatever loads a config (``load_config``,
``config check``), so that neither imports the other. Each command (``_common.handle_errors``) has a
frame of its own on its thread's stack, and what any thread prints is masked at least as coarsely as
every command running in the process, a command it ran (nested) or another thread's (found by review:
two commands in threads of one embedding process used each other's prefixes; then a per-context
value was undone by a copied context's reset).
"""

from __future__ import annotations

import contextlib
import threading

from pipeline import config
from pipeline.errors import HostlogsError
from pipeline.privacy.truncate import Truncator

_DEFAULT = Truncator()
Prefixes = tuple[int, int]
# thread → the prefixes of each command running on it, outermost first (None: no config loaded yet)
_stacks: dict[int, list[Prefixes | None]] = {}
_lock = threading.Lock()
_made: dict[Prefixes, Truncator] = {(_DEFAULT.ipv4_prefix, _DEFAULT.ipv6_prefix): _DEFAULT}


def current() -> Truncator:
    """The masking for text printed now: the coarsest of the defaults and every running command's."""
    with _lock:
        live = [f for stack in _stacks.values() for f in stack if f is not None]
        key = (
            min((_DEFAULT.ipv4_prefix, *(v4 for v4, _ in live))),
            min((_DEFAULT.ipv6_prefix, *(v6 for _, v6 in live))),
        )
        if key not in _made:  # (one per pair of prefixes: each caches what it masked)
            _made[key] = Truncator(*key)
        return _made[key]


def begin() -> None:
    """A command starts on this thread: the defaults until it loads a config."""
    with _lock:
        _stacks.setdefault(threading.get_ident(), []).append(None)


def end() -> None:
    """The command ends: its prefixes go, those of the command that ran it (if any) stay."""
    ident = threading.get_ident()
    with _lock:
        stack = _stacks.get(ident, [])
        if stack:
            stack.pop()
        if not stack:
            _stacks.pop(ident, None)


def _set(prefixes: Prefixes) -> None:
    """This thread's running command masks at ``prefixes`` (a library call outside any command
    starts a frame that no ``end`` closes: the coarser masking stays, the safe way)."""
    with _lock:
        stack = _stacks.setdefault(threading.get_ident(), [])
        if not stack:
            stack.append(None)
        stack[-1] = prefixes


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
    _set((v4, v6))
