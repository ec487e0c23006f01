"""Worker processes of `execd serve`: the API in one process, executions in others, so
one command uses every core.

One Python process runs on one core at a time (the GIL). `execd serve` therefore starts
`execd worker` children (EXECD_WORKER_PROCESSES, by default one per core but the one the
API keeps) and supervises them: a child that dies is started again after a pause that
grows while it keeps dying, and when the server stops, the children get SIGTERM and
the server waits for them (each finishes or hands back its runs within its shutdown
grace): Ctrl-C stops the server, and the server its children. A child whose server
dies without stopping it gets SIGTERM from the kernel (PR_SET_PDEATHSIG), so none
outlives its server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
import time

import structlog

log = structlog.get_logger(__name__)

PARENT_ENV = "EXECD_SUPERVISOR_PID"
RESTART_FIRST = 1.0
RESTART_MAX = 30.0
HEALTHY_AFTER = 60.0  # a child up this long has its restart pause reset
PR_SET_PDEATHSIG = 1


class WorkerProcesses:
    def __init__(self, count: int, *, stop_grace: float) -> None:
        self.count = count
        self.stop_grace = stop_grace
        self.children: list[asyncio.subprocess.Process | None] = [None] * count
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    def stopping(self) -> bool:
        return self._stopping

    async def start(self) -> None:
        for index in range(self.count):
            self._tasks.append(asyncio.create_task(self._keep(index), name=f"execd-worker-{index}"))

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        if name := env.get("EXECD_WORKER_NAME"):
            env["EXECD_WORKER_NAME"] = f"{name}-{index + 1}"
        # In a session of its own: Ctrl-C reaches the server only, which stops the
        # children in order (a child interrupted while it starts would print a trace).
        return await asyncio.create_subprocess_exec(
            sys.executable, "-m", "execd", "worker", env=env, start_new_session=True
        )

    async def _keep(self, index: int) -> None:
        pause = RESTART_FIRST
        while not self.stopping():
            started = time.monotonic()
            try:
                child = await self._spawn(index)
            except OSError as exc:
                log.error("worker_process_not_started", error=str(exc))
            else:
                self.children[index] = child
                code = await child.wait()
                if self.stopping():  # it was told to stop
                    return
                log.error("worker_process_exited", pid=child.pid, code=code, restart_in=pause)
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
                    log.error("worker_process_killed", pid=child.pid)
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
            await asyncio.gather(*waits, return_exceptions=True)
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def follow_parent() -> None:
    """In a supervised worker: be sent SIGTERM when the server goes, and go now if it
    already has (Linux; elsewhere a no-op)."""
    parent = os.environ.get(PARENT_ENV)
    if not parent or not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(parent):
        sys.exit("the server that started this worker has stopped")
