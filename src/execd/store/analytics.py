"""Execution analytics from hourly rollups, so a window over a million executions
reads a few thousand rows.

An hour is *sealed* once it is over (plus a grace for transactions still committing):
its executions are counted per project, action and final status, with a histogram of
their run times, into `execution_rollups`. The rollups cover the hours
[first, until) kept in the `rollups` row of `event_cursors`; a window is answered from
the rollups for the whole hours they cover and from the executions themselves for the
rest (the current hour, the window's ragged edges, anything before the rollups began).
Both paths produce the same histograms, so they add up.

Sealing is done by every `execd serve` (and `execd rollup`), one at a time: an advisory
lock on PostgreSQL, the single writer on SQLite.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update

from execd.domain.analytics import ROLLUP_SECONDS, Aggregate, bin_of, histogram
from execd.domain.states import TERMINAL, Status
from execd.store.clock import now_of
from execd.store.database import exclusive
from execd.store.schema import event_cursors, execution_rollups
from execd.store.schema import executions as ex

CURSOR = "rollups"
GRACE = 300.0  # seconds after an hour ends before it is sealed
_TERMINAL = sorted(s.value for s in TERMINAL)


def _floor(ts: float, width: float = ROLLUP_SECONDS) -> float:
    return math.floor(ts / width) * width


def _ceil(ts: float, width: float = ROLLUP_SECONDS) -> float:
    return math.ceil(ts / width) * width


def coverage(conn: Connection) -> tuple[float, float] | None:
    """The hours the rollups cover: [first, until)."""
    row = conn.execute(
        select(event_cursors.c.txid, event_cursors.c.event_id).where(event_cursors.c.name == CURSOR)
    ).first()
    return None if row is None else (float(row.txid), float(row.event_id))


def _first_open_hour(now: float) -> float:
    """The start of the first hour that cannot be sealed yet."""
    return _floor(now - GRACE - ROLLUP_SECONDS) + ROLLUP_SECONDS


def due(conn: Connection) -> bool:
    """Whether an hour waits to be sealed (a read: `seal` takes the write lock)."""
    covered = coverage(conn)
    return covered is None or covered[1] < _first_open_hour(now_of(conn))


def seal(conn: Connection, max_hours: int = 24) -> int:
    """Roll up the hours that are over and not yet rolled up (up to `max_hours`);
    returns how many were."""
    exclusive(conn, "execd-analytics-rollups")
    now = now_of(conn)
    limit = _first_open_hour(now)
    covered = coverage(conn)
    if covered is None:
        oldest = conn.execute(select(func.min(ex.c.ended))).scalar()
        first = min(_floor(oldest), limit) if oldest is not None else limit
        conn.execute(
            insert(event_cursors).values(name=CURSOR, txid=first, event_id=first, updated=now)
        )
        covered = (first, first)
    until, done = covered[1], 0
    while until < limit and done < max_hours:
        # Skip hours in which nothing ended (a long quiet spell costs one query).
        nxt = conn.execute(
            select(func.min(ex.c.ended)).where(ex.c.ended >= until, ex.c.ended < limit)
        ).scalar()
        if nxt is None:
            until = limit
            break
        until = _floor(nxt)
        _roll_up(conn, until)
        until += ROLLUP_SECONDS
        done += 1
    conn.execute(
        update(event_cursors)
        .where(event_cursors.c.name == CURSOR)
        .values(event_id=until, updated=now)
    )
    return done


def rebuild(conn: Connection) -> None:
    """Forget every rollup; the next seals start again from the oldest execution."""
    conn.execute(delete(execution_rollups))
    conn.execute(delete(event_cursors).where(event_cursors.c.name == CURSOR))


def _roll_up(conn: Connection, hour: float) -> None:
    conn.execute(delete(execution_rollups).where(execution_rollups.c.hour == hour))
    rows = conn.execute(
        select(ex.c.project_id, ex.c.action_ref, ex.c.status, ex.c.started, ex.c.ended).where(
            ex.c.ended >= hour, ex.c.ended < hour + ROLLUP_SECONDS, ex.c.status.in_(_TERMINAL)
        )
    )
    groups: dict[tuple[str, str, str], list[Any]] = {}
    for project_id, action_ref, status, started, ended in rows:
        group = groups.setdefault((project_id, action_ref, status), [0, []])
        group[0] += 1
        if started is not None:
            group[1].append(ended - started)
    if groups:
        conn.execute(
            insert(execution_rollups),
            [
                {
                    "project_id": project_id,
                    "hour": hour,
                    "action_ref": action_ref,
                    "status": status,
                    "ended": count,
                    # [bin, count] pairs: the quickest form to read back and add up.
                    "durations": sorted(histogram(durations).items()),
                }
                for (project_id, action_ref, status), (count, durations) in groups.items()
            ],
        )


def aggregate(
    conn: Connection,
    project_id: str,
    since: float,
    until: float,
    *,
    by_action: bool,
    bucket_seconds: int | None,
) -> list[Aggregate]:
    """What ended in [since, until), per action and/or per bucket."""
    groups: dict[tuple[str | None, float | None], Aggregate] = {}

    def group(action_ref: str, at: float) -> Aggregate:
        key = (
            action_ref if by_action else None,
            _floor(at, bucket_seconds) if bucket_seconds else None,
        )
        if key not in groups:
            groups[key] = Aggregate(action_ref=key[0], bucket=key[1])
        return groups[key]

    covered = coverage(conn)
    raw: list[tuple[float, float]] = [(since, until)]
    if covered is not None:
        start, end = max(_ceil(since), covered[0]), min(_floor(until), covered[1])
        if start < end:
            raw = [(since, start), (end, until)]
            rolled = conn.execute(
                select(execution_rollups).where(
                    execution_rollups.c.project_id == project_id,
                    execution_rollups.c.hour >= start,
                    execution_rollups.c.hour < end,
                )
            ).mappings()
            for row in rolled:
                group(row["action_ref"], row["hour"]).add(
                    Status(row["status"]), row["ended"], row["durations"]
                )
    for low, high in raw:
        if low < high:
            for action_ref, status, started, ended in _ended(conn, project_id, low, high):
                durations = {bin_of(max(ended - started, 0.0)): 1} if started is not None else {}
                group(action_ref, ended).add(Status(status), 1, durations)
    return sorted(groups.values(), key=lambda a: (a.bucket or 0.0, a.action_ref or ""))


def _ended(
    conn: Connection, project_id: str, low: float, high: float
) -> Iterable[tuple[str, str, float | None, float]]:
    query = select(ex.c.action_ref, ex.c.status, ex.c.started, ex.c.ended).where(
        ex.c.project_id == project_id,
        ex.c.ended >= low,
        ex.c.ended < high,
        ex.c.status.in_(_TERMINAL),
    )
    for row in conn.execute(query):
        yield row.action_ref, row.status, row.started, row.ended
