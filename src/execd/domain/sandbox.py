"""What an action's sandbox allows: network or not, and the limits of its processes.

An action asks; the worker that runs it enforces, and never grants more than its own
ceilings (`EXECD_SANDBOX_*` settings): an action can ask for less, not for more.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

# Units are in the names: bytes, seconds, a count.
LIMIT_NAMES = ("memory_bytes", "processes", "cpu_seconds", "output_bytes")
MAX_LIMIT = 2**62
MIN_MEMORY = 16 * 1024 * 1024
MIN_OUTPUT = 1024


@dataclass(frozen=True)
class Limits:
    memory_bytes: int | None = None  # resident memory of the whole run
    processes: int | None = None  # processes and threads at once
    cpu_seconds: float | None = None  # CPU time of the whole run
    output_bytes: int | None = None  # stdout and stderr together

    def to_json(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self) if getattr(self, f.name)}

    @staticmethod
    def json_schema() -> dict[str, Any]:
        """What `from_json` takes, as a JSON Schema."""
        lowest = {"memory_bytes": MIN_MEMORY, "output_bytes": MIN_OUTPUT}
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                name: {
                    "type": "number" if name == "cpu_seconds" else "integer",
                    "minimum": lowest.get(name, 1),
                    "maximum": MAX_LIMIT,
                }
                for name in LIMIT_NAMES
            },
        }

    @classmethod
    def from_json(cls, data: Any) -> Limits:
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise ValueError("limits must be an object")
        unknown = set(data) - set(LIMIT_NAMES)
        if unknown:
            raise ValueError(
                f"Unknown limits: {', '.join(sorted(map(str, unknown)))}; "
                f"expected {', '.join(LIMIT_NAMES)}"
            )
        values: dict[str, Any] = {name: _limit(name, data.get(name)) for name in LIMIT_NAMES}
        return cls(**values)

    def within(self, ceiling: Limits) -> Limits:
        """Each limit at most the ceiling's (a limit left open takes the ceiling)."""
        values: dict[str, Any] = {}
        for name in LIMIT_NAMES:
            mine, most = getattr(self, name), getattr(ceiling, name)
            values[name] = most if mine is None else (mine if most is None else min(mine, most))
        return replace(self, **values)


def _limit(name: str, value: Any) -> int | float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"limits.{name} must be a number")
    if name != "cpu_seconds" and value != int(value):
        raise ValueError(f"limits.{name} must be a whole number")
    lowest = {"memory_bytes": MIN_MEMORY, "output_bytes": MIN_OUTPUT}.get(name, 1)
    if not lowest <= value <= MAX_LIMIT:
        raise ValueError(f"limits.{name} must be between {lowest} and {MAX_LIMIT}")
    return float(value) if name == "cpu_seconds" else int(value)


@dataclass(frozen=True)
class SandboxOptions:
    """Per action: whether its processes reach the network, and their limits."""

    network: bool = True
    limits: Limits = Limits()

    def to_json(self) -> dict[str, Any] | None:
        """What is stored (None for the defaults)."""
        data: dict[str, Any] = {}
        if not self.network:
            data["network"] = False
        if limits := self.limits.to_json():
            data["limits"] = limits
        return data or None

    @classmethod
    def from_json(cls, data: Any) -> SandboxOptions:
        if not data:
            return cls()
        if not isinstance(data, dict):
            raise ValueError("sandbox options must be an object")
        network = data.get("network", True)
        if not isinstance(network, bool):
            raise ValueError("network must be true or false")
        return cls(network=network, limits=Limits.from_json(data.get("limits")))


def sandbox_status(modes: list[str | None]) -> tuple[str, list[str]]:
    """How the live workers run actions, in one word ("bubblewrap", "none", "mixed", or
    "unknown" with no live worker), and the warnings a status page must show."""
    known = [mode or "unknown" for mode in modes]
    if not known:
        return "unknown", []
    kinds = set(known)
    word = known[0] if len(kinds) == 1 else "mixed"
    unsandboxed = known.count("none")
    warnings = []
    if unsandboxed:
        warnings.append(
            f"{unsandboxed} of {len(known)} live workers run actions unsandboxed "
            "(EXECD_SANDBOX=none): an action there can read the service's environment, "
            "its database and every tenant's files"
        )
    return word, warnings


def describe_size(size: int) -> str:
    """A size as a limit message says it: "64 MiB", "8 KiB", "1000 bytes"."""
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} bytes"
