"""Values in shell scripts: a placeholder is filled with a reference to an environment
variable holding its value, never with the value's text, and only where that value
stays data for every shell and program it reaches.

A placeholder is allowed outside quotes (it becomes `"$V"`) or inside double quotes
(`${V}`), in the arguments of a command whose program does not read its arguments as
code, and in a pipeline none of whose later commands reads code; the same holds for
every command around it when it stands inside `$( )`, backticks or `<( )`. Everywhere
else it is refused: inside single quotes or `$'...'`, in a here-document, in
arithmetic, `${...}`, `[[ ]]` or an assignment, as the program to run or among a
wrapper's options, and in a command of a program listed in `domain/shell_programs.py`
(shells, `eval` and its kin, interpreters, `ssh`, `sudo`, `xargs`, ...). A shell's
positional parameters are data: `sh -c '... "$1"' sh {x}` is allowed.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from execd.domain.shell_layout import Role, Slot, layout
from execd.domain.shell_parse import Parser
from execd.domain.shell_syntax import CODE, Command, Refusal, Site, Word


class ShellError(ValueError):
    pass


_ASSIGNMENT = Refusal(
    "in an assignment",
    "the shell may evaluate a variable's value as code (an integer variable, an array "
    "subscript, PS4, BASH_ENV); give the script the value in its environment instead",
)


def substitute(
    script: str, placeholder: re.Pattern[str], variable: Callable[[re.Match[str]], str]
) -> str:
    """`script` with each match of `placeholder` replaced by a reference to the
    environment variable `variable(match)` names, quoted for where it stands; raises
    ShellError for the first placeholder that stands where a value could be read as code."""
    matches = list(placeholder.finditer(script))
    if not matches:
        return script
    parser = Parser(script, [match.span() for match in matches])
    sites = {site.start: site for site in parser.parse()}
    placed: list[tuple[re.Match[str], Site]] = []
    for match in matches:
        site = sites.get(match.start())
        refusal = _doubt(parser.doubt) if site is None or parser.doubt else _judge(site)
        if refusal is not None:
            raise ShellError(_message(match.group(), refusal))
        assert site is not None
        placed.append((match, site))
    parts: list[str] = []
    end = 0
    for match, site in placed:
        parts += [script[end : match.start()], reference(site.place, variable(match))]
        end = match.end()
    parts.append(script[end:])
    return "".join(parts)


def reference(place: str, variable: str) -> str:
    return f'"${variable}"' if place == CODE else "${" + variable + "}"


@dataclass
class _Argument:
    """An element of an argv, as the word of a command."""

    text: str
    filled: bool  # holds a placeholder
    first: str  # its first character, "" when a placeholder starts it
    assignment: bool = False
    redirect: bool = False

    @property
    def literal(self) -> str | None:
        return None if self.filled else self.text

    @property
    def name(self) -> str | None:
        base = self.text.rsplit("/", 1)[-1]
        return None if self.filled or not base else base


def argv_script(argv: list[str], placeholder: re.Pattern[str]) -> int | None:
    """Which element of `argv` a shell runs as its script (`sh -c SCRIPT`, `env bash -lc
    SCRIPT`...), or None; raises ShellError for a placeholder in another element where
    its value could be read as code (a program's name, an interpreter's argument)."""
    words = [
        _Argument(
            text,
            filled=placeholder.search(text) is not None,
            first="" if placeholder.match(text) else text[:1],
        )
        for text in argv
    ]
    found = layout(words)
    for index, (word, slot) in enumerate(zip(words, found.slots, strict=True)):
        if word.filled and index != found.script:
            refusal = _slot_refusal(slot, found, nested=False)
            if refusal is not None:
                match = placeholder.search(word.text)
                assert match is not None
                raise ShellError(_message(match.group(), refusal))
    return found.script


def _judge(site: Site) -> Refusal | None:
    """Why the placeholder at `site` could be read as code, or None: the quotes and
    expansions around it, then each command from the innermost out (the slot of the
    word holding it, and the commands its output is piped to)."""
    if site.refusal is not None or site.word is None:
        return site.refusal
    word: Word | None = site.word
    nested = False
    while word is not None:
        command = word.command
        refusal = _slot_refusal(word.slot, command, nested) or _piped(command)
        if refusal is not None:
            return refusal
        context = command.context
        while isinstance(context.owner, Command):  # a compound command's body
            refusal = _piped(context.owner)
            if refusal is not None:
                return refusal
            context = context.owner.context
        word, nested = context.owner, True
    return None


def _piped(command: Command) -> Refusal | None:
    later = command.pipeline[command.pipeline.index(command) + 1 :]
    for receiver in later:
        if receiver.input_code:
            return Refusal("in a command whose output is piped to a program", receiver.input_code)
    return None


class _Reads(Protocol):
    @property
    def reads_code(self) -> str | None: ...

    @property
    def input_code(self) -> str | None: ...


def _slot_refusal(slot: Slot, command: _Reads, nested: bool) -> Refusal | None:
    refusal = _ROLE_REFUSALS.get(slot.role)
    if refusal is not None:
        found = refusal(slot.program)
    elif slot.role is Role.ARGUMENT and command.reads_code:
        found = Refusal(f"in the arguments of {slot.program or 'a command'}", command.reads_code)
    elif slot.role is Role.REDIRECT and command.input_code:
        found = Refusal(f"in a redirection of {slot.program or 'a command'}", command.input_code)
    else:
        return None
    if nested:
        why = "its output would be split into a command" if slot.role is Role.PROGRAM else found.why
        return Refusal(f"inside a substitution {found.where}", why)
    return found


def _shell_script(program: str) -> Refusal:
    return Refusal(
        f"in the script {program} runs",
        f"{program} parses that text as code; pass the value as an argument after the "
        f"script instead, as in {program} -c '... \"$1\"' {program} VALUE",
    )


_ROLE_REFUSALS: dict[Role, Callable[[str], Refusal]] = {
    Role.ASSIGNMENT: lambda _: _ASSIGNMENT,
    Role.WRAPPER: lambda program: Refusal(
        f"among the arguments of {program} before the program it runs",
        "a value there could choose what runs",
    ),
    Role.PROGRAM: lambda _: Refusal("as the program to run", "a value would choose what runs"),
    Role.NAME: lambda _: Refusal("as a function's name", "a value would name a command"),
    Role.LOOP: lambda _: Refusal(
        "in a for or select header",
        "each value is assigned to the loop variable, which the shell may evaluate as code",
    ),
    Role.OPTION: lambda program: Refusal(
        f"among the options of {program}", "a value there could become a script"
    ),
    Role.SCRIPT: _shell_script,
    Role.LEADING: lambda program: Refusal(
        f"at the start of an argument of {program} before --",
        f"the value could be an option, and some options of {program} run a command; write "
        "-- before it, or put text before the placeholder (--file=VALUE)",
    ),
}


def _doubt(reason: str | None) -> Refusal:
    return Refusal(
        "",
        f"execd cannot follow this script's syntax ({reason or 'unknown'}), so it cannot "
        "tell where the value would go",
    )


def _message(placeholder: str, refusal: Refusal) -> str:
    where = f" {refusal.where}" if refusal.where else ""
    return f"{placeholder}{where} is refused: {refusal.why}"
