"""Pack files: checking one, and telling whether a definition is already what the server
holds (so that applying a pack twice changes nothing).

A definition is compared with the server's copy as the server would store it: every
field the API takes, with the server's defaults for those the file leaves out (so
removing a field from the file resets it), and the server's normalisations (trigger
settings filled in, `statuses` and `retry_on` sorted, an argv `entry_point` as JSON
text). A trigger's `secret` is never shown by the server, so it is not compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from execd.client.errors import ClientError

SECTIONS = ("actions", "flows", "triggers", "rules")
METADATA = ("pack", "description")
KEYS = {"actions": "ref", "flows": "name", "triggers": "ref", "rules": "ref"}
TERMINAL_STATUSES = ["abandoned", "cancelled", "completed", "failed", "timeout"]

#: What the server stores for what a definition leaves out (docs/actions.md, rules.md, flows.md).
DEFAULT_RETRY: dict[str, Any] = {
    "max_attempts": 3,
    "retry_on": ["lost"],
    "delay": 1.0,
    "backoff": 2.0,
    "max_delay": 300.0,
}
ACTION: dict[str, Any] = {
    "entry_point": "",
    "parameters": {"type": "object", "properties": {}},
    "timeout": None,
    "enabled": True,
    "description": "",
    "network": True,
    "limits": {},
}
TRIGGER: dict[str, Any] = {"description": "", "enabled": True, "config": {}}
RULE: dict[str, Any] = {"description": "", "criteria": None, "parameters": {}, "enabled": True}
FLOW: dict[str, Any] = {"description": "", "parameters": {}}
STEP: dict[str, Any] = {
    "name": None,
    "action": None,
    "flowId": None,
    "parameters": {},
    "timeout": None,
    "continueOnFailure": False,
}


class PackError(ClientError):
    """A pack file that cannot be applied as it is (nothing was sent)."""


def check(document: Any) -> dict[str, list[dict[str, Any]]]:
    """The pack's sections, each a list of definitions with a name or ref, checked
    before anything is sent."""
    if not isinstance(document, Mapping):
        raise PackError("a pack is a mapping with actions, flows, triggers and rules")
    unknown = sorted(set(document) - set(SECTIONS) - set(METADATA))
    if unknown and {"ref", "runner"} <= set(document):
        raise PackError(
            "this is one action's definition, not a pack: list it under `actions:` in a "
            "pack, or create it with `execd actions create -f FILE`"
        )
    if unknown:
        raise PackError(f"unknown sections in the pack: {', '.join(map(str, unknown))}")
    sections: dict[str, list[dict[str, Any]]] = {}
    for section in SECTIONS:
        items = document.get(section) or []
        if not isinstance(items, list) or not all(isinstance(i, Mapping) for i in items):
            raise PackError(f"{section} in the pack must be a list of mappings")
        key, seen = KEYS[section], set()
        for item in items:
            name = item.get(key)
            if not isinstance(name, str) or not name:
                raise PackError(f"an entry of {section} has no {key}")
            if name in seen:
                raise PackError(f"{section}: {name!r} is defined twice")
            seen.add(name)
        sections[section] = [dict(i) for i in items]
    return sections


def wanted_action(definition: Mapping[str, Any]) -> dict[str, Any]:
    wanted = {**ACTION, **definition}
    if isinstance(wanted["entry_point"], list):
        wanted["entry_point"] = orjson.dumps(wanted["entry_point"]).decode()
    retry = {**DEFAULT_RETRY, **(definition.get("retry") or {})}
    if isinstance(retry.get("retry_on"), list):
        retry["retry_on"] = sorted(set(retry["retry_on"]))
    wanted["retry"] = retry
    wanted["limits"] = wanted["limits"] or {}
    return wanted


def wanted_trigger(definition: Mapping[str, Any]) -> dict[str, Any]:
    wanted = {**TRIGGER, **definition}
    wanted.pop("secret", None)
    config = dict(wanted.get("config") or {})
    kind = wanted.get("type")
    if kind == "webhook":
        config.setdefault("auth", "token")
    elif kind == "timer":
        config.setdefault("catch_up", "latest")
        if "cron" in config:
            config.setdefault("timezone", "UTC")
    elif kind == "execution":
        config.setdefault("action_ref", None)
        statuses = config.get("statuses")
        config["statuses"] = (
            sorted(set(statuses)) if isinstance(statuses, list) else TERMINAL_STATUSES
        )
    wanted["config"] = config
    return wanted


def wanted_rule(definition: Mapping[str, Any]) -> dict[str, Any]:
    return {**RULE, **definition}


def resolve_flow(definition: Mapping[str, Any], flow_ids: Mapping[str, str]) -> dict[str, Any]:
    """The flow as the API takes it: each step's `flow: <name>` becomes the sub-flow's
    `flowId`."""
    body = dict(definition)
    steps = []
    for step in body.get("steps") or []:
        if isinstance(step, Mapping) and "flow" in step:
            step = dict(step)
            name = step.pop("flow")
            if name not in flow_ids:
                raise PackError(f"flow {body.get('name')!r}: no flow named {name!r} for a step")
            step["flowId"] = flow_ids[name]
        steps.append(step)
    if "steps" in body:
        body["steps"] = steps
    return body


def wanted_flow(body: Mapping[str, Any]) -> dict[str, Any]:
    wanted = {**FLOW, **body}
    wanted["steps"] = [
        {**STEP, **step} if isinstance(step, Mapping) else step
        for step in wanted.get("steps") or []
    ]
    return wanted


def same(wanted: Mapping[str, Any], current: Mapping[str, Any]) -> bool:
    """Whether the server holds what is wanted: every field wanted has exactly the value
    wanted (the server's own fields, ids and times, are not compared)."""
    return all(equal(value, current.get(key)) for key, value in wanted.items())


def equal(a: Any, b: Any) -> bool:
    """JSON equality: mappings with the same keys, lists in the same order, and a boolean
    never equal to a number (1 == 1.0 still)."""
    if isinstance(a, Mapping):
        return isinstance(b, Mapping) and a.keys() == b.keys() and all(equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return (
            isinstance(b, list)
            and len(a) == len(b)
            and all(equal(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    return bool(a == b)
