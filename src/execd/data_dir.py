"""The data directory holds the database (SQLite), the keys, the admin token, the
artifacts and the run directories: it is the service's alone. It is created 0700;
a directory others can write to is refused (they could swap what the service reads),
and the files the service makes there once (the admin token, the secret key) and the
SQLite files are 0600."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

from execd.domain.errors import StartupError

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def prepare(data_dir: Path, database: Path | None = None) -> None:
    """Create the data directory private, or check an existing one; it, and the
    folder of an SQLite database elsewhere, must be writable."""
    try:
        data_dir.mkdir(mode=PRIVATE_DIR, parents=True, exist_ok=True)
    except OSError as exc:
        raise StartupError(
            f"the data directory {data_dir} cannot be created ({exc.strerror}): "
            "choose another EXECD_DATA_DIR"
        ) from None
    writable(data_dir, "the data directory", "EXECD_DATA_DIR")
    if database is not None and database.parent != data_dir:
        writable(database.parent, "the database's directory", "EXECD_DATABASE_URL")
    info = data_dir.stat()
    if info.st_mode & stat.S_IWOTH:
        raise StartupError(
            f"the data directory {data_dir} is writable by every user "
            f"(mode {stat.S_IMODE(info.st_mode):04o}): make it private "
            f"(chmod 700 {data_dir}) or choose another EXECD_DATA_DIR"
        )
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) != PRIVATE_DIR:
        data_dir.chmod(PRIVATE_DIR)


def writable(folder: Path, what: str, setting: str) -> None:
    """Write and remove a file there: what a start needs (the database, its journal,
    the keys), found out before anything is served."""
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".execd-writable-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise StartupError(
            f"{what} {folder} cannot be written ({exc.strerror}): give the service's "
            f"user write access to it, or choose another {setting}"
        ) from None


def make_private(path: Path) -> None:
    """A file of the service's (an SQLite database and its journals): 0600."""
    for suffix in ("", "-wal", "-shm", "-journal"):
        with contextlib.suppress(FileNotFoundError):
            Path(f"{path}{suffix}").chmod(PRIVATE_FILE)


def made_once(path: Path, make: Callable[[], str]) -> str:
    """The text of `path`; on first use it is written with `make()`'s text. Two
    processes starting at once agree on one text: it is written to a file of its own
    and linked into place only if nothing is there yet."""
    try:
        return path.read_text().strip()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # mode 0600
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(make() + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):  # made by another process: it counts
            os.link(temporary, path)
    finally:
        os.unlink(temporary)
    return path.read_text().strip()
