"""Regular expressions that users write: rule criteria, and `pattern` and
`patternProperties` in action parameter schemas.

They run on the `regex` module, never on `re`, because `regex` can stop a match after
a time limit: a pattern that backtracks catastrophically costs a bounded time rather
than a stalled service. Every match of one piece of work (one validation, one rule's
criteria on one event) shares one `Budget`.

Compiling is bounded too, by the pattern's shape, checked before `regex` sees it:
`regex` writes counted repeats of groups out, so `((a{100}){100}){100}` alone takes
half a second and one more level exhausts memory.
"""

from __future__ import annotations

import functools
import re
import time

import regex

MAX_PATTERN = 1000  # characters
MAX_EXPANDED = 10_000  # the pattern's size with its counted repeats ({n,m}) written out
MAX_GROUP_DEPTH = 10
# Seconds all the matches of one piece of work may take together: one validation of
# parameters, one rule's criteria on one event. A schema with hundreds of patterns
# costs no more than one; a linear pattern reads about 2 MB of text in that time.
BUDGET = 0.02

# A counted repeat as `regex` reads one ({n}, {n,}, {n,m}, {,m}); read a little more
# widely here, which can only overestimate a pattern's size.
_COUNT = re.compile(r"\{\s*(\d*)\s*(?:,\s*(\d*)\s*)?\}")
# Inline flags, scoped or not: (?i), (?-i:...), (?V1)
_FLAGS = re.compile(r"\(\?([a-zA-Z0-9^-]*)[:)]")
_POSIX_CLASS = re.compile(r"\[:\^?\w+:\]")


class PatternError(ValueError):
    """A pattern that is refused: malformed, too large or using an unsupported mode."""


class PatternTimeout(Exception):
    """Matching ran out of its budget. `text` is the very string being matched (the
    caller can find which value it was by identity; it never goes into a message)."""

    def __init__(self, pattern: str, text: str) -> None:
        super().__init__(pattern)
        self.pattern = pattern
        self.text = text


@functools.lru_cache(maxsize=1024)
def compile_pattern(pattern: str) -> regex.Pattern[str]:
    """The compiled pattern, or PatternError with a reason a user can act on."""
    shown = quoted(pattern)
    if len(pattern) > MAX_PATTERN:
        raise PatternError(f"Pattern {shown} is too long: at most {MAX_PATTERN} characters")
    depth, expanded = _shape(pattern)
    if depth > MAX_GROUP_DEPTH:
        raise PatternError(f"Pattern {shown} nests groups more than {MAX_GROUP_DEPTH} deep")
    if expanded > MAX_EXPANDED:
        raise PatternError(
            f"Pattern {shown} is too large once its counted repeats ({{n,m}}) are "
            f"written out: at most {MAX_EXPANDED} characters"
        )
    try:
        return regex.compile(pattern)
    except Exception as exc:  # regex.error, but also RecursionError and the like
        raise PatternError(f"Invalid pattern {shown}: {exc}") from None


def quoted(pattern: str) -> str:
    """The pattern as messages show it: quoted, and cut when long."""
    return repr(pattern) if len(pattern) <= 60 else repr(pattern[:57] + "...")


def _shape(pattern: str) -> tuple[int, int]:
    """How deep the pattern nests groups, and its size with counted repeats written out.

    Character classes and escapes are read as `regex` reads them, so that no group or
    repeat count hides in them; modes that change what is a group (verbose mode,
    comments, V1's nested sets) are refused rather than modelled.
    """
    sizes = [0]  # the size of each open group's content so far, outermost first
    last = 0  # the size of the item a repeat count would apply to
    deepest = 0
    i = 0
    while i < len(pattern):
        char = pattern[i]
        if char == "\\":
            i, last = i + 2, 1
        elif char == "[":
            i, last = _class_end(pattern, i), 1
        elif char == "(":
            _check_group(pattern, i)
            sizes.append(0)
            deepest = max(deepest, len(sizes) - 1)
            i, last = i + 1, 0
            continue
        elif char == ")" and len(sizes) > 1:
            last = max(sizes.pop(), 1)
            i += 1
        elif char == "{" and (count := _COUNT.match(pattern, i)):
            times = max(int(count[1] or 0), int(count[2] or 0), 1)
            sizes[-1] += last * (times - 1)
            i, last = count.end(), last * times
            continue
        else:
            i, last = i + 1, 1
        sizes[-1] += last
    return deepest, sum(sizes)


def _class_end(pattern: str, start: int) -> int:
    """Where the character class opening at `start` ends (one past its `]`)."""
    i = start + 1
    if pattern.startswith("^", i):
        i += 1
    if pattern.startswith("]", i):
        i += 1
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
        elif posix := _POSIX_CLASS.match(pattern, i):
            i = posix.end()
        elif pattern[i] == "]":
            return i + 1
        else:
            i += 1
    # Unterminated: `regex` refuses it; reading the rest as a pattern overestimates.
    return start + 1


def _check_group(pattern: str, start: int) -> None:
    if pattern.startswith("(?#", start):
        raise PatternError("Comments ((?#...)) are not supported in patterns")
    flags = _FLAGS.match(pattern, start)
    if flags and ("x" in flags[1] or "V1" in flags[1]):
        raise PatternError(
            "Verbose mode (?x) and version 1 mode (?V1) are not supported in patterns"
        )


class Budget:
    """The time all the matches of one piece of work may take together."""

    def __init__(self, seconds: float = BUDGET) -> None:
        self.seconds = seconds
        self._deadline = time.monotonic() + seconds

    def search(self, pattern: str, text: str) -> bool:
        """Whether `pattern` matches somewhere in `text`; PatternTimeout when the
        budget runs out, PatternError if the pattern cannot be compiled."""
        compiled = compile_pattern(pattern)
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise PatternTimeout(pattern, text)
        try:
            return compiled.search(text, timeout=left) is not None
        except TimeoutError:
            raise PatternTimeout(pattern, text) from None
