"""Triggers in the database: their definitions, the webhooks a call may fire, and the
timers: which are due, and firing one once however many processes try."""

from __future__ import annotations

from typing import Any, NamedTuple

from sqlalchemy import Connection, delete, insert, select, update
from sqlalchemy.exc import IntegrityError

from execd.domain import rules as domain
from execd.domain.errors import Conflict, NotFound
from execd.domain.rules import Enforcement, Trigger, TriggerSpec
from execd.domain.times import iso
from execd.store.clock import now_of
from execd.store.enforcements import Enforcer
from execd.store.execution_triggers import start_watching
from execd.store.rule_records import to_trigger
from execd.store.schema import rules, triggers

_TRIGGER_COLUMNS = [c for c in triggers.c if c.name != "secret"]


class DueTimer(NamedTuple):
    id: int
    due: float
    ref: str
    project_id: str


# -- definitions ----------------------------------------------------------------------


def create_trigger(
    conn: Connection, tenant_id: str, project_id: str, spec: TriggerSpec, secret: str | None
) -> Trigger:
    now = now_of(conn)
    values = {
        "tenant_id": tenant_id,
        "project_id": project_id,
        "ref": spec.ref,
        "type": spec.type,
        "description": spec.description,
        "config": spec.config,
        "secret": secret,
        "enabled": spec.enabled,
        "next_fire": _first_fire(spec, now),
        "created": now,
        "updated": now,
    }
    try:
        row = (
            conn.execute(insert(triggers).values(values).returning(*_TRIGGER_COLUMNS))
            .mappings()
            .one()
        )
    except IntegrityError:
        raise Conflict(f"Trigger {spec.ref} already exists", ref=spec.ref) from None
    start_watching(conn, spec, row["id"])
    return to_trigger(row, secret is not None)


def update_trigger(
    conn: Connection, project_id: str, ref: str, spec: TriggerSpec, secret: str | None
) -> Trigger:
    current = trigger_row(conn, project_id, ref)
    if spec.type != current["type"]:
        raise Conflict("A trigger's type cannot change; create another trigger")
    now = now_of(conn)
    values: dict[str, Any] = {
        "ref": spec.ref,
        "description": spec.description,
        "config": spec.config,
        "enabled": spec.enabled,
        "updated": now,
    }
    if secret is not None:
        values["secret"] = secret
    # A changed schedule (or a timer enabled again) starts from now.
    schedule_changed = spec.config != current["config"] or not current["enabled"]
    if spec.type != domain.TIMER or not spec.enabled:
        values["next_fire"] = None
    elif schedule_changed or current["next_fire"] is None:
        values["next_fire"] = _first_fire(spec, now)
    statement = (
        update(triggers)
        .where(triggers.c.id == current["id"])
        .values(values)
        .returning(*_TRIGGER_COLUMNS, triggers.c.secret)
    )
    try:
        row = conn.execute(statement).mappings().one()
    except IntegrityError:
        raise Conflict(f"Trigger {spec.ref} already exists", ref=spec.ref) from None
    if not current["enabled"]:  # enabled again: from now on
        start_watching(conn, spec, row["id"])
    return to_trigger(row, row["secret"] is not None)


def delete_trigger(conn: Connection, project_id: str, ref: str) -> None:
    current = trigger_row(conn, project_id, ref)
    used = (
        conn.execute(select(rules.c.ref).where(rules.c.trigger_id == current["id"]).limit(5))
        .scalars()
        .all()
    )
    if used:
        raise Conflict(
            f"Trigger {ref} is used by rule(s) {', '.join(used)}; delete them first",
            rules=list(used),
        )
    conn.execute(delete(triggers).where(triggers.c.id == current["id"]))


def trigger_row(conn: Connection, project_id: str, ref: str) -> Any:
    row = (
        conn.execute(
            select(triggers).where(triggers.c.project_id == project_id, triggers.c.ref == ref)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Trigger {ref} not found", ref=ref)
    return row


def read_trigger(conn: Connection, project_id: str, ref: str) -> Trigger:
    row = trigger_row(conn, project_id, ref)
    return to_trigger(row, row["secret"] is not None)


def list_triggers(conn: Connection, project_id: str) -> list[Trigger]:
    query = (
        select(*_TRIGGER_COLUMNS, triggers.c.secret.is_not(None).label("has_secret"))
        .where(triggers.c.project_id == project_id)
        .order_by(triggers.c.ref)
    )
    return [to_trigger(r, bool(r["has_secret"])) for r in conn.execute(query).mappings()]


def _first_fire(spec: TriggerSpec, now: float) -> float | None:
    if spec.type != domain.TIMER or not spec.enabled:
        return None
    return domain.next_fire(spec.config, now)


# -- webhooks -------------------------------------------------------------------------


def webhooks(
    conn: Connection, ref: str, project_id: str | None
) -> list[tuple[Trigger, str | None]]:
    """Webhook triggers called `ref` with their sealed secrets: in one project, or in
    any project (None)."""
    query = select(triggers).where(triggers.c.ref == ref, triggers.c.type == domain.WEBHOOK)
    if project_id is not None:
        query = query.where(triggers.c.project_id == project_id)
    return [
        (to_trigger(r, r["secret"] is not None), r["secret"])
        for r in conn.execute(query.order_by(triggers.c.id)).mappings()
    ]


def fire_webhook(
    conn: Connection, enforcer: Enforcer, trigger: Trigger, payload: Any
) -> list[Enforcement]:
    """Fire a webhook's rules, unless it was deleted or disabled since it was read."""
    current = conn.execute(select(triggers).where(triggers.c.id == trigger.id)).mappings().first()
    if current is None:
        raise NotFound(f"Trigger {trigger.ref} not found", ref=trigger.ref)
    if not current["enabled"]:
        raise Conflict(f"Trigger {trigger.ref} is disabled", ref=trigger.ref)
    fired = to_trigger(current, current["secret"] is not None)
    return enforcer.fire(conn, now_of(conn), fired, payload, depth=1)


# -- timers ---------------------------------------------------------------------------


def due_timers(conn: Connection) -> tuple[list[DueTimer], float | None]:
    """Timers whose due time has come, with that time, and the seconds until the next
    one after them (None: no other timer)."""
    now = now_of(conn)
    t = triggers.c
    query = (
        select(t.id, t.next_fire, t.ref, t.project_id)
        .where(t.next_fire.is_not(None))
        .order_by(t.next_fire)
        .limit(101)
    )
    found = [DueTimer(r.id, r.next_fire, r.ref, r.project_id) for r in conn.execute(query)]
    ready = [d for d in found if d.due <= now][:100]
    later = [d.due - now for d in found if d.due > now]
    return ready, (later[0] if later else None)


def fire_timer(
    conn: Connection, enforcer: Enforcer, trigger_id: int, due: float
) -> list[Enforcement] | None:
    """Fire a timer for its due time(s), if no other process did: its next due time
    moves by compare-and-set. None: another process fired it first."""
    row = (
        conn.execute(
            select(triggers).where(triggers.c.id == trigger_id, triggers.c.next_fire == due)
        )
        .mappings()
        .first()
    )
    if row is None:
        return None
    now = now_of(conn)
    firing = domain.due_times(row["config"], due, now)
    moved = conn.execute(
        update(triggers)
        .where(triggers.c.id == trigger_id, triggers.c.next_fire == due)
        .values(next_fire=firing.upcoming)
    )
    if moved.rowcount != 1:
        return None
    timer = to_trigger(row, row["secret"] is not None)
    done: list[Enforcement] = []
    for when in firing.times:
        payload = {
            "scheduled_time": iso(when),
            "fired_at": iso(now),
            # Late beyond the grace: fired now for a time the service was down.
            "catch_up": now - when > domain.MISFIRE_GRACE,
            "skipped": firing.skipped,
        }
        done += enforcer.fire(conn, now, timer, payload, depth=1)
    return done
