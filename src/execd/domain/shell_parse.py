"""Reads a shell script far enough to say where each placeholder stands: in which
quotes, in which word of which command, in which pipeline, and inside which
substitutions, arithmetic, `${...}`, `[[ ]]` or here-documents.

It follows the POSIX shell grammar with bash's additions (`[[ ]]`, `(( ))`, `$'...'`,
process substitution, arrays) over one pass with a stack: quotes and expansions are
frames, command lists (the script, `$( )`, backticks, `<( )`, subshells, groups and
compound commands) are contexts with their commands and pipelines. Where it cannot be
sure how a shell reads the text (an unexpected `)`, a backquote inside backquotes, a
script that ends inside quotes) it records a doubt, and every placeholder is refused.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import NamedTuple

from execd.domain.shell_programs import Role, Slot, layout

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

_CLOSERS = {"fi": (IF,), "done": (LOOP, FOR), "}": (GROUP,), "esac": (CASE,)}
_SEPARATORS = {"then": (IF,), "elif": (IF,), "else": (IF,), "do": (LOOP,)}
_OPENERS = {"if": IF, "while": LOOP, "until": LOOP, "for": FOR, "select": FOR, "case": CASE}
_LABELS = {
    "if": "an if command", "while": "a while loop", "until": "an until loop",
    "for": "a for loop", "select": "a select loop", "case": "a case command",
    "{": "a { } group", "(": "a ( ) subshell",
}  # fmt: skip
_PLAIN = re.compile(r"[A-Za-z0-9_./:,+%@^!-]+")
_DOUBLE_PLAIN = re.compile(r"[^\"\\$`{]+")
_BREAK = frozenset(" \t\n;&|<>()")
_OPERATOR = re.compile(r";;&|;;|;&|;|&&|&|\|\||\|&|\|")
_REDIRECT = re.compile(r"&>>|&>|<<<|<>|<&|>&|>>|>\||<|>")
_HEREDOC_START = re.compile(
    r"""<<(?!<)(-?)[ \t]*((?:[^\s;&|()<>'"\\]|\\.|'[^']*'|"[^"\\]*")+)""", re.DOTALL
)
_FUNCTION_PARENS = re.compile(r"\([ \t]*\)")
_ASSIGNED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?")
_IO_NUMBER = re.compile(r"[0-9]+|\{[A-Za-z_][A-Za-z0-9_]*\}")
_VARIABLE = re.compile(r"\$(?:[A-Za-z_][A-Za-z0-9_]*|[0-9@*#?$!-])")


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


class Parser:
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

    # Commands: words, operators, redirections, keywords.

    def _code(self, ctx: Context, i: int) -> int:
        text, char = self.text, self.text[i]
        if char in " \t":
            self._end_word(ctx)
            return i + 1
        if char == "\n":
            return self._newline(ctx, i)
        if char == "\\":
            return self._escape(i, ctx)
        if char == "#" and ctx.word is None:
            self.stack.append(Frame(COMMENT, None))
            return i + 1
        if char in "'\"":
            word = self._word(ctx)
            word.raw = None
            self.stack.append(Frame(SINGLE if char == "'" else DQ, word))
            return i + 1
        if char == "$":
            return self._dollar(i, ctx)
        if char == "`":
            return self._backtick(i)
        if char in ";&|" and not text.startswith("&>", i):
            return self._operator(ctx, i)
        if char in "<>&":
            return self._redirect(ctx, i)
        if char == "(":
            return self._open_parenthesis(ctx, i)
        if char == ")":
            self._end_word(ctx)
            return self._close_parenthesis(self.context, i)
        word = self._word(ctx)
        run = _PLAIN.match(text, i)
        end = run.end() if run else i + 1
        if char == "=" and not word.assignment:
            word.assignment = self._assigns(ctx, word)
        word.add(text[i:end], quoted=False)
        return end

    def _word(self, ctx: Context) -> Word:
        if ctx.word is not None:
            return ctx.word
        if ctx.state in (FOR_HEADER, CASE_SUBJECT, CASE_PATTERN):
            owner = ctx.owner
            assert isinstance(owner, Command)
            word = Word(owner, role=Role.LOOP if ctx.state == FOR_HEADER else Role.DATA)
            owner.words.append(word)
        else:
            command = self._command(ctx)
            word = Word(command, redirect=ctx.redirect)
            if ctx.state == FUNCTION_NAME:
                word.role = Role.NAME
            command.words.append(word)
            ctx.redirect = False
        ctx.word = word
        return word

    def _command(self, ctx: Context) -> Command:
        if ctx.command is None:
            pipeline = ctx.pipeline if ctx.pipeline is not None else []
            ctx.command = Command(ctx, pipeline)
            pipeline.append(ctx.command)
            ctx.pipeline = pipeline
            ctx.joined = False
        return ctx.command

    def _assigns(self, ctx: Context, word: Word) -> bool:
        """Whether the `=` about to be added makes `word` an assignment: a name before
        it, and nothing but assignments and redirections before the word."""
        if word.raw is None or word.redirect or ctx.state or not _ASSIGNED_NAME.fullmatch(word.raw):
            return False
        others = [w for w in word.command.words if w is not word]
        return word.command.body is None and all(w.assignment or w.redirect for w in others)

    def _end_word(self, ctx: Context) -> None:
        word, ctx.word = ctx.word, None
        if word is None:
            return
        keyword = word.raw if word.raw == word.text and not word.assignment else None
        if word.role is Role.NAME:
            self._end_list(ctx)
            ctx.state, ctx.function = "", True
        elif ctx.state == FOR_HEADER and keyword == "do":
            word.command.words.remove(word)
            ctx.state = ""
        elif ctx.state == CASE_SUBJECT and keyword == "in" and len(word.command.words) > 1:
            word.command.words.remove(word)
            ctx.state, ctx.fresh = CASE_PATTERN, True
        elif ctx.state == CASE_PATTERN:
            if keyword == "esac" and ctx.fresh:
                word.command.words.remove(word)
                self._close(ctx)
            ctx.fresh = False
        elif not ctx.state and keyword and word.command.words == [word] and not word.redirect:
            self._keyword(ctx, word, keyword)

    def _keyword(self, ctx: Context, word: Word, keyword: str) -> None:
        command = word.command
        if command.body is not None:
            return
        command.label = _LABELS.get(keyword, "")
        if keyword in _OPENERS:
            command.words.clear()
            kind = _OPENERS[keyword]
            body = Context(kind, command)
            body.state = {FOR: FOR_HEADER, CASE: CASE_SUBJECT}.get(kind, "")
            command.body = body
            self.stack.append(body)
        elif keyword == "{":
            command.words.clear()
            command.body = Context(GROUP, command)
            self.stack.append(command.body)
        elif keyword == "!":
            command.words.clear()
        elif keyword == "function":
            command.words.clear()
            ctx.state = FUNCTION_NAME
        elif keyword == "[[":
            self.stack.append(Frame(COND, word))
        elif keyword in _SEPARATORS or keyword in _CLOSERS:
            self._discard(ctx)
            kinds = _SEPARATORS.get(keyword) or _CLOSERS[keyword]
            if keyword == "do" and ctx.kind == FOR:
                kinds = (FOR,)
            if ctx.kind not in kinds:
                self._doubt(f"{keyword} outside its compound command")
            elif keyword in _CLOSERS:
                self._close(ctx)
            else:
                self._end_list(ctx)

    def _discard(self, ctx: Context) -> None:
        command = ctx.command
        if command is not None:
            command.pipeline.remove(command)
            ctx.command = None

    def _newline(self, ctx: Context, i: int) -> int:
        self._end_word(ctx)
        ctx = self.context  # a keyword may have opened or closed one
        if ctx.state in (FOR_HEADER, CASE_SUBJECT, CASE_PATTERN):
            pass
        elif not (ctx.command is None and ctx.joined):
            self._end_list(ctx)
        if self.pending:
            self.stack.extend(frame for frame, _ in reversed(self.pending))
            self.heredocs += len(self.pending)
            self.pending = []
        return i + 1

    def _operator(self, ctx: Context, i: int) -> int:
        found = _OPERATOR.match(self.text, i)
        assert found is not None
        operator = found.group()
        self._end_word(ctx)
        ctx = self.context
        if ctx.state == CASE_PATTERN and operator == "|":
            return found.end()
        if ctx.state == FOR_HEADER and operator == ";":
            return found.end()
        if operator in (";;", ";&", ";;&"):
            self._end_list(ctx)
            if ctx.kind != CASE or ctx.state:
                self._doubt(f"{operator} outside a case")
            else:
                ctx.state, ctx.fresh = CASE_PATTERN, True
        elif operator in ("|", "|&"):
            if ctx.command is None:
                self._doubt(f"{operator} without a command before it")
            self._finish(ctx)
            ctx.joined = True
        else:
            self._end_list(ctx)
            ctx.joined = operator in ("&&", "||")
        return found.end()

    def _redirect(self, ctx: Context, i: int) -> int:
        text = self.text
        if text.startswith(("<(", ">("), i):
            self._end_word(ctx)
            word = self._word(ctx)
            return self._open(Context(PROCSUB, word), word, quoted=False, end=i + 2)
        heredoc = _HEREDOC_START.match(text, i)
        found = heredoc or _REDIRECT.match(text, i)
        assert found is not None
        if ctx.state or ctx.redirect:
            self._doubt(f"{found.group()} where no redirection can stand")
        number = ctx.word
        if number is not None and number.raw == number.text and _IO_NUMBER.fullmatch(number.text):
            number.command.words.remove(number)
            ctx.word = None
        self._end_word(ctx)
        self._command(self.context)
        if heredoc is None:
            self.context.redirect = True
            return found.end()
        return self._declare_heredoc(heredoc)

    def _declare_heredoc(self, found: re.Match[str]) -> int:
        end = found.end()
        inside = self.starts[bisect.bisect_left(self.starts, found.start()) :]
        for start in inside:
            if start >= end:
                break
            self.sites.append(Site(start, self.ends[start], CODE, None, FRAME_REFUSALS[HEREDOC]))
            end = max(end, self.ends[start])
        if self._in_backquotes():
            self._doubt("a here-document inside backquotes (write $( ) instead)")
        word = found.group(2)
        delimiter = re.sub(r"\\(.)|['\"]", r"\1", word, flags=re.DOTALL)
        detached = Word(Command(Context(SCRIPT, None), []))
        frame = Frame(HEREDOC, detached, quoted=False, delimiter=delimiter,
                      literal=delimiter != word, strip=bool(found.group(1)))  # fmt: skip
        self.pending.append((frame, self.context))
        return end

    def _open_parenthesis(self, ctx: Context, i: int) -> int:
        text, word = self.text, ctx.word
        if word is not None and word.assignment and word.raw is not None and word.raw.endswith("="):
            self.stack.append(Frame(ARRAY, word, quoted=False, depth=1))
            return i + 1
        self._end_word(ctx)
        ctx = self.context
        if ctx.state == CASE_PATTERN and ctx.fresh:
            return i + 1
        parens = _FUNCTION_PARENS.match(text, i)
        command = ctx.command
        if parens and ctx.function:
            ctx.function = False
            return parens.end()
        if parens and not ctx.state and command and _names_function(command):
            command.words[0].role = Role.NAME
            self._end_list(ctx)
            return parens.end()
        if ctx.state == FOR_HEADER and text.startswith("((", i):
            self.stack.append(Frame(ARITH, self._word(ctx), quoted=False, depth=2))
            return i + 2
        if ctx.state or (command is not None and (command.words or command.body)):
            self._doubt("an unexpected (")
            return i + 1
        if text.startswith("((", i):
            word = self._word(ctx)
            word.add("((", quoted=False)
            self.stack.append(Frame(ARITH, word, quoted=False, depth=2))
            return i + 2
        command = self._command(ctx)
        command.label = _LABELS["("]
        command.body = Context(SUBSHELL, command)
        self.stack.append(command.body)
        return i + 1

    def _close_parenthesis(self, ctx: Context, i: int) -> int:
        if ctx.kind in (SUBST, PROCSUB, SUBSHELL):
            self._close(ctx)
        elif ctx.kind == CASE and ctx.state == CASE_PATTERN and not ctx.fresh:
            ctx.state = ""
        else:
            self._doubt("an unexpected )")
        return i + 1

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

    # Ends of commands and of command lists.

    def _finish(self, ctx: Context) -> None:
        command, ctx.command = ctx.command, None
        if ctx.redirect:
            self._doubt("a redirection without its target")
            ctx.redirect = False
        if command is None:
            return
        if command.body is not None or any(w.role for w in command.words):
            for word in command.words:
                role = word.role or (Role.REDIRECT if word.redirect else Role.ARGUMENT)
                word.slot = Slot(role, command.label)
            if command.body is not None:
                command.reads_code = command.body.reads_code
                command.input_code = command.body.input_code
        else:
            found = layout(command.words)
            for word, slot in zip(command.words, found.slots, strict=True):
                word.slot = slot
            command.reads_code, command.input_code = found.reads_code, found.input_code
        for word in command.words:
            for context in word.contexts:
                if context.reads_code:  # `tee >(sh)` hands its input on, too
                    nested = f"{context.reads_code} (in a substitution of the command)"
                    command.reads_code = command.reads_code or nested
                    command.input_code = command.input_code or nested
        if command.reads_code and command.body is None and self._redirects_script(command):
            self._doubt("exec sends the script's output to a program that reads code")
        if any(w.slot.role is Role.PROGRAM and w.name == "alias" for w in command.words):
            self._doubt("an alias, which changes how the shell reads later lines")
        ctx.reads_code = ctx.reads_code or command.reads_code
        ctx.input_code = ctx.input_code or command.input_code

    def _redirects_script(self, command: Command) -> bool:
        words = [w for w in command.words if not w.redirect]
        return len(words) == 1 and words[0].literal == "exec"

    def _end_list(self, ctx: Context) -> None:
        self._finish(ctx)
        ctx.pipeline, ctx.joined = None, False

    def _close(self, ctx: Context) -> None:
        self._end_word(ctx)
        self._end_list(ctx)
        if any(context is ctx for _, context in self.pending):
            self._doubt("a here-document whose body comes after the end of its command list")
        if self.stack[-1] is not ctx:
            self._doubt(f"{ctx.kind} closed inside quotes")
            return
        self.stack.pop()

    def _end(self) -> None:
        top = self.stack[-1]
        if isinstance(top, Frame) and top.kind == COND and top.last == "]]":
            self.stack.pop()
        while isinstance(self.stack[-1], Frame) and self.stack[-1].kind in (COMMENT, HEREDOC):
            self.stack.pop()  # a here-document may end with the script
            self.heredocs = 0
        if self.pending:
            self._doubt("a here-document without a body")
        script = self.stack[0]
        assert isinstance(script, Context)
        self._end_word(self.context)
        if len(self.stack) > 1:
            self._doubt(f"the script ends inside {_describe(self.stack[-1])}")
        self._end_list(script)

    def _doubt(self, reason: str) -> None:
        self.doubt = self.doubt or reason


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


def _names_function(command: Command) -> bool:
    """`name ()`: the command so far is one plain word."""
    if command.body is not None or len(command.words) != 1:
        return False
    word = command.words[0]
    return not word.assignment and not word.redirect and word.literal is not None


def _describe(item: Context | Frame) -> str:
    return f"an unclosed {item.kind}"
