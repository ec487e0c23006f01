"""Values in shell scripts: a placeholder in a script is filled with a reference to an
environment variable holding its value, never with the value's text.

The reference is quoted for where the placeholder stands: `"$V"` in plain code, `${V}`
inside double quotes or an unquoted here-document, `'"$V"'` inside single quotes (close,
expand, reopen) and `'"$V"$'` inside `$'...'`. The shell expands a variable once and
never parses the result as code, so a wrong guess about the quoting can at worst split
the value into words. Two places are refused: arithmetic (bash evaluates a variable's
value there as an expression, and an array subscript in it runs commands) and a quoted
here-document (nothing expands there: the value could only go in as text).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

SHELLS = frozenset({"sh", "bash", "dash", "zsh", "ksh", "ksh93", "mksh", "ash", "yash", "posh"})
# Options of those shells that take the next argument as their value.
_OPTION_VALUE = frozenset("oO")
_LONG_OPTION_VALUE = frozenset({"--rcfile", "--init-file"})

_CODE, _SUBST, _BACKTICK, _ARITH = "code", "$(", "`", "$(("
_DOUBLE, _SINGLE, _ANSI, _COMMENT, _HEREDOC = '"', "'", "$'", "#", "<<"
_WORD_BREAK = frozenset(" \t\n;&|()<>")
# `<<` (not `<<<`), an optional `-`, and the delimiter word, which may be quoted.
_HEREDOC_START = re.compile(
    r"""<<(?!<)(-?)[ \t]*((?:[^\s;&|()<>'"\\]|\\.|'[^']*'|"[^"\\]*")+)""", re.DOTALL
)


class ShellError(ValueError):
    pass


@dataclass
class _Frame:
    kind: str
    depth: int = 0  # open parentheses of `$(` and `$((`
    delimiter: str = ""  # a here-document's
    quoted: bool = False  # a here-document whose delimiter is quoted: nothing expands
    strip: bool = False  # `<<-`: leading tabs go before the delimiter is compared
    line: str | None = ""  # a here-document's current line; None: too long to be the end


class _Scanner:
    """Follows a script's quoting as text is fed, enough to say where the next
    character stands."""

    def __init__(self) -> None:
        self.stack = [_Frame(_CODE)]
        self.pending: list[_Frame] = []  # here-documents whose body starts at the next line
        self.previous = "\n"
        self.arithmetic = 0  # how many `$((` are open

    def place(self) -> str:
        if self.arithmetic:
            raise ShellError(
                "a placeholder inside $(( )) is refused: the shell evaluates the value "
                "there as an expression"
            )
        top = self.stack[-1]
        if top.kind == _HEREDOC and top.quoted:
            raise ShellError(
                "a placeholder inside a quoted here-document is refused: nothing expands "
                "there, so the value could only go in as text"
            )
        return top.kind

    def feed(self, text: str) -> None:
        i = 0
        while i < len(text):
            i = self._step(text, i)

    def _step(self, text: str, i: int) -> int:
        """Reads the character (or construct) at `i`; returns where the next one starts."""
        top = self.stack[-1]
        char = text[i]
        if top.kind == _HEREDOC:
            return self._heredoc(top, text, i)
        if top.kind in (_SINGLE, _ANSI):
            if char == "\\" and top.kind == _ANSI:
                return i + 2
            if char == "'":
                self._pop()
            return i + 1
        if top.kind == _COMMENT:
            if char == "\n":
                self._pop()
                return i  # the newline also ends the line of the code around the comment
            return i + 1
        if top.kind == _DOUBLE:
            if char == '"':
                self._pop()
                return i + 1
            return self._expansion(text, i)
        if top.kind == _ARITH:
            return self._parenthesis(top, text, i)
        return self._code(top, text, i)

    def _code(self, top: _Frame, text: str, i: int) -> int:
        char = text[i]
        at_word_start = self.previous in _WORD_BREAK
        self.previous = char
        if char == "\n" and self.pending:
            self.stack.extend(reversed(self.pending))
            self.pending = []
            return i + 1
        if char == "'":
            self.stack.append(_Frame(_SINGLE))
        elif char == '"':
            self.stack.append(_Frame(_DOUBLE))
        elif char == "#" and at_word_start:
            self.stack.append(_Frame(_COMMENT))
        elif text.startswith("$'", i):
            self.stack.append(_Frame(_ANSI))
            return i + 2
        elif char == "`" and top.kind == _BACKTICK:
            self._pop()
        elif char == "<" and (heredoc := _HEREDOC_START.match(text, i)):
            self._declare_heredoc(heredoc)
            self.previous = "x"
            return heredoc.end()
        elif top.kind == _SUBST:
            return self._parenthesis(top, text, i)
        else:
            return self._expansion(text, i)
        return i + 1

    def _parenthesis(self, top: _Frame, text: str, i: int) -> int:
        if text[i] not in "()":
            return self._expansion(text, i)
        top.depth += 1 if text[i] == "(" else -1
        if top.depth == 0:
            self._pop()
        return i + 1

    def _expansion(self, text: str, i: int) -> int:
        """What opens inside double quotes and here-documents as well as in code."""
        char = text[i]
        if char == "\\":
            return i + 2
        if text.startswith("$((", i):
            self.stack.append(_Frame(_ARITH, depth=2))
            self.arithmetic += 1
            return i + 3
        if text.startswith("$(", i):
            self.stack.append(_Frame(_SUBST, depth=1))
            return i + 2
        if char == "`":
            self.stack.append(_Frame(_BACKTICK))
        return i + 1

    def _heredoc(self, top: _Frame, text: str, i: int) -> int:
        if text[i] == "\n":
            ended = top.line == top.delimiter
            top.line = ""
            if ended:
                self._pop()
                self.previous = "\n"
            return i + 1
        following = i + 1 if top.quoted else self._expansion(text, i)
        if top.line is not None:
            read = text[i:following]
            top.line += read.lstrip("\t") if top.strip and not top.line else read
            if len(top.line) > len(top.delimiter):
                top.line = None
        return following

    def _declare_heredoc(self, found: re.Match[str]) -> None:
        word = found.group(2)
        delimiter = re.sub(r"\\(.)|['\"]", r"\1", word, flags=re.DOTALL)
        quoted = delimiter != word
        self.pending.append(
            _Frame(_HEREDOC, delimiter=delimiter, quoted=quoted, strip=bool(found.group(1)))
        )

    def _pop(self) -> None:
        if self.stack.pop().kind == _ARITH:
            self.arithmetic -= 1
        self.previous = "x"  # what closed was part of a word


def reference(place: str, variable: str) -> str:
    if place in (_DOUBLE, _HEREDOC):
        return "${" + variable + "}"
    if place == _SINGLE:
        return f"'\"${variable}\"'"
    if place == _ANSI:
        return f"'\"${variable}\"$'"
    return f'"${variable}"'


def substitute(
    script: str, placeholder: re.Pattern[str], variable: Callable[[re.Match[str]], str]
) -> str:
    """`script` with each match of `placeholder` replaced by a reference to the
    environment variable `variable(match)` names, quoted for where it stands."""
    scanner = _Scanner()
    parts: list[str] = []
    end = 0
    for match in placeholder.finditer(script):
        before = script[end : match.start()]
        scanner.feed(before)
        parts += [before, reference(scanner.place(), variable(match))]
        scanner.feed("x")  # the reference reads as a word, like the value would
        end = match.end()
    parts.append(script[end:])
    return "".join(parts)


def script_index(argv: list[str]) -> int | None:
    """Which element of `argv` a shell runs as a script (`sh -c SCRIPT`, `bash -lc`,
    `env bash -c`, `timeout 5 sh -e -c`...), or None."""
    for start, element in enumerate(argv):
        if element.rsplit("/", 1)[-1] not in SHELLS:
            continue
        command, i = False, start + 1
        while i < len(argv):
            option = argv[i]
            if option in ("-", "--"):
                i += 1
                break
            if option.startswith("--"):
                i += 2 if option in _LONG_OPTION_VALUE else 1
            elif len(option) > 1 and option[0] in "-+":
                command = command or (option[0] == "-" and "c" in option)
                i += 1 + sum(letter in _OPTION_VALUE for letter in option[1:])
            else:
                break
        if command and i < len(argv):
            return i
    return None
