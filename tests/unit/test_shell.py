"""Placeholders in shell scripts (domain/shell.py): each is filled with a reference to a
variable, quoted for where it stands, and real shells print the value back unchanged."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from execd.domain.shell import ShellError, script_index, substitute

PLACEHOLDER = re.compile(r"\{(v)\}")
# Each would run `touch pwned` (or print `id`'s output, or glob) if it became syntax.
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
    "'\"$(touch pwned)`touch pwned`; touch pwned && id\n* \\ '\\'' EOF",
]
# A script with placeholders, and what it prints for the value `{}`.
SCRIPTS = [
    ("printf '<%s>' {v}", "<{}>"),
    ("printf '<%s>' pre{v}post", "<pre{}post>"),
    ('printf "<%s>" "a {v} b"', "<a {} b>"),
    ("printf '<%s>' 'a {v} b'", "<a {} b>"),
    ('printf "<%s>" "$(printf %s {v})"', "<{}>"),
    ('printf "<%s>" "$(printf %s \'{v}\')"', "<{}>"),
    ('printf "<%s>" "`printf %s {v}`"', "<{}>"),
    ("v=$(printf %s {v}); printf '<%s>' \"$v\"", "<{}>"),
    ("printf '<%s>' ${unset:-{v}}", "<{}>"),
    ("# it's a comment {v}\nprintf '<%s>' {v}", "<{}>"),
    ("printf '<%s>' \"it's\" '{v}' \\' {v}", "<it's><{}><'><{}>"),
    ("cat <<EOF\n<{v}> '{v}'\nEOF\nprintf '<%s>' '{v}'", "<{}> '{}'\n<{}>"),
    ("cat <<-'E'\n\tE\nprintf '<%s>' {v}", "<{}>"),
    ("cat <<-E\n\t<{v}>\n\tEE\n\tE\nprintf '<%s>' '{v}'", "<{}>\nEE\n<{}>"),
    ("cat <<E; printf '<%s>' '{v}'\n\"{v}\"\nE\n", '"{}"\n<{}>'),
]


def run(shell: str, script: str, value: str, cwd: Path) -> str:
    filled = substitute(script, PLACEHOLDER, lambda _: "V")
    done = subprocess.run(
        [shell, "-c", filled],
        env={"V": value, "PATH": "/usr/bin:/bin", "HOME": "/nonexistent"},
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
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_inside_ansi_c_quotes_in_bash(tmp_path: Path) -> None:
    for value in VALUES:
        assert run("bash", "printf '<%s>' $'\\t{v}\\n'", value, tmp_path) == f"<\t{value}\n>"


def test_each_place_gets_its_quoting() -> None:
    def filled(script: str) -> str:
        return substitute(script, PLACEHOLDER, lambda _: "V")

    assert filled("echo {v}") == 'echo "$V"'
    assert filled('echo "{v}"') == 'echo "${V}"'
    assert filled("echo '{v}'") == "echo ''\"$V\"''"
    assert filled("echo $'{v}'") == "echo $''\"$V\"$''"
    assert filled('echo "$(echo {v})"') == 'echo "$(echo "$V")"'
    assert filled("cat <<X\n{v}\nX\n{v}") == 'cat <<X\n${V}\nX\n"$V"'
    assert filled("echo $((1<<2)) {v}") == 'echo $((1<<2)) "$V"'  # a shift, not a heredoc
    assert filled("no placeholder") == "no placeholder"


@pytest.mark.parametrize(
    ("script", "reason"),
    [
        ("echo $(( {v} + 1 ))", r"\$\(\( \)\)"),
        ('echo "$(( $(echo {v}) ))"', r"\$\(\( \)\)"),
        ("cat <<'EOF'\n{v}\nEOF", "quoted here-document"),
        ('cat <<"E"\n{v}\nE', "quoted here-document"),
    ],
)
def test_places_a_value_cannot_go_safely_are_refused(script: str, reason: str) -> None:
    with pytest.raises(ShellError, match=reason):
        substitute(script, PLACEHOLDER, lambda _: "V")


@pytest.mark.parametrize(
    ("argv", "index"),
    [
        (["sh", "-c", "s"], 2),
        (["bash", "-lc", "s", "name", "arg"], 2),
        (["/usr/bin/env", "bash", "-c", "s"], 3),
        (["timeout", "5", "/bin/dash", "-e", "-c", "s"], 5),
        (["bash", "-o", "pipefail", "-ec", "s"], 4),
        (["bash", "--norc", "-c", "--", "s"], 4),
        (["sh", "script.sh", "{v}"], None),
        (["sh", "-c"], None),
        (["grep", "-c", "sh", "{v}"], None),
        (["ls", "{v}"], None),
    ],
)
def test_the_script_of_a_shell_in_an_argv(argv: list[str], index: int | None) -> None:
    assert script_index(argv) == index
