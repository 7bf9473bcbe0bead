#!/usr/bin/env bash
# Soak the guarantees the suite samples: the crash (kill -9) and property tests with N times as many
# trials and examples (default 10). Minutes, not seconds: a script, not part of the suite.
#
#     bash scripts/soak.sh          # 10x
#     bash scripts/soak.sh 50 -x    # 50x, stop at the first failure (extra arguments go to pytest)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
factor="${1:-10}"
shift || true
HOSTLOGS_SOAK="$factor" .venv/bin/python -m pytest -q -n auto --dist worksteal \
    tests/store/test_crash.py \
    tests/lifecycle/test_lifecycle.py::test_sigkill_mid_operation_then_rerun \
    tests/lifecycle/test_retention.py::test_purge_keeps_exactly_the_window_and_the_holds \
    tests/ingest/test_scanner_parity.py \
    tests/ingest/test_parse_golden.py \
    tests/privacy/test_property_no_ip.py \
    tests/privacy/test_property_formats_no_ip.py \
    "$@"
