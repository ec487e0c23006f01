"""What a lost worker left running on this host, stopped before its work runs again.

A worker killed with SIGKILL cannot stop the processes it started, and one that is
frozen (SIGSTOP, a stalled VM) cannot stop them either while its leases run out and
its work is queued again. In the sandbox a run dies with its bubblewrap when the
worker dies, but nothing stops it while the worker is merely frozen; without the
sandbox nothing stops it at all. So each run leaves a record of its first process (pid
and start time) beside the run directories, outside anything the action can write, and
whoever on this host finds the run lost (the reaper when the lease runs out, the same
worker restarting under its name) kills the run's process group and its descendants,
and waits for them to be gone, before the execution is queued again.

A record names a process by its pid and start time, so a pid reused since is never
killed. A run's group keeps the leader's pid reserved while any member lives, so the
group is reached even after its leader exited. Another host's runs cannot be reached
from here (docs/reliability.md says what that leaves).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Callable, Iterable
from pathlib import Path

import psutil
import structlog

from execd.domain.executions import Execution

log = structlog.get_logger(__name__)

RECORDS = ".processes"  # beside the runs' directories, in the worker's work root
GONE_WITHIN = 2.0  # seconds to wait for a killed run's processes to be gone
SAME_START = 0.05  # seconds: two start times this close name one process


def run_name(execution: Execution) -> str:
    """The name of one attempt's run: its directory's under the work root, and its
    record's."""
    return f"{execution.uuid}-{execution.fence}"


def stopper(work_root: Path) -> Callable[[list[Execution]], int]:
    """What the queue calls with executions it found lost, before it queues them again."""
    return lambda lost: stop_left_behind(work_root, [run_name(e) for e in lost])


def record_path(run_dir: Path) -> Path:
    return run_dir.parent / RECORDS / run_dir.name


def remember(run_dir: Path, pid: int) -> None:
    """A run's first process started: write down which it is."""
    try:
        created = psutil.Process(pid).create_time()
    except psutil.Error:
        return  # gone already: nothing to leave behind
    path = record_path(run_dir)
    path.parent.mkdir(mode=0o700, exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(f"{pid} {created!r}\n")
    partial.replace(path)


def forget(run_dir: Path) -> None:
    """The run is over and its processes are gone."""
    with contextlib.suppress(FileNotFoundError):
        record_path(run_dir).unlink()


def stop_left_behind(work_root: Path, run_names: Iterable[str]) -> int:
    """Kill what the named runs (`<uuid>-<fence>`, as their directories are named) left
    running on this host; return how many processes were killed. Blocking, up to
    GONE_WITHIN seconds when there is something to wait for."""
    killed: list[psutil.Process] = []
    for name in run_names:
        path = work_root / RECORDS / name
        try:
            pid_text, created_text = path.read_text().split()
            pid, created = int(pid_text), float(created_text)
        except (OSError, ValueError):
            continue
        killed += _kill_run(pid, created)
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    deadline = time.monotonic() + GONE_WITHIN
    left = killed
    while left and time.monotonic() < deadline:
        left = [p for p in left if _running(p)]
        if left:
            time.sleep(0.01)
    if left:
        log.warning("left_behind_still_running", pids=[p.pid for p in left])
    return len(killed)


def _kill_run(pid: int, created: float) -> list[psutil.Process]:
    try:
        leader = psutil.Process(pid)
        if abs(leader.create_time() - created) > SAME_START:
            return []  # the pid was reused: the run's group is gone with it
        members = [leader, *leader.children(recursive=True)]
    except psutil.NoSuchProcess:
        members = []  # the leader is gone; its group may not be
    except psutil.Error:
        return []
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for member in members:
        with contextlib.suppress(psutil.Error):
            member.kill()
    if members:
        log.warning("left_behind_killed", pid=pid, processes=len(members))
    return members


def _running(process: psutil.Process) -> bool:
    """Still there and not a zombie (a frozen parent has not reaped it yet: it runs
    nothing any more)."""
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False
