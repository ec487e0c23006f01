"""How the CLI talks to people and to scripts: Rich tables and bars on a terminal,
plain lines when not (no colours, no cursor movement), JSON with `--json`, one line
on stderr for an error, and exit codes a script can tell apart."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from enum import IntEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar

import orjson
import typer
from pydantic import BaseModel
from rich.console import Console
from rich.table import Table
from rich.text import Text

from execd.cli.app import options
from execd.client import (
    ApiError,
    ClientError,
    ConfigurationError,
    ConnectionFailed,
    Execution,
    Forbidden,
    Unauthorized,
)
from execd.client import config as client_config
from execd.client.errors import UnexpectedAnswer
from execd.client.operations import WaitTimeout
from execd.client.packs import PackError
from execd.domain import times

if TYPE_CHECKING:  # rich.progress is imported when a bar is shown: commands start faster
    from rich.progress import Progress

T = TypeVar("T")


class Exit(IntEnum):
    """Exit codes of the client commands (docs/cli.md lists them)."""

    OK = 0
    FAILED = 1  # the execution failed
    USAGE = 2  # a bad command line (Click's own code)
    TIMEOUT = 3  # the execution timed out
    CANCELLED = 4
    ABANDONED = 5
    API_ERROR = 6  # the server refused: unknown id, bad token, invalid input...
    UNREACHABLE = 7  # no execd server at the URL
    WAIT_EXPIRED = 8  # --wait-timeout passed; the execution goes on
    INTERNAL = 70  # a bug in execd itself (EX_SOFTWARE)


BY_STATUS = {
    "completed": Exit.OK,
    "failed": Exit.FAILED,
    "timeout": Exit.TIMEOUT,
    "cancelled": Exit.CANCELLED,
    "abandoned": Exit.ABANDONED,
}
FLOW_BY_STATUS = {"PASSED": Exit.OK, "FAILED": Exit.FAILED, "CANCELLED": Exit.CANCELLED}
COLOURS = {
    "completed": "green",
    "PASSED": "green",
    "failed": "red",
    "FAILED": "red",
    "timeout": "red",
    "abandoned": "red",
    "cancelled": "yellow",
    "canceling": "yellow",
    "CANCELLED": "yellow",
    "running": "cyan",
    "RUNNING": "cyan",
}

# markup=False: text from the server ("[/x]" in a description) is printed as it is;
# colours come from Text styles only.
out = Console(highlight=False, soft_wrap=False, markup=False)
err = Console(stderr=True, highlight=False, markup=False)
for _console in (out, err):
    if not _console.is_terminal:  # a pipe or a file: never wrap a row into two lines
        _console.width = 4096


def plain() -> bool:
    """Progress goes to stderr; when that is not a terminal: no bars, no live updates,
    a line per change instead."""
    return not err.is_terminal


def jsonable(value: Any) -> Any:
    """`value` as --json prints it: the API's own spellings, times too (milliseconds and
    Z, as the server writes them)."""
    if isinstance(value, BaseModel):
        return jsonable(value.model_dump(mode="python", by_alias=True))
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: jsonable(v) for k, v in value.items()}
    if isinstance(value, datetime) and value.tzinfo is not None:
        return times.iso(value.timestamp())
    return value


def print_json(value: Any) -> None:
    data = orjson.dumps(jsonable(value), option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS)
    sys.stdout.write(data.decode() + "\n")
    sys.stdout.flush()


def print_json_line(value: Any) -> None:
    sys.stdout.write(orjson.dumps(jsonable(value)).decode() + "\n")
    sys.stdout.flush()


def when(value: datetime | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    return value.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def status(value: str | None) -> Text:
    if value is None:
        return Text("-")
    return Text(value, style=COLOURS.get(value, ""))


def cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, dict | list):
        return orjson.dumps(value).decode()
    return str(value)


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """Rows under bold headers; a cell that is not text goes through `cell()`."""
    grid = Table(*columns, box=None, header_style="bold", pad_edge=False)
    for row in rows:
        grid.add_row(*(v if isinstance(v, str | Text) else cell(v) for v in row))
    if out.is_terminal:
        out.print(grid)
        return
    with out.capture() as captured:  # a pipe or a file: no padding at the ends of lines
        out.print(grid)
    sys.stdout.write("".join(line.rstrip() + "\n" for line in captured.get().splitlines()))
    sys.stdout.flush()


def listing(items: Sequence[T], as_json: bool, columns: Mapping[str, Callable[[T], Any]]) -> None:
    """A list command's output: a table with a column per entry of `columns` (header:
    how to get the cell from an item), or the items as JSON."""
    show(
        items,
        as_json,
        lambda: table(list(columns), ([f(i) for f in columns.values()] for i in items)),
    )


def columns(*names: str) -> dict[str, Callable[[Any], Any]]:
    """`listing()` columns of these attributes, headed by their names in capitals."""
    return {name.replace("_", " ").upper(): attrgetter(name) for name in names}


def record(item: Any, as_json: bool, names: Iterable[str]) -> None:
    """A model as `name  value` lines of these attributes, or as JSON."""
    show(item, as_json, lambda: fields((n.replace("_", " "), getattr(item, n)) for n in names))


def fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """A record as aligned `name  value` lines."""
    rows = [
        (name, value if isinstance(value, str | Text) else cell(value)) for name, value in pairs
    ]
    if not out.is_terminal:  # a pipe or a file: the lines as they are, no padding after
        width = max((len(name) for name, _ in rows), default=0)
        for name, value in rows:
            text = value.plain if isinstance(value, Text) else value
            sys.stdout.write(f"{name:<{width}}  {text}".rstrip() + "\n")
        sys.stdout.flush()
        return
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column(overflow="fold")
    for name, value in rows:
        grid.add_row(name, value)
    out.print(grid)


def show(data: Any, as_json: bool, render: Callable[[], None]) -> None:
    if as_json:
        print_json(data)
    else:
        render()


def fail(message: str, code: int = Exit.API_ERROR) -> NoReturn:
    err.print(Text.assemble(("error:", "red"), " ", message), soft_wrap=True)
    raise typer.Exit(code)


URL_HINT = "Set the URL with --url, EXECD_URL or `execd login`."


@dataclass(frozen=True)
class Problem:
    """What to say about an error, the hint that goes with it, and the exit code."""

    message: str
    code: int = Exit.API_ERROR
    hint: str = ""


def problem(exc: ClientError | OSError, *, logging_in: bool = False) -> Problem:
    """How the CLI reports what the SDK raised (or a file that could not be read)."""
    if isinstance(exc, ConfigurationError | PackError):  # nothing was sent
        return Problem(exc.message, Exit.USAGE)
    if isinstance(exc, OSError):
        return Problem(f"{exc.filename or 'a file'}: {exc.strerror or exc}", Exit.USAGE)
    if isinstance(exc, UnexpectedAnswer):
        return Problem(exc.message, Exit.UNREACHABLE, URL_HINT)
    if isinstance(exc, ConnectionFailed):
        return Problem(exc.message, Exit.UNREACHABLE, f"Is it running (`make run`)? {URL_HINT}")
    if isinstance(exc, Unauthorized):
        return Problem(unauthorized(exc, logging_in))
    if isinstance(exc, Forbidden):
        return Problem(f"the token's role does not allow this (403: {exc.message})")
    if isinstance(exc, ApiError):
        return Problem(f"{exc.message} ({exc.status})")
    if isinstance(exc, WaitTimeout):
        return Problem(exc.message, Exit.WAIT_EXPIRED)
    return Problem(exc.message)


def unauthorized(exc: Unauthorized, logging_in: bool) -> str:
    """A 401, and what to do about it: `execd login` just got it, or no token was sent
    (the saved login is for another URL), or the token was refused."""
    refused = f"the server refused the token (401: {exc.message})"
    if logging_in:
        return f"{refused}; check the token"
    try:
        target = client_config.resolve(options.url, options.token)
    except ClientError:
        target = None
    if target is not None and target.token is None and target.saved_url:
        return (
            f"no token for {target.url}: the saved login is for {target.saved_url} "
            f"(use that URL, or `execd login --url {target.url}`)"
        )
    if target is not None and target.token is None:
        refused = f"the server needs a token (401: {exc.message})"
    return f"{refused}. Log in with `execd login` or set EXECD_TOKEN."


def give_up(said: Problem) -> NoReturn:
    fail(f"{said.message}\n{said.hint}" if said.hint else said.message, said.code)


@contextmanager
def errors(*, logging_in: bool = False) -> Any:
    """Turn what the SDK raises into one line on stderr (and a hint) and an exit code."""
    try:
        yield
    except (ClientError, OSError) as exc:
        give_up(problem(exc, logging_in=logging_in))


def duration(execution: Execution) -> str:
    ms = execution.duration_ms
    return "-" if ms is None else f"{ms / 1000:.2f}s"


def progress_line(execution: Execution) -> str:
    """One line of what an execution reports, for logs and non-terminals."""
    parts = [execution.status]
    p = execution.progress
    if p is not None:
        if p.percent is not None:
            parts.append(f"{p.percent:.0f}%")
        if p.stage:
            parts.append(p.stage)
        if p.processed is not None:
            parts.append(f"{p.processed}/{p.total if p.total is not None else '?'} records")
        if p.eta is not None and execution.status == "running":
            parts.append(f"eta {p.eta:.0f}s")
    return " ".join(parts)


def eta(execution: Execution, elapsed: float) -> str:
    """Time left: what the action reports, else extrapolated from its percentage."""
    p = execution.progress
    if execution.status != "running" or p is None:
        return ""
    seconds = p.eta
    if seconds is None and p.percent and 0 < p.percent < 100 and elapsed > 0:
        seconds = elapsed * (100 - p.percent) / p.percent
    if seconds is None:
        return ""
    minutes, seconds = divmod(int(seconds), 60)
    return f"eta {minutes}:{seconds:02d}"


def execution_bar() -> Progress:
    """Status, percent, stage and time left of one execution, on stderr (stdout stays
    for the log and the result)."""
    from rich.progress import BarColumn, Progress, Task, TaskProgressColumn, TextColumn

    class Bar(BarColumn):
        """No bar for an action that reports no percentage: rich's moving bar of an
        unknown total reads as a full one."""

        def render(self, task: Task) -> Any:
            return Text("") if task.total is None else super().render(task)

    return Progress(
        TextColumn("{task.fields[status]}", style="bold", markup=False),
        Bar(),
        TaskProgressColumn(),
        TextColumn("{task.fields[stage]}", markup=False),
        TextColumn("{task.fields[eta]}", markup=False),
        console=err,
        transient=False,
    )


def download_bar() -> Progress:
    from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn

    return Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    )
