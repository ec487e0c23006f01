"""What every part of `ExecutionService` stands on: the parts of the store it uses,
finding one execution the caller may see, and storing a new one."""

from __future__ import annotations

from execd.domain.access import Principal
from execd.domain.errors import NotFound
from execd.domain.executions import MAX_ID, Execution, NewExecution
from execd.engine.actions import ActionService
from execd.engine.batching import Submissions
from execd.store.artifacts import ArtifactStore
from execd.store.executions import ExecutionQueries
from execd.store.queue import Queue, Submitted
from execd.store.workers import WorkerRegistry


class ExecutionsBase:
    def __init__(
        self,
        queue: Queue,
        queries: ExecutionQueries,
        actions: ActionService,
        registry: WorkerRegistry,
        artifacts: ArtifactStore,
    ) -> None:
        self.artifacts = artifacts
        self.queue = queue
        self.queries = queries
        self.actions = actions
        self.registry = registry
        self.submissions = Submissions(queue)
        # Executions this process stored (a replayed idempotency key is not counted), by
        # action: for metrics.
        self.submitted: dict[str, int] = {}

    async def get(self, caller: Principal, execution_id: int) -> Execution:
        execution = None
        if 0 < execution_id <= MAX_ID:
            execution = await self.queries.get(caller.project_id, execution_id)
        if execution is None:
            raise NotFound(f"Execution with ID {execution_id} not found", id=execution_id)
        return execution

    async def get_by_uuid(self, caller: Principal, execution_uuid: str) -> Execution:
        execution = await self.queries.get_by_uuid(caller.project_id, execution_uuid)
        if execution is None:
            raise NotFound(f"Execution {execution_uuid} not found", id=execution_uuid)
        return execution

    async def submit_new(self, new: NewExecution) -> Submitted:
        """Store a prepared execution (group-committed with concurrent submissions)."""
        submitted = await self.submissions.submit(new)
        self._count(submitted)
        return submitted

    def _count(self, submitted: Submitted) -> None:
        if not submitted.replayed:
            ref = submitted.execution.action_ref
            self.submitted[ref] = self.submitted.get(ref, 0) + 1

    async def drain(self) -> None:
        await self.submissions.drain()
