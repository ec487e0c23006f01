"""Reads a shell script far enough to say where each placeholder stands: in which
quotes, in which word of which command, in which pipeline, and inside which
substitutions, arithmetic, `${...}`, `[[ ]]` or here-documents.

It follows the POSIX shell grammar with bash's additions (`[[ ]]`, `(( ))`, `$'...'`,
process substitution, arrays) over one pass with a stack: quotes and expansions are
frames, command lists (the script, `$( )`, backticks, `<( )`, subshells, groups and
compound commands) are contexts with their commands and pipelines. Where it cannot be
sure how a shell reads the text (an unexpected `)`, a backquote inside backquotes, a
script that ends inside quotes) it records a doubt, and every placeholder is refused.

This module reads the commands; `domain/shell_expansions.py` reads the quotes and
expansions, and `domain/shell_syntax.py` holds what the parse records.
"""

from __future__ import annotations

import bisect
import re

from execd.domain.shell_expansions import ExpansionReader
from execd.domain.shell_layout import Role
from execd.domain.shell_syntax import (
    ARITH,
    ARRAY,
    CASE,
    CASE_PATTERN,
    CASE_SUBJECT,
    CODE,
    COMMENT,
    COND,
    DQ,
    FOR,
    FOR_HEADER,
    FRAME_REFUSALS,
    FUNCTION_NAME,
    GROUP,
    HEREDOC,
    IF,
    LOOP,
    PROCSUB,
    SCRIPT,
    SINGLE,
    SUBSHELL,
    SUBST,
    Command,
    Context,
    Frame,
    Site,
    Word,
)

_CLOSERS = {"fi": (IF,), "done": (LOOP, FOR), "}": (GROUP,), "esac": (CASE,)}
_SEPARATORS = {"then": (IF,), "elif": (IF,), "else": (IF,), "do": (LOOP,)}
_OPENERS = {"if": IF, "while": LOOP, "until": LOOP, "for": FOR, "select": FOR, "case": CASE}
_LABELS = {
    "if": "an if command", "while": "a while loop", "until": "an until loop",
    "for": "a for loop", "select": "a select loop", "case": "a case command",
    "{": "a { } group", "(": "a ( ) subshell",
}  # fmt: skip
_PLAIN = re.compile(r"[A-Za-z0-9_./:,+%@^!-]+")
_OPERATOR = re.compile(r";;&|;;|;&|;|&&|&|\|\||\|&|\|")
_REDIRECT = re.compile(r"&>>|&>|<<<|<>|<&|>&|>>|>\||<|>")
_HEREDOC_START = re.compile(
    r"""<<(?!<)(-?)[ \t]*((?:[^\s;&|()<>'"\\]|\\.|'[^']*'|"[^"\\]*")+)""", re.DOTALL
)
_FUNCTION_PARENS = re.compile(r"\([ \t]*\)")
_ASSIGNED_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\[[^\]]*\])?\+?")
_IO_NUMBER = re.compile(r"[0-9]+|\{[A-Za-z_][A-Za-z0-9_]*\}")


class Parser(ExpansionReader):
    """Reads commands: words, operators, redirections, keywords and the ends of
    commands and command lists (quotes and expansions: `ExpansionReader`)."""

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

    # Ends of commands and of command lists.

    def _finish(self, ctx: Context) -> None:
        command, ctx.command = ctx.command, None
        if ctx.redirect:
            self._doubt("a redirection without its target")
            ctx.redirect = False
        if command is None:
            return
        command.lay_out()
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


def _names_function(command: Command) -> bool:
    """`name ()`: the command so far is one plain word."""
    if command.body is not None or len(command.words) != 1:
        return False
    word = command.words[0]
    return not word.assignment and not word.redirect and word.literal is not None


def _describe(item: Context | Frame) -> str:
    return f"an unclosed {item.kind}"
