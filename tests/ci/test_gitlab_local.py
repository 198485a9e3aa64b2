"""The shipped GitLab job set, run for real: gitlab-ci-local (pinned in .ci/node) with
its shell executor, against a repository made here whose main carries the template,
a suite of four test files and its recorded baseline, as `evolve init --ci gitlab`
leaves one. Each job runs in a build folder of its own (`--shell-isolation`), so the
part files reach the combine job only as artifacts, the way GitLab hands them over.

The install step is replaced through RATCHET_INSTALL with this checkout's environment
(no network); everything else is the template as shipped: the rules, `parallel`, the
`evolve check --shard` parts, `needs`, the combine and its JUnit report.

- a merge request that keeps every test passing: every job passes, the verdict is
  the combine of three parts of that commit;
- one that breaks `add`: the pipeline fails, the combine job fails, and its JUnit
  file names the tests that regressed;
- outside a merge-request pipeline (a push) no job runs.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

import pytest
from ci_tools import node_package, program
from repo_setup import BROKEN_ADD, copy_sandbox, git_identity, make_sandbox

from evolution.ci import template

# One worker builds the repository once (a module fixture) and runs the pipelines.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("gitlab-ci-local")]

BIN = Path(sys.executable).parent
MORE_TESTS = {
    "tests/test_more.py": "def test_a():\n    assert 1\n\n\ndef test_b():\n    assert 2\n",
    "tests/test_other.py": (
        "from scripts.calc import add\n\n\ndef test_c():\n    assert add(1, 1) == 2\n"
    ),
    "tests/test_text.py": "def test_upper():\n    assert 'a'.upper() == 'A'\n",
}
GREET = {"scripts/greet.py": "def greet(name):\n    return f'hello {name}'\n"}


@dataclass
class Pipeline:
    returncode: int
    stdout: str
    output: str  # stdout and stderr
    folder: Path

    def passed(self, job: str) -> bool:
        return any(line.split() == ["PASS", *job.split()] for line in self.output.splitlines())

    def failed(self, job: str) -> bool:
        return any(line.split() == ["FAIL", *job.split()] for line in self.output.splitlines())

    def verdict(self) -> dict:
        path = self.folder / ".gitlab-ci-local" / "artifacts" / "ratchet" / "ratchet-verdict.json"
        return json.loads(path.read_text(encoding="utf-8"))

    def junit(self) -> ET.Element:
        path = self.folder / ".gitlab-ci-local" / "artifacts" / "ratchet" / "ratchet-junit.xml"
        return ET.parse(path).getroot()


@dataclass
class Project:
    template: Path  # main (template, suite, baseline) with branches `good` and `bad`
    tool: Path
    home: Path

    def pipeline(self, branch: str, name: str, *, merge_request: bool = True) -> Pipeline:
        """The pipeline gitlab-ci-local runs for `branch`, in a copy of its own."""
        box = copy_sandbox(self.template, self.template.parent / name)
        box.git("switch", "-q", branch)
        install = f"RATCHET_INSTALL=export PATH={BIN}{os.pathsep}{_path()}"
        argv = [str(self.tool), "--force-shell-executor", "--shell-isolation", "--no-color",
                "--home", str(self.home), "--variable", install]  # fmt: skip
        if merge_request:
            argv += ["--variable", "CI_PIPELINE_SOURCE=merge_request_event"]
        else:
            argv += ["--list-json"]
        done = subprocess.run(argv, cwd=box.path, env=_environment(self.home),
                              capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
        return Pipeline(done.returncode, done.stdout, done.stdout + done.stderr, box.path)


def _path() -> str:
    return os.environ.get("PATH", "/usr/bin:/bin")


def _environment(home: Path) -> dict[str, str]:
    """This process's environment less what names a test run, a gate or a CI (the jobs
    are told what they are by gitlab-ci-local alone)."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("PYTEST_", "RATCHET_", "GITHUB_", "CI", "GITLAB_"))}  # fmt: skip
    env.update(HOME=str(home), NO_COLOR="1")
    return env


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Project:
    tool = node_package(".bin", "gitlab-ci-local")
    program("rsync", "gitlab-ci-local copies with it: apt-get install rsync (.ci/run does)")
    root = tmp_path_factory.mktemp("gitlab")
    with git_identity():
        box = make_sandbox(root / "template", record=False)
        box.commit("evolve init --ci gitlab", {".gitlab-ci.yml": template("gitlab"), **MORE_TESTS})
        done = box.evolve("baseline", "record", "--reruns", "0")
        assert done.returncode == 0, done.stderr
        box.branch("good", GREET)
        box.branch("bad", {"scripts/calc.py": BROKEN_ADD})
    home = root / "home"
    home.mkdir()
    return Project(box.path, tool, home)


def test_a_good_merge_request_passes_every_job(project: Project) -> None:
    pipeline = project.pipeline("good", "good")
    assert pipeline.returncode == 0, pipeline.output[-4000:]
    for index in (1, 2, 3):
        assert pipeline.passed(f"ratchet-part: [{index}/3]"), pipeline.output[-4000:]
    assert pipeline.passed("ratchet")
    verdict = pipeline.verdict()
    head = subprocess.run(["git", "rev-parse", "good"], cwd=pipeline.folder,
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert verdict["verdict"] == "accepted" and verdict["mode"] == "combined"
    assert verdict["commit"] == head
    assert sorted(part["index"] for part in verdict["parts"]) == [1, 2, 3]
    assert sum(part["tests"] for part in verdict["parts"]) == verdict["tests_run"] == 7
    assert pipeline.junit().find(".//failure") is None


def test_a_regression_fails_the_combine_job_and_is_named_in_junit(project: Project) -> None:
    pipeline = project.pipeline("bad", "bad")
    assert pipeline.returncode != 0
    assert pipeline.failed("ratchet"), pipeline.output[-4000:]
    assert pipeline.verdict()["verdict"] == "rejected"
    failed = {
        f"{case.get('classname')}::{case.get('name')}"
        for case in pipeline.junit().iter("testcase")
        if case.find("failure") is not None
    }
    assert failed == {"tests.test_calc::test_add", "tests.test_other::test_c"}


def test_a_push_pipeline_runs_no_job(project: Project) -> None:
    listing = project.pipeline("good", "push", merge_request=False)
    assert listing.returncode == 0, listing.output[-2000:]
    jobs = json.loads(listing.stdout[listing.stdout.index("[") :])
    assert jobs and {job["when"] for job in jobs} == {"never"}
