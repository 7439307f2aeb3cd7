"""The ``stationd`` command line: run the daemon, inspect and change settings, manage data."""

from .main import main

__all__ = ["main"]
