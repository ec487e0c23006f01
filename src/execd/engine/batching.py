"""Group commit: concurrent callers share one transaction.

While one batch is being written, new requests queue up; the next batch takes all of
them. Under light load a request is written alone and at once; under heavy load
batches grow and the cost of each commit (an fsync on SQLite) is shared.

The queue's two busiest writes go this way, each through a class named for it:
`Submissions.submit` (every accepted execution, from `ExecutionService`) writes with
`Queue.submit`, and `Reports.apply` (a worker's status changes) with `Queue.apply`.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Generic, TypeVar

from execd.domain.changes import Change
from execd.domain.executions import NewExecution
from execd.domain.states import Status
from execd.store.queue import Queue, Submitted

T = TypeVar("T")
R = TypeVar("R")


class GroupCommit(ABC, Generic[T, R]):
    """Items added by concurrent callers, written in batches by `write`."""

    def __init__(self, *, max_batch: int = 500) -> None:
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    @abstractmethod
    async def write(self, items: list[T]) -> Sequence[R | Exception]:
        """Write a batch in one transaction: each item's result or error, in order."""

    async def add(self, item: T) -> R:
        """The item's result once its batch is committed."""
        future: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._pending.append((item, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        while self._pending:
            batch = self._pending[: self._max_batch]
            del self._pending[: self._max_batch]
            results = await self._write([item for item, _ in batch])
            for (_, future), result in zip(batch, results, strict=True):
                if future.done():
                    continue
                if isinstance(result, Exception):
                    future.set_exception(result)
                else:
                    future.set_result(result)

    async def _write(self, items: list[T]) -> Sequence[R | Exception]:
        try:
            return await self.write(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        # One bad item must not fail the others: write them one by one.
        results: list[R | Exception] = []
        for item in items:
            try:
                results.extend(await self.write([item]))
            except Exception as exc:
                results.append(exc)
        return results

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)


class Submissions(GroupCommit[NewExecution, Submitted]):
    """New executions, stored by group commit."""

    def __init__(self, queue: Queue) -> None:
        super().__init__()
        self.queue = queue

    async def submit(self, new: NewExecution) -> Submitted:
        """Stored and committed when this returns."""
        return await self.add(new)

    async def write(self, items: list[NewExecution]) -> Sequence[Submitted | Exception]:
        return await self.queue.submit(items)


class Reports(GroupCommit[Change, "Status | None"]):
    """A worker's changes to the executions it runs (started, progress, outcome)."""

    def __init__(self, queue: Queue) -> None:
        super().__init__()
        self.queue = queue

    async def apply(self, change: Change) -> Status | None:
        """The status the change led to, or None where it was refused (the execution
        was cancelled, or is no longer this worker's)."""
        return await self.add(change)

    async def write(self, items: list[Change]) -> Sequence[Status | Exception | None]:
        return await self.queue.apply(items)
