"""What the shell parser (`domain/shell_parse.py`) makes of a script: the kinds of
command lists and frames it keeps on its stack, the words and commands it finds, where
each placeholder stands, and why a quote or an expansion around one refuses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

from execd.domain.shell_layout import Role, Slot, layout

EXPANSION = "\x00"  # stands in a word's text for what an expansion gives

# Where a placeholder stands when it is allowed: its reference is quoted for it.
CODE, DOUBLE = "code", "double"
# Command lists.
SCRIPT, SUBST, BACKTICK, PROCSUB, SUBSHELL, GROUP, IF, LOOP, FOR, CASE = (
    "script", "$(", "`", "<(", "(", "{", "if", "while", "for", "case",
)  # fmt: skip
# Frames: quotes and expansions.
SINGLE, ANSI, DQ, COMMENT, HEREDOC = "'", "$'", '"', "#", "<<"
PARAM, ARITH, BRACKET, COND, ARRAY = "${", "$((", "$[", "[[", "=("
# States of a context, besides reading commands.
FOR_HEADER, CASE_SUBJECT, CASE_PATTERN, FUNCTION_NAME = "for", "subject", "pattern", "name"


class Refusal(NamedTuple):
    where: str  # where the placeholder stands, e.g. "inside single quotes"
    why: str


_QUOTES_INSTEAD = "put the placeholder outside quotes or inside double quotes"
_EVALUATED = (
    "the shell evaluates the value as an expression, and an array subscript in it runs commands"
)
FRAME_REFUSALS = {
    SINGLE: Refusal(
        "inside single quotes",
        "the value could only go in by closing the quote, and single-quoted text is how a "
        f"script hands code to another program; {_QUOTES_INSTEAD}",
    ),
    ANSI: Refusal("inside $'...'", _QUOTES_INSTEAD),
    HEREDOC: Refusal(
        "in a here-document",
        "its text goes to a program's input, which may read it as code; write the value "
        "with printf '%s\\n' instead",
    ),
    ARITH: Refusal("in arithmetic ($(( )) or (( )))", _EVALUATED),
    BRACKET: Refusal("in arithmetic ($[ ])", _EVALUATED),
    PARAM: Refusal(
        "inside ${...}",
        "the shell evaluates offsets, lengths and subscripts there as arithmetic; put the "
        "placeholder outside the braces",
    ),
    COND: Refusal(
        "inside [[ ]]",
        "bash evaluates the operands of -eq, -lt, -v and the like as arithmetic; use [ ] "
        "with the placeholder in double quotes",
    ),
    ARRAY: Refusal(
        "in an array assignment",
        "the shell may evaluate an element or a subscript as arithmetic",
    ),
}
AFTER_DOLLAR = Refusal(
    "right after $", "the shell would read the two together; separate them or quote the $"
)
AFTER_BACKSLASH = Refusal(
    "right after a backslash", "the backslash would escape the quote execd puts around the value"
)


_ARGUMENT = Slot(Role.ARGUMENT)


@dataclass(eq=False)
class Word:
    command: Command
    role: Role | None = None  # fixed by the grammar; otherwise by the command's layout
    redirect: bool = False
    text: str = ""  # after quote removal; EXPANSION for each expansion
    unquoted: str = ""  # the characters that stood outside quotes, for patterns
    raw: str | None = ""  # the unquoted plain beginning, until a quote or expansion
    loose: bool = False  # an unquoted expansion or a placeholder: split, globbed, unknown
    assignment: bool = False
    contexts: list[Context] = field(default_factory=list)
    slot: Slot = _ARGUMENT

    @property
    def plain(self) -> bool:
        return not self.loose and not _is_pattern(self.unquoted)

    @property
    def literal(self) -> str | None:
        return self.text if self.plain and EXPANSION not in self.text else None

    @property
    def first(self) -> str:
        first = self.text[:1]
        return "" if first == EXPANSION or _is_pattern(self.unquoted) else first

    @property
    def name(self) -> str | None:
        base = self.text.rsplit("/", 1)[-1]
        return base if self.plain and base and EXPANSION not in base else None

    def add(self, text: str, quoted: bool) -> None:
        self.text += text
        if quoted:
            self.raw = None
            self.unquoted += "\x01" * len(text)
        else:
            self.unquoted += text
            if self.raw is not None:
                self.raw += text

    def expand(self, quoted: bool) -> None:
        self.text += EXPANSION
        self.raw = None
        self.loose = self.loose or not quoted


@dataclass(eq=False)
class Command:
    context: Context
    pipeline: list[Command]
    words: list[Word] = field(default_factory=list)
    body: Context | None = None  # a compound command's
    label: str = ""  # a compound command's, for messages: "a while loop"
    reads_code: str | None = None  # why a value among its arguments could be code
    input_code: str | None = None  # why a value in its input could be

    def lay_out(self) -> None:
        """Give each word its slot and say whether the command reads code: by the
        grammar in a compound command or a function's name, else by its program."""
        if self.body is not None or any(w.role for w in self.words):
            for word in self.words:
                role = word.role or (Role.REDIRECT if word.redirect else Role.ARGUMENT)
                word.slot = Slot(role, self.label)
            if self.body is not None:
                self.reads_code = self.body.reads_code
                self.input_code = self.body.input_code
        else:
            found = layout(self.words)
            for word, slot in zip(self.words, found.slots, strict=True):
                word.slot = slot
            self.reads_code, self.input_code = found.reads_code, found.input_code
        for word in self.words:
            for context in word.contexts:
                if context.reads_code:  # `tee >(sh)` hands its input on, too
                    nested = f"{context.reads_code} (in a substitution of the command)"
                    self.reads_code = self.reads_code or nested
                    self.input_code = self.input_code or nested


@dataclass(eq=False)
class Context:
    kind: str
    owner: Word | Command | None  # the word holding a substitution; a compound command
    command: Command | None = None
    word: Word | None = None
    pipeline: list[Command] | None = None
    joined: bool = False  # after |, && or ||: a newline continues
    redirect: bool = False  # the next word is a redirection's target
    state: str = ""
    fresh: bool = False  # a case pattern has no word yet
    function: bool = False  # after `function NAME`: `()` may follow
    reads_code: str | None = None  # why any command in it reads code
    input_code: str | None = None  # why any command in it reads code from its input


@dataclass(eq=False)
class Frame:
    kind: str
    word: Word | None
    quoted: bool = True  # whether its text is added to the word as quoted text
    depth: int = 0  # open parentheses or brackets
    delimiter: str = ""  # a here-document's
    literal: bool = False  # a here-document whose delimiter is quoted: nothing expands
    strip: bool = False  # `<<-`: leading tabs go before the delimiter is compared
    line: str | None = ""  # a here-document's current line; None: not the delimiter
    last: str = ""  # inside [[ ]]: the current word, to find `]]`


@dataclass(eq=False)
class Site:
    start: int
    end: int
    place: str
    word: Word | None
    refusal: Refusal | None


def _is_pattern(unquoted: str) -> bool:
    """Whether unquoted text may expand to other words: a glob, or bash's braces."""
    if "*" in unquoted or "?" in unquoted:
        return True
    bracket, brace = unquoted.find("["), unquoted.find("{")
    if bracket >= 0 and "]" in unquoted[bracket:]:
        return True
    closing = unquoted.rfind("}")
    inside = unquoted[brace:closing] if 0 <= brace < closing else ""
    return "," in inside or ".." in inside
