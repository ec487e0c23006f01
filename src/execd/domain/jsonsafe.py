"""What both databases can store: no NUL characters in text (PostgreSQL refuses them in
TEXT and JSONB), no lone UTF-16 surrogates (not encodable as UTF-8), integers that fit
64 bits, finite numbers (JSON has no Infinity or NaN: the encoder would write null)
and nesting no deeper than MAX_DEPTH (the JSON encoder's limits).

Input that breaks these rules is refused with a 400 (`problem`); output an action
produces is stored with each NUL replaced by U+FFFD (`scrub`), the character decoders
use for what cannot be represented.
"""

from __future__ import annotations

import math
import re
from typing import Any

NUL = "\x00"
REPLACEMENT = "\ufffd"
MIN_INT = -(2**63)
MAX_INT = 2**64 - 1
MAX_DEPTH = 128
_SURROGATE = re.compile("[\ud800-\udfff]")


def problem(value: Any, where: str = "value") -> str | None:
    """Why `value` cannot be stored, or None if it can."""
    stack: list[tuple[Any, str, int]] = [(value, where, 0)]
    while stack:
        item, path, depth = stack.pop()
        if depth > MAX_DEPTH:
            return f"{path} is nested deeper than {MAX_DEPTH} levels"
        if isinstance(item, str):
            if NUL in item:
                return f"{path} must not contain NUL characters"
            if _SURROGATE.search(item):
                return f"{path} contains a lone UTF-16 surrogate (not valid Unicode text)"
        elif isinstance(item, bool):
            continue
        elif isinstance(item, int):
            if not MIN_INT <= item <= MAX_INT:
                return f"{path} is an integer beyond the 64-bit range"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return (
                    f"{path} is not a finite number (Infinity, NaN, or beyond the "
                    "range of a double such as 1e400)"
                )
        elif isinstance(item, dict):
            for key, child in item.items():
                if isinstance(key, str) and (NUL in key or _SURROGATE.search(key)):
                    return f"a key in {path} must be valid text without NUL characters"
                stack.append((child, f"{path}.{key}", depth + 1))
        elif isinstance(item, list | tuple):
            stack.extend((child, f"{path}[{i}]", depth + 1) for i, child in enumerate(item))
    return None


def scrub_text(text: str) -> str:
    return text.replace(NUL, REPLACEMENT) if NUL in text else text


def scrub(value: Any) -> Any:
    """`value` with every NUL in its strings and keys replaced."""
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {scrub_text(k) if isinstance(k, str) else k: scrub(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v) for v in value]
    return value
