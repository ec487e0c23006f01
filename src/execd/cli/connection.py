"""Calling the SDK from a command: a client for the global --url and --token, with
what it raises turned into one line on stderr and an exit code (output.errors);
nothing prints a traceback for a server that is down, a bad token or an unknown id."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from execd.cli import output
from execd.cli.app import options
from execd.client import AsyncClient, Client

T = TypeVar("T")


def _say_waits() -> None:
    """What the client waits for (a read the server could not answer for now, sent
    again) on stderr, one line each."""
    notes = logging.getLogger("execd.client")
    if not notes.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("execd: %(message)s"))
        notes.addHandler(handler)
        notes.propagate = False


@contextmanager
def connect() -> Iterator[Client]:
    _say_waits()
    with output.errors(), Client(options.url, options.token) as client:
        yield client


def run_async(work: Callable[[AsyncClient], Any]) -> Any:
    _say_waits()

    async def main() -> Any:
        async with AsyncClient(options.url, options.token) as client:
            return await work(client)

    with output.errors():
        return asyncio.run(main())


def ask(call: Callable[[Client], T]) -> T:
    """What one SDK call answers (errors as output.errors reports them)."""
    with connect() as client:
        return call(client)
