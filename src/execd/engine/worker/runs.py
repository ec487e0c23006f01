"""Running executions on a worker: each under its timeout and the worker's stop
signal, its start, progress and outcome reported through one group-commit queue (a
burst of short jobs costs a few transactions, not a few per job). Every report carries
the fencing token of the claim."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from execd import files
from execd.domain import jsonsafe
from execd.domain.changes import NOW, Change
from execd.domain.errors import StoreUnavailable
from execd.domain.executions import Execution, Outcome
from execd.domain.flows import FLOW_RUNNER
from execd.domain.states import Status
from execd.engine.batching import Reports
from execd.engine.run_figures import RunFigures
from execd.engine.sealing import Sealer, SealError
from execd.engine.worker.config import WorkerConfig
from execd.runners import leftovers
from execd.runners.base import InlineRunner, RunContext, Runner
from execd.runners.paths import ExecutionPaths
from execd.runners.process import inherited_environment
from execd.runners.sandbox import Sandbox
from execd.store.artifacts import ArtifactStore
from execd.store.queue import Queue

log = structlog.get_logger(__name__)

PROGRESS_FLUSH_SECONDS = 0.5


@dataclass
class Running:
    execution: Execution
    task: asyncio.Task[None]
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reason: str | None = None  # "cancel", "lost" or "shutdown" once asked to stop
    # How a cancel asked to stop: at once (no grace), and whether to drop artifacts.
    cancel_request: dict[str, Any] = field(default_factory=dict)


class Runs:
    def __init__(
        self,
        config: WorkerConfig,
        running: Mapping[int, Running],
        *,
        queue: Queue,
        runners: dict[str, Runner],
        artifacts: ArtifactStore,
        sealer: Sealer,
        sandbox: Sandbox,
    ) -> None:
        self.config = config
        self.running = running  # the worker's, by execution id: it adds and removes them
        self.runners = runners
        self.artifacts = artifacts
        self.sealer = sealer
        self.sandbox = sandbox
        self.reports = Reports(queue)
        # Latest progress/usage/pid per running execution, and which changed since written.
        self._latest: dict[int, dict[str, Any]] = {}
        self._dirty: dict[int, set[str]] = {}  # what changed since last written
        self._inherited_env = inherited_environment(config.action_env)
        self.figures = RunFigures()  # what this process ran, for metrics (its heartbeat)

    async def execute(self, execution: Execution, previous: asyncio.Task[None] | None) -> None:
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
            await self.reports.apply(
                replace(
                    start,
                    values={"started": NOW, "lease_expires": None, "worker_id": None},
                    message=f"flow started by worker {self.config.name}",
                )
            )
            return
        if await self.reports.apply(start) is None:
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

    def settle(self, execution: Execution) -> list[Change]:
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
                await self.reports.apply(change)
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

    def forget(self, execution_id: int) -> None:
        """Drop what was noted of a run that has ended here."""
        self._latest.pop(execution_id, None)
        self._dirty.pop(execution_id, None)

    def _note(self, execution_id: int, key: str, value: Any) -> None:
        """Progress, usage and the pid are written in batches, not one by one."""
        if execution_id in self.running:
            self._latest.setdefault(execution_id, {})[key] = value
            self._dirty.setdefault(execution_id, set()).add(key)

    async def progress_loop(self) -> None:
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
                reports = (self.reports.apply(c) for c in changes)
                await asyncio.gather(*reports, return_exceptions=True)

    async def drain(self) -> None:
        """Wait until every report asked for is written."""
        await self.reports.drain()


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
