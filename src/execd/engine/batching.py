"""Group commit: concurrent callers share one transaction.

While one batch is being written, new requests queue up; the next batch takes all of
them. Under light load a request is written alone and at once; under heavy load
batches grow and the cost of each commit (an fsync on SQLite) is shared.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

Apply = Callable[[list[T]], Awaitable[Sequence[R | Exception]]]


class GroupCommit(Generic[T, R]):
    def __init__(self, apply: Apply[T, R], *, max_batch: int = 500) -> None:
        self._apply = apply
        self._max_batch = max_batch
        self._pending: list[tuple[T, asyncio.Future[R]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def __call__(self, item: T) -> R:
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
            return await self._apply(items)
        except Exception as exc:
            if len(items) == 1:
                return [exc]
        # One bad item must not fail the others: write them one by one.
        results: list[R | Exception] = []
        for item in items:
            try:
                results.extend(await self._apply([item]))
            except Exception as exc:
                results.append(exc)
        return results

    async def drain(self) -> None:
        if self._flusher is not None:
            await asyncio.gather(self._flusher, return_exceptions=True)
