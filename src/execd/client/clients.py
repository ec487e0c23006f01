"""`Client` and `AsyncClient`: the two drivers of the operations (see protocol.py).

Both take the server's URL and a token as arguments, or from EXECD_URL / EXECD_TOKEN,
or from what `execd login` saved (see config.py), and are context managers:

    with Client() as client:
        execution = client.execute("core.echo", {"message": "hi"})
        client.wait(execution.id, on_progress=print)

    async with AsyncClient() as client:
        execution = await client.execute("core.echo", {"message": "hi"})
        async for chunk in client.follow_output(execution.id):
            print(chunk, end="")
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import weakref
from collections.abc import AsyncGenerator, AsyncIterator, Generator, Iterator, Mapping
from types import TracebackType
from typing import Any, Self

import httpx

from execd import __version__
from execd.client import config
from execd.client.downloads import PartialFile
from execd.client.errors import (
    ClientError,
    ConnectionFailed,
    UnexpectedAnswer,
    error_for,
    error_message,
)
from execd.client.operations import Operations
from execd.client.protocol import (
    Awaiting,
    Blocking,
    Download,
    Emit,
    LineBuffer,
    Open,
    ReadLine,
    Reply,
    Request,
    Sleep,
    Step,
)

#: Streams wait this long for a byte (the server sends a keep-alive every 15 s).
STREAM_READ_SECONDS = 60.0
#: A read answered 503 (the server's store is unavailable) is sent again, after the
#: Retry-After the server gives (or 1, 2, 4 ... s), for at most this long in all.
RETRY_READS_SECONDS = 60.0
_READS = frozenset({"GET", "HEAD"})
log = logging.getLogger("execd.client")


class _Driver(Operations):
    """What both drivers share: configuration, and turning answers into results."""

    def __init__(self, url: str | None, token: str | None, timeout: float) -> None:
        super().__init__()
        target = config.resolve(url, token)
        self.url, self.token, self.timeout = target.url, target.token, timeout

    def _options(self) -> dict[str, Any]:
        headers = {"User-Agent": f"execd-client/{__version__}", "Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return {"base_url": self.url, "headers": headers, "timeout": self.timeout}

    @staticmethod
    def _arguments(request: Request) -> dict[str, Any]:
        return {
            "method": request.method,
            "url": request.path,
            "params": request.params,
            "json": request.json,
            "headers": request.headers,
        }

    def _checked(self, status: int, headers: Mapping[str, str], content: bytes) -> Reply:
        """The answer, or the error it says. An error answer that is in none of execd's
        error shapes (not JSON, or JSON without the error fields) comes from something
        else at the URL: `UnexpectedAnswer`."""
        reply = Reply(status, dict(headers), content)
        if status < 400:
            return reply
        try:
            body, what = reply.json(), "JSON without an error message"
        except ValueError:
            body, what = None, "not JSON"
        if error_message(body) is None:
            raise UnexpectedAnswer(
                f"{self.url} is not an execd server: it answered HTTP {status}, {what}"
            )
        raise error_for(status, body, f"HTTP {status}")

    def _advance(
        self, operation: Generator[Step, Any, Any], answer: Any, error: BaseException | None
    ) -> Step:
        """The operation's next step, given the answer to its last one (or the error)."""
        try:
            return operation.throw(error) if error else operation.send(answer)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            # The operation could not read an answer: not what an execd server says.
            if answer is not None:
                raise UnexpectedAnswer(
                    f"unexpected answer from {self.url} (is it an execd server?): {exc}"
                ) from exc
            raise

    def _again(self, request: Request, response: httpx.Response, waited: float) -> float | None:
        """How long to wait before sending a read again that the server could not
        answer for now (503); None: the answer stands. What it waits for is logged
        (the CLI shows it)."""
        if response.status_code != 503 or request.method not in _READS:
            return None
        given = response.headers.get("retry-after", "")
        delay = (
            min(float(given), 30.0)
            if given.isdigit()
            else min(2.0 ** (waited > 0) * max(waited, 1.0), 15.0)
        )
        if waited + delay > RETRY_READS_SECONDS:
            return None
        try:
            why = response.json().get("error") or response.json().get("message")
        except ValueError:
            why = None
        log.warning(
            "%s %s: %s; trying again in %.0f s", request.method, request.path,
            why or "the server is unavailable", delay,
        )  # fmt: skip
        return delay

    def _unreachable(self, exc: httpx.HTTPError) -> ConnectionFailed:
        reason = str(exc) or type(exc).__name__
        return ConnectionFailed(f"cannot reach the execd server at {self.url}: {reason}")


class Client(_Driver, Blocking):
    """The blocking client."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout)
        self._http = httpx.Client(transport=transport, **self._options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _run(self, operation: Generator[Step, Any, Any]) -> Any:
        steps = self._drive(operation)
        while True:
            try:
                next(steps)
            except StopIteration as stop:
                return stop.value

    def _iterate(self, operation: Generator[Step, Any, Any]) -> Iterator[Any]:
        return self._drive(operation)

    def _drive(self, operation: Generator[Step, Any, Any]) -> Generator[Any, None, Any]:
        lines: Iterator[str] | None = None
        streams = contextlib.ExitStack()
        answer: Any = None
        error: BaseException | None = None
        with streams, contextlib.closing(operation):
            while True:
                try:
                    step = self._advance(operation, answer, error)
                except StopIteration as stop:
                    return stop.value
                answer, error = None, None
                try:
                    if isinstance(step, Emit):
                        yield step.item
                    elif isinstance(step, Request):
                        answer = self._send(step)
                    elif isinstance(step, Sleep):
                        time.sleep(step.seconds)
                    elif isinstance(step, Open):
                        streams.close()
                        lines = streams.enter_context(self._open(step.request))
                    elif isinstance(step, ReadLine):
                        answer = next(lines, None) if lines is not None else None
                    elif isinstance(step, Download):
                        answer = self._download(step)
                except ClientError as exc:
                    error = exc
                except httpx.HTTPError as exc:
                    error = self._unreachable(exc)

    def _send(self, request: Request) -> Reply:
        waited = 0.0
        while True:
            try:
                response = self._http.request(**self._arguments(request))
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            delay = self._again(request, response, waited)
            if delay is None:
                return self._checked(response.status_code, response.headers, response.content)
            time.sleep(delay)
            waited += delay

    @contextlib.contextmanager
    def _open(self, request: Request) -> Iterator[Iterator[str]]:
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_SECONDS)
        with self._http.stream(**self._arguments(request), timeout=timeout) as response:
            if response.status_code >= 400:
                self._checked(response.status_code, response.headers, response.read())
            yield self._lines(response.iter_text())

    @staticmethod
    def _lines(chunks: Iterator[str]) -> Iterator[str]:
        buffer = LineBuffer()
        for chunk in chunks:
            yield from buffer.feed(chunk)
        yield from buffer.end()

    def _download(self, step: Download) -> int:
        with (
            PartialFile(step) as partial,
            self._http.stream(**self._arguments(step.request)) as answer,
        ):
            if answer.status_code >= 400:
                self._checked(answer.status_code, answer.headers, answer.read())
            partial.begin(answer.headers)
            for chunk in answer.iter_bytes():
                partial.write(chunk)
        return partial.done


class AsyncClient(_Driver, Awaiting):
    """The asyncio client: the same methods, as coroutines and async iterators."""

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(url, token, timeout)
        self._http = httpx.AsyncClient(transport=transport, **self._options())
        self._iterators: weakref.WeakSet[AsyncGenerator[Any, None]] = weakref.WeakSet()

    async def aclose(self) -> None:
        """Close the iterators still open (a stream left with `break`), then the
        connections."""
        for iterator in list(self._iterators):
            with contextlib.suppress(RuntimeError):
                await iterator.aclose()
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def _run(self, operation: Generator[Step, Any, Any]) -> Any:
        result: list[Any] = []
        async for _ in self._drive(operation, result):
            pass
        return result[0] if result else None

    def _iterate(self, operation: Generator[Step, Any, Any]) -> AsyncIterator[Any]:
        iterator = self._drive(operation, [])
        self._iterators.add(iterator)
        return iterator

    async def _drive(
        self, operation: Generator[Step, Any, Any], result: list[Any]
    ) -> AsyncGenerator[Any, None]:
        lines: AsyncIterator[str] | None = None
        streams = contextlib.AsyncExitStack()
        answer: Any = None
        error: BaseException | None = None
        async with streams:
            with contextlib.closing(operation):
                while True:
                    try:
                        step = self._advance(operation, answer, error)
                    except StopIteration as stop:
                        result.append(stop.value)
                        return
                    answer, error = None, None
                    try:
                        if isinstance(step, Emit):
                            yield step.item
                        elif isinstance(step, Request):
                            answer = await self._send(step)
                        elif isinstance(step, Sleep):
                            await asyncio.sleep(step.seconds)
                        elif isinstance(step, Open):
                            await streams.aclose()
                            lines = await streams.enter_async_context(self._open(step.request))
                        elif isinstance(step, ReadLine):
                            answer = await anext(lines, None) if lines is not None else None
                        elif isinstance(step, Download):
                            answer = await self._download(step)
                    except ClientError as exc:
                        error = exc
                    except httpx.HTTPError as exc:
                        error = self._unreachable(exc)

    async def _send(self, request: Request) -> Reply:
        waited = 0.0
        while True:
            try:
                response = await self._http.request(**self._arguments(request))
            except httpx.HTTPError as exc:
                raise self._unreachable(exc) from None
            delay = self._again(request, response, waited)
            if delay is None:
                return self._checked(response.status_code, response.headers, response.content)
            await asyncio.sleep(delay)
            waited += delay

    @contextlib.asynccontextmanager
    async def _open(self, request: Request) -> AsyncIterator[AsyncIterator[str]]:
        timeout = httpx.Timeout(self.timeout, read=STREAM_READ_SECONDS)
        async with self._http.stream(**self._arguments(request), timeout=timeout) as response:
            if response.status_code >= 400:
                self._checked(response.status_code, response.headers, await response.aread())
            yield self._lines(response.aiter_text())

    @staticmethod
    async def _lines(chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        buffer = LineBuffer()
        async for chunk in chunks:
            for line in buffer.feed(chunk):
                yield line
        for line in buffer.end():
            yield line

    async def _download(self, step: Download) -> int:
        with PartialFile(step) as partial:
            async with self._http.stream(**self._arguments(step.request)) as answer:
                if answer.status_code >= 400:
                    self._checked(answer.status_code, answer.headers, await answer.aread())
                partial.begin(answer.headers)
                async for chunk in answer.aiter_bytes():
                    partial.write(chunk)
        return partial.done
