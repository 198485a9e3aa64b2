"""The gate's policy: path patterns, where it is read from and how a bad one is reported,
the test command, the digest."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

import pytest
from repo_setup import Sandbox, make_sandbox

from agent.errors import UsageError
from evolution.gitrepo import GitRepo
from evolution.policy import (
    DEFAULT_PROTECTED,
    POLICY_FILES,
    PYPROJECT,
    Policy,
    load_policy,
    matches,
    parse_policy,
)

ORIGIN = "deploy/agent.toml@abc123"

# --- matches -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("tests/x.py", True),
        ("tests/deep/nested/x.py", True),
        ("tests", True),  # the folder itself
        ("pkg/tests/x.py", False),  # only from the repository root
        ("testsuite/x.py", False),  # a prefix of the name is not the folder
        ("xtests/x.py", False),
    ],
)
def test_folder_pattern_matches_from_the_root_only(path: str, expected: bool) -> None:
    assert matches(path, ("tests/",)) is expected


@pytest.mark.parametrize(
    ("path", "pattern", "expected"),
    [
        ("conftest.py", "conftest.py", True),
        ("pkg/conftest.py", "conftest.py", True),
        ("a/b/c/conftest.py", "conftest.py", True),
        ("pkg/conftest.pyc", "conftest.py", False),
        ("pkg/my_conftest.py", "conftest.py", False),
        ("scripts/test_foo.py", "test_*.py", True),
        ("test_foo.py", "test_*.py", True),
        ("scripts/my_test_foo.py", "test_*.py", False),
        ("test_dir/foo.py", "test_*.py", False),  # the name, not a folder on the way
        ("a/b/thing_test.py", "*_test.py", True),
    ],
)
def test_bare_name_matches_in_any_folder(path: str, pattern: str, expected: bool) -> None:
    assert matches(path, (pattern,)) is expected


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("docs/guide.md", True),
        ("docs/api/ref.md", True),  # fnmatch's * crosses slashes
        ("sub/docs/guide.md", False),  # a glob with a slash matches the whole path
        ("docs/guide.txt", False),
        ("guide.md", False),
    ],
)
def test_glob_with_a_slash_matches_the_whole_path(path: str, expected: bool) -> None:
    assert matches(path, ("docs/*.md",)) is expected


def test_no_patterns_match_nothing() -> None:
    assert not matches("anything.py", ())


@pytest.mark.parametrize(
    "path",
    [
        "tests/x.py",
        "pkg/conftest.py",
        "pyproject.toml",
        "baseline/baseline.json",
        "hooks/pre-push",
        "evolution/gate.py",
        "SPEC.md",
        "deploy/agent.toml",
        ".ci/run",
        "scripts/test_calc.py",
        "scripts/calc_test.py",
        "pytest.ini",
        "setup.cfg",
        "tox.ini",
    ],
)
def test_default_protected_paths(path: str) -> None:
    assert matches(path, DEFAULT_PROTECTED)
    assert matches(path, Policy().protected)


@pytest.mark.parametrize("path", ["scripts/foo.py", "scripts/calc.py", "README.md", "agent/x.py"])
def test_default_unprotected_paths(path: str) -> None:
    assert not matches(path, DEFAULT_PROTECTED)


def test_default_evolvable_is_scripts() -> None:
    assert matches("scripts/foo.py", Policy().evolvable)
    assert not matches("agent/foo.py", Policy().evolvable)


# --- parse_policy --------------------------------------------------------------------


def test_parse_reads_the_evolution_table_and_ignores_other_keys() -> None:
    text = """
    [agent]
    model = "some-model"
    reruns = "not mine to check"

    [evolution]
    test_command = "python -m pytest -x"
    evolvable = ["scripts/", "prompts/"]
    protected = ["tests/"]
    reruns = 5
    flaky = "strict"
    require_improvement = true
    max_rejections = 2
    test_timeout_s = 30
    run_timeout_s = 120.5
    proposer_model = "another layer's key"

    [evolution.extra]
    nested = 1
    """
    policy = parse_policy(text, ORIGIN)
    assert policy == Policy(
        test_command="python -m pytest -x",
        evolvable=("scripts/", "prompts/"),
        protected=("tests/",),
        reruns=5,
        flaky="strict",
        require_improvement=True,
        max_rejections=2,
        test_timeout_s=30,
        run_timeout_s=120.5,
    )
    assert policy.source == ORIGIN
    assert isinstance(policy.evolvable, tuple)


def test_parse_without_an_evolution_table_gives_the_defaults() -> None:
    policy = parse_policy('[agent]\nmodel = "x"\n', ORIGIN)
    assert policy == Policy()
    assert policy.source == ORIGIN
    assert parse_policy("", ORIGIN) == Policy()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("[evolution\nreruns = 3\n", "not valid TOML"),
        ("[evolution]\nreruns = \n", "not valid TOML"),
        ("evolution = 3\n", "must be a table"),
        ('[evolution]\nreruns = "3"\n', "evolution.reruns has the wrong type"),
        ("[evolution]\nreruns = true\n", "evolution.reruns has the wrong type"),
        ("[evolution]\nmax_rejections = false\n", "evolution.max_rejections has the wrong type"),
        ("[evolution]\nreruns = 2.5\n", "evolution.reruns has the wrong type"),
        ("[evolution]\ntest_timeout_s = true\n", "evolution.test_timeout_s has the wrong type"),
        ('[evolution]\nrun_timeout_s = "1h"\n', "evolution.run_timeout_s has the wrong type"),
        ('[evolution]\nevolvable = "scripts/"\n', "evolution.evolvable has the wrong type"),
        ("[evolution]\nrequire_improvement = 1\n", "require_improvement has the wrong type"),
        ("[evolution]\ntest_command = ['pytest']\n", "test_command has the wrong type"),
        ('[evolution]\nflaky = "sometimes"\n', "evolution.flaky must be"),
        ("[evolution]\nflaky = 1\n", "evolution.flaky has the wrong type"),
        ('[evolution]\nrevert_people = "yes"\n', "evolution.revert_people has the wrong type"),
        ("[evolution]\nrevert_people = 1\n", "evolution.revert_people has the wrong type"),
        ("[evolution]\nquarantine_days = 0\n", "quarantine_days must be a whole number"),
        ("[evolution]\nquarantine_days = 1.5\n", "quarantine_days has the wrong type"),
        ('[evolution]\nread_paths = "/opt/x"\n', "read_paths has the wrong type"),
        ('[evolution]\nread_paths = ["data"]\n', "read_paths takes absolute"),
        ('[evolution]\nread_paths = ["/"]\n', "read_paths takes absolute"),
    ],
)
def test_parse_rejects_unusable_files(text: str, needle: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_policy(text, ORIGIN)
    assert needle in caught.value.message
    assert caught.value.message.startswith(ORIGIN)


def test_parse_reads_the_quarantine_length_and_the_read_paths() -> None:
    text = '[evolution]\nquarantine_days = 7\nread_paths = ["/opt/data", "~/corpus"]\n'
    policy = parse_policy(text, ORIGIN)
    assert policy.quarantine_days == 7
    assert policy.read_paths == ("/opt/data", "~/corpus")
    assert Policy().quarantine_days == 30 and Policy().read_paths == ()


def test_parse_rejects_non_string_patterns() -> None:
    with pytest.raises(UsageError):
        parse_policy("[evolution]\nprotected = [1, 2]\n", ORIGIN)


# --- argv ----------------------------------------------------------------------------


@pytest.mark.parametrize("python", ["python", "python3"])
def test_argv_replaces_a_leading_python_by_this_interpreter(python: str) -> None:
    policy = Policy(test_command=f"{python} -m pytest -x 'tests/a b.py'")
    assert policy.argv() == [sys.executable, "-m", "pytest", "-x", "tests/a b.py"]


@pytest.mark.parametrize(
    ("command", "argv"),
    [
        ("pytest -q", ["pytest", "-q"]),
        ("/usr/bin/python -m pytest", ["/usr/bin/python", "-m", "pytest"]),
        ("python3.11 -m pytest", ["python3.11", "-m", "pytest"]),
        ("tox -e python", ["tox", "-e", "python"]),
    ],
)
def test_argv_leaves_other_commands_alone(command: str, argv: list[str]) -> None:
    assert Policy(test_command=command).argv() == argv


def test_default_argv_runs_pytest_with_this_interpreter() -> None:
    assert Policy().argv() == [sys.executable, "-m", "pytest"]


# --- digest --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"test_command": "python -m pytest -x"},
        {"evolvable": ("scripts/", "prompts/")},
        {"protected": ("tests/",)},
        {"reruns": 0},
        {"flaky": "strict"},
        {"require_improvement": True},
        {"max_rejections": 9},
        {"test_timeout_s": 10.0},
        {"run_timeout_s": 60.0},
        {"quarantine_days": 7},
        {"read_paths": ("/opt/data",)},
    ],
    ids=lambda change: next(iter(change)),
)
def test_digest_changes_with_every_verdict_relevant_field(change: dict) -> None:
    assert dataclasses.replace(Policy(), **change).digest() != Policy().digest()


def test_digest_ignores_source() -> None:
    assert Policy(source="deploy/agent.toml@x").digest() == Policy().digest()
    parsed = parse_policy("[evolution]\nreruns = 3\n", ORIGIN)
    assert parsed.digest() == Policy().digest()


def test_revert_people_is_off_by_default_and_read_from_the_table() -> None:
    assert Policy().revert_people is False
    assert parse_policy("[evolution]\nrevert_people = true\n", ORIGIN).revert_people is True
    assert parse_policy("[evolution]\nrevert_people = false\n", ORIGIN) == Policy()


def test_digest_ignores_revert_people() -> None:
    """It changes what the safety net does with a verdict, not the verdict: switching it
    on must not throw the verdict cache away."""
    assert Policy(revert_people=True).digest() == Policy().digest()


def test_digest_is_stable_and_short() -> None:
    assert Policy().digest() == Policy().digest()
    assert len(Policy().digest()) == 16
    int(Policy().digest(), 16)


def test_with_overrides_ignores_none_and_replaces_the_rest() -> None:
    policy = Policy()
    assert policy.with_overrides(reruns=None) is policy
    changed = policy.with_overrides(reruns=0, flaky="strict", test_timeout_s=None)
    assert (changed.reruns, changed.flaky, changed.test_timeout_s) == (0, "strict", 300.0)


def test_a_bad_key_names_its_line() -> None:
    text = '[schedule]\ncadence_s = 600\n\n[evolution]\nreruns = 3\nflaky = "often"\n'
    with pytest.raises(UsageError) as caught:
        parse_policy(text, ORIGIN)
    assert caught.value.message.startswith(f"{ORIGIN}:6: evolution.flaky must be")


# --- where the policy lives: one place, read from main's commit ------------------------

PYPROJECT_TEXT = """\
[project]
name = "sample"

[tool.ruff]
line-length = 100

[tool.ratchet]
evolvable = ["scripts/"]
reruns = 1
"""


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path / "repo", record=False)


def _loaded(box: Sandbox) -> Policy:
    return load_policy(GitRepo(box.path), box.head())


def test_the_policy_is_read_from_tool_ratchet_in_pyproject(box: Sandbox) -> None:
    box.commit("policy", {"pyproject.toml": PYPROJECT_TEXT})
    policy = _loaded(box)
    assert policy == Policy(reruns=1)
    assert policy.source == f"pyproject.toml@{box.head()[:10]}"


def test_the_policy_is_read_from_ratchet_toml_at_its_top_level(box: Sandbox) -> None:
    box.commit("policy", {"ratchet.toml": 'flaky = "strict"\nreruns = 0\n'})
    policy = _loaded(box)
    assert policy == Policy(flaky="strict", reruns=0)
    assert policy.source.startswith("ratchet.toml@")


def test_a_pyproject_without_tool_ratchet_holds_no_policy(box: Sandbox) -> None:
    """A project's pyproject.toml is not a policy until it has [tool.ratchet]: the
    deployment's agent.toml (or the defaults) serve beside it."""
    box.commit("project", {"pyproject.toml": '[project]\nname = "x"\n\n[tool.ratchet-x]\na = 1\n'})
    assert _loaded(box) == Policy() and _loaded(box).source == "defaults"
    box.policy(reruns=2)
    assert _loaded(box) == Policy(reruns=2)
    assert _loaded(box).source.startswith("deploy/agent.toml@")


@pytest.mark.parametrize(
    ("files", "named"),
    [
        ({"pyproject.toml": PYPROJECT_TEXT, "ratchet.toml": "reruns = 1\n"},
         "pyproject.toml [tool.ratchet] and ratchet.toml"),
        ({"pyproject.toml": PYPROJECT_TEXT, "deploy/agent.toml": "[evolution]\nreruns = 1\n"},
         "pyproject.toml [tool.ratchet] and deploy/agent.toml [evolution]"),
        ({"ratchet.toml": "", "deploy/agent.toml": "[evolution]\n"},
         "ratchet.toml and deploy/agent.toml [evolution]"),
    ],
)  # fmt: skip
def test_a_policy_in_two_places_is_an_error_naming_both(
    box: Sandbox, files: dict[str, str], named: str
) -> None:
    """No order of precedence decides silently: even two places that agree are refused,
    because the next edit to one of them would not be the policy."""
    box.commit("two policies", files)
    with pytest.raises(UsageError) as caught:
        _loaded(box)
    assert named in caught.value.message
    assert caught.value.exit_code == 2
    assert caught.value.hint and "remove the other" in caught.value.hint


def test_the_policy_comes_from_mains_commit_not_the_checkout_or_a_branch(box: Sandbox) -> None:
    box.commit("policy", {"pyproject.toml": PYPROJECT_TEXT})
    box.branch("relax", {"pyproject.toml": PYPROJECT_TEXT.replace("reruns = 1", "reruns = 9")})
    (box.path / "pyproject.toml").write_text(PYPROJECT_TEXT.replace("reruns = 1", "reruns = 7"))
    (box.path / "ratchet.toml").write_text("reruns = 5\n")  # untracked: not on main
    assert _loaded(box).reruns == 1


@pytest.mark.parametrize(
    ("files", "where"),
    [
        ({"pyproject.toml": PYPROJECT_TEXT.replace("reruns = 1", 'reruns = "1"')},
         "pyproject.toml@{}:9: tool.ratchet.reruns has the wrong type"),
        ({"pyproject.toml": PYPROJECT_TEXT + 'flaky = "often"\n'},
         "pyproject.toml@{}:10: tool.ratchet.flaky must be"),
        ({"pyproject.toml": PYPROJECT_TEXT + "rerun = 2\n"},
         "pyproject.toml@{}:10: tool.ratchet.rerun is not a key of the gate's policy"),
        ({"ratchet.toml": "# the gate\n\nquarantine_days = 0\n"},
         "ratchet.toml@{}:3: quarantine_days must be a whole number from 1"),
        ({"ratchet.toml": "[tool.ratchet]\nreruns = 1\n"},
         "ratchet.toml@{}:1: tool is not a key of the gate's policy"),
        ({"pyproject.toml": "[project\n"}, "pyproject.toml@{}: not valid TOML"),
        ({"pyproject.toml": "[tool]\nratchet = 3\n"},
         "pyproject.toml@{}:2: tool.ratchet must be a table"),
    ],
)  # fmt: skip
def test_a_bad_value_names_the_file_as_committed_its_line_and_its_key(
    box: Sandbox, files: dict[str, str], where: str
) -> None:
    box.commit("a bad policy", files)
    with pytest.raises(UsageError) as caught:
        _loaded(box)
    assert caught.value.message.startswith(where.format(box.head()[:10])), caught.value.message


def test_the_shared_evolution_table_ignores_other_layers_keys_a_gate_table_does_not() -> None:
    """deploy/agent.toml's [evolution] holds the cycle's keys too; [tool.ratchet] is the
    gate's alone, so a key it does not know is a typo."""
    assert parse_policy("[evolution]\nproposer_model = 1\n", ORIGIN) == Policy()
    with pytest.raises(UsageError, match=r"tool\.ratchet\.proposer_model is not a key"):
        parse_policy("[tool.ratchet]\nproposer_model = 1\n", "pyproject.toml", PYPROJECT)
    assert parse_policy('[tool.ratchet]\nobjectives = ["x"]\n', "p", PYPROJECT) == Policy()


def test_the_policy_files_are_the_places_it_is_read_from() -> None:
    assert POLICY_FILES == ("pyproject.toml", "ratchet.toml", "deploy/agent.toml")
    for path in POLICY_FILES:
        assert matches(path, DEFAULT_PROTECTED)
