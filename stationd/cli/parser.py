"""The argument parser all ``stationd`` commands share."""

from __future__ import annotations

import argparse

EXIT_USAGE = 2


class Parser(argparse.ArgumentParser):
    """argparse, but an error names the full command and points at its --help."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\nTry '{self.prog} --help'.\n")
