"""Migration 0010 on a database whose rollups were stored before it, on both backends:
a row per hour, action and status becomes a row per hour and action with a count per
status and one packed histogram; the daily rollups are filled from the whole days the
hourly ones cover; and a downgrade gives the old rows back."""

from __future__ import annotations

from typing import Any

from alembic import command
from sqlalchemy import JSON, column, create_engine, insert, select, table
from sqlalchemy.dialects import postgresql

from execd.domain.analytics import histogram, packed
from execd.domain.states import Status
from execd.store import analytics
from execd.store.database import sync_url
from execd.store.migrate import alembic_config, upgrade
from execd.store.schema import event_cursors, execution_rollups_daily, execution_rollups_hourly
from tests.integration.test_token_migration import _empty

DAY = 86400.0
FIRST = 1_780_000_000.0 - 1_780_000_000.0 % DAY + 6 * 3600  # 06:00 on a day in 2026
PROJECT = "00000000-0000-4000-8000-000000000001"
OLD = table(  # the rollups as they were before 0010
    "execution_rollups",
    column("project_id"),
    column("hour"),
    column("action_ref"),
    column("status"),
    column("ended"),
    column("durations", JSON().with_variant(postgresql.JSONB(), "postgresql")),
)


def test_rollups_become_a_row_per_action_and_whole_days_are_rolled_up(database_url: str) -> None:
    engine = create_engine(sync_url(database_url))
    _empty(engine)
    upgrade(database_url, "0009")
    hours = [FIRST + 3600 * i for i in range(60)]  # 06:00 on day 0 up to 17:00 on day 2
    durations = {hour: [0.5 + (i % 7), 30.0 + i] for i, hour in enumerate(hours)}
    rows: list[dict[str, Any]] = []
    for hour in hours:
        for status, taken in (("completed", slice(0, 1)), ("failed", slice(1, 2))):
            pairs = sorted(histogram(durations[hour][taken]).items())
            rows.append(
                {
                    "project_id": PROJECT,
                    "hour": hour,
                    "action_ref": "a.one",
                    "status": status,
                    "ended": 1,
                    "durations": [[b, n] for b, n in pairs],
                }
            )
    rows.append({**rows[0], "status": "cancelled", "durations": []})  # ended, never ran
    with engine.begin() as conn:
        conn.execute(insert(OLD), rows)
        conn.execute(  # the hours covered: the first up to the hour after the last
            insert(event_cursors).values(
                name="rollups", txid=FIRST, event_id=hours[-1] + 3600, updated=FIRST
            )
        )
    upgrade(database_url)
    with engine.connect() as conn:
        hourly = conn.execute(
            select(execution_rollups_hourly).order_by(execution_rollups_hourly.c.hour)
        ).all()
        daily = conn.execute(select(execution_rollups_daily)).all()
        groups = analytics.aggregate(
            conn, PROJECT, FIRST, hours[-1] + 3600, by_action=True, bucket_seconds=None
        )
    engine.dispose()
    assert [r.hour for r in hourly] == hours
    assert (hourly[0].completed, hourly[0].failed, hourly[0].cancelled) == (1, 1, 1)
    for row in hourly:
        expected = histogram(durations[row.hour])
        low = row.durations[0]
        assert {low + i: n for i, n in enumerate(row.durations[1:]) if n} == expected
    [day] = daily  # day 1: the only day covered whole
    assert day.day == FIRST - 6 * 3600 + DAY and (day.completed, day.failed) == (24, 24)
    [group] = groups  # day 1 from the daily rollup, the rest from the hourly ones
    assert group.by_status == {Status.COMPLETED: 60, Status.FAILED: 60, Status.CANCELLED: 1}
    assert group.packed() == packed(histogram([d for h in hours for d in durations[h]]))

    command.downgrade(alembic_config(database_url), "0009")
    engine = create_engine(sync_url(database_url))
    with engine.connect() as conn:
        back = conn.execute(select(OLD).order_by(OLD.c.hour, OLD.c.status)).mappings().all()
    engine.dispose()
    # The counts come back as they were; an hour's run times all go with its first
    # status (the answers merge them anyway).
    assert sorted((r["hour"], r["status"], r["ended"]) for r in back) == sorted(
        (r["hour"], r["status"], r["ended"]) for r in rows
    )
    for hour in hours:
        found = [r for r in back if r["hour"] == hour]
        merged = {b: n for r in found for b, n in r["durations"]}
        assert merged == histogram(durations[hour])
        assert not found[-1]["durations"] or len(found) == 1
