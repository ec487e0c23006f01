"""analytics rollups per hour and per day, a row per action with a count per final
status and one packed run-time histogram

Before, `execution_rollups` held a row per project, hour, action and final status, its
histogram as [[bin, count], ...]. Now `execution_rollups_hourly` holds a row per
project, hour and action: a count column per final status, and the histogram of every
run time of the hour's executions (whatever their status) as [lowest bin, count,
count, ...], a flat list quick to read back and to add up. `execution_rollups_daily`
holds the same per day: the day's hourly rows added up. Both are filled here from the
old rows, the daily ones for every whole day the hourly ones cover.

Downgrading writes the old rows back; the run times of an hour and action then all go
with one of its statuses (the answers, which merge them, stay the same).

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import math
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
DAY = 86400
STATUSES = ("abandoned", "cancelled", "completed", "failed", "timeout")

OLD = sa.table(
    "execution_rollups",
    sa.column("project_id"),
    sa.column("hour"),
    sa.column("action_ref"),
    sa.column("status"),
    sa.column("ended"),
    sa.column("durations", JSON),
)


def _rollups(name: str, start: str) -> sa.Table:
    table = op.create_table(
        name,
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column(start, sa.Double(), nullable=False),
        sa.Column("action_ref", sa.String(length=300), nullable=False),
        *(sa.Column(status, sa.Integer(), nullable=False) for status in STATUSES),
        sa.Column("durations", JSON, nullable=False),
        sa.PrimaryKeyConstraint("project_id", start, "action_ref", name=op.f(f"pk_{name}")),
    )
    op.create_index(f"ix_{name}_{start}", name, [start])
    return table


def _packed(histogram: dict[int, int]) -> list[int]:
    """[lowest bin, its count, the next bin's count, ... up to the highest bin]."""
    if not histogram:
        return []
    low = min(histogram)
    found = [0] * (max(histogram) - low + 2)
    found[0] = low
    for b, n in histogram.items():
        found[b - low + 1] = n
    return found


def _row(key: tuple[str, float, str], group: list[Any], start: str) -> dict[str, Any]:
    counts, histogram = group
    return {
        "project_id": key[0],
        start: key[1],
        "action_ref": key[2],
        **{s: counts.get(s, 0) for s in STATUSES},
        "durations": _packed(histogram),
    }


def _add(groups: dict[Any, list[Any]], key: Any, status: str, n: int, bins: Any) -> None:
    counts, histogram = groups.setdefault(key, [{}, {}])
    counts[status] = counts.get(status, 0) + n
    for b, count in bins:
        histogram[b] = histogram.get(b, 0) + count


def upgrade() -> None:
    hourly = _rollups("execution_rollups_hourly", "hour")
    daily = _rollups("execution_rollups_daily", "day")
    conn = op.get_bind()
    covered = conn.execute(
        sa.text("SELECT txid, event_id FROM event_cursors WHERE name = 'rollups'")
    ).first()
    whole = (
        (math.ceil(float(covered[0]) / DAY) * DAY, math.floor(float(covered[1]) / DAY) * DAY)
        if covered is not None
        else (0.0, 0.0)
    )
    hours: dict[tuple[str, float, str], list[Any]] = {}
    days: dict[tuple[str, float, str], list[Any]] = {}

    def flush() -> None:
        if hours:
            op.bulk_insert(hourly, [_row(k, g, "hour") for k, g in hours.items()])
        if days:
            op.bulk_insert(daily, [_row(k, g, "day") for k, g in days.items()])
        hours.clear()
        days.clear()

    # One pass in hour order, streamed; what it holds is a day of rows at most.
    streamed = {"stream_results": True, "yield_per": 5000}
    rows = conn.execute(sa.select(OLD).order_by(OLD.c.hour).execution_options(**streamed))
    current = None
    for project_id, hour, action_ref, status, ended, pairs in rows:
        day = math.floor(hour / DAY) * DAY
        if day != current:
            flush()
            current = day
        _add(hours, (project_id, hour, action_ref), status, ended, pairs)
        if whole[0] <= day < whole[1]:
            _add(days, (project_id, day, action_ref), status, ended, pairs)
    flush()
    op.drop_table("execution_rollups")


def downgrade() -> None:
    old = op.create_table(
        "execution_rollups",
        sa.Column("project_id", sa.String(length=36), nullable=False),
        sa.Column("hour", sa.Double(), nullable=False),
        sa.Column("action_ref", sa.String(length=300), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("ended", sa.Integer(), nullable=False),
        sa.Column("durations", JSON, nullable=False),
        sa.PrimaryKeyConstraint(
            "project_id", "hour", "action_ref", "status", name=op.f("pk_execution_rollups")
        ),
    )
    conn = op.get_bind()
    hourly = sa.table(
        "execution_rollups_hourly",
        sa.column("project_id"),
        sa.column("hour"),
        sa.column("action_ref"),
        *(sa.column(s) for s in STATUSES),
        sa.column("durations", JSON),
    )
    rows: list[dict[str, Any]] = []
    streamed = {"stream_results": True, "yield_per": 5000}
    stored = conn.execute(sa.select(hourly).execution_options(**streamed))
    for row in stored.mappings():
        packed = row["durations"]
        pairs = [[packed[0] + i, n] for i, n in enumerate(packed[1:]) if n] if packed else []
        for status in STATUSES:
            if row[status]:
                rows.append(
                    {
                        "project_id": row["project_id"],
                        "hour": row["hour"],
                        "action_ref": row["action_ref"],
                        "status": status,
                        "ended": row[status],
                        "durations": pairs,
                    }
                )
                pairs = []  # all of them with the first status
        if len(rows) >= 5000:
            op.bulk_insert(old, rows)
            rows = []
    if rows:
        op.bulk_insert(old, rows)
    op.drop_index("ix_execution_rollups_daily_day", table_name="execution_rollups_daily")
    op.drop_table("execution_rollups_daily")
    op.drop_index("ix_execution_rollups_hourly_hour", table_name="execution_rollups_hourly")
    op.drop_table("execution_rollups_hourly")
