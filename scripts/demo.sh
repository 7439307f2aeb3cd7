#!/usr/bin/env bash
# Sets up stationd, then runs the whole station on this machine (stationd demo): simulated
# hardware, its control API, a local OCPP central system, nothing outside 127.0.0.1.
# Options go to stationd demo (see stationd demo --help). Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/stationd demo "$@"
