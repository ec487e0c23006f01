"""Connections to SQLite or PostgreSQL, chosen by URL, and the transactions on them.

Each transaction runs whole in a database thread: the event loop hands over one
function and gets one answer back (see docs/architecture.md, "One hop per
transaction"). SQLite has one writer thread holding the only write connection
(BEGIN IMMEDIATE, WAL, short transactions) and a few reader threads; PostgreSQL has
a pool of threads and connections.

On SQLite, writes that queue up while one is being written share the next
transaction, each in its own savepoint: one commit (one fsync) for a claim, the
reports of finished runs and a heartbeat that arrived together, and one that fails
rolls back alone.

How SQLite's connections are set up is in `store/sqlite_connections.py`; which errors
mean the database is out of reach, in `store/outages.py`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol, TypeVar

import orjson
from sqlalchemy import Connection, create_engine, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import DBAPIError

from execd.domain import jsonsafe
from execd.store.outages import OUTAGES, outage
from execd.store.signals import CANCEL, EVENTS, JOBS, Signals, SocketRelay, listen_postgres
from execd.store.sqlite_connections import (
    WriterTurn,
    configure_sqlite,
    finished,
    no_transaction_left,
    track_cursors,
)

T = TypeVar("T")
Outcome = concurrent.futures.Future  # a queued write's (result, signals raised)
Queued = tuple[Callable[[Connection], Any], bool, Outcome[Any]]  # (work, durable, outcome)

_SIGNALS = "execd_signals"
_SYNCHRONOUS = "execd_synchronous"
_TO_DISK = "execd_to_disk"
RETRYABLE_SQLSTATES = frozenset({"40P01", "40001"})  # deadlock detected, serialization failure
TRANSACTION_ATTEMPTS = 5


class Rider(Protocol):
    """Rows that go with the first durable write of a piece of work (a request), in its
    transaction: the audit log's entry of the change (store/audit.py)."""

    claimed: bool  # a write carries it (or is about to): the next ones do not

    def ride(self, conn: Connection, result: Any) -> None:
        """Write its rows; `result` is what the write's work returned."""


# Set for the duration of a request (api/audit.py); copied into the tasks it starts.
RIDER: ContextVar[Rider | None] = ContextVar("execd_rider", default=None)


def _dumps(value: Any) -> str:
    # Non-ASCII text stays as it is, so substring searches in JSON find it.
    text = orjson.dumps(value).decode()
    if "\\u0000" in text:  # PostgreSQL's JSONB cannot hold NUL; input never has one
        text = orjson.dumps(jsonsafe.scrub(value)).decode()
    return text


def _loads(value: Any) -> Any:
    # SQLite gives a column declared JSON numeric affinity: a bare JSON number comes
    # back already converted to int or float.
    if isinstance(value, int | float):
        return value
    return orjson.loads(value)


def sync_url(url: str) -> URL:
    """Accepts plain `postgresql://` and `sqlite:///` URLs and picks the drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def exclusive(conn: Connection, name: str) -> None:
    """Hold `name` until this write transaction ends, against every other process: a
    PostgreSQL advisory lock. (SQLite's write transactions already run one at a time.)"""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(hashtext(:key))"), {"key": name})


def snapshot(conn: Connection) -> None:
    """Make the read that has not started yet on `conn` see one snapshot throughout:
    REPEATABLE READ on PostgreSQL (SQLite's read transactions already are)."""
    if conn.dialect.name == "postgresql" and not conn.in_transaction():
        conn.execution_options(isolation_level="REPEATABLE READ")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL") -> None:
        self.url = sync_url(url)
        self.backend = self.url.get_backend_name()
        self.signals = Signals()
        self.relay: SocketRelay | None = None
        options: dict[str, Any] = {"json_serializer": _dumps, "json_deserializer": _loads}
        if self.backend == "sqlite":
            sync = sqlite_synchronous.upper()
            if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
                raise ValueError(f"Invalid SQLite synchronous mode {sqlite_synchronous!r}")
            readers = 4
            self._writer = create_engine(self.url, pool_size=1, max_overflow=0, **options)
            self._reader = create_engine(self.url, pool_size=readers, max_overflow=0, **options)
            configure_sqlite(self._writer, synchronous=sync, immediate=True)
            configure_sqlite(self._reader, synchronous=sync, immediate=False)
            track_cursors(self._writer)
            # One writer thread: the single writer, and no lock waits inside SQLite.
            self._write_threads = _threads(1, "execd-db-writer")
            self._synchronous = sync
            self._queued: list[Queued] = []
            self._queued_lock = threading.Lock()
            self._read_threads = _threads(readers, "execd-db-reader")
            on_disk = bool(self.url.database) and self.url.database != ":memory:"
            if on_disk:
                self.relay = SocketRelay(Path(f"{self.url.database}-signals"), self.signals)
            self._turn = WriterTurn(Path(f"{self.url.database}-writer.lock") if on_disk else None)
        else:
            self._turn = WriterTurn(None)
            self._writer = self._reader = create_engine(
                self.url, pool_size=pool_size, max_overflow=0, pool_pre_ping=True, **options
            )
            self._write_threads = self._read_threads = _threads(pool_size, "execd-db")

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    async def write(self, work: Callable[[Connection], T], *, durable: bool = True) -> T:
        """Run `work` in one read-write transaction, committed if it returns.

        `durable=False` (SQLite): a write that may be lost in a power cut or an
        operating-system crash without harm, because what it undoes comes back by
        itself (a claim: the execution is claimable again; a lease renewal, a
        heartbeat). Its commit does not wait for the disk (`synchronous=NORMAL`); the
        next durable commit carries it to disk with its own (the WAL is written in
        order), and it is never seen half-written. Only SQLite: every process that
        writes an SQLite file runs on its machine and dies with it, so nothing can
        outlive a claim it lost. PostgreSQL keeps every commit durable, since workers
        on other machines outlive a database crash, and a claim lost under one of
        them would hand its fencing token out a second time. Signals a write raises
        reach this process's waiters after the commit.

        The first durable write made while a `RIDER` is set carries its rows."""
        rider = RIDER.get()
        if rider is not None and durable and not rider.claimed:
            rider.claimed = True
            work = _carrying(work, rider)
        else:
            rider = None
        try:
            if self.backend == "sqlite":
                outcome: Outcome[tuple[T, set[str]]] = concurrent.futures.Future()
                with self._queued_lock:
                    self._queued.append((work, durable, outcome))
                self._write_threads.submit(self._write_queued)
                result, raised = await asyncio.wrap_future(outcome)
            else:
                result, raised = await asyncio.get_running_loop().run_in_executor(
                    self._write_threads, self._in_transaction, work, durable
                )
        except BaseException as exc:
            if rider is not None:  # not written: the next write may carry it
                rider.claimed = False
            if isinstance(exc, OUTAGES) and (failure := outage(exc)) is not None:
                raise failure from exc
            raise
        for channel in raised:
            self.signals.fire(channel)
        if raised and self.relay is not None:
            self.relay.send(raised)
        return result

    def _in_transaction(
        self, work: Callable[[Connection], T], durable: bool = True
    ) -> tuple[T, set[str]]:
        for attempt in range(1, TRANSACTION_ATTEMPTS + 1):
            with self._writer.connect() as conn:
                self._sqlite_durability(conn, durable)
                try:
                    with self._turn(), conn.begin():
                        result = finished(work, conn)
                    self._to_disk(conn)
                except DBAPIError as exc:
                    # PostgreSQL chose this transaction to break a deadlock (or a
                    # serialization conflict): it rolled back whole, so run it again.
                    code = getattr(exc.orig, "sqlstate", None)
                    if code not in RETRYABLE_SQLSTATES or attempt == TRANSACTION_ATTEMPTS:
                        raise
                    continue
                finally:
                    raised: set[str] = conn.info.pop(_SIGNALS, set())
                    conn.info.pop(_TO_DISK, None)
                    no_transaction_left(conn)
            return result, raised
        raise AssertionError("unreachable")

    def _sqlite_durability(self, conn: Connection, durable: bool) -> None:
        """Set the writer connection's synchronous mode for the next transaction (a
        PRAGMA that must run outside one, so on the driver's connection)."""
        if self.backend != "sqlite":
            return
        wanted = self._synchronous
        if not durable and wanted in {"FULL", "EXTRA"}:
            wanted = "NORMAL"
        if conn.info.get(_SYNCHRONOUS) != wanted:
            conn.connection.dbapi_connection.execute(f"PRAGMA synchronous={wanted}")  # type: ignore[union-attr]
            conn.info[_SYNCHRONOUS] = wanted

    def _to_disk(self, conn: Connection) -> None:
        """(SQLite) After a commit that did not wait for the disk but wrote something
        that must reach it (`must_reach_disk`): flush the WAL to disk before anyone is
        answered, as the commit of `synchronous=FULL` would have. The WAL is written in
        order, so the flush carries this transaction and every one before it. A write
        rolled back to its savepoint asked in vain; the flush is merely early then."""
        if not conn.info.pop(_TO_DISK, False) or self.backend != "sqlite":
            return
        if conn.info.get(_SYNCHRONOUS, self._synchronous) == self._synchronous:
            return  # the commit waited for the disk itself, or durability was turned down
        descriptor = os.open(f"{self.url.database}-wal", os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)

    def _write_queued(self) -> None:
        """(SQLite's writer thread) Write what is queued: alone as it is, or together.

        A write whose caller was cancelled before it started is dropped (as an
        executor drops a cancelled call); the others can no longer be cancelled, so
        each of them gets its answer."""
        with self._queued_lock:
            queued, self._queued = self._queued, []
        batch = [q for q in queued if q[2].set_running_or_notify_cancel()]
        if len(batch) > 1 and self._in_shared_transaction(batch):
            return
        for work, durable, outcome in batch:  # alone, or again alone
            try:
                outcome.set_result(self._in_transaction(work, durable))
            except Exception as exc:
                outcome.set_exception(exc)

    def _in_shared_transaction(self, batch: list[Queued]) -> bool:
        """Write `batch` in one transaction, each write in a savepoint; False if that
        transaction failed as a whole (nothing of it is stored, no write answered):
        then each is written alone, so that what failed it fails only its own write."""
        done: list[tuple[Outcome[Any], Any, Exception | None]] = []
        try:
            with self._writer.connect() as conn:
                self._sqlite_durability(conn, any(durable for _, durable, _ in batch))
                try:
                    with self._turn(), conn.begin():
                        for work, _, outcome in batch:
                            try:
                                with conn.begin_nested():
                                    done.append((outcome, finished(work, conn), None))
                            except Exception as exc:  # rolled back to its savepoint
                                done.append((outcome, None, exc))
                    try:
                        self._to_disk(conn)
                    except OSError as exc:  # committed, but not known to be on disk
                        done = [(outcome, None, exc) for outcome, _, _ in done]
                finally:
                    raised: set[str] = conn.info.pop(_SIGNALS, set())
                    conn.info.pop(_TO_DISK, None)
                    no_transaction_left(conn)
        except Exception:
            return False
        for outcome, result, error in done:
            if error is not None:
                outcome.set_exception(error)
            else:
                outcome.set_result((result, raised))
        return True

    async def read(self, work: Callable[[Connection], T]) -> T:
        """Run `work` on a read-only view; on SQLite it never waits for the writer."""
        try:
            return await asyncio.get_running_loop().run_in_executor(
                self._read_threads, self._in_snapshot, work
            )
        except OUTAGES as exc:
            if (failure := outage(exc)) is None:
                raise
            raise failure from exc

    def _in_snapshot(self, work: Callable[[Connection], T]) -> T:
        with self._reader.connect() as conn:
            return work(conn)

    def notify_jobs(self, conn: Connection) -> None:
        self._notify(conn, JOBS)

    def notify_cancel(self, conn: Connection) -> None:
        self._notify(conn, CANCEL)

    def _notify(self, conn: Connection, channel: str) -> None:
        signals: set[str] = conn.info.setdefault(_SIGNALS, set())
        if channel in signals:
            return
        signals.add(channel)
        if self.is_postgres:
            conn.execute(select(text("pg_notify(:c, '')")), {"c": channel})

    async def listen(self) -> None:
        """Relay other processes' signals to this one (runs until cancelled)."""
        if self.is_postgres:
            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            await listen_postgres(conninfo, self.signals)
        elif self.relay is not None:
            await self.relay.listen()

    async def ping(self) -> None:
        await self.read(lambda conn: conn.execute(text("SELECT 1")).scalar())

    async def dispose(self) -> None:
        for threads in {id(t): t for t in (self._write_threads, self._read_threads)}.values():
            await asyncio.get_running_loop().run_in_executor(None, threads.shutdown)
        self._writer.dispose()
        self._reader.dispose()
        if self.relay is not None:
            self.relay.close()
        self._turn.close()


def _carrying(work: Callable[[Connection], T], rider: Rider) -> Callable[[Connection], T]:
    def carried(conn: Connection) -> T:
        result = work(conn)
        rider.ride(conn, result)
        return result

    return carried


def _threads(count: int, name: str) -> concurrent.futures.ThreadPoolExecutor:
    return concurrent.futures.ThreadPoolExecutor(max_workers=count, thread_name_prefix=name)


def must_reach_disk(conn: Connection) -> None:
    """This transaction, though written with `durable=False`, wrote something that must
    be on disk before its writer is answered (a claim that also ended work, say). On
    PostgreSQL every commit already is durable."""
    conn.info[_TO_DISK] = True


def events_written(conn: Connection) -> None:
    """This transaction wrote to the event log: wake this process's live streams once
    it has committed (Database.write fires what the transaction raised)."""
    conn.info.setdefault(_SIGNALS, set()).add(EVENTS)
