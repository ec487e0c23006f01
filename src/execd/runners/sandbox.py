"""Where an action's processes run: inside a bubblewrap sandbox, or (when an operator
says so with EXECD_SANDBOX=none) as plain child processes of the worker.

Inside the sandbox a process has its own PID, IPC, UTS and mount namespaces (and its
own network namespace when its action says `network: false`), a private /proc and
/tmp, the system read-only, and write access to two directories only: its run
directory (work dir, control and result files) and its artifacts. Nothing else of the
machine is mounted: not the data directory, the database, the keys, other executions'
files, nor the service's environment.

When the worker runs as root, each execution also runs as an unprivileged uid of its
own (EXECD_SANDBOX_UID_BASE + execution id modulo 65536), switched to by `setpriv`
after bubblewrap has built the mounts, with no capabilities and no_new_privs. Otherwise
bubblewrap makes a user namespace and the process runs as the worker's user mapped to
an unprivileged uid inside it.

Limits: `prlimit` sets per-process rlimits inside the sandbox (processes, data memory,
CPU time); the run's watcher (runners/process.py) enforces the same limits on the
whole process tree and says which one was hit.

What the action sees of the machine's files is in `runners/sandbox_filesystem.py`, the
command lines that start it in `runners/sandbox_command.py`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shutil
import site
import stat
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Protocol

import execd
from execd.domain.errors import StartupError
from execd.domain.sandbox import Limits, SandboxOptions
from execd.runners import cgroups
from execd.runners.cgroups import Cgroups
from execd.runners.paths import ExecutionPaths
from execd.runners.sandbox_command import bubblewrap_command, prlimit_prefix
from execd.runners.sandbox_filesystem import (
    INSIDE_HOME,
    INSIDE_NAME,
    View,
    host_view,
    inside_view,
)

BUBBLEWRAP = "bubblewrap"
NONE = "none"
MODES = (BUBBLEWRAP, NONE)

UID_SLOTS = 65536

UNSANDBOXED_WARNING = (
    "EXECD_SANDBOX=none: actions run unsandboxed, as the service's own user. They can "
    "read the service's environment (the admin token, the database URL), the database, "
    "the keys and every tenant's files, and signal other executions. Never run "
    "untrusted tenants like this."
)


RLIMITS_WARNING = (
    "no cgroup can be made for runs here: memory limits count what processes allocate, "
    "not shared memory or files in /tmp, and processes are limited per uid. Give the "
    "worker a delegated cgroup (EXECD_SANDBOX_CGROUP) for exact limits."
)


class SandboxUnavailable(StartupError):
    """The configured sandbox cannot run actions on this machine."""


@dataclass(frozen=True)
class Launch:
    """How to start one action's process."""

    argv: list[str]
    env: dict[str, str]
    cwd: Path
    pass_fds: tuple[int, ...] = ()
    # Processes of the sandbox itself above the action's (not counted against limits).
    overhead: int = 0
    # Whether a process killed by signal N inside comes back as exit code 128 + N (the
    # sandbox's init passes the action's end on as an exit code).
    signals_as_codes: bool = False
    # Called once the run is over: frees what the run held (its cgroup, its uid) and
    # says which limit the kernel enforced, if one.
    finish: Callable[[], str | None] = field(default=lambda: None)

    def close(self) -> None:
        """The descriptors are the child's now: the parent's copies go."""
        for fd in self.pass_fds:
            with contextlib.suppress(OSError):
                os.close(fd)


class UidLease:
    def __init__(self, uid: int, fd: int) -> None:
        self.uid = uid
        self._fd = fd

    def release(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self._fd)


class UidLeases:
    """Each run of a root worker gets a uid that no other run on this machine holds at
    the same time, whichever worker process runs it: a lock file per uid, locked for
    the run (the lock goes with the process that held it), in a directory of root's."""

    def __init__(self, base: int, directory: Path) -> None:
        self.base = base
        self.directory = directory

    @classmethod
    def on_this_machine(cls, base: int) -> UidLeases:
        run = Path("/run")
        parent = run if os.access(run, os.W_OK) else Path(tempfile.gettempdir())
        directory = parent / f"execd-sandbox-uids-{base}"
        directory.mkdir(mode=0o700, exist_ok=True)
        info = directory.lstat()
        if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.geteuid() or info.st_mode & 0o077:
            raise SandboxUnavailable(
                f"{directory} must be a directory of this user's, mode 0700: remove it"
            )
        return cls(base, directory)

    def lease(self, start: int) -> UidLease:
        for step in range(UID_SLOTS):
            slot = (start + step) % UID_SLOTS
            fd = os.open(self.directory / str(slot), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                continue
            return UidLease(self.base + slot, fd)
        raise RuntimeError(f"all {UID_SLOTS} sandbox uids are in use on this machine")


class Sandbox(Protocol):
    name: str
    ceiling: Limits
    # False: no action of this worker has a network (EXECD_SANDBOX_NETWORK=none).
    network: bool

    @property
    def counts_all_memory(self) -> bool:
        """Whether a run's memory limit covers all of it (a cgroup), not only what its
        processes allocate (rlimits and the watcher)."""
        ...

    def view(self, paths: ExecutionPaths) -> View: ...

    def launch(
        self,
        argv: list[str],
        env: dict[str, str],
        paths: ExecutionPaths,
        options: SandboxOptions,
        execution_id: int,
    ) -> Launch: ...


@dataclass
class Unsandboxed:
    """EXECD_SANDBOX=none: the action runs as the worker's user, sees what it sees."""

    ceiling: Limits = field(default_factory=Limits)
    name: str = NONE
    # Kept for the http runner only: an unsandboxed process has the machine's network.
    network: bool = True
    counts_all_memory = False

    def view(self, paths: ExecutionPaths) -> View:
        return host_view(paths)

    def launch(
        self,
        argv: list[str],
        env: dict[str, str],
        paths: ExecutionPaths,
        options: SandboxOptions,
        execution_id: int,
    ) -> Launch:
        # The process count of RLIMIT_NPROC is the whole user's here, not the run's:
        # only the watcher limits processes.
        limits = options.limits.within(self.ceiling)
        return Launch([*prlimit_prefix(limits, processes=False), *argv], env, paths.work_dir)


@dataclass
class Bubblewrap:
    ceiling: Limits = field(default_factory=Limits)
    uid_base: int = 3_000_000
    tmp_bytes: int = 512 * 1024 * 1024
    # Host paths the action may read (the service's Python, the actions path, extras).
    read_only: list[Path] = field(default_factory=list)
    # Switch to an unprivileged uid of the run's own (needs root); otherwise a user
    # namespace maps the worker's user to an unprivileged uid inside.
    as_root: bool = field(default_factory=lambda: os.geteuid() == 0)
    # A cgroup per run where the machine allows (runners/cgroups.py).
    cgroups: Cgroups | None = None
    # False: no action gets a network, whatever it asks (EXECD_SANDBOX_NETWORK=none).
    network: bool = True
    name: str = BUBBLEWRAP

    def __post_init__(self) -> None:
        self.bwrap = shutil.which("bwrap")
        self.setpriv = shutil.which("setpriv")
        self.uids = UidLeases.on_this_machine(self.uid_base) if self.as_root else None

    @property
    def counts_all_memory(self) -> bool:
        return self.cgroups is not None

    def view(self, paths: ExecutionPaths) -> View:
        return inside_view(paths)

    def check(self) -> None:
        """Run one sandboxed `true`: the only way to know namespaces work here."""
        if self.bwrap is None:
            raise SandboxUnavailable(
                "bubblewrap (bwrap) is not installed: install it (Debian/Ubuntu: "
                "apt-get install bubblewrap), or set EXECD_SANDBOX=none to run actions "
                "unsandboxed (never with tenants you do not trust)"
            )
        if self.as_root and self.setpriv is None:
            raise SandboxUnavailable("setpriv (util-linux) is needed to run actions as root")
        probe = Path("/")
        launch = self._build(["true"], {"PATH": "/usr/bin:/bin"}, None, probe, SandboxOptions())
        try:
            done = subprocess.run(
                launch.argv,
                env=launch.env,
                pass_fds=launch.pass_fds,
                capture_output=True,
                timeout=30,
                check=False,
            )
        finally:
            launch.close()
        if done.returncode != 0:
            reason = done.stderr.decode(errors="replace").strip().splitlines()
            raise SandboxUnavailable(
                "the action sandbox (bubblewrap) does not work here: "
                + (reason[-1] if reason else f"exit code {done.returncode}")
                + ". Allow unprivileged user namespaces, or set EXECD_SANDBOX=none to run "
                "actions unsandboxed (never with tenants you do not trust)"
            )

    def launch(
        self,
        argv: list[str],
        env: dict[str, str],
        paths: ExecutionPaths,
        options: SandboxOptions,
        execution_id: int,
    ) -> Launch:
        limits = options.limits.within(self.ceiling)
        lease = self.uids.lease(execution_id % UID_SLOTS) if self.uids else None
        group = None
        try:
            if lease is not None:
                # Only the run's own directories become the run's uid's.
                for directory in (paths.run_dir, paths.work_dir, paths.artifacts_dir):
                    os.chown(directory, lease.uid, lease.uid)
            if self.cgroups is not None:
                # The sandbox's own two processes are in the group too.
                counted = replace(limits, processes=limits.processes and limits.processes + 2)
                group = self.cgroups.make(paths.run_dir.name, counted)
        except BaseException:
            if lease is not None:
                lease.release()
            raise
        inside_env = {
            **env,
            "HOME": INSIDE_HOME,
            "TMPDIR": "/tmp",
            "USER": INSIDE_NAME,
            "LOGNAME": INSIDE_NAME,
        }
        uid = lease.uid if lease is not None else None
        launch = self._build(argv, inside_env, paths, paths.work_dir, options, uid)
        if group is not None:
            # A shell joins the group, then becomes bubblewrap: everything the run
            # starts is in the group from its first instruction.
            files = group.procs_files
            join = 'echo $$ > "$1" && echo $$ > "$2" && shift 2 && exec "$@"'
            launch = replace(
                launch,
                argv=["/bin/sh", "-c", join, "execd-join", files[0], files[-1], *launch.argv],
            )

        def finish() -> str | None:
            hit = group.limit_hit(limits) if group is not None else None
            if group is not None:
                group.remove()
            if lease is not None:
                lease.release()
            return hit

        return replace(launch, finish=finish)

    def _build(
        self,
        argv: list[str],
        env: dict[str, str],
        paths: ExecutionPaths | None,
        cwd: Path,
        options: SandboxOptions,
        uid: int | None = None,
    ) -> Launch:
        assert self.bwrap is not None
        command, fds = bubblewrap_command(
            self.bwrap,
            self.setpriv,
            argv,
            limits=options.limits.within(self.ceiling),
            network=options.network and self.network,
            uid=uid,
            read_only=self.read_only,
            paths=paths,
            tmp_bytes=self.tmp_bytes,
        )
        return Launch(
            argv=command,
            env=env,
            cwd=cwd,
            pass_fds=fds,
            overhead=2,  # bwrap outside, and its init inside the PID namespace
            signals_as_codes=True,
        )


def python_paths(actions_path: Iterable[str]) -> list[Path]:
    """What the python runner needs to read: the interpreter, the environment execd is
    installed in, execd itself, and the actions path."""
    found = [Path(sys.base_prefix), Path(sys.prefix), Path(execd.__file__).resolve().parents[1]]
    # Packages installed outside the environment (pip --user, a distribution's path).
    found += [Path(p) for p in [*site.getsitepackages(), site.getusersitepackages()]]
    found += [Path(p) for p in actions_path]
    return [p for p in found if p.exists()]


def build(
    mode: str,
    ceiling: Limits,
    *,
    read_only: list[Path],
    forbidden: list[Path],
    uid_base: int,
    tmp_bytes: int,
    network: bool = True,
    cgroup: str | None = "none",
) -> Sandbox:
    """The sandbox a worker runs its actions in. `forbidden`: paths no mount may
    expose (the data, work and artifact directories, the database)."""
    if mode == NONE:
        return Unsandboxed(ceiling, network=network)
    visible: list[Path] = []
    # Shortest first: a path inside one already mounted needs no mount of its own.
    for path in sorted(read_only, key=lambda p: len(Path(os.path.realpath(p)).parts)):
        real = Path(os.path.realpath(path))
        mounted = [Path("/usr"), *visible]
        if not real.exists() or any(m == real or m in real.parents for m in mounted):
            continue
        for secret in forbidden:
            hidden = Path(os.path.realpath(secret))
            if hidden == real or real in hidden.parents or hidden in real.parents:
                raise SandboxUnavailable(
                    f"{path} cannot be mounted in the action sandbox: it holds or is inside "
                    f"{secret}, which actions must not see. Move it, or the data directory"
                )
        visible.append(real)
    sandbox = Bubblewrap(
        ceiling,
        uid_base=uid_base,
        tmp_bytes=tmp_bytes,
        read_only=visible,
        cgroups=cgroups.detect(cgroup),
        network=network,
    )
    sandbox.check()
    return sandbox
