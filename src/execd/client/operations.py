"""Every operation of the SDK, written once (see protocol.py for how they run).

Executions, actions, triggers, rules and enforcements go through the v1 API; flows
through the flow dialect; jobs, the queue, system status and result packages through
the tenant dialect (its paths take the token's tenant and project, read once from
`/api/v1/me`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import orjson

from execd.client import packs
from execd.client.errors import ClientError, ConnectionFailed, NotFound
from execd.client.models import (
    TERMINAL,
    Action,
    Applied,
    Batch,
    Enforcement,
    Event,
    Execution,
    ExecutionSummary,
    Flow,
    FlowExecution,
    Job,
    Me,
    NewToken,
    Page,
    Pagination,
    Project,
    Queue,
    Rule,
    Stats,
    StatusChange,
    Tenant,
    Token,
    Trigger,
    Worker,
)
from execd.client.protocol import (
    Download,
    Emit,
    Open,
    Operation,
    ReadLine,
    Reply,
    Request,
    Sleep,
    SSEEvent,
    SSEParser,
    emits,
    operation,
    params,
)

M = TypeVar("M")
V1 = "/api/v1"
#: How long a stream keeps trying to reconnect to a server that has gone away.
RECONNECT_SECONDS = 60.0
#: The flow dialect's spelling of a run that has ended.
FLOW_TERMINAL = ("PASSED", "FAILED", "CANCELLED")


class WaitTimeout(ClientError):
    """`wait()` gave up before the execution ended (the execution goes on)."""


class PartlyApplied(ClientError):
    """`apply_pack` stopped at a definition the server refused; `applied` is what it
    did before (webhook secrets included), `cause` the refusal."""

    def __init__(self, applied: list[Applied], cause: ClientError) -> None:
        super().__init__(cause.message)
        self.applied = applied
        self.cause = cause


def _data(reply: Reply) -> Any:
    return reply.json()["data"]


def _when(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


class ExecutionFilters(TypedDict, total=False):
    """What `list_executions`, `iter_executions` and `export` filter on (all combine;
    None is the same as not given)."""

    status: str | Iterable[str] | None  # one status or several
    action_ref: str | None
    pack: str | None
    result_contains: str | None  # text in the result's JSON, case-insensitive
    parent: int | None
    created_after: datetime | str | None  # ISO 8601; UTC when no zone is given
    created_before: datetime | str | None


def _filters(filters: ExecutionFilters) -> dict[str, Any]:
    status = filters.get("status")
    if status is not None and not isinstance(status, str):
        status = ",".join(status)
    return params(
        status=status,
        action_ref=filters.get("action_ref"),
        pack_name=filters.get("pack"),
        result_contains=filters.get("result_contains"),
        parent=filters.get("parent"),
        created_after=_when(filters.get("created_after")),
        created_before=_when(filters.get("created_before")),
    )


def _seg(value: str) -> str:
    """One path segment: a ref or id as the user gave it, never a path of its own."""
    segment = quote(str(value), safe="")
    return segment.replace(".", "%2E") if segment in (".", "..") else segment


class Operations:
    """The methods `Client` and `AsyncClient` share. Each is a generator of steps."""

    url: str
    token: str | None

    def __init__(self) -> None:
        self._me: Me | None = None

    # --- the token and the server ---------------------------------------------------

    @operation
    def me(self) -> Operation[Me]:
        """The token's tenant, project, role and name."""
        if self._me is None:
            self._me = Me.model_validate(_data((yield Request("GET", f"{V1}/me"))))
        return self._me

    @operation
    def health(self) -> Operation[dict[str, Any]]:
        """`/healthz`: whether the server and its database answer (no token needed)."""
        reply = yield Request("GET", "/healthz")
        body: dict[str, Any] = reply.json()
        return body

    def _scope(self) -> Operation[str]:
        me = yield from Operations.me.build(self)
        return f"/api/{me.tenant_id}/{me.project_id}"

    @operation
    def create_token(
        self,
        name: str,
        role: str = "operator",
        project_id: str | None = None,
        *,
        scope: str | None = None,
        expires_in: int | None = None,
        expires: datetime | str | None = None,
    ) -> Operation[NewToken]:
        """A new API token (admin). The answer is the only place its value appears.
        `scope="system"` (a system admin's own call) makes a system admin token; it
        lives `expires_in` seconds or until `expires` if given."""
        body = {
            "name": name,
            "role": role,
            "project_id": project_id,
            "scope": scope,
            "expires_in": expires_in,
            "expires": _when(expires),
        }
        reply = yield Request(
            "POST", f"{V1}/tokens", json={k: v for k, v in body.items() if v is not None}
        )
        return NewToken.model_validate(_data(reply))

    @operation
    def list_tokens(self, project_id: str | None = None) -> Operation[list[Token]]:
        """A project's tokens (admin; default: the token's own project), never their
        values: role, scope, expiry, last use."""
        reply = yield Request("GET", f"{V1}/tokens", params=params(project_id=project_id))
        return [Token.model_validate(t) for t in _data(reply)]

    @operation
    def revoke_token(self, token_id: int) -> Operation[None]:
        """Revoke a token (admin); it stops working within the server's cache time."""
        yield Request("DELETE", f"{V1}/tokens/{int(token_id)}")

    @operation
    def create_tenant(self, name: str) -> Operation[Tenant]:
        """A new tenant (system admin)."""
        reply = yield Request("POST", f"{V1}/tenants", json={"name": name})
        return Tenant.model_validate(_data(reply))

    @operation
    def list_tenants(self) -> Operation[list[Tenant]]:
        """Every tenant (system admin), or a tenant admin's own."""
        return [Tenant.model_validate(t) for t in _data((yield Request("GET", f"{V1}/tenants")))]

    @operation
    def create_project(self, tenant_id: str, name: str) -> Operation[Project]:
        """A new project in a tenant the token administers."""
        body = {"tenant_id": tenant_id, "name": name}
        return Project.model_validate(_data((yield Request("POST", f"{V1}/projects", json=body))))

    @operation
    def list_projects(self, tenant_id: str | None = None) -> Operation[list[Project]]:
        """The projects of the tenants the token administers (or of one of them)."""
        reply = yield Request("GET", f"{V1}/projects", params=params(tenant_id=tenant_id))
        return [Project.model_validate(p) for p in _data(reply)]

    @operation
    def workers(self) -> Operation[list[Worker]]:
        """The worker nodes, live and recently gone."""
        reply = yield Request("GET", f"{V1}/workers")
        return [Worker.model_validate(w) for w in _data(reply)]

    @operation
    def queue(self) -> Operation[Queue]:
        """What waits for a worker in this project, in queue order, and the capacity."""
        scope = yield from self._scope()
        return Queue.model_validate((yield Request("GET", f"{scope}/execution/queue")).json())

    @operation
    def system_status(self) -> Operation[dict[str, Any]]:
        """The tenant's view of the system: workers, queue statistics, health."""
        me = yield from Operations.me.build(self)
        reply = yield Request("GET", f"/api/{me.tenant_id}/execution/system/status")
        status: dict[str, Any] = reply.json()
        return status

    # --- actions ----------------------------------------------------------------------

    @operation
    def list_actions(self, pack: str | None = None) -> Operation[list[Action]]:
        """The project's actions, built-ins included."""
        reply = yield Request("GET", f"{V1}/actions", params=params(pack=pack))
        return [Action.model_validate(a) for a in _data(reply)]

    @operation
    def get_action(self, ref: str) -> Operation[Action]:
        return Action.model_validate(_data((yield Request("GET", f"{V1}/actions/{_seg(ref)}"))))

    @operation
    def create_action(self, definition: Mapping[str, Any]) -> Operation[Action]:
        """Define an action (see docs/actions.md); `Conflict` if the ref exists."""
        reply = yield Request("POST", f"{V1}/actions", json=dict(definition))
        return Action.model_validate(_data(reply))

    @operation
    def update_action(self, ref: str, definition: Mapping[str, Any]) -> Operation[Action]:
        reply = yield Request("PUT", f"{V1}/actions/{_seg(ref)}", json=dict(definition))
        return Action.model_validate(_data(reply))

    @operation
    def enable_action(self, ref: str, enabled: bool = True) -> Operation[Action]:
        """Enable or disable an action (a disabled one cannot be executed)."""
        body = {"enabled": enabled}
        reply = yield Request("PATCH", f"{V1}/actions/{_seg(ref)}", json=body)
        return Action.model_validate(_data(reply))

    @operation
    def delete_action(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/actions/{_seg(ref)}")

    # --- executions -------------------------------------------------------------------

    @operation
    def execute(
        self,
        action_ref: str,
        parameters: Mapping[str, Any] | None = None,
        *,
        priority: str | int | None = None,
        timeout: float | None = None,
        delay: float | None = None,
        not_before: datetime | str | None = None,
        idempotency_key: str | None = None,
        parent: int | None = None,
    ) -> Operation[Execution]:
        """Submit an execution of an action; answers it as queued."""
        body = {
            "action_ref": action_ref,
            "parameters": dict(parameters or {}),
            "priority": priority,
            "timeout": timeout,
            "delay": delay,
            "not_before": _when(not_before),
            "idempotency_key": idempotency_key,
            "parent": parent,
        }
        body = {k: v for k, v in body.items() if v is not None}
        reply = yield Request("POST", f"{V1}/executions/execute", json=body)
        return Execution.model_validate(_data(reply))

    @operation
    def execute_batch(
        self, executions: Iterable[Mapping[str, Any]], *, atomic: bool = True
    ) -> Operation[Batch]:
        """Submit up to 1,000 executions in one request and one transaction. Each is a
        mapping of what `execute` takes: action_ref, parameters, priority, timeout,
        delay, not_before, idempotency_key, parent. Atomic (the default): all are
        stored or none, and a refusal (`BadRequest`, `NotFound` or `Conflict`) lists
        each refused item in `body["errors"]`; otherwise the valid ones are stored and
        each item of the answer says how it went."""
        items = [
            {k: _when(v) if k == "not_before" else v for k, v in e.items() if v is not None}
            for e in executions
        ]
        body = {"executions": items, "atomic": atomic}
        reply = yield Request("POST", f"{V1}/executions/batch", json=body)
        return Batch.model_validate(reply.json())

    @operation
    def get_execution(self, execution_id: int) -> Operation[Execution]:
        reply = yield Request("GET", f"{V1}/executions/{int(execution_id)}")
        return Execution.model_validate(_data(reply))

    @operation
    def list_executions(
        self, *, page: int = 1, per_page: int = 20, **filters: Unpack[ExecutionFilters]
    ) -> Operation[Page[ExecutionSummary]]:
        """One page of executions, newest first (see `iter_executions` for all)."""
        query = _filters(filters)
        query.update(page=page, per_page=per_page)
        body = (yield Request("GET", f"{V1}/executions", params=query)).json()
        return Page[ExecutionSummary](
            items=[ExecutionSummary.model_validate(e) for e in body["data"]],
            pagination=Pagination.model_validate(body["pagination"]),
        )

    @emits(ExecutionSummary)
    def iter_executions(
        self,
        *,
        limit: int | None = None,
        page_size: int = 100,
        **filters: Unpack[ExecutionFilters],
    ) -> Operation[None]:
        """Every matching execution, newest first, page after page (by cursor, so rows
        added meanwhile are neither skipped nor repeated); at most `limit`."""
        query = _filters(filters)
        cursor: str | None = ""
        given = 0
        while cursor is not None:
            size = page_size if limit is None else max(1, min(page_size, limit - given))
            query.update(cursor=cursor, per_page=size)
            body = (yield Request("GET", f"{V1}/executions", params=query)).json()
            for item in body["data"]:
                if limit is not None and given >= limit:
                    return
                yield Emit(ExecutionSummary.model_validate(item))
                given += 1
            cursor = body["pagination"].get("next_cursor")

    @operation
    def cancel(self, execution_id: int) -> Operation[Execution]:
        """Cancel an execution and its children (`Conflict` once it has ended)."""
        reply = yield Request("POST", f"{V1}/executions/{int(execution_id)}/cancel")
        return Execution.model_validate(_data(reply))

    @operation
    def retry(
        self,
        execution_id: int,
        parameters: Mapping[str, Any] | None = None,
        priority: str | int | None = None,
    ) -> Operation[Execution]:
        """A new execution of what an ended one ran (parameters merged over the old)."""
        body: dict[str, Any] = {"parameters": dict(parameters or {})}
        if priority is not None:
            body["priority"] = priority
        reply = yield Request("POST", f"{V1}/executions/{int(execution_id)}/retry", json=body)
        return Execution.model_validate(_data(reply))

    @operation
    def bulk_cancel(
        self,
        ids: Iterable[int] | None = None,
        *,
        filter: Mapping[str, Any] | None = None,
        reason: str | None = None,
    ) -> Operation[dict[str, Any]]:
        """Cancel up to 1,000 executions, by ids or by a filter (status, action_ref,
        pack_name, created_after, created_before): a result per id and a summary."""
        body = self._bulk(ids, filter)
        if reason:
            body["reason"] = reason
        bulk: dict[str, Any] = (
            yield Request("POST", f"{V1}/executions/bulk/cancel", json=body)
        ).json()
        return bulk

    @operation
    def bulk_delete(
        self, ids: Iterable[int] | None = None, *, filter: Mapping[str, Any] | None = None
    ) -> Operation[dict[str, Any]]:
        """Delete up to 1,000 ended executions with everything below them."""
        body = self._bulk(ids, filter)
        bulk: dict[str, Any] = (
            yield Request("POST", f"{V1}/executions/bulk/delete", json=body)
        ).json()
        return bulk

    @staticmethod
    def _bulk(ids: Iterable[int] | None, filter: Mapping[str, Any] | None) -> dict[str, Any]:
        if (ids is None) == (filter is None):
            raise ClientError("give ids or a filter, not both")
        if ids is not None:
            return {"ids": [int(i) for i in ids]}
        return {"filter": {k: _when(v) for k, v in dict(filter or {}).items() if v is not None}}

    @operation
    def history(self, execution_id: int) -> Operation[list[StatusChange]]:
        """Every status change of an execution, oldest first."""
        reply = yield Request("GET", f"{V1}/executions/{int(execution_id)}/history")
        return [StatusChange.model_validate(e) for e in _data(reply)]

    @operation
    def output(self, execution_id: int, stream: str = "stdout") -> Operation[str]:
        """What the execution wrote to stdout or stderr so far, as kept."""
        reply = yield Request("GET", f"{V1}/executions/{int(execution_id)}/output/{_seg(stream)}")
        return str(reply.text)

    @operation
    def stats(
        self,
        *,
        group_by: str | None = None,
        bucket: str | None = None,
        since: datetime | str | None = None,
        until: datetime | str | None = None,
    ) -> Operation[Stats]:
        """Counts by status; with any argument, also per-action/per-bucket analytics."""
        query = params(group_by=group_by, bucket=bucket, since=_when(since), until=_when(until))
        return Stats.model_validate(
            _data((yield Request("GET", f"{V1}/executions/stats", params=query)))
        )

    @operation
    def wait(
        self,
        execution_id: int,
        *,
        on_progress: Callable[[Execution], None] | None = None,
        timeout: float | None = None,
        interval: float = 0.5,
    ) -> Operation[Execution]:
        """Wait until the execution has ended and answer it. `on_progress` is called with
        the execution each time its status or progress changes (and once at the start).
        `WaitTimeout` after `timeout` seconds; the execution itself goes on."""
        return (
            yield from self._poll(
                lambda: Operations.get_execution.build(self, execution_id),
                lambda e: e.status in TERMINAL,
                lambda e: (e.status, e.progress),
                on_progress,
                timeout,
                interval,
                f"execution {execution_id}",
            )
        )

    def _poll(
        self,
        fetch: Callable[[], Operation[M]],
        finished: Callable[[M], bool],
        signature: Callable[[M], Any],
        on_change: Callable[[M], None] | None,
        timeout: float | None,
        interval: float,
        what: str,
    ) -> Operation[M]:
        deadline = None if timeout is None else time.monotonic() + timeout
        seen: Any = object()
        pause = min(0.1, interval)
        while True:
            current = yield from fetch()
            if on_change is not None and signature(current) != seen:
                seen = signature(current)
                on_change(current)
            if finished(current):
                return current
            if deadline is not None and time.monotonic() >= deadline:
                raise WaitTimeout(f"{what} has not ended after {timeout:g} s")
            yield Sleep(pause)
            pause = min(interval, pause * 2)

    @emits(Event)
    def events(
        self,
        *,
        execution: int | None = None,
        action_ref: str | None = None,
        status: str | Iterable[str] | None = None,
        last_event_id: str | None = None,
        until_ended: bool = False,
    ) -> Operation[None]:
        """Execution events as they happen (created, status, progress), from now or after
        `last_event_id` ("0-0": the oldest kept). A dropped connection is resumed where
        it stopped, so no event is lost or repeated. With `until_ended`, stops after a
        final status (use it with `execution`)."""
        if status is not None and not isinstance(status, str):
            status = ",".join(status)
        query = params(execution=execution, action_ref=action_ref, status=status)
        position = last_event_id

        def request() -> Request:
            headers = {"Last-Event-ID": position} if position else None
            return Request("GET", f"{V1}/executions/stream", query, headers=headers)

        def handle(sse: SSEEvent) -> tuple[list[Any], bool]:
            nonlocal position
            if sse.event not in ("created", "status", "progress"):
                return [], False
            position = sse.id
            event = Event.model_validate(
                {"id": sse.id, "kind": sse.event, **orjson.loads(sse.data)}
            )
            ended = until_ended and event.kind == "status" and event.status in TERMINAL
            return [event], ended

        yield from self._follow(request, handle)

    @emits(str)
    def follow_output(
        self, execution_id: int, stream: str = "stdout", *, offset: int = 0
    ) -> Operation[None]:
        """What the execution writes to `stream`, chunk by chunk as it writes it, from
        byte `offset`; ends when the execution has ended and all of it was given. A
        dropped connection is resumed from the last byte given."""
        path = f"{V1}/executions/{int(execution_id)}/output/{_seg(stream)}/stream"

        def handle(sse: SSEEvent) -> tuple[list[Any], bool]:
            nonlocal offset
            data = orjson.loads(sse.data)
            if sse.event == "output":
                offset = int(sse.id or offset)
                return [data["data"]], False
            if sse.event == "reset":
                offset = 0
            return [], sse.event == "done"

        yield from self._follow(lambda: Request("GET", path, params={"offset": offset}), handle)

    def _follow(
        self,
        request: Callable[[], Request],
        handle: Callable[[SSEEvent], tuple[list[Any], bool]],
    ) -> Operation[None]:
        """Follow a server-sent event stream: `handle` turns each event into items to
        hand out and says when the stream is done. When the connection drops (or the
        server ends the stream), it is opened again with `request()`, which resumes where
        the last event left off; backing off up to 5 s, for RECONNECT_SECONDS at most.
        The first connection has to succeed: no server, no stream."""
        connected = False
        failing_since: float | None = None
        pause = 0.5
        while True:
            try:
                yield Open(request())
                connected, failing_since, pause = True, None, 0.5
                parser = SSEParser()
                while (line := (yield ReadLine())) is not None:
                    sse = parser.feed(line)
                    if sse is None:
                        continue
                    items, done = handle(sse)
                    for item in items:
                        yield Emit(item)
                    if done:
                        return
            except ConnectionFailed:
                now = time.monotonic()
                failing_since = failing_since or now
                if not connected or now - failing_since > RECONNECT_SECONDS:
                    raise
            yield Sleep(pause)
            pause = min(pause * 2, 5.0)

    @operation
    def download_package(
        self,
        execution_id: int,
        destination: str | Path = ".",
        *,
        on_progress: Callable[[int, int | None], None] | None = None,
    ) -> Operation[Path]:
        """Save an ended execution's ZIP result package (execution.json, result.json,
        logs, artifacts, manifest.json). `destination` is a file, or a directory (an
        existing one, or one ending in "/", made if missing) for `execution-<id>.zip`.
        `on_progress(bytes_so_far, total_or_None)`."""
        found = yield from Operations.get_execution.build(self, execution_id)
        scope = yield from self._scope()
        path = Path(destination)
        if path.is_dir() or str(destination).endswith(("/", os.sep)):
            path.mkdir(parents=True, exist_ok=True)
            path = path / f"execution-{found.id}.zip"
        request = Request("GET", f"{scope}/actionexecution/downloadpackage/{_seg(found.uuid)}")
        yield Download(request, path, on_progress)
        return path

    @emits(str)
    def export(
        self, *, format: str = "jsonl", **filters: Unpack[ExecutionFilters]
    ) -> Operation[None]:
        """Every matching execution as lines of JSON (`jsonl`) or CSV (header first),
        streamed by the server however many there are."""
        query = _filters(filters)
        query["format"] = format
        yield Open(Request("GET", f"{V1}/executions/export", params=query))
        while (line := (yield ReadLine())) is not None:
            yield Emit(line)

    # --- flows (the flow dialect) -----------------------------------------------------

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
                (yield Request("GET", f"/api/flows/{_seg(flow)}")).json()["flow"]
            )
        except NotFound:
            pass
        named = [f for f in (yield from Operations.list_flows.build(self)) if f.name == flow]
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
        reply = yield Request("PUT", f"/api/flows/{_seg(flow_id)}", json=dict(definition))
        return Flow.model_validate(reply.json()["flow"])

    @operation
    def delete_flow(self, flow_id: str) -> Operation[None]:
        yield Request("DELETE", f"/api/flows/{_seg(flow_id)}")

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
        reply = yield Request("POST", f"/api/flows/{_seg(found.id)}/execute", json=body)
        return FlowExecution.model_validate(reply.json()["execution"])

    @operation
    def get_flow_execution(self, execution_id: str) -> Operation[FlowExecution]:
        reply = yield Request("GET", f"/api/history/executions/{_seg(execution_id)}")
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
            yield from self._poll(
                lambda: Operations.get_flow_execution.build(self, execution_id),
                lambda e: e.status in FLOW_TERMINAL,
                lambda e: (e.status, orjson.dumps(e.step_summary)),
                on_progress,
                timeout,
                interval,
                f"flow execution {execution_id}",
            )
        )

    # --- jobs (the tenant dialect) ----------------------------------------------------

    @operation
    def submit_job(self, job: Mapping[str, Any]) -> Operation[Job]:
        """Submit a job (`jobName`, `jobType`, `resource`, ...; see docs/api-tenant.md)."""
        scope = yield from self._scope()
        reply = yield Request("POST", f"{scope}/execution/job", json=dict(job))
        return Job.model_validate(reply.json())

    @operation
    def get_job(self, job_id: str) -> Operation[Job]:
        scope = yield from self._scope()
        return Job.model_validate(
            (yield Request("GET", f"{scope}/execution/job/{_seg(job_id)}")).json()
        )

    @operation
    def list_jobs(
        self, *, status: str | None = None, page: int = 1, page_size: int = 20
    ) -> Operation[dict[str, Any]]:
        """One page of jobs: `jobs`, `summary` and `hasNextPage` as the dialect has them."""
        scope = yield from self._scope()
        query = params(status=status, page=page, pageSize=page_size)
        listed: dict[str, Any] = (
            yield Request("GET", f"{scope}/execution/jobs", params=query)
        ).json()
        return listed

    @operation
    def cancel_job(self, job_id: str, *, force: bool = False) -> Operation[dict[str, Any]]:
        scope = yield from self._scope()
        body = {"forceTermination": force}
        answer: dict[str, Any] = (
            yield Request("DELETE", f"{scope}/execution/job/{_seg(job_id)}", json=body)
        ).json()
        return answer

    # --- triggers, rules, enforcements ------------------------------------------------

    @operation
    def list_triggers(self) -> Operation[list[Trigger]]:
        return [Trigger.model_validate(t) for t in _data((yield Request("GET", f"{V1}/triggers")))]

    @operation
    def get_trigger(self, ref: str) -> Operation[Trigger]:
        return Trigger.model_validate(_data((yield Request("GET", f"{V1}/triggers/{_seg(ref)}"))))

    @operation
    def create_trigger(self, definition: Mapping[str, Any]) -> Operation[Trigger]:
        """A webhook, timer or execution trigger (see docs/rules.md). A webhook's HMAC
        secret is in this answer only."""
        reply = yield Request("POST", f"{V1}/triggers", json=dict(definition))
        return Trigger.model_validate(_data(reply))

    @operation
    def update_trigger(self, ref: str, definition: Mapping[str, Any]) -> Operation[Trigger]:
        reply = yield Request("PUT", f"{V1}/triggers/{_seg(ref)}", json=dict(definition))
        return Trigger.model_validate(_data(reply))

    @operation
    def enable_trigger(self, ref: str, enabled: bool = True) -> Operation[Trigger]:
        """Enable or disable a trigger: a disabled one fires no rule."""
        reply = yield Request("PATCH", f"{V1}/triggers/{_seg(ref)}", json={"enabled": enabled})
        return Trigger.model_validate(_data(reply))

    @operation
    def delete_trigger(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/triggers/{_seg(ref)}")

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
        return Rule.model_validate(_data((yield Request("GET", f"{V1}/rules/{_seg(ref)}"))))

    @operation
    def create_rule(self, definition: Mapping[str, Any]) -> Operation[Rule]:
        reply = yield Request("POST", f"{V1}/rules", json=dict(definition))
        return Rule.model_validate(_data(reply))

    @operation
    def update_rule(self, ref: str, definition: Mapping[str, Any]) -> Operation[Rule]:
        reply = yield Request("PUT", f"{V1}/rules/{_seg(ref)}", json=dict(definition))
        return Rule.model_validate(_data(reply))

    @operation
    def enable_rule(self, ref: str, enabled: bool = True) -> Operation[Rule]:
        reply = yield Request("PATCH", f"{V1}/rules/{_seg(ref)}", json={"enabled": enabled})
        return Rule.model_validate(_data(reply))

    @operation
    def delete_rule(self, ref: str) -> Operation[None]:
        yield Request("DELETE", f"{V1}/rules/{_seg(ref)}")

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
        return Enforcement.model_validate(_data(reply))

    @operation
    def fire_webhook(self, ref: str, payload: Any = None) -> Operation[dict[str, Any]]:
        """Call a webhook trigger with the token; answers the enforcements it made."""
        reply = yield Request("POST", f"{V1}/webhooks/{_seg(ref)}", json=payload)
        fired: dict[str, Any] = _data(reply)
        return fired

    # --- packs: actions, flows, triggers and rules from one document ----------------

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
                applied.append(
                    (yield from self._apply("action", f"{V1}/actions", definition, wanted))
                )
            flows = {f.name: f for f in (yield from Operations.list_flows.build(self))}
            for definition in sections["flows"]:
                applied.append((yield from self._apply_flow(definition, flows)))
            for definition in sections["triggers"]:
                wanted = packs.wanted_trigger(definition)
                applied.append(
                    (yield from self._apply("trigger", f"{V1}/triggers", definition, wanted))
                )
            for definition in sections["rules"]:
                wanted = packs.wanted_rule(definition)
                applied.append((yield from self._apply("rule", f"{V1}/rules", definition, wanted)))
        except ClientError as exc:
            raise PartlyApplied(applied, exc) from exc
        return applied

    def _apply(
        self, kind: str, base: str, definition: Mapping[str, Any], wanted: Mapping[str, Any]
    ) -> Operation[Applied]:
        ref = definition["ref"]
        try:
            current = _data((yield Request("GET", f"{base}/{_seg(ref)}")))
        except NotFound:
            made = _data((yield Request("POST", base, json=dict(definition))))
            return Applied(kind=kind, ref=ref, outcome="created", secret=made.get("secret"))
        if packs.same(wanted, current):
            return Applied(kind=kind, ref=ref, outcome="unchanged")
        put = _data((yield Request("PUT", f"{base}/{_seg(ref)}", json=dict(definition))))
        return Applied(kind=kind, ref=ref, outcome="updated", secret=put.get("secret"))

    def _apply_flow(
        self, definition: Mapping[str, Any], flows: dict[str, Flow]
    ) -> Operation[Applied]:
        name = definition["name"]
        body = packs.resolve_flow(definition, {n: f.id for n, f in flows.items()})
        current = flows.get(name)
        if current is None:
            reply = yield Request("POST", "/api/flows", json=body)
            flows[name] = Flow.model_validate(reply.json()["flow"])
            return Applied(kind="flow", ref=name, outcome="created")
        if packs.same(packs.wanted_flow(body), current.model_dump(by_alias=True)):
            return Applied(kind="flow", ref=name, outcome="unchanged")
        reply = yield Request("PUT", f"/api/flows/{_seg(current.id)}", json=body)
        flows[name] = Flow.model_validate(reply.json()["flow"])
        return Applied(kind="flow", ref=name, outcome="updated")
