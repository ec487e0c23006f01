"""The composition root: the one place that builds concrete parts and wires them."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

from execd import data_dir
from execd.config import Settings
from execd.domain.errors import StartupError
from execd.domain.sandbox import sandbox_status
from execd.domain.workers import OFFLINE
from execd.engine.accounts import AccountService
from execd.engine.actions import ActionService
from execd.engine.audit import AuditLog
from execd.engine.executions import ExecutionService
from execd.engine.flows import FlowService
from execd.engine.jobs import JobService
from execd.engine.notifier import Notifier, SmtpSettings
from execd.engine.reaper import Reaper
from execd.engine.retention import Retention
from execd.engine.rules import RuleEngine, RuleService
from execd.engine.sealing import Rotation, Sealer, SealError, check_keys, read_keys, rotate
from execd.engine.streams import LiveStreams
from execd.engine.worker import Worker, WorkerConfig
from execd.runners import leftovers, sandbox
from execd.runners.registry import build_runners
from execd.store.accounts import Accounts
from execd.store.artifacts import ArtifactStore
from execd.store.audit import AuditStore
from execd.store.catalog import Catalog
from execd.store.database import Database
from execd.store.events import EventLog
from execd.store.executions import ExecutionQueries
from execd.store.flows import FlowStore
from execd.store.jobs import JobStore
from execd.store.migrate import current_head, upgrade, version
from execd.store.notifications import NotificationStore
from execd.store.queue import Queue
from execd.store.retention import RetentionStore
from execd.store.rules import RuleStore
from execd.store.sealed import SealedStore
from execd.store.workers import WorkerRegistry
from execd.supervisor import ChildProcesses

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class ApiProcesses:
    """More processes to serve the API, with `env` (where to listen); `exited` hears
    of each one's end (by pid)."""

    count: int
    env: dict[str, str]
    exited: Callable[[int], None] | None = None


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.db = Database(
            settings.resolved_database_url,
            pool_size=settings.db_pool_size,
            sqlite_synchronous=settings.sqlite_synchronous,
        )
        self.artifacts = ArtifactStore(settings.resolved_artifacts_dir)
        # Lost work is queued again only once what it left running here is gone.
        self.queue = Queue(self.db, leftovers.stopper(settings.resolved_work_dir))
        self.registry = WorkerRegistry(self.db, settings.worker_retention_seconds)
        self.accounts = AccountService(
            Accounts(self.db),
            cache_seconds=settings.token_cache_seconds,
            anonymous_role=settings.anonymous,
        )
        # Keys are loaded at start (the key file may have to be made then).
        self.sealer = Sealer()
        self.sealed = SealedStore(self.db)
        self.actions = ActionService(Catalog(self.db), self.sealer)
        self.executions = ExecutionService(
            self.queue, ExecutionQueries(self.db), self.actions, self.registry, self.artifacts
        )
        self.flows = FlowService(
            FlowStore(self.db),
            self.actions,
            self.executions,
            self.registry,
            self.artifacts,
            worker_alive_seconds=settings.lease_seconds,
        )
        self.jobs = JobService(
            JobStore(self.db),
            self.actions,
            self.executions,
            self.flows,
            self.registry,
            NotificationStore(self.db),
            worker_alive_seconds=settings.lease_seconds,
        )
        audit = AuditStore(self.db)
        self.audit = AuditLog(audit)
        self.retention = Retention(
            RetentionStore(self.db), self.artifacts, audit, settings.retention_policy()
        )
        self.streams = LiveStreams(
            EventLog(self.db), self.executions, poll_seconds=settings.stream_poll_seconds
        )
        self.rules = RuleService(RuleStore(self.db, self.queue, self.actions.prepare), self.sealer)
        self.workers: list[Worker] = []
        self.worker_processes: ChildProcesses | None = None
        self.api_processes: ChildProcesses | None = None
        self.admin_token: str | None = None
        self.reaper: Reaper | None = None  # once started (what it counts: metrics)
        self.notifier: Notifier | None = None
        self._sandbox: sandbox.Sandbox | None = None
        self._background: list[asyncio.Task[None]] = []
        self._worker_tasks: list[asyncio.Task[None]] = []

    async def readiness(self) -> dict[str, str]:
        """What a load balancer asks before it sends work here: each check's finding,
        "ok" when it passes."""
        checks = {"database": "ok", "schema": "ok", "workers": "ok"}
        try:
            found = await self.db.read(version)
        except Exception as exc:  # the reason only: what a probe may show anyone
            reason = getattr(exc, "reason", "database unreachable")
            return {**checks, "database": reason, "schema": "unknown", "workers": "unknown"}
        if found != (head := current_head()):
            checks["schema"] = f"at {found or 'nothing'}, {head} expected: run execd migrate"
        alive_since = time.time() - self.settings.lease_seconds
        nodes = await self.registry.nodes(include_offline=False)
        if not any(n.state != OFFLINE and n.last_heartbeat >= alive_since for n in nodes):
            checks["workers"] = "no worker has been heard from in a lease length"
        return checks

    def preflight(self, *, workers: int) -> None:
        """What can refuse a start, checked before anything is served: the data
        directory, the secret keys, and the action sandbox where workers will run."""
        data_dir.prepare(self.settings.data_dir, self.settings.sqlite_path)
        self.load_keys()
        if workers:
            self.action_sandbox()

    async def start(
        self,
        *,
        workers: int = 0,
        bootstrap: bool = True,
        worker_processes: int = 0,
        api_processes: ApiProcesses | None = None,
    ) -> None:
        settings = self.settings
        self.preflight(workers=workers + worker_processes)
        if settings.auto_migrate:
            await asyncio.to_thread(upgrade, settings.resolved_database_url)
        if settings.sqlite_path is not None:
            data_dir.make_private(settings.sqlite_path)
        for problem in await check_keys(self.sealed, self.sealer):
            log.error("secret_keys", problem=problem)
        if bootstrap:
            _, self.admin_token = await self.accounts.bootstrap(
                settings.data_dir, settings.admin_token
            )
            if warning := settings.anonymous_warning():
                log.warning("anonymous_access", role=settings.anonymous, warning=warning)
        self.reaper = reaper = Reaper(
            self.queue,
            self.registry,
            interval=settings.reaper_seconds,
            lease_seconds=settings.lease_seconds,
        )
        self.notifier = notifier = Notifier(
            self.jobs.notifications,
            SmtpSettings(
                host=settings.smtp_host,
                port=settings.smtp_port,
                username=settings.smtp_username,
                password=settings.smtp_password,
                sender=settings.smtp_from,
                starttls=settings.smtp_starttls,
            ),
            self.sealer,
            fetch_allow=settings.fetch_allow_list(),
            interval=settings.notify_seconds,
            attempts=settings.notify_attempts,
            backoff=settings.notify_backoff_seconds,
        )
        self._background = [
            asyncio.create_task(self.db.listen()),
            asyncio.create_task(reaper.run()),
            asyncio.create_task(notifier.run()),
            asyncio.create_task(self.executions.roll_up_forever(settings.rollup_seconds)),
            asyncio.create_task(
                RuleEngine(self.rules.store, poll_seconds=settings.rules_poll_seconds).run()
            ),
        ]
        if self.retention.policy.active:
            self._background.append(
                asyncio.create_task(self.retention.run(settings.retention_seconds))
            )
        for index in range(workers):
            worker = self.new_worker(index if workers > 1 else None)
            self.workers.append(worker)
            self._worker_tasks.append(asyncio.create_task(worker.run()))
        if worker_processes:
            self.worker_processes = ChildProcesses(
                "worker", worker_processes, stop_grace=settings.shutdown_grace_seconds
            )
            await self.worker_processes.start()
        if api_processes is not None and api_processes.count:
            # Started once this process has migrated and bootstrapped: they do neither.
            self.api_processes = ChildProcesses(
                "api-process",
                api_processes.count,
                stop_grace=settings.shutdown_grace_seconds,
                env=api_processes.env,
                exited=api_processes.exited,
                # Ready only with them: a client's keep-alive connections all go to the
                # processes listening when it connects.
                ready_within=60.0,
            )
            await self.api_processes.start()
        for worker, task in zip(self.workers, self._worker_tasks, strict=True):
            ready = asyncio.create_task(worker.wait_ready())
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            if task.done():
                task.result()  # a worker that could not start: raise its error

    async def rotate_keys(self) -> Rotation:
        """Every secret in the database sealed again with the first key."""
        return await rotate(self.sealed, self.sealer)

    def load_keys(self, *, create: bool = True) -> None:
        """The secret keys, from EXECD_SECRET_KEY or the key file (made if `create`)."""
        given = self.settings.secret_key
        try:
            keys, source = read_keys(
                given.get_secret_value() if given else None, self.settings.data_dir, create=create
            )
        except SealError as exc:
            raise StartupError(exc.message) from None
        self.sealer.load(keys, source)

    async def run_until_workers_stop(self) -> None:
        await asyncio.gather(*self._worker_tasks)

    def status_warnings(self, sandboxes: list[str | None]) -> tuple[str, list[str]]:
        """How the live workers (their sandbox modes given) run actions, in one word,
        and what a status page must warn of: unsandboxed workers, anonymous access."""
        mode, warnings = sandbox_status(sandboxes)
        anonymous = self.settings.anonymous_warning()
        return mode, warnings + ([anonymous] if anonymous else [])

    def action_sandbox(self) -> sandbox.Sandbox:
        """The sandbox of this process's workers: built and tried once, at the first."""
        if self._sandbox is None:
            settings = self.settings
            read_only = sandbox.python_paths(settings.actions_path)
            self._sandbox = sandbox.build(
                settings.sandbox,
                settings.sandbox_ceiling(),
                read_only=read_only + [Path(p) for p in settings.sandbox_read_only],
                forbidden=settings.private_paths(),
                uid_base=settings.sandbox_uid_base,
                tmp_bytes=settings.sandbox_tmp_bytes,
                network=settings.sandbox_network == "host",
                cgroup=settings.sandbox_cgroup,
            )
            if self._sandbox.name == sandbox.NONE:
                log.warning("sandbox_disabled", warning=sandbox.UNSANDBOXED_WARNING)
            elif not self._sandbox.counts_all_memory:
                log.warning("sandbox_without_cgroups", warning=sandbox.RLIMITS_WARNING)
            # Groups of runs whose worker died before removing them (a kill -9).
            box = self._sandbox
            groups = box.cgroups if isinstance(box, sandbox.Bubblewrap) else None
            if groups is not None and (swept := groups.sweep()):
                log.info("stale_run_cgroups_removed", count=len(swept))
        return self._sandbox

    def new_worker(self, index: int | None = None) -> Worker:
        settings = self.settings
        name = settings.default_worker_name()
        config = WorkerConfig(
            name=name if index is None else f"{name}-{index}",
            capacity=settings.worker_concurrency,
            labels=settings.worker_labels,
            lease_seconds=settings.lease_seconds,
            heartbeat_seconds=settings.heartbeat_seconds,
            poll_seconds=settings.poll_seconds,
            kill_grace_seconds=settings.kill_grace_seconds,
            shutdown_grace_seconds=settings.shutdown_grace_seconds,
            output_limit_bytes=settings.output_limit_bytes,
            result_limit_bytes=settings.result_limit_bytes,
            work_root=settings.resolved_work_dir,
            keep_work_dirs=settings.keep_work_dirs,
            python_path=settings.actions_path,
            action_env=settings.action_env,
            devices=settings.worker_devices,
        )
        return Worker(
            config,
            queue=self.queue,
            registry=self.registry,
            signals=self.db.signals,
            runners=build_runners(settings.fetch_allow_list()),
            artifacts=self.artifacts,
            sealer=self.sealer,
            sandbox=self.action_sandbox(),
        )

    async def stop(self) -> None:
        """Workers drain first (they still need the database), then everything else."""
        for worker in self.workers:
            worker.stop()
        children = [c.stop() for c in (self.worker_processes, self.api_processes) if c]
        await asyncio.gather(*children, *self._worker_tasks, return_exceptions=True)
        for runner in {id(r): r for w in self.workers for r in w.runners.values()}.values():
            with contextlib.suppress(Exception):
                await runner.close()
        await self.executions.drain()
        for task in self._background:
            task.cancel()
        await asyncio.gather(*self._background, return_exceptions=True)
        await self.streams.hub.close()
        await self.db.dispose()
