"""Execution analytics from hourly rollups, so a window over a million executions
reads a few thousand rows.

An hour is *sealed* once it is over (plus a grace for transactions still committing):
its executions are counted per project and action, a count per final status, with one
histogram of the run times of those that ran, into `execution_rollups_hourly`. When
the last hour of a day is sealed, the day's hourly rows are added up into
`execution_rollups_daily`. The rollups cover the hours [first, until) kept in the
`rollups` row of `event_cursors`, and the whole days inside them.

A window is answered from the daily rollups for the whole days it holds (unless it is
bucketed by hour), from the hourly rollups for the whole hours at its edges, and from
the executions themselves for the rest (the current hour, the window's ragged edges,
anything before the rollups began). All three produce the same histograms, so they add
up: 30 days over a million executions read a row per action and day, and the hours of
today.

Sealing is done by every `execd serve` (and `execd rollup`), one at a time: an advisory
lock on PostgreSQL, the single writer on SQLite.

Rollups outlive the executions they count. `execution_counts` does not: it holds how
many executions that still exist ended in the covered hours, per project and final
status, added to by each sealed hour and taken from by every deletion (`forget`,
under the same lock). That is what lets the plain counts by status read a few rows
plus what lies outside the covered hours (`counts`), exactly, however long the
history.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, union_all, update
from sqlalchemy.dialects import postgresql, sqlite

from execd.domain.analytics import ROLLUP_SECONDS, Aggregate, merge
from execd.domain.states import TERMINAL, Status
from execd.store.clock import now_of
from execd.store.database import exclusive, snapshot
from execd.store.rows import STATUS
from execd.store.schema import (
    ROLLED_UP,
    event_cursors,
    execution_counts,
    execution_rollups_daily,
    execution_rollups_hourly,
)
from execd.store.schema import executions as ex
from execd.store.sql_functions import unindexed

CURSOR = "rollups"
LOCK = "execd-analytics-rollups"
GRACE = 300.0  # seconds after an hour ends before it is sealed
DAY = 86400
# The rollups of each level, by their start column.
hourly, daily = execution_rollups_hourly.c.hour, execution_rollups_daily.c.day
_COUNTED = [Status(s) for s in ROLLED_UP]
_COUNTS = slice(3, 3 + len(ROLLED_UP))  # where a rollup row holds them: after its key
_TERMINAL = sorted(s.value for s in TERMINAL)
_NOT_ENDED = sorted(s.value for s in Status if s not in TERMINAL)


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
    exclusive(conn, LOCK)
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
    _seal_days(conn, covered[0], covered[1], until)
    conn.execute(
        update(event_cursors)
        .where(event_cursors.c.name == CURSOR)
        .values(event_id=until, updated=now)
    )
    return done


def rebuild(conn: Connection) -> None:
    """Forget every rollup; the next seals start again from the oldest execution."""
    exclusive(conn, LOCK)
    conn.execute(delete(execution_rollups_hourly))
    conn.execute(delete(execution_rollups_daily))
    conn.execute(delete(execution_counts))
    conn.execute(delete(event_cursors).where(event_cursors.c.name == CURSOR))


def _seal_days(conn: Connection, first: float, before: float, until: float) -> None:
    """Roll up the days the hourly rollups now cover whole and did not before (the
    covered hours went from [first, before) to [first, until))."""
    day, end = max(_ceil(first, DAY), _floor(before, DAY)), _floor(until, DAY)
    while day < end:
        nxt = conn.execute(
            select(func.min(hourly)).where(hourly >= day, hourly < end)
        ).scalar()  # quiet days have no rows to add up
        if nxt is None:
            return
        day = _floor(nxt, DAY)
        _roll_up_day(conn, day)
        day += DAY


def _roll_up_day(conn: Connection, day: float) -> None:
    conn.execute(delete(execution_rollups_daily).where(daily == day))
    rows = conn.execute(select(execution_rollups_hourly).where(hourly >= day, hourly < day + DAY))
    groups: dict[tuple[str, str], Aggregate] = {}
    for row in rows:
        key = (row.project_id, row.action_ref)
        group = groups.get(key) or groups.setdefault(key, Aggregate(row.action_ref, day))
        _add_row(group, row)
    _insert(conn, execution_rollups_daily, "day", day, groups)


def _roll_up(conn: Connection, hour: float) -> None:
    conn.execute(delete(execution_rollups_hourly).where(hourly == hour))
    rows = conn.execute(
        select(ex.c.project_id, ex.c.action_ref, ex.c.status, ex.c.started, ex.c.ended).where(
            ex.c.ended >= hour, ex.c.ended < hour + ROLLUP_SECONDS, ex.c.status.in_(_TERMINAL)
        )
    )
    groups: dict[tuple[str, str], Aggregate] = {}
    counts: dict[tuple[str, str], int] = {}
    for project_id, action_ref, status, started, ended in rows:
        key = (project_id, action_ref)
        group = groups.get(key) or groups.setdefault(key, Aggregate(action_ref, hour))
        group.add_one(STATUS[status], None if started is None else ended - started)
        counts[project_id, status] = counts.get((project_id, status), 0) + 1
    _add_counts(conn, counts)
    _insert(conn, execution_rollups_hourly, "hour", hour, groups)


def _insert(
    conn: Connection, table: Any, start: str, at: float, groups: dict[tuple[str, str], Aggregate]
) -> None:
    if groups:
        conn.execute(
            insert(table),
            [
                {
                    "project_id": project_id,
                    start: at,
                    "action_ref": action_ref,
                    **{s.value: g.by_status.get(s, 0) for s in _COUNTED},
                    "durations": g.packed(),
                }
                for (project_id, action_ref), g in groups.items()
            ],
        )


def _add_row(group: Aggregate, row: Any) -> None:
    """Add a rollup row (its counts and its histogram) to a group."""
    by_status = group.by_status
    for status, count in zip(_COUNTED, row[_COUNTS], strict=True):
        if count:
            by_status[status] = by_status.get(status, 0) + count
    merge(group.durations, row.durations)


def aggregate(
    conn: Connection,
    project_id: str,
    since: float,
    until: float,
    *,
    by_action: bool,
    bucket_seconds: int | None,
    durations: bool = True,
) -> list[Aggregate]:
    """What ended in [since, until), per action and/or per bucket; without
    `durations`, the counts alone (the run-time histograms are most of the cost). Its
    reads see one snapshot: a rebuild committing meanwhile cannot leave hours out."""
    snapshot(conn)
    groups: dict[tuple[str | None, float | None], Aggregate] = {}

    def group(action_ref: str, at: float) -> Aggregate:
        key = (
            action_ref if by_action else None,
            _floor(at, bucket_seconds) if bucket_seconds else None,
        )
        if key not in groups:
            groups[key] = Aggregate(action_ref=key[0], bucket=key[1])
        return groups[key]

    daily_too = bucket_seconds is None or bucket_seconds % DAY == 0
    for level, low, high in _pieces(coverage(conn), since, until, daily_too):
        if low >= high:
            continue
        if level is None:
            for action_ref, status, started, ended in _ended(conn, project_id, low, high):
                ran = ended - started if started is not None and durations else None
                group(action_ref, ended).add_one(STATUS[status], ran)
            continue
        r = level.table.c
        within = (r.project_id == project_id, level >= low, level < high)
        if durations:
            for row in conn.execute(select(level.table).where(*within)):
                _add_row(group(row.action_ref, getattr(row, level.name)), row)
        else:  # counts only: added up in the database, a row per start (and action)
            keys = [level, *([r.action_ref] if by_action else [])]
            sums = [func.sum(r[s.value]) for s in _COUNTED]
            counted = select(*keys, *sums).where(*within).group_by(*keys)
            for row in conn.execute(counted):
                at, ref, totals = row[0], row[1] if by_action else "", row[len(keys) :]
                found = group(ref, at)
                for status, total in zip(_COUNTED, totals, strict=True):
                    if total:
                        found.add(status, int(total), {})
    return sorted(groups.values(), key=lambda a: (a.bucket or 0.0, a.action_ref or ""))


def _pieces(
    covered: tuple[float, float] | None, since: float, until: float, daily_too: bool
) -> list[tuple[Any, float, float]]:
    """[since, until) split into what the executions (None), the hourly rollups and,
    when `daily_too`, the daily rollups answer: (level, low, high), some maybe empty."""
    if covered is None:
        return [(None, since, until)]
    start, end = max(_ceil(since), covered[0]), min(_floor(until), covered[1])
    if start >= end:
        return [(None, since, until)]
    middle = [(hourly, start, end)]
    days = (_ceil(start, DAY), _floor(end, DAY))
    if daily_too and days[0] < days[1]:
        middle = [(hourly, start, days[0]), (daily, *days), (hourly, days[1], end)]
    return [(None, since, start), *middle, (None, end, until)]


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


def _add_counts(conn: Connection, counts: dict[tuple[str, str], int]) -> None:
    if not counts:
        return
    upsert = (postgresql if conn.dialect.name == "postgresql" else sqlite).insert(execution_counts)
    conn.execute(
        upsert.on_conflict_do_update(
            index_elements=[execution_counts.c.project_id, execution_counts.c.status],
            set_={"executions": execution_counts.c.executions + upsert.excluded.executions},
        ),
        [{"project_id": p, "status": s, "executions": n} for (p, s), n in counts.items()],
    )


def forget(conn: Connection, ids: list[int]) -> None:
    """These executions are about to be deleted: take those in the covered hours out of
    `execution_counts` (their rollups stay)."""
    exclusive(conn, LOCK)
    covered = coverage(conn)
    if covered is None or covered[0] >= covered[1]:
        return
    rows = conn.execute(
        select(ex.c.project_id, ex.c.status, func.count())
        .where(
            ex.c.id.in_(ids),
            ex.c.status.in_(_TERMINAL),
            ex.c.ended >= covered[0],
            ex.c.ended < covered[1],
        )
        .group_by(ex.c.project_id, ex.c.status)
    )
    _add_counts(conn, {(p, s): -int(n) for p, s, n in rows})


def counts(conn: Connection, project_id: str) -> dict[Status, int]:
    """How many of the project's executions are in each status, as a count of every row
    would say: the kept counts of the covered hours plus a count of every other row.
    Those are the few that have not ended (`ended` NULL), what ended after the covered
    hours (the current hour, mostly) or before them, all read through the `ended` index;
    and, through the status index, any not in a final status whose `ended` falls inside
    them (none, as the queue writes them)."""
    snapshot(conn)
    covered = coverage(conn)
    if covered is None:
        every = select(ex.c.status, func.count()).where(ex.c.project_id == project_id)
        return {Status(s): int(n) for s, n in conn.execute(every.group_by(ex.c.status))}
    first, until = covered
    by_ended = unindexed(ex.c.project_id) == project_id

    def counted(*where: Any) -> Any:
        return select(ex.c.status, func.count()).where(*where).group_by(ex.c.status)

    parts = union_all(
        counted(by_ended, ex.c.ended.is_(None)),
        counted(by_ended, ex.c.ended >= until),
        counted(by_ended, ex.c.ended < first),
        counted(
            ex.c.project_id == project_id,
            ex.c.status.in_(_NOT_ENDED),
            unindexed(ex.c.ended) >= first,
            unindexed(ex.c.ended) < until,
        ),
        select(execution_counts.c.status, execution_counts.c.executions).where(
            execution_counts.c.project_id == project_id
        ),
    )
    found: dict[Status, int] = {}
    for status, n in conn.execute(parts):
        found[Status(status)] = found.get(Status(status), 0) + int(n)
    return {s: n for s, n in found.items() if n}


def ended_totals(conn: Connection) -> dict[tuple[Status, str], int]:
    """How many executions have ended in each final status, ever (in every project), by
    status and action: what the rollups hold, whole days from the daily ones, plus what
    ended after the hours they cover. It only grows: rollups outlive the executions
    they count."""
    snapshot(conn)
    covered = coverage(conn)
    found: dict[tuple[Status, str], int] = {}

    def count(status: Status, action: str, total: Any) -> None:
        if total:
            found[status, action] = found.get((status, action), 0) + int(total)

    def add(table: Any, *where: Any) -> None:
        sums = [func.sum(table.c[s.value]) for s in _COUNTED]
        query = select(table.c.action_ref, *sums).where(*where).group_by(table.c.action_ref)
        for action, *totals in conn.execute(query):
            for status, total in zip(_COUNTED, totals, strict=True):
                count(status, action, total)

    after = select(ex.c.status, ex.c.action_ref, func.count()).where(ex.c.status.in_(_TERMINAL))
    if covered is not None:
        days = (_ceil(covered[0], DAY), _floor(covered[1], DAY))
        add(execution_rollups_daily)
        if days[0] < days[1]:
            add(execution_rollups_hourly, (hourly < days[0]) | (hourly >= days[1]))
        else:
            add(execution_rollups_hourly)
        after = after.where(ex.c.ended >= covered[1])
    for status, action, total in conn.execute(after.group_by(ex.c.status, ex.c.action_ref)):
        count(Status(status), action, total)
    return found
