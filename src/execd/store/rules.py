"""Triggers, rules and enforcements in the database, and the firing of a trigger.

A firing is one transaction: the rules of the trigger are matched, and for each that
matches an enforcement is recorded together with the execution it created (or the
reason it created none). What answers a webhook, what moves a timer on and what moves
the event-log cursor commits in that same transaction, so a firing is never lost and
never done twice.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import Any, NamedTuple, TypeVar

import structlog
from sqlalchemy import Connection, delete, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from execd.domain import rules as domain
from execd.domain.actions import Action, mask_secrets, secret_names
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.errors import Conflict, ExecdError, NotFound
from execd.domain.executions import NewExecution
from execd.domain.rules import Enforcement, Rule, RuleSpec, Trigger, TriggerSpec
from execd.domain.secret_values import mask_payload, payload_paths
from execd.domain.templates import TemplateError, render_parameters
from execd.domain.times import iso
from execd.store import events as event_log
from execd.store.clock import now_of
from execd.store.database import Database, exclusive
from execd.store.queue import Queue
from execd.store.rows import to_action
from execd.store.schema import actions, enforcements, event_cursors, rules, triggers
from execd.store.schema import executions as ex

# What a rule's execution is validated and filled in with: ActionService.prepare.
Prepare = Callable[[Action, dict[str, Any]], dict[str, Any]]
RULES_CURSOR = "rules"
log = structlog.get_logger(__name__)
_TRIGGER_COLUMNS = [c for c in triggers.c if c.name != "secret"]


class DueTimer(NamedTuple):
    id: int
    due: float
    ref: str
    project_id: str


class RuleStore:
    def __init__(self, db: Database, queue: Queue, prepare: Prepare) -> None:
        self.db = db
        self.queue = queue
        self.prepare = prepare

    # -- triggers -----------------------------------------------------------------------

    async def create_trigger(
        self, tenant_id: str, project_id: str, spec: TriggerSpec, secret: str | None
    ) -> Trigger:
        def create(conn: Connection) -> Trigger:
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
            _start_watching(conn, spec, row["id"])
            return _trigger(row, secret is not None)

        return await self.db.write(create)

    async def update_trigger(
        self, project_id: str, ref: str, spec: TriggerSpec, secret: str | None
    ) -> Trigger:
        def change(conn: Connection) -> Trigger:
            current = _trigger_row(conn, project_id, ref)
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
                _start_watching(conn, spec, row["id"])
            return _trigger(row, row["secret"] is not None)

        return await self.db.write(change)

    async def delete_trigger(self, project_id: str, ref: str) -> None:
        def remove(conn: Connection) -> None:
            current = _trigger_row(conn, project_id, ref)
            used = (
                conn.execute(
                    select(rules.c.ref).where(rules.c.trigger_id == current["id"]).limit(5)
                )
                .scalars()
                .all()
            )
            if used:
                raise Conflict(
                    f"Trigger {ref} is used by rule(s) {', '.join(used)}; delete them first",
                    rules=list(used),
                )
            conn.execute(delete(triggers).where(triggers.c.id == current["id"]))

        await self.db.write(remove)

    async def trigger(self, project_id: str, ref: str) -> Trigger:
        def read(conn: Connection) -> Trigger:
            row = _trigger_row(conn, project_id, ref)
            return _trigger(row, row["secret"] is not None)

        return await self.db.read(read)

    async def triggers(self, project_id: str) -> list[Trigger]:
        query = (
            select(*_TRIGGER_COLUMNS, triggers.c.secret.is_not(None).label("has_secret"))
            .where(triggers.c.project_id == project_id)
            .order_by(triggers.c.ref)
        )
        return await self.db.read(
            lambda conn: [
                _trigger(r, bool(r["has_secret"])) for r in conn.execute(query).mappings()
            ]
        )

    async def webhooks(self, ref: str, project_id: str | None) -> list[tuple[Trigger, str | None]]:
        """Webhook triggers called `ref`: in one project (a caller with a token), or in
        any project (a signed call: the signature tells which)."""
        query = select(triggers).where(triggers.c.ref == ref, triggers.c.type == domain.WEBHOOK)
        if project_id is not None:
            query = query.where(triggers.c.project_id == project_id)
        return await self.db.read(
            lambda conn: [
                (_trigger(r, r["secret"] is not None), r["secret"])
                for r in conn.execute(query.order_by(triggers.c.id)).mappings()
            ]
        )

    # -- rules ------------------------------------------------------------------------------

    async def create_rule(
        self, tenant_id: str, project_id: str, spec: RuleSpec, created_by: str | None
    ) -> Rule:
        def create(conn: Connection) -> Rule:
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
            return _rule(row.mappings().one(), trigger["ref"])

        return await self.db.write(create)

    async def update_rule(self, project_id: str, ref: str, spec: RuleSpec) -> Rule:
        def change(conn: Connection) -> Rule:
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
            return _rule(row, trigger["ref"])

        return await self.db.write(change)

    async def delete_rule(self, project_id: str, ref: str) -> None:
        def remove(conn: Connection) -> None:
            current = _rule_row(conn, project_id, ref)
            conn.execute(delete(rules).where(rules.c.id == current["id"]))

        await self.db.write(remove)

    async def rule(self, project_id: str, ref: str) -> Rule:
        def read(conn: Connection) -> Rule:
            row = _rule_row(conn, project_id, ref)
            return _rule(row, row["trigger_ref"])

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
            found = [_rule(r, r["trigger_ref"]) for r in conn.execute(query).mappings()]
            return found, conn.execute(count).scalar_one()

        return await self.db.read(read)

    # -- enforcements -------------------------------------------------------------------------

    async def enforcements(
        self, project_id: str, *, rule_ref: str | None, status: str | None, limit: int, offset: int
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

        def read(conn: Connection) -> tuple[list[Enforcement], int]:
            found = [_enforcement(r) for r in conn.execute(query).mappings()]
            return found, conn.execute(count).scalar_one()

        return await self.db.read(read)

    async def enforcement(self, project_id: str, enforcement_id: int) -> Enforcement:
        query = select(enforcements).where(
            enforcements.c.id == enforcement_id, enforcements.c.project_id == project_id
        )

        def read(conn: Connection) -> Enforcement:
            row = conn.execute(query).mappings().first()
            if row is None:
                raise NotFound(f"Enforcement {enforcement_id} not found")
            return _enforcement(row)

        return await self.db.read(read)

    # -- firing -------------------------------------------------------------------------------

    async def fire(self, trigger: Trigger, payload: Any) -> list[Enforcement]:
        """A webhook call: the trigger's rules run in one transaction with its record."""

        def fire(conn: Connection) -> list[Enforcement]:
            row = conn.execute(select(triggers).where(triggers.c.id == trigger.id)).mappings()
            current = row.first()
            if current is None:
                raise NotFound(f"Trigger {trigger.ref} not found", ref=trigger.ref)
            if not current["enabled"]:
                raise Conflict(f"Trigger {trigger.ref} is disabled", ref=trigger.ref)
            return self._fire(conn, now_of(conn), current, payload, depth=1)

        return await self.db.write(fire)

    async def timers(self) -> tuple[list[DueTimer], float | None]:
        """Timers whose due time has come, with that time (what fire_timer claims), and
        the seconds until the next one after them (None: no other timer)."""

        def due(conn: Connection) -> tuple[list[DueTimer], float | None]:
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

        return await self.db.read(due)

    async def fire_timer(self, trigger_id: int, due: float) -> list[Enforcement] | None:
        """Fire a timer for its due time(s), if no other process did: the move of its
        next due time is a compare-and-set in the firing transaction. None: lost."""

        def fire(conn: Connection) -> list[Enforcement] | None:
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
                return None  # another process fired it first
            done: list[Enforcement] = []
            for when in firing.times:
                payload = {
                    "scheduled_time": iso(when),
                    "fired_at": iso(now),
                    # Late beyond the grace: fired now for a time the service was down.
                    "catch_up": now - when > domain.MISFIRE_GRACE,
                    "skipped": firing.skipped,
                }
                done += self._fire(conn, now, row, payload, depth=1)
            return done

        return await self.db.write(fire)

    async def start_following(self) -> None:
        """Make sure the rules' cursor exists; a new one starts at the end of the log."""

        def ensure(conn: Connection) -> None:
            here = event_log.tail(conn)
            values = {
                "name": RULES_CURSOR,
                "txid": here.txid,
                "event_id": here.id,
                "updated": now_of(conn),
            }
            make = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
            conn.execute(make(event_cursors).values(values).on_conflict_do_nothing())

        await self.db.write(ensure)

    async def follow(self, limit: int = 500) -> int:
        """Read the next events of the log and fire the execution triggers they match.
        The events are read and matched outside the write lock; the write then checks
        the cursor has not moved, fires, and moves it, in one transaction. With no
        execution trigger at all, nothing is read or written. Returns how many events
        were read."""
        looked = await self.db.read(lambda conn: _look(conn, limit))
        if looked is None:
            return 0
        after, read, position, fired = looked
        if position == after:
            return 0

        def advance(conn: Connection) -> bool:
            exclusive(conn, "execd-rules-cursor")  # one follower at a time, in any process
            if _cursor(conn) != after:
                return False  # another process moved it first: look again
            now = now_of(conn)
            if fired:
                still = {  # triggers disabled or deleted since they were read do not fire
                    row["id"]: row
                    for row in conn.execute(
                        select(triggers).where(
                            triggers.c.id.in_({t for _, t in fired}),
                            triggers.c.enabled.is_(True),
                        )
                    ).mappings()
                }
                sources = _executions(conn, {event.execution_id for event, _ in fired})
                for event, trigger_id in fired:
                    source = sources.get(event.execution_id)
                    if source is None or trigger_id not in still:
                        continue
                    payload = {"execution": {**source, "status": event.to_status}}
                    payload["execution"]["from_status"] = event.from_status
                    depth = _depth_after(conn, source["enforcement"])
                    self._fire(conn, now, still[trigger_id], payload, depth=depth)
            conn.execute(
                update(event_cursors)
                .where(event_cursors.c.name == RULES_CURSOR)
                .values(txid=position.txid, event_id=position.id, updated=now)
            )
            return True

        return len(read) if await self.db.write(advance) else 0

    def _fire(
        self, conn: Connection, now: float, trigger: Any, payload: Any, *, depth: int
    ) -> list[Enforcement]:
        found = (
            conn.execute(
                select(rules)
                .where(rules.c.trigger_id == trigger["id"], rules.c.enabled.is_(True))
                .order_by(rules.c.id)
            )
            .mappings()
            .all()
        )
        done: list[Enforcement] = []
        for rule in found:
            context = {
                "payload": payload,
                "trigger": {"ref": trigger["ref"], "type": trigger["type"]},
                "rule": {"ref": rule["ref"]},
            }
            if not domain.matches(rule["criteria"], context):
                continue
            action = self._action(conn, rule)
            record = {
                "tenant_id": rule["tenant_id"],
                "project_id": rule["project_id"],
                "rule_id": rule["id"],
                "rule_ref": rule["ref"],
                "trigger_id": trigger["id"],
                "trigger_ref": trigger["ref"],
                "trigger_type": trigger["type"],
                "payload": _shown_payload(payload, rule["parameters"], action),
                "status": "succeeded",
                "error": None,
                "depth": depth,
                "execution_ids": [],
                "created": now,
            }
            enforcement_id = conn.execute(
                insert(enforcements).values(record).returning(enforcements.c.id)
            ).scalar_one()
            try:
                if depth > domain.MAX_CHAIN:
                    raise Conflict(
                        f"Not run: a chain of rules deeper than {domain.MAX_CHAIN} "
                        "(does a rule trigger itself?)"
                    )
                # A savepoint: whatever goes wrong with this rule's execution (even in
                # the database) fails this enforcement only, never the firing.
                with conn.begin_nested():
                    item = self._execution(rule, action, context, enforcement_id)
                    created = self.queue.insert(conn, now, [item])
                record["execution_ids"] = [e.id for e in created]
            except (ExecdError, TemplateError) as exc:
                record["status"] = "failed"
                record["error"] = exc.message if isinstance(exc, ExecdError) else str(exc)
            except (SQLAlchemyError, ValueError, TypeError) as exc:
                log.warning("rule_failed", rule=rule["ref"], error=str(exc))
                record["status"] = "failed"
                record["error"] = f"Not run: {type(exc).__name__}"
            conn.execute(
                update(enforcements)
                .where(enforcements.c.id == enforcement_id)
                .values(
                    status=record["status"],
                    error=record["error"],
                    execution_ids=record["execution_ids"],
                )
            )
            done.append(_enforcement({**record, "id": enforcement_id}))
        if any(e.execution_ids for e in done):
            self.db.notify_jobs(conn)
        return done

    def _action(self, conn: Connection, rule: Any) -> Action | None:
        action = CORE_ACTIONS.get(rule["action_ref"])
        if action is not None:
            return action
        row = (
            conn.execute(
                select(actions).where(
                    actions.c.project_id == rule["project_id"],
                    actions.c.ref == rule["action_ref"],
                )
            )
            .mappings()
            .first()
        )
        return None if row is None else to_action(row)

    def _execution(
        self, rule: Any, action: Action | None, context: dict[str, Any], enforcement_id: int
    ) -> NewExecution:
        if action is None:
            raise NotFound(f"Action {rule['action_ref']} not found")
        parameters = render_parameters(rule["parameters"], context, action)
        prepared = self.prepare(action, parameters)
        return NewExecution(
            tenant_id=rule["tenant_id"],
            project_id=rule["project_id"],
            submitted_by=f"rule:{rule['ref']}",
            enforcement_id=enforcement_id,
            rule_id=rule["id"],
            **prepared,
        )


Looked = tuple[
    event_log.Position, list[event_log.LogEvent], event_log.Position, list[tuple[Any, int]]
]


def _start_watching(conn: Connection, spec: TriggerSpec, trigger_id: int) -> None:
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
        here = event_log.tail(conn)
        conn.execute(
            update(event_cursors)
            .where(event_cursors.c.name == RULES_CURSOR)
            .values(txid=here.txid, event_id=here.id, updated=now_of(conn))
        )


def _cursor(conn: Connection) -> event_log.Position | None:
    row = conn.execute(
        select(event_cursors.c.txid, event_cursors.c.event_id).where(
            event_cursors.c.name == RULES_CURSOR
        )
    ).first()
    return None if row is None else event_log.Position(row.txid, row.event_id)


def _look(conn: Connection, limit: int) -> Looked | None:
    """The cursor, the events after it, where they end, and which of them fire which
    execution trigger (by id)."""
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
    return after, read, position, fired


def _first_fire(spec: TriggerSpec, now: float) -> float | None:
    if spec.type != domain.TIMER or not spec.enabled:
        return None
    return domain.next_fire(spec.config, now)


def _trigger_row(conn: Connection, project_id: str, ref: str) -> Any:
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


def _trigger_for_rule(conn: Connection, project_id: str, ref: str) -> Any:
    try:
        return _trigger_row(conn, project_id, ref)
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


def _shown_payload(payload: Any, template: dict[str, Any], action: Action | None) -> Any:
    """The payload as its enforcement keeps and shows it: the fields the rule maps into
    secret parameters masked (every field it maps, if its action is not known)."""
    names = None if action is None else secret_names(action.parameters)
    return mask_payload(payload, payload_paths(template, names))


def _depth_after(conn: Connection, enforcement_id: int | None) -> int:
    """The depth of a firing caused by an execution of `enforcement_id`."""
    if enforcement_id is None:
        return 1
    row = conn.execute(
        select(enforcements.c.depth).where(enforcements.c.id == enforcement_id)
    ).first()
    return 1 if row is None else int(row.depth) + 1


R = TypeVar("R")


def _record(kind: type[R], row: Any, **given: Any) -> R:
    """A dataclass from the row's columns of the same names; `given` wins."""
    names = {f.name for f in fields(kind)}  # type: ignore[arg-type]
    return kind(**({k: v for k, v in dict(row).items() if k in names} | given))


def _trigger(row: Any, has_secret: bool) -> Trigger:
    return _record(Trigger, row, has_secret=has_secret)


def _rule(row: Any, trigger_ref: str) -> Rule:
    return _record(Rule, row, trigger_ref=trigger_ref)


def _enforcement(row: Any) -> Enforcement:
    return _record(Enforcement, row, execution_ids=list(row["execution_ids"] or []))
