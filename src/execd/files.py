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
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

# O_NONBLOCK everywhere: opening a FIFO the action planted must not wait for a writer.
_DIR = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
# How deep and how wide a walk of an action's tree goes: a tree beyond is not followed
# further (a walk is bounded work, and holds one descriptor per level).
MAX_DEPTH = 64
MAX_ENTRIES = 100_000


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
    """A write descriptor of the regular file `relative` below `root` (made, or emptied),
    making the directories on the way."""
    parts = parts_of(relative)
    with _walk_to(root, parts, create=True) as parent:
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
        fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise Unsafe(f"not a regular file: {relative!r}")
    os.ftruncate(fd, 0)
    return fd


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
    """(relative path, size) of the regular files below `root`, in path order. Walked
    depth first without recursion, by descriptor (one open per level), never through a
    link (a directory swapped for one midway is not entered), at most MAX_DEPTH levels
    deep and MAX_ENTRIES entries in all."""
    found: list[tuple[str, int]] = []
    try:
        top = os.open(root, _DIR)
    except OSError:
        return found
    levels = [(top, os.scandir(top), "")]
    seen = 0
    try:
        while levels and seen < MAX_ENTRIES:
            fd, entries, prefix = levels[-1]
            entry = next(entries, None)
            if entry is None:
                levels.pop()
                entries.close()
                os.close(fd)
                continue
            seen += 1
            with contextlib.suppress(OSError):
                info = entry.stat(follow_symlinks=False)
                if stat.S_ISREG(info.st_mode):
                    found.append((prefix + entry.name, info.st_size))
                elif stat.S_ISDIR(info.st_mode) and len(levels) < MAX_DEPTH:
                    child = os.open(entry.name, _DIR, dir_fd=fd)
                    levels.append((child, os.scandir(child), prefix + entry.name + "/"))
    finally:
        for fd, entries, _ in levels:
            entries.close()
            os.close(fd)
    return sorted(found)


def remove_tree(path: Path) -> None:
    """Delete `path` and everything below it, however deep (an action may have made a
    tree deeper than Python's recursion allows) and without following links."""
    rm = shutil.which("rm")
    if rm is None:
        shutil.rmtree(path, ignore_errors=True)
        return
    subprocess.run(
        [rm, "-rf", "--one-file-system", "--", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=False,
    )
