"""The manual builds, and every command it shows runs (CONTRIBUTING.md, "Commands in the docs").

- `mkdocs build --strict` into a temporary folder: a broken link or anchor, a page
  missing from the nav, or a generated reference that cannot render fails here, and so
  in CI, which runs the suite.
- Every ```` ```sh ```` block of docs/, README.md and CONTRIBUTING.md runs, page by page
  in order, in a temporary folder set up the way the page says (`<!-- docs-test: NAME
  -->` names the set-up below), with this venv's bin first on PATH, a private HOME and a
  git identity. Each command must exit 0, or the code its line promises with a trailing
  `# exit N`. The README's first block (the install and the demo) is the one exception:
  `.ci/run` runs it as a new user would (tests/test_install_lock.py holds it to that).
- Every line of a ```` ```sh ```` or ```` ```console ```` block that starts with
  `evolve`, `agent` or `factory` names a real command, and every option it shows exists:
  checked against the click tree of the real CLI, so ```` ```console ```` blocks, the
  commands that cannot run here (a model, the network, systemd, a long run), rot no
  more than the rest.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from evolution.sandbox.enter import GRANTED_ENV

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "docs" / "hooks"))
from reference import command_tree, is_group  # noqa: E402

PROGRAMS = {
    "evolve": ("evolution.cli", "app"),
    "agent": ("agent.cli", "app"),
    "factory": ("evolution.factory.cli", "app"),
}
FENCE = re.compile(
    r"^(?P<fence>`{3,})(?P<lang>[\w-]*)[^\n]*\n(?P<body>.*?)^(?P=fence)\s*$", re.M | re.S
)
SETUP = re.compile(r"<!-- docs-test: ([\w-]+) -->")
EXPECT = re.compile(r"\s+#\s*exit (\d+)\s*$")


def pages() -> list[Path]:
    return [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md", ROOT / "CONTRIBUTING.md"]


def blocks(page: Path, lang: str) -> list[str]:
    found = [
        m["body"] for m in FENCE.finditer(page.read_text(encoding="utf-8")) if m["lang"] == lang
    ]
    if page.name == "README.md" and page.parent == ROOT and lang == "sh":
        found = found[1:]  # the install and the demo: .ci/run runs them from a fresh clone
    return found


def commands(block: str) -> list[str]:
    """Logical commands: comment lines skipped, `\\` continuations joined, a here-document
    kept with the line that opens it."""
    out: list[str] = []
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        while line.endswith("\\") and i < len(lines):
            line = line[:-1] + " " + lines[i].strip()
            i += 1
        heredoc = re.search(r"<<-?'?(\w+)'?", line)
        if heredoc:
            body = []
            while i < len(lines) and lines[i] != heredoc[1]:
                body.append(lines[i])
                i += 1
            i += 1
            line = "\n".join([line, *body, heredoc[1]])
        out.append(line)
    return out


# -- the build ----------------------------------------------------------------------------


def test_the_manual_builds_in_strict_mode(tmp_path: Path) -> None:
    result = subprocess.run(
        [str(BIN / "mkdocs"), "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "reference" / "evolve" / "index.html").exists()
    built = (tmp_path / "site" / "reference" / "evolve" / "index.html").read_text()
    assert "--post-merge" in built and "evolve baseline record" in built
    # Offline: the theme is told not to fetch fonts, and no plugin fetches at build time.
    assert "fonts.googleapis.com" not in built
    # The CI templates are shown as they ship: included from their files, every line.
    page = (tmp_path / "site" / "how-to" / "merge-queue" / "index.html").read_text()
    shown = html.unescape(re.sub(r"<[^>]+>", "", page))
    for name in ("github.yml", "gitlab.yml"):
        text = (ROOT / "evolution" / "ci" / name).read_text(encoding="utf-8")
        assert [line for line in text.splitlines() if line not in shown] == [], name


# -- the commands, run --------------------------------------------------------------------


def _environment(home: Path) -> dict[str, str]:
    """A reader's shell: none of this run's agent, pytest, Ratchet or git settings, but
    what a sandbox this suite may itself run in grants (GRANTED_ENV), which a gate that a
    command starts needs to plan its own (as an agent's task gets it)."""
    env = {
        key: value
        for key, value in os.environ.items()
        if key == GRANTED_ENV
        or not (key.startswith(("AGENT_", "PYTEST_", "RATCHET_", "GIT_")) or key == "SPEND_CAP_USD")
    }
    env.update(
        PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(home),
        NO_COLOR="1",
        GIT_AUTHOR_NAME="Docs Test",
        GIT_AUTHOR_EMAIL="docs@example.invalid",
        GIT_COMMITTER_NAME="Docs Test",
        GIT_COMMITTER_EMAIL="docs@example.invalid",
        GIT_CONFIG_GLOBAL=os.devnull,
    )
    return env


def _project(folder: Path, env: dict[str, str]) -> None:
    """The small project the tutorials adopt: `main` with a passing suite."""
    files = {
        "scripts/__init__.py": "",
        "scripts/calc.py": (
            "def add(a, b):\n    return a + b\n\n\n"
            "def mul(a, b):\n    return a * b\n"
        ),
        "tests/test_calc.py": (
            "from scripts.calc import add, mul\n\n\n"
            "def test_add():\n    assert add(2, 3) == 5\n\n\n"
            "def test_mul():\n    assert mul(2, 3) == 6\n"
        ),
        "pytest.ini": "[pytest]\npythonpath = .\naddopts = -p no:hypothesispytest\n",
    }
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    for argv in (
        ["git", "init", "-q", "-b", "main"],
        ["git", "add", "-A"],
        ["git", "commit", "-q", "-m", "A project with a suite"],
    ):
        subprocess.run(argv, cwd=folder, env=env, check=True)


def _pyproject_project(folder: Path, env: dict[str, str]) -> None:
    """The same project with the pyproject.toml most have: its metadata and a tool's
    settings, which `evolve init` must leave as they are."""
    (folder / "pyproject.toml").write_text(
        '[project]\nname = "calc"\nversion = "0.1"\n\n[tool.ruff]\nline-length = 100  # ours\n'
    )
    _project(folder, env)


SETUPS = {"project": _project, "pyproject": _pyproject_project, "empty": lambda folder, env: None}
RUNNABLE = [page for page in pages() if blocks(page, "sh")]


@pytest.mark.parametrize("page", RUNNABLE, ids=[str(p.relative_to(ROOT)) for p in RUNNABLE])
def test_every_sh_block_runs_as_the_page_says(page: Path, tmp_path: Path) -> None:
    text = page.read_text(encoding="utf-8")
    setup = SETUP.search(text)
    assert setup, f"{page.name} has sh blocks but no <!-- docs-test: SETUP --> ({sorted(SETUPS)})"
    folder, home = tmp_path / "work", tmp_path / "home"
    folder.mkdir()
    home.mkdir()
    env = _environment(home)
    SETUPS[setup[1]](folder, env)
    for block in blocks(page, "sh"):
        for command in commands(block):
            expect = EXPECT.search(command.splitlines()[0])
            wanted = int(expect[1]) if expect else 0
            result = subprocess.run(
                ["bash", "-c", command],
                cwd=folder,
                env=env,
                capture_output=True,
                text=True,
                timeout=120,
                stdin=subprocess.DEVNULL,
            )
            assert result.returncode == wanted, (
                f"{page.relative_to(ROOT)}: `{command}` exited {result.returncode}, the page "
                f"says {wanted}\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
            )


# -- the commands, checked against the real CLI -----------------------------------------------


def _trees() -> dict[str, dict[str, object]]:
    return {
        program: dict(command_tree(module, attribute, program))
        for program, (module, attribute) in PROGRAMS.items()
    }


def _without_prefix(words: list[str]) -> list[str]:
    """The command after `VAR=value ...` and `sudo [-u USER]`."""
    while words and "=" in words[0] and not words[0].startswith("-"):
        words = words[1:]
    if words[:1] == ["sudo"]:
        words = words[3:] if words[1:2] == ["-u"] else words[1:]
    return words


def check_command(line: str, trees: dict[str, dict[str, object]]) -> str | None:
    """A problem with one command line of the docs, or None: the command path must exist
    and every `--option` must be one of its options."""
    line = EXPECT.sub("", line.split("\n")[0])
    line = re.sub(r"\s#.*$", "", line)
    for part in re.split(r"\s*(?:&&|\|\||;|\|)\s*", line):
        try:
            words = shlex.split(part)
        except ValueError:
            words = part.split()
        words = _without_prefix(words)
        if not words:
            continue
        program = words[0].rsplit("/", 1)[-1]
        if program not in trees:
            continue
        path, command = program, trees[program][program]
        rest = words[1:]
        while rest and is_group(command) and not rest[0].startswith("-"):
            name = rest.pop(0)
            if name not in command.commands:  # type: ignore[attr-defined]
                return f"`{path} {name}`: no such command (in `{line}`)"
            path, command = f"{path} {name}", command.commands[name]  # type: ignore[attr-defined]
        known = {"--help"}
        for param in command.params:  # type: ignore[attr-defined]
            known.update(param.opts, getattr(param, "secondary_opts", []))
        for word in rest:
            option = word.split("=", 1)[0]
            if option.startswith("--") and option not in known:
                return f"`{path}` has no option {option} (in `{line}`)"
    return None


def test_every_command_shown_names_real_commands_and_options() -> None:
    trees = _trees()
    problems = []
    for page in pages():
        for lang in ("sh", "console"):
            for block in blocks(page, lang):
                for command in commands(block):
                    problem = check_command(command, trees)
                    if problem:
                        problems.append(f"{page.relative_to(ROOT)}: {problem}")
    assert problems == []


def test_the_checker_catches_a_wrong_command_and_a_wrong_option() -> None:
    trees = _trees()
    assert check_command("evolve validate main --no-merge --json", trees) is None
    assert check_command("evolve baseline record --reset  # exit 1", trees) is None
    assert "no such command" in check_command("evolve baseline rekord", trees)  # type: ignore[operator]
    assert "no option --merge-now" in check_command("evolve validate x --merge-now", trees)  # type: ignore[operator]
    assert "no option" in check_command("sudo -u ratchet agent status --verbose", trees)  # type: ignore[operator]


def test_blocks_are_sh_console_or_not_commands() -> None:
    """One convention: commands are `sh` (run) or `console` (checked, not run); `bash` and
    `shell` blocks would be neither, so they are refused."""
    for page in pages():
        for match in FENCE.finditer(page.read_text(encoding="utf-8")):
            assert match["lang"] not in ("bash", "shell", "shell-session"), (
                f"{page.relative_to(ROOT)}: a ```{match['lang']} block: use sh (run by this "
                "test) or console (checked against the CLI, not run)"
            )


def test_no_page_lacks_its_setup_or_names_an_unknown_one() -> None:
    for page in pages():
        for name in SETUP.findall(page.read_text(encoding="utf-8")):
            assert name in SETUPS, f"{page.name}: unknown docs-test set-up {name!r}"
    assert shutil.which("bash")
