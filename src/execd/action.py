"""For action authors: report progress, counters, a result and artifacts from Python.

    from execd.action import Context

    def crunch(ctx: Context, rows: int) -> dict:
        ctx.progress(0, stage="Loading")
        ...
        ctx.counters(processed=done, total=rows)
        (ctx.artifacts_dir / "report.html").write_text(html)
        return {"rows": rows}

A function run by the python runner receives a `ctx` argument if it declares one.
Outside the python runner, `Context.from_environment()` gives the same object to any
process started by an execution. This module imports nothing heavy.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


class Context:
    def __init__(self, control_file: Path, artifacts_dir: Path, work_dir: Path) -> None:
        self.control_file = control_file
        self.artifacts_dir = artifacts_dir
        self.work_dir = work_dir
        self.execution_id = int(os.environ.get("EXECD_EXECUTION_ID", "0"))
        self.execution_uuid = os.environ.get("EXECD_EXECUTION_UUID", "")
        self.attempt = int(os.environ.get("EXECD_ATTEMPT", "1"))

    @classmethod
    def from_environment(cls) -> Context:
        try:
            return cls(
                Path(os.environ["EXECD_CONTROL_FILE"]),
                Path(os.environ["EXECD_ARTIFACTS_DIR"]),
                Path(os.environ.get("EXECD_WORK_DIR", os.getcwd())),
            )
        except KeyError:
            raise RuntimeError("not running inside an execd execution") from None

    def _send(self, **message: Any) -> None:
        line = json.dumps({k: v for k, v in message.items() if v is not None})
        with self.control_file.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")

    def progress(
        self, percent: float | None = None, *, stage: str | None = None, eta: float | None = None
    ) -> None:
        """Percent done (0-100), the current stage, and seconds left if known."""
        self._send(percent=percent, stage=stage, eta=eta)

    def counters(
        self,
        *,
        processed: int | None = None,
        total: int | None = None,
        errors: int | None = None,
        warnings: int | None = None,
    ) -> None:
        self._send(processed=processed, total=total, errors=errors, warnings=warnings)

    def warning(self, message: str) -> None:
        self._send(warning=message)

    def result(self, value: Any) -> None:
        """Set the result explicitly (a returned value takes precedence)."""
        self._send(result=value)

    def artifact(self, name: str) -> Path:
        """A path in the artifact directory to write a file that is kept."""
        path = self.artifacts_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path
