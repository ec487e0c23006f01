"""Live streams of the v1 dialect, as Server-Sent Events and over WebSocket:

- /api/v1/executions/stream: execution events (created, status, progress), filtered
  by execution, action and status, resumed from Last-Event-ID (or ?last_event_id=).
- /api/v1/executions/{id}/output/{stdout|stderr}/stream: the output as it is
  written, resumed from a byte offset (Last-Event-ID or ?offset=), then `done`.

Each SSE event carries `id:`; a WebSocket message is the same event as one JSON object
{"id", "event", "data"}. WebSocket errors are one {"error", "status"} message, then a
close with code 4000 + status.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Annotated, Any

import orjson
from fastapi import APIRouter, Header, Path, Query, WebSocket, WebSocketDisconnect
from fastapi.responses import StreamingResponse

from execd.api.deps import RuntimeDep, StreamCaller, get_stream_caller
from execd.api.dialects.v1 import wire
from execd.api.responses import Frame, sse_response
from execd.domain.access import Principal
from execd.domain.errors import ExecdError, InvalidInput
from execd.domain.events import LogEvent, Position
from execd.domain.executions import MAX_ID, STREAMS
from execd.domain.states import parse_status
from execd.engine.streams import Done, EventFilter, Output, Reset, position
from execd.runtime import Runtime

router = APIRouter(prefix="/executions", tags=["v1 streams"])


def _event(e: LogEvent) -> Frame:
    data = {
        "execution": e.execution_id,
        "action_ref": e.action_ref,
        "from_status": e.from_status,
        "status": e.to_status,
        "at": wire.iso(e.at),
        "attempt": e.attempt,
        "message": e.message,
    }
    if e.kind == "progress":
        data["progress"] = e.data
    return (str(e.position), e.kind, data)


def _filter(execution: int | None, action_ref: str | None, status: str | None) -> EventFilter:
    statuses = None
    if status:
        try:
            statuses = frozenset(parse_status(s).value for s in status.split(","))
        except ValueError as exc:
            raise InvalidInput(str(exc)) from None
    return EventFilter(execution, action_ref, statuses)


async def _event_frames(
    runtime: Runtime, caller: Principal, f: EventFilter, start: Position | None
) -> AsyncIterator[Frame]:
    async for batch in runtime.streams.events(caller, f, start):
        if not batch:
            yield None
        for e in batch:
            yield _event(e)


def _offset(value: str | None) -> int:
    if value is None or not value.strip():
        return 0
    if not re.fullmatch(r"[0-9]{1,18}", value.strip()):
        raise InvalidInput("The offset (or Last-Event-ID) is a byte offset: 0 or more")
    return int(value)


async def _output_frames(
    runtime: Runtime, caller: Principal, execution_id: int, stream: str, offset: int
) -> AsyncIterator[Frame]:
    async for item in runtime.streams.output(caller, execution_id, stream, offset):
        if isinstance(item, Output):
            text = item.data.decode("utf-8", errors="replace")
            yield (str(item.end), "output", {"offset": item.offset, "data": text})
        elif isinstance(item, Reset):
            yield ("0", "reset", {"offset": 0})
        elif isinstance(item, Done):
            yield (str(item.offset), "done", {"status": item.status.value, "offset": item.offset})
        else:
            yield None


Status = Annotated[str | None, Query(max_length=200, description="Statuses, comma-separated")]
ExecutionId = Annotated[int | None, Query(ge=1, le=MAX_ID)]
ActionRef = Annotated[str | None, Query(max_length=300)]


@router.get("/stream", summary="Execution events, live (Server-Sent Events)")
async def event_stream(
    runtime: RuntimeDep,
    caller: StreamCaller,
    execution: ExecutionId = None,
    action_ref: ActionRef = None,
    status: Status = None,
    last_event_id_query: Annotated[str | None, Query(alias="last_event_id", max_length=60)] = None,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
) -> StreamingResponse:
    f = _filter(execution, action_ref, status)
    resume = last_event_id or last_event_id_query
    # A bad id is a 400 before the stream starts; without one the stream starts now,
    # before the answer: what the client does once it has it is seen.
    start = position(resume) or await runtime.streams.now()
    return sse_response(_event_frames(runtime, caller, f, start))


@router.get(
    "/{execution_id:id}/output/{stream}/stream",
    summary="An execution's stdout or stderr, live (Server-Sent Events)",
)
async def output_stream(
    runtime: RuntimeDep,
    caller: StreamCaller,
    execution_id: Annotated[int, Path(le=MAX_ID)],
    stream: str,
    offset: Annotated[str | None, Query(max_length=20)] = None,
    last_event_id: Annotated[str | None, Header(max_length=60)] = None,
) -> StreamingResponse:
    start = _offset(last_event_id if last_event_id is not None else offset)
    if stream not in STREAMS:
        raise InvalidInput(f"Unknown stream {stream!r}: use stdout or stderr")
    await runtime.executions.get(caller, execution_id)  # a 404 before the stream starts
    return sse_response(_output_frames(runtime, caller, execution_id, stream, start))


_END = object()


async def _serve(websocket: WebSocket, frames: AsyncGenerator[Frame, None]) -> None:
    """Send frames until they end or the client goes (noticed at once, even while no
    frame is due); errors become one error message and a close code."""

    async def watch() -> None:  # what the client sends is ignored, until it leaves
        while (await websocket.receive())["type"] != "websocket.disconnect":
            pass

    watcher = asyncio.create_task(watch())
    try:
        while True:
            step: asyncio.Future[Any] = asyncio.ensure_future(anext(frames, _END))
            await asyncio.wait({step, watcher}, return_when=asyncio.FIRST_COMPLETED)
            if not step.done():  # the client left
                step.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await step
                return
            frame = step.result()
            if frame is _END:
                await websocket.close()
                return
            if frame is None:
                continue
            event_id, event, data = frame
            await websocket.send_text(
                orjson.dumps({"id": event_id, "event": event, "data": data}).decode()
            )
    except ExecdError as exc:
        await websocket.send_text(
            orjson.dumps({"error": exc.message, "status": exc.status_code}).decode()
        )
        await websocket.close(code=4000 + exc.status_code)
    except WebSocketDisconnect:
        pass
    finally:
        watcher.cancel()
        with contextlib.suppress(Exception):
            await frames.aclose()  # leaves the event hub now, not when collected


# A WebSocket handshake that fails FastAPI's validation is answered with a bare 403,
# not the dialect's error: so the sockets take their query as text and check it here,
# where an error becomes the {"error", "status"} message and close code 4400.


def _text(websocket: WebSocket, name: str, longest: int) -> str | None:
    value = websocket.query_params.get(name)
    if value is not None and len(value) > longest:
        raise InvalidInput(f"{name} has at most {longest} characters")
    return value


def _id(websocket: WebSocket, name: str) -> int | None:
    value = _text(websocket, name, 20)
    if value is None or value == "":
        return None
    if not re.fullmatch(r"[0-9]{1,19}", value) or not 1 <= int(value) <= MAX_ID:
        raise InvalidInput(f"{name} is an id: a whole number from 1 to {MAX_ID}")
    return int(value)


async def _ws_caller(websocket: WebSocket) -> Principal:
    token = _text(websocket, "token", 500)
    return await get_stream_caller(websocket, websocket.headers.get("authorization"), token)


@router.websocket("/stream")
async def event_socket(websocket: WebSocket) -> None:
    """Query: execution, action_ref, status, last_event_id, token (as the SSE route)."""
    await websocket.accept()

    async def frames() -> AsyncGenerator[Frame, None]:
        caller = await _ws_caller(websocket)
        f = _filter(
            _id(websocket, "execution"),
            _text(websocket, "action_ref", 300),
            _text(websocket, "status", 200),
        )
        resume = _text(websocket, "last_event_id", 60)
        runtime = websocket.app.state.runtime
        async for frame in _event_frames(runtime, caller, f, position(resume)):
            yield frame

    await _serve(websocket, frames())


@router.websocket("/{execution_id}/output/{stream}/stream")
async def output_socket(websocket: WebSocket, execution_id: str, stream: str) -> None:
    """Query: offset, token."""
    await websocket.accept()

    async def frames() -> AsyncGenerator[Frame, None]:
        caller = await _ws_caller(websocket)
        if not re.fullmatch(r"[0-9]{1,19}", execution_id) or int(execution_id) > MAX_ID:
            raise InvalidInput(f"Invalid execution id {execution_id[:30]!r}")
        runtime = websocket.app.state.runtime
        start = _offset(_text(websocket, "offset", 20))
        async for frame in _output_frames(runtime, caller, int(execution_id), stream, start):
            yield frame

    await _serve(websocket, frames())
