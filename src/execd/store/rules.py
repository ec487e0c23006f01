"""Triggers, rules and enforcements in the database, and the firing of a trigger.

`RuleStore` is what the engine holds: each method is one transaction, around a part
that lives in the module of its concern (the rules themselves live here):

- triggers.py: trigger definitions, webhooks, timers coming due and firing them;
- execution_triggers.py: the rules' cursor following the event log;
- enforcements.py: a firing's enforcements recorded (what each rule does is decided
  in domain/enforcement.py), and read back.

A firing is one transaction: the rules of the trigger are matched, and for each that
matches an enforcement is recorded together with the execution it created (or the
reason it created none). What answers a webhook, what moves a timer on and what moves
the event-log cursor commits in that same transaction, so a firing is never lost and
never done twice.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.exc import IntegrityError

from execd.domain.enforcement import Prepare
from execd.domain.errors import Conflict, NotFound
from execd.domain.rules import Enforcement, Rule, RuleSpec, Trigger, TriggerSpec
from execd.store import execution_triggers
from execd.store import triggers as trigger_rows
from execd.store.clock import now_of
from execd.store.database import Database
from execd.store.enforcements import Enforcer, list_enforcements, read_enforcement
from execd.store.queue import Queue
from execd.store.rule_records import to_rule
from execd.store.schema import rules, triggers
from execd.store.triggers import DueTimer


class RuleStore:
    def __init__(self, db: Database, queue: Queue, prepare: Prepare) -> None:
        self.db = db
        self.enforcer = Enforcer(db, queue, prepare)

    # -- triggers -----------------------------------------------------------------------

    async def create_trigger(
        self, tenant_id: str, project_id: str, spec: TriggerSpec, secret: str | None
    ) -> Trigger:
        return await self.db.write(
            lambda conn: trigger_rows.create_trigger(conn, tenant_id, project_id, spec, secret)
        )

    async def update_trigger(
        self, project_id: str, ref: str, spec: TriggerSpec, secret: str | None
    ) -> Trigger:
        return await self.db.write(
            lambda conn: trigger_rows.update_trigger(conn, project_id, ref, spec, secret)
        )

    async def delete_trigger(self, project_id: str, ref: str) -> None:
        await self.db.write(lambda conn: trigger_rows.delete_trigger(conn, project_id, ref))

    async def trigger(self, project_id: str, ref: str) -> Trigger:
        return await self.db.read(lambda conn: trigger_rows.read_trigger(conn, project_id, ref))

    async def triggers(self, project_id: str) -> list[Trigger]:
        return await self.db.read(lambda conn: trigger_rows.list_triggers(conn, project_id))

    async def webhooks(self, ref: str, project_id: str | None) -> list[tuple[Trigger, str | None]]:
        """Webhook triggers called `ref`: in one project (a caller with a token), or in
        any project (a signed call: the signature tells which)."""
        return await self.db.read(lambda conn: trigger_rows.webhooks(conn, ref, project_id))

    # -- rules ------------------------------------------------------------------------------

    async def create_rule(
        self, tenant_id: str, project_id: str, spec: RuleSpec, created_by: str | None
    ) -> Rule:
        return await self.db.write(
            lambda conn: _create_rule(conn, tenant_id, project_id, spec, created_by)
        )

    async def update_rule(self, project_id: str, ref: str, spec: RuleSpec) -> Rule:
        return await self.db.write(lambda conn: _update_rule(conn, project_id, ref, spec))

    async def delete_rule(self, project_id: str, ref: str) -> None:
        def remove(conn: Connection) -> None:
            current = _rule_row(conn, project_id, ref)
            conn.execute(delete(rules).where(rules.c.id == current["id"]))

        await self.db.write(remove)

    async def rule(self, project_id: str, ref: str) -> Rule:
        def read(conn: Connection) -> Rule:
            row = _rule_row(conn, project_id, ref)
            return to_rule(row, row["trigger_ref"])

        return await self.db.read(read)

    async def rules(
        self,
        project_id: str,
        *,
        trigger_ref: str | None,
        action_ref: str | None,
        enabled: bool | None,
        limit: int,
        offset: int,
    ) -> tuple[list[Rule], int]:
        where = [rules.c.project_id == project_id]
        if trigger_ref is not None:
            where.append(triggers.c.ref == trigger_ref)
        if action_ref is not None:
            where.append(rules.c.action_ref == action_ref)
        if enabled is not None:
            where.append(rules.c.enabled == enabled)
        joined = rules.join(triggers, triggers.c.id == rules.c.trigger_id)
        query = (
            select(rules, triggers.c.ref.label("trigger_ref"))
            .select_from(joined)
            .where(*where)
            .order_by(rules.c.ref)
            .limit(limit)
            .offset(offset)
        )
        count = select(func.count()).select_from(joined).where(*where)

        def read(conn: Connection) -> tuple[list[Rule], int]:
            found = [to_rule(r, r["trigger_ref"]) for r in conn.execute(query).mappings()]
            return found, conn.execute(count).scalar_one()

        return await self.db.read(read)

    # -- enforcements -------------------------------------------------------------------------

    async def enforcements(
        self, project_id: str, *, rule_ref: str | None, status: str | None, limit: int, offset: int
    ) -> tuple[list[Enforcement], int]:
        return await self.db.read(
            lambda conn: list_enforcements(
                conn, project_id, rule_ref=rule_ref, status=status, limit=limit, offset=offset
            )
        )

    async def enforcement(self, project_id: str, enforcement_id: int) -> Enforcement:
        return await self.db.read(lambda conn: read_enforcement(conn, project_id, enforcement_id))

    # -- firing -------------------------------------------------------------------------------

    async def fire(self, trigger: Trigger, payload: Any) -> list[Enforcement]:
        """A webhook call: the trigger's rules run in one transaction with its record."""
        return await self.db.write(
            lambda conn: trigger_rows.fire_webhook(conn, self.enforcer, trigger, payload)
        )

    async def timers(self) -> tuple[list[DueTimer], float | None]:
        """Timers whose due time has come, with that time (what fire_timer claims), and
        the seconds until the next one after them (None: no other timer)."""
        return await self.db.read(trigger_rows.due_timers)

    async def fire_timer(self, trigger_id: int, due: float) -> list[Enforcement] | None:
        """Fire a timer for its due time(s), if no other process did: the move of its
        next due time is a compare-and-set in the firing transaction. None: lost."""
        return await self.db.write(
            lambda conn: trigger_rows.fire_timer(conn, self.enforcer, trigger_id, due)
        )

    async def start_following(self) -> None:
        """Make sure the rules' cursor exists; a new one starts at the end of the log."""
        await self.db.write(execution_triggers.start_following)

    async def follow(self, limit: int = 500) -> int:
        """Read the next events of the log and fire the execution triggers they match.
        The events are read and matched outside the write lock; the write then checks
        the cursor has not moved, fires, and moves it, in one transaction. With no
        execution trigger at all, nothing is read or written. Returns how many events
        were read."""
        looked = await self.db.read(lambda conn: execution_triggers.look(conn, limit))
        if looked is None or looked.position == looked.after:
            return 0
        advanced = await self.db.write(
            lambda conn: execution_triggers.advance(conn, self.enforcer, looked)
        )
        return len(looked.read) if advanced else 0


# -- the rules' rows ----------------------------------------------------------------------


def _create_rule(
    conn: Connection, tenant_id: str, project_id: str, spec: RuleSpec, created_by: str | None
) -> Rule:
    trigger = _trigger_for_rule(conn, project_id, spec.trigger_ref)
    now = now_of(conn)
    values = {
        **_rule_values(spec, trigger["id"]),
        "tenant_id": tenant_id,
        "project_id": project_id,
        "created": now,
        "updated": now,
        "created_by": created_by,
    }
    try:
        row = conn.execute(insert(rules).values(values).returning(*rules.c))
    except IntegrityError:
        raise Conflict(f"Rule {spec.ref} already exists", ref=spec.ref) from None
    return to_rule(row.mappings().one(), trigger["ref"])


def _update_rule(conn: Connection, project_id: str, ref: str, spec: RuleSpec) -> Rule:
    current = _rule_row(conn, project_id, ref)
    trigger = _trigger_for_rule(conn, project_id, spec.trigger_ref)
    statement = (
        update(rules)
        .where(rules.c.id == current["id"])
        .values(**_rule_values(spec, trigger["id"]), updated=now_of(conn))
        .returning(*rules.c)
    )
    try:
        row = conn.execute(statement).mappings().one()
    except IntegrityError:
        raise Conflict(f"Rule {spec.ref} already exists", ref=spec.ref) from None
    return to_rule(row, trigger["ref"])


def _trigger_for_rule(conn: Connection, project_id: str, ref: str) -> Any:
    try:
        return trigger_rows.trigger_row(conn, project_id, ref)
    except NotFound:
        # What the body names is missing: 404, as for a path.
        raise NotFound(f"Trigger {ref} does not exist; create it first", ref=ref) from None


def _rule_row(conn: Connection, project_id: str, ref: str) -> Any:
    row = (
        conn.execute(
            select(rules, triggers.c.ref.label("trigger_ref"))
            .select_from(rules.join(triggers, triggers.c.id == rules.c.trigger_id))
            .where(rules.c.project_id == project_id, rules.c.ref == ref)
        )
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(f"Rule {ref} not found", ref=ref)
    return row


def _rule_values(spec: RuleSpec, trigger_id: int) -> dict[str, Any]:
    return {
        "ref": spec.ref,
        "description": spec.description,
        "trigger_id": trigger_id,
        "criteria": spec.criteria,
        "action_ref": spec.action_ref,
        "parameters": spec.parameters,
        "enabled": spec.enabled,
    }
