"""Writing the machine's configuration files: whole or not at all.

A file is written to a hidden temporary name in its own directory (``.NAME.XXXX.tmp`` — no
``.network``/``.conf`` suffix, so no service ever reads it half-written), flushed, fsync'ed,
given its mode and renamed over the old one; then the directory is fsync'ed. After a power
cut the file is the old one or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

PUBLIC = 0o644  # read by systemd-networkd (user systemd-network) and PID 1; the daemon's umask is 0027
PRIVATE = 0o600  # secrets (SIM PIN, mobile password): the daemon's user only


def atomic_write(path: Path, text: str, mode: int = PUBLIC) -> bool:
    """Replace ``path`` with ``text``; False (nothing written) when it already says exactly that."""
    if read_text(path) == text:
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
            file.flush()
            os.fchmod(file.fileno(), mode)  # not subject to the umask
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


def read_text(path: Path) -> str | None:
    """The file's text; None when it does not exist (or cannot be read as text)."""
    try:
        return path.read_text(encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError, UnicodeDecodeError):
        return None
