"""Controlling executions: cancel them, retry them, delete them."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from typing import Any

from execd.domain.access import Principal, require
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import MAX_ID, Execution
from execd.domain.retries import retry_of, retryable
from execd.domain.states import TERMINAL, Priority
from execd.engine.executions.base import ExecutionsBase


class Control(ExecutionsBase):
    async def cancel(
        self,
        caller: Principal,
        execution_id: int,
        *,
        reason: str | None = None,
        force: bool = False,
        discard: bool = False,
    ) -> Execution:
        """Idempotent while cancelling; a Conflict once the execution has ended."""
        require(caller, "operator")
        execution = None
        if 0 < execution_id <= MAX_ID:
            request = {"force": force, "discard": discard} if force or discard else None
            execution = await self.queue.cancel(caller.project_id, execution_id, reason, request)
        if execution is None:
            raise NotFound(f"Execution with ID {execution_id} not found", id=execution_id)
        return execution

    async def cancel_many(
        self, caller: Principal, ids: list[int], reason: str | None = None
    ) -> dict[int, tuple[str, Execution | None]]:
        """Cancel each: ("cancelled" | "canceling" | "not_found" | "finished", it)."""
        require(caller, "operator")
        results: dict[int, tuple[str, Execution | None]] = {}
        for execution_id in ids:
            try:
                execution = await self.cancel(caller, execution_id, reason=reason)
            except NotFound:
                results[execution_id] = ("not_found", None)
            except Conflict:
                results[execution_id] = ("finished", None)
            else:
                results[execution_id] = (execution.status.value, execution)
        return results

    async def retry(
        self,
        caller: Principal,
        execution_id: int,
        parameters: dict[str, Any] | None = None,
        priority: Priority | None = None,
    ) -> Execution:
        """A new execution of what `execution_id` ran, linked to it (`retry_of`), with
        `parameters` merged over its own (validated again). Only once it has ended."""
        require(caller, "operator")
        old = await self.get(caller, execution_id)
        if not retryable(old, TERMINAL):
            raise Conflict(
                f"Execution {execution_id} is {old.status.value}; only an execution that "
                "has ended can be retried",
                status=old.status.value,
            )
        if old.sequence is not None:
            raise Conflict(
                f"Execution {execution_id} is a step of flow execution {old.parent_id}; "
                "retry the flow",
                status=old.status.value,
            )
        values = old.parameters
        if parameters:
            if old.flow_id is not None:
                raise InvalidInput("A flow execution is retried with its own parameters")
            # Validated again as a whole, so the old secret values are opened for it.
            sealer = self.actions.sealer
            values = {**sealer.open_values(old.parameters, old.secrets), **parameters}
            if old.action_id is not None or old.action_ref in CORE_ACTIONS:
                action = await self.actions.get(caller, old.action_ref)
                values = await asyncio.to_thread(self.actions.validate_parameters, action, values)
            values = sealer.seal_values(values, old.secrets)
        new = replace(
            retry_of(old, parameters=values, submitted_by=caller.label),
            priority=priority if priority is not None else old.priority,
        )
        return (await self.submit_new(new)).execution

    async def delete_many(self, caller: Principal, ids: list[int]) -> dict[int, str]:
        """Delete each (with everything below it) if it has ended: "deleted",
        "not_found" or "not_finished". Logs and artifacts go too."""
        require(caller, "operator")
        results, removed = await self.queries.delete(caller.project_id, ids)
        await asyncio.to_thread(self.artifacts.remove, removed)
        return results
