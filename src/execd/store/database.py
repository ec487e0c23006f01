"""Connections to SQLite or PostgreSQL, chosen by URL, and the database clock.

SQLite: one writer connection per process (BEGIN IMMEDIATE, WAL, short transactions)
and a few readers. PostgreSQL: one pool for both.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import orjson
from sqlalchemy import Double, event, select, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from execd.store.signals import CANCEL, JOBS, Signals, listen_postgres

_SIGNALS = "execd_signals"


def _dumps(value: Any) -> str:
    # Non-ASCII text stays as it is, so substring searches in JSON find it.
    return orjson.dumps(value).decode()


class db_now(FunctionElement[float]):
    """Seconds since the Unix epoch by the database server's clock.

    Leases, not-before times and every timestamp are taken from this one clock, so
    machines with skewed clocks still agree on what has expired.
    """

    type = Double()
    inherit_cache = True


@compiles(db_now, "sqlite")
def _sqlite_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "((julianday('now') - 2440587.5) * 86400.0)"


@compiles(db_now, "postgresql")
def _postgres_now(element: db_now, compiler: SQLCompiler, **kw: Any) -> str:
    return "CAST(EXTRACT(EPOCH FROM clock_timestamp()) AS DOUBLE PRECISION)"


def async_url(url: str) -> URL:
    """Accepts plain `postgresql://` and `sqlite:///` URLs and picks the async drivers."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in {"postgresql", "postgres"}:
        return parsed.set(drivername="postgresql+psycopg")
    raise ValueError(f"Unsupported database URL {url!r}: use sqlite:/// or postgresql://")


def sync_url(url: str) -> URL:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return parsed.set(drivername="sqlite")
    return parsed.set(drivername="postgresql+psycopg")


def configure_sqlite(engine: Any, *, synchronous: str, immediate: bool) -> None:
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
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    def __init__(self, url: str, *, pool_size: int = 10, sqlite_synchronous: str = "FULL") -> None:
        self.url = async_url(url)
        self.signals = Signals()
        self.backend = self.url.get_backend_name()
        self._engines: list[AsyncEngine] = []
        if self.backend == "sqlite":
            self._writer = self._engine(pool_size=1, max_overflow=0, pool_timeout=60)
            self._reader = self._engine(pool_size=4, max_overflow=4)
            sync = sqlite_synchronous.upper()
            if sync not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
                raise ValueError(f"Invalid SQLite synchronous mode {sqlite_synchronous!r}")
            configure_sqlite(self._writer.sync_engine, synchronous=sync, immediate=True)
            configure_sqlite(self._reader.sync_engine, synchronous=sync, immediate=False)
        else:
            self._writer = self._reader = self._engine(
                pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True
            )

    def _engine(self, **kw: Any) -> AsyncEngine:
        engine = create_async_engine(
            self.url, json_serializer=_dumps, json_deserializer=orjson.loads, **kw
        )
        self._engines.append(engine)
        return engine

    @property
    def is_postgres(self) -> bool:
        return self.backend == "postgresql"

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """A read-write transaction, committed when the block ends without error.

        Signals raised inside it reach this process's waiters after the commit.
        """
        async with self._writer.connect() as conn:
            try:
                async with conn.begin():
                    yield conn
            finally:
                raised: set[str] = conn.info.pop(_SIGNALS, set())
        for channel in raised:
            self.signals.fire(channel)

    async def notify_jobs(self, conn: AsyncConnection) -> None:
        await self._notify(conn, JOBS)

    async def notify_cancel(self, conn: AsyncConnection) -> None:
        await self._notify(conn, CANCEL)

    async def _notify(self, conn: AsyncConnection, channel: str) -> None:
        signals: set[str] = conn.info.setdefault(_SIGNALS, set())
        if channel in signals:
            return
        signals.add(channel)
        if self.is_postgres:
            await conn.execute(select(text("pg_notify(:c, '')")), {"c": channel})

    async def listen(self) -> None:
        """Relay other processes' signals to this one (PostgreSQL only; runs until cancelled)."""
        if self.is_postgres:
            conninfo = self.url.set(drivername="postgresql").render_as_string(hide_password=False)
            await listen_postgres(conninfo, self.signals)

    async def ping(self) -> None:
        async with self.snapshot() as conn:
            await conn.execute(text("SELECT 1"))

    @asynccontextmanager
    async def snapshot(self) -> AsyncIterator[AsyncConnection]:
        """A read-only view; on SQLite it does not wait for the writer."""
        async with self._reader.connect() as conn:
            yield conn

    async def dispose(self) -> None:
        for engine in self._engines:
            await engine.dispose()
