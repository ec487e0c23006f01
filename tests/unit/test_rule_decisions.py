"""What one rule does when its trigger fires (domain/enforcement.py), without a database."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from execd.domain.actions import SECRET_MASK, Action
from execd.domain.core_pack import CORE_ACTIONS
from execd.domain.enforcement import MAX_CHAIN, Decision, decide
from execd.domain.errors import InvalidInput
from execd.domain.rules import Rule, Trigger

ECHO = CORE_ACTIONS["core.echo"]
TRIGGER = Trigger(7, "t1", "p1", "hook", "webhook", "", {"auth": "token"}, True, None, 0.0, 0.0)


def rule(criteria: dict[str, Any] | None = None, **parameters: Any) -> Rule:
    return Rule(
        3, "t1", "p1", "notify", "", TRIGGER.id, TRIGGER.ref, criteria,
        "core.echo", parameters or {"message": "{{ payload.text }}"}, True, 0.0, 0.0,
    )  # fmt: skip


def prepare(action: Action, parameters: dict[str, Any]) -> dict[str, Any]:
    return {
        "action_id": action.id,
        "action_ref": action.ref,
        "pack": action.pack,
        "runner": action.runner,
        "entry_point": action.entry_point,
        "parameters": parameters,
    }


def fire(
    fired: Rule, payload: Any, *, depth: int = 1, action: Action | None = ECHO, ready: Any = prepare
) -> Decision | None:
    return decide(fired, TRIGGER, payload, depth=depth, action=action, prepare=ready)


def test_a_rule_whose_criteria_do_not_match_does_nothing() -> None:
    severe = rule({"field": "payload.severity", "op": "equals", "value": "high"})
    assert fire(severe, {"severity": "low", "text": "x"}) is None
    assert fire(severe, {"severity": "high", "text": "x"}) is not None


def test_the_criteria_see_the_trigger_and_the_rule() -> None:
    by_trigger = rule({"field": "trigger.type", "op": "equals", "value": "webhook"})
    by_rule = rule({"field": "rule.ref", "op": "equals", "value": "other"})
    assert fire(by_trigger, {"text": "x"}) is not None
    assert fire(by_rule, {"text": "x"}) is None


def test_a_match_makes_an_execution_with_the_template_filled_in() -> None:
    decision = fire(rule(), {"text": "disk full"})
    assert decision is not None and decision.error is None
    execution = decision.execution
    assert execution is not None
    assert execution.parameters == {"message": "disk full"}
    assert (execution.tenant_id, execution.project_id) == ("t1", "p1")
    assert execution.action_ref == "core.echo" and execution.runner == "local"
    assert execution.submitted_by == "rule:notify" and execution.rule_id == 3
    assert execution.enforcement_id is None  # the store fills it in
    assert decision.payload == {"text": "disk full"}


def test_a_chain_too_deep_runs_nothing() -> None:
    assert fire(rule(), {"text": "x"}, depth=MAX_CHAIN) is not None
    decision = fire(rule(), {"text": "x"}, depth=MAX_CHAIN + 1)
    assert decision == Decision(
        {"text": "x"},
        error=f"Not run: a chain of rules deeper than {MAX_CHAIN} (does a rule trigger itself?)",
    )


def test_a_missing_action_runs_nothing_and_masks_every_mapped_field() -> None:
    decision = fire(rule(), {"text": "x", "other": 1}, action=None)
    assert decision == Decision(
        {"text": SECRET_MASK, "other": 1}, error="Action core.echo not found"
    )


def test_a_template_naming_an_unknown_value_runs_nothing() -> None:
    decision = fire(rule(message="{{ payload.absent }}"), {"text": "x"})
    assert decision == Decision({"text": "x"}, error="Unknown template value {{ payload.absent }}")


def test_parameters_the_action_refuses_run_nothing() -> None:
    def refuse(action: Action, parameters: dict[str, Any]) -> dict[str, Any]:
        raise InvalidInput("message: 7 is not of type 'string'")

    decision = fire(rule(), {"text": 7}, ready=refuse)
    assert decision == Decision({"text": 7}, error="message: 7 is not of type 'string'")


def test_an_unexpected_error_is_named_by_its_type_and_its_text_kept_for_the_log() -> None:
    def broken(action: Action, parameters: dict[str, Any]) -> dict[str, Any]:
        raise TypeError("something inside")

    decision = fire(rule(), {"text": "x"}, ready=broken)
    assert decision == Decision(
        {"text": "x"}, error="Not run: TypeError", trouble="something inside"
    )


def test_fields_mapped_into_secret_parameters_are_masked_in_the_payload() -> None:
    schema = {"type": "object", "properties": {"message": {"type": "string", "secret": True}}}
    secretive = replace(ECHO, parameters=schema)
    decision = fire(rule(), {"text": "hunter2", "host": "web-1"}, action=secretive)
    assert decision is not None and decision.execution is not None
    assert decision.payload == {"text": SECRET_MASK, "host": "web-1"}
    assert decision.execution.parameters == {"message": "hunter2"}
