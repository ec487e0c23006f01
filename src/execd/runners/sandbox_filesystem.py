"""What an action sees of the machine's files inside the bubblewrap sandbox: the system
read-only (/usr, the top-level system directories, the few files of /etc a program
needs), an /etc/passwd and /etc/group of its own, a private /proc, /dev and /tmp, the
host paths it may read, and its run directory and artifacts under /execd. Nothing else
of the machine is mounted.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from execd.runners.paths import ExecutionPaths

# The run's directories as the action sees them inside the sandbox.
INSIDE = PurePosixPath("/execd")
INSIDE_RUN = INSIDE / "run"
INSIDE_ARTIFACTS = INSIDE / "artifacts"
INSIDE_HOME = "/tmp"
INSIDE_NAME = "sandbox"

# What of /etc a program needs (name resolution, certificates, the dynamic linker,
# time zones, alternatives); the rest of /etc is not mounted.
ETC = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "gai.conf",
    "gitconfig",
    "host.conf",
    "hosts",
    "inputrc",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "locale.alias",
    "localtime",
    "mime.types",
    "nsswitch.conf",
    "os-release",
    "debian_version",
    "profile",
    "protocols",
    "resolv.conf",
    "services",
    "ssl",
    "timezone",
)
# Top-level names that are links into /usr on merged-/usr systems, or directories.
SYSTEM_DIRS = ("bin", "sbin", "lib", "lib32", "lib64", "libx32")


@dataclass(frozen=True)
class View:
    """The run's paths as the action's process sees them."""

    work_dir: str
    control_file: str
    result_file: str
    artifacts_dir: str


def host_view(paths: ExecutionPaths) -> View:
    return View(
        work_dir=str(paths.work_dir),
        control_file=str(paths.control_file),
        result_file=str(paths.result_file),
        artifacts_dir=str(paths.artifacts_dir),
    )


def inside_view(paths: ExecutionPaths) -> View:
    return View(
        work_dir=str(INSIDE_RUN / "work"),
        control_file=str(INSIDE_RUN / paths.control_file.name),
        result_file=str(INSIDE_RUN / paths.result_file.name),
        artifacts_dir=str(INSIDE_ARTIFACTS),
    )


def filesystem_options(
    read_only: list[Path], paths: ExecutionPaths | None, uid: int, tmp_bytes: int
) -> tuple[list[str], list[int]]:
    """bubblewrap's options that build the action's filesystem, as the user `uid` sees
    it, and the descriptors they name (its /etc/passwd and /etc/group)."""
    fds: list[int] = []
    args = ["--ro-bind", "/usr", "/usr"]
    for name in SYSTEM_DIRS:
        top = Path("/") / name
        if top.is_symlink():
            args += ["--symlink", os.readlink(top), str(top)]
        elif top.is_dir():
            args += ["--ro-bind", str(top), str(top)]
    args += ["--perms", "0755", "--dir", "/etc"]
    for name in ETC:
        args += ["--ro-bind-try", f"/etc/{name}", f"/etc/{name}"]
    passwd = (
        f"root:x:0:0::/:/usr/sbin/nologin\n"
        f"{INSIDE_NAME}:x:{uid}:{uid}::{INSIDE_HOME}:/bin/sh\n"
        "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin\n"
    )
    group = f"root:x:0:\n{INSIDE_NAME}:x:{uid}:\nnogroup:x:65534:\n"
    for text, target in ((passwd, "/etc/passwd"), (group, "/etc/group")):
        fd = memory_file(text.encode())
        fds.append(fd)
        args += ["--perms", "0644", "--ro-bind-data", str(fd), target]
    args += ["--proc", "/proc", "--dev", "/dev"]
    args += ["--perms", "1777", "--size", str(tmp_bytes), "--tmpfs", "/tmp"]
    tree = _Tree()
    for path in read_only:
        args += tree.mount(PurePosixPath(path))
        args += ["--ro-bind", str(path), str(path)]
    if paths is not None:
        args += tree.mount(INSIDE_RUN) + tree.mount(INSIDE_ARTIFACTS)
        args += ["--bind", str(paths.run_dir), str(INSIDE_RUN)]
        args += ["--bind", str(paths.artifacts_dir), str(INSIDE_ARTIFACTS)]
        args += ["--chdir", str(INSIDE_RUN / "work")]
    args += ["--remount-ro", "/"]  # the sandbox's own root: nothing to write there
    return args, fds


class _Tree:
    """The directories the sandbox's root needs so that each mount point can be reached
    by the action (bubblewrap would make them 0700 otherwise)."""

    def __init__(self) -> None:
        self.mounted = {PurePosixPath("/usr")}
        self.created = {PurePosixPath("/"), PurePosixPath("/etc")}

    def mount(self, path: PurePosixPath) -> list[str]:
        args: list[str] = []
        for parent in reversed(path.parents):
            inside_a_mount = parent in self.mounted or any(
                p in self.mounted for p in parent.parents
            )
            if parent not in self.created and not inside_a_mount:
                self.created.add(parent)
                args += ["--perms", "0755", "--dir", str(parent)]
        self.mounted.add(path)
        return args


def memory_file(data: bytes) -> int:
    # Close-on-exec: only the run it is passed to (pass_fds) inherits it.
    fd = os.memfd_create("execd-sandbox", os.MFD_CLOEXEC)
    os.write(fd, data)
    os.lseek(fd, 0, os.SEEK_SET)
    return fd
