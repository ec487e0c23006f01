"""Actions: what an execution runs."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execd.client.models import Action
from execd.client.operations.base import V1, OperationsBase, data_of, segment
from execd.client.protocol import Operation, Request, operation, params


class ActionOperations(OperationsBase):
    @operation
    def list_actions(self, pack: str | None = None) -> Operation[list[Action]]:
        """The project's actions, built-ins included."""
        reply = yield Request("GET", f"{V1}/actions", params=params(pack=pack))
        return [Action.model_validate(a) for a in data_of(reply)]

    @operation
    def get_action(self, ref: str) -> Operation[Action]:
        reply = yield Request("GET", f"{V1}/actions/{segment(ref)}")
        return Action.model_validate(data_of(reply))

    @operation
    def create_action(self, definition: Mapping[str, Any]) -> Operation[Action]:
        """Define an action (see docs/actions.md); `Conflict` if the ref exists."""
        reply = yield Request("POST", f"{V1}/actions", json=dict(definition))
        return Action.model_validate(data_of(reply))

    @operation
    def update_action(self, ref: str, definition: Mapping[str, Any]) -> Operation[Action]:
        reply = yield Request("PUT", f"{V1}/actions/{segment(ref)}", json=dict(definition))
        return Action.model_validate(data_of(reply))

    @operation
    def enable_action(self, ref: str, enabled: bool = True) -> Operation[Action]:
        """Enable or disable an action (a disabled one cannot be executed)."""
        body = {"enabled": enabled}
        reply = yield Request("PATCH", f"{V1}/actions/{segment(ref)}", json=body)
        return Action.model_validate(data_of(reply))

    @operation
    def delete_action(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/actions/{segment(ref)}")
