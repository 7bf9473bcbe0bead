#!/usr/bin/env bash
# Create .venv and install hostlogs with its test tools (idempotent).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check --upgrade pip
.venv/bin/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
# Bytecode for the package now: an editable install leaves none, and where PYTHONDONTWRITEBYTECODE is
# set every start would compile ~100 modules again (~0.07 s of each short cron run or query).
.venv/bin/python -m compileall -q pipeline
