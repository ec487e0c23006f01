"""A worker: claims executions, runs them, keeps their leases alive, reports back.

One worker runs up to `capacity` executions at once. All its writes (start, progress,
finish) go through one group-commit queue, so a burst of short jobs costs a few
transactions, not a few per job. Every write carries the fencing token of the claim.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import psutil
import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from execd import __version__, files
from execd.domain import jsonsafe
from execd.domain.errors import StoreUnavailable
from execd.domain.executions import Execution, Outcome
from execd.domain.flows import FLOW_RUNNER
from execd.domain.states import Status
from execd.domain.workers import ACTIVE, DRAINING, OFFLINE
from execd.engine.batching import GroupCommit
from execd.engine.run_figures import RunFigures
from execd.engine.sealing import Sealer, SealError
from execd.runners import leftovers
from execd.runners.base import InlineRunner, RunContext, Runner
from execd.runners.paths import ExecutionPaths
from execd.runners.process import inherited_environment
from execd.runners.sandbox import Sandbox, Unsandboxed
from execd.store.artifacts import ArtifactStore
from execd.store.changes import NOW, Change
from execd.store.queue import Inline, Queue
from execd.store.signals import CANCEL, JOBS, Signals
from execd.store.workers import WorkerRegistry

log = structlog.get_logger(__name__)

PROGRESS_FLUSH_SECONDS = 0.5
# How many executions of inline runners (built-ins that end at once, see
# runners/base.py InlineRunner) one claim may run and end besides the free slots.
INLINE_PER_CLAIM = 200


@dataclass(frozen=True)
class WorkerConfig:
    name: str
    capacity: int
    labels: list[str]
    lease_seconds: float
    heartbeat_seconds: float
    poll_seconds: float
    kill_grace_seconds: float
    shutdown_grace_seconds: float
    output_limit_bytes: int
    result_limit_bytes: int
    work_root: Path
    keep_work_dirs: bool = False
    python_path: list[str] = field(default_factory=list)
    action_env: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)


@dataclass
class Running:
    execution: Execution
    task: asyncio.Task[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None  # "cancel", "lost" or "shutdown" once asked to stop
    # How a cancel asked to stop: at once (no grace), and whether to drop artifacts.
    cancel_request: dict[str, Any] = field(default_factory=dict)


class Worker:
    def __init__(
        self,
        config: WorkerConfig,
        *,
        queue: Queue,
        registry: WorkerRegistry,
        signals: Signals,
        runners: dict[str, Runner],
        artifacts: ArtifactStore,
        sealer: Sealer,
        sandbox: Sandbox | None = None,
    ) -> None:
        self.config = config
        self.sealer = sealer
        self.sandbox = sandbox or Unsandboxed()
        self.artifacts = artifacts
        self.queue = queue
        self.registry = registry
        self.signals = signals
        self.runners = runners
        self.id: int | None = None
        self.running: dict[int, Running] = {}
        self._stopping = asyncio.Event()
        self._slot_freed = asyncio.Event()
        self._reports: GroupCommit[Change, Status | None] = GroupCommit(queue.apply)
        # Latest progress/usage/pid per running execution, and which changed since written.
        self._latest: dict[int, dict[str, Any]] = {}
        self._dirty: dict[int, set[str]] = {}  # what changed since last written
        self._ready = asyncio.Event()
        self._inherited_env = inherited_environment(config.action_env)
        self._renewed_at = time.monotonic()  # when the last lease renewal was asked for
        self.figures = RunFigures()  # what this process ran, for metrics (its heartbeat)
        inline = frozenset(n for n, r in runners.items() if isinstance(r, InlineRunner))
        self._inline = Inline(inline, self._settle, INLINE_PER_CLAIM) if inline else None

    def stop(self) -> None:
        """Stop claiming, let running work finish (up to the shutdown grace), hand back the rest."""
        self._stopping.set()

    async def wait_ready(self) -> None:
        await self._ready.wait()

    async def run(self) -> None:
        node = await self.registry.register(
            self.config.name,
            socket.gethostname(),
            os.getpid(),
            self.config.labels,
            self.config.capacity,
            __version__,
            live_within=self.config.lease_seconds,
            devices=self.config.devices,
            cpu_count=psutil.cpu_count(),
            memory_total=psutil.virtual_memory().total,
            sandbox=self.sandbox.name,
        )
        self.id = node.id
        lost = await self.queue.recover_worker(node.id)
        if lost:
            log.warning("recovered_from_previous_run", worker=self.config.name, count=len(lost))
        jobs = self.signals.subscribe(JOBS)
        cancels = self.signals.subscribe(CANCEL)
        helpers = [
            asyncio.create_task(self._heartbeat_loop()),
            asyncio.create_task(self._cancel_loop(cancels)),
            asyncio.create_task(self._progress_loop()),
        ]
        self._ready.set()
        log.info(
            "worker_started", worker=self.config.name, id=node.id, capacity=self.config.capacity
        )
        try:
            await self._claim_loop(jobs)
            await self._drain()
        finally:
            for helper in helpers:
                helper.cancel()
            await asyncio.gather(*helpers, return_exceptions=True)
            self.signals.unsubscribe(JOBS, jobs)
            self.signals.unsubscribe(CANCEL, cancels)
            await self._reports.drain()
            with contextlib.suppress(Exception):
                await self.registry.set_state(
                    node.id, OFFLINE, active=0, figures=self.figures.to_json()
                )
            log.info("worker_stopped", worker=self.config.name)

    # -- claiming ---------------------------------------------------------------------

    async def _claim_loop(self, jobs: asyncio.Event) -> None:
        assert self.id is not None
        # Whether work is likely: after a wake-up signal or a full claim, claim at once;
        # after a quiet poll, look first with a cheap read instead of taking the write lock.
        likely = True
        while not self._stopping.is_set():
            free = self.config.capacity - len(self.running)
            if free <= 0:
                self._slot_freed.clear()
                await _wait_any(self._slot_freed, self._stopping)
                continue
            jobs.clear()
            claimed: list[Execution] = []
            try:
                if likely or await self.queue.has_work(self.config.devices):
                    claimed = await self.queue.claim(
                        self.id,
                        free,
                        self.config.lease_seconds,
                        self.config.devices,
                        self._inline,
                    )
            except Exception as exc:  # the database may be briefly unreachable
                log.warning("claim_failed", error=str(exc))
                await _wait_any(self._stopping, timeout=self.config.poll_seconds)
                continue
            started = [e for e in claimed if e.status is Status.SCHEDULED]
            for execution in started:
                self._start(execution)
            if len(started) == free or len(started) < len(claimed):
                continue  # more may be ready: the claim took all it could, or ran some
            timeout = self.config.poll_seconds
            with contextlib.suppress(Exception):
                due = await self.queue.next_due()
                if due is not None:
                    timeout = min(timeout, due + 0.001)
            likely = await _wait_any(jobs, self._stopping, timeout=timeout)

    def _start(self, execution: Execution) -> None:
        # The same execution again, under a newer fence: this worker's lease ran out while
        # it still ran the old attempt (say the database was out of reach) and the reaper
        # queued it again. The old run stops before the new one starts.
        previous = self.running.get(execution.id)
        if previous is not None:
            self._stop_one(execution.id, "lost")
        task = asyncio.create_task(
            self._execute(execution, previous.task if previous is not None else None)
        )
        self.running[execution.id] = Running(execution, task)
        task.add_done_callback(lambda done: self._finished(execution.id, done))

    def _finished(self, execution_id: int, task: asyncio.Task[None]) -> None:
        entry = self.running.get(execution_id)
        if entry is None or entry.task is not task:
            return  # an older run of an execution this worker has claimed again
        del self.running[execution_id]
        self._latest.pop(execution_id, None)
        self._dirty.pop(execution_id, None)
        self._slot_freed.set()

    # -- running one execution --------------------------------------------------------

    async def _execute(self, execution: Execution, previous: asyncio.Task[None] | None) -> None:
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        entry = self.running[execution.id]
        start = self._start_change(execution)
        paths = ExecutionPaths(
            # Each attempt (fence) has its own scratch directory.
            run_dir=self.config.work_root / leftovers.run_name(execution),
            store_dir=self.artifacts.dir_for(execution),
        )
        if execution.runner == FLOW_RUNNER:
            # A flow holds no worker: starting it is all there is to do here. Its steps
            # are queued as it goes (see store/queue/flow_engine.py).
            await self._reports(
                replace(
                    start,
                    values={"started": NOW, "lease_expires": None, "worker_id": None},
                    message=f"flow started by worker {self.config.name}",
                )
            )
            return
        if await self._reports(start) is None:
            return  # cancelled before it started, or no longer ours
        began = time.monotonic()
        self.figures.began(execution.action_ref, _waited(execution))
        log.info("execution_started", **self._facts(execution))
        running = replace(execution, status=Status.RUNNING)
        try:
            outcome = await self._run(entry, running, paths)
        finally:
            if not self.config.keep_work_dirs:
                await asyncio.to_thread(files.remove_tree, paths.run_dir)
        if outcome is not None:
            await self._report_final(self._finish_change(execution, outcome))
        seconds = round(time.monotonic() - began, 3)
        self.figures.ran(seconds)
        ended = outcome.status.value if outcome is not None else "stopped here"
        log.info("execution_ended", **self._facts(execution), status=ended, seconds=seconds)

    def _facts(self, execution: Execution) -> dict[str, Any]:
        """What an execution's log lines say of it: who, what and where; never its
        parameters or result."""
        return {
            "execution": execution.id,
            "uuid": execution.uuid,
            "tenant": execution.tenant_id,
            "project": execution.project_id,
            "action": execution.action_ref,
            "attempt": execution.attempt,
            "worker": self.config.name,
        }

    def _settle(self, execution: Execution) -> list[Change]:
        """(In the claim's transaction, database thread) Run an execution of an inline
        runner: the changes that start and end it."""
        runner: InlineRunner = self.runners[execution.runner]  # type: ignore[assignment]
        opened = self._opened(execution)
        began = time.monotonic()
        outcome = opened if isinstance(opened, Outcome) else runner.settle(opened)
        seconds = round(time.monotonic() - began, 3)
        self.figures.began(execution.action_ref, _waited(execution))
        self.figures.ran(seconds)
        log.info("execution_ran_inline", **self._facts(execution), status=outcome.status.value,
                 seconds=seconds)  # fmt: skip
        return [self._start_change(execution), self._finish_change(execution, outcome)]

    def _start_change(self, execution: Execution) -> Change:
        return Change(
            execution.id,
            Status.RUNNING,
            fence=execution.fence,
            values={"started": NOW},
            message=f"started by worker {self.config.name}",
        )

    def _opened(self, execution: Execution) -> Execution | Outcome:
        """The execution with its secret values opened, for the run only (they are never
        stored opened), or the failure to open them."""
        if not execution.secrets:
            return execution
        try:
            opened = self.sealer.open_values(execution.parameters, execution.secrets)
        except SealError as exc:
            log.error("secret_unopened", execution=execution.id, error=exc.message)
            return Outcome(Status.FAILED, error=f"not run: {exc.message}")
        return replace(execution, parameters=opened)

    def _finish_change(self, execution: Execution, outcome: Outcome) -> Change:
        latest = self._latest.get(execution.id, {})
        progress = {**latest.get("progress", {}), **(outcome.progress or {})}
        if outcome.status is Status.COMPLETED:
            progress["percent"] = 100.0
        error = jsonsafe.scrub_text(outcome.error) if outcome.error else None
        values: dict[str, Any] = {
            "result": outcome.result,
            "error": error,
            "exit_code": outcome.exit_code,
            "progress": progress or None,
        }
        usage = outcome.usage or latest.get("usage")
        if usage:
            values["usage"] = usage
        if "pid" in latest:
            values["pid"] = latest["pid"]
        return Change(
            execution.id,
            outcome.status,
            fence=execution.fence,
            values=values,
            message=error,
            settle=True,
        )

    async def _report_final(self, change: Change) -> None:
        """The outcome is worth some patience: retry while the database is unreachable.
        If it never gets through, the lease runs out and the reaper takes over. An
        outcome the database refuses for what it holds is replaced by a failure that
        says so, rather than retried in vain."""
        delay = 0.1
        replaced = False
        for _ in range(8):
            try:
                await self._reports(change)
                return
            except Exception as exc:
                if not _transient(exc) and not replaced:
                    replaced = True
                    log.error("outcome_refused", execution=change.execution_id, error=str(exc))
                    change = replace(
                        change,
                        to=Status.FAILED,
                        values={
                            "result": None,
                            "error": _refused(exc),
                        },
                        message="the outcome could not be stored",
                    )
                    continue
                log.warning("report_failed", execution=change.execution_id, error=str(exc))
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _run(
        self, entry: Running, execution: Execution, paths: ExecutionPaths
    ) -> Outcome | None:
        runner = self.runners.get(execution.runner)
        if runner is None:
            return Outcome(Status.FAILED, error=f"no runner called {execution.runner!r}")
        opened = self._opened(execution)
        if isinstance(opened, Outcome):
            return opened
        execution = opened
        ctx = RunContext(
            execution=execution,
            paths=paths,
            output_limit=self.config.output_limit_bytes,
            result_limit=self.config.result_limit_bytes,
            kill_grace=self.config.kill_grace_seconds,
            python_path=self.config.python_path,
            inherited_env=self._inherited_env,
            on_progress=lambda p: self._note(execution.id, "progress", p),
            on_usage=lambda u: self._note(execution.id, "usage", u),
            on_pid=lambda pid: self._note(execution.id, "pid", pid),
            sandbox=self.sandbox,
        )
        run = asyncio.create_task(runner.run(ctx))
        stop = asyncio.create_task(entry.stop.wait())
        try:
            done, _ = await asyncio.wait(
                {run, stop}, timeout=execution.timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            stop.cancel()
        if run in done:
            try:
                return run.result()
            except Exception as exc:
                log.warning("runner_error", execution=execution.id, error=repr(exc))
                return Outcome(Status.FAILED, error=f"runner error: {exc}")
        if entry.cancel_request.get("force"):
            ctx.kill_grace = 0.0  # forceTermination: SIGKILL without waiting
        run.cancel()  # stops the run: the runner kills its processes before returning
        await asyncio.gather(run, return_exceptions=True)
        if entry.reason is None:
            limit = execution.timeout
            unit = "second" if limit == 1 else "seconds"
            return Outcome(Status.TIMEOUT, error=f"timed out after {limit:g} {unit}")
        if entry.reason == "cancel":
            error = "cancelled"
            if entry.cancel_request.get("discard"):
                await asyncio.to_thread(files.remove_tree, paths.artifacts_dir)
                error = "cancelled; partial results discarded"
            return Outcome(Status.CANCELLED, error=error)
        return None  # lost or shutting down: someone else finishes it

    def _note(self, execution_id: int, key: str, value: Any) -> None:
        """Progress, usage and the pid are written in batches, not one by one."""
        if execution_id in self.running:
            self._latest.setdefault(execution_id, {})[key] = value
            self._dirty.setdefault(execution_id, set()).add(key)

    async def _progress_loop(self) -> None:
        while True:
            await asyncio.sleep(PROGRESS_FLUSH_SECONDS)
            dirty, self._dirty = self._dirty, {}
            # Only what changed: a progress value written again would be a progress
            # event again (usage and pid change far more often than progress).
            changes = [
                Change(
                    execution_id,
                    fence=self.running[execution_id].execution.fence,
                    when=frozenset({Status.RUNNING, Status.CANCELING}),
                    values={k: self._latest[execution_id][k] for k in keys},
                )
                for execution_id, keys in dirty.items()
                if execution_id in self.running and execution_id in self._latest
            ]
            if changes:
                await asyncio.gather(*(self._reports(c) for c in changes), return_exceptions=True)

    # -- leases, cancellation, shutdown ------------------------------------------------

    async def _heartbeat_loop(self) -> None:
        assert self.id is not None
        psutil.cpu_percent()
        while True:
            await asyncio.sleep(self.config.heartbeat_seconds)
            try:
                await self._check_leases()
                memory = psutil.virtual_memory()
                await self.registry.heartbeat(
                    self.id,
                    active=len(self.running),
                    cpu_percent=psutil.cpu_percent(),
                    memory_percent=memory.percent,
                    memory_bytes=memory.total - memory.available,
                    state=DRAINING if self._stopping.is_set() else ACTIVE,
                    figures=self.figures.to_json(),
                )
            except Exception as exc:
                log.warning("heartbeat_failed", error=str(exc))
                self._give_up_expired_leases()

    def _give_up_expired_leases(self) -> None:
        """Without a renewal for a whole lease, the leases may have run out and the work
        may be running elsewhere already: stop it here rather than run it twice."""
        if time.monotonic() - self._renewed_at < self.config.lease_seconds:
            return
        stale = [i for i, r in self.running.items() if r.reason is None]
        if stale:
            log.warning("leases_expired", worker=self.config.name, count=len(stale))
        for execution_id in stale:
            self._stop_one(execution_id, "lost")

    async def _cancel_loop(self, cancels: asyncio.Event) -> None:
        while True:
            await cancels.wait()
            cancels.clear()
            with contextlib.suppress(Exception):
                await self._check_leases()

    async def _check_leases(self) -> None:
        assert self.id is not None
        held = {i: r.execution.fence for i, r in self.running.items() if r.reason is None}
        asked = time.monotonic()
        statuses = await self.queue.renew_leases(self.id, held, self.config.lease_seconds)
        self._renewed_at = asked
        cancelling = [i for i, status in statuses.items() if status is Status.CANCELING]
        requests = await self.queue.cancel_requests(cancelling) if cancelling else {}
        for execution_id, status in statuses.items():
            if status is None:
                self._stop_one(execution_id, "lost")
            elif status is Status.CANCELING:
                entry = self.running.get(execution_id)
                if entry is not None and entry.reason is None:
                    entry.cancel_request = requests.get(execution_id) or {}
                self._stop_one(execution_id, "cancel")

    def _stop_one(self, execution_id: int, reason: str) -> None:
        entry = self.running.get(execution_id)
        if entry is not None and entry.reason is None:
            entry.reason = reason
            entry.stop.set()

    async def _drain(self) -> None:
        assert self.id is not None
        if not self.running:
            return
        with contextlib.suppress(Exception):
            await self.registry.set_state(self.id, DRAINING, active=len(self.running))
        tasks = [r.task for r in self.running.values()]
        _, pending = await asyncio.wait(tasks, timeout=self.config.shutdown_grace_seconds)
        if not pending:
            return
        handed_back = {i: r.execution.fence for i, r in self.running.items()}
        for execution_id in handed_back:
            self._stop_one(execution_id, "shutdown")
        await asyncio.gather(*pending, return_exceptions=True)
        await self.queue.release(self.id, handed_back)
        log.info("handed_back", count=len(handed_back))


def _waited(execution: Execution) -> float:
    """From submission (or the time it was due, if later) to its start, as this host's
    clock tells it."""
    return time.time() - max(execution.created, execution.not_before or 0.0)


def _refused(exc: Exception) -> str:
    return jsonsafe.scrub_text(f"the outcome could not be stored: {exc}")[:2000]


def _transient(exc: Exception) -> bool:
    """Whether an error says the database was out of reach, not that it refused the data."""
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or isinstance(exc, OperationalError | InterfaceError)
    return isinstance(exc, StoreUnavailable | OSError | TimeoutError | ConnectionError)


async def _wait_any(*events: asyncio.Event, timeout: float | None = None) -> bool:
    """Wait until one of `events` is set or `timeout` passes; True if an event was set."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
    return bool(done)
