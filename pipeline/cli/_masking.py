"""How addresses are masked in what the commands print (``_common.shown``): at most at the
prefixes of the config a command loaded, or of its store, and never less than /24 and /48.

One module of state, read by ``_common`` and set by whatever loads a config (``load_config``,
``config check``), so that neither imports the other.
"""

from __future__ import annotations

import contextlib

from pipeline import config
from pipeline.errors import HostlogsError
from pipeline.privacy.truncate import Truncator

_DEFAULT = Truncator()
_current = _DEFAULT


def current() -> Truncator:
    return _current


def reset() -> None:
    """The defaults again (each command starts with them)."""
    global _current
    _current = _DEFAULT


def mask_as(cfg: config.Config) -> None:
    """Mask what is printed from now on at most to the config's (and its store's) prefixes (found
    by review: with ``ipv4_prefix = 16``, warnings and error lines printed the /24 of an address in
    a file name: one octet more than the store keeps). Never less than the default /24 and /48: an
    error before any config is read has only those."""
    global _current
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
    _current = Truncator(v4, v6)
