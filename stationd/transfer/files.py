"""The download's ``<dest>.part`` file: what arrived so far, kept for a resume, then renamed."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from .errors import TransferError

Progress = Callable[[int, "int | None"], None]


def too_big(size: int, max_bytes: int) -> TransferError:
    return TransferError(f"the file is too big: {size} bytes, at most {max_bytes} are accepted", retry=False)


class PartFile:
    """``<dest>.part``. Without ``resume`` an old one is thrown away first."""

    def __init__(self, dest: Path, *, resume: bool, max_bytes: int, progress: Progress | None = None):
        self.dest = Path(dest)
        self.path = self.dest.with_name(self.dest.name + ".part")
        self.max_bytes, self._progress = max_bytes, progress
        self.dest.parent.mkdir(parents=True, exist_ok=True)
        if not resume:
            self.path.unlink(missing_ok=True)
        self.total: int | None = None  # the whole file's size, once the server said it
        self.received = 0  # bytes in the part file (resumed ones included)
        self._file: BinaryIO | None = None

    @property
    def size(self) -> int:
        """Bytes already in the part file: where a resume continues."""
        try:
            return self.path.stat().st_size
        except FileNotFoundError:
            return 0

    def start(self, offset: int, total: int | None) -> None:
        """Write from ``offset`` on (0: start over); ``total`` is the whole file's size if known."""
        if total is not None and total > self.max_bytes:
            raise too_big(total, self.max_bytes)
        self.close()
        self._file = open(self.path, "r+b" if self.path.exists() else "w+b")  # noqa: SIM115 - closed in close()
        self._file.truncate(offset)
        self._file.seek(offset)
        self.received, self.total = offset, total
        self._report()

    def write(self, chunk: bytes) -> None:
        assert self._file is not None
        if self.received + len(chunk) > self.max_bytes:
            raise too_big(self.received + len(chunk), self.max_bytes)
        self._file.write(chunk)
        self.received += len(chunk)
        self._report()

    def check_complete(self) -> None:
        if self.total is not None and self.received != self.total:
            raise TransferError(f"the transfer was cut after {self.received} of {self.total} bytes")

    def finish(self) -> Path:
        """On disk for good (fsync), then renamed to the destination."""
        if self._file is None:
            self.start(self.size, self.total)
        assert self._file is not None
        self._file.flush()
        os.fsync(self._file.fileno())
        self.close()
        os.replace(self.path, self.dest)
        _fsync_directory(self.dest.parent)
        return self.dest

    def discard(self) -> None:
        self.close()
        self.path.unlink(missing_ok=True)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _report(self) -> None:
        if self._progress is not None:
            self._progress(self.received, self.total)


def _fsync_directory(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
