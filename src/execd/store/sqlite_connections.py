"""How execd uses SQLite's connections: the pragmas of each, BEGIN IMMEDIATE on the
writer, turns between the processes that write one file (`WriterTurn`), and no
statement or transaction left open on the writer after a write."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import structlog
from sqlalchemy import Connection, Engine, event

T = TypeVar("T")
log = structlog.get_logger(__name__)

_CURSORS = "execd_cursors"


def configure_sqlite(engine: Engine, *, synchronous: str, immediate: bool) -> None:
    """Per-connection pragmas; `immediate` takes the write lock at BEGIN, not mid-transaction."""

    @event.listens_for(engine, "connect")
    def _connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class WriterTurn:
    """(SQLite) Whose turn it is to write the file, among the processes that share it:
    a lock on `<database>-writer.lock` held from BEGIN to COMMIT. SQLite's own wait
    for its write lock is a sleep that doubles (1, 2, 5 ... 100 ms) and finds the lock
    free only by chance: with an API and its workers writing the same file, each spent
    a third of its time asleep while the other had long finished. A process waiting
    here is woken the moment the lock is let go. SQLite's wait stays, for writers that
    do not take turns (another tool on the file)."""

    def __init__(self, path: Path | None) -> None:
        self._path = path
        self._fd: int | None = None

    @contextlib.contextmanager
    def __call__(self) -> Iterator[None]:
        if self._path is None or (self._fd is None and not self._open()):
            yield  # no turns: PostgreSQL, an in-memory database, a lock file out of reach
            return
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _open(self) -> bool:
        """Opened at the first write (the file's directory exists by then). A lock file
        this process cannot open (another user's, a read-only directory) leaves it
        writing without turns, as before them, rather than not writing at all."""
        assert self._path is not None
        try:
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            log.warning("writer_turns_off", path=str(self._path), error=str(exc))
            self._path = None
            return False
        return True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def track_cursors(engine: Engine) -> None:
    """Remember every cursor the connections of `engine` open, for `finished` to close."""
    event.listen(engine, "after_cursor_execute", _opened)


def _opened(conn: Connection, cursor: Any, *args: Any) -> None:
    conn.info.setdefault(_CURSORS, []).append(cursor)


def finished(work: Callable[[Connection], T], conn: Connection) -> T:
    """(SQLite's writer) Run `work`, then close every cursor it opened. A statement left
    unfinished (an INSERT ... RETURNING whose rows were not all read, say because the
    work failed while reading them) would keep SQLite from committing, or releasing a
    savepoint, on this connection for as long as its cursor lives."""
    try:
        return work(conn)
    finally:
        for cursor in conn.info.pop(_CURSORS, ()):
            with contextlib.suppress(Exception):
                cursor.close()


def no_transaction_left(conn: Connection) -> None:
    """(SQLite) A transaction whose commit failed must not stay open on the driver's
    connection: it would keep the database's write lock, and every later write would
    wait for it. SQLite refuses a commit while a statement of the transaction is
    unfinished, never a rollback."""
    if conn.closed or conn.invalidated or conn.dialect.name != "sqlite":
        return
    raw = conn.connection.dbapi_connection
    if raw is not None and raw.in_transaction and not conn.in_transaction():
        try:
            raw.rollback()
        except Exception:
            conn.invalidate()
