"""A download on its way to disk."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import BinaryIO, Self

from execd.client.protocol import Download


class PartialFile:
    """Where a download goes while it arrives: a hidden file beside the destination,
    renamed into place only once complete, so a failed download leaves nothing."""

    def __init__(self, step: Download) -> None:
        self.step = step
        self.path = step.path.with_name(f".{step.path.name}.{os.getpid()}.part")
        self.done = 0
        self.total: int | None = None
        self.file: BinaryIO | None = None

    def begin(self, headers: Mapping[str, str]) -> None:
        length = headers.get("content-length")
        self.total = int(length) if length and length.isdigit() else None
        self.file = self.path.open("wb")

    def write(self, chunk: bytes) -> None:
        assert self.file is not None
        self.file.write(chunk)
        self.done += len(chunk)
        if self.step.progress:
            self.step.progress(self.done, self.total)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if self.file is not None:
            self.file.close()
            if kind is None:
                self.path.replace(self.step.path)
        self.path.unlink(missing_ok=True)
