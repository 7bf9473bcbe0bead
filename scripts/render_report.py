"""Screenshot an incident report (or any local HTML file) to PNG with headless Chromium.

    python scripts/render_report.py report.html report.png [--width 1280] [--height 3000]

Used to check that `hostlogs investigate report` renders in a real browser, offline: the browser
runs with networking-related background services off and a throw-away profile. Needs Debian's
`chromium` package (apt-get install -y chromium); the test suite does not.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--hide-scrollbars",
]


def find_chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if path := shutil.which(name):
            return path
    return None


def screenshot(html: Path, png: Path, width: int = 1280, height: int = 3000, timeout: float = 60) -> None:
    browser = find_chromium()
    if browser is None:
        raise SystemExit("chromium not found: apt-get install -y chromium")
    with tempfile.TemporaryDirectory(prefix="hostlogs-chromium-") as profile:
        cmd = [
            browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
            f"--screenshot={png.resolve()}", html.resolve().as_uri(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
    if proc.returncode != 0 or not png.exists():
        raise SystemExit(f"chromium failed ({proc.returncode}): {proc.stderr.strip()[-500:]}")


def main(argv: list[str]) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("html", type=Path)
    ap.add_argument("png", type=Path)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=3000)
    args = ap.parse_args(argv)
    screenshot(args.html, args.png, args.width, args.height)
    print(f"{args.png}: {args.png.stat().st_size:,} bytes")


if __name__ == "__main__":
    main(sys.argv[1:])
