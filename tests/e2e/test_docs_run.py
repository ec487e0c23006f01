"""The documentation's examples run as pasted.

Every shell and Python block in README.md, docs/ and examples/ is marked, in an HTML
comment on the line before it (invisible on the rendered page):

    <!-- run -->                       run it; it must exit 0
    <!-- run: expect "completed" -->   ... and print that text (several expects allowed)
    <!-- not run: <why> -->            not a command to paste (a file's content, a
                                       production set-up, a stream that never ends)

`test_every_block_is_marked` fails on an unmarked block, so a new example cannot slip
past. The runnable ones run against one real server started the way `make run` starts
it (embedded SQLite, an admin token generated into `.execd/admin-token`), page after
page in reading order (README first), from a directory laid out like a checkout, in
the shell the README leaves behind: `.venv/bin` first on PATH, `EXECD_URL` set. The
blocks of a page run in one bash process (`set -euo pipefail`), so the variables one
block sets are there for the next, as in a terminal; Python blocks run with the
virtualenv's python in that directory.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support import IN_CI, Deployment, Server, free_port

ROOT = Path(__file__).resolve().parents[2]
PAGES = [
    ROOT / "README.md",
    *sorted((ROOT / "docs").glob("*.md")),
    *sorted((ROOT / "examples").glob("*.md")),
]
LANGUAGES = {"sh": "shell", "bash": "shell", "shell": "shell", "python": "python", "py": "python"}
FENCE = re.compile(r"^(```+|~~~+)\s*([\w+-]*)")
MARK = re.compile(r"^<!--\s*(run|not run)\b(.*?)-->\s*$")
EXPECT = re.compile(r'expect\s+"((?:[^"\\]|\\.)*)"')
PAGE_SECONDS = 180


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str  # "shell" or "python"
    code: str
    mark: str | None  # "run", "not run" or None
    expect: tuple[str, ...]

    @property
    def where(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> Iterator[Block]:
    """The shell and Python blocks of a Markdown page, with their marks."""
    lines = page.read_text(encoding="utf-8").splitlines()
    index = 0
    while index < len(lines):
        fence = FENCE.match(lines[index])
        if fence is None:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith(fence.group(1)):
            end += 1
        language = LANGUAGES.get(fence.group(2).lower())
        if language is not None:
            before = next((t for t in reversed(lines[:index]) if t.strip()), "")
            mark = MARK.match(before.strip())
            yield Block(
                page=page,
                line=index + 1,
                language=language,
                code="\n".join(lines[index + 1 : end]) + "\n",
                mark=mark.group(1) if mark else None,
                expect=tuple(
                    m.replace('\\"', '"') for m in EXPECT.findall(mark.group(2) if mark else "")
                ),
            )
        index = end + 1


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_block_is_marked(page: Path) -> None:
    unmarked = [b.where for b in blocks(page) if b.mark is None]
    assert not unmarked, (
        "shell and Python blocks must say whether they run, in an HTML comment on the "
        f"line before: <!-- run --> or <!-- not run: why -->; unmarked: {unmarked}"
    )
    for block in blocks(page):
        if block.mark == "not run":
            assert block.expect == (), f"{block.where}: a block that is not run expects nothing"


def script(page_blocks: list[Block], folder: Path) -> str:
    """One bash script for a page: each block behind a marker line, Python blocks as
    files run by the virtualenv's python."""
    parts = ["set -euo pipefail"]
    for number, block in enumerate(page_blocks):
        parts.append(f"printf '\\n@@block {number}\\n'")
        if block.language == "python":
            path = folder / f"block-{block.page.stem}-{block.line}.py"
            path.write_text(block.code, encoding="utf-8")
            parts.append(f"python {shlex.quote(str(path))}")
        else:
            parts.append(block.code)
    parts.append("printf '\\n@@end\\n'")
    return "\n".join(parts) + "\n"


def outputs(text: str, count: int) -> list[str | None]:
    """Each block's output, None for the blocks that never started."""
    found: list[str | None] = [None] * count
    pieces = re.split(r"^@@block (\d+)$", text, flags=re.M)
    for number, body in zip(pieces[1::2], pieces[2::2], strict=True):
        found[int(number)] = body.split("\n@@end\n")[0]
    return found


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, str]]]:
    """A directory laid out like a fresh clone after `make run`, the server it runs,
    and the environment of the reader's second terminal."""
    folder = tmp_path_factory.mktemp("checkout")
    for entry in ROOT.iterdir():
        if entry.name not in {".git", ".execd", ".venv"} and not entry.name.startswith("execution"):
            (folder / entry.name).symlink_to(entry)
    (folder / ".venv").symlink_to(Path(sys.prefix))
    home = folder / "home"
    home.mkdir()
    deployment = Deployment(database_url="", root=folder)
    port = free_port()
    env = deployment.env(EXECD_PORT=str(port), EXECD_EMBEDDED_WORKERS="2")
    # As `make run` starts it: the database, and an admin token generated, in ./.execd;
    # the examples on the python actions' import path.
    for name in ("EXECD_ADMIN_TOKEN", "EXECD_DATABASE_URL", "EXECD_DATA_DIR"):
        del env[name]
    env["EXECD_ACTIONS_PATH"] = str(ROOT / "examples")  # the real directory, as $(CURDIR) gives
    server = Server(args=["serve"], env=env, log_path=folder / "server.log", port=port)
    deployment.processes.append(server)
    server.start(cwd=folder)
    reader = {k: v for k, v in os.environ.items() if not k.startswith("EXECD_")}
    reader.update(
        HOME=str(home),
        XDG_CONFIG_HOME=str(home / ".config"),
        PATH=f"{folder / '.venv' / 'bin'}:{os.environ['PATH']}",
        EXECD_PORT=str(port),
        EXECD_URL=server.url,
        PYTHONUNBUFFERED="1",
    )
    yield folder, reader
    deployment.close()


@pytest.mark.slow
@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_page_runs_as_pasted(page: Path, checkout: tuple[Path, dict[str, str]]) -> None:
    folder, env = checkout
    runnable = [b for b in blocks(page) if b.mark == "run"]
    if not runnable:
        return  # nothing on this page to paste; test_every_block_is_marked holds it to that
    missing = [tool for tool in ("bash", "curl", "jq") if shutil.which(tool) is None]
    if missing:  # `make test` installs them (Debian), and CI=true never skips
        assert not IN_CI, f"the documentation's examples need {missing}"
        pytest.skip(f"the documentation's examples need {missing}: sudo apt-get install jq curl")
    log = folder / f"run-{page.stem}.log"
    with log.open("wb") as sink:
        shell = subprocess.Popen(
            ["bash", "-c", script(runnable, folder)],
            cwd=folder,
            env=env,
            stdout=sink,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            code: int | None = shell.wait(timeout=PAGE_SECONDS)
        except subprocess.TimeoutExpired:
            code = None
        finally:  # what a block left running in the background (a worker) stops here
            with contextlib.suppress(ProcessLookupError):
                os.killpg(shell.pid, signal.SIGKILL)
            shell.wait()
    text = log.read_text(errors="replace")
    found = outputs(text, len(runnable))
    started = [i for i, body in enumerate(found) if body is not None]
    last = runnable[started[-1]] if started else runnable[0]
    if code != 0:
        why = f"did not end within {PAGE_SECONDS} s" if code is None else f"exited {code}"
        pytest.fail(f"{last.where} {why}; its output:\n{found[started[-1]] if started else text}")
    for block, body in zip(runnable, found, strict=True):
        for wanted in block.expect:
            assert body is not None and wanted in body, (
                f"{block.where} should print {wanted!r}; it printed:\n{body}"
            )
