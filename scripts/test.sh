#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first if needed). Extra arguments go to pytest.
# One pytest worker per core (pytest-xdist); idle workers steal queued tests, so a few long ones do
# not leave a core idle at the end. '-n 0' runs serially.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m pytest -q -n auto --dist worksteal "$@"
