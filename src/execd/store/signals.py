"""Wake-ups: a committed submission wakes idle workers; a cancel request wakes the
worker running the execution; events written to the log wake live streams (this
process's, and on SQLite the other processes' too; on PostgreSQL those poll).

Within a process, waiters are woken directly after the commit. Across processes,
PostgreSQL LISTEN/NOTIFY carries the same signals (NOTIFY inside the transaction is
delivered on commit). Processes sharing a SQLite file are on one machine: each binds a
unix datagram socket in a directory beside the file (`<file>-signals/`, the service's
own, mode 0700), and a commit sends its signals to every other socket there, the
event log's included, so workers and live streams in other processes wake at once.
Many signals while a waiter is busy collapse into one wake-up; a lost datagram (a
full receive buffer) only delays a waiter until its next poll.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
import uuid
from pathlib import Path

import psycopg
import structlog

JOBS = "execd_jobs"
CANCEL = "execd_cancel"
CHANNELS = (JOBS, CANCEL)  # also sent between processes (PostgreSQL NOTIFY)
EVENTS = "execd_events"  # not sent by NOTIFY (PostgreSQL's other processes poll)

log = structlog.get_logger(__name__)


class Signals:
    def __init__(self) -> None:
        self._waiters: dict[str, list[asyncio.Event]] = {c: [] for c in (*CHANNELS, EVENTS)}

    def subscribe(self, channel: str) -> asyncio.Event:
        event = asyncio.Event()
        self._waiters[channel].append(event)
        return event

    def unsubscribe(self, channel: str, event: asyncio.Event) -> None:
        with contextlib.suppress(ValueError):
            self._waiters[channel].remove(event)

    def fire(self, channel: str) -> None:
        for event in self._waiters.get(channel, ()):
            event.set()

    def fire_all(self) -> None:
        for channel in CHANNELS:
            self.fire(channel)


async def listen_postgres(conninfo: str, signals: Signals, *, retry_seconds: float = 1.0) -> None:
    """Relay NOTIFYs to local waiters until cancelled; reconnects after errors."""
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                for channel in CHANNELS:
                    await conn.execute(f"LISTEN {channel}")
                # Anything sent while we were not listening would be lost: look once.
                signals.fire_all()
                async for notify in conn.notifies():
                    signals.fire(notify.channel)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("notify_listener_error", error=str(exc))
            await asyncio.sleep(retry_seconds)


class SocketRelay:
    """Signals between the processes that share one SQLite file (see the module's
    docstring). Sending needs no socket of one's own; `listen` binds one."""

    def __init__(self, directory: Path, signals: Signals) -> None:
        self.directory = directory
        self.signals = signals
        self._sender = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sender.setblocking(False)
        self._dir_fd: int | None = None
        self._own: str | None = None
        self._peers: list[str] = []
        self._listed: int | None = None  # the directory's mtime when last listed

    def _open(self) -> int:
        if self._dir_fd is None:
            self.directory.mkdir(mode=0o700, exist_ok=True)
            # Through the descriptor, a socket's path stays short however deep the
            # directory is (a unix socket's path has at most 107 bytes).
            self._dir_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        return self._dir_fd

    def _path(self, name: str) -> str:
        return f"/proc/self/fd/{self._open()}/{name}"

    def send(self, channels: set[str]) -> None:
        """Tell every other process; never blocks, never raises."""
        wanted = [c for c in channels if c in (*CHANNELS, EVENTS)]
        if not wanted:
            return
        try:
            fd = self._open()
            changed = os.stat(fd).st_mtime_ns
            if changed != self._listed:
                self._peers = [n for n in os.listdir(fd) if n.endswith(".sock") and n != self._own]
                self._listed = changed
        except OSError as exc:
            log.warning("signal_relay_unavailable", error=str(exc))
            return
        message = ",".join(sorted(wanted)).encode()
        for name in list(self._peers):
            try:
                self._sender.sendto(message, self._path(name))
            except BlockingIOError:
                pass  # its buffer is full of wake-ups already
            except OSError as exc:
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):  # its process is gone
                    with contextlib.suppress(OSError):
                        os.unlink(name, dir_fd=self._open())
                    self._peers.remove(name)

    async def listen(self) -> None:
        """Fire what other processes send until cancelled."""
        receiver = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        receiver.setblocking(False)
        name = f"{os.getpid()}-{uuid.uuid4().hex[:8]}.sock"
        loop = asyncio.get_running_loop()
        try:
            receiver.bind(self._path(name))
            self._own = name

            def readable() -> None:
                fired: set[str] = set()
                with contextlib.suppress(BlockingIOError):
                    while True:
                        fired.update(receiver.recv(256).decode(errors="replace").split(","))
                for channel in fired:
                    self.signals.fire(channel)

            loop.add_reader(receiver.fileno(), readable)
            # Anything sent before we were listening would be lost: look once.
            self.signals.fire_all()
            await asyncio.Event().wait()
        finally:
            with contextlib.suppress(Exception):
                loop.remove_reader(receiver.fileno())
            receiver.close()
            if self._own is not None:
                with contextlib.suppress(OSError):
                    os.unlink(self._own, dir_fd=self._open())
                self._own = None

    def close(self) -> None:
        self._sender.close()
        if self._dir_fd is not None:
            os.close(self._dir_fd)
            self._dir_fd = None
