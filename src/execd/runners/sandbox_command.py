"""The command lines that start an action's process: bubblewrap's (the namespaces, the
user the action runs as, its filesystem from `runners/sandbox_filesystem.py`, and the
rlimits of its processes), and the prlimit command an unsandboxed action runs behind.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from execd.domain.sandbox import Limits
from execd.runners.paths import ExecutionPaths
from execd.runners.sandbox_filesystem import INSIDE_NAME, filesystem_options, memory_file

INSIDE_UID = 1000  # the uid inside the user namespace when the worker is not root


def bubblewrap_command(
    bwrap: str,
    setpriv: str | None,
    argv: list[str],
    *,
    limits: Limits,
    network: bool,
    uid: int | None,
    read_only: list[Path],
    paths: ExecutionPaths | None,
    tmp_bytes: int,
) -> tuple[list[str], tuple[int, ...]]:
    """bubblewrap's command line for one run, and the descriptors it must inherit.
    `uid`: the run's own uid, switched to inside (a root worker), or None for a user
    namespace."""
    shown_uid = uid if uid is not None else INSIDE_UID
    args = [
        "--die-with-parent",
        "--unshare-pid",
        "--unshare-ipc",
        "--unshare-uts",
        "--unshare-cgroup-try",
        "--hostname",
        INSIDE_NAME,
    ]
    if not network:
        args.append("--unshare-net")
    if uid is None:
        args += ["--unshare-user", "--disable-userns", "--uid", str(INSIDE_UID)]
        args += ["--gid", str(INSIDE_UID)]
    else:
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    mounts, fds = filesystem_options(read_only, paths, shown_uid, tmp_bytes)
    args += mounts
    command = list(argv)
    rlimits = prlimit_prefix(limits, processes=True)
    if uid is not None:
        assert setpriv is not None
        drop = [setpriv, f"--reuid={uid}", f"--regid={uid}", "--clear-groups"]
        drop += ["--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--"]
        command = [*drop, *rlimits, *command]
    else:
        command = [*rlimits, *command]
    # The options go through a file descriptor: the host's process list shows
    # `bwrap --args N -- command`, not the service's paths.
    arguments = memory_file(b"".join(a.encode() + b"\0" for a in args))
    fds.append(arguments)
    return [bwrap, "--args", str(arguments), "--", *command], tuple(fds)


def prlimit_prefix(limits: Limits, *, processes: bool) -> list[str]:
    """rlimits for the action's process (inherited by its children). Memory is the data
    segment, not the address space: runtimes that reserve large address ranges up
    front (Go, the JVM, V8) still start."""
    prlimit = shutil.which("prlimit")
    if prlimit is None:
        return []
    options = []
    if processes and limits.processes:
        options.append(f"--nproc={limits.processes}")
    if limits.memory_bytes:
        options.append(f"--data={limits.memory_bytes}")
    if limits.cpu_seconds:
        soft = max(1, int(limits.cpu_seconds + 0.999))
        options.append(f"--cpu={soft}:{soft + 5}")
    return [prlimit, *options, "--"] if options else []
