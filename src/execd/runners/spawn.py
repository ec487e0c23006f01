"""Starting a run's process with exactly the descriptors it is given.

asyncio's subprocesses are started by the event loop, and uvloop's (which `execd serve`
runs on) leaves descriptors of the worker's own open in the child: the action could
read or write the service's pipes, or another run's sandbox arguments. So the process
is started by `subprocess.Popen` (close_fds: only stdio and `pass_fds` cross), its
output read through the loop, and its end awaited through a pidfd.

The output pipes are read through readiness callbacks on descriptors this module owns
and closes exactly once. uvloop's `connect_read_pipe` must not be used for them: libuv
closes the pipe's descriptor and the file object closes the same number again later
(when the garbage collector gets to them), and a thread that opened something in
between (a database connection, a log file) loses it to the second close.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Protocol

CHUNK = 65536


class Child(Protocol):
    """What a runner needs of a started process (asyncio's Process has it too)."""

    pid: int
    stdout: asyncio.StreamReader | None
    stderr: asyncio.StreamReader | None

    async def wait(self) -> int: ...

    def close(self) -> None:
        """The run is over: its pipes go, read to the end or not."""


class _Pipe:
    """One output pipe, fed into a StreamReader by the loop's readiness callbacks."""

    def __init__(self, loop: asyncio.AbstractEventLoop, pipe: IO[bytes]) -> None:
        self.reader = asyncio.StreamReader()
        self._loop = loop
        self._pipe: IO[bytes] | None = pipe
        self._fd = pipe.fileno()
        os.set_blocking(self._fd, False)
        loop.add_reader(self._fd, self._readable)

    def _readable(self) -> None:
        try:
            data = os.read(self._fd, CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError as exc:
            self.close()
            self.reader.set_exception(exc)
            return
        if data:
            self.reader.feed_data(data)
        else:
            self.close()
            self.reader.feed_eof()

    def close(self) -> None:
        if self._pipe is not None:
            self._loop.remove_reader(self._fd)
            self._pipe.close()
            self._pipe = None


class _Started:
    def __init__(
        self, popen: subprocess.Popen[bytes], pipes: list[_Pipe], exited: asyncio.Future[int]
    ) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.stdout: asyncio.StreamReader | None = pipes[0].reader
        self.stderr: asyncio.StreamReader | None = pipes[1].reader
        self._pipes = pipes
        self._exited = exited

    async def wait(self) -> int:
        return await asyncio.shield(self._exited)

    def close(self) -> None:
        for pipe in self._pipes:
            pipe.close()


class _Asyncio:
    """asyncio's own process (not Linux): its transports close their pipes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self._process = process
        self.pid = process.pid
        self.stdout = process.stdout
        self.stderr = process.stderr

    async def wait(self) -> int:
        return await self._process.wait()

    def close(self) -> None:
        return None


async def spawn(
    argv: Sequence[str], *, cwd: Path, env: dict[str, str], pass_fds: Sequence[int]
) -> Child:
    """Start `argv` in a session of its own, stdin empty, stdout and stderr piped."""
    if not hasattr(os, "pidfd_open"):  # not Linux: asyncio's own (the sandbox is Linux's)
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            pass_fds=pass_fds,
        )
        return _Asyncio(process)
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
    pipes: list[_Pipe] = []
    try:
        for pipe in (popen.stdout, popen.stderr):
            assert pipe is not None
            pipes.append(_Pipe(loop, pipe))
        exited: asyncio.Future[int] = loop.create_future()
        pidfd = os.pidfd_open(popen.pid)

        def on_exit() -> None:
            loop.remove_reader(pidfd)
            os.close(pidfd)
            if not exited.done():
                exited.set_result(popen.wait())

        loop.add_reader(pidfd, on_exit)
    except BaseException:
        for started in pipes:
            started.close()
        popen.kill()
        popen.wait()
        raise
    return _Started(popen, pipes, exited)
