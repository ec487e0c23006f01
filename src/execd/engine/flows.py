"""Flows: definitions, execution (compiling a plan), their history, and devices."""

from __future__ import annotations

import asyncio
import time
import uuid as uuidlib
from dataclasses import dataclass, replace
from typing import Any

import orjson

from execd.domain import jsonsafe
from execd.domain.access import Principal, require
from execd.domain.errors import Conflict, ExecdError, InvalidInput, NotFound
from execd.domain.executions import Execution, ExecutionFilter
from execd.domain.flows import (
    MAX_DEPTH,
    MAX_PLAN_BYTES,
    MAX_PLAN_STEPS,
    Flow,
    FlowSpec,
    find_cycle,
    flow_run,
    validate_flow,
)
from execd.domain.templates import TemplateError, parameters_used, render_parameters
from execd.domain.workers import OFFLINE, WorkerNode
from execd.engine.actions import ActionService
from execd.engine.executions import (
    DEFAULT_OPTIONS,
    ExecutionService,
    SubmitOptions,
    shown_name,
    submission,
)
from execd.store.artifacts import ArtifactStore
from execd.store.flows import FlowStore, HistoryStats
from execd.store.workers import WorkerRegistry


def flow_not_found(flow_id: str) -> NotFound:
    return NotFound(
        f"Flow with ID {flow_id} not found", code="FLOW_NOT_FOUND", title="Flow not found"
    )


def execution_not_found(execution_id: str) -> NotFound:
    return NotFound(
        f"Flow execution with ID {execution_id} not found",
        code="EXECUTION_NOT_FOUND",
        title="Flow execution not found",
    )


def _is_uuid(value: str) -> bool:
    try:
        uuidlib.UUID(value)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Device:
    id: str
    workers: list[WorkerNode]
    # The top-level execution holding the device, if it is in the caller's project.
    holder: Execution | None
    busy: bool
    waiting: int

    @property
    def online(self) -> bool:
        return bool(self.workers)


class FlowService:
    def __init__(
        self,
        store: FlowStore,
        actions: ActionService,
        executions: ExecutionService,
        registry: WorkerRegistry,
        artifacts: ArtifactStore,
        *,
        worker_alive_seconds: float,
    ) -> None:
        self.store = store
        self.actions = actions
        self.executions = executions
        self.registry = registry
        self.artifacts = artifacts
        self.worker_alive_seconds = worker_alive_seconds

    # -- definitions --------------------------------------------------------------------

    async def create(self, caller: Principal, spec: FlowSpec) -> Flow:
        require(caller, "operator")
        await self._check(caller, spec)
        return await self.store.create(
            caller.tenant_id,
            caller.project_id,
            spec,
            caller.label,
            check=lambda graph: self._check_calls(spec, None, graph),
        )

    async def update(self, caller: Principal, flow_id: str, spec: FlowSpec) -> Flow:
        require(caller, "operator")
        await self.get(caller, flow_id)
        await self._check(caller, spec)
        updated = await self.store.update(
            caller.project_id,
            flow_id,
            spec,
            check=lambda graph: self._check_calls(spec, flow_id, graph),
        )
        if updated is None:
            raise flow_not_found(flow_id)
        return updated

    async def delete(self, caller: Principal, flow_id: str) -> None:
        require(caller, "operator")
        if not _is_uuid(flow_id) or not await self.store.delete(caller.project_id, flow_id):
            raise flow_not_found(flow_id)

    async def get(self, caller: Principal, flow_id: str) -> Flow:
        flow = await self.store.get(caller.project_id, flow_id) if _is_uuid(flow_id) else None
        if flow is None:
            raise flow_not_found(flow_id)
        return flow

    async def page(self, caller: Principal, limit: int, offset: int) -> tuple[list[Flow], int]:
        return await self.store.page(caller.project_id, limit, offset)

    async def _check(self, caller: Principal, spec: FlowSpec) -> None:
        try:
            validate_flow(spec)
        except ValueError as exc:
            raise InvalidInput(str(exc), code="INVALID_FLOW") from None
        for number, step in enumerate(spec.steps, start=1):
            if step.action is not None:
                try:
                    await self.actions.get(caller, step.action)
                except NotFound:  # what the body names is missing: 404, as for a path
                    raise NotFound(
                        f"step {number}: no action {step.action} in this project",
                        code="ACTION_NOT_FOUND",
                    ) from None

    @staticmethod
    def _check_calls(spec: FlowSpec, flow_id: str | None, graph: dict[str, list[str]]) -> None:
        """Run by the store inside the transaction that saves the flow, on the call
        graph as it is then, so two concurrent changes cannot make a cycle together."""
        calls = spec.calls
        if flow_id is not None and flow_id in calls:
            raise InvalidInput(
                f"Flow {flow_id} cannot call itself (step calling flowId {flow_id})",
                code="FLOW_CYCLE",
            )
        unknown = [c for c in calls if c not in graph]
        if unknown:
            raise NotFound(
                f"No flow {unknown[0]} in this project (called by a step)", code="FLOW_NOT_FOUND"
            )
        if flow_id is not None:
            graph[flow_id] = calls
            cycle = find_cycle(flow_id, graph)
            if cycle:
                raise InvalidInput(
                    "Flows cannot call themselves, directly or through sub-flows: "
                    + " -> ".join(cycle),
                    code="FLOW_CYCLE",
                )

    # -- execution ----------------------------------------------------------------------

    async def execute(
        self,
        caller: Principal,
        flow_id: str,
        parameters: dict[str, Any] | None,
        device_id: str | None,
        options: SubmitOptions = DEFAULT_OPTIONS,
    ) -> Execution:
        require(caller, "operator")
        options.check()
        flow = await self.get(caller, flow_id)
        budget = [MAX_PLAN_STEPS]
        plan = await self._compile(caller, flow, parameters or {}, device_id, [], budget)
        if problem := jsonsafe.problem(plan, "the compiled flow"):
            raise InvalidInput(problem, code="INVALID_PARAMETERS")
        size = len(orjson.dumps(plan))
        if size > MAX_PLAN_BYTES:
            raise InvalidInput(
                f"The compiled flow is {size} bytes, more than {MAX_PLAN_BYTES}: "
                "pass less data through its parameters",
                code="PLAN_TOO_LARGE",
            )
        new = submission(caller, options, flow_run(flow.id, plan), device_id=device_id)
        return (await self.executions.submit_new(new)).execution

    async def _compile(
        self,
        caller: Principal,
        flow: Flow,
        parameters: dict[str, Any],
        device_id: str | None,
        stack: list[str],
        budget: list[int],
    ) -> dict[str, Any]:
        """The plan of one flow, its sub-flows expanded; `budget` holds how many steps
        the whole plan may still take. `secrets` lists the flow's parameters that feed
        a secret parameter of some step: they are sealed and masked like the step's."""
        if flow.id in stack or len(stack) >= MAX_DEPTH:
            raise InvalidInput(
                "Flows cannot call themselves, directly or through sub-flows: "
                + " -> ".join([*stack, flow.id]),
                code="FLOW_CYCLE",
            )
        values = {**flow.parameters, **parameters}
        context = {
            "parameters": values,
            "deviceId": device_id,
            "flowId": flow.id,
            "flowName": flow.name,
        }
        called = await self.store.get_many(caller.project_id, flow.calls)
        steps: list[dict[str, Any]] = []
        secrets: set[str] = set()
        for number, step in enumerate(flow.steps, start=1):
            where = f"flow {flow.name!r} step {number}"
            budget[0] -= 1
            if budget[0] < 0:
                raise InvalidInput(
                    f"The flow expands to more than {MAX_PLAN_STEPS} steps with its sub-flows",
                    code="PLAN_TOO_LARGE",
                )
            action = None
            try:
                if step.action is not None:
                    action = await self.actions.get(caller, step.action)
                step_parameters = render_parameters(step.parameters, context, action)
            except (ExecdError, TemplateError) as exc:
                raise InvalidInput(f"{where}: {exc}", code="INVALID_PARAMETERS") from None
            entry: dict[str, Any] = {
                "sequence": number,
                "name": step.name,
                "continueOnFailure": step.continue_on_failure,
            }
            if step.flow is not None:
                sub = called.get(step.flow)
                if sub is None:
                    raise InvalidInput(f"{where}: flow {step.flow} no longer exists")
                entry["flow"] = await self._compile(
                    caller, sub, step_parameters, device_id, [*stack, flow.id], budget
                )
                hidden = set(entry["flow"]["secrets"])
            else:
                assert action is not None
                try:
                    entry["action"] = action.ref
                    entry["run"] = self.actions.prepare(action, step_parameters, step.timeout)
                    hidden = set(entry["run"]["secrets"] or ())
                except ExecdError as exc:
                    raise InvalidInput(
                        f"{where}: {exc.message}", code="INVALID_PARAMETERS"
                    ) from None
            for name in hidden & step.parameters.keys():
                secrets |= parameters_used(step.parameters[name])
            steps.append(entry)
        return {
            "flowId": flow.id,
            "name": flow.name,
            # Steps were rendered from the values in clear; the plan keeps them sealed.
            "parameters": self.actions.sealer.seal_values(values, secrets),
            "secrets": sorted(secrets),
            "steps": steps,
        }

    # -- history ------------------------------------------------------------------------

    async def history(
        self, caller: Principal, f: ExecutionFilter, limit: int, offset: int
    ) -> tuple[list[Execution], int]:
        items, total = await self.store.executions(caller.project_id, f, limit, offset)
        return items, total or 0

    async def history_item(self, caller: Principal, execution_id: str) -> Execution:
        execution = None
        if _is_uuid(execution_id):
            execution = await self.store.execution(caller.project_id, execution_id)
        if execution is None:
            raise execution_not_found(execution_id)
        return execution

    async def cancel(self, caller: Principal, execution_id: str) -> Execution:
        """Cancel a flow execution: its running step is stopped, the rest never run."""
        require(caller, "operator")
        execution = await self.history_item(caller, execution_id)
        try:
            await self.executions.cancel(caller, execution.id)
        except Conflict as exc:
            raise Conflict(
                exc.message, code="EXECUTION_FINISHED", title="Flow execution has already ended"
            ) from None
        return await self.history_item(caller, execution_id)

    async def steps_of(
        self, executions: list[Execution], *, light: bool = False
    ) -> dict[int, list[Execution]]:
        return await self.store.steps_of([e.id for e in executions], light=light)

    async def parent_uuids(self, executions: list[Execution]) -> dict[int, str]:
        """The UUID of each SUBFLOW execution's parent, by the child's id."""
        wanted = sorted({e.parent_id for e in executions if e.parent_id is not None})
        found = await self.store.uuids(wanted)
        return {e.id: found[e.parent_id] for e in executions if e.parent_id in found}

    async def stats(self, caller: Principal, f: ExecutionFilter) -> HistoryStats:
        return await self.store.stats(caller.project_id, f)

    async def delete_execution(self, caller: Principal, execution_id: str) -> int:
        require(caller, "operator")
        if not _is_uuid(execution_id):
            raise execution_not_found(execution_id)
        removed = await self.store.delete_executions(caller.project_id, execution_uuid=execution_id)
        if not removed:
            raise execution_not_found(execution_id)
        await asyncio.to_thread(self.artifacts.remove, removed)
        return len(removed)

    async def delete_flow_history(self, caller: Principal, flow_id: str) -> int:
        """Delete every top-level execution of a flow; the number of them deleted."""
        require(caller, "operator")
        removed = await self.store.delete_executions(caller.project_id, flow_id=flow_id)
        await asyncio.to_thread(self.artifacts.remove, removed)
        return sum(1 for e in removed if e.parent_id is None)

    # -- devices ------------------------------------------------------------------------

    async def devices(self, caller: Principal) -> list[Device]:
        nodes = await self.registry.nodes(include_offline=False)
        alive_since = time.time() - self.worker_alive_seconds
        serving: dict[str, list[WorkerNode]] = {}
        for node in nodes:
            if node.state != OFFLINE and node.last_heartbeat >= alive_since:
                for device in node.devices:
                    shown = replace(node, name=shown_name(caller, node))
                    serving.setdefault(device, []).append(shown)
        held, waiting = await self.store.device_use(caller.project_id)
        # Another project's work shows as "busy", never as what it is.
        own = {d: e for d, e in held.items() if e.project_id == caller.project_id}
        names = sorted(set(serving) | set(own) | set(waiting))
        return [
            Device(
                id=name,
                workers=serving.get(name, []),
                holder=own.get(name),
                busy=name in held,
                waiting=waiting.get(name, 0),
            )
            for name in names
        ]
