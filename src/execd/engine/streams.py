"""Live streams: execution events as they happen, and an execution's output as it is
written. Both resume where a client left off: events from a log position (the SSE
event id), output from a byte offset. The dialect turns what these yield into
Server-Sent Events or WebSocket messages.

Event streams share one reader per process (EventHub): a stream reads the log itself
only to catch up (resuming from an old id, or after falling behind), then the hub
feeds it, so a thousand open streams cost one log read per poll, not a thousand."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog

from execd.domain.access import Principal
from execd.domain.errors import InvalidInput
from execd.domain.events import LogEvent, Position
from execd.domain.executions import STREAMS
from execd.domain.states import TERMINAL, Status
from execd.engine.executions import ExecutionService
from execd.store.events import EventLog
from execd.store.signals import EVENTS

BATCH = 500
BACKLOG = 10 * BATCH  # events a stream may leave unsent before it reads for itself
READ_GAP = 0.02  # the event hub reads the log at most 50 times a second
RECHECK_SECONDS = 0.1  # how often the hub looks again while what woke it is not final
CHUNK = 64 * 1024
KEEPALIVE_SECONDS = 15.0

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class EventFilter:
    execution_id: int | None = None
    action_ref: str | None = None
    statuses: frozenset[str] | None = None

    def wants(self, event: LogEvent) -> bool:
        if self.execution_id is not None and event.execution_id != self.execution_id:
            return False
        if self.action_ref is not None and event.action_ref != self.action_ref:
            return False
        return self.statuses is None or event.to_status in self.statuses


@dataclass(frozen=True)
class Output:
    offset: int  # where `data` starts in the log
    data: bytes

    @property
    def end(self) -> int:
        return self.offset + len(self.data)


@dataclass(frozen=True)
class Reset:
    """The log started again (a new attempt): what follows starts at offset 0."""


@dataclass(frozen=True)
class Done:
    status: Status
    offset: int  # the log's final size


def position(text: str | None) -> Position | None:
    if text is None or not text.strip():
        return None
    try:
        return Position.parse(text)
    except ValueError:
        raise InvalidInput("Last-Event-ID is not an event id of this stream") from None


def utf8_cut(data: bytes) -> int:
    """How much of `data` ends on a character boundary (at most 3 bytes are held back,
    so a multi-byte character is never split between two messages)."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte < 0x80:
            return len(data)  # ASCII: complete
        if byte >= 0xC0:  # a lead byte: complete only if all its bytes are here
            need = 2 if byte < 0xE0 else 3 if byte < 0xF0 else 4
            return len(data) if back >= need else len(data) - back
    return len(data)


class Follower:
    """An event stream that has caught up, as the hub sees it: the events of its project
    that pass its filter wait in `pending` until the stream takes them."""

    def __init__(self, project_id: str, f: EventFilter, after: Position) -> None:
        self.project_id = project_id
        self.filter = f
        self.after = after  # the stream has read this far: the hub may offer older events
        self.pending: list[LogEvent] = []
        self.behind = False  # let go by the hub: read for yourself
        self._ready = asyncio.Event()

    def offer(self, events: list[LogEvent]) -> bool:
        """Queue what this stream wants; False (and let go) if it is too far behind."""
        wanted = [
            e
            for e in events
            if e.position > self.after and e.project_id == self.project_id and self.filter.wants(e)
        ]
        if len(self.pending) + len(wanted) > BACKLOG:
            self.let_go()
            return False
        if wanted:
            self.pending += wanted
            self._ready.set()
        return True

    def let_go(self) -> None:
        self.behind = True
        self._ready.set()

    async def take(self, timeout: float) -> list[LogEvent]:
        """What is pending, waiting up to `timeout` for something (empty if nothing)."""
        if not self.pending and not self.behind:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), timeout)
        taken, self.pending = self.pending, []
        return taken


class EventHub:
    """Follows the event log for every caught-up stream of this process, in one read
    per poll across all projects. It runs while it has followers. A follower that lets
    more than BACKLOG events pile up (a slow client) is let go, and catches up by
    reading for itself: nothing is dropped, and memory stays bounded."""

    def __init__(self, log: EventLog, *, poll_seconds: float) -> None:
        self.log = log
        self.poll_seconds = poll_seconds
        self.followers: set[Follower] = set()
        self.position: Position | None = None  # everything up to here has been offered
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None  # while it runs: what wakes it
        self._closed = False

    def join(self, follower: Follower, tail: Position) -> Position | None:
        """Feed `follower` every event after the returned position: the hub's own, or,
        if it is not running, `tail` (the log's end, read just before). Never a
        stream's own position: a resumed one may be far back (the hub would re-read
        the log for everyone) or, from a forged id, far ahead (it would skip).
        None once the hub is closed (the server is stopping)."""
        if self._closed:
            return None
        if self.position is None:
            self.position = tail
        self.followers.add(follower)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="execd-event-hub")
        elif self._wake is not None:
            self._wake.set()  # the stream may wait for events not yet final: look now
        return self.position

    def leave(self, follower: Follower) -> None:
        self.followers.discard(follower)

    async def _run(self) -> None:
        # Events this process writes wake the hub at once; other processes' events are
        # found by polling. Reads are at least READ_GAP apart, however busy the log is.
        # On PostgreSQL a committed event can wait behind an older transaction still
        # open anywhere in the cluster (the horizon, store/events.py): while what woke
        # the hub waits there, it looks again every RECHECK_SECONDS, not only at the
        # next poll. Starting, or a stream joining, counts as a wake-up: what that
        # stream waits for may have been written before.
        self._wake = written = self.log.db.signals.subscribe(EVENTS)
        woken = True
        try:
            while self.followers and self.position is not None:
                written.clear()  # before the read: what commits during it wakes the next
                found, here = await self.log.read(self.position, BATCH)
                # No await from here on: a stream that joins sees either all of this
                # batch (offered below) or none of it (its gap read covers it).
                for follower in list(self.followers):
                    if not follower.offer(found):
                        self.followers.discard(follower)
                self.position = here
                if len(found) < BATCH:
                    woken = woken and await self.log.pending(here)
                    wait = min(self.poll_seconds, RECHECK_SECONDS) if woken else self.poll_seconds
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(written.wait(), wait)
                        woken = True
                    await asyncio.sleep(READ_GAP)
        except Exception as exc:  # the streams read for themselves and meet the error
            log.warning("event hub stopped", error=str(exc))
            for follower in self.followers:
                follower.let_go()
            self.followers.clear()
        finally:
            self._wake = None
            self.log.db.signals.unsubscribe(EVENTS, written)
            if not self.followers:
                self.position = None  # the next stream to join starts it where it is

    async def close(self) -> None:
        """Stop following for good (the server is stopping): open streams end."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for follower in self.followers:
            follower.let_go()
        self.followers.clear()
        self.position = None


class LiveStreams:
    def __init__(self, log: EventLog, executions: ExecutionService, *, poll_seconds: float) -> None:
        self.log = log
        self.executions = executions
        self.poll_seconds = poll_seconds
        self.hub = EventHub(log, poll_seconds=poll_seconds)

    async def now(self) -> Position:
        """Where a stream starts that wants only what happens from now on."""
        return await self.log.tail()

    async def events(
        self, caller: Principal, f: EventFilter, after: Position | None
    ) -> AsyncIterator[list[LogEvent]]:
        """Batches of the caller's events that pass `f`, from after `after` (or from
        now), for ever. An empty batch now and then keeps the connection alive."""
        here = after if after is not None else await self.log.tail()
        project = caller.project_id
        quiet_since = time.monotonic()
        while True:
            # Catch up by reading for ourselves ...
            found, here = await self.log.read(here, BATCH, project)
            mine = [e for e in found if f.wants(e)]
            if mine or time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield mine
            if len(found) == BATCH:
                continue
            # ... then follow the hub, from the first event we have not read.
            tail = await self.log.tail()
            follower = Follower(project, f, here)
            start = self.hub.join(follower, tail)
            if start is None:
                return  # the server is stopping; the client resumes elsewhere
            try:
                while here < start:  # the hub is ahead: read up to it ourselves
                    found, read_to = await self.log.read(here, BATCH, project)
                    if mine := [e for e in found if f.wants(e)]:
                        quiet_since = time.monotonic()
                        yield mine
                    # A short read saw every final event of ours, and all up to
                    # `start` were final when the hub read them.
                    here = read_to if len(found) == BATCH else max(read_to, start)
                while not follower.behind or follower.pending:
                    taken = await follower.take(KEEPALIVE_SECONDS)
                    mine = [e for e in taken if e.position > here]  # none read twice
                    if mine:
                        here = mine[-1].position
                    if mine or time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                        quiet_since = time.monotonic()
                        yield mine
            finally:
                self.hub.leave(follower)

    async def output(
        self, caller: Principal, execution_id: int, stream: str, offset: int
    ) -> AsyncIterator[Output | Reset | Done | None]:
        """The output from byte `offset` as it is written, then Done once the execution
        has ended and everything is sent. None now and then keeps the connection alive."""
        if stream not in STREAMS:
            raise InvalidInput(f"Unknown stream {stream!r}: use stdout or stderr")
        execution = await self.executions.get(caller, execution_id)
        artifacts = self.executions.artifacts
        quiet_since = time.monotonic()
        while True:
            ended = execution.status in TERMINAL  # read before the file: nothing is missed
            data, size = await asyncio.to_thread(
                artifacts.read_output_from, execution, stream, offset, CHUNK
            )
            if ended and offset >= size:
                yield Done(execution.status, size)
                return
            if size < offset:  # a new attempt started its log afresh
                offset = 0
                yield Reset()
                continue
            if data:
                cut = utf8_cut(data) if offset + len(data) < size or not ended else len(data)
                if cut:
                    yield Output(offset, data[:cut])
                    offset += cut
                    quiet_since = time.monotonic()
                    continue
            if time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield None
            await asyncio.sleep(self.poll_seconds)
            execution = await self.executions.get(caller, execution_id)
