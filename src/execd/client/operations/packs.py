"""`apply_pack`: actions, flows, triggers and rules from one document, applied so that
applying twice changes nothing (execd/client/packs.py checks and compares the
definitions; this sends them)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from execd.client import packs
from execd.client.errors import ClientError, NotFound
from execd.client.models import Applied, Flow
from execd.client.operations.base import V1, OperationsBase, data_of, segment
from execd.client.operations.flows import FlowOperations
from execd.client.protocol import Operation, Request, operation


class PartlyApplied(ClientError):
    """`apply_pack` stopped at a definition the server refused; `applied` is what it
    did before (webhook secrets included), `cause` the refusal."""

    def __init__(self, applied: list[Applied], cause: ClientError) -> None:
        super().__init__(cause.message)
        self.applied = applied
        self.cause = cause


def _apply(
    kind: str, base: str, definition: Mapping[str, Any], wanted: Mapping[str, Any]
) -> Operation[Applied]:
    ref = definition["ref"]
    try:
        current = data_of((yield Request("GET", f"{base}/{segment(ref)}")))
    except NotFound:
        made = data_of((yield Request("POST", base, json=dict(definition))))
        return Applied(kind=kind, ref=ref, outcome="created", secret=made.get("secret"))
    if packs.same(wanted, current):
        return Applied(kind=kind, ref=ref, outcome="unchanged")
    put = data_of((yield Request("PUT", f"{base}/{segment(ref)}", json=dict(definition))))
    return Applied(kind=kind, ref=ref, outcome="updated", secret=put.get("secret"))


def _apply_flow(definition: Mapping[str, Any], flows: dict[str, Flow]) -> Operation[Applied]:
    name = definition["name"]
    body = packs.resolve_flow(definition, {n: f.id for n, f in flows.items()})
    current = flows.get(name)
    if current is None:
        reply = yield Request("POST", "/api/flows", json=body)
        flows[name] = Flow.model_validate(reply.json()["flow"])
        return Applied(kind="flow", ref=name, outcome="created")
    if packs.same(packs.wanted_flow(body), current.model_dump(by_alias=True)):
        return Applied(kind="flow", ref=name, outcome="unchanged")
    reply = yield Request("PUT", f"/api/flows/{segment(current.id)}", json=body)
    flows[name] = Flow.model_validate(reply.json()["flow"])
    return Applied(kind="flow", ref=name, outcome="updated")


class PackOperations(OperationsBase):
    @operation
    def apply_pack(self, document: Mapping[str, Any]) -> Operation[list[Applied]]:
        """Make the project hold what `document` defines (`actions`, `flows`,
        `triggers`, `rules`: lists of definitions as the API takes them), creating what
        is missing and replacing what differs; what already matches is left alone, so
        applying twice changes nothing. Flows are matched by name, the rest by ref; a
        flow step may name a sub-flow with `flow: <name>` (defined earlier in the file
        or already there). The whole document is checked first (`PackError`); an error
        from the server stops at that definition and raises `PartlyApplied`, which
        carries what was applied before it. See docs/cli.md#pack-files."""
        sections = packs.check(document)
        applied: list[Applied] = []
        try:
            for definition in sections["actions"]:
                wanted = packs.wanted_action(definition)
                applied.append((yield from _apply("action", f"{V1}/actions", definition, wanted)))
            flows = {f.name: f for f in (yield from FlowOperations.list_flows.build(self))}
            for definition in sections["flows"]:
                applied.append((yield from _apply_flow(definition, flows)))
            for definition in sections["triggers"]:
                wanted = packs.wanted_trigger(definition)
                applied.append((yield from _apply("trigger", f"{V1}/triggers", definition, wanted)))
            for definition in sections["rules"]:
                wanted = packs.wanted_rule(definition)
                applied.append((yield from _apply("rule", f"{V1}/rules", definition, wanted)))
        except ClientError as exc:
            raise PartlyApplied(applied, exc) from exc
        return applied
