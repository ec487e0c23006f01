"""The server: its health, its workers, the project's queue and the tenant's view of it all."""

from __future__ import annotations

from typing import Any

from execd.client.models import Queue, Worker
from execd.client.operations.base import V1, OperationsBase, data_of
from execd.client.protocol import Operation, Request, operation


class SystemOperations(OperationsBase):
    @operation
    def health(self) -> Operation[dict[str, Any]]:
        """`/healthz`: whether the server and its database answer (no token needed)."""
        reply = yield Request("GET", "/healthz")
        body: dict[str, Any] = reply.json()
        return body

    @operation
    def workers(self) -> Operation[list[Worker]]:
        """The worker nodes, live and recently gone."""
        reply = yield Request("GET", f"{V1}/workers")
        return [Worker.model_validate(w) for w in data_of(reply)]

    @operation
    def queue(self) -> Operation[Queue]:
        """What waits for a worker in this project, in queue order, and the capacity."""
        scope = yield from self._scope()
        return Queue.model_validate((yield Request("GET", f"{scope}/execution/queue")).json())

    @operation
    def system_status(self) -> Operation[dict[str, Any]]:
        """The tenant's view of the system: workers, queue statistics, health."""
        me = yield from OperationsBase.me.build(self)
        reply = yield Request("GET", f"/api/{me.tenant_id}/execution/system/status")
        status: dict[str, Any] = reply.json()
        return status
