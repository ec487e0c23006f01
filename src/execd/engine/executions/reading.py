"""Reading executions: searching and exporting them, their figures, history, output,
artifacts and result package, and the workers that run them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from functools import partial
from typing import BinaryIO

from execd.domain.access import Principal
from execd.domain.actions import Action
from execd.domain.errors import InvalidInput
from execd.domain.executions import (
    Brief,
    Execution,
    ExecutionFilter,
    ExecutionStats,
    Page,
    StatusEvent,
)
from execd.domain.states import TERMINAL
from execd.domain.workers import WorkerNode
from execd.engine import packages
from execd.engine.executions.base import ExecutionsBase


class Reading(ExecutionsBase):
    async def search(
        self, caller: Principal, f: ExecutionFilter, page: Page, *, with_total: bool = True
    ) -> tuple[list[Execution], int | None]:
        return await self.queries.search(caller.project_id, f, page, with_total=with_total)

    async def search_window(self, caller: Principal, f: ExecutionFilter, size: int) -> int | None:
        """The lowest id a search that reads at most `size` executions below
        `f.below_id` (in its `created` range) reaches; None: it reaches the oldest."""
        return await self.queries.window(caller.project_id, f, size)

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

    async def history(self, caller: Principal, execution_id: int) -> list[StatusEvent]:
        await self.get(caller, execution_id)
        return await self.queries.history(caller.project_id, execution_id)

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


def shown_name(caller: Principal, node: WorkerNode) -> str:
    """A worker's name as `caller` may see it. The default name (`hostname-pid`, set
    otherwise with EXECD_WORKER_NAME) says which machine runs it: others see
    `worker-<id>` instead of any name that holds the host's."""
    if caller.system or not node.host or node.host not in node.name:
        return node.name
    return f"worker-{node.id}"
