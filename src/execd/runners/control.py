"""The control protocol: how a running action reports progress, counters, a result
and artifacts. One JSON object per line, appended to $EXECD_CONTROL_FILE.

    {"percent": 40, "stage": "Loading"}          progress (0-100) and stage
    {"eta": 120}                                 seconds left, if the action knows
    {"processed": 400, "total": 1000}            record counters
    {"errors": 1, "warnings": 3}                 error and warning counts
    {"result": {...}}                            the JSON result (last one wins)
    {"artifact": "out/report.html"}              a file to keep (copied to artifacts)
    {"warning": "Some timestamps were inferred"} a warning message (kept, counted)
"""

from __future__ import annotations

import contextlib
import os
import shutil
import time
from pathlib import Path
from typing import Any

import orjson

from execd import files

PROGRESS_KEYS = {"percent", "stage", "eta", "processed", "total", "errors", "warnings"}
MAX_WARNINGS = 100
MAX_CONTROL_READ = 16 * 1024 * 1024  # per poll; the rest is read at the next


class ControlReader:
    """Follows the control file and folds its lines into a progress record."""

    def __init__(self, path: Path, work_dir: Path, artifacts_dir: Path) -> None:
        self.path = path
        self.work_dir = work_dir
        self.artifacts_dir = artifacts_dir
        self.offset = 0
        self.progress: dict[str, Any] = {}
        self.result: Any = None
        self.has_result = False
        self.rejected = 0

    def poll(self) -> bool:
        """Read new complete lines; True if the progress record changed. The action made
        the file, maybe as a symlink to something else: a link is not followed."""
        fd = files.open_file_no_follow(self.path)
        if fd is None:
            return False
        with os.fdopen(fd, "rb") as handle:
            handle.seek(self.offset)
            data = handle.read(MAX_CONTROL_READ)
        end = data.rfind(b"\n")
        if end < 0:
            return False
        self.offset += end + 1
        changed = False
        for line in data[: end + 1].splitlines():
            if line.strip():
                changed |= self._apply(line)
        return changed

    def _apply(self, line: bytes) -> bool:
        try:
            message = orjson.loads(line)
        except orjson.JSONDecodeError:
            self.rejected += 1
            return False
        if not isinstance(message, dict):
            self.rejected += 1
            return False
        changed = False
        for key in PROGRESS_KEYS & message.keys():
            value = _clean(key, message[key])
            if value is not None:
                self.progress[key] = value
                changed = True
        if "warning" in message:
            warnings = self.progress.setdefault("warning_messages", [])
            if len(warnings) < MAX_WARNINGS:
                warnings.append(str(message["warning"])[:1000])
            self.progress["warnings"] = max(self.progress.get("warnings", 0), len(warnings))
            changed = True
        if "result" in message:
            self.result = message["result"]
            self.has_result = True
        if "artifact" in message:
            self._keep(str(message["artifact"]))
        if changed:
            self.progress["at"] = time.time()
        return changed

    def _keep(self, name: str) -> None:
        """Copy a file from the work directory into the artifacts. Both trees belong to
        the action, which may swap anything in them for a symlink at any moment: both
        ends are walked without following one (see execd/files.py)."""
        try:
            relative = "/".join(files.parts_of(name))
            self.artifacts_dir.mkdir(parents=True, exist_ok=True)
            with contextlib.ExitStack() as stack:
                src = stack.enter_context(
                    os.fdopen(files.open_below(self.work_dir, relative), "rb")
                )
                dst = stack.enter_context(
                    os.fdopen(files.create_below(self.artifacts_dir, relative), "wb")
                )
                shutil.copyfileobj(src, dst)
        except OSError:
            self.rejected += 1


def _clean(key: str, value: Any) -> Any:
    if key == "stage":
        return str(value)[:200] if value is not None else None
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if key == "percent":
        return max(0.0, min(100.0, float(value)))
    if key == "eta":
        return max(0.0, float(value))
    return max(0, int(value))
