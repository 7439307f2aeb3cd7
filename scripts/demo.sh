#!/usr/bin/env bash
# Sets up stationd, then runs the station on this machine with simulated hardware and
# nothing outside 127.0.0.1. Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stationd run --config examples/dry-run.yaml "$@"
