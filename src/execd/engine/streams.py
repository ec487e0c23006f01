"""Live streams: execution events as they happen, and an execution's output as it is
written. Both resume where a client left off: events from a log position (the SSE
event id), output from a byte offset. The dialect turns what these yield into
Server-Sent Events or WebSocket messages."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from execd.domain.access import Principal
from execd.domain.states import TERMINAL, Status
from execd.engine.service import ExecutionService
from execd.errors import InvalidInput
from execd.store.artifacts import STREAMS
from execd.store.events import EventLog, LogEvent, Position

BATCH = 500
CHUNK = 64 * 1024
KEEPALIVE_SECONDS = 15.0


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


class LiveStreams:
    def __init__(self, log: EventLog, executions: ExecutionService, *, poll_seconds: float) -> None:
        self.log = log
        self.executions = executions
        self.poll_seconds = poll_seconds

    async def events(
        self, caller: Principal, f: EventFilter, after: Position | None
    ) -> AsyncIterator[list[LogEvent]]:
        """Batches of the caller's events that pass `f`, from after `after` (or from
        now), for ever. An empty batch now and then keeps the connection alive."""
        here = after if after is not None else await self.log.tail()
        quiet_since = time.monotonic()
        while True:
            found, here = await self.log.read(here, BATCH, caller.project_id)
            mine = [e for e in found if f.wants(e)]
            if mine or time.monotonic() - quiet_since > KEEPALIVE_SECONDS:
                quiet_since = time.monotonic()
                yield mine
            if len(found) < BATCH:
                await asyncio.sleep(self.poll_seconds)

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
