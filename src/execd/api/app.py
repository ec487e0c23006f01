"""The FastAPI application, built around a Runtime (no module-level singletons)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from execd import __version__
from execd.api import dashboard, docs, errors, health, limits, metrics, openapi
from execd.api.access import AccessLog
from execd.api.audit import AuditTrail
from execd.api.deps import screen_request
from execd.api.dialects import flows, tenant, v1
from execd.api.responses import Json
from execd.runtime import ApiProcesses, Runtime


def create_app(
    runtime: Runtime,
    *,
    workers: int | None = None,
    worker_processes: int = 0,
    api_processes: tuple[int, str, int] | None = None,
    bootstrap: bool = True,
    on_ready: Callable[[], None] | None = None,
) -> FastAPI:
    """`workers`: embedded worker loops to start with the app (default from settings,
    else one); `worker_processes`: `execd worker` processes it starts and supervises;
    `api_processes`: (how many, host, port) more processes to serve the API that it
    starts and supervises, each listening on that port beside this one. `bootstrap`:
    make the default project and admin token (not in a child: its server has)."""
    if workers is None:
        workers = runtime.settings.embedded_workers
    embedded = 1 if workers is None else workers

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        children = None
        if api_processes is not None:
            count, host, on_port = api_processes
            where = {"EXECD_HOST": host, "EXECD_PORT": str(on_port)}
            children = ApiProcesses(count, where, exited=metrics.process_exited)
        await runtime.start(
            workers=embedded,
            bootstrap=bootstrap,
            worker_processes=worker_processes,
            api_processes=children,
        )
        counted: metrics.Metrics = app.state.metrics
        port = runtime.settings.metrics_port
        scraped = None
        if port is not None:
            scraped = metrics.serve_apart(counted, runtime.settings.metrics_host, port)
        syncing = asyncio.create_task(counted.sync_forever()) if counted.shared else None
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            if syncing is not None:
                syncing.cancel()
            if scraped is not None:
                scraped.shutdown()
            await runtime.stop()

    app = FastAPI(
        title="execd",
        version=__version__,
        description="Multi-tenant action and job execution service.",
        lifespan=lifespan,
        default_response_class=Json,
        dependencies=[Depends(screen_request)],
        docs_url=None,  # served by api/docs.py, with no CDN
        redoc_url=None,
    )
    app.state.runtime = runtime
    settings = runtime.settings
    app.state.rate_limits = limits.RateLimits.from_settings(settings)
    shaped = errors.Errors([v1.ERRORS, flows.ERRORS, tenant.ERRORS, dashboard.ERRORS])
    errors.install(app, shaped)
    app.include_router(health.router)
    app.include_router(docs.router)
    app.include_router(v1.router)
    app.include_router(flows.router)
    app.include_router(tenant.router)
    app.include_router(tenant.system_router)
    dashboard.install(app)
    openapi.install(app)
    app.state.metrics = found = metrics.Metrics(runtime)
    app.include_router(metrics.router)
    app.add_middleware(AuditTrail, audit=runtime.audit)
    bodies = limits.BodyLimits(
        json=settings.max_body_bytes,
        webhook=settings.max_webhook_bytes,
        form=settings.max_form_bytes,
    )
    app.add_middleware(
        limits.RequestLimits,
        errors=shaped,
        bodies=bodies,
        body_seconds=settings.body_timeout_seconds,
    )
    app.add_middleware(AccessLog, observe=found.observe, log_lines=settings.access_log)
    return app
