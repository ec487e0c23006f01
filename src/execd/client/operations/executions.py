"""Executions: submitting them, finding them, acting on them, waiting for them, and
what they leave (history, output, statistics, result packages, exports)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from pathlib import Path
from typing import Any, TypedDict, Unpack

from execd.client.errors import ClientError
from execd.client.models import (
    TERMINAL,
    Batch,
    Execution,
    ExecutionSummary,
    Page,
    Pagination,
    Stats,
    StatusChange,
)
from execd.client.operations.base import V1, OperationsBase, data_of, poll, segment, when
from execd.client.protocol import (
    Download,
    Emit,
    Open,
    Operation,
    ReadLine,
    Request,
    emits,
    operation,
    params,
)


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
        created_after=when(filters.get("created_after")),
        created_before=when(filters.get("created_before")),
    )


def _bulk(ids: Iterable[int] | None, filter: Mapping[str, Any] | None) -> dict[str, Any]:
    if (ids is None) == (filter is None):
        raise ClientError("give ids or a filter, not both")
    if ids is not None:
        return {"ids": [int(i) for i in ids]}
    return {"filter": {k: when(v) for k, v in dict(filter or {}).items() if v is not None}}


class ExecutionOperations(OperationsBase):
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
            "not_before": when(not_before),
            "idempotency_key": idempotency_key,
            "parent": parent,
        }
        body = {k: v for k, v in body.items() if v is not None}
        reply = yield Request("POST", f"{V1}/executions/execute", json=body)
        return Execution.model_validate(data_of(reply))

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
            {k: when(v) if k == "not_before" else v for k, v in e.items() if v is not None}
            for e in executions
        ]
        body = {"executions": items, "atomic": atomic}
        reply = yield Request("POST", f"{V1}/executions/batch", json=body)
        return Batch.model_validate(reply.json())

    @operation
    def get_execution(self, execution_id: int) -> Operation[Execution]:
        reply = yield Request("GET", f"{V1}/executions/{int(execution_id)}")
        return Execution.model_validate(data_of(reply))

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
        return Execution.model_validate(data_of(reply))

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
        return Execution.model_validate(data_of(reply))

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
        body = _bulk(ids, filter)
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
        body = _bulk(ids, filter)
        bulk: dict[str, Any] = (
            yield Request("POST", f"{V1}/executions/bulk/delete", json=body)
        ).json()
        return bulk

    @operation
    def history(self, execution_id: int) -> Operation[list[StatusChange]]:
        """Every status change of an execution, oldest first."""
        reply = yield Request("GET", f"{V1}/executions/{int(execution_id)}/history")
        return [StatusChange.model_validate(e) for e in data_of(reply)]

    @operation
    def output(self, execution_id: int, stream: str = "stdout") -> Operation[str]:
        """What the execution wrote to stdout or stderr so far, as kept."""
        path = f"{V1}/executions/{int(execution_id)}/output/{segment(stream)}"
        reply = yield Request("GET", path)
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
        query = params(group_by=group_by, bucket=bucket, since=when(since), until=when(until))
        reply = yield Request("GET", f"{V1}/executions/stats", params=query)
        return Stats.model_validate(data_of(reply))

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
            yield from poll(
                lambda: ExecutionOperations.get_execution.build(self, execution_id),
                lambda e: e.status in TERMINAL,
                lambda e: (e.status, e.progress),
                on_progress,
                timeout,
                interval,
                f"execution {execution_id}",
            )
        )

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
        found = yield from ExecutionOperations.get_execution.build(self, execution_id)
        scope = yield from self._scope()
        path = Path(destination)
        if path.is_dir() or str(destination).endswith(("/", os.sep)):
            path.mkdir(parents=True, exist_ok=True)
            path = path / f"execution-{found.id}.zip"
        request = Request("GET", f"{scope}/actionexecution/downloadpackage/{segment(found.uuid)}")
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
