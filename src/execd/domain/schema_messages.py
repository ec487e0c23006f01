"""How validation errors quote the value that failed: briefly, and at a cost counted
against the validation's budget (`domain/schemas.py`)."""

from __future__ import annotations

import reprlib
from itertools import islice
from typing import Any

from execd.domain.schemas import ELEMENT, RUN


class _Object(dict[str, Any]):
    def __repr__(self) -> str:
        return _quoted(self)


class _Array(list[Any]):
    def __repr__(self) -> str:
        return _quoted(self)


class _Text(str):
    __slots__ = ()

    def __repr__(self) -> str:
        return _quoted(self)


class _Brief(reprlib.Repr):
    """Error messages quote the value that failed: at most a few of its items, the
    start and end of a long string, a few levels deep."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxdict, self.maxlist, self.maxstring = 3, 6, 6, 80

    def repr__Object(self, value: dict[str, Any], level: int) -> str:
        if not value:
            return "{}"
        if level <= 0:
            return "{...}"
        shown = [
            f"{self.repr1(k, level - 1)}: {self.repr1(v, level - 1)}"
            for k, v in islice(value.items(), self.maxdict)
        ]
        return "{" + ", ".join(shown + ["..."] * (len(value) > self.maxdict)) + "}"

    def repr__Array(self, value: list[Any], level: int) -> str:
        return self.repr_list(value, level)

    def repr__Text(self, value: str, level: int) -> str:
        return self.repr_str(value, level)


_BRIEF = _Brief()


def _quoted(value: Any) -> str:
    """jsonschema quotes the failing value in nearly every error: within a validation
    quoting costs steps, as applying a subschema does."""
    run = RUN.get(None)
    if run is not None:
        run.spend(2 * ELEMENT)
    return _BRIEF.repr(value)


def briefly_shown(value: Any) -> Any:
    """A copy of a JSON value that errors quote briefly: jsonschema puts the repr of
    the failing value in each message, which for a large value costs more than the
    validation itself."""
    if isinstance(value, dict):
        return _Object((k, briefly_shown(v)) for k, v in value.items())
    if isinstance(value, list):
        return _Array(briefly_shown(v) for v in value)
    if isinstance(value, str) and len(value) > _BRIEF.maxstring:
        return _Text(value)
    return value
