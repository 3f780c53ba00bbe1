"""What kept the database from working, told apart so that an operator reads a cause, not a guess.

A full disk, a directory this user may not write to and a server out of reach each ask for a
different fix, but reach the caller as driver exceptions (wrapped by SQLAlchemy or not, since the
bulk writes use the driver's own cursor). The driver's message is never passed on: it may quote
a statement or a value; the kind is read from codes (SQLite's error name, PostgreSQL's SQLSTATE,
the operating system's errno).
"""

from __future__ import annotations

import enum
import errno
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from sqlalchemy.exc import DBAPIError

__all__ = ["StorageFailure", "StorageUnavailable", "creating_storage", "failure_of"]


class StorageFailure(enum.Enum):
    DISK_FULL = "disk_full"
    NOT_WRITABLE = "not_writable"
    UNREACHABLE = "unreachable"


class StorageUnavailable(Exception):
    """The database's file or directory could not be created; ``failure`` says why, with no path."""

    def __init__(self, failure: StorageFailure) -> None:
        super().__init__(failure.value)
        self.failure = failure


_FULL_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
_DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM, errno.EROFS})
# SQLite reports a refused write as SQLITE_FULL when the disk takes part of it, and as an I/O
# error when it takes none (the write that meets a full disk or a file size limit).
_SQLITE_FULL = ("SQLITE_FULL", "SQLITE_IOERR")
_SQLITE_DENIED = ("SQLITE_READONLY", "SQLITE_CANTOPEN", "SQLITE_PERM", "SQLITE_AUTH")
_PG_DISK_FULL = frozenset({"53100"})  # disk_full: "could not extend file", "could not write to file"


def failure_of(error: BaseException) -> StorageFailure | None:
    """The kind of ``error``, or ``None`` when it is none of these (a bug, say)."""
    if isinstance(error, StorageUnavailable):
        return error.failure
    cause = error.orig if isinstance(error, DBAPIError) else error
    if isinstance(cause, sqlite3.Error):
        name = getattr(cause, "sqlite_errorname", "")
        if name.startswith(_SQLITE_FULL):
            return StorageFailure.DISK_FULL
        if name.startswith(_SQLITE_DENIED):
            return StorageFailure.NOT_WRITABLE
        return None
    if isinstance(cause, psycopg.Error):
        if cause.sqlstate in _PG_DISK_FULL:
            return StorageFailure.DISK_FULL
        return StorageFailure.UNREACHABLE if isinstance(cause, psycopg.OperationalError) else None
    if isinstance(cause, OSError):
        if cause.errno in _FULL_ERRNOS:
            return StorageFailure.DISK_FULL
        if cause.errno in _DENIED_ERRNOS:
            return StorageFailure.NOT_WRITABLE
    return None


@contextmanager
def creating_storage() -> Iterator[None]:
    """Around creating the data directory or the database file: an ``OSError`` becomes ``StorageUnavailable``."""
    try:
        yield
    except OSError as error:
        raise StorageUnavailable(failure_of(error) or StorageFailure.NOT_WRITABLE) from None
