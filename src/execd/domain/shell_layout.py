"""Which role each word of one simple command plays for its program (`layout`): an
assignment, a wrapper's option, the program, a shell's option or script, data, or an
argument that is data unless the program reads code. The programs it knows are listed
in `domain/shell_programs.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

from execd.domain.shell_programs import (
    ENV_WRAPPER,
    OPTION_RUNNERS,
    SHELLS,
    WRAPPERS,
    WordLike,
    Wrapper,
    names_code,
    program_name,
    reads_code,
    reads_input,
)

# Shell options that take the next word as their value.
_SHELL_VALUE_LETTERS = frozenset("oO")
_SHELL_VALUE_OPTIONS = frozenset({"--rcfile", "--init-file"})
_UNKNOWN = "execd cannot tell which program runs, nor what it does with its arguments"


class Role(Enum):
    ASSIGNMENT = "assignment"
    WRAPPER = "wrapper"  # an option or operand of a wrapper, before the program it runs
    PROGRAM = "program"
    NAME = "name"  # a function's name
    LOOP = "loop"  # a word of a for or select header
    OPTION = "option"  # a shell's option
    SCRIPT = "script"  # the script a shell runs (-c's text, or a file)
    LEADING = "leading"  # could begin with - or +, where an option can run a command
    DATA = "data"  # always data: a shell's positional parameters, a case word
    ARGUMENT = "argument"  # data unless the command reads code
    REDIRECT = "redirect"  # a redirection's target: like an argument


@dataclass(frozen=True)
class Slot:
    role: Role
    program: str = ""  # as the script spells it: the wrapper, shell or program concerned


@dataclass
class Layout:
    slots: list[Slot]
    reads_code: str | None  # why a value among its arguments could be read as code
    input_code: str | None = None  # why a value in its standard input could be
    script: int | None = None  # the word a shell runs as its script (-c)


def layout(words: Sequence[WordLike]) -> Layout:
    """The slot of each word of a simple command, and whether the command reads code."""
    slots = [Slot(Role.REDIRECT if w.redirect else Role.ARGUMENT) for w in words]
    order = [i for i, w in enumerate(words) if not w.redirect]
    k = 0
    while k < len(order) and words[order[k]].assignment:
        slots[order[k]] = Slot(Role.ASSIGNMENT)
        k += 1
    result = Layout(slots, None)
    while k < len(order):
        word = words[order[k]]
        name = word.name
        if name is None:
            slots[order[k]] = Slot(Role.PROGRAM)
            result.reads_code = result.input_code = _UNKNOWN
            _name_all(slots, order[k + 1 :], "a program named by an expansion")
            return result
        base = program_name(name)
        wrapper = ENV_WRAPPER if base == "env" else WRAPPERS.get(base)
        if wrapper is None:
            break
        slots[order[k]] = Slot(Role.PROGRAM, name)
        k, reason = _skip_wrapper(words, order, k + 1, wrapper, slots, name)
        if reason:
            result.reads_code = result.input_code = reason
            _name_all(slots, order[k:], name)
            return result
    if k == len(order):
        return result
    name = words[order[k]].name or ""
    slots[order[k]] = Slot(Role.PROGRAM, name)
    rest = order[k + 1 :]
    _name_all(slots, rest, name)
    _name_all(slots, [i for i, w in enumerate(words) if w.redirect], name)
    base = program_name(name)
    if base in SHELLS:
        _shell(words, rest, slots, name, result)
        result.input_code = result.reads_code
    else:
        arguments = [words[i] for i in rest]
        result.reads_code = reads_code(base, name, arguments)
        result.input_code = result.reads_code if reads_input(base, arguments) else None
        if base in OPTION_RUNNERS:
            _mark_leading(words, rest, slots, name)
    zero = _zero(result, rest)
    data = [i for i in rest if slots[i].role in (Role.ARGUMENT, Role.DATA) and i != zero]
    if named := names_code([words[i] for i in data]):
        for i in data:
            slots[i] = Slot(Role.ARGUMENT, name)
        if base in SHELLS or result.reads_code is None:
            result.reads_code = named
        result.input_code = result.input_code or named
    return result


def _name_all(slots: list[Slot], indexes: Sequence[int], program: str) -> None:
    for i in indexes:
        slots[i] = Slot(slots[i].role, program)


def _mark_leading(words: Sequence[WordLike], rest: list[int], slots: list[Slot], name: str) -> None:
    for i in rest:
        if words[i].literal == "--":
            return
        if not words[i].first:
            slots[i] = Slot(Role.LEADING, name)


def _skip_wrapper(
    words: Sequence[WordLike],
    order: list[int],
    k: int,
    wrapper: Wrapper,
    slots: list[Slot],
    name: str,
) -> tuple[int, str | None]:
    """Marks a wrapper's options and operands; returns where its program is, or why
    the program cannot be known."""
    is_env = wrapper is ENV_WRAPPER
    operands = wrapper.operands
    while k < len(order):
        word = words[order[k]]
        text = word.literal
        if text is None:
            slots[order[k]] = Slot(Role.WRAPPER, name)
            return k + 1, f"an argument of {name} comes from an expansion: {_UNKNOWN}"
        if is_env and _env_splits(text):
            slots[order[k]] = Slot(Role.WRAPPER, name)
            return k + 1, f"{name} -S splits a string into a command"
        if text == "--":
            slots[order[k]] = Slot(Role.WRAPPER, name)
            k += 1
            continue
        if len(text) > 1 and text.startswith("-"):
            slots[order[k]] = Slot(Role.WRAPPER, name)
            if text in wrapper.value_options:
                k += 1
                if k < len(order):
                    slots[order[k]] = Slot(Role.WRAPPER, name)
            k += 1
            continue
        if operands:
            slots[order[k]] = Slot(Role.WRAPPER, name)
            operands -= 1
            k += 1
            continue
        if is_env and "=" in text:
            slots[order[k]] = Slot(Role.ASSIGNMENT, name)
            k += 1
            continue
        break
    return k, None


def _env_splits(option: str) -> bool:
    if option.startswith("--"):
        return option.split("=", 1)[0] == "--split-string"
    return option.startswith("-") and "S" in option[1:].split("=", 1)[0]


def _shell(
    words: Sequence[WordLike], rest: list[int], slots: list[Slot], name: str, result: Layout
) -> None:
    """A shell's options, its script (with -c, or a file) and its positional parameters."""
    result.reads_code = f"{name} runs shell code"
    command = stdin = False
    k = 0
    while k < len(rest):
        text = words[rest[k]].literal
        if text is None and command and words[rest[k]].first not in ("", "-", "+"):
            break
        if text is None:  # an option or the script: what follows shifts with it
            for i in rest[k:]:
                slots[i] = Slot(Role.OPTION, name)
            slots[rest[k]] = Slot(Role.SCRIPT, name)
            return
        slots[rest[k]] = Slot(Role.OPTION, name)
        if text in ("-", "--"):
            k += 1
            break
        if text.startswith("--"):
            k += 2 if text in _SHELL_VALUE_OPTIONS else 1
        elif len(text) > 1 and text[0] in "-+":
            command = command or (text[0] == "-" and "c" in text)
            stdin = stdin or (text[0] == "-" and "s" in text)
            values = sum(letter in _SHELL_VALUE_LETTERS for letter in text[1:])
            for i in rest[k + 1 : k + 1 + values]:
                slots[i] = Slot(Role.OPTION, name)
            k += 1 + values
        else:
            break
    operands = rest[k:]
    for i in operands:
        slots[i] = Slot(Role.DATA, name)
    if operands and (command or not stdin):
        slots[operands[0]] = Slot(Role.SCRIPT, name)
        if command:
            result.script = operands[0]


def _zero(result: Layout, rest: list[int]) -> int | None:
    """The word after a shell's -c script: `$0`, conventionally the shell's own name."""
    if result.script is None:
        return None
    position = rest.index(result.script) + 1
    return rest[position] if position < len(rest) else None
