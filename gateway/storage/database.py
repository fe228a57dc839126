"""Opening SQLite the one way this project does, and write transactions that take the lock first.

Durability follows ``threats.md``: WAL journal, ``synchronous=FULL`` (no acknowledged change is
lost on power failure), foreign keys on, and every write transaction starts with
``BEGIN IMMEDIATE`` (a deferred read-then-write transaction fails at once with ``database is
locked``, whatever the busy timeout).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlite_utils

from gateway.errors import RegistryDamaged, StorageUnavailable

BUSY_TIMEOUT_S = 5.0


def open_database(path: Path, *, busy_timeout: float = BUSY_TIMEOUT_S) -> sqlite_utils.Database:
    """A sqlite-utils database on ``path`` in autocommit mode with durable settings.

    Raises:
        StorageUnavailable: if the file cannot be opened or configured now (locked, no access).
        RegistryDamaged: if it is not a database SQLite can read.
    """
    # Whatever SQLite creates while opening (the -wal and -shm files; it also gives them the
    # database file's own mode) is readable by the owner alone.
    umask = os.umask(0o077)
    try:
        conn = sqlite3.connect(
            path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
    except sqlite3.OperationalError as e:
        raise StorageUnavailable(f"database {path.name}: {e}") from e
    except sqlite3.Error as e:  # not a database, or one SQLite cannot read
        raise RegistryDamaged(f"{path.name} is damaged: {one_line(str(e))}") from e
    finally:
        os.umask(umask)
    return sqlite_utils.Database(conn, execute_plugins=False)


@contextmanager
def write_transaction(db: sqlite_utils.Database) -> Iterator[None]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``, rolled back on any exception.

    Raises:
        StorageUnavailable: if the lock cannot be taken within the busy timeout, or the commit
            or a statement fails.
    """
    conn = db.conn
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as e:
        raise StorageUnavailable(f"database is busy: {e}") from e
    except sqlite3.Error as e:
        raise damaged(e) from e
    try:
        yield
    except sqlite3.Error as e:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        if isinstance(e, sqlite3.OperationalError):
            raise StorageUnavailable(f"database write failed: {e}") from e
        raise damaged(e) from e
    except BaseException:
        with contextlib.suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    try:
        conn.execute("COMMIT")
    except sqlite3.Error as e:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise StorageUnavailable(f"commit failed: {e}") from e


def damaged(error: sqlite3.Error) -> RegistryDamaged:
    """A database error that is not about locking: the file cannot be read as it should be."""
    return RegistryDamaged(f"the database file is damaged ({one_line(str(error))})")


def one_line(text: str, limit: int = 300) -> str:
    """``text`` on one line, at most ``limit`` characters (messages quote SQLite and parsers,
    which may quote the file's own damaged content)."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
