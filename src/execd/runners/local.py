"""Built-in actions that run inside the worker: no process, no directories."""

from __future__ import annotations

from execd.domain.executions import Execution, Outcome
from execd.domain.states import Status
from execd.runners.base import RunContext


class LocalRunner:
    """Its actions end at once and touch nothing outside, so a worker may run them
    inside the transaction that claims them (`settle`)."""

    async def run(self, ctx: RunContext) -> Outcome:
        return self.settle(ctx.execution)

    def settle(self, execution: Execution) -> Outcome:
        entry = execution.entry_point
        if entry == "noop":
            return Outcome(Status.COMPLETED, result=None)
        if entry == "echo":
            message = execution.parameters.get("message", "")
            return Outcome(Status.COMPLETED, result={"message": message})
        return Outcome(Status.FAILED, error=f"unknown built-in entry point {entry!r}")

    async def close(self) -> None:
        return None
