"""The SDK's sans-IO core: operations are generators of steps, and two drivers run them.

An operation (`Operations.get_execution`, `wait`, `apply_pack` ...) is written once, as a
generator that yields what it needs done, a `Request`, a `Sleep`, an item to hand to
the caller (`Emit`), a line of a streamed answer (`Open`, `ReadLine`) or a file to
download, and receives the answer. It never does I/O itself. `Client` runs the
generators with blocking httpx and `time.sleep`; `AsyncClient` with httpx's async client
and `asyncio.sleep`. An error answer is thrown into the generator as an `ApiError`, so
an operation can catch `NotFound` where that is an answer rather than a failure.

The two descriptors make that typed: `@operation` turns a generator method into a
method that returns its result on `Client` and a coroutine on `AsyncClient`;
`@iteration` into one that returns an iterator or an async iterator of what it emits.
"""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Callable, Coroutine, Generator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Concatenate, Generic, ParamSpec, TypeVar, overload

import orjson

P = ParamSpec("P")
T = TypeVar("T")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None


@dataclass(frozen=True)
class Reply:
    """A whole answer: the driver has read its body."""

    status: int
    headers: Mapping[str, str]
    content: bytes

    def json(self) -> Any:
        return orjson.loads(self.content) if self.content else None

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


@dataclass(frozen=True)
class Sleep:
    seconds: float


@dataclass(frozen=True)
class Emit:
    """Hand `item` to whoever iterates (only in `@iteration` operations)."""

    item: Any


@dataclass(frozen=True)
class Open:
    """Start a streamed answer; the driver answers None, or throws the error answer."""

    request: Request


@dataclass(frozen=True)
class ReadLine:
    """The next line of the open stream, without its line break; None at its end."""


@dataclass(frozen=True)
class Download:
    """Write the answer's body to `path` (replaced only once complete); answers the
    number of bytes. `progress(done, total)` is called as chunks arrive (total may be
    None)."""

    request: Request
    path: Path
    progress: Callable[[int, int | None], None] | None = None


Step = Request | Sleep | Emit | Open | ReadLine | Download
Operation = Generator[Step, Any, T]


def params(**values: Any) -> dict[str, Any]:
    """Query parameters without the unset ones; lists are joined with commas and
    booleans spelled as the API reads them."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if value is None:
            continue
        if isinstance(value, bool):
            value = "true" if value else "false"
        elif isinstance(value, list | tuple | set):
            value = ",".join(str(v) for v in value)
        out[key] = value
    return out


class LineBuffer:
    """Text arriving in chunks, cut into lines at "\n" only. (httpx's own line reader also
    cuts at U+2028 and other characters JSON may hold unescaped.)"""

    def __init__(self) -> None:
        self._rest = ""

    def feed(self, text: str) -> list[str]:
        lines = (self._rest + text).split("\n")
        self._rest = lines.pop()
        return lines

    def end(self) -> list[str]:
        rest, self._rest = self._rest, ""
        return [rest] if rest else []


@dataclass
class SSEEvent:
    event: str = "message"
    data: str = ""
    id: str | None = None


@dataclass
class SSEParser:
    """Server-sent events, one line at a time (the WHATWG rules that matter here)."""

    _event: str = "message"
    _data: list[str] = field(default_factory=list)
    _id: str | None = None

    def feed(self, line: str) -> SSEEvent | None:
        line = line.removesuffix("\r")
        if not line:
            if not self._data:
                self._event = "message"
                return None
            done = SSEEvent(self._event, "\n".join(self._data), self._id)
            self._event, self._data = "message", []
            return done
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        elif name == "id" and "\0" not in value:
            self._id = value
        return None


class _Method:
    """A generator method bound to a client: the client's `_run` or `_iterate` drives it."""

    driver = ""

    def __init__(self, build: Callable[..., Operation[Any]]) -> None:
        self.build = build
        functools.update_wrapper(self, build)  # type: ignore[arg-type]

    def __get__(self, obj: Any, owner: Any) -> Any:
        if obj is None:
            return self
        build, drive = self.build, getattr(obj, self.driver)

        @functools.wraps(build)
        def bound(*args: Any, **kwargs: Any) -> Any:
            return drive(build(obj, *args, **kwargs))

        return bound


class Blocking:
    """What a driver answering with results is (`Client`), for the type checker."""


class Awaiting:
    """What a driver answering with coroutines is (`AsyncClient`), for the type checker."""


class operation(_Method, Generic[P, T]):
    """A method that returns its result (Client) or a coroutine of it (AsyncClient)."""

    driver = "_run"
    build: Callable[Concatenate[Any, P], Operation[T]]

    if TYPE_CHECKING:

        def __init__(self, build: Callable[Concatenate[Any, P], Operation[T]]) -> None: ...
        @overload
        def __get__(self, obj: None, owner: Any) -> operation[P, T]: ...
        @overload
        def __get__(self, obj: Blocking, owner: Any) -> Callable[P, T]: ...
        @overload
        def __get__(self, obj: Awaiting, owner: Any) -> Callable[P, Coroutine[Any, Any, T]]: ...
        def __get__(self, obj: Any, owner: Any) -> Any: ...


class iteration(_Method, Generic[P, T]):
    """A method that returns an iterator (Client) or an async iterator (AsyncClient) of
    what the operation emits."""

    driver = "_iterate"
    build: Callable[Concatenate[Any, P], Operation[None]]

    if TYPE_CHECKING:

        def __init__(self, build: Callable[Concatenate[Any, P], Operation[None]]) -> None: ...
        @overload
        def __get__(self, obj: None, owner: Any) -> iteration[P, T]: ...
        @overload
        def __get__(self, obj: Blocking, owner: Any) -> Callable[P, Iterator[T]]: ...
        @overload
        def __get__(self, obj: Awaiting, owner: Any) -> Callable[P, AsyncIterator[T]]: ...
        def __get__(self, obj: Any, owner: Any) -> Any: ...


def emits(
    item_type: type[T],
) -> Callable[[Callable[Concatenate[Any, P], Operation[None]]], iteration[P, T]]:
    """`@emits(Model)`: an `iteration` whose items are `Model`s (for the type checker)."""

    def wrap(build: Callable[Concatenate[Any, P], Operation[None]]) -> iteration[P, T]:
        return iteration(build)

    return wrap
