#!/usr/bin/env bash
# Run the whole test suite (sets up .venv first if needed). Extra arguments go to pytest.
# One pytest worker per core (pytest-xdist); idle workers steal queued tests, so a few long ones do
# not leave a core idle at the end. '-n 0' runs serially.
#
# The tests' stores go to a RAM file system when the machine has one (/dev/shm): the code under test
# fsyncs every commit as it must, and on a disk those ~10,000 fsyncs were a fifth of the suite's time
# (150 s against 117 s on 2 cores). Nothing else changes: the same files, renames, locks and kill -9
# of real processes. A --basetemp DIR given here wins (pytest takes the last one).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
base=()
if [ -d /dev/shm ] && [ -w /dev/shm ]; then
    tmp="$(mktemp -d /dev/shm/hostlogs-tests.XXXXXX)"
    trap 'rm -rf "$tmp"' EXIT
    base=(--basetemp "$tmp/t")
fi
.venv/bin/python -m pytest -q -n auto --dist worksteal "${base[@]}" "$@"
