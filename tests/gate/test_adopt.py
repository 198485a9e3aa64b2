"""`evolve init` in real repositories, with real gate runs: the policy committed to main
before the baseline is recorded on it, the hooks installed, nothing to do the second
time, nothing changed by a dry run or under uncommitted changes, and the user's own
pyproject.toml kept byte for byte.

The sample is tests/repo_setup.py's (scripts/calc.py, whose suite has one failing test:
a seeded bug), built without a baseline unless a test says otherwise.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest
from repo_setup import Sandbox, make_sandbox

from evolution.ci import TARGETS, template
from evolution.gate.hooks import HOOKS, MARKER
from evolution.gitrepo import GitRepo
from evolution.policy import load_policy

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

# A project's own settings, as people write them: comments, a header with a comment,
# single quotes, and no newline at the end. evolve init must keep every byte.
PYPROJECT = """\
# The project's settings.
[project]
name = "calc"
version = "0.1"

[tool.black]  # formatting
line-length = 88
target-version = ['py311']

[tool.x]
key = """ + '"value"'


def project(tmp_path: Path, files: dict[str, str] | None = None) -> Sandbox:
    box = make_sandbox(tmp_path / "repo", record=False)
    if files:
        box.commit("the project's settings", files)
    return box


def init_json(box: Sandbox, *args: str, code: int = 0) -> dict:
    done = box.evolve("init", *args, "--json")
    assert done.returncode == code, done.stdout + done.stderr
    return json.loads(done.stdout)


def committed(box: Sandbox, path: str, ref: str = "main") -> bytes | None:
    return GitRepo(box.path).read_file(box.head(ref), path)


def hooks_folder(box: Sandbox) -> Path:
    return box.path / ".git" / "hooks"


def test_init_commits_the_policy_then_records_the_baseline_and_installs_the_hooks(
    tmp_path: Path,
) -> None:
    box = project(tmp_path, {"pyproject.toml": PYPROJECT})
    before = box.head()
    report = init_json(box)
    config, recorded = box.git("rev-list", "--reverse", f"{before}..main").splitlines()
    # One commit of the configuration, whose message says what it is, then the baseline.
    message = box.git("log", "-1", "--format=%B", config)
    assert message.startswith("evolve init: put main under the ratchet\n")
    assert "pyproject.toml: [tool.ratchet] appended" in message
    assert box.git("diff", "--name-only", before, config).splitlines() == [
        ".gitignore", "pyproject.toml",
    ]  # fmt: skip
    assert box.baseline()["commit"] == config and box.head() == recorded
    assert report["commit"] == config and report["main_after"] == recorded
    assert report["baseline"]["passing_after"] == 2  # test_mul fails: the seeded bug
    # The project's pyproject.toml: its bytes, then the table, and it reads as before.
    text = committed(box, "pyproject.toml")
    assert text is not None and text.startswith(PYPROJECT.encode())
    data = tomllib.loads(text.decode())
    assert data["tool"]["x"] == {"key": "value"} and data["tool"]["black"]["line-length"] == 88
    assert data["tool"]["ratchet"] == {"test_command": "python -m pytest",
                                       "evolvable": ["scripts/"]}  # fmt: skip
    assert load_policy(GitRepo(box.path), box.head()).source.startswith("pyproject.toml@")
    assert committed(box, ".gitignore") == b"runs/\n"
    # The checkout followed main; the hooks are in; main carries the gate's verdict.
    assert (box.path / "pyproject.toml").read_bytes() == text
    assert box.git("status", "--porcelain") == ""
    for name in HOOKS:
        assert MARKER in (hooks_folder(box) / name).read_bytes()
    assert box.evolve("verify", "main").returncode == 0
    assert report["policy"] == "pyproject.toml [tool.ratchet]" and report["changed"] is True

    again = box.evolve("init")
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("nothing to do: main is under the ratchet")
    assert box.head() == recorded
    assert init_json(box)["changed"] is False


def test_a_dry_run_prints_what_it_would_write_and_changes_nothing(tmp_path: Path) -> None:
    box = project(tmp_path, {"pyproject.toml": PYPROJECT})
    head, listing = box.head(), sorted(p.name for p in hooks_folder(box).iterdir())
    done = box.evolve("init", "--dry-run", "--ci", "gitlab")
    assert done.returncode == 0, done.stderr
    assert "would    append  pyproject.toml" in done.stdout
    assert "[tool.ratchet]" in done.stdout and 'evolvable = ["scripts/"]' in done.stdout
    assert "would    write   .gitlab-ci.yml" in done.stdout
    assert "--shard \"$CI_NODE_INDEX/$CI_NODE_TOTAL\"" in done.stdout  # the template, shown
    assert "would    record  baseline/baseline.json" in done.stdout
    report = init_json(box, "--dry-run", "--ci", "github")
    assert {a["status"] for a in report["actions"]} == {"planned"}
    assert [a["target"] for a in report["actions"]] == [
        "pyproject.toml", ".gitignore", TARGETS["github"], "main", "baseline/baseline.json",
        ", ".join(HOOKS),
    ]  # fmt: skip
    assert box.head() == head and box.git("status", "--porcelain", "--ignored") == ""
    assert sorted(p.name for p in hooks_folder(box).iterdir()) == listing


@pytest.mark.parametrize("change", ["modified", "staged"])
def test_uncommitted_changes_are_refused_with_nothing_changed(tmp_path: Path, change: str) -> None:
    box = project(tmp_path, {"pyproject.toml": PYPROJECT})
    (box.path / "scripts" / "calc.py").write_text("# mine\n")
    if change == "staged":
        box.git("add", "scripts/calc.py")
    head = box.head()
    for args in ((), ("--dry-run",)):
        done = box.evolve("init", *args)
        assert done.returncode == 1, done.stdout + done.stderr
        assert "has uncommitted changes" in done.stderr
        assert "commit or stash them" in done.stderr
    assert box.head() == head and (box.path / "scripts" / "calc.py").read_text() == "# mine\n"
    assert not (hooks_folder(box) / "pre-push").exists()


def test_an_untracked_file_where_init_would_commit_one_is_refused(tmp_path: Path) -> None:
    box = project(tmp_path)
    (box.path / "ratchet.toml").write_text("reruns = 0\n")
    done = box.evolve("init")
    assert done.returncode == 1 and "ratchet.toml exists but is not committed" in done.stderr
    assert (box.path / "ratchet.toml").read_text() == "reruns = 0\n"


def test_without_a_pyproject_the_policy_goes_to_ratchet_toml_and_the_ci_file_is_written(
    tmp_path: Path,
) -> None:
    box = project(tmp_path)
    report = init_json(box, "--ci", "gitlab")
    assert report["policy"] == "ratchet.toml"
    assert committed(box, "pyproject.toml") is None
    policy = tomllib.loads(committed(box, "ratchet.toml").decode())  # type: ignore[union-attr]
    assert policy == {"test_command": "python -m pytest", "evolvable": ["scripts/"]}
    assert committed(box, ".gitlab-ci.yml") == template("gitlab").encode()
    assert load_policy(GitRepo(box.path), box.head()).source.startswith("ratchet.toml@")
    # Asking for the other CI later adds its file: one more commit, and a baseline on it.
    head = box.head()
    report = init_json(box, "--ci", "github")
    assert [a["action"] for a in report["actions"] if a["status"] == "done"] == [
        "write", "commit", "record",
    ]  # fmt: skip
    assert committed(box, TARGETS["github"]) == template("github").encode()
    subject = box.git("log", "-1", "--format=%s", "main~1")
    assert subject == f"evolve init: add {TARGETS['github']}"
    assert box.git("diff", "--name-only", head, "main").splitlines() == [
        TARGETS["github"], "baseline/baseline.json",
    ]  # fmt: skip


def test_a_policy_already_on_main_is_left_as_it_is_and_the_users_hooks_are_kept(
    sandbox: Sandbox,
) -> None:
    """A repository set up by hand: deploy/agent.toml's [evolution], a baseline, a
    pre-push hook of the user's own. Init adds only what is missing."""
    sandbox.policy(reruns=0)
    (hooks_folder(sandbox) / "pre-push").write_text("#!/bin/sh\necho mine\n")
    report = init_json(sandbox)
    assert report["policy"] == "deploy/agent.toml [evolution]"
    assert committed(sandbox, "pyproject.toml") is None
    assert committed(sandbox, "ratchet.toml") is None
    assert sandbox.baseline()["commit"] == report["commit"]  # re-recorded on the commit
    assert report["hooks"]["kept"] == ["pre-push"]
    assert (hooks_folder(sandbox) / "pre-push").read_text() == "#!/bin/sh\necho mine\n"
    assert init_json(sandbox)["changed"] is False


def test_a_run_that_stopped_after_the_commit_is_finished_by_the_next(tmp_path: Path) -> None:
    """The configuration is on main but no baseline (the recording was interrupted):
    the next run records it, and commits nothing."""
    box = project(tmp_path, {
        "pyproject.toml": PYPROJECT + "\n\n[tool.ratchet]\nreruns = 0\n", ".gitignore": "/runs\n",
    })  # fmt: skip
    head = box.head()
    report = init_json(box)
    assert report["commit"] == "" and box.baseline()["commit"] == head
    assert box.git("rev-list", "--count", f"{head}..main") == "1"


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"tests/test_calc.py": None}, "no pytest suite on main"),
        ({"pyproject.toml": "[tool.ratchet]\nreruns = 0\n", "ratchet.toml": "reruns = 0\n"},
         "pyproject.toml [tool.ratchet] and ratchet.toml"),
        ({"pyproject.toml": '[project]\nname = "x"\n\n[tool.ratchet]\nflaky = "often"\n'},
         ':5: tool.ratchet.flaky must be "quarantine" or "strict"'),
    ],
    ids=["no-suite", "two-places", "bad-value"],
)  # fmt: skip
def test_what_init_cannot_work_on_is_a_usage_error(
    tmp_path: Path, files: dict[str, str | None], message: str
) -> None:
    box = project(tmp_path)
    for path, text in files.items():
        if text is None:
            box.git("rm", "-q", path)
        else:
            box.write({path: text})
    box.commit("the repository as found")
    head = box.head()
    done = box.evolve("init")
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert box.head() == head


def test_outside_a_repository_init_is_a_usage_error(tmp_path: Path) -> None:
    done = Sandbox(tmp_path).evolve("init")
    assert done.returncode == 2 and "not a git repository" in done.stderr


def test_a_pyproject_that_cannot_take_the_table_is_refused_with_what_to_write(
    tmp_path: Path,
) -> None:
    box = project(tmp_path, {"pyproject.toml": 'tool = { black = { line-length = 88 } }\n'})
    head = box.head()
    done = box.evolve("init")
    assert done.returncode == 1, done.stdout + done.stderr
    assert "cannot take a [tool.ratchet] table" in done.stderr
    assert 'test_command = "python -m pytest"' in done.stderr  # the hint: what to write
    assert box.head() == head
