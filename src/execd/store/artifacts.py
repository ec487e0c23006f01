"""The artifact store: a directory (shared between machines when workers run on
several) holding each execution's logs and artifact files."""

from __future__ import annotations

import os
from pathlib import Path

from execd.domain.executions import Execution

STREAMS = ("stdout", "stderr")


class ArtifactStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def dir_for(self, execution: Execution) -> Path:
        return self.root / execution.project_id / execution.uuid

    def output_file(self, execution: Execution, stream: str) -> Path:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}")
        return self.dir_for(execution) / f"{stream}.log"

    def read_output(self, execution: Execution, stream: str, limit: int | None = None) -> bytes:
        path = self.output_file(execution, stream)
        try:
            with path.open("rb") as handle:
                return handle.read() if limit is None else handle.read(limit)
        except FileNotFoundError:
            return b""

    def list_artifacts(self, execution: Execution) -> list[tuple[str, int]]:
        """(relative path, size) of every artifact file, in path order; symlinks are
        never followed."""
        root = self.dir_for(execution) / "artifacts"
        found: list[tuple[str, int]] = []
        if not root.is_dir():
            return found
        for directory, subdirs, names in os.walk(root):
            subdirs.sort()
            for name in sorted(names):
                path = Path(directory) / name
                if path.is_file() and not path.is_symlink():
                    found.append((path.relative_to(root).as_posix(), path.stat().st_size))
        return found

    def artifact_file(self, execution: Execution, relative: str) -> Path | None:
        """The artifact at `relative`, if it is a regular file inside the execution's
        artifact directory (no way out through `..` or a symlink)."""
        root = (self.dir_for(execution) / "artifacts").resolve()
        path = (root / relative).resolve()
        if root not in path.parents or not path.is_file():
            return None
        return path
