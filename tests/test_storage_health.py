"""stationd.storage.health: what counts as the disk refusing, and the write probe."""

from __future__ import annotations

import errno
import sqlite3

from stationd.storage import StorageError
from stationd.storage.health import PROBE_NAME, is_storage_error, storage_problem, write_problem


def test_a_writable_directory_has_no_problem_and_keeps_no_probe(tmp_path):
    assert write_problem(tmp_path) is None
    assert storage_problem(tmp_path) is None
    assert not (tmp_path / PROBE_NAME).exists()


def test_a_directory_not_made_yet_is_probed_in_its_parent(tmp_path):
    assert write_problem(tmp_path / "data") is None
    assert not (tmp_path / "data").exists()


def test_a_directory_that_cannot_exist_is_named_in_the_problem(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    problem = write_problem(blocker / "data")
    assert problem is not None and str(blocker) in problem


def test_full_read_only_and_io_errors_count_as_the_disk_refusing_even_when_wrapped():
    for code in (errno.ENOSPC, errno.EROFS, errno.EIO, errno.EDQUOT):
        assert is_storage_error(OSError(code, "refused"))
    full = sqlite3.OperationalError("database or disk is full")
    full.sqlite_errorname = "SQLITE_FULL"
    wrapped = StorageError("cannot open database")
    wrapped.__cause__ = full
    assert is_storage_error(wrapped)


def test_program_errors_do_not_count_as_the_disk_refusing():
    assert not is_storage_error(StorageError("database schema version 9 is newer than this stationd"))
    assert not is_storage_error(OSError(errno.EADDRINUSE, "address in use"))
    assert not is_storage_error(ValueError("bad value"))
    loop = OSError(errno.ENOENT, "missing")
    loop.__context__ = loop  # a cycle in the chain ends the walk
    assert not is_storage_error(loop)
