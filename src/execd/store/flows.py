"""Flow definitions per project, and the history of their executions: lists, details,
statistics and deletion, all computed in the database."""

from __future__ import annotations

import uuid as uuidlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from sqlalchemy import (
    Connection,
    case,
    delete,
    func,
    insert,
    select,
    update,
)

from execd.domain.errors import Conflict
from execd.domain.executions import Execution, ExecutionFilter, Kind
from execd.domain.flows import Flow, FlowSpec, FlowStep
from execd.domain.states import TERMINAL, Status
from execd.store.clock import now_of
from execd.store.database import Database, exclusive
from execd.store.executions import delete_rows, with_descendants
from execd.store.filters import conditions
from execd.store.rows import to_execution
from execd.store.schema import DEVICE_HELD, FLOW_ROWS, executions, flows

ex = executions
GraphCheck = Callable[[dict[str, list[str]]], None]


def _steps_json(steps: Sequence[FlowStep]) -> list[dict[str, Any]]:
    return [
        {
            "name": s.name,
            "action": s.action,
            "flow": s.flow,
            "parameters": s.parameters,
            "timeout": s.timeout,
            "continueOnFailure": s.continue_on_failure,
        }
        for s in steps
    ]


def _to_flow(row: Any) -> Flow:
    steps = [
        FlowStep(
            name=s.get("name"),
            action=s.get("action"),
            flow=s.get("flow"),
            parameters=s.get("parameters") or {},
            timeout=s.get("timeout"),
            continue_on_failure=bool(s.get("continueOnFailure")),
        )
        for s in row.steps
    ]
    return Flow(
        id=row.id,
        tenant_id=row.tenant_id,
        project_id=row.project_id,
        name=row.name,
        description=row.description,
        parameters=row.parameters,
        steps=steps,
        created=row.created,
        updated=row.updated,
        created_by=row.created_by,
    )


@dataclass(frozen=True)
class HistoryStats:
    total: int
    by_status: dict[Status, int]
    average_seconds: float | None


class FlowStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- definitions --------------------------------------------------------------------

    async def create(
        self,
        tenant_id: str,
        project_id: str,
        spec: FlowSpec,
        created_by: str | None,
        *,
        check: GraphCheck | None = None,
    ) -> Flow:
        def create(conn: Connection) -> Flow:
            self._checked(conn, project_id, check)
            _name_free(conn, project_id, spec.name, None)
            now = now_of(conn)
            values = {
                "id": str(uuidlib.uuid4()),
                "tenant_id": tenant_id,
                "project_id": project_id,
                "name": spec.name,
                "description": spec.description,
                "parameters": spec.parameters,
                "steps": _steps_json(spec.steps),
                "calls": spec.calls,
                "created": now,
                "updated": now,
                "created_by": created_by,
            }
            row = conn.execute(insert(flows).values(values).returning(*flows.c)).one()
            return _to_flow(row)

        return await self.db.write(create)

    async def update(
        self, project_id: str, flow_id: str, spec: FlowSpec, *, check: GraphCheck | None = None
    ) -> Flow | None:
        def change(conn: Connection) -> Flow | None:
            self._checked(conn, project_id, check)
            _name_free(conn, project_id, spec.name, flow_id)
            statement = (
                update(flows)
                .where(flows.c.id == flow_id, flows.c.project_id == project_id)
                .values(
                    name=spec.name,
                    description=spec.description,
                    parameters=spec.parameters,
                    steps=_steps_json(spec.steps),
                    calls=spec.calls,
                    updated=now_of(conn),
                )
                .returning(*flows.c)
            )
            row = conn.execute(statement).first()
            return _to_flow(row) if row else None

        return await self.db.write(change)

    async def delete(self, project_id: str, flow_id: str) -> bool:
        """Delete a flow no other flow calls (Conflict otherwise)."""

        def remove(conn: Connection) -> bool:
            self._checked(conn, project_id, None)
            callers = [
                f.name
                for f in self._all(conn, project_id)
                if flow_id in f.calls and f.id != flow_id
            ]
            if callers:
                raise Conflict(
                    f"Flow {flow_id} is called by {', '.join(sorted(callers))}; "
                    "change those flows first",
                    code="FLOW_IN_USE",
                    title="Flow is in use",
                )
            statement = delete(flows).where(flows.c.id == flow_id, flows.c.project_id == project_id)
            return bool(conn.execute(statement).rowcount)

        return await self.db.write(remove)

    async def get(self, project_id: str, flow_id: str) -> Flow | None:
        query = select(flows).where(flows.c.id == flow_id, flows.c.project_id == project_id)
        row = await self.db.read(lambda conn: conn.execute(query).first())
        return _to_flow(row) if row else None

    async def get_many(self, project_id: str, flow_ids: Sequence[str]) -> dict[str, Flow]:
        if not flow_ids:
            return {}
        query = select(flows).where(flows.c.project_id == project_id, flows.c.id.in_(flow_ids))
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return {row.id: _to_flow(row) for row in rows}

    async def page(self, project_id: str, limit: int, offset: int) -> tuple[list[Flow], int]:
        def read(conn: Connection) -> tuple[list[Flow], int]:
            where = flows.c.project_id == project_id
            total = conn.execute(select(func.count()).select_from(flows).where(where)).scalar()
            rows = conn.execute(
                select(flows)
                .where(where)
                .order_by(flows.c.created.desc(), flows.c.id)
                .limit(limit)
                .offset(offset)
            ).all()
            return [_to_flow(r) for r in rows], int(total or 0)

        return await self.db.read(read)

    def _checked(self, conn: Connection, project_id: str, check: GraphCheck | None) -> None:
        """Serialise changes to one project's flows (PostgreSQL; SQLite has one writer)
        and run `check` on the call graph as this transaction sees it."""
        exclusive(conn, f"execd-flows:{project_id}")
        if check is not None:
            rows = conn.execute(
                select(flows.c.id, flows.c.calls).where(flows.c.project_id == project_id)
            )
            check({row.id: list(row.calls) for row in rows})

    def _all(self, conn: Connection, project_id: str) -> list[Flow]:
        rows = conn.execute(select(flows).where(flows.c.project_id == project_id)).all()
        return [_to_flow(r) for r in rows]

    # -- history ------------------------------------------------------------------------

    async def executions(
        self, project_id: str, f: ExecutionFilter, limit: int, offset: int, *, count: bool = True
    ) -> tuple[list[Execution], int | None]:
        where = conditions(project_id, replace(f, only=Kind.FLOW_RUNS))

        def read(conn: Connection) -> tuple[list[Execution], int | None]:
            rows = conn.execute(
                select(ex).where(*where).order_by(ex.c.id.desc()).limit(limit).offset(offset)
            ).mappings()
            items = [to_execution(r) for r in rows]
            total = None
            if count:
                total = conn.execute(select(func.count()).select_from(ex).where(*where)).scalar()
            return items, None if total is None else int(total)

        return await self.db.read(read)

    async def execution(self, project_id: str, execution_uuid: str) -> Execution | None:
        query = select(ex).where(
            ex.c.uuid == execution_uuid, ex.c.project_id == project_id, FLOW_ROWS
        )
        row = await self.db.read(lambda conn: conn.execute(query).mappings().first())
        return to_execution(row) if row else None

    async def steps_of(
        self, parent_ids: Sequence[int], *, light: bool = False
    ) -> dict[int, list[Execution]]:
        """The step executions of each flow execution, oldest first; without their
        payloads (a sub-flow's plan; with `light`, results and errors too)."""
        if not parent_ids:
            return {}
        columns = _LIGHT_STEP if light else _STEP
        query = select(*columns).where(ex.c.parent_id.in_(parent_ids)).order_by(ex.c.id)
        rows = await self.db.read(lambda conn: list(conn.execute(query).mappings()))
        found: dict[int, list[Execution]] = {i: [] for i in parent_ids}
        for row in rows:
            step = to_execution(row)
            assert step.parent_id is not None
            found[step.parent_id].append(step)
        return found

    async def uuids(self, ids: Sequence[int]) -> dict[int, str]:
        if not ids:
            return {}
        query = select(ex.c.id, ex.c.uuid).where(ex.c.id.in_(ids))
        rows = await self.db.read(lambda conn: conn.execute(query).all())
        return {row.id: row.uuid for row in rows}

    async def stats(self, project_id: str, f: ExecutionFilter) -> HistoryStats:
        where = conditions(project_id, replace(f, only=Kind.FLOW_RUNS))
        # Everything this dialect counts as completed (PASSED or FAILED).
        finished = ex.c.status.in_(
            [Status.COMPLETED, Status.FAILED, Status.TIMEOUT, Status.ABANDONED]
        )
        run_time = case(
            (
                finished & ex.c.started.is_not(None) & ex.c.ended.is_not(None),
                ex.c.ended - ex.c.started,
            )
        )

        def read(conn: Connection) -> HistoryStats:
            rows = conn.execute(
                select(ex.c.status, func.count(), func.sum(run_time), func.count(run_time))
                .where(*where)
                .group_by(ex.c.status)
            ).all()
            by_status = {Status(r[0]): int(r[1]) for r in rows}
            seconds = sum(float(r[2] or 0) for r in rows)
            timed = sum(int(r[3] or 0) for r in rows)
            return HistoryStats(
                total=sum(by_status.values()),
                by_status=by_status,
                average_seconds=seconds / timed if timed else None,
            )

        return await self.db.read(read)

    async def device_use(self, project_id: str) -> tuple[dict[str, Execution], dict[str, int]]:
        """Which execution holds each device (any project), and how many of this
        project's top-level executions wait for each."""

        def read(conn: Connection) -> tuple[dict[str, Execution], dict[str, int]]:
            rows = conn.execute(select(ex).where(DEVICE_HELD)).mappings()
            held = {r["device_id"]: to_execution(r) for r in rows}
            waiting = conn.execute(
                select(ex.c.device_id, func.count())
                .where(
                    ex.c.project_id == project_id,
                    ex.c.status.in_([Status.REQUESTED, Status.SCHEDULING]),
                    ex.c.device_id.is_not(None),
                    ex.c.parent_id.is_(None),
                )
                .group_by(ex.c.device_id)
            ).all()
            return held, {r[0]: int(r[1]) for r in waiting}

        return await self.db.read(read)

    async def delete_executions(
        self, project_id: str, *, execution_uuid: str | None = None, flow_id: str | None = None
    ) -> list[Execution]:
        """Delete top-level flow executions (one by uuid, or all of a flow) with every
        execution below them and their events. Nothing is deleted if any of them is
        still unfinished (Conflict). Returns every execution removed."""

        def remove(conn: Connection) -> list[Execution]:
            top = select(ex).where(ex.c.project_id == project_id, FLOW_ROWS)
            if execution_uuid is not None:
                top = top.where(ex.c.uuid == execution_uuid)
            else:
                top = top.where(ex.c.flow_id == flow_id, ex.c.parent_id.is_(None))
            roots = [to_execution(r) for r in conn.execute(top.with_for_update()).mappings()]
            if execution_uuid is not None and roots and roots[0].parent_id is not None:
                parent = conn.execute(
                    select(ex.c.uuid).where(ex.c.id == roots[0].parent_id)
                ).scalar_one()  # the flow API names executions by uuid only
                raise Conflict(
                    f"Execution {execution_uuid} is a sub-flow of execution {parent}; "
                    "delete that execution instead",
                    code="EXECUTION_IS_SUBFLOW",
                    title="Cannot delete a sub-flow execution on its own",
                )
            tree = with_descendants(conn, roots)
            unfinished = [e for e in tree if e.status not in TERMINAL]
            if unfinished:
                raise Conflict(
                    f"{len(unfinished)} execution(s) are still unfinished "
                    f"(for example {unfinished[0].uuid}, {unfinished[0].status.value}); "
                    "cancel them or wait until they end",
                    code="EXECUTION_RUNNING",
                    title="Execution is still running",
                )
            delete_rows(conn, [e.id for e in tree])
            return tree

        return await self.db.write(remove)


_STEP = [c for c in ex.c if c.name != "plan"]
_LIGHT_STEP = [c for c in _STEP if c.name not in ("result", "error", "progress", "usage")]


def _name_free(conn: Connection, project_id: str, name: str, flow_id: str | None) -> None:
    """A flow's name is unique in its project, as actions' and rules' refs are, so that
    a flow is found by name (the CLI, packs, sub-flow steps by name). Run inside the
    serialised change (`_checked`). A flow keeping its name is not held to it (flows
    made before names were unique may share one)."""
    same = select(flows.c.id, flows.c.name).where(
        flows.c.project_id == project_id, flows.c.name == name
    )
    rows = conn.execute(same).all()
    if flow_id is not None and any(r.id == flow_id for r in rows):
        return
    if rows:
        raise Conflict(
            f"A flow named {name!r} exists already (id {rows[0].id})", code="FLOW_EXISTS"
        )
