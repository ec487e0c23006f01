"""Placeholders in shell scripts (domain/shell.py): where one is allowed, real shells
print the value back unchanged whatever it holds; everywhere a value could be read as
code, the placeholder is refused with a message saying where it stands and why."""

from __future__ import annotations

import random
import re
import subprocess
from pathlib import Path

import pytest

from execd.domain.shell import ShellError, argv_script, substitute

PLACEHOLDER = re.compile(r"\{(v|w)\}")
# Each would create `pwned` (or print `id`'s output, or glob, or run as bash arithmetic)
# if it became syntax.
VALUES = [
    "'",
    '"',
    "$(touch pwned)",
    "`touch pwned`",
    "; touch pwned",
    "&& touch pwned",
    "a\ntouch pwned",
    "*",
    "\\",
    "${HOME}",
    "EOF",
    "a[$(touch pwned)]",
    "-v",
    "-c",
    "touch pwned",
    "'\"$(touch pwned)`touch pwned`; touch pwned && id\n* \\ '\\'' EOF",
]
# A script with placeholders, and what it prints for the value `{}`.
SCRIPTS = [
    ("printf '<%s>' {v}", "<{}>"),
    ("printf '<%s>' pre{v}post --name={v}", "<pre{}post><--name={}>"),
    ('printf "<%s>" "a {v} b"', "<a {} b>"),
    ('printf "<%s>" "$(printf %s {v})"', "<{}>"),
    ("printf '<%s>' $(printf %s {v} | wc -c) >/dev/null; printf '<%s>' {v}", "<{}>"),
    ('printf "<%s>" "`printf %s {v}`"', "<{}>"),
    ("printf '<%s>' \"it's\" {v} \\' {v}", "<it's><{}><'><{}>"),
    ("# it's a comment {v}\nprintf '<%s>' {v}", "<{}>"),
    ("printf '<%s>' {v} | sed -e 's/^//' | cat", "<{}>"),
    ("true && printf '<%s>' {v} || exit 1", "<{}>"),
    ("if [ -n {v} ]; then printf '<%s>' {v}; fi", "<{}>"),
    ("case {v} in *) printf '<%s>' {v};; esac", "<{}>"),
    ("for i in 1; do printf '<%s>' {v}; done", "<{}>"),
    ("f() { printf '<%s>' \"$1\"; }; f {v}", "<{}>"),
    ("( printf '<%s>' {v} ) | cat", "<{}>"),
    ("{ printf '<%s>' {v}; } > out; cat out", "<{}>"),
    ('sh -c \'printf "<%s>" "$1"\' sh {v}', "<{}>"),
    ("timeout 5 printf '<%s>' {v}", "<{}>"),
    ("[ {v} = x ] || printf '<%s>' {v}", "<{}>"),
    ("cat <<EOF\nno placeholder here\nEOF\nprintf '<%s>' {v}", "no placeholder here\n<{}>"),
    ("cat <<-'E'\n\tE\nprintf '<%s>' {v}", "<{}>"),
]


def run(shell: str, script: str, value: str, cwd: Path) -> str:
    filled = substitute(script, PLACEHOLDER, lambda m: m.group(1).upper())
    done = subprocess.run(
        [shell, "-c", filled],
        env={"V": value, "W": value, "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert done.returncode == 0, (filled, done.stderr)
    return done.stdout


@pytest.mark.parametrize("shell", ["sh", "bash"])
@pytest.mark.parametrize(("script", "prints"), SCRIPTS)
def test_every_value_reaches_the_shell_as_data(
    shell: str, script: str, prints: str, tmp_path: Path
) -> None:
    (tmp_path / "a-file").touch()  # for `*` to match, were it globbed
    for value in VALUES:
        assert run(shell, script, value, tmp_path) == prints.replace("{}", value), value
        (tmp_path / "out").unlink(missing_ok=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_each_place_gets_its_quoting() -> None:
    def filled(script: str) -> str:
        return substitute(script, PLACEHOLDER, lambda _: "V")

    assert filled("echo {v}") == 'echo "$V"'
    assert filled('echo "{v}"') == 'echo "${V}"'
    assert filled('echo "$(echo {v})"') == 'echo "$(echo "$V")"'
    assert filled("echo $((1<<2)) {v}") == 'echo $((1<<2)) "$V"'  # a shift, not a heredoc
    assert filled("no placeholder") == "no placeholder"


# The six places where bash evaluates a quoted "$V" as arithmetic, which runs the
# command substitution in an array subscript.
BASH_ARITHMETIC = [
    "(( {v} > 3 ))",
    "s=abc; echo ${s:{v}}",
    "[[ {v} -gt 3 ]]",
    "echo ${a[{v}]}",
    "let x={v}",
    "declare -i i={v}",
]


@pytest.mark.parametrize("script", BASH_ARITHMETIC)
def test_bash_arithmetic_contexts_are_refused(script: str, tmp_path: Path) -> None:
    # Filled as a plain quoted word, the value runs its command...
    naive = PLACEHOLDER.sub('"$V"', script)
    hostile = {"V": "a[$(touch pwned)]", "PATH": "/usr/bin:/bin"}
    subprocess.run(
        ["bash", "-c", naive], env=hostile, cwd=tmp_path, capture_output=True, check=False
    )
    assert (tmp_path / "pwned").exists(), naive
    # ...so it is refused.
    with pytest.raises(ShellError, match="is refused"):
        substitute(script, PLACEHOLDER, lambda _: "V")


@pytest.mark.parametrize(
    ("script", "says"),
    [
        ("echo '{v}'", "{v} inside single quotes is refused"),
        ("bash -c 'echo A:{v}'", "{v} inside single quotes is refused"),
        ("echo $'\\t{v}'", r"{v} inside $'...' is refused"),
        ("cat <<EOF\n{v}\nEOF", "{v} in a here-document is refused"),
        ("cat <<'EOF'\n{v}\nEOF", "{v} in a here-document is refused"),
        ("sh <<EOF\necho {v}\nEOF", "{v} in a here-document is refused"),
        ("echo $(( {v} + 1 ))", "{v} in arithmetic ($(( )) or (( ))) is refused"),
        ('echo "$(( $(echo {v}) ))"', "{v} in arithmetic"),
        ("for ((i={v}; i<3; i++)); do :; done", "{v} in arithmetic"),
        ("echo $[ {v} ]", "{v} in arithmetic ($[ ]) is refused"),
        ("echo ${x:-{v}}", "{v} inside ${...} is refused"),
        ('echo "${x:-"{v}"}"', "{v} inside ${...} is refused"),
        ("[[ -v {v} ]] && echo", "{v} inside [[ ]] is refused"),
        ("x={v}; echo $x", "{v} in an assignment is refused"),
        ("PS4={v} bash -xc true", "{v} in an assignment is refused"),
        ("a=(1 {v})", "{v} in an array assignment is refused"),
        ("export X={v}", "{v} in the arguments of export is refused"),
        ("local x={v}", "{v} in the arguments of local is refused"),
        ("read x <<< {v}", "{v} in a redirection of read is refused: read assigns"),
        ("for x in {v}; do :; done", "{v} in a for or select header is refused"),
        ("{v}", "{v} as the program to run is refused"),
        ("./deploy-{v}.sh", "{v} as the program to run is refused"),
        ("$(echo {v}) arg", "{v} inside a substitution as the program to run is refused"),
        ("f{v}() { :; }", "cannot follow this script's syntax (an unexpected ()"),
        ("function {v} { :; }", "{v} as a function's name is refused"),
        ("env {v}", "{v} among the arguments of env before the program it runs is refused"),
        ("timeout {v} make", "{v} among the arguments of timeout before the program"),
        ("env -S 'echo x' {v}", "env -S splits a string into a command"),
        ('sh -c "echo B:{v}"', "{v} in the script sh runs is refused: sh parses that text"),
        ("bash {v}", "{v} in the script bash runs is refused"),
        ('sh -c "$(echo {v})"', "{v} inside a substitution in the script sh runs"),
        ("eval echo E:{v}", "{v} in the arguments of eval is refused"),
        ("source ./lib.sh {v}", "{v} in the arguments of source is refused"),
        ('echo D: | xargs -I{} sh -c "echo {}{v}"', "{v} in the arguments of xargs is refused"),
        ("find . -name {v} -exec rm {} +", "-exec runs a command"),
        ("ssh host echo {v}", "{v} in the arguments of ssh is refused"),
        ("sudo -u app ls {v}", "{v} in the arguments of sudo is refused"),
        ("python3 -c 'import sys' {v}", "{v} in the arguments of python3 is refused"),
        ("awk -v x={v} 'BEGIN{print x}'", "{v} in the arguments of awk is refused"),
        ("docker run img sh -c {v}", "the command names sh, which reads code"),
        ("kubectl exec pod -- /usr/bin/python3 app.py {v}", "the command names python3"),
        ("$cmd {v}", "execd cannot tell which program runs"),
        ("echo {v} | sh", "{v} in a command whose output is piped to a program is refused"),
        ("{ echo {v}; } | { cat; bash; }", "piped to a program is refused: bash runs shell code"),
        ("printf '%s\\n' {v} | while read -r l; do echo \"$l\"; done", "piped to a program"),
        ("printf '%s\\n' {v} | python3", "piped to a program is refused: python3 reads code"),
        ("echo {v} > >(sh)", "sh runs shell code (in a substitution of the command)"),
        ("sh <(echo {v})", "{v} inside a substitution in the script sh runs"),
        ("tar -xf a.tar {v}", "{v} at the start of an argument of tar before -- is refused"),
        ("git commit -m {v}", "{v} at the start of an argument of git before --"),
        ("printf {v}", "printf's first argument is its format"),
        ("printf -v out '%s' {v}", "printf's first argument is its format, or -v"),
        ("[ -v {v} ]", "test -v evaluates the subscript of a variable name"),
        ("test {w} {v}", "two values side by side"),
        ("echo ${v}", "{v} right after $ is refused"),
        ("echo \\{v}", "{v} right after a backslash is refused"),
        ("echo {v}; echo 'unclosed", "cannot follow this script's syntax (the script ends"),
        ("echo {v} )", "cannot follow this script's syntax (an unexpected ))"),
        ("alias e=eval\ne {v}", "cannot follow this script's syntax (an alias"),
        ("exec > >(sh); echo {v}", "cannot follow this script's syntax (exec sends"),
        ("echo `echo \\`echo {v}\\``", "a backslash inside backquotes"),
        ("echo $'it\\'s' {v}", "which sh and bash end at different quotes"),
    ],
)
def test_places_a_value_could_be_read_as_code_are_refused(script: str, says: str) -> None:
    with pytest.raises(ShellError) as refused:
        substitute(script, PLACEHOLDER, lambda _: "V")
    assert says in str(refused.value)


def test_an_option_that_runs_a_command_is_refused_before_double_dash(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    subprocess.run(["tar", "-cf", "a.tar", "f"], cwd=tmp_path, check=True)
    hostile = {"V": "--to-command=touch pwned", "PATH": "/usr/bin:/bin"}
    naive = 'tar -xf a.tar "$V"'
    subprocess.run(["sh", "-c", naive], env=hostile, cwd=tmp_path, capture_output=True, check=False)
    assert (tmp_path / "pwned").exists()  # the value was read as an option
    with pytest.raises(ShellError, match="at the start of an argument of tar"):
        substitute("tar -xf a.tar {v}", PLACEHOLDER, lambda _: "V")
    (tmp_path / "pwned").unlink()
    for script in ("tar -xf a.tar -- {v}", "tar -x --file={v}"):
        filled = substitute(script, PLACEHOLDER, lambda _: "V")
        subprocess.run(["sh", "-c", filled], env=hostile, cwd=tmp_path, capture_output=True)
        assert not (tmp_path / "pwned").exists(), filled


def test_the_parser_never_fails_on_odd_scripts() -> None:
    """Whatever the script, the answer is a filled script or a ShellError."""
    pieces = [*"abc {}$()`'\"\\;&|<>#=[]*?~!\n\t-"]
    pieces += ["{v}", "EOF", "<<", "((", "${", "$(", "[[", "]]", "case", "in", "esac", "if"]
    pieces += ["then", "fi", "for", "do", "done", "function", "f()", "$'", ";;", "sh -c", "eval"]
    rng = random.Random(12)
    for _ in range(3000):
        script = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 30))) + " {v}"
        try:
            filled = substitute(script, PLACEHOLDER, lambda _: "V")
        except ShellError:
            continue
        assert "{v}" not in filled


@pytest.mark.parametrize(
    ("argv", "index"),
    [
        (["sh", "-c", "s"], 2),
        (["bash", "-lc", "s", "name", "{v}"], 2),
        (["/usr/bin/env", "bash", "-c", "s"], 3),
        (["timeout", "5", "/bin/dash", "-e", "-c", "s"], 5),
        (["bash", "-o", "pipefail", "-ec", "s"], 4),
        (["bash", "--norc", "-c", "--", "s"], 4),
        (["nice", "-n", "5", "busybox", "sh", "-c", "s"], 6),
        (["sh", "script.sh", "{v}"], None),
        (["sh", "-c"], None),
        (["grep", "-c", "sh"], None),
        (["ls", "{v}"], None),
        (["cp", "--target={v}", "a"], None),
    ],
)
def test_the_script_of_a_shell_in_an_argv(argv: list[str], index: int | None) -> None:
    assert argv_script(argv, PLACEHOLDER) == index


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["{v}", "x"], "{v} as the program to run is refused"),
        (["env", "{v}"], "among the arguments of env"),
        (["python3", "-c", "print('{v}')"], "{v} in the arguments of python3 is refused"),
        (["perl", "script.pl", "{v}"], "{v} in the arguments of perl is refused"),
        (["ssh", "host", "ls {v}"], "{v} in the arguments of ssh is refused"),
        (["bash", "-o", "{v}", "-c", "s"], "{v} among the options of bash is refused"),
        (["bash", "{v}"], "{v} in the script bash runs is refused"),
        (["docker", "exec", "c", "sh", "-c", "{v}"], "the command names sh"),
        (["sh", "-c", "s", "sh", "sh", "-c", "{v}"], "the command names sh"),
    ],
)
def test_argv_placeholders_an_interpreter_would_read_are_refused(
    argv: list[str], says: str
) -> None:
    with pytest.raises(ShellError) as refused:
        argv_script(argv, PLACEHOLDER)
    assert says in str(refused.value)
