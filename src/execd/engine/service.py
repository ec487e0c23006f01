"""Use cases behind every API dialect: define actions, submit, inspect and control
executions. Dialects translate; they never talk to the store themselves."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, BinaryIO, TypeVar

import structlog

from execd.domain.access import Principal, require
from execd.domain.actions import (
    BUILTIN_PACK,
    MAX_SECONDS,
    Action,
    ActionSpec,
    ParameterValidator,
    secret_names,
    split_ref,
    validate_spec,
)
from execd.domain.analytics import BUCKETS, MAX_BUCKETS, Aggregate
from execd.domain.core_pack import CORE_ACTIONS, CORE_BY_UUID
from execd.domain.errors import BatchRefused, Conflict, ExecdError, InvalidInput, NotFound
from execd.domain.executions import (
    MAX_ID,
    Brief,
    Execution,
    ExecutionFilter,
    ExecutionStats,
    NewExecution,
    Page,
    StatusEvent,
)
from execd.domain.retries import retry_of
from execd.domain.states import TERMINAL, Priority
from execd.domain.workers import WorkerNode
from execd.engine import packages
from execd.engine.batching import GroupCommit
from execd.engine.sealing import Sealer
from execd.store.artifacts import ArtifactStore
from execd.store.catalog import Catalog
from execd.store.executions import ExecutionQueries
from execd.store.queue import Queue, Refused, Submitted
from execd.store.workers import WorkerRegistry

MAX_IDEMPOTENCY_KEY = 255
log = structlog.get_logger(__name__)
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


class ExecutionService:
    def __init__(
        self,
        queue: Queue,
        queries: ExecutionQueries,
        actions: ActionService,
        registry: WorkerRegistry,
        artifacts: ArtifactStore,
    ) -> None:
        self.artifacts = artifacts
        self.queue = queue
        self.queries = queries
        self.actions = actions
        self.registry = registry
        self._submit: GroupCommit[NewExecution, Submitted] = GroupCommit(queue.submit)
        # Executions this process stored (a replayed idempotency key is not counted), by
        # action: for metrics.
        self.submitted: dict[str, int] = {}

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
        new = new_execution(
            caller, options, **prepared, parent_id=options.parent_id, root_id=root_id
        )
        return await self.submit_new(new)

    async def submit_new(self, new: NewExecution) -> Submitted:
        """Store a prepared execution (group-committed with concurrent submissions)."""
        submitted = await self._submit(new)
        self._count(submitted)
        return submitted

    def _count(self, submitted: Submitted) -> None:
        if not submitted.replayed:
            ref = submitted.execution.action_ref
            self.submitted[ref] = self.submitted.get(ref, 0) + 1

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
                prepared[index] = new_execution(
                    caller, item.options, **values, parent_id=parent_id, root_id=root_id
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

    async def get(self, caller: Principal, execution_id: int) -> Execution:
        execution = None
        if 0 < execution_id <= MAX_ID:
            execution = await self.queries.get(caller.project_id, execution_id)
        if execution is None:
            raise NotFound(f"Execution with ID {execution_id} not found", id=execution_id)
        return execution

    async def get_by_uuid(self, caller: Principal, execution_uuid: str) -> Execution:
        execution = await self.queries.get_by_uuid(caller.project_id, execution_uuid)
        if execution is None:
            raise NotFound(f"Execution {execution_uuid} not found", id=execution_uuid)
        return execution

    async def search(
        self, caller: Principal, f: ExecutionFilter, page: Page, *, with_total: bool = True
    ) -> tuple[list[Execution], int | None]:
        return await self.queries.search(caller.project_id, f, page, with_total=with_total)

    async def search_window(self, caller: Principal, f: ExecutionFilter, size: int) -> int | None:
        """The lowest id a search that reads at most `size` executions below
        `f.below_id` (in its `created` range) reaches; None: it reaches the oldest."""
        return await self.queries.window(caller.project_id, f, size)

    async def package(
        self,
        caller: Principal,
        execution: Execution,
        parts: list[tuple[str, Execution]] | None = None,
    ) -> Iterator[bytes] | None:
        """The result package of a finished execution, as ZIP chunks written on demand;
        None while it has not finished (there is no package yet). `parts` are the
        executions whose files go in, each under its prefix (default: its own)."""
        if execution.status not in TERMINAL:
            return None
        events = await self.queries.history(caller.project_id, execution.id)
        packed = []
        for prefix, part in parts if parts is not None else [("", execution)]:
            listed = await asyncio.to_thread(self.artifacts.list_artifacts, part)
            opener = partial(self.artifacts.open_file, part)
            packed.append(packages.Part(prefix, opener, listed))
        return packages.stream(execution, packages.contents(execution, events, packed))

    async def artifacts_of(self, execution: Execution) -> list[tuple[str, int]]:
        return await asyncio.to_thread(self.artifacts.list_artifacts, execution)

    def open_artifact(self, execution: Execution, relative: str) -> BinaryIO | None:
        """An artifact file opened for reading (never through a symlink), or None."""
        return self.artifacts.open_artifact(execution, relative)

    def open_log(self, execution: Execution, stream: str) -> BinaryIO | None:
        return self.artifacts.open_file(execution, f"{stream}.log")

    async def retry(
        self,
        caller: Principal,
        execution_id: int,
        parameters: dict[str, Any] | None = None,
        priority: Priority | None = None,
    ) -> Execution:
        """A new execution of what `execution_id` ran, linked to it (`retry_of`), with
        `parameters` merged over its own (validated again). Only once it has ended."""
        require(caller, "operator")
        old = await self.get(caller, execution_id)
        if old.status not in TERMINAL:
            raise Conflict(
                f"Execution {execution_id} is {old.status.value}; only an execution that "
                "has ended can be retried",
                status=old.status.value,
            )
        if old.sequence is not None:
            raise Conflict(
                f"Execution {execution_id} is a step of flow execution {old.parent_id}; "
                "retry the flow",
                status=old.status.value,
            )
        values = old.parameters
        if parameters:
            if old.flow_id is not None:
                raise InvalidInput("A flow execution is retried with its own parameters")
            # Validated again as a whole, so the old secret values are opened for it.
            sealer = self.actions.sealer
            values = {**sealer.open_values(old.parameters, old.secrets), **parameters}
            if old.action_id is not None or old.action_ref in CORE_ACTIONS:
                action = await self.actions.get(caller, old.action_ref)
                values = await asyncio.to_thread(self.actions.validate_parameters, action, values)
            values = sealer.seal_values(values, old.secrets)
        new = replace(
            retry_of(old, parameters=values, submitted_by=caller.label),
            priority=priority if priority is not None else old.priority,
        )
        return (await self.submit_new(new)).execution

    async def cancel_many(
        self, caller: Principal, ids: list[int], reason: str | None = None
    ) -> dict[int, tuple[str, Execution | None]]:
        """Cancel each: ("cancelled" | "canceling" | "not_found" | "finished", it)."""
        require(caller, "operator")
        results: dict[int, tuple[str, Execution | None]] = {}
        for execution_id in ids:
            try:
                execution = await self.cancel(caller, execution_id, reason=reason)
            except NotFound:
                results[execution_id] = ("not_found", None)
            except Conflict:
                results[execution_id] = ("finished", None)
            else:
                results[execution_id] = (execution.status.value, execution)
        return results

    async def delete_many(self, caller: Principal, ids: list[int]) -> dict[int, str]:
        """Delete each (with everything below it) if it has ended: "deleted",
        "not_found" or "not_finished". Logs and artifacts go too."""
        require(caller, "operator")
        results, removed = await self.queries.delete(caller.project_id, ids)
        await asyncio.to_thread(self.artifacts.remove, removed)
        return results

    async def matching_ids(self, caller: Principal, f: ExecutionFilter, limit: int) -> list[int]:
        return await self.queries.ids(caller.project_id, f, limit)

    async def export(
        self, caller: Principal, f: ExecutionFilter, batch: int = 1000
    ) -> AsyncIterator[list[Execution]]:
        """Every execution matching `f`, newest first, in batches read one at a time
        (keyset paging), so memory stays flat however many there are."""
        below: int | None = f.below_id
        while True:
            items, _ = await self.queries.search(
                caller.project_id, replace(f, below_id=below), Page(1, batch), with_total=False
            )
            if not items:
                return
            yield items
            if len(items) < batch:
                return
            below = items[-1].id

    async def of_action(self, caller: Principal, action: Action, page: Page) -> list[Brief]:
        """Executions of one action, newest first, in brief."""
        f = ExecutionFilter(action_ref=action.ref, action_id=action.id)
        return await self.queries.briefs(caller.project_id, f, page)

    async def latest_by_ref(self, caller: Principal, refs: list[str]) -> dict[str, Execution]:
        return await self.queries.latest_by_ref(caller.project_id, refs)

    async def stats(self, caller: Principal, f: ExecutionFilter | None = None) -> ExecutionStats:
        return await self.queries.stats(caller.project_id, f)

    async def analytics(
        self,
        caller: Principal,
        since: float | None,
        until: float | None,
        *,
        by_action: bool,
        bucket: str | None,
        durations: bool = True,
    ) -> tuple[float, float, list[Aggregate]]:
        """What ended in [since, until) (default: the last 24 hours), per action and/or
        per bucket: the window and its groups (without `durations`: counts only, no
        run-time percentiles)."""
        until = until if until is not None else time.time()
        since = since if since is not None else until - 86400
        if since >= until:
            raise InvalidInput("since must be before until")
        width = BUCKETS.get(bucket) if bucket is not None else None
        if bucket is not None and width is None:
            raise InvalidInput(f"bucket is one of {', '.join(BUCKETS)}")
        if width is not None and (until - since) / width > MAX_BUCKETS:
            raise InvalidInput(f"That window has more than {MAX_BUCKETS} {bucket}s")
        groups = await self.queries.analytics(
            caller.project_id,
            since,
            until,
            by_action=by_action,
            bucket_seconds=width,
            durations=durations,
        )
        return since, until, groups

    async def roll_up(self, *, rebuild: bool = False) -> int:
        """Seal the analytics rollups of every hour that is over; `rebuild` first
        forgets them all (after executions were changed by hand, say)."""
        if rebuild:
            await self.queries.rebuild_rollups()
        sealed = 0
        while hours := await self.queries.seal_rollups():
            sealed += hours
        return sealed

    async def roll_up_forever(self, interval: float) -> None:
        while True:
            try:
                await self.queries.seal_rollups()
            except Exception as exc:
                log.warning("rollup_error", error=str(exc))
            await asyncio.sleep(interval)

    async def history(self, caller: Principal, execution_id: int) -> list[StatusEvent]:
        await self.get(caller, execution_id)
        return await self.queries.history(caller.project_id, execution_id)

    async def cancel(
        self,
        caller: Principal,
        execution_id: int,
        *,
        reason: str | None = None,
        force: bool = False,
        discard: bool = False,
    ) -> Execution:
        """Idempotent while cancelling; a Conflict once the execution has ended."""
        require(caller, "operator")
        execution = None
        if 0 < execution_id <= MAX_ID:
            request = {"force": force, "discard": discard} if force or discard else None
            execution = await self.queue.cancel(caller.project_id, execution_id, reason, request)
        if execution is None:
            raise NotFound(f"Execution with ID {execution_id} not found", id=execution_id)
        return execution

    async def output(self, caller: Principal, execution_id: int, stream: str) -> bytes:
        """What the execution wrote to stdout or stderr (as kept: capped, marked if cut)."""
        execution = await self.get(caller, execution_id)
        try:
            return await asyncio.to_thread(self.artifacts.read_output, execution, stream)
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None

    async def workers(self, caller: Principal, *, retired: bool = False) -> list[WorkerNode]:
        """Workers are shared by every tenant. Anyone may see whether work can run
        (names, labels, capacity, load, state); the machines behind them (host, pid,
        version, CPU and memory, and a name that holds the host's) are for system
        admins."""
        nodes = await self.registry.nodes(retired=retired)
        if caller.system:
            return nodes
        return [
            replace(
                n,
                name=shown_name(caller, n),
                host=None,
                pid=None,
                version=None,
                cpu_percent=None,
                memory_percent=None,
                memory_bytes=None,
            )
            for n in nodes
        ]

    async def drain(self) -> None:
        await self._submit.drain()


def new_execution(caller: Principal, options: SubmitOptions, **values: Any) -> NewExecution:
    """An execution `caller` submits, to run as `options` say; `values` are what it runs
    (what `ActionService.prepare` made of an action, a flow's plan) and where."""
    return NewExecution(
        tenant_id=caller.tenant_id,
        project_id=caller.project_id,
        priority=options.priority,
        not_before=options.not_before,
        delay=options.delay,
        idempotency_key=options.idempotency_key,
        submitted_by=caller.label,
        job_type=options.job_type,
        job=options.job,
        **values,
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


def shown_name(caller: Principal, node: WorkerNode) -> str:
    """A worker's name as `caller` may see it. The default name (`hostname-pid`, set
    otherwise with EXECD_WORKER_NAME) says which machine runs it: others see
    `worker-<id>` instead of any name that holds the host's."""
    if caller.system or not node.host or node.host not in node.name:
        return node.name
    return f"worker-{node.id}"
