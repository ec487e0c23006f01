"""Actions: define them, find them (the built-in ones included), and prepare what an
execution of one runs."""

from __future__ import annotations

from typing import Any

from execd.domain.access import Principal, require
from execd.domain.actions import (
    BUILTIN_PACK,
    Action,
    ActionSpec,
    ParameterValidator,
    secret_names,
    validate_spec,
)
from execd.domain.core_pack import CORE_ACTIONS, CORE_BY_UUID
from execd.domain.errors import Conflict, InvalidInput, NotFound
from execd.domain.executions import Execution
from execd.engine.sealing import Sealer
from execd.store.catalog import Catalog


class ActionService:
    def __init__(self, catalog: Catalog, sealer: Sealer) -> None:
        self.catalog = catalog
        self.sealer = sealer  # secret parameter values are sealed here, once validated
        self._validators: dict[tuple[str, float | None], ParameterValidator] = {}

    async def get(self, caller: Principal, ref: str) -> Action:
        if ref in CORE_ACTIONS:
            return CORE_ACTIONS[ref]
        action = await self.catalog.by_ref(caller.project_id, ref)
        if action is None:
            raise NotFound(f"Action {ref} not found", ref=ref)
        return action

    async def get_by_uuid(self, caller: Principal, action_uuid: str) -> Action:
        if action_uuid in CORE_BY_UUID:
            return CORE_BY_UUID[action_uuid]
        action = await self.catalog.by_uuid(caller.project_id, action_uuid)
        if action is None:
            raise NotFound(f"Action {action_uuid} not found", action_id=action_uuid)
        return action

    async def available(self, caller: Principal, pack: str | None = None) -> list[Action]:
        builtin = [a for a in CORE_ACTIONS.values() if pack in (None, BUILTIN_PACK)]
        stored = (
            [] if pack == BUILTIN_PACK else await self.catalog.in_project(caller.project_id, pack)
        )
        return builtin + stored

    async def packs(self, caller: Principal) -> dict[str, int]:
        return {BUILTIN_PACK: len(CORE_ACTIONS), **await self.catalog.packs(caller.project_id)}

    async def create(self, caller: Principal, spec: ActionSpec) -> Action:
        require(caller, "operator")
        _validate(spec)
        return await self.catalog.create(caller.tenant_id, caller.project_id, spec, caller.label)

    async def update(self, caller: Principal, current: Action, spec: ActionSpec) -> Action:
        require(caller, "operator")
        if current.id is None:
            raise Conflict(f"Built-in action {current.ref} cannot be changed")
        _validate(spec)
        updated = await self.catalog.update(caller.project_id, current.id, spec)
        if updated is None:
            raise NotFound(f"Action {current.ref} not found", ref=current.ref)
        return updated

    async def set_enabled(self, caller: Principal, current: Action, enabled: bool) -> Action:
        require(caller, "operator")
        if current.id is None:
            raise Conflict(f"Built-in action {current.ref} cannot be changed")
        updated = await self.catalog.set_enabled(caller.project_id, current.id, enabled)
        if updated is None:
            raise NotFound(f"Action {current.ref} not found", ref=current.ref)
        return updated

    async def delete(self, caller: Principal, current: Action) -> None:
        require(caller, "operator")
        if current.id is None:
            raise Conflict(f"Built-in action {current.ref} cannot be deleted")
        if not await self.catalog.delete(caller.project_id, current.id):
            raise NotFound(f"Action {current.ref} not found", ref=current.ref)

    async def uuids_of(self, caller: Principal, executions: list[Execution]) -> dict[int, str]:
        """The UUID of the action each execution ran, by execution id (a flow's id for
        flow executions; nothing for an action deleted since)."""
        stored = await self.catalog.uuids(
            caller.project_id, sorted({e.action_id for e in executions if e.action_id})
        )
        found: dict[int, str] = {}
        for e in executions:
            if e.action_id is not None and e.action_id in stored:
                found[e.id] = stored[e.action_id]
            elif e.action_id is None and e.action_ref in CORE_ACTIONS:
                found[e.id] = CORE_ACTIONS[e.action_ref].uuid
            elif e.flow_id is not None:
                found[e.id] = e.flow_id
        return found

    def prepare(
        self, action: Action, parameters: dict[str, Any] | None, timeout: float | None = None
    ) -> dict[str, Any]:
        """What an execution of `action` runs: its validated parameters (secret ones
        sealed) and the action's settings, copied so that editing the action later
        changes nothing accepted."""
        if not action.enabled:
            raise Conflict(f"Action {action.ref} is disabled", ref=action.ref)
        secrets = sorted(secret_names(action.parameters)) or None
        validated = self.validate_parameters(action, parameters or {})
        return {
            "action_id": action.id,
            "action_ref": action.ref,
            "pack": action.pack,
            "runner": action.runner,
            "entry_point": action.entry_point,
            "parameters": self.sealer.seal_values(validated, secrets),
            "timeout": timeout if timeout is not None else action.timeout,
            "max_attempts": action.retry.max_attempts,
            "retry_policy": action.retry.to_json(),
            "secrets": secrets,
            "sandbox": action.sandbox.to_json(),
        }

    def validate_parameters(self, action: Action, parameters: dict[str, Any]) -> dict[str, Any]:
        key = (action.uuid or action.ref, action.updated)
        try:
            validator = self._validators.get(key)
            if validator is None:
                if len(self._validators) > 1000:
                    self._validators.clear()
                # Refuses a schema stored before its patterns were checked as they are now.
                validator = self._validators[key] = ParameterValidator(action.parameters)
            return validator(parameters)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None


def _validate(spec: ActionSpec) -> None:
    try:
        validate_spec(spec)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
