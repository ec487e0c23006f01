"""A control group per run, where the machine lets the worker make them.

rlimits count per process and miss memory that is not a process's own: a tmpfs file,
a memfd, shared memory. A cgroup counts everything a run's processes charge to the
kernel, all processes of the run together, and says afterwards whether a limit was
hit. Two layouts are understood:

* cgroup v1 (separate `memory` and `pids` hierarchies): a group of the run's is made
  under the worker's own in each.
* cgroup v2 (one hierarchy): under a parent whose `cgroup.subtree_control` enables
  `memory` and `pids` and that holds no process itself: EXECD_SANDBOX_CGROUP names it
  (a systemd unit with `Delegate=yes` provides one), or, when the worker runs in the
  root of the hierarchy (a container), `execd-runs` is made there.

Where neither works the runs go without, and the limits are the rlimits' and the
watcher's (docs/security.md says what that leaves out).
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from execd.domain.sandbox import Limits, describe_size

ROOT = Path("/sys/fs/cgroup")
RUN_PREFIX = "execd-run-"
STALE_SECONDS = 300.0  # a group made this long ago and still empty has lost its run


@dataclass(frozen=True)
class RunGroup:
    """The cgroup(s) of one run: a directory per hierarchy."""

    memory: Path
    pids: Path

    @property
    def procs_files(self) -> list[str]:
        """Where a process writes its pid to join (one file in v2, two in v1)."""
        return sorted({str(self.memory / "cgroup.procs"), str(self.pids / "cgroup.procs")})

    def limit_hit(self, limits: Limits) -> str | None:
        """Which limit the kernel enforced during the run, if one."""
        if limits.memory_bytes and (
            _counter(self.memory / "memory.events", "oom_kill")
            or _counter(self.memory / "memory.oom_control", "oom_kill")
        ):
            return (
                f"memory limit reached: more than {describe_size(limits.memory_bytes)} in use "
                "(the kernel stopped a process)"
            )
        if limits.processes and _counter(self.pids / "pids.events", "max"):
            return f"process limit reached: {limits.processes} processes and threads"
        return None

    def remove(self) -> None:
        """Kill whatever is left in the group, then delete it (blocking, up to a few
        seconds while killed processes finish dying: run it in a thread)."""
        for directory in {self.memory, self.pids}:
            for _ in range(250):
                pids = _pids(directory)
                if not pids:
                    break
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError, PermissionError):
                        os.kill(pid, signal.SIGKILL)
                time.sleep(0.02)
            for _ in range(50):
                try:
                    directory.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:  # busy a moment longer: the last exits are being reaped
                    time.sleep(0.02)


@dataclass(frozen=True)
class Cgroups:
    """Where run groups are made."""

    memory_parent: Path
    pids_parent: Path
    v2: bool

    def make(self, name: str, limits: Limits) -> RunGroup:
        name = RUN_PREFIX + name
        group = RunGroup(self.memory_parent / name, self.pids_parent / name)
        for directory in {group.memory, group.pids}:
            directory.mkdir(exist_ok=True)
        if limits.memory_bytes:
            if self.v2:
                _write(group.memory / "memory.max", limits.memory_bytes)
                with contextlib.suppress(OSError):  # no swap at all: the limit is the limit
                    _write(group.memory / "memory.swap.max", 0)
            else:
                _write(group.memory / "memory.limit_in_bytes", limits.memory_bytes)
                with contextlib.suppress(OSError):
                    _write(group.memory / "memory.memsw.limit_in_bytes", limits.memory_bytes)
        if limits.processes:
            _write(group.pids / "pids.max", limits.processes)
        return group

    def sweep(self, older_than: float = STALE_SECONDS) -> list[str]:
        """Remove the empty run groups made more than `older_than` seconds ago: those
        of runs whose worker died before removing them (a kill -9, a lost machine's
        container). A group still in use holds a process and cannot be removed; one
        just made is young. Returns the names removed."""
        removed = []
        now = time.time()
        for parent in {self.memory_parent, self.pids_parent}:
            with contextlib.suppress(OSError):
                for entry in os.scandir(parent):
                    if not entry.name.startswith(RUN_PREFIX) or not entry.is_dir():
                        continue
                    with contextlib.suppress(OSError):  # busy, or another worker's sweep
                        if now - entry.stat().st_mtime > older_than:
                            os.rmdir(entry.path)
                            removed.append(entry.name)
        return sorted(set(removed))


def detect(configured: str | None) -> Cgroups | None:
    """The cgroups this process can make run groups in, or None."""
    if configured == "none":
        return None
    own = _own_paths()
    if (ROOT / "cgroup.controllers").exists():  # v2
        parent = Path(configured) if configured else None
        if parent is None and own.get("") == "/":
            parent = ROOT / "execd-runs"
            with contextlib.suppress(OSError):
                parent.mkdir(exist_ok=True)
                _enable(ROOT)
                _enable(parent)
        if parent is None or not _usable(parent, {"memory.max", "pids.max"}):
            return None
        return Cgroups(parent, parent, v2=True)
    memory = ROOT / "memory" / own.get("memory", "/").lstrip("/")
    pids = ROOT / "pids" / own.get("pids", "/").lstrip("/")
    if configured:
        memory, pids = ROOT / "memory" / configured, ROOT / "pids" / configured
    if not (_usable(memory, {"memory.limit_in_bytes"}) and _usable(pids, {"pids.max"})):
        return None
    return Cgroups(memory, pids, v2=False)


def _usable(parent: Path, needs: set[str]) -> bool:
    """Whether run groups with the control files `needs` can be made (and removed)
    under `parent`."""
    probe = parent / f"execd-probe-{os.getpid()}"
    try:
        probe.mkdir(exist_ok=True)
        try:
            return needs <= set(os.listdir(probe))
        finally:
            probe.rmdir()
    except OSError:
        return False


def _enable(directory: Path) -> None:
    _write(directory / "cgroup.subtree_control", "+memory +pids")


def _own_paths() -> dict[str, str]:
    """This process's cgroup per controller ("" for v2's single hierarchy)."""
    found: dict[str, str] = {}
    with contextlib.suppress(OSError), open("/proc/self/cgroup") as handle:
        for line in handle:
            _, controllers, path = line.rstrip("\n").split(":", 2)
            for controller in controllers.split(",") if controllers else [""]:
                found[controller] = path
    return found


def _pids(directory: Path) -> list[int]:
    try:
        return [int(p) for p in (directory / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _counter(path: Path, name: str) -> int:
    with contextlib.suppress(OSError, ValueError):
        for line in path.read_text().splitlines():
            key, _, value = line.partition(" ")
            if key == name:
                return int(value)
    return 0


def _write(path: Path, value: object) -> None:
    with open(path, "w") as handle:
        handle.write(str(value))
