"""`evolve check` as the required check of a merge queue, simulated with real git
repositories and real sandboxed runs.

A bare "origin" holds main with its recorded baseline; candidate branches A (a new
feature and its test) and B (a change that breaks `add`) are pushed to it, and the
queue builds speculative merge groups: group 1 = main+A, group 2 = main+A+B, pushed
as branches the way GitHub's merge queue does. Runners are separate clones, fresh like
CI runners (no verdict cache, no timings). Group 1 is judged in three parts on three
clones and combined; group 2 in full, on GitHub Actions: rejected, the regression named
in the JUnit file, the annotation and the step summary. A forged, missing, duplicated
or foreign part makes a combine invalid (exit 3), never accepted.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import xml.etree.ElementTree as ET
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, git_identity, make_sandbox, run_evolve

from evolution.gate.parts import write_part

# One worker builds the queue and its parts once (module fixtures), not one per worker.
pytestmark = [pytest.mark.e2e, pytest.mark.xdist_group("merge-queue")]

KEY = "a-ci-secret"
MORE_TESTS = {
    "tests/test_more.py": "def test_a():\n    assert 1\n\n\ndef test_b():\n    assert 2\n",
    "tests/test_other.py": (
        "from scripts.calc import add\n\n\ndef test_c():\n    assert add(1, 1) == 2\n"
    ),
    "tests/test_text.py": "def test_upper():\n    assert 'a'.upper() == 'A'\n",
}
FEATURE = {
    "scripts/greet.py": "def greet(name):\n    return f'hello {name}'\n",
    "tests/test_greet.py": (
        "from scripts.greet import greet\n\n\ndef test_greet():\n"
        "    assert greet('x') == 'hello x'\n"
    ),
}


def git(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"git {args}: {done.stderr}"
    return done.stdout.strip()


@dataclass
class Queue:
    root: Path
    origin: Path
    group1: str
    group2: str

    def runner(self, name: str, group: str) -> Path:
        """A fresh clone, checked out at `group` (detached, as CI checks out a commit)."""
        path = self.root / name
        if not path.exists():
            git(self.root, "clone", "-q", str(self.origin), name)
        git(path, "fetch", "-q", "origin", "+refs/heads/*:refs/remotes/origin/*")
        git(path, "checkout", "-q", "--detach", group)
        return path

    def check(self, runner: Path, *args: str, env: dict[str, str] | None = None):
        return run_evolve("check", "--base", "origin/main", *args, cwd=runner, env=env,
                          timeout=180)  # fmt: skip

    def parts(self, group: str, tag: str, env: dict[str, str] | None = None) -> list[Path]:
        """`group` checked in three parts, each by its own runner clone and process."""
        files = []
        for index in (1, 2, 3):
            runner = self.runner(f"runner-{index}", group)
            out = self.root / "artifacts" / tag / f"part-{index}.json"
            done = self.check(runner, "--shard", f"{index}/3", "--out", str(out), "--json",
                              env=env)  # fmt: skip
            assert done.returncode in (0, 1), done.stdout + done.stderr
            assert json.loads(done.stdout)["part_file"] == str(out)
            files.append(out)
        return files

    def combine(self, group: str, *files: Path, env: dict[str, str] | None = None,
                retry: tuple[Path, ...] = ()):  # fmt: skip
        """The combine job: a clone of its own, at the same commit as the parts."""
        runner = self.runner("combiner", group)
        args = [a for path in retry for a in ("--retry", str(path))]
        return self.check(runner, "--combine", *map(str, files), *args, "--json", env=env)


@pytest.fixture(scope="module")
def queue(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Queue]:
    root = tmp_path_factory.mktemp("queue")
    with git_identity():
        dev = make_sandbox(root / "dev", record=False)
        dev.commit("more tests", MORE_TESTS)
        done = dev.evolve("baseline", "record", "--reruns", "0")
        assert done.returncode == 0, done.stderr
        git(root, "clone", "-q", "--bare", str(dev.path), "origin.git")
        origin = root / "origin.git"
        dev.git("remote", "add", "origin", str(origin))
        a = dev.branch("feature-a", FEATURE)
        b = dev.branch("feature-b", {"scripts/calc.py": BROKEN_ADD})
        dev.git("push", "-q", "origin", "feature-a", "feature-b")
        # The queue's speculative groups, each on top of the one before.
        dev.git("switch", "-q", "--detach", "main")
        dev.git("merge", "-q", "--no-ff", "--no-verify", "-m", "Merge group 1 (A)", a)
        group1 = dev.head("HEAD")
        dev.git("merge", "-q", "--no-ff", "--no-verify", "-m", "Merge group 2 (A, B)", b)
        group2 = dev.head("HEAD")
        dev.git("push", "-q", "origin", f"{group1}:refs/heads/gh-readonly-queue/main/pr-1",
                f"{group2}:refs/heads/gh-readonly-queue/main/pr-2")  # fmt: skip
        yield Queue(root, origin, group1, group2)


@pytest.fixture(scope="module")
def group1_parts(queue: Queue) -> list[Path]:
    return queue.parts(queue.group1, "group1")


@pytest.fixture(scope="module")
def group2_parts(queue: Queue) -> list[Path]:
    return queue.parts(queue.group2, "group2")


def test_group_one_split_three_ways_on_three_runners_is_accepted(
    queue: Queue, group1_parts: list[Path]
) -> None:
    done = queue.combine(queue.group1, *group1_parts)
    assert done.returncode == 0, done.stdout + done.stderr
    verdict = json.loads(done.stdout)
    assert verdict["verdict"] == "accepted" and verdict["mode"] == "combined"
    # The seam for whoever advances the shared baseline: what was tested, against what.
    origin_main = git(queue.origin, "rev-parse", "main")
    assert verdict["commit"] == queue.group1
    assert verdict["tree"] == git(queue.origin, "rev-parse", f"{queue.group1}^{{tree}}")
    assert verdict["base"] == origin_main
    assert verdict["baseline"]["blob"] == git(
        queue.origin, "rev-parse", "main:baseline/baseline.json"
    )
    assert verdict["newly_passing"] == ["tests/test_greet.py::test_greet"]
    assert sorted(p["index"] for p in verdict["parts"]) == [1, 2, 3]
    assert sum(p["tests"] for p in verdict["parts"]) == verdict["tests_run"] == 8
    # Each part ran only its share, and no test twice.
    ran = [set(json.loads(f.read_text())["body"]["result"]["outcomes"]) for f in group1_parts]
    assert all(ran) and sum(map(len, ran)) == len(set().union(*ran))
    # A check changes no ref: the runners' and the origin's refs are as they were.
    assert git(queue.origin, "rev-parse", "main") == origin_main
    assert "refs/notes" not in git(queue.root / "runner-1", "for-each-ref")


def test_group_two_regression_is_rejected_and_named_for_github(
    queue: Queue, tmp_path: Path
) -> None:
    runner = queue.runner("runner-2", queue.group2)
    summary, junit = tmp_path / "summary.md", tmp_path / "junit.xml"
    env = {"GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)}
    done = queue.check(runner, "--junit", str(junit), env=env)
    assert done.returncode == 1, done.stdout + done.stderr
    cases = {
        f"{c.get('classname')}::{c.get('name')}": c for c in ET.parse(junit).iter("testcase")
    }
    failure = cases["tests.test_calc::test_add"].find("failure")
    assert failure is not None and failure.get("type") == "regression"
    assert cases["tests.test_other::test_c"].find("failure") is not None
    errors = [line for line in done.stdout.splitlines() if line.startswith("::error ")]
    assert len(errors) == 2
    assert any(
        line.startswith("::error file=tests/test_calc.py,line=5,") and "test_add" in line
        for line in errors
    ), errors
    text = summary.read_text()
    assert "Ratchet: rejected" in text and "tests/test_calc.py::test_add" in text
    assert git(queue.origin, "rev-parse", "main") == git(runner, "rev-parse", "origin/main")


def test_group_two_in_parts_is_rejected_too(queue: Queue, group2_parts: list[Path]) -> None:
    done = queue.combine(queue.group2, *group2_parts)
    assert done.returncode == 1, done.stdout + done.stderr
    regressed = {r["nodeid"] for r in json.loads(done.stdout)["regressions"]}
    assert regressed == {"tests/test_calc.py::test_add", "tests/test_other.py::test_c"}


def _holding(parts: list[Path], nodeid: str) -> Path:
    """The part file that ran `nodeid`."""
    return next(p for p in parts if nodeid in json.loads(p.read_text())["body"]["result"]["outcomes"])  # noqa: E501


def _forge(part: Path, target: Path, nodeid: str, *, reseal: bool) -> Path:
    """`part` with `nodeid` turned into a pass; resealed as a forger who knows the
    format would (a fresh digest, no key), or only edited."""
    sealed = json.loads(part.read_text())
    body = sealed["body"]
    body["result"]["outcomes"][nodeid] = "passed"
    body["result"]["failures"].pop(nodeid, None)
    if reseal:
        write_part(target, body, None)
    else:
        target.write_text(json.dumps(sealed))
    return target


def test_a_part_with_an_edited_outcome_makes_the_combine_invalid(
    queue: Queue, group2_parts: list[Path], tmp_path: Path
) -> None:
    holder = _holding(group2_parts, "tests/test_calc.py::test_add")
    forged = _forge(holder, tmp_path / "forged.json", "tests/test_calc.py::test_add",
                    reseal=False)  # fmt: skip
    others = [p for p in group2_parts if p != holder]
    done = queue.combine(queue.group2, *others, forged)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "digest does not match" in json.loads(done.stdout)["error"]


def test_with_the_key_a_resealed_forgery_is_invalid_and_honest_parts_combine(
    queue: Queue, tmp_path: Path
) -> None:
    env = {"RATCHET_PART_KEY": KEY}
    signed = queue.parts(queue.group2, "group2-signed", env=env)
    honest = queue.combine(queue.group2, *signed, env=env)
    assert honest.returncode == 1, honest.stdout + honest.stderr
    assert json.loads(honest.stdout)["attestation"] == "hmac"
    nodeids = ["tests/test_calc.py::test_add", "tests/test_other.py::test_c"]
    forged = [
        _forge(p, tmp_path / f"forged-{i}.json", n, reseal=True)
        for i, (p, n) in enumerate((_holding(signed, n), n) for n in nodeids)
    ]
    rest = [p for p in signed if p not in {_holding(signed, n) for n in nodeids}]
    done = queue.combine(queue.group2, *rest, *forged, env=env)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "no valid HMAC" in json.loads(done.stdout)["error"]
    # Signed parts combined where the key is missing cannot be verified: invalid.
    unkeyed = queue.combine(queue.group2, *signed)
    assert unkeyed.returncode == 3 and "cannot be verified" in json.loads(unkeyed.stdout)["error"]


@pytest.mark.parametrize("flaw", ["missing", "duplicated", "other tree", "renamed copy"])
def test_an_incomplete_or_foreign_set_of_parts_is_invalid(
    queue: Queue, group1_parts: list[Path], group2_parts: list[Path], flaw: str, tmp_path: Path
) -> None:
    if flaw == "missing":
        files, said = group2_parts[:2], "3 of 3 missing"
    elif flaw == "duplicated":
        files, said = [*group2_parts, group2_parts[0]], "duplicated"
    elif flaw == "renamed copy":
        # Part 1's file copied under another name and given in place of part 2.
        copy = Path(shutil.copy(group2_parts[0], tmp_path / "part-2.json"))
        files, said = [group2_parts[0], copy, group2_parts[2]], "duplicated"
    else:
        # Group 1's part in place of group 2's: the combine judges group 2's tree.
        files, said = [group1_parts[0], *group2_parts[1:]], "a part of another run"
    done = queue.combine(queue.group2, *files)
    assert done.returncode == 3, done.stdout + done.stderr
    assert said in json.loads(done.stdout)["error"]


def test_a_rerun_of_a_part_is_a_retry_not_a_second_part(
    queue: Queue, group2_parts: list[Path]
) -> None:
    """A CI job run again gives a second file for the same part: given as a part, the
    set is not a whole (invalid); given as --retry, it is evidence, and the regression
    that failed in both runs stays a regression."""
    runner = queue.runner("runner-1", queue.group2)
    holder = _holding(group2_parts, "tests/test_calc.py::test_add")
    index = json.loads(holder.read_text())["body"]["split"]["index"] + 1
    again = queue.root / "artifacts" / "group2-again" / f"part-{index}.json"
    done = queue.check(runner, "--shard", f"{index}/3", "--out", str(again))
    assert done.returncode in (0, 1), done.stdout + done.stderr
    twice = queue.combine(queue.group2, *group2_parts, again)
    assert twice.returncode == 3 and "--retry" in json.loads(twice.stdout)["error"]
    retried = queue.combine(queue.group2, *group2_parts, retry=(again,))
    assert retried.returncode == 1, retried.stdout + retried.stderr
    verdict = json.loads(retried.stdout)
    assert {r["nodeid"] for r in verdict["regressions"]} >= {"tests/test_calc.py::test_add"}
    assert verdict["flaky"] == {}  # failed in both runs: broken, not flaky
