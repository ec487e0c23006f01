"""Enforcements: what a firing records of each rule that matched, and reading them back.

The domain decides what each rule does (`domain/enforcement.py`); `Enforcer` applies
those decisions in the firing's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import structlog
from sqlalchemy import Connection, func, insert, select, update
from sqlalchemy.exc import SQLAlchemyError

from execd.domain.actions import Action
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.enforcement import EXPECTED, Decision, Prepare, decide, not_run
from execd.domain.errors import ExecdError, NotFound
from execd.domain.executions import NewExecution
from execd.domain.rules import Enforcement, Rule, Trigger
from execd.store.database import Database
from execd.store.queue import Queue
from execd.store.rows import to_action
from execd.store.rule_records import to_enforcement, to_rule
from execd.store.schema import actions, enforcements, rules

log = structlog.get_logger(__name__)


class Enforcer:
    def __init__(self, db: Database, queue: Queue, prepare: Prepare) -> None:
        self.db = db
        self.queue = queue
        self.prepare = prepare

    def fire(
        self, conn: Connection, now: float, trigger: Trigger, payload: Any, *, depth: int
    ) -> list[Enforcement]:
        """Fire `trigger`'s enabled rules for `payload` in `conn`'s transaction: an
        enforcement for each that matches."""
        found = [
            to_rule(row, trigger.ref)
            for row in conn.execute(
                select(rules)
                .where(rules.c.trigger_id == trigger.id, rules.c.enabled.is_(True))
                .order_by(rules.c.id)
            ).mappings()
        ]
        known = _actions(conn, found)
        done: list[Enforcement] = []
        for rule in found:
            action = known.get((rule.project_id, rule.action_ref))
            decision = decide(
                rule, trigger, payload, depth=depth, action=action, prepare=self.prepare
            )
            if decision is not None:
                done.append(self._enforce(conn, now, trigger, rule, decision, depth))
        if any(e.execution_ids for e in done):
            self.db.notify_jobs(conn)
        return done

    def _enforce(
        self,
        conn: Connection,
        now: float,
        trigger: Trigger,
        rule: Rule,
        decision: Decision,
        depth: int,
    ) -> Enforcement:
        record = {
            "tenant_id": rule.tenant_id,
            "project_id": rule.project_id,
            "rule_id": rule.id,
            "rule_ref": rule.ref,
            "trigger_id": trigger.id,
            "trigger_ref": trigger.ref,
            "trigger_type": trigger.type,
            "payload": decision.payload,
            "status": "succeeded",
            "error": None,
            "depth": depth,
            "execution_ids": [],
            "created": now,
        }
        enforcement_id = conn.execute(
            insert(enforcements).values(record).returning(enforcements.c.id)
        ).scalar_one()
        if decision.trouble is not None:
            log.warning("rule_failed", rule=rule.ref, error=decision.trouble)
        error: str | None = decision.error
        created: list[int] = []
        if decision.execution is not None:
            item = replace(decision.execution, enforcement_id=enforcement_id)
            error, created = self._run(conn, now, rule, item)
        record |= {
            "status": "succeeded" if error is None else "failed",
            "error": error,
            "execution_ids": created,
        }
        conn.execute(
            update(enforcements)
            .where(enforcements.c.id == enforcement_id)
            .values(status=record["status"], error=error, execution_ids=created)
        )
        return to_enforcement({**record, "id": enforcement_id})

    def _run(
        self, conn: Connection, now: float, rule: Rule, item: NewExecution
    ) -> tuple[str | None, list[int]]:
        """Insert an enforcement's execution: the error that stopped it, or its id."""
        try:
            # A savepoint: whatever goes wrong with this rule's execution (even in
            # the database) fails this enforcement only, never the firing.
            with conn.begin_nested():
                created = self.queue.insert(conn, now, [item])
        except (ExecdError, SQLAlchemyError, ValueError, TypeError) as exc:
            if not isinstance(exc, EXPECTED):
                log.warning("rule_failed", rule=rule.ref, error=str(exc))
            return not_run(exc), []
        return None, [e.id for e in created]


def _actions(conn: Connection, found: Iterable[Rule]) -> dict[tuple[str, str], Action]:
    """The actions the rules run, by project and ref: built-in or the project's own."""
    known = {(r.project_id, r.action_ref): CORE_ACTIONS.get(r.action_ref) for r in found}
    wanted = [key for key, action in known.items() if action is None]
    if wanted:
        query = select(actions).where(
            actions.c.project_id.in_({project for project, _ in wanted}),
            actions.c.ref.in_({ref for _, ref in wanted}),
        )
        for row in conn.execute(query).mappings():
            if (row["project_id"], row["ref"]) in known:
                known[row["project_id"], row["ref"]] = to_action(row)
    return {key: action for key, action in known.items() if action is not None}


def list_enforcements(
    conn: Connection,
    project_id: str,
    *,
    rule_ref: str | None,
    status: str | None,
    limit: int,
    offset: int,
) -> tuple[list[Enforcement], int]:
    where = [enforcements.c.project_id == project_id]
    if rule_ref is not None:
        where.append(enforcements.c.rule_ref == rule_ref)
    if status is not None:
        where.append(enforcements.c.status == status)
    query = (
        select(enforcements)
        .where(*where)
        .order_by(enforcements.c.id.desc())
        .limit(limit)
        .offset(offset)
    )
    count = select(func.count()).select_from(enforcements).where(*where)
    found = [to_enforcement(r) for r in conn.execute(query).mappings()]
    return found, conn.execute(count).scalar_one()


def read_enforcement(conn: Connection, project_id: str, enforcement_id: int) -> Enforcement:
    query = select(enforcements).where(
        enforcements.c.id == enforcement_id, enforcements.c.project_id == project_id
    )
    row = conn.execute(query).mappings().first()
    if row is None:
        raise NotFound(f"Enforcement {enforcement_id} not found")
    return to_enforcement(row)
