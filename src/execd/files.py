"""Opening files inside a directory tree that an action may still be changing.

An action's work and artifact directories are writable by the action, which can swap
any file or directory for a symlink at any moment, including between a check of a path
and its use. So a path below such a root is walked one component at a time from an
open directory descriptor, each component opened with O_NOFOLLOW: no symlink is ever
followed, whatever happens in between, and nothing outside the root can be reached.
"""

from __future__ import annotations

import contextlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path

_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


class Unsafe(OSError):
    """The path leaves its root, goes through a symlink, or names no regular file."""


def parts_of(relative: str) -> list[str]:
    parts = [p for p in relative.split("/") if p not in ("", ".")]
    if not parts or ".." in parts or any("\0" in p for p in parts):
        raise Unsafe(f"not a path inside its directory: {relative!r}")
    return parts


@contextlib.contextmanager
def _walk_to(root: Path, parts: list[str], *, create: bool) -> Iterator[int]:
    """A descriptor of the directory that holds the last part."""
    fd = os.open(root, _DIR)
    try:
        for part in parts[:-1]:
            if create:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(part, 0o700, dir_fd=fd)
            following = os.open(part, _DIR, dir_fd=fd)
            os.close(fd)
            fd = following
        yield fd
    finally:
        os.close(fd)


def open_below(root: Path, relative: str) -> int:
    """A read descriptor of the regular file `relative` below `root`."""
    parts = parts_of(relative)
    with _walk_to(root, parts, create=False) as parent:
        flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, dir_fd=parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unsafe(f"not a regular file: {relative!r}")
    return fd


def create_below(root: Path, relative: str) -> int:
    """A write descriptor of a new (or truncated) file `relative` below `root`, making
    the directories on the way."""
    parts = parts_of(relative)
    with _walk_to(root, parts, create=True) as parent:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC
        return os.open(parts[-1], flags, 0o600, dir_fd=parent)


def open_file_no_follow(path: Path) -> int | None:
    """A read descriptor of `path` if it is a regular file reached without following a
    symlink at its last component (its directory must be trusted), else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        return None
    return fd


def regular_files(root: Path) -> list[tuple[str, int]]:
    """(relative path, size) of every regular file below `root`, in path order, walked
    by descriptor: a directory swapped for a symlink is not followed."""
    found: list[tuple[str, int]] = []
    with contextlib.suppress(OSError):
        for directory, _, names, dir_fd in os.fwalk(root, follow_symlinks=False):
            for name in names:
                with contextlib.suppress(OSError):
                    info = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
                    if stat.S_ISREG(info.st_mode):
                        relative = os.path.relpath(os.path.join(directory, name), root)
                        found.append((relative, info.st_size))
    return sorted(found)
