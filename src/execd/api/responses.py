"""Fast JSON responses."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any, BinaryIO

import orjson
from fastapi.responses import JSONResponse, StreamingResponse


class Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


# A Server-Sent Event: (id, event, data), or None for a keep-alive comment.
Frame = tuple[str | None, str, Any] | None
SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


open_streams = 0  # Server-Sent Event streams this process is sending now (metrics)


def sse_response(frames: AsyncIterator[Frame]) -> StreamingResponse:
    """Frames as Server-Sent Events; a client reconnects a second after a drop."""

    async def body() -> AsyncIterator[bytes]:
        global open_streams
        open_streams += 1
        try:
            yield b"retry: 1000\n\n"
            async for frame in frames:
                if frame is None:
                    yield b": keep-alive\n\n"
                    continue
                event_id, event, data = frame
                head = f"id: {event_id}\n" if event_id is not None else ""
                yield f"{head}event: {event}\ndata: {orjson.dumps(data).decode()}\n\n".encode()
        finally:
            open_streams -= 1

    return StreamingResponse(body(), media_type="text/event-stream", headers=SSE_HEADERS)


def file_chunks(handle: BinaryIO) -> Iterator[bytes]:
    """A file opened for reading, in chunks, closed at the end."""
    with handle:
        while chunk := handle.read(256 * 1024):
            yield chunk
