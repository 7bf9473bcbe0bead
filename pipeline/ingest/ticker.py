"""Bytes done and to do, for ``ingest.run``'s progress callback (the CLI's progress bar)."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable

from pipeline.ingest import sources


class Ticker:
    """Bytes done and to do for ``run``'s progress callback."""

    def __init__(self, progress: Callable[[int, int], None]) -> None:
        self.progress, self.total, self.done, self.in_file = progress, 0, 0, 0
        self.sizes: dict[str, int] = {}

    def expect(self, paths: list[tuple[str, str]]) -> None:
        for path, _ in paths:
            with contextlib.suppress(OSError):  # stdin, or a file gone: it has no size to wait for
                self.sizes[path] = 0 if path == sources.STDIN else os.path.getsize(path)
        self.total = sum(self.sizes.values())
        self.progress(self.done, self.total)

    def read(self, n: int) -> None:
        self.in_file += n
        self.progress(min(self.done + self.in_file, self.total), self.total)

    def finished(self, path: str) -> None:
        self.done += max(self.sizes.get(path, 0), self.in_file)
        self.total = max(self.total, self.done)
        self.in_file = 0
        self.progress(self.done, self.total)
