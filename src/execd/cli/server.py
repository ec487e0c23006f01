"""Server-side commands that serve: the server and its API processes, and workers
(the commands that only work on the database are in maintenance.py)."""

from __future__ import annotations

import asyncio
import errno
import os
import signal
import socket
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from execd import __version__
from execd.cli.app import SERVER, app

if TYPE_CHECKING:  # imported where used: client commands start faster without them
    from execd.config import Settings
    from execd.runtime import Runtime


def server_settings(**overrides: Any) -> Settings:
    """The settings of a server-side command. Such a process writes the service's own
    files (the database, keys, artifacts): none of them readable by other users."""
    from execd.config import Settings

    os.umask(0o077)
    return Settings(**{k: v for k, v in overrides.items() if v is not None})


def _warn(runtime: Runtime, *, api: bool) -> None:
    """Loudly, on stderr: what makes this process unsafe for anything but a trusted
    single user (actions unsandboxed; on an API, requests without a token let in)."""
    from execd.runners.sandbox import NONE, UNSANDBOXED_WARNING

    warnings = []
    if (runtime.workers or runtime.worker_processes) and runtime.action_sandbox().name == NONE:
        warnings.append(UNSANDBOXED_WARNING)
    if api and (anonymous := runtime.settings.anonymous_warning()) is not None:
        warnings.append(anonymous)
    line = "!" * 78
    for warning in warnings:
        typer.echo(f"{line}\nWARNING: {warning}\n{line}", err=True)


def _configure_logging(settings: Settings) -> None:
    from execd import logging as execd_logging

    execd_logging.configure(settings.log_level, settings.log_format)


def run_loop(coroutine: Any) -> Any:
    try:
        import uvloop

        return uvloop.run(coroutine)
    except ImportError:
        return asyncio.run(coroutine)


@app.command(rich_help_panel=SERVER)
def version() -> None:
    """Print the version."""
    typer.echo(__version__)


@app.command(rich_help_panel=SERVER)
def serve(
    host: Annotated[str | None, typer.Option(help="Listen address [EXECD_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Listen port [EXECD_PORT]")] = None,
    workers: Annotated[
        int | None,
        typer.Option(
            help="Worker loops in this process, 0 for an API-only node [EXECD_EMBEDDED_WORKERS]"
        ),
    ] = None,
    worker_processes: Annotated[
        int | None,
        typer.Option(
            help="Worker processes to start; default: one per core but one [EXECD_WORKER_PROCESSES]"
        ),
    ] = None,
    api_processes: Annotated[
        int | None,
        typer.Option(
            help="Processes serving the API on the port; default: two with SQLite on Linux "
            "with two cores or more [EXECD_API_PROCESSES]"
        ),
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="[EXECD_DATA_DIR]")] = None,
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Run the API, the scheduler and the reaper, with embedded workers."""
    from execd.api import http_server
    from execd.runtime import Runtime

    settings = server_settings(
        host=host,
        port=port,
        embedded_workers=workers,
        worker_processes=worker_processes,
        api_processes=api_processes,
        data_dir=data_dir,
        database_url=database_url,
    )
    # The children (workers, more API processes) read their settings from the
    # environment: where the data is must reach them as the flags said it.
    for name, value in (("EXECD_DATA_DIR", data_dir), ("EXECD_DATABASE_URL", database_url)):
        if value is not None:
            os.environ[name] = str(value)
    _configure_logging(settings)
    runtime = Runtime(settings)
    from execd.domain.errors import StartupError

    embedded, processes = settings.serve_workers()
    try:
        runtime.preflight(workers=embedded + processes)
    except StartupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    api_processes = settings.serve_api_processes()
    if api_processes > 1:
        _count_in_files(settings.data_dir / "metrics")
    from execd.api.app import create_app  # after the line above: it imports the metrics

    token_file = settings.data_dir / "admin-token"
    kept_before = token_file.exists()

    def ready() -> None:
        typer.echo(f"execd {__version__} ready at http://{settings.host}:{settings.port}")
        typer.echo(f"database: {runtime.db.url.render_as_string(hide_password=True)}")
        typer.echo(
            f"workers: {_count(processes, 'process', 'processes')}, "
            f"{_count(embedded, 'loop', 'loops')} in the API's process"
        )
        if api_processes > 1:
            typer.echo(f"API: {api_processes} processes on that port")
        typer.echo(_admin_token_line(settings.admin_token is not None, kept_before, token_file))
        if not kept_before and settings.admin_token is None and sys.stdout.isatty():
            typer.echo(f"  {runtime.admin_token}")
        _warn(runtime, api=True)
        sys.stdout.flush()

    # Listening before the app starts: once the banner says ready, connections are
    # accepted (queued until the first request is served), never refused.
    try:
        listener = _listen(settings.host, settings.port, shared=api_processes > 1, first=True)
    except OSError as exc:
        typer.echo(f"error: {_why_not(settings.host, settings.port, exc)}", err=True)
        raise typer.Exit(2) from None
    more = None
    if api_processes > 1:  # on the port this one got (EXECD_PORT=0: any)
        more = (api_processes - 1, settings.host, listener.getsockname()[1])
    application = create_app(
        runtime, workers=embedded, worker_processes=processes, api_processes=more, on_ready=ready
    )
    http_server.serve(application, listener, settings)


def _admin_token_line(from_environment: bool, kept_before: bool, token_file: Path) -> str:
    """Where the admin token is. Its value is shown once, on the start that made it, and
    only to a terminal (the next line): a banner that goes to a log file, or a token the
    operator set, is never printed."""
    if from_environment:
        return "admin token: the one EXECD_ADMIN_TOKEN sets"
    if kept_before:
        return f"admin token: in {token_file}"
    if sys.stdout.isatty():
        return f"admin token (made now, kept in {token_file}, shown this once):"
    return f"admin token: made now, in {token_file}"


def _count_in_files(directory: Path) -> None:
    """Several API processes: each counts its metrics in files there (prometheus-client's
    multiprocess mode), so that a scrape of any of them adds up all. Emptied first: a
    new server counts from zero. Set before prometheus-client is imported, here and
    (inherited) in the children."""
    directory.mkdir(mode=0o700, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)


@app.command("api-process", hidden=True)
def api_process() -> None:
    """(Started by `execd serve` with EXECD_API_PROCESSES > 1) Serve the API on the
    server's port beside it: no workers, no migrations, no banner."""
    from execd.api import http_server
    from execd.runtime import Runtime
    from execd.supervisor import PARENT_ENV, follow_parent, report_ready

    if PARENT_ENV not in os.environ:
        typer.echo("error: only `execd serve` starts this (EXECD_API_PROCESSES)", err=True)
        raise typer.Exit(2)
    follow_parent()
    # Its server migrates, and serves the metrics port.
    settings = server_settings().model_copy(update={"metrics_port": None, "auto_migrate": False})
    _configure_logging(settings)
    from execd.api.app import create_app

    runtime = Runtime(settings)
    try:
        listener = _listen(settings.host, settings.port, shared=True)
    except OSError as exc:
        typer.echo(f"error: cannot listen on {settings.host}:{settings.port}: {exc}", err=True)
        raise typer.Exit(2) from None
    application = create_app(
        runtime, workers=0, worker_processes=0, bootstrap=False, on_ready=report_ready
    )
    http_server.serve(application, listener, settings)


def _count(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


def _why_not(host: str, port: int, exc: OSError) -> str:
    """Why the port cannot be listened on, and what to do about it."""
    if exc.errno == errno.EADDRINUSE:
        other = 8091 if port != 8091 else 8092
        return (
            f"port {port} on {host} is in use (another execd, or another program). "
            f"Pick another: EXECD_PORT={other} make run, or execd serve --port {other}"
        )
    return f"cannot listen on {host}:{port}: {exc.strerror or exc}"


def _listen(host: str, port: int, *, shared: bool = False, first: bool = False) -> socket.socket:
    """`shared`: the API's processes each listen on the port (SO_REUSEPORT), and the
    kernel spreads new connections over them; the `first` of them makes sure no other
    program has the port. One socket shared by all would not: the
    process that wakes first accepts a whole burst of them, and a client's keep-alive
    connection stays where it was accepted."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    if first and shared and port:
        # A port another process listens on with SO_REUSEPORT (another execd) would be
        # shared without a word: a plain bind first finds it taken.
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind(address)
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if shared:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    listener.bind(address)
    listener.listen(2048)
    listener.set_inheritable(False)
    return listener


@app.command(rich_help_panel=SERVER)
def worker(
    concurrency: Annotated[
        int | None, typer.Option(help="Executions at once [EXECD_WORKER_CONCURRENCY]")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Worker name [EXECD_WORKER_NAME]")] = None,
    label: Annotated[
        list[str] | None, typer.Option(metavar="LABEL", help="A label (repeatable)")
    ] = None,
    device: Annotated[
        list[str] | None,
        typer.Option(
            metavar="DEVICE",
            help="A device this worker serves (repeatable) [EXECD_WORKER_DEVICES]",
        ),
    ] = None,
    database_url: Annotated[str | None, typer.Option(help="[EXECD_DATABASE_URL]")] = None,
) -> None:
    """Run a worker process against the same database as the server."""
    from execd.supervisor import follow_parent

    follow_parent()
    settings = server_settings(
        worker_concurrency=concurrency,
        worker_name=name,
        worker_labels=label or None,
        worker_devices=device or None,
        database_url=database_url,
    )
    _configure_logging(settings)
    from execd.domain.errors import ExecdError, StartupError

    try:
        run_loop(_worker(settings))
    except ExecdError as exc:
        typer.echo(f"error: {exc.message}", err=True)
        raise typer.Exit(2) from None
    except StartupError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None


async def _worker(settings: Settings) -> None:
    from execd.runtime import Runtime

    runtime = Runtime(settings)
    try:
        await runtime.start(workers=1, bootstrap=False)
    except BaseException:
        await runtime.stop()
        raise
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, runtime.workers[0].stop)
    typer.echo(f"worker {runtime.workers[0].config.name} running (id {runtime.workers[0].id})")
    _warn(runtime, api=False)
    sys.stdout.flush()
    try:
        await runtime.run_until_workers_stop()
    finally:
        await runtime.stop()
