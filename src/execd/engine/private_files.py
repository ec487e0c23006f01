"""Files the service makes once in its data directory and keeps to itself (mode 0600):
the admin token, the secret key."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


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
