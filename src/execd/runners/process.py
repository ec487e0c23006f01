"""Running one subprocess for an execution: in its sandbox, in its own session (process
group), with capped output files, the control file, resource sampling, the action's
limits, and a kill that reaches every descendant on cancel or timeout."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil

from execd import files
from execd.domain.sandbox import Limits, SandboxOptions, describe_size
from execd.runners import leftovers
from execd.runners.base import RunContext
from execd.runners.control import ControlReader
from execd.runners.paths import ExecutionPaths
from execd.runners.spawn import Child, spawn

TAIL_BYTES = 4096
POLL_SECONDS = 0.25
SAMPLE_SECONDS = 1.0
PIPE_GRACE_SECONDS = 2.0

# What an action inherits from the service's environment: what a program needs to run,
# never the service's own settings (EXECD_*: the admin token, the database URL) or
# anything else it was started with. More names: EXECD_ACTION_ENV=NAME,NAME.
INHERITED_ENV = frozenset(
    {
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "LANG",
        "LANGUAGE",
        "TZ",
        "TMPDIR",
        "TERM",
        "PYTHONPATH",
        "VIRTUAL_ENV",
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "http_proxy",
        "https_proxy",
        "no_proxy",
    }
)


def inherited_environment(extra: Iterable[str] = ()) -> dict[str, str]:
    names = INHERITED_ENV | set(extra)
    return {k: v for k, v in os.environ.items() if k in names or k.startswith("LC_")}


class LimitGuard:
    """The first limit a run hits: it says which, and stops the run at once."""

    def __init__(self, limits: Limits, overhead: int) -> None:
        self.limits = limits
        self.overhead = overhead
        self.reason: str | None = None
        self.output = 0
        self.pid: int | None = None

    def hit(self, reason: str) -> None:
        if self.reason is not None:
            return
        self.reason = reason
        if self.pid is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.pid, signal.SIGKILL)
            for proc in descendants(self.pid):
                with contextlib.suppress(psutil.Error):
                    proc.kill()

    def wrote(self, size: int) -> None:
        self.output += size
        most = self.limits.output_bytes
        if most is not None and self.output > most:
            self.hit(f"output limit reached: more than {describe_size(most)} of stdout and stderr")

    def check(self, usage: dict[str, Any]) -> None:
        limits = self.limits
        if limits.memory_bytes and usage.get("memory_bytes", 0) > limits.memory_bytes:
            self.hit(f"memory limit reached: more than {describe_size(limits.memory_bytes)} in use")
        elif limits.processes and usage.get("processes", 0) >= limits.processes:
            self.hit(f"process limit reached: {limits.processes} processes and threads")
        elif limits.cpu_seconds and usage.get("cpu_seconds", 0) > limits.cpu_seconds:
            self.hit(f"CPU time limit reached: more than {limits.cpu_seconds:g} s of CPU time")


class CappedLog:
    """Writes a stream to a file up to `limit` bytes, then marks the truncation."""

    def __init__(self, path: Path, limit: int, guard: LimitGuard | None = None) -> None:
        self.handle = path.open("wb")
        self.limit = limit
        self.written = 0
        self.dropped = 0
        self.tail = bytearray()
        self.guard = guard

    def write(self, data: bytes) -> None:
        if self.guard is not None:
            self.guard.wrote(len(data))
        room = self.limit - self.written
        if room > 0:
            kept = data[:room]
            self.handle.write(kept)
            self.handle.flush()
            self.written += len(kept)
        self.dropped += max(0, len(data) - max(room, 0))
        self.tail += data
        del self.tail[:-TAIL_BYTES]

    def close(self) -> None:
        if self.dropped:
            self.handle.write(
                f"\n[execd: output truncated: {self.dropped} more bytes were not kept]\n".encode()
            )
        self.handle.close()

    def tail_text(self) -> str:
        return self.tail.decode("utf-8", errors="replace")


@dataclass
class ProcessResult:
    return_code: int
    stdout_tail: str
    stderr_tail: str
    truncated: bool
    control: ControlReader
    usage: dict[str, Any] = field(default_factory=dict)
    explicit_result: Any = None
    has_result: bool = False
    # The limit that stopped the run, if one did.
    limit: str | None = None
    limits: Limits = field(default_factory=Limits)


class UsageSampler:
    """CPU, memory and I/O of a process and all its descendants."""

    def __init__(self, pid: int, overhead: int = 0) -> None:
        try:
            self.root: psutil.Process | None = psutil.Process(pid)
        except psutil.Error:  # already gone: nothing to sample
            self.root = None
        self.overhead = overhead  # the sandbox's own processes at the top of the tree
        self.cpu_seconds_by_pid: dict[int, float] = {}
        self.io_by_pid: dict[int, tuple[int, int, int]] = {}
        self.peak_memory = 0
        self.last: dict[str, Any] = {}
        self._procs: dict[int, psutil.Process] = {}

    def sample(self) -> dict[str, Any]:
        if self.root is None:
            return self.last
        try:
            procs = [self.root, *self.root.children(recursive=True)]
        except psutil.Error:
            return self.last
        memory = 0
        cpu_percent = 0.0
        tasks = 0
        for proc in procs:
            # Keep the Process objects: cpu_percent() measures since the previous call.
            proc = self._procs.setdefault(proc.pid, proc)
            with contextlib.suppress(psutil.Error), proc.oneshot():
                memory += _proportional_memory(proc.pid) or proc.memory_info().rss
                tasks += proc.num_threads()
                times = proc.cpu_times()
                self.cpu_seconds_by_pid[proc.pid] = (
                    times.user + times.system + times.children_user + times.children_system
                )
                cpu_percent += proc.cpu_percent()
                with contextlib.suppress(psutil.Error, AttributeError):
                    io = proc.io_counters()
                    self.io_by_pid[proc.pid] = (
                        io.read_bytes,
                        io.write_bytes,
                        io.read_count + io.write_count,
                    )
        self.peak_memory = max(self.peak_memory, memory)
        self.last = {
            "cpu_percent": round(cpu_percent, 1),
            "memory_bytes": memory,
            "peak_memory_bytes": self.peak_memory,
            "cpu_seconds": round(sum(self.cpu_seconds_by_pid.values()), 3),
            "read_bytes": sum(io[0] for io in self.io_by_pid.values()),
            "write_bytes": sum(io[1] for io in self.io_by_pid.values()),
            "io_operations": sum(io[2] for io in self.io_by_pid.values()),
            "processes": max(0, tasks - self.overhead),
        }
        return self.last


def _proportional_memory(pid: int) -> int | None:
    """The process's share of the memory it uses (PSS: a page shared by n processes
    counts 1/n in each), so that a tree's sum is not inflated by shared libraries.
    None where the kernel does not say (before Linux 4.14, or not Linux)."""
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as handle:
            for line in handle:
                if line.startswith(b"Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def descendants(pid: int) -> list[psutil.Process]:
    try:
        return list(psutil.Process(pid).children(recursive=True))
    except psutil.Error:
        return []


async def kill_tree(process: Child, grace: float, *, sandboxed: bool = False) -> None:
    """SIGTERM the process group, wait `grace` seconds, then SIGKILL what is left,
    including descendants that moved to a group of their own. In a sandbox, SIGTERM
    goes to the action's processes only: the sandbox's own (bubblewrap and its init)
    would take the action down with them at once, leaving it no time to clean up."""
    pid = process.pid
    stray = descendants(pid)
    if not sandboxed:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(pid, signal.SIGTERM)
    for proc in stray:
        with contextlib.suppress(psutil.Error):
            if not sandboxed or proc.ppid() != pid:
                proc.terminate()
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), timeout=grace)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    for proc in stray:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    await process.wait()


async def run_process(ctx: RunContext, argv: list[str], env: dict[str, str]) -> ProcessResult:
    paths = ctx.paths
    paths.create()
    sandbox = ctx.sandbox
    view = sandbox.view(paths)
    full_env = {
        **ctx.inherited_env,
        **env,
        "EXECD_EXECUTION_ID": str(ctx.execution.id),
        "EXECD_EXECUTION_UUID": ctx.execution.uuid,
        "EXECD_ATTEMPT": str(ctx.execution.attempt),
        "EXECD_CONTROL_FILE": view.control_file,
        "EXECD_RESULT_FILE": view.result_file,
        "EXECD_ARTIFACTS_DIR": view.artifacts_dir,
        "EXECD_WORK_DIR": view.work_dir,
    }
    options = SandboxOptions.from_json(ctx.execution.sandbox)
    launch = sandbox.launch(argv, full_env, paths, options, ctx.execution.id)
    guard = LimitGuard(options.limits.within(sandbox.ceiling), launch.overhead)
    stdout = CappedLog(paths.stdout_file, ctx.output_limit, guard)
    stderr = CappedLog(paths.stderr_file, ctx.output_limit, guard)
    control = ControlReader(paths.control_file, paths.work_dir, paths.artifacts_dir)
    try:
        process = await spawn(launch.argv, cwd=launch.cwd, env=launch.env, pass_fds=launch.pass_fds)
    except OSError:
        stdout.close()
        stderr.close()
        launch.finish()
        raise
    finally:
        launch.close()
    guard.pid = process.pid
    leftovers.remember(paths.run_dir, process.pid)
    ctx.on_pid(process.pid)
    sampler = UsageSampler(process.pid, launch.overhead)
    pumps = [
        asyncio.create_task(_pump(process.stdout, stdout)),
        asyncio.create_task(_pump(process.stderr, stderr)),
    ]
    watcher = asyncio.create_task(_watch(ctx, control, sampler, guard))
    try:
        return_code = await process.wait()
        # A background child may still hold the pipes open; the run is over, so it goes.
        _, open_pipes = await asyncio.wait(pumps, timeout=PIPE_GRACE_SECONDS)
        if open_pipes:
            await kill_tree(process, 0, sandboxed=launch.overhead > 0)
            await asyncio.gather(*pumps)
    except BaseException:
        stop = kill_tree(process, ctx.kill_grace, sandboxed=launch.overhead > 0)
        await asyncio.shield(stop)
        raise
    finally:
        watcher.cancel()
        for pump in pumps:
            pump.cancel()
        await asyncio.gather(watcher, *pumps, return_exceptions=True)
        process.close()
        stdout.close()
        stderr.close()
        # Processes left in the run's group (a `cmd &` in a script) must not outlive it.
        # The group keeps the leader's id after the leader is gone, so this reaches them.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(process.pid, signal.SIGKILL)
        leftovers.forget(paths.run_dir)
        kernel_limit = await asyncio.to_thread(launch.finish)
    if launch.signals_as_codes and 128 < return_code < 128 + signal.NSIG:
        return_code = 128 - return_code
    guard.reason = guard.reason or kernel_limit
    # Reading what the action left (its control file, its trees) is work of a size the
    # action chose: it is done in a thread, never on the event loop.
    if await asyncio.to_thread(control.poll):
        ctx.on_progress(dict(control.progress))
    usage = sampler.last or {}
    usage["disk_bytes"] = await asyncio.to_thread(_disk_usage, paths)
    result = ProcessResult(
        return_code=return_code,
        stdout_tail=stdout.tail_text(),
        stderr_tail=stderr.tail_text(),
        truncated=bool(stdout.dropped or stderr.dropped),
        control=control,
        usage=usage,
        limit=guard.reason,
        limits=guard.limits,
    )
    _read_result(ctx, result)
    return result


async def _pump(stream: asyncio.StreamReader | None, log: CappedLog) -> None:
    if stream is None:
        return
    while chunk := await stream.read(65536):
        log.write(chunk)


async def _watch(
    ctx: RunContext, control: ControlReader, sampler: UsageSampler, guard: LimitGuard
) -> None:
    next_sample = 0.0
    while True:
        if await asyncio.to_thread(control.poll):
            ctx.on_progress(dict(control.progress))
        now = time.monotonic()
        if now >= next_sample:
            usage = await asyncio.to_thread(sampler.sample)
            guard.check(usage)
            ctx.on_usage(dict(usage))
            next_sample = now + SAMPLE_SECONDS
        await asyncio.sleep(POLL_SECONDS)


def _read_result(ctx: RunContext, result: ProcessResult) -> None:
    """The result file wins over a `result` control line. The action wrote it, and may
    have made it a symlink to anything the worker can read: a link is not followed."""
    fd = files.open_file_no_follow(ctx.paths.result_file)
    if fd is not None:
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(fd).st_size
            if size > ctx.result_limit:
                result.explicit_result = {"error": f"result file too large ({size} bytes)"}
            else:
                try:
                    result.explicit_result = orjson.loads(handle.read(ctx.result_limit + 1))
                except orjson.JSONDecodeError as exc:
                    result.explicit_result = {"error": f"result file is not JSON: {exc}"}
        result.has_result = True
    elif result.control.has_result:
        result.explicit_result = result.control.result
        result.has_result = True


def _disk_usage(paths: ExecutionPaths) -> int:
    return sum(
        size
        for root in (paths.store_dir, paths.work_dir)
        for _, size in files.regular_files(root, linked=True)
    )
