"""The artifact store: a directory (shared between machines when workers run on
several) holding each execution's logs and artifact files."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

from execd import files
from execd.domain.executions import STREAMS, Execution


class ArtifactStore:
    """Everything under an execution's artifacts was written by its action, which may
    have swapped files or directories for symlinks to anything the service can read,
    and may still be doing so while a file is served. So nothing here follows a
    symlink: the execution's directory must really be where it belongs, and each path
    below it is walked one component at a time without following links (execd/files.py)
    and checked to be a regular file before a byte of it is served."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def dir_for(self, execution: Execution) -> Path:
        return self.root / execution.project_id / execution.uuid

    def read_output(self, execution: Execution, stream: str, limit: int | None = None) -> bytes:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        handle = self.open_file(execution, f"{stream}.log")
        if handle is None:
            return b""
        with handle:
            return handle.read() if limit is None else handle.read(limit)

    def read_output_from(
        self, execution: Execution, stream: str, offset: int, limit: int
    ) -> tuple[bytes, int]:
        """Up to `limit` bytes of a log from byte `offset`, and the log's size now."""
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        handle = self.open_file(execution, f"{stream}.log")
        if handle is None:
            return b"", 0
        with handle:
            size = os.fstat(handle.fileno()).st_size
            if offset >= size:
                return b"", size
            handle.seek(offset)
            return handle.read(limit), size

    def _own_dir(self, execution: Execution) -> Path | None:
        """The execution's directory, if it is a real directory where it belongs."""
        expected = Path(os.path.realpath(self.root)) / execution.project_id / execution.uuid
        directory = self.dir_for(execution)
        try:
            if os.path.realpath(directory) != str(expected) or not directory.is_dir():
                return None
        except OSError:
            return None
        return expected

    def open_file(self, execution: Execution, relative: str) -> BinaryIO | None:
        """A regular file under the execution's directory, opened for reading, or None
        (missing, not a regular file, or reached through a symlink)."""
        base = self._own_dir(execution)
        if base is None or not relative:
            return None
        try:
            return os.fdopen(files.open_below(base, relative), "rb")
        except (OSError, ValueError):
            return None

    def list_artifacts(self, execution: Execution) -> list[tuple[str, int]]:
        """(relative path, size) of every artifact file, in path order. Symlinks are
        never followed, and names that are not valid UTF-8 are left out."""
        base = self._own_dir(execution)
        if base is None:
            return []
        found = []
        for relative, size in files.regular_files(base / "artifacts"):
            try:
                relative.encode("utf-8")
            except UnicodeEncodeError:
                continue
            found.append((relative, size))
        return found

    def remove(self, executions: Iterable[Execution]) -> None:
        """Delete the executions' logs and artifacts (blocking: run it in a thread)."""
        for execution in executions:
            files.remove_tree(self.dir_for(execution))

    def open_artifact(self, execution: Execution, relative: str) -> BinaryIO | None:
        return self.open_file(execution, f"artifacts/{relative}")
