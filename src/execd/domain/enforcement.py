"""What one rule does when its trigger fires, decided without I/O.

The store applies a decision in the firing's transaction: it records the enforcement,
inserts the execution (if any) in a savepoint of its own, and records the outcome.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from execd.domain.actions import Action, secret_names
from execd.domain.criteria import matches
from execd.domain.errors import ExecdError
from execd.domain.executions import NewExecution, new_execution
from execd.domain.rules import Rule, Trigger
from execd.domain.secret_values import mask_payload, payload_paths
from execd.domain.templates import TemplateError, render_parameters

# A chain of rules (an execution trigger whose rule runs an action that fires another
# execution trigger ...) stops at this depth: a rule that re-runs its own action must
# not loop for ever.
MAX_CHAIN = 10
TOO_DEEP = f"Not run: a chain of rules deeper than {MAX_CHAIN} (does a rule trigger itself?)"

# What a rule's execution is validated and filled in with: ActionService.prepare.
Prepare = Callable[[Action, dict[str, Any]], dict[str, Any]]

# Refusals an enforcement explains in their own words; any other error is named only
# by its type there, and its text goes to the log.
EXPECTED = (ExecdError, TemplateError)


@dataclass(frozen=True)
class Decision:
    """The enforcement of a rule that matched: its payload as kept and shown, and
    either the execution to create (its enforcement id left for the store to fill
    in) or the error that says why none is."""

    payload: Any
    execution: NewExecution | None = None
    error: str | None = None
    trouble: str | None = None  # the text of an unexpected error, for the log


def decide(
    rule: Rule,
    trigger: Trigger,
    payload: Any,
    *,
    depth: int,
    action: Action | None,
    prepare: Prepare,
) -> Decision | None:
    """What `rule` does for `payload` fired by `trigger` at chain `depth` (None: its
    criteria do not match). `action` is the rule's action, None if it is not found."""
    context = {
        "payload": payload,
        "trigger": {"ref": trigger.ref, "type": trigger.type},
        "rule": {"ref": rule.ref},
    }
    if not matches(rule.criteria, context):
        return None
    shown = _shown_payload(payload, rule.parameters, action)
    if depth > MAX_CHAIN:
        return Decision(shown, error=TOO_DEEP)
    if action is None:
        return Decision(shown, error=f"Action {rule.action_ref} not found")
    try:
        parameters = render_parameters(rule.parameters, context, action)
        execution = new_execution(
            rule.tenant_id,
            rule.project_id,
            prepare(action, parameters),
            submitted_by=f"rule:{rule.ref}",
            rule_id=rule.id,
        )
    except (*EXPECTED, ValueError, TypeError) as exc:
        trouble = None if isinstance(exc, EXPECTED) else str(exc)
        return Decision(shown, error=not_run(exc), trouble=trouble)
    return Decision(shown, execution=execution)


def not_run(exc: Exception) -> str:
    """What an enforcement records of the error that kept it from creating its
    execution."""
    if isinstance(exc, ExecdError):
        return exc.message
    if isinstance(exc, TemplateError):
        return str(exc)
    return f"Not run: {type(exc).__name__}"


def _shown_payload(payload: Any, template: dict[str, Any], action: Action | None) -> Any:
    """The payload as its enforcement keeps and shows it: the fields the rule maps into
    secret parameters masked (every field it maps, if its action is not known)."""
    names = None if action is None else secret_names(action.parameters)
    return mask_payload(payload, payload_paths(template, names))
