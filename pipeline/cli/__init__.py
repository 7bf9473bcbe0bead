"""The ``hostlogs`` command: a thin shell over the library, one module per command group.

Each command calls one library function and renders its report; errors become exit codes only in
``_common.handle_errors``.
"""

from __future__ import annotations

from . import ingest, investigate, keys, lifecycle, query  # noqa: F401  (registers the commands)
from ._common import main

__all__ = ["main"]

if __name__ == "__main__":  # pragma: no cover
    main()
