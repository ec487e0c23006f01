from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from execd.engine.batching import GroupCommit


class Batches(GroupCommit[int, int]):
    def __init__(self, write: Callable[[list[int]], Awaitable[list[int | Exception]]], **kw: int):
        super().__init__(**kw)
        self._write_batch = write

    async def write(self, items: list[int]) -> Sequence[int | Exception]:
        return await self._write_batch(items)


def test_concurrent_callers_share_batches_and_a_bad_item_fails_alone() -> None:
    batches: list[list[int]] = []

    async def apply(items: list[int]) -> list[int | Exception]:
        batches.append(items)
        await asyncio.sleep(0.01)
        if 13 in items:
            raise RuntimeError("unlucky")
        return [i * 2 for i in items]

    async def main() -> list[object]:
        commit = Batches(apply, max_batch=50)
        return await asyncio.gather(*(commit.add(i) for i in range(100)), return_exceptions=True)

    results = asyncio.run(main())
    assert results[:13] == [i * 2 for i in range(13)]
    assert isinstance(results[13], RuntimeError)
    assert results[14:] == [i * 2 for i in range(14, 100)]
    assert batches[0] == list(range(50))
    assert batches[1:51] == [[i] for i in range(50)]  # the failed batch, one by one
    assert batches[51:] == [list(range(50, 100))]


def test_a_lone_caller_is_written_at_once() -> None:
    async def main() -> int:
        commit = Batches(_echo)
        return await asyncio.wait_for(commit.add(7), timeout=1)

    assert asyncio.run(main()) == 7


async def _echo(items: list[int]) -> list[int | Exception]:
    return list(items)
