"""Execution triggers: the rules' cursor follows the event log, and each event that an
enabled execution trigger watches fires that trigger's rules.

The events are read and matched outside the write lock (`look`); the write then
checks the cursor has not moved, fires, and moves it, in one transaction (`advance`).
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from execd.domain import rules as domain
from execd.domain.actions import mask_secrets
from execd.domain.events import LogEvent, Position
from execd.domain.rules import TriggerSpec
from execd.domain.times import iso
from execd.store import events as event_log
from execd.store.clock import now_of
from execd.store.database import exclusive
from execd.store.enforcements import Enforcer
from execd.store.rule_records import to_trigger
from execd.store.schema import enforcements, event_cursors, triggers
from execd.store.schema import executions as ex

RULES_CURSOR = "rules"


class Looked(NamedTuple):
    after: Position  # the cursor
    read: list[LogEvent]  # the events after it
    position: Position  # where they end
    fired: list[tuple[LogEvent, int]]  # which of them fire which trigger (by id)


def start_following(conn: Connection) -> None:
    """Make sure the rules' cursor exists; a new one starts at the end of the log."""
    here = event_log.tail(conn)
    values = {
        "name": RULES_CURSOR,
        "txid": here.txid,
        "event_id": here.id,
        "updated": now_of(conn),
    }
    make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    conn.execute(make(event_cursors).values(values).on_conflict_do_nothing())


def start_watching(conn: Connection, spec: TriggerSpec, trigger_id: int) -> None:
    """While no execution trigger is enabled the log is not followed at all; the first
    one to be enabled starts the cursor at the end of the log, so it fires for what
    happens from now on (not for everything since the last one was disabled)."""
    if spec.type != domain.EXECUTION or not spec.enabled:
        return
    others = conn.execute(
        select(triggers.c.id)
        .where(
            triggers.c.type == domain.EXECUTION,
            triggers.c.enabled.is_(True),
            triggers.c.id != trigger_id,
        )
        .limit(1)
    ).first()
    if others is None:
        _move_cursor(conn, event_log.tail(conn), now_of(conn))


def look(conn: Connection, limit: int) -> Looked | None:
    """The events after the cursor and the execution triggers they fire (None: no
    execution trigger is enabled, or there is no cursor yet)."""
    after = _cursor(conn)
    if after is None:
        return None
    watching = (
        conn.execute(
            select(triggers.c.id, triggers.c.project_id, triggers.c.config).where(
                triggers.c.type == domain.EXECUTION, triggers.c.enabled.is_(True)
            )
        )
        .mappings()
        .all()
    )
    if not watching:  # nothing to fire (the first trigger moves the cursor to "now")
        return None
    read, position = event_log.read(conn, after, limit)
    fired = [
        (event, trigger["id"])
        for event in read
        if event.kind != "progress" and event.action_ref is not None
        for trigger in watching
        if trigger["project_id"] == event.project_id
        and domain.execution_matches(trigger["config"], event.action_ref, event.to_status)
    ]
    return Looked(after, read, position, fired)


def advance(conn: Connection, enforcer: Enforcer, looked: Looked) -> bool:
    """Fire what `looked` found and move the cursor past it, unless another process
    moved the cursor first (False: look again)."""
    exclusive(conn, "execd-rules-cursor")  # one follower at a time, in any process
    if _cursor(conn) != looked.after:
        return False
    now = now_of(conn)
    if looked.fired:
        still = {  # triggers disabled or deleted since they were read do not fire
            row["id"]: to_trigger(row, row["secret"] is not None)
            for row in conn.execute(
                select(triggers).where(
                    triggers.c.id.in_({t for _, t in looked.fired}),
                    triggers.c.enabled.is_(True),
                )
            ).mappings()
        }
        sources = _executions(conn, {event.execution_id for event, _ in looked.fired})
        for event, trigger_id in looked.fired:
            source = sources.get(event.execution_id)
            if source is None or trigger_id not in still:
                continue
            payload = {"execution": {**source, "status": event.to_status}}
            payload["execution"]["from_status"] = event.from_status
            depth = _depth_after(conn, source["enforcement"])
            enforcer.fire(conn, now, still[trigger_id], payload, depth=depth)
    _move_cursor(conn, looked.position, now)
    return True


def _cursor(conn: Connection) -> Position | None:
    row = conn.execute(
        select(event_cursors.c.txid, event_cursors.c.event_id).where(
            event_cursors.c.name == RULES_CURSOR
        )
    ).first()
    return None if row is None else Position(row.txid, row.event_id)


def _move_cursor(conn: Connection, position: Position, now: float) -> None:
    conn.execute(
        update(event_cursors)
        .where(event_cursors.c.name == RULES_CURSOR)
        .values(txid=position.txid, event_id=position.id, updated=now)
    )


def _executions(conn: Connection, ids: set[int]) -> dict[int, dict[str, Any]]:
    """What an execution trigger's payload tells of each execution (secrets masked)."""
    query = select(
        ex.c.id, ex.c.uuid, ex.c.action_ref, ex.c.parameters, ex.c.secrets, ex.c.result,
        ex.c.error, ex.c.exit_code, ex.c.parent_id, ex.c.enforcement_id, ex.c.rule_id,
        ex.c.started, ex.c.ended, ex.c.attempt, ex.c.submitted_by,
    ).where(ex.c.id.in_(sorted(ids)))  # fmt: skip
    found: dict[int, dict[str, Any]] = {}
    for row in conn.execute(query).mappings():
        found[row["id"]] = {
            "id": row["id"],
            "uuid": row["uuid"],
            "action_ref": row["action_ref"],
            "parameters": mask_secrets(row["parameters"] or {}, frozenset(row["secrets"] or ())),
            "result": row["result"],
            "error": row["error"],
            "exit_code": row["exit_code"],
            "attempt": row["attempt"],
            "parent": row["parent_id"],
            "enforcement": row["enforcement_id"],
            "rule": row["rule_id"],
            "submitted_by": row["submitted_by"],
            "started": iso(row["started"]) if row["started"] else None,
            "ended": iso(row["ended"]) if row["ended"] else None,
        }
    return found


def _depth_after(conn: Connection, enforcement_id: int | None) -> int:
    """The depth of a firing caused by an execution of `enforcement_id`."""
    if enforcement_id is None:
        return 1
    row = conn.execute(
        select(enforcements.c.depth).where(enforcements.c.id == enforcement_id)
    ).first()
    return 1 if row is None else int(row.depth) + 1
