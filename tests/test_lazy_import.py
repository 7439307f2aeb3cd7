"""Lazily imported modules: nothing is imported before the first attribute access, and the
daemon's start does not load cryptography (its memory budget, BENCHMARKS.md)."""

from __future__ import annotations

import subprocess
import sys

from stationd.lazy_import import lazy_module


def test_the_module_is_imported_at_the_first_attribute_access():
    code = ("import sys\nfrom stationd.lazy_import import lazy_module\n"
            "colorsys = lazy_module('colorsys')\nassert 'colorsys' not in sys.modules\n"
            "assert colorsys.rgb_to_hsv(1, 0, 0) == (0.0, 1.0, 1)\nassert 'colorsys' in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_missing_module_fails_at_its_first_use():
    missing = lazy_module("stationd_no_such_module")
    try:
        missing.anything
    except ModuleNotFoundError as error:
        assert "stationd_no_such_module" in str(error)
    else:
        raise AssertionError("no ModuleNotFoundError")


def test_importing_the_daemon_and_the_webui_does_not_load_cryptography():
    code = ("import sys, stationd.daemon, stationd.webui.app\n"
            "loaded = sorted(m for m in sys.modules if m.startswith('cryptography.hazmat'))\n"
            "assert not loaded, loaded\n")
    subprocess.run([sys.executable, "-c", code], check=True)
