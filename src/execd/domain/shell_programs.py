"""The programs execd knows in shell scripts: which read code from their arguments or
their input, which wrappers run another program, and what a program's arguments make
of a value (`reads_code`, `reads_input`, `names_code`). `domain/shell_layout.py` says
which word of a command is which; `domain/shell.py` refuses a placeholder wherever
these say a value could be read as code.

This is the one list of such programs (docs/security.md shows it).
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
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
ENV_WRAPPER = Wrapper(frozenset({"-u", "--unset", "-C", "--chdir", "-P", "-a", "--argv0"}))
_VERSION = re.compile(r"[0-9.]+$")


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


def program_name(path: str) -> str:
    """`/usr/bin/python3.11` -> `python`: a program's name without directory or version."""
    base = path.rsplit("/", 1)[-1]
    return _VERSION.sub("", base) or base


def reads_code(base: str, name: str, arguments: list[WordLike]) -> str | None:
    """Why a value among the arguments of program `base` (spelt `name`) could be read
    as code, or None."""
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


def reads_input(base: str, arguments: list[WordLike]) -> bool:
    """Whether program `base` could read code from its standard input."""
    return base in _INPUT_BUILTINS or (base in CODE_READERS and not _input_is_data(base, arguments))


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


def names_code(arguments: list[WordLike]) -> str | None:
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
