"""Result packages: one ZIP per finished execution, streamed as it is written.

Contents: `execution.json` (the record and its status events), `result.json`,
`stdout.log`, `stderr.log`, every file under `artifacts/`, and last `manifest.json`
listing each of those with its size and SHA-256. Files are read in chunks and the ZIP
is written to an unseekable sink (data descriptors), so a package of any size costs a
few hundred kilobytes of memory, never its own size.
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any, BinaryIO

import orjson

from execd.domain import times
from execd.domain.executions import Execution, StatusEvent

CHUNK = 256 * 1024
Source = Callable[[], BinaryIO | None] | bytes


def record(execution: Execution, events: list[StatusEvent]) -> dict[str, Any]:
    """The execution as the package describes it (dialect-neutral, secrets masked)."""
    e = execution
    return {
        "id": e.id,
        "uuid": e.uuid,
        "tenantId": e.tenant_id,
        "projectId": e.project_id,
        "actionRef": e.action_ref,
        "status": e.status.value,
        "parameters": e.visible_parameters,
        "priority": e.priority.label,
        "attempt": e.attempt,
        "maxAttempts": e.max_attempts,
        "retryOf": e.retry_of,
        "parentId": e.parent_id,
        "submittedBy": e.submitted_by,
        "created": times.iso(e.created),
        "started": times.iso(e.started),
        "ended": times.iso(e.ended),
        "error": e.error,
        "exitCode": e.exit_code,
        "progress": _camel(e.progress),
        "usage": _camel(e.usage),
        "events": [
            {
                "from": ev.from_status.value if ev.from_status else None,
                "to": ev.to_status.value,
                "at": times.iso(ev.at),
                "attempt": ev.attempt,
                "message": ev.message,
            }
            for ev in events
        ],
    }


def _camel(fields: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record's keys in the package's spelling: peak_memory_bytes -> peakMemoryBytes."""
    if fields is None:
        return None
    return {re.sub(r"_([a-z0-9])", lambda m: m[1].upper(), k): v for k, v in fields.items()}


@dataclass(frozen=True)
class Part:
    """Files of one execution in the package, under `prefix` ("" for the execution
    itself, "step-2/" for a flow's second step, and so on down)."""

    prefix: str
    open_file: Callable[[str], BinaryIO | None]  # ArtifactStore.open_file, bound
    artifacts: list[tuple[str, int]]  # ArtifactStore.list_artifacts


def contents(
    execution: Execution, events: list[StatusEvent], parts: list[Part]
) -> list[tuple[str, Source]]:
    """What goes into the package: the record and result of `execution`, then the
    logs and artifacts of each part."""
    files: list[tuple[str, Source]] = [
        ("execution.json", orjson.dumps(record(execution, events), option=orjson.OPT_INDENT_2)),
        ("result.json", orjson.dumps(execution.result, option=orjson.OPT_INDENT_2)),
    ]
    for part in parts:
        for name in ("stdout.log", "stderr.log"):
            files.append((f"{part.prefix}{name}", partial(part.open_file, name)))
        for relative, _ in part.artifacts:
            source = partial(part.open_file, f"artifacts/{relative}")
            files.append((f"{part.prefix}artifacts/{relative}", source))
    return files


class _Sink:
    """Where zipfile writes: collects bytes until the generator hands them on."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: bytes) -> int:
        self.parts.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        return None

    def take(self) -> Iterator[bytes]:
        parts, self.parts = self.parts, []
        if parts:
            yield b"".join(parts)


def stream(execution: Execution, files: list[tuple[str, Source]]) -> Iterator[bytes]:
    sink = _Sink()
    manifest: list[dict[str, Any]] = []
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_DEFLATED) as archive:  # type: ignore[call-overload]
        for name, source in files:
            digest = hashlib.sha256()
            size = 0
            with archive.open(name, "w", force_zip64=True) as out:
                for chunk in _chunks(source):
                    digest.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
                    yield from sink.take()
            manifest.append({"path": name, "size": size, "sha256": digest.hexdigest()})
            yield from sink.take()
        summary = {
            "executionId": execution.uuid,
            "status": execution.status.value,
            "files": manifest,
        }
        archive.writestr("manifest.json", orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    yield from sink.take()


def _chunks(source: Source) -> Iterator[bytes]:
    if isinstance(source, bytes):
        yield source
        return
    handle = source()
    if handle is None:
        return  # gone, or no longer a regular file: an empty entry, size 0 in the manifest
    with handle:
        while chunk := handle.read(CHUNK):
            yield chunk
