"""Flows and their runs, through the flow dialect (`/api/flows`, `/api/history`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from execd.client.errors import NotFound
from execd.client.models import Flow, FlowExecution
from execd.client.operations.base import OperationsBase, poll, segment
from execd.client.protocol import Operation, Request, operation

#: The flow dialect's spelling of a run that has ended.
FLOW_TERMINAL = ("PASSED", "FAILED", "CANCELLED")


class FlowOperations(OperationsBase):
    @operation
    def list_flows(self) -> Operation[list[Flow]]:
        """Every flow of the project, newest first."""
        flows: list[Flow] = []
        while True:
            query = {"limit": 100, "offset": len(flows)}
            body = (yield Request("GET", "/api/flows", params=query)).json()
            flows += [Flow.model_validate(f) for f in body["flows"]]
            if not body["flows"] or not body["pagination"].get("hasMore"):
                return flows

    @operation
    def get_flow(self, flow: str) -> Operation[Flow]:
        """A flow by id, or by name."""
        return (yield from self._flow(flow))

    def _flow(self, flow: str) -> Operation[Flow]:
        try:
            return Flow.model_validate(
                (yield Request("GET", f"/api/flows/{segment(flow)}")).json()["flow"]
            )
        except NotFound:
            pass
        named = [f for f in (yield from FlowOperations.list_flows.build(self)) if f.name == flow]
        if len(named) != 1:
            detail = "no flow" if not named else f"{len(named)} flows"
            raise NotFound(404, f"{detail} with id or name {flow!r}")
        return named[0]

    @operation
    def create_flow(self, definition: Mapping[str, Any]) -> Operation[Flow]:
        reply = yield Request("POST", "/api/flows", json=dict(definition))
        return Flow.model_validate(reply.json()["flow"])

    @operation
    def update_flow(self, flow_id: str, definition: Mapping[str, Any]) -> Operation[Flow]:
        reply = yield Request("PUT", f"/api/flows/{segment(flow_id)}", json=dict(definition))
        return Flow.model_validate(reply.json()["flow"])

    @operation
    def delete_flow(self, flow_id: str) -> Operation[None]:
        yield Request("DELETE", f"/api/flows/{segment(flow_id)}")

    @operation
    def run_flow(
        self,
        flow: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        device_id: str | None = None,
        priority: str | None = None,
    ) -> Operation[FlowExecution]:
        """Run a flow (by id or name); answers the run as the flow dialect shows it."""
        found = yield from self._flow(flow)
        body = {"parameters": dict(parameters or {}), "deviceId": device_id, "priority": priority}
        body = {k: v for k, v in body.items() if v is not None}
        reply = yield Request("POST", f"/api/flows/{segment(found.id)}/execute", json=body)
        return FlowExecution.model_validate(reply.json()["execution"])

    @operation
    def get_flow_execution(self, execution_id: str) -> Operation[FlowExecution]:
        reply = yield Request("GET", f"/api/history/executions/{segment(execution_id)}")
        return FlowExecution.model_validate(reply.json()["execution"])

    @operation
    def wait_flow(
        self,
        execution_id: str,
        *,
        on_progress: Callable[[FlowExecution], None] | None = None,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> Operation[FlowExecution]:
        """Like `wait`, for a flow run (PASSED, FAILED or CANCELLED)."""
        return (
            yield from poll(
                lambda: FlowOperations.get_flow_execution.build(self, execution_id),
                lambda e: e.status in FLOW_TERMINAL,
                lambda e: (e.status, orjson.dumps(e.step_summary)),
                on_progress,
                timeout,
                interval,
                f"flow execution {execution_id}",
            )
        )
