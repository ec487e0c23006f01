"""Child processes of `execd serve`: executions in `execd worker` children, and, when
asked, more processes serving the API on the server's own listening socket, so one
command uses every core.

One Python process runs on one core at a time (the GIL). `execd serve` therefore starts
`execd worker` children (EXECD_WORKER_PROCESSES, by default one per core but the one the
API keeps) and EXECD_API_PROCESSES - 1 API children, and supervises them: a child that
dies is started again after a pause that grows while it keeps dying, and when the
server stops, the children get SIGTERM and the server waits for them (a worker finishes
or hands back its runs within its shutdown grace): Ctrl-C stops the server, and the
server its children. A child whose server dies without stopping it gets SIGTERM from
the kernel (PR_SET_PDEATHSIG), so none outlives its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time
from collections.abc import Callable

import structlog

log = structlog.get_logger(__name__)

PARENT_ENV = "EXECD_SUPERVISOR_PID"
READY_ENV = "EXECD_READY_FD"  # a child's end of the pipe that says it is ready
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
HEALTHY_AFTER = 60.0  # a child up this long has its restart pause reset
PR_SET_PDEATHSIG = 1


class ChildProcesses:
    """`count` children running `execd <command>` with `env` added to this process's
    environment; `exited` hears of each child's end."""

    def __init__(
        self,
        command: str,
        count: int,
        *,
        stop_grace: float,
        env: dict[str, str] | None = None,
        exited: Callable[[int], None] | None = None,
        ready_within: float | None = None,
    ) -> None:
        self.command = command
        self.count = count
        self.stop_grace = stop_grace
        self.env = env or {}
        self.exited = exited
        # `start` waits (this long at most) for each child to say it is ready.
        self.ready_within = ready_within
        self._ready = [asyncio.Event() for _ in range(count)]
        self.children: list[asyncio.subprocess.Process | None] = [None] * count
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        for index in range(self.count):
            name = f"execd-{self.command}-{index}"
            self._tasks.append(asyncio.create_task(self._keep(index), name=name))
        if self.ready_within is not None:
            waits = asyncio.gather(*(ready.wait() for ready in self._ready))
            try:
                await asyncio.wait_for(waits, timeout=self.ready_within)
            except TimeoutError:
                log.error("child_processes_not_ready", command=self.command)

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**os.environ, **self.env, PARENT_ENV: str(os.getpid())}
        if name := env.get("EXECD_WORKER_NAME"):
            env["EXECD_WORKER_NAME"] = f"{name}-{index + 1}"
        told = None
        if self.ready_within is not None:
            told, tell = os.pipe()
            env[READY_ENV] = str(tell)
        try:
            # In a session of its own: Ctrl-C reaches the server only, which stops the
            # children in order (a child interrupted while it starts would print a trace).
            child = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "execd",
                self.command,
                env=env,
                start_new_session=True,
                pass_fds=() if told is None else (tell,),
            )
        except BaseException:
            if told is not None:
                os.close(told)
            raise
        finally:
            if told is not None:
                os.close(tell)
        if told is not None:
            self._hear_ready(index, told)
        return child

    def _hear_ready(self, index: int, told: int) -> None:
        """A byte when the child is ready, or the end of the pipe if it died first."""
        loop = asyncio.get_running_loop()

        def heard() -> None:
            loop.remove_reader(told)
            os.close(told)
            self._ready[index].set()

        loop.add_reader(told, heard)

    async def _keep(self, index: int) -> None:
        pause = RESTART_FIRST
        while not self.stopping():
            started = time.monotonic()
            try:
                child = await self._spawn(index)
            except OSError as exc:
                log.error("child_process_not_started", command=self.command, error=str(exc))
                self._ready[index].set()  # nothing to wait for
            else:
                self.children[index] = child
                code = await child.wait()
                if self.exited is not None:
                    self.exited(child.pid)
                if self.stopping():  # it was told to stop
                    return
                log.error(
                    "child_process_exited",
                    command=self.command,
                    pid=child.pid,
                    code=code,
                    restart_in=pause,
                )
            if time.monotonic() - started > HEALTHY_AFTER:
                pause = RESTART_FIRST
            await asyncio.sleep(pause)
            pause = min(pause * 2, RESTART_MAX)

    async def stop(self) -> None:
        self._stopping = True
        running = [c for c in self.children if c is not None and c.returncode is None]
        for child in running:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        waits = [asyncio.create_task(c.wait()) for c in running]
        if waits:
            await asyncio.wait(waits, timeout=self.stop_grace + 5.0)
            for child in running:
                if child.returncode is None:
                    log.error("child_process_killed", command=self.command, pid=child.pid)
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
            await asyncio.gather(*waits, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def report_ready() -> None:
    """In a child whose server waits for it: say it is ready (once)."""
    told = os.environ.pop(READY_ENV, None)
    if told is not None:
        with contextlib.suppress(OSError):
            os.write(int(told), b"1")
            os.close(int(told))


def follow_parent() -> None:
    """In a supervised child: be sent SIGTERM when the server goes, and go now if it
    already has (Linux; elsewhere a no-op)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        sys.exit("the server that started this worker has stopped")
