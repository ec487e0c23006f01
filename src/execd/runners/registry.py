"""The runner for each runner name."""

from __future__ import annotations

from execd.fetching import AllowList
from execd.runners.base import Runner
from execd.runners.command import CommandRunner, ShellRunner
from execd.runners.http import HttpRunner
from execd.runners.local import LocalRunner
from execd.runners.python import PythonRunner


def build_runners(fetch_allow: AllowList) -> dict[str, Runner]:
    return {
        "local": LocalRunner(),
        "shell": ShellRunner(),
        "command": CommandRunner(),
        "python": PythonRunner(),
        "http": HttpRunner(fetch_allow),
    }
