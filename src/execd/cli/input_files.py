"""Reading what a command is given in a file, or on stdin for `-`: text, JSON, YAML.

What cannot be read or parsed ends the command with one line saying where, and exit 2.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from execd.cli import output
from execd.cli.output import Exit


def read_input(path: Path) -> str:
    """A file's text, or stdin's for `-`; exit 2 when it cannot be read."""
    try:
        return sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        output.fail(f"cannot read {path}: {exc.strerror}", Exit.USAGE)
    except UnicodeDecodeError:
        output.fail(f"{path} is not UTF-8 text", Exit.USAGE)


def parse_json(text: str, where: str, line: int = 1) -> Any:
    """JSON text (`where` names it; `line`: the file's line it starts on); exit 2 when
    it is not JSON, with one line saying where."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError as exc:
        at = f"line {line + exc.lineno - 1}, column {exc.colno}: {exc.msg}"
        output.fail(f"{where}: not valid JSON ({at})", Exit.USAGE)


class _PackLoader(yaml.SafeLoader):
    """YAML without its implicit dates: `2024-01-01` stays the text it is in JSON."""


_PackLoader.yaml_implicit_resolvers = {
    first: [r for r in resolvers if r[0] != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_yaml(path: Path) -> Any:
    """A YAML (or JSON, which is YAML) file, or stdin for `-`; exit 2 when it is not."""
    text = read_input(path)
    try:
        return yaml.load(text, Loader=_PackLoader)
    except yaml.YAMLError as exc:
        output.fail(f"{path}: not valid YAML ({yaml_problem(exc)})", Exit.USAGE)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """What PyYAML says is wrong, on one line: where (line and column, from 1), then what."""
    if not isinstance(exc, yaml.MarkedYAMLError):
        return " ".join(str(exc).split())
    what = ", ".join(filter(None, (exc.context, exc.problem))) or "invalid"
    mark, problem = exc.context_mark or exc.problem_mark, exc.problem_mark
    if mark is None:
        return what
    if problem is not None and problem.line != mark.line:
        what += f" on line {problem.line + 1}"
    return f"line {mark.line + 1}, column {mark.column + 1}: {what}"
