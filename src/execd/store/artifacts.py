"""The artifact store: a directory (shared between machines when workers run on
several) holding each execution's logs and artifact files."""

from __future__ import annotations

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
