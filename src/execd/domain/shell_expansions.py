"""The shell parser's reading of quotes and expansions (`domain/shell_parse.py` reads
the commands): single and double quotes, `$'...'`, comments, `${ }`, arithmetic,
`[[ ]]`, here-document bodies, and where `$( )` and backquotes begin and end.
"""

from __future__ import annotations

import bisect
import re
from abc import ABC, abstractmethod

from execd.domain.shell_syntax import (
    AFTER_BACKSLASH,
    AFTER_DOLLAR,
    ANSI,
    ARITH,
    ARRAY,
    BACKTICK,
    BRACKET,
    CODE,
    COMMENT,
    COND,
    DOUBLE,
    DQ,
    FRAME_REFUSALS,
    HEREDOC,
    PARAM,
    SCRIPT,
    SINGLE,
    SUBST,
    Context,
    Frame,
    Refusal,
    Site,
    Word,
)

_DOUBLE_PLAIN = re.compile(r"[^\"\\$`{]+")
_BREAK = frozenset(" \t\n;&|<>()")
_VARIABLE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])")


class ExpansionReader(ABC):
    """The state of one parse, its loop over the script, and the readers of quotes and
    expansions; the parser (`Parser`) reads the code between them."""

    def __init__(self, text: str, spans: list[tuple[int, int]]) -> None:
        self.text = text
        self.ends = dict(spans)
        self.starts = sorted(self.ends)
        self.stack: list[Context | Frame] = [Context(SCRIPT, None)]
        self.pending: list[tuple[Frame, Context]] = []  # bodies start at the next line
        self.heredocs = 0  # here-document bodies being read
        self.sites: list[Site] = []
        self.doubt: str | None = None

    def parse(self) -> list[Site]:
        if "\x00" in self.text:
            self._doubt("a NUL character")
        i = 0
        while i < len(self.text):
            i = self._step(i)
        self._end()
        return self.sites

    # The innermost command list, and where a character stands.

    @property
    def context(self) -> Context:
        for item in reversed(self.stack):
            if isinstance(item, Context):
                return item
        raise AssertionError("the script's context is never popped")

    def _step(self, i: int) -> int:
        if i in self.ends:
            return self._site(i, None)
        top = self.stack[-1]
        if (
            self.heredocs
            and self.text[i] == "\n"
            and not (isinstance(top, Frame) and top.kind == HEREDOC)
        ):
            # A shell finds a here-document's end line by line, before any expansion.
            self._doubt("an expansion spanning lines inside a here-document")
        if isinstance(top, Context):
            return self._code(top, i)
        readers = {
            SINGLE: self._single, DQ: self._double, COMMENT: self._comment,
            HEREDOC: self._heredoc, COND: self._cond, ANSI: self._ansi,
        }  # fmt: skip
        return readers.get(top.kind, self._nested)(top, i)

    def _site(self, i: int, refusal: Refusal | None) -> int:
        top = self.stack[-1]
        refusal = refusal or self._frame_refusal()
        if isinstance(top, Context):
            word: Word | None = self._word(top)
            place = CODE
        else:
            word, place = top.word, DOUBLE if top.kind == DQ else CODE
            if top.kind == HEREDOC:
                top.line = None
            top.last = "x"
        if word is not None:
            word.expand(quoted=place == DOUBLE)
            word.loose = True
        self.sites.append(Site(i, self.ends[i], place, word, refusal))
        return self.ends[i]

    def _frame_refusal(self) -> Refusal | None:
        for item in reversed(self.stack):
            if isinstance(item, Frame) and item.kind in FRAME_REFUSALS:
                return FRAME_REFUSALS[item.kind]
        return None

    # The parser's part: code, and the ends of words and command lists.

    @abstractmethod
    def _code(self, ctx: Context, i: int) -> int:
        """Read code at `i` (outside quotes and expansions); where reading goes on."""

    @abstractmethod
    def _word(self, ctx: Context) -> Word:
        """The word being read in `ctx`, started if there is none."""

    @abstractmethod
    def _end_word(self, ctx: Context) -> None:
        """The word being read in `ctx` is complete."""

    @abstractmethod
    def _close(self, ctx: Context) -> None:
        """`ctx`, a command list, ends here."""

    @abstractmethod
    def _end(self) -> None:
        """The script ends here."""

    # Quotes and expansions.

    def _escape(self, i: int, ctx: Context | None) -> int:
        """A backslash in code (`ctx`) or in a frame that honours it."""
        if i + 1 in self.ends:
            return self._site(i + 1, AFTER_BACKSLASH)
        following = self.text[i + 1 : i + 2]
        if following in ("$", "`", "\\", '"') and self._in_backquotes():
            self._doubt("a backslash inside backquotes (write $( ) instead)")
        if following == "\n":
            return i + 2
        top = self.stack[-1]
        if ctx is not None:
            word = self._word(ctx)
            word.add(following, quoted=True)
        elif isinstance(top, Frame) and top.kind == DQ and top.word and top.quoted:
            top.word.add(following if following in '$`"\\' else "\\" + following, quoted=True)
        return i + 2

    def _in_backquotes(self) -> bool:
        return any(isinstance(item, Context) and item.kind == BACKTICK for item in self.stack)

    def _dollar(self, i: int, ctx: Context | None) -> int:
        """A `$` in code (`ctx`), double quotes, a here-document or an expansion."""
        text = self.text
        if i + 1 in self.ends:
            return self._site(i + 1, AFTER_DOLLAR)
        word = self._owner()
        unquoted = ctx is not None
        if text.startswith("$((", i):
            return self._push(Frame(ARITH, word, quoted=False, depth=2), unquoted, i + 3)
        if text.startswith("$(", i):
            return self._open(Context(SUBST, word), word, quoted=not unquoted, end=i + 2)
        if text.startswith("${", i):
            return self._push(Frame(PARAM, word, quoted=False), unquoted, i + 2)
        if text.startswith("$[", i):
            return self._push(Frame(BRACKET, word, quoted=False, depth=1), unquoted, i + 2)
        if unquoted and text.startswith(("$'", '$"'), i):
            kind = ANSI if text[i + 1] == "'" else DQ
            return self._push(Frame(kind, word, quoted=False), False, i + 2)
        variable = _VARIABLE.match(text, i)
        if variable:
            if word is not None:
                word.expand(quoted=not unquoted)
            return variable.end()
        self._add("$", i + 1)
        return i + 1

    def _push(self, frame: Frame, unquoted: bool, end: int) -> int:
        if frame.word is not None:
            frame.word.expand(quoted=not unquoted)
        self.stack.append(frame)
        return end

    def _open(self, context: Context, word: Word | None, quoted: bool, end: int) -> int:
        if word is not None:
            word.expand(quoted)
            word.contexts.append(context)
        self.stack.append(context)
        return end

    def _owner(self) -> Word | None:
        """The word a substitution or an expansion starting here belongs to."""
        top = self.stack[-1]
        return self._word(top) if isinstance(top, Context) else top.word

    def _add(self, text: str, end: int) -> None:
        top = self.stack[-1]
        if isinstance(top, Context):
            self._word(top).add(text, quoted=False)
        elif top.word is not None and top.quoted:
            top.word.add(text, quoted=True)

    def _backtick(self, i: int) -> int:
        top = self.stack[-1]
        if isinstance(top, Context) and top.kind == BACKTICK:
            self._end_word(top)
            self._close(self.context)
            return i + 1
        if self._in_backquotes():
            self._doubt("a backquote inside backquotes (write $( ) instead)")
            return i + 1
        word = self._owner()
        quoted = not isinstance(top, Context)
        return self._open(Context(BACKTICK, word), word, quoted=quoted, end=i + 1)

    def _single(self, frame: Frame, i: int) -> int:
        end = self.text.find("'", i)
        end = len(self.text) if end < 0 else end
        following = self._next_site(i)
        if "`" in self.text[i:end] and self._in_backquotes():
            self._doubt("a backquote in quotes inside backquotes (write $( ) instead)")
        if following < end:
            end = following
        elif end < len(self.text):
            self.stack.pop()
            self._note_text(frame, self.text[i:end])
            return end + 1
        self._note_text(frame, self.text[i:end])
        return end

    def _note_text(self, frame: Frame, text: str) -> None:
        if frame.word is not None and frame.quoted:
            frame.word.add(text, quoted=True)

    def _next_site(self, i: int) -> int:
        at = bisect.bisect_left(self.starts, i)
        return self.starts[at] if at < len(self.starts) else len(self.text)

    def _double(self, frame: Frame, i: int) -> int:
        char = self.text[i]
        if char == '"':
            self.stack.pop()
            return i + 1
        if (following := self._expansion(i)) is not None:
            return following
        run = _DOUBLE_PLAIN.match(self.text, i)
        end = run.end() if run else i + 1
        self._note_text(frame, self.text[i:end])
        return end

    def _expansion(self, i: int) -> int | None:
        """Where a backslash, `$` or backquote at `i` ends, in quotes or an expansion
        that honours them; None for any other character."""
        char = self.text[i]
        if char == "\\":
            return self._escape(i, None)
        if char == "$":
            return self._dollar(i, None)
        if char == "`":
            return self._backtick(i)
        return None

    def _ansi(self, frame: Frame, i: int) -> int:
        if self.text.startswith("\\'", i):
            self._doubt("$'...' holding \\', which sh and bash end at different quotes")
        if self.text[i] == "\\":
            return self._escape(i, None)
        if self.text[i] == "'":
            self.stack.pop()
        elif self.text[i] == "`" and self._in_backquotes():
            self._doubt("a backquote in quotes inside backquotes (write $( ) instead)")
        return i + 1

    def _comment(self, frame: Frame, i: int) -> int:
        end = self.text.find("\n", i)
        end = len(self.text) if end < 0 else end
        if self._in_backquotes():  # the shell cuts backquoted text before reading it
            backquote = self.text.find("`", i, end)
            end = end if backquote < 0 else backquote
        if end == i:
            self.stack.pop()  # the newline also ends the line of the code around it
            return i
        return min(end, self._next_site(i))

    def _nested(self, frame: Frame, i: int) -> int:
        """Inside ${ }, arithmetic or an array's ( ): only their end and what nests."""
        char = self.text[i]
        if (following := self._expansion(i)) is not None:
            return following
        if char == "'" and frame.kind == PARAM and self._in_double_quotes():
            self._doubt("a single quote inside ${...} inside double quotes")
        elif char in "'\"":
            self.stack.append(Frame(SINGLE if char == "'" else DQ, frame.word, quoted=False))
        elif char == "#" and frame.kind == ARRAY:
            self._doubt("a # inside an array assignment, where it may start a comment")
        elif frame.kind == PARAM and char == "}":
            self.stack.pop()
        elif frame.kind != PARAM and char in "()[]":
            opening, closing = ("[", "]") if frame.kind == BRACKET else ("(", ")")
            frame.depth += (char == opening) - (char == closing)
            if frame.depth == 0:
                self.stack.pop()
        return i + 1

    def _in_double_quotes(self) -> bool:
        for item in reversed(self.stack[:-1]):
            if isinstance(item, Context):
                return False
            if item.kind == DQ:
                return True
        return False

    def _cond(self, frame: Frame, i: int) -> int:
        char = self.text[i]
        if char in _BREAK:
            if frame.last == "]]":
                self.stack.pop()
                return i
            frame.last = ""
            return i + 1
        frame.last = frame.last + char if char not in "\\$`'\"" else "x"
        if char in "'\"":
            self.stack.append(Frame(SINGLE if char == "'" else DQ, frame.word, quoted=False))
            return i + 1
        following = self._expansion(i)
        return i + 1 if following is None else following

    def _heredoc(self, frame: Frame, i: int) -> int:
        char = self.text[i]
        if char == "\n":
            ended = frame.line == frame.delimiter
            frame.line = ""
            if ended:
                self.stack.pop()
                self.heredocs -= 1
            return i + 1
        expanded = None if frame.literal else self._expansion(i)
        following = i + 1 if expanded is None else expanded
        if frame.line is not None and self.stack[-1] is frame:
            read = self.text[i:following]
            frame.line += read.lstrip("\t") if frame.strip and not frame.line else read
            if len(frame.line) > len(frame.delimiter):
                frame.line = None
        elif self.stack[-1] is not frame:
            frame.line = None
        return following

    def _doubt(self, reason: str) -> None:
        self.doubt = self.doubt or reason
