#!/usr/bin/env bash
# Set everything up from a fresh clone and run the main job on the bundled sample_logs/:
# a virtualenv in .venv, hostlogs installed into it, the samples ingested into ./demo-store,
# and a sample DuckDB query over the store. Safe to run again (ingest resumes; nothing doubles).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/hostlogs ingest --config configs/sample.toml
echo
echo "Requests per domain and UTC day (hostlogs query over ./demo-store):"
.venv/bin/hostlogs query --config configs/sample.toml --case DEMO-1 --reason "README demo" \
  "SELECT domain, date, count(*) AS requests, count(DISTINCT client_net) AS networks
   FROM pageviews GROUP BY ALL ORDER BY domain, date"
