"""Opening files inside a directory tree that an action may still be changing.

An action's work and artifact directories are writable by the action, which can swap
any file or directory for a symlink at any moment, including between a check of a path
and its use. So a path below such a root is walked one component at a time from an
open directory descriptor, each component opened with O_NOFOLLOW: no symlink is ever
followed, whatever happens in between, and nothing outside the root can be reached.

A hard link is a second name for a file that may live anywhere on the same file system
(one the action could see, or that was linked in from outside): a file read or served
from such a tree must have a single link, and a file written there is made anew, never
opened through a name the action planted.
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
    """The path leaves its root, goes through a symlink, or names no regular file of
    its own (one with other hard links)."""


def _own_regular(fd: int, relative: str) -> int:
    """`fd` if it is a regular file with no other hard link; else it is closed, refused."""
    info = os.fstat(fd)
    if stat.S_ISREG(info.st_mode) and info.st_nlink == 1:
        return fd
    os.close(fd)
    if stat.S_ISREG(info.st_mode):
        raise Unsafe(f"a file with other hard links: {relative!r}")
    raise Unsafe(f"not a regular file: {relative!r}")


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
    return _own_regular(fd, relative)


def create_below(root: Path, relative: str) -> int:
    """A write descriptor of a new, empty regular file `relative` below `root`, making
    the directories on the way. A file of that name is replaced, not written through: it
    may be a hard link to a file elsewhere. If something takes the name again between
    the two steps, the file is refused."""
    parts = parts_of(relative)
    with _walk_to(root, parts, create=True) as parent:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(parts[-1], dir_fd=parent)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        try:
            fd = os.open(parts[-1], flags, 0o600, dir_fd=parent)
        except FileExistsError:
            raise Unsafe(f"made again while it was being replaced: {relative!r}") from None
    return _own_regular(fd, relative)


def open_file_no_follow(path: Path) -> int | None:
    """A read descriptor of `path` if it is a regular file with a single link, reached
    without following a symlink at its last component (its directory must be trusted),
    else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        return _own_regular(fd, path.name)
    except OSError:
        return None


def regular_files(root: Path, *, linked: bool = False) -> list[tuple[str, int]]:
    """(relative path, size) of the regular files below `root`, in path order: those
    with a single link, or (`linked`, to count the space a tree takes) every one. Walked
    depth first without recursion, by descriptor (one open per level), never through a
    symlink (a directory swapped for one midway is not entered), at most MAX_DEPTH levels
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
                if stat.S_ISREG(info.st_mode) and (linked or info.st_nlink == 1):
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
