"""Triggers, the rules they fire, and the enforcements that record each firing."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execd.client.models import Enforcement, Page, Pagination, Rule, Trigger
from execd.client.operations.base import V1, OperationsBase, data_of, segment
from execd.client.protocol import Operation, Request, operation, params


class RuleOperations(OperationsBase):
    @operation
    def list_triggers(self) -> Operation[list[Trigger]]:
        reply = yield Request("GET", f"{V1}/triggers")
        return [Trigger.model_validate(t) for t in data_of(reply)]

    @operation
    def get_trigger(self, ref: str) -> Operation[Trigger]:
        reply = yield Request("GET", f"{V1}/triggers/{segment(ref)}")
        return Trigger.model_validate(data_of(reply))

    @operation
    def create_trigger(self, definition: Mapping[str, Any]) -> Operation[Trigger]:
        """A webhook, timer or execution trigger (see docs/rules.md). A webhook's HMAC
        secret is in this answer only."""
        reply = yield Request("POST", f"{V1}/triggers", json=dict(definition))
        return Trigger.model_validate(data_of(reply))

    @operation
    def update_trigger(self, ref: str, definition: Mapping[str, Any]) -> Operation[Trigger]:
        reply = yield Request("PUT", f"{V1}/triggers/{segment(ref)}", json=dict(definition))
        return Trigger.model_validate(data_of(reply))

    @operation
    def enable_trigger(self, ref: str, enabled: bool = True) -> Operation[Trigger]:
        """Enable or disable a trigger: a disabled one fires no rule."""
        body = {"enabled": enabled}
        reply = yield Request("PATCH", f"{V1}/triggers/{segment(ref)}", json=body)
        return Trigger.model_validate(data_of(reply))

    @operation
    def delete_trigger(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/triggers/{segment(ref)}")

    @operation
    def list_rules(
        self,
        *,
        trigger: str | None = None,
        action_ref: str | None = None,
        enabled: bool | None = None,
    ) -> Operation[list[Rule]]:
        """Every rule of the project (all pages), by ref."""
        rules: list[Rule] = []
        page = 1
        while True:
            query = params(
                trigger=trigger, action_ref=action_ref, enabled=enabled, page=page, per_page=100
            )
            body = (yield Request("GET", f"{V1}/rules", params=query)).json()
            rules += [Rule.model_validate(r) for r in body["data"]]
            if page >= (body["pagination"].get("total_pages") or 0):
                return rules
            page += 1

    @operation
    def get_rule(self, ref: str) -> Operation[Rule]:
        reply = yield Request("GET", f"{V1}/rules/{segment(ref)}")
        return Rule.model_validate(data_of(reply))

    @operation
    def create_rule(self, definition: Mapping[str, Any]) -> Operation[Rule]:
        reply = yield Request("POST", f"{V1}/rules", json=dict(definition))
        return Rule.model_validate(data_of(reply))

    @operation
    def update_rule(self, ref: str, definition: Mapping[str, Any]) -> Operation[Rule]:
        reply = yield Request("PUT", f"{V1}/rules/{segment(ref)}", json=dict(definition))
        return Rule.model_validate(data_of(reply))

    @operation
    def enable_rule(self, ref: str, enabled: bool = True) -> Operation[Rule]:
        reply = yield Request("PATCH", f"{V1}/rules/{segment(ref)}", json={"enabled": enabled})
        return Rule.model_validate(data_of(reply))

    @operation
    def delete_rule(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/rules/{segment(ref)}")

    @operation
    def list_enforcements(
        self,
        *,
        rule: str | None = None,
        status: str | None = None,
        page: int = 1,
        per_page: int = 20,
    ) -> Operation[Page[Enforcement]]:
        """One page of rule firings, newest first."""
        query = params(rule=rule, status=status, page=page, per_page=per_page)
        body = (yield Request("GET", f"{V1}/enforcements", params=query)).json()
        return Page[Enforcement](
            items=[Enforcement.model_validate(e) for e in body["data"]],
            pagination=Pagination.model_validate(body["pagination"]),
        )

    @operation
    def get_enforcement(self, enforcement_id: int) -> Operation[Enforcement]:
        """One rule firing: its trigger's payload, outcome and executions."""
        reply = yield Request("GET", f"{V1}/enforcements/{int(enforcement_id)}")
        return Enforcement.model_validate(data_of(reply))

    @operation
    def fire_webhook(self, ref: str, payload: Any = None) -> Operation[dict[str, Any]]:
        """Call a webhook trigger with the token; answers the enforcements it made."""
        reply = yield Request("POST", f"{V1}/webhooks/{segment(ref)}", json=payload)
        fired: dict[str, Any] = data_of(reply)
        return fired
