"""Submitting executions: one (`submit`), of an action already found
(`submit_action`), or a batch in one transaction (`submit_batch`), each validated
against its action's parameters first."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from execd.domain.access import Principal, require
from execd.domain.actions import MAX_SECONDS, Action, split_ref
from execd.domain.errors import BatchRefused, ExecdError, InvalidInput
from execd.domain.executions import NewExecution, new_execution
from execd.domain.states import Priority
from execd.engine.executions.base import ExecutionsBase
from execd.store.queue import Refused, Submitted

MAX_IDEMPOTENCY_KEY = 255
K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True)
class SubmitOptions:
    """How to run a submission, beyond what and with which parameters."""

    priority: Priority = Priority.NORMAL
    timeout: float | None = None
    not_before: float | None = None
    delay: float = 0.0
    idempotency_key: str | None = None
    parent_id: int | None = None
    # Submitted as a job (the tenant API's jobs): its type and details.
    job_type: str | None = None
    job: dict[str, Any] | None = None

    def check(self) -> None:
        if self.timeout is not None and not 0 < self.timeout <= MAX_SECONDS:
            raise InvalidInput(f"timeout must be between 0 and {MAX_SECONDS:.0f} seconds")
        if not 0 <= self.delay <= MAX_SECONDS:
            raise InvalidInput(f"delay must be between 0 and {MAX_SECONDS:.0f} seconds")
        key = self.idempotency_key
        if key is not None and not 1 <= len(key) <= MAX_IDEMPOTENCY_KEY:
            raise InvalidInput(f"An idempotency key has 1 to {MAX_IDEMPOTENCY_KEY} characters")


DEFAULT_OPTIONS = SubmitOptions()
MAX_BATCH = 1000


@dataclass(frozen=True)
class Submission:
    """One execution of a batch: what to run, with which parameters, and how."""

    action_ref: str
    parameters: dict[str, Any] | None = None
    options: SubmitOptions = DEFAULT_OPTIONS


# A submission of a batch with its action and the root of its parent's tree.
Plan = tuple[Submission, Action, int | None]


class Submitting(ExecutionsBase):
    async def submit(
        self,
        caller: Principal,
        action_ref: str,
        parameters: dict[str, Any] | None = None,
        options: SubmitOptions = DEFAULT_OPTIONS,
    ) -> Submitted:
        """Validate and store one execution. Returning means it is committed."""
        require(caller, "operator")
        action = await self._action(caller, action_ref)
        return await self.submit_action(caller, action, parameters, options)

    async def submit_action(
        self,
        caller: Principal,
        action: Action,
        parameters: dict[str, Any] | None = None,
        options: SubmitOptions = DEFAULT_OPTIONS,
    ) -> Submitted:
        require(caller, "operator")
        options.check()
        root_id = await self._root_of(caller, options.parent_id)
        # Validation costs up to its budget of steps: off the event loop.
        prepared = await asyncio.to_thread(
            self.actions.prepare, action, parameters, options.timeout
        )
        new = submission(caller, options, prepared, parent_id=options.parent_id, root_id=root_id)
        return await self.submit_new(new)

    async def submit_batch(
        self, caller: Principal, items: Sequence[Submission | ExecdError], *, atomic: bool = True
    ) -> list[Submitted | ExecdError]:
        """Validate and store up to MAX_BATCH executions in one transaction: a result per
        item, in order. An item may already be an error (what the dialect could not
        read); it keeps its place. `atomic`: every item is stored or none is
        (`BatchRefused` lists the refused ones); otherwise the valid ones are stored and
        the others answered with their errors. Returning means all stored is committed."""
        require(caller, "operator")
        if not 1 <= len(items) <= MAX_BATCH:
            raise InvalidInput(
                f"A batch holds 1 to {MAX_BATCH} executions; this one has {len(items)}"
            )
        plans, errors = await self._plan_batch(caller, items)
        # Validation costs up to its budget of steps per item: off the event loop, once.
        prepared = await asyncio.to_thread(self._prepare_all, caller, plans)
        errors.update((i, p) for i, p in prepared.items() if isinstance(p, ExecdError))
        if atomic and errors:
            raise BatchRefused(errors, len(items))
        fresh = [(i, p) for i, p in sorted(prepared.items()) if isinstance(p, NewExecution)]
        results: dict[int, Submitted | ExecdError] = dict(errors)
        try:
            news = [new for _, new in fresh]
            stored = await self.queue.submit(news, all_or_nothing=atomic) if news else []
        except Refused as exc:
            refused = {fresh[j][0]: _known(e) for j, e in exc.errors.items()}
            raise BatchRefused(refused, len(items)) from None
        for (index, _), outcome in zip(fresh, stored, strict=True):
            if isinstance(outcome, Submitted):
                self._count(outcome)
            results[index] = outcome if isinstance(outcome, Submitted) else _known(outcome)
        return [results[i] for i in range(len(items))]

    async def _plan_batch(
        self, caller: Principal, items: Sequence[Submission | ExecdError]
    ) -> tuple[dict[int, Plan], dict[int, ExecdError]]:
        """Each item's action and root (each looked up once per batch), or its error."""
        plans: dict[int, Plan] = {}
        errors: dict[int, ExecdError] = {}
        actions: dict[str, Action | ExecdError] = {}
        roots: dict[int | None, int | ExecdError | None] = {}
        for index, item in enumerate(items):
            if isinstance(item, ExecdError):
                errors[index] = item
                continue
            try:
                item.options.check()
                action = await _once(actions, item.action_ref, self._action, caller)
                root_id = await _once(roots, item.options.parent_id, self._root_of, caller)
            except ExecdError as exc:
                errors[index] = exc
            else:
                plans[index] = (item, action, root_id)
        return plans, errors

    def _prepare_all(
        self, caller: Principal, plans: dict[int, Plan]
    ) -> dict[int, NewExecution | ExecdError]:
        prepared: dict[int, NewExecution | ExecdError] = {}
        for index, (item, action, root_id) in plans.items():
            try:
                values = self.actions.prepare(action, item.parameters, item.options.timeout)
            except ExecdError as exc:
                prepared[index] = exc
            else:
                parent_id = item.options.parent_id
                prepared[index] = submission(
                    caller, item.options, values, parent_id=parent_id, root_id=root_id
                )
        return prepared

    async def _action(self, caller: Principal, action_ref: str) -> Action:
        try:
            split_ref(action_ref)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
        return await self.actions.get(caller, action_ref)

    async def _root_of(self, caller: Principal, parent_id: int | None) -> int | None:
        """The root of the tree a child of `parent_id` joins (None: no parent)."""
        if parent_id is None:
            return None
        parent = await self.get(caller, parent_id)
        return parent.root_id or parent.id


def submission(
    caller: Principal, options: SubmitOptions, run: dict[str, Any], **where: Any
) -> NewExecution:
    """An execution `caller` submits, to run as `options` say: `run` is what it runs (what
    `ActionService.prepare` made of an action, a flow's run), `where` where it stands."""
    return new_execution(
        caller.tenant_id,
        caller.project_id,
        run,
        priority=options.priority,
        not_before=options.not_before,
        delay=options.delay,
        idempotency_key=options.idempotency_key,
        submitted_by=caller.label,
        job_type=options.job_type,
        job=options.job,
        **where,
    )


async def _once(
    cache: dict[K, V | ExecdError],
    key: K,
    look_up: Callable[[Principal, K], Awaitable[V]],
    caller: Principal,
) -> V:
    """`look_up(caller, key)`, made once per key of a batch (its error too)."""
    if key not in cache:
        try:
            cache[key] = await look_up(caller, key)
        except ExecdError as exc:
            cache[key] = exc
    found = cache[key]
    if isinstance(found, ExecdError):
        raise found
    return found


def _known(error: Exception) -> ExecdError:
    """The store answers a refused item with an ExecdError; anything else is a bug."""
    if isinstance(error, ExecdError):
        return error
    raise error
