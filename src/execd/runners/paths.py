"""Where one run of an execution keeps its files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ExecutionPaths:
    """Per-execution directories. `run_dir` is local scratch (deleted afterwards);
    `store_dir` is in the artifact store (kept: logs and artifacts)."""

    run_dir: Path
    store_dir: Path

    @property
    def work_dir(self) -> Path:
        return self.run_dir / "work"

    @property
    def control_file(self) -> Path:
        return self.run_dir / "control.jsonl"

    @property
    def result_file(self) -> Path:
        return self.run_dir / "result.json"

    @property
    def artifacts_dir(self) -> Path:
        return self.store_dir / "artifacts"

    @property
    def stdout_file(self) -> Path:
        return self.store_dir / "stdout.log"

    @property
    def stderr_file(self) -> Path:
        return self.store_dir / "stderr.log"

    def create(self) -> None:
        for directory in (self.work_dir, self.artifacts_dir):
            directory.mkdir(parents=True, exist_ok=True)
