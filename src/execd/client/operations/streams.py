"""Following executions as they go, over server-sent events: their events, and what
they write. A dropped connection is resumed where it stopped."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any

import orjson

from execd.client.errors import ConnectionFailed
from execd.client.models import TERMINAL, Event
from execd.client.operations.base import V1, OperationsBase, segment
from execd.client.protocol import (
    Emit,
    Open,
    Operation,
    ReadLine,
    Request,
    Sleep,
    SSEEvent,
    SSEParser,
    emits,
    params,
)

#: How long a stream keeps trying to reconnect to a server that has gone away.
RECONNECT_SECONDS = 60.0


def follow(
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


class StreamOperations(OperationsBase):
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

        yield from follow(request, handle)

    @emits(str)
    def follow_output(
        self, execution_id: int, stream: str = "stdout", *, offset: int = 0
    ) -> Operation[None]:
        """What the execution writes to `stream`, chunk by chunk as it writes it, from
        byte `offset`; ends when the execution has ended and all of it was given. A
        dropped connection is resumed from the last byte given."""
        path = f"{V1}/executions/{int(execution_id)}/output/{segment(stream)}/stream"

        def handle(sse: SSEEvent) -> tuple[list[Any], bool]:
            nonlocal offset
            data = orjson.loads(sse.data)
            if sse.event == "output":
                offset = int(sse.id or offset)
                return [data["data"]], False
            if sse.event == "reset":
                offset = 0
            return [], sse.event == "done"

        yield from follow(lambda: Request("GET", path, params={"offset": offset}), handle)
