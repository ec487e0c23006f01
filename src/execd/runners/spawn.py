"""Starting a run's process with exactly the descriptors it is given.

asyncio's subprocesses are started by the event loop, and uvloop's (which `execd serve`
runs on) leaves descriptors of the worker's own open in the child: the action could
read or write the service's pipes, or another run's sandbox arguments. So the process
is started by `subprocess.Popen` (close_fds: only stdio and `pass_fds` cross), its
output read through the loop, and its end awaited through a pidfd.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Protocol


class Child(Protocol):
    """What a runner needs of a started process (asyncio's Process has it too)."""

    pid: int
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...


class _Started:
    def __init__(
        self,
        popen: subprocess.Popen[bytes],
        stdout: asyncio.StreamReader,
        stderr: asyncio.StreamReader,
        exited: asyncio.Future[int],
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.stdout: asyncio.StreamReader | None = stdout
        self.stderr: asyncio.StreamReader | None = stderr
        self._exited = exited

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)


async def spawn(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], pass_fds: Sequence[int]
) -> Child:
    """Start `argv` in a session of its own, stdin empty, stdout and stderr piped."""
    if not hasattr(os, "pidfd_open"):  # not Linux: asyncio's own (the sandbox is Linux's)
        return await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            pass_fds=pass_fds,
        )
    loop = asyncio.get_running_loop()
    # A fork and an exec (vfork on Linux): as quick as the loop's own way of starting one.
    popen = subprocess.Popen(  # noqa: ASYNC220
        list(argv),
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        close_fds=True,
        pass_fds=tuple(pass_fds),
    )
    try:
        readers = []
        for pipe in (popen.stdout, popen.stderr):
            reader = asyncio.StreamReader()
            await loop.connect_read_pipe(partial(asyncio.StreamReaderProtocol, reader), pipe)
            readers.append(reader)
        exited: asyncio.Future[int] = loop.create_future()
        pidfd = os.pidfd_open(popen.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(popen.wait())

        loop.add_reader(pidfd, on_exit)
    except BaseException:
        popen.kill()
        popen.wait()
        raise
    return _Started(popen, readers[0], readers[1], exited)
