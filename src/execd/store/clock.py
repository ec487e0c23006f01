"""The database clock, read once per transaction."""

from __future__ import annotations

import time

from sqlalchemy import Connection, select

from execd.store.sql_functions import db_now


def now_of(conn: Connection) -> float:
    """Seconds since the epoch by the database's clock.

    An SQLite file is only ever opened by processes on its own machine, so there
    the local clock is the database clock and no round trip is needed.
    """
    if conn.dialect.name == "sqlite":
        return time.time()
    return float(conn.execute(select(db_now())).scalar_one())
