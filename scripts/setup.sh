#!/usr/bin/env bash
# Sets up stationd on a fresh Debian machine with Python 3.11 or newer:
#   scripts/setup.sh          a virtualenv in .venv with stationd installed
#   scripts/setup.sh --test   the same plus the test tools, the benchmarks' plotting
#                             (extras test and bench) and the Debian packages the tests use
#                             (systemd-analyze, to verify the unit file; chromium, for the
#                             WebUI's browser tests; unshare, nsenter and mount, for the
#                             storage-fault tests' small tmpfs)
# Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
case "${1:-}" in
  "") ;;
  --test) with_tests=1 ;;
  *) echo "usage: scripts/setup.sh [--test]" >&2; exit 2 ;;
esac

python=${PYTHON:-python3}
if ! "$python" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "stationd needs Python 3.11 or newer; $python is $("$python" --version 2>&1)" >&2
  exit 1
fi

# Debian packages, installed only when missing.
packages=()
if (( with_tests )); then
  command -v systemd-analyze >/dev/null || packages+=(systemd)
  command -v chromium >/dev/null || packages+=(chromium fonts-dejavu-core)
  command -v unshare >/dev/null && command -v nsenter >/dev/null \
    || packages+=(util-linux)  # the storage-fault tests' tmpfs namespace (nsenter remounts it)
  command -v mount >/dev/null || packages+=(mount)
fi
if (( ${#packages[@]} )); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then sudo="sudo"; fi
  echo "installing Debian packages: ${packages[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
fi

# The virtualenv, reinstalled when pyproject.toml changes.
[[ -x .venv/bin/python ]] || "$python" -m venv .venv
extras=""
(( with_tests )) && extras="[test,bench]"
stamp=".venv/.stationd-installed-$(sha256sum pyproject.toml | cut -c1-16)"
if [[ ! -f $stamp-test && ( -n $extras || ! -f $stamp ) ]]; then  # a test install includes the plain one
  echo "installing stationd${extras} into .venv"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip
  .venv/bin/python -m pip install -q --disable-pip-version-check -e ".${extras}"
  rm -f .venv/.stationd-installed-*
  touch "$stamp${extras:+-test}"
fi
