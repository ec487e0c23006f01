"""What the words of one shell command are to its program: which programs read code
from their arguments, which wrappers run another program, and how a shell takes its
options, its script and its positional parameters. `domain/shell.py` refuses a
placeholder wherever this says a value could be read as code.

This is the one list of such programs (docs/security.md shows it).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Protocol

# Shells of the sh family: execd knows their options, where their script is, and that
# the words after it are positional parameters.
SHELLS = frozenset(
    {"sh", "bash", "dash", "zsh", "ksh", "mksh", "lksh", "oksh", "pdksh", "ash", "yash",
     "posh", "rbash"}
)  # fmt: skip
# Programs that read code from their arguments or their input, or build a command
# line from them (run through a shell, on another machine or as another user).
CODE_READERS = frozenset(
    {
        # other shells
        "fish", "csh", "tcsh", "rc", "es", "elvish", "nu", "xonsh", "pwsh", "powershell",
        "osh", "ysh",
        # interpreters and languages with an eval-like argument
        "python", "pypy", "perl", "ruby", "irb", "jruby", "node", "nodejs", "deno", "bun",
        "php", "lua", "luajit", "tclsh", "wish", "expect", "Rscript", "julia", "osascript",
        "guile", "racket", "sbcl", "clisp", "awk", "gawk", "mawk", "nawk", "busybox-awk",
        "sed", "gsed", "ed", "ex", "vi", "vim", "nvim", "emacs", "m4", "dc", "bc",
        "jshell", "groovy", "scala", "kotlin", "erl", "escript", "elixir", "iex", "ghci",
        "runghc", "runhaskell", "ocaml", "swift", "gdb", "lldb", "make", "gmake", "bmake",
        "jq", "gojq", "yq",
        # database clients: their arguments and input are queries
        "psql", "mysql", "mariadb", "sqlite", "duckdb", "sqlcmd", "mongo", "mongosh",
        "cqlsh", "clickhouse", "clickhouse-client",
        # programs that run commands made from their arguments
        "ssh", "scp", "sftp", "rsh", "rcp", "rsync", "mosh", "su", "sudo", "doas",
        "runuser", "pkexec", "sg", "newgrp", "xargs", "parallel", "watch", "flock",
        "script", "tmux", "screen", "at", "batch", "unbuffer", "chroot", "nsenter",
        "unshare", "setpriv", "capsh", "systemd-run", "strace", "ltrace", "valgrind",
        "perf", "firejail", "bwrap", "fd", "fdfind", "entr", "taskset", "chrt", "numactl",
        "prlimit", "fakeroot", "faketime", "proxychains", "torsocks", "xvfb-run", "dtach",
    }
)  # fmt: skip
# Shell builtins that evaluate their arguments as code, arithmetic or variable names
# (a name with a subscript, `a[$(id)]`, runs a command). `((` and `[[` stand for those
# commands: placeholders inside them are refused before this list is asked.
BUILTINS = frozenset(
    {"eval", "source", ".", "trap", "alias", "bind", "complete", "compgen", "fc", "let",
     "declare", "typeset", "local", "readonly", "export", "read", "unset", "mapfile",
     "readarray", "getopts", "coproc", "enable", "((", "[["}
)  # fmt: skip
_ASSIGNERS = frozenset({"read", "mapfile", "readarray"})
# Of the above, the programs whose input is data when their program (an argument) has
# no way to run it: no `e` in sed's script (the e command, s///e), no system(), pipe,
# getline or indirect call in awk's, and none read from a file. jq's input is data.
_SED = frozenset({"sed", "gsed"})
_AWK = frozenset({"awk", "gawk", "mawk", "nawk", "busybox-awk"})
_JSON = frozenset({"jq", "gojq", "yq"})
_AWK_RUNS = ("system", "|", "getline", "@")
_PROGRAM_FILES = frozenset({"-f", "--file"})
_AWK_FILES = _PROGRAM_FILES | {"-i", "--include", "-l", "--load", "-E", "--exec"}
# Builtins that read code or variables from their input.
_INPUT_BUILTINS = _ASSIGNERS | {"source", "."}
# Programs with options that name a command to run (tar's --to-command=, git's
# --upload-pack= and -c core.sshCommand=, less's +!cmd): a value that begins one of
# their arguments, before `--`, could be such an option.
OPTION_RUNNERS = frozenset(
    {"git", "tar", "gtar", "bsdtar", "wget", "man", "less", "more", "zip", "sendmail",
     "exim", "mail", "mailx", "mutt", "gpg"}
)  # fmt: skip
# Words that make any command run another command (find's and fd's).
CODE_WORDS = frozenset({"-exec", "-execdir", "-ok", "-okdir", "--exec", "--exec-batch"})


@dataclass(frozen=True)
class Wrapper:
    """A program that runs the program named after its own options and operands."""

    value_options: frozenset[str] = frozenset()  # options that take the next word
    operands: int = 0  # words after the options and before the program (timeout's duration)


WRAPPERS = {
    "nice": Wrapper(frozenset({"-n", "--adjustment"})),
    "nohup": Wrapper(),
    "timeout": Wrapper(frozenset({"-s", "--signal", "-k", "--kill-after"}), operands=1),
    "setsid": Wrapper(),
    "stdbuf": Wrapper(frozenset({"-i", "-o", "-e", "--input", "--output", "--error"})),
    "time": Wrapper(frozenset({"-f", "--format", "-o", "--output"})),
    "command": Wrapper(),
    "builtin": Wrapper(),
    "exec": Wrapper(frozenset({"-a"})),
    "ionice": Wrapper(frozenset({"-c", "--class", "-n", "--classdata"})),
    "busybox": Wrapper(),
    "toybox": Wrapper(),
}
_ENV = Wrapper(frozenset({"-u", "--unset", "-C", "--chdir", "-P", "-a", "--argv0"}))
# Shell options that take the next word as their value.
_SHELL_VALUE_LETTERS = frozenset("oO")
_SHELL_VALUE_OPTIONS = frozenset({"--rcfile", "--init-file"})
_VERSION = re.compile(r"[0-9.]+$")
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


class WordLike(Protocol):
    @property
    def literal(self) -> str | None:
        """The word's text when it is plain text: no expansion, pattern or placeholder."""

    @property
    def name(self) -> str | None:
        """The last part of the word's path when that part is plain text."""

    @property
    def first(self) -> str:
        """The word's first character when it is plain text, else "" (a value or an
        expansion decides it)."""

    @property
    def assignment(self) -> bool: ...

    @property
    def redirect(self) -> bool: ...


@dataclass
class Layout:
    slots: list[Slot]
    reads_code: str | None  # why a value among its arguments could be read as code
    input_code: str | None = None  # why a value in its standard input could be
    script: int | None = None  # the word a shell runs as its script (-c)


def program_name(path: str) -> str:
    """`/usr/bin/python3.11` -> `python`: a program's name without directory or version."""
    base = path.rsplit("/", 1)[-1]
    return _VERSION.sub("", base) or base


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
        wrapper = _ENV if base == "env" else WRAPPERS.get(base)
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
        result.reads_code = _reads_code(base, name, arguments)
        reads_input = base in _INPUT_BUILTINS or (
            base in CODE_READERS and not _input_is_data(base, arguments)
        )
        result.input_code = result.reads_code if reads_input else None
        if base in OPTION_RUNNERS:
            _mark_leading(words, rest, slots, name)
    zero = _zero(result, rest)
    data = [i for i in rest if slots[i].role in (Role.ARGUMENT, Role.DATA) and i != zero]
    if named := _names_code([words[i] for i in data]):
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
    is_env = wrapper is _ENV
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


def _reads_code(base: str, name: str, arguments: list[WordLike]) -> str | None:
    if base in CODE_READERS:
        return f"{name} reads code from its arguments or its input"
    if base in _ASSIGNERS:
        return (
            f"{name} assigns what it reads to variables, which the shell may evaluate as "
            "code (an integer variable, a subscript in a name)"
        )
    if base in BUILTINS:
        return f"the shell evaluates the arguments of {name} as code or as variable names"
    if base == "printf":
        return _printf(arguments)
    if base in ("test", "["):
        return _test([w for w in arguments if w.literal != "]"] if base == "[" else arguments)
    return None


def _input_is_data(base: str, arguments: list[WordLike]) -> bool:
    if base in _JSON:
        return True
    texts = [w.literal for w in arguments]
    files = _AWK_FILES if base in _AWK else _PROGRAM_FILES
    if None in texts or any(t in files or t.startswith("--file=") for t in texts if t):
        return False
    if base in _SED:
        return not any("e" in t for t in texts if t and t not in ("-e", "--expression"))
    if base in _AWK:
        return not any(run in t for t in texts if t for run in _AWK_RUNS)
    return False


def _printf(arguments: list[WordLike]) -> str | None:
    first = arguments[1:2] if arguments[:1] and arguments[0].literal == "--" else arguments[:1]
    if first and first[0].literal in (None, "-v"):
        return (
            "printf's first argument is its format, or -v, which assigns to a variable; "
            "put a format first, as in printf '%s' VALUE"
        )
    return None


def _test(arguments: list[WordLike]) -> str | None:
    """bash's test evaluates the subscript of a variable name after -v or -R; a value
    beside another value could be that -v."""
    loose = [w.literal is None for w in arguments]
    if any(w.literal in ("-v", "-R") for w in arguments) or any(
        a and b for a, b in itertools.pairwise(loose)
    ):
        return (
            "test -v evaluates the subscript of a variable name, and two values side by "
            "side could make one"
        )
    return None


def _names_code(arguments: list[WordLike]) -> str | None:
    """Another program may run a program its arguments name (`docker exec c sh -c ...`,
    `kubectl exec pod -- python3 ...`): any word naming one makes the command read code."""
    for word in arguments:
        text = word.literal or ""
        if text in CODE_WORDS:
            return f"{text} runs a command"
        names = [word.name or ""]
        if text.startswith("-") and "=" in text:
            names.append(text.split("=", 1)[1])
        for name in names:
            base = program_name(name)
            if base in SHELLS or base in CODE_READERS:
                return f"the command names {name}, which reads code"
    return None
