"""Event streams share one reader per process (engine/streams.py, EventHub), on both
backends: every stream gets exactly its own events, in order, whether it follows the
hub, resumes from an old position while the hub is ahead, or falls so far behind
that the hub lets it go; and many open streams cost one log read per poll."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, cast

import pytest
from sqlalchemy import Connection, insert

from execd.domain.access import Principal
from execd.domain.events import LogEvent, Position
from execd.engine import streams as streams_module
from execd.engine.executions import ExecutionService
from execd.engine.streams import EventFilter, LiveStreams
from execd.store import events as log
from execd.store.database import Database
from execd.store.events import EventLog
from execd.store.schema import execution_events

Run = Callable[[Callable[[Database], Awaitable[Any]]], Any]
POLL = 0.02


class CountingLog(EventLog):
    """Counts reads of one project (a stream reading for itself) and of all (the hub)."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.own_reads = 0
        self.shared_reads = 0

    async def read(
        self, after: Position, limit: int, project_id: str | None = None
    ) -> tuple[list[LogEvent], Position]:
        if project_id is None:
            self.shared_reads += 1
        else:
            self.own_reads += 1
        return await super().read(after, limit, project_id)


def caller(project: str) -> Principal:
    return Principal(token_id=1, tenant_id="t", project_id=project, role="viewer", name="v")


async def write(db: Database, project: str, execution_ids: range, status: str = "running") -> None:
    rows = [
        {
            "execution_id": n,
            "tenant_id": "t",
            "project_id": project,
            "from_status": None,
            "to_status": status,
            "at": 0.0,
            "attempt": 1,
        }
        for n in execution_ids
    ]

    def insert_rows(conn: Connection) -> None:
        conn.execute(insert(execution_events).values(txid=log.current_txid()), rows)

    await db.write(insert_rows)


async def until(condition: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    for _ in range(int(timeout / POLL)):
        if condition():
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}")


async def final(db: Database, origin: Position, count: int, timeout: float = 20.0) -> None:
    """Until `count` events after `origin` can be read: on PostgreSQL an event is read
    once no older transaction of the cluster is open (tests of other databases too)."""

    for _ in range(int(timeout / POLL)):
        if len((await EventLog(db).read(origin, count))[0]) >= count:
            return
        await asyncio.sleep(POLL)
    raise AssertionError(f"timed out waiting for {count} events to be final")


async def collect(
    stream: AsyncIterator[list[LogEvent]], count: int, timeout: float = 20.0
) -> list[LogEvent]:
    got: list[LogEvent] = []

    async def run() -> None:
        async for batch in stream:
            got.extend(batch)
            if len(got) >= count:
                return

    await asyncio.wait_for(run(), timeout)
    return got


def test_streams_share_one_reader_and_get_their_own_events(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        counting = CountingLog(db)
        live = LiveStreams(counting, cast(ExecutionService, None), poll_seconds=POLL)
        start = await counting.tail()
        alphas = [live.events(caller("alpha"), EventFilter(), start) for _ in range(40)]
        betas = [live.events(caller("beta"), EventFilter(), start) for _ in range(40)]
        picky = live.events(caller("alpha"), EventFilter(statuses=frozenset({"failed"})), start)
        tasks = [asyncio.create_task(collect(s, 30)) for s in alphas]
        tasks += [asyncio.create_task(collect(s, 10)) for s in betas]
        picky_task = asyncio.create_task(collect(picky, 5))
        await until(lambda: len(live.hub.followers) == 81, "all streams to follow the hub")
        own_before, shared_before = counting.own_reads, counting.shared_reads
        for round_ in range(5):
            await write(db, "alpha", range(round_ * 6, round_ * 6 + 5))
            await write(db, "alpha", range(round_ * 6 + 5, round_ * 6 + 6), "failed")
            await write(db, "beta", range(1000 + round_ * 2, 1000 + round_ * 2 + 2))
            await asyncio.sleep(POLL * 2)
        results = await asyncio.gather(*tasks)
        picked = await picky_task

        for got in results[:40]:
            assert [e.execution_id for e in got] == list(range(30))
        for got in results[40:]:
            assert [e.execution_id for e in got] == list(range(1000, 1010))
        assert [e.execution_id for e in picked] == [5, 11, 17, 23, 29]
        # Once following, no stream read the log itself: the hub's reads fed all 81.
        assert counting.own_reads == own_before
        assert counting.shared_reads > shared_before
        for stream in [*alphas, *betas, picky]:
            await stream.aclose()
        assert not live.hub.followers
        await live.hub.close()

    with_db(scenario)


def test_a_stream_resuming_behind_the_hub_misses_nothing(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        live = LiveStreams(EventLog(db), cast(ExecutionService, None), poll_seconds=POLL)
        origin = await live.log.tail()
        follower = live.events(caller("p"), EventFilter(), None)
        first = asyncio.create_task(collect(follower, 20))
        await until(lambda: bool(live.hub.followers), "the stream to follow the hub")
        # Other projects' events move the hub on without this project's streams.
        for n in range(10):
            await write(db, "p", range(n, n + 1))
            await write(db, "other", range(500 + n, 501 + n))
        _, last = await live.log.read(origin, 100)
        await until(lambda: (live.hub.position or origin) >= last, "the hub to pass the writes")
        late = live.events(caller("p"), EventFilter(), origin)  # resumes from before
        second = asyncio.create_task(collect(late, 20))
        await asyncio.sleep(POLL * 5)
        for n in range(10, 20):
            await write(db, "p", range(n, n + 1))
        assert [e.execution_id for e in await first] == list(range(20))
        resumed = await second
        assert [e.execution_id for e in resumed] == list(range(20))
        assert len({e.position for e in resumed}) == 20
        await follower.aclose()
        await late.aclose()
        await live.hub.close()

    with_db(scenario)


def test_a_stream_too_far_behind_is_let_go_and_catches_up(
    with_db: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams_module, "BACKLOG", 10)

    async def scenario(db: Database) -> None:
        live = LiveStreams(EventLog(db), cast(ExecutionService, None), poll_seconds=POLL)
        slow = live.events(caller("p"), EventFilter(), None)
        first = asyncio.create_task(anext(slow))
        await until(lambda: bool(live.hub.followers), "the stream to follow the hub")
        (follower,) = live.hub.followers
        await write(db, "p", range(0, 1))
        assert [e.execution_id for e in await first] == [0]
        for n in range(1, 61, 4):  # 60 more while the stream takes none
            await write(db, "p", range(n, n + 4))
        await until(lambda: follower.behind, "the hub to let the stream go")
        assert live.hub.followers == set()  # let go: the hub holds nothing more for it
        assert len(follower.pending) <= 10
        got = await collect(slow, 60)
        assert [e.execution_id for e in got] == list(range(1, 61))
        await write(db, "p", range(61, 62))
        assert [e.execution_id for e in await collect(slow, 1)] == [61]
        assert len(live.hub.followers) == 1  # caught up, it follows the hub again
        await slow.aclose()
        await live.hub.close()

    with_db(scenario)


class GatedLog(EventLog):
    """A log whose hub reads (all projects) and `tail` calls can be held at a gate, to
    force the interleavings a join must survive."""

    def __init__(self, db: Database) -> None:
        super().__init__(db)
        self.hub_gate = asyncio.Event()
        self.tail_gate = asyncio.Event()
        self.hub_gate.set()
        self.tail_gate.set()
        self.held: set[str] = set()
        self.hub_reads = 0  # reads the hub has finished

    async def _pass(self, gate: asyncio.Event, name: str) -> None:
        if not gate.is_set():
            self.held.add(name)
            await gate.wait()
            self.held.discard(name)

    async def read(
        self, after: Position, limit: int, project_id: str | None = None
    ) -> tuple[list[LogEvent], Position]:
        if project_id is None:
            await self._pass(self.hub_gate, "hub")
        found = await super().read(after, limit, project_id)
        self.hub_reads += project_id is None
        return found

    async def tail(self) -> Position:
        await self._pass(self.tail_gate, "tail")
        return await super().tail()


def test_a_stream_that_read_ahead_of_the_hub_gets_nothing_twice(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        gated = GatedLog(db)
        live = LiveStreams(gated, cast(ExecutionService, None), poll_seconds=POLL)
        origin = await gated.tail()
        first = live.events(caller("p"), EventFilter(), origin)
        first_got = asyncio.create_task(collect(first, 4))
        await until(lambda: bool(live.hub.followers), "the first stream to follow the hub")
        gated.hub_gate.clear()
        await until(lambda: "hub" in gated.held, "the hub to wait at its gate")
        await write(db, "p", range(1, 4))  # the hub has not read these ...
        second = live.events(caller("p"), EventFilter(), origin)
        second_got = asyncio.create_task(collect(second, 4))
        await until(lambda: len(live.hub.followers) == 2, "the second stream to join")
        # ... but the second stream has, before joining: the hub offers them again.
        gated.hub_gate.set()
        await write(db, "p", range(4, 5))
        assert [e.execution_id for e in await first_got] == [1, 2, 3, 4]
        assert [e.execution_id for e in await second_got] == [1, 2, 3, 4]
        await first.aclose()
        await second.aclose()
        await live.hub.close()

    with_db(scenario)


def test_a_stream_far_ahead_of_the_hub_is_not_let_go_for_what_it_has_read(
    with_db: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams_module, "BACKLOG", 5)

    async def scenario(db: Database) -> None:
        gated = GatedLog(db)
        live = LiveStreams(gated, cast(ExecutionService, None), poll_seconds=POLL)
        origin = await gated.tail()
        first = live.events(caller("p"), EventFilter(), origin)
        first_got = asyncio.create_task(anext(first))
        await until(lambda: bool(live.hub.followers), "the first stream to follow the hub")
        (following,) = live.hub.followers
        gated.hub_gate.clear()
        await until(lambda: "hub" in gated.held, "the hub to wait at its gate")
        await write(db, "other", range(1, 2))
        await write(db, "p", range(2, 12))  # more than BACKLOG the hub has not read
        await final(db, origin, 11)
        second = live.events(caller("p"), EventFilter(), origin)
        assert [e.execution_id for e in await collect(second, 10)] == list(range(2, 12))
        second_next = asyncio.create_task(anext(second))
        await until(lambda: len(live.hub.followers) == 2, "the second stream to join")
        (joined,) = live.hub.followers - {following}
        reads = gated.hub_reads
        gated.hub_gate.set()
        await until(lambda: gated.hub_reads > reads + 1, "the hub to read what was held")
        assert joined in live.hub.followers and not joined.behind and joined.pending == []
        await write(db, "p", range(12, 13))
        assert [e.execution_id for e in await second_next] == [12]
        first_got.cancel()
        await first.aclose()
        await second.aclose()
        await live.hub.close()

    with_db(scenario)


def test_a_stream_behind_the_hub_reads_the_gap_in_full(
    with_db: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(streams_module, "BATCH", 2)  # the gap takes several reads

    async def scenario(db: Database) -> None:
        gated = GatedLog(db)
        live = LiveStreams(gated, cast(ExecutionService, None), poll_seconds=POLL)
        origin = await gated.tail()
        first = live.events(caller("p"), EventFilter(), origin)
        first_got = asyncio.create_task(collect(first, 6))
        await until(lambda: bool(live.hub.followers), "the first stream to follow the hub")
        gated.tail_gate.clear()
        second = live.events(caller("p"), EventFilter(), origin)
        second_got = asyncio.create_task(collect(second, 6))
        await until(lambda: "tail" in gated.held, "the second stream to be about to join")
        # Caught up (nothing yet), it is held before joining while the hub moves on.
        await write(db, "p", range(1, 6))
        _, last = await gated.read(origin, 100)
        await until(lambda: (live.hub.position or origin) >= last, "the hub to pass the writes")
        gated.tail_gate.set()
        await until(lambda: len(live.hub.followers) == 2, "the second stream to join")
        await write(db, "p", range(6, 7))
        assert [e.execution_id for e in await first_got] == [1, 2, 3, 4, 5, 6]
        assert [e.execution_id for e in await second_got] == [1, 2, 3, 4, 5, 6]
        await first.aclose()
        await second.aclose()
        await live.hub.close()

    with_db(scenario)


def test_a_forged_position_does_not_move_the_hub(with_db: Run) -> None:
    async def scenario(db: Database) -> None:
        live = LiveStreams(EventLog(db), cast(ExecutionService, None), poll_seconds=POLL)
        far = Position(log.MAX_ID - 1, log.MAX_ID - 1)
        forged = live.events(caller("evil"), EventFilter(), far)  # starts the hub
        forged_task = asyncio.create_task(collect(forged, 1, timeout=60))
        await until(lambda: bool(live.hub.followers), "the forged stream to join")
        victim = live.events(caller("victim"), EventFilter(), None)
        victim_got = asyncio.create_task(collect(victim, 3))
        await until(lambda: len(live.hub.followers) == 2, "the victim to join")
        await write(db, "victim", range(1, 4))
        assert [e.execution_id for e in await victim_got] == [1, 2, 3]
        forged_task.cancel()
        await victim.aclose()
        await live.hub.close()

    with_db(scenario)
