"""The one WHERE builder of the execution lists: an `ExecutionFilter` as SQL conditions,
the project first. The kinds of list are the partial indexes' own predicates (JOBS,
FLOW_ROWS), so the databases read those indexes."""

from __future__ import annotations

from sqlalchemy import Text, cast
from sqlalchemy.sql.elements import ColumnElement

from execd.domain.executions import ExecutionFilter, Kind
from execd.store.schema import FLOW_ROWS, JOBS
from execd.store.schema import executions as ex

KINDS = {Kind.JOBS: JOBS, Kind.FLOW_RUNS: FLOW_ROWS}


def conditions(project_id: str, f: ExecutionFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = [ex.c.project_id == project_id]
    if f.only is not None:
        where.append(KINDS[f.only])  # type: ignore[arg-type]
    if f.statuses is not None:
        where.append(ex.c.status.in_(sorted(f.statuses)))
    for column, value in (
        (ex.c.action_ref, f.action_ref),
        (ex.c.action_id, f.action_id),
        (ex.c.pack, f.pack),
        (ex.c.enforcement_id, f.enforcement_id),
        (ex.c.parent_id, f.parent_id),
        (ex.c.job_type, f.job_type),
        (ex.c.priority, None if f.priority is None else int(f.priority)),
        (ex.c.submitted_by, f.submitted_by),
        (ex.c.flow_id, f.flow_id),
        (ex.c.device_id, f.device_id),
    ):
        if value is not None:
            where.append(column == value)
    if f.top_level is not None:
        where.append(ex.c.parent_id.is_(None) if f.top_level else ex.c.parent_id.is_not(None))
    where.extend(_times(f))
    if f.result_contains:
        where.append(cast(ex.c.result, Text).icontains(f.result_contains, autoescape=True))
    return where


def _times(f: ExecutionFilter) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if f.created_after is not None:
        where.append(ex.c.created >= f.created_after)
    if f.created_before is not None:
        where.append(ex.c.created < f.created_before)
    if f.created_until is not None:
        where.append(ex.c.created <= f.created_until)
    if f.updated_after is not None:
        where.append(ex.c.updated >= f.updated_after)
    if f.updated_before is not None:
        where.append(ex.c.updated < f.updated_before)
    if f.below_id is not None:
        where.append(ex.c.id < f.below_id)
    if f.lowest_id is not None:
        where.append(ex.c.id >= f.lowest_id)
    return where
