"""Runs inside the subprocess the python runner starts: import, call, write the result.

Invoked as `python -m execd.runners.python_child MODULE:FUNCTION`, with the keyword
arguments as JSON in EXECD_KWARGS.
"""

from __future__ import annotations

import asyncio
import importlib
import inspect
import json
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from execd.action import Context


def load(target: str) -> Any:
    module_name, _, attribute = target.partition(":")
    obj: Any = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    return obj


def call(function: Any, kwargs: dict[str, Any]) -> Any:
    if "ctx" in inspect.signature(function).parameters:
        kwargs = {**kwargs, "ctx": Context.from_environment()}
    result = function(**kwargs)
    if inspect.isawaitable(result):
        result = asyncio.run(_await(result))
    return result


async def _await(awaitable: Any) -> Any:
    return await awaitable


def main() -> int:
    target = sys.argv[1]
    result_file = Path(os.environ["EXECD_RESULT_FILE"])
    sys.path[:0] = [p for p in os.environ.get("EXECD_PYTHONPATH", "").split(os.pathsep) if p]
    sys.path.insert(0, os.getcwd())
    try:
        kwargs = json.loads(os.environ.get("EXECD_KWARGS", "{}"))
        value = call(load(target), kwargs)
    except Exception as exc:
        traceback.print_exc()
        failure = {"error": f"{type(exc).__name__}: {exc}", "type": type(exc).__name__}
        result_file.write_text(json.dumps(failure))
        return 1
    try:
        payload = json.dumps(value)
    except (TypeError, ValueError):
        payload = json.dumps(repr(value))
    result_file.write_text(payload)
    return 0


if __name__ == "__main__":
    sys.exit(main())
