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
import stat
import time
from pathlib import Path
from typing import Any, BinaryIO

import orjson

PROGRESS_KEYS = {"percent", "stage", "eta", "processed", "total", "errors", "warnings"}
MAX_WARNINGS = 100


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
        """Read new complete lines; True if the progress record changed."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return False
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
        """Copy a file from the work directory into the artifacts. Neither end may be a
        symlink at the moment it is opened, so a path swapped after the check cannot
        make the copy read or write outside the execution's own directories."""
        root = self.work_dir.resolve()
        source = (root / name).resolve()
        if root not in source.parents:
            self.rejected += 1
            return
        target = self.artifacts_dir / source.relative_to(root)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            with contextlib.ExitStack() as stack:
                src = stack.enter_context(_open_no_follow(source, os.O_RDONLY | os.O_NONBLOCK))
                if not stat.S_ISREG(os.fstat(src.fileno()).st_mode):
                    raise OSError("not a regular file")
                flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
                dst = stack.enter_context(_open_no_follow(target, flags))
                shutil.copyfileobj(src, dst)
        except OSError:
            self.rejected += 1


def _open_no_follow(path: Path, flags: int) -> BinaryIO:
    fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC, 0o644)
    return os.fdopen(fd, "wb" if flags & os.O_WRONLY else "rb")


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
