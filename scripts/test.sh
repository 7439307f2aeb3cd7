#!/usr/bin/env bash
# Sets up everything the tests need, then runs every test (two workers, one per core).
# Extra arguments go to pytest, e.g. scripts/test.sh tests/test_config_store.py -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --test
exec .venv/bin/python -m pytest -n 2 "$@"
