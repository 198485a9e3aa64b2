"""`evolve cycle` end to end: real repositories, real gate runs, the real litellm client
against the loopback server, and the offline `mutate` proposer. One test runs the command
as a subprocess; the others through the same app in the test's process, which imports
litellm once instead of once per test."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from llm_server import ScriptedLLM, Step
from proposal_setup import GOOD_REPLY, KEY_ENV, SECRET, configure
from repo_setup import SAMPLE_PYTEST_INI, Sandbox, make_sandbox

from agent.ledger import Ledger
from evolution.cycle import _objective_goals
from evolution.gitrepo import GitRepo
from evolution.propose.context import failing_by_target, open_context

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

BREAK_ADD = """scripts/calc.py
<<<<<<< SEARCH
def add(a, b):
    return a + b
=======
def add(a, b):
    return a - b
>>>>>>> REPLACE
"""


def cycle(box: Sandbox, *args: str, in_process: bool = True) -> tuple[int, dict]:
    """`evolve cycle --json ARGS`, in this process unless told (litellm loads once)."""
    env = {KEY_ENV: SECRET}
    done = (box.evolve_in_process("cycle", "--json", *args, env=env) if in_process
            else box.evolve("cycle", "--json", *args, env=env, timeout=300))  # fmt: skip
    return done.returncode, json.loads(done.stdout)


def with_evolution(box: Sandbox, text: str) -> None:
    config = box.path / "deploy" / "agent.toml"
    box.commit("evolution settings", {"deploy/agent.toml": config.read_text() + "\n" + text})


def test_an_offline_cycle_repairs_with_mutate_and_stops_when_nothing_is_left(sandbox: Sandbox):
    code, report = cycle(sandbox, "--max", "3", in_process=False)  # the command, as a process
    assert code == 0, report
    [iteration] = report["iterations"]
    assert iteration["goal"]["source"] == "failing-tests"
    assert iteration["goal"]["target"] == "scripts/calc.py"
    assert (iteration["verdict"], iteration["proposal"]["proposer"]) == ("accepted", "mutate")
    assert report["stopped"] == "nothing-to-do"
    log = sandbox.evolve("log", "--json").stdout
    assert [e["verdict"] for e in json.loads(log)["entries"]][:1] == ["accepted"]


def test_the_cycle_stops_after_n_proposals(sandbox: Sandbox):
    sandbox.commit("a second seeded bug", {
        "scripts/text.py": "def shout(s):\n    return s.lower()\n",
        "tests/test_text.py": "from scripts.text import shout\n\n\n"
                              "def test_shout():\n    assert shout('a') == 'A'\n",
    })  # fmt: skip
    sandbox.evolve("baseline", "record", timeout=180)
    code, report = cycle(sandbox, "--max", "1", "--max-seconds", "20")
    assert code == 0
    assert len(report["iterations"]) == 1 and report["stopped"] == "max"
    assert report["reason"] == "1 proposals made"


def test_an_llm_driven_cycle_goes_through_the_gate(sandbox: Sandbox, llm: ScriptedLLM):
    configure(sandbox, llm)
    llm.add("primary", Step(GOOD_REPLY))
    code, report = cycle(sandbox, "--max", "2")
    assert code == 0, report
    [iteration] = report["iterations"]
    proposal = iteration["proposal"]
    assert (proposal["proposer"], proposal["model"]) == ("llm", "openai/primary")
    assert proposal["cost_usd"] > 0 and iteration["verdict"] == "accepted"
    assert iteration["gate"]["passing_after"] == iteration["gate"]["passing_before"] + 1
    assert "test_mul" in llm.requests_for("primary")[0].text
    assert SECRET not in json.dumps(report)


def test_rejections_in_a_row_stop_the_cycle(sandbox: Sandbox, llm: ScriptedLLM):
    configure(sandbox, llm)
    with_evolution(sandbox, "[evolution]\nmax_rejections = 2\n")
    llm.add("primary", Step(BREAK_ADD), Step(BREAK_ADD), Step(BREAK_ADD))
    code, report = cycle(sandbox, "--max", "5", "--proposer", "llm")
    assert code == 1
    assert [it["verdict"] for it in report["iterations"]] == ["rejected", "rejected"]
    assert report["stopped"] == "rejections"
    rejected = sandbox.git("for-each-ref", "--format=%(refname)", "refs/evolve/rejected/")
    assert len(rejected.split()) == 2  # every iteration left its trace in git


def test_the_cycle_budget_stops_it(sandbox: Sandbox, llm: ScriptedLLM):
    configure(sandbox, llm)
    llm.add("primary", Step(BREAK_ADD), Step(BREAK_ADD))
    code, report = cycle(sandbox, "--max", "5", "--proposer", "llm", "--budget-usd", "0.0001")
    assert code == 1
    assert len(report["iterations"]) == 1 and report["stopped"] == "budget"


def test_a_reached_cap_stops_the_cycle_before_any_call(sandbox: Sandbox, llm: ScriptedLLM):
    configure(sandbox, llm, cap=1.0)
    with Ledger(sandbox.path / "runs" / "ledger.sqlite") as ledger:
        spent = ledger.reserve("openai/primary", "earlier", 1.0, 1.0)
        ledger.settle(spent, outcome="ok", cost_usd=1.0)
    code, report = cycle(sandbox, "--max", "3")
    assert code == 1
    assert report["iterations"] == [] and report["stopped"] == "capped"
    assert llm.received == []


def test_the_kill_flag_stops_the_cycle(sandbox: Sandbox):
    (sandbox.path / "runs").mkdir(exist_ok=True)
    (sandbox.path / "runs" / "KILL").write_text("stop")
    code, report = cycle(sandbox, "--max", "3")
    assert code == 1
    assert report["iterations"] == [] and report["stopped"] == "killed"
    assert sandbox.git("for-each-ref", "refs/heads/evolve/") == ""


def test_when_no_model_answers_mutate_takes_over(sandbox: Sandbox, llm: ScriptedLLM):
    configure(sandbox, llm)  # nothing scripted: every model answers 500
    code, report = cycle(sandbox, "--max", "1")
    assert code == 0, report
    [iteration] = report["iterations"]
    assert (iteration["proposal"]["proposer"], iteration["verdict"]) == ("mutate", "accepted")
    assert llm.requests_for("primary") and llm.requests_for("fallback")


PACKAGE = {
    "pytest.ini": SAMPLE_PYTEST_INI,
    "scripts/__init__.py": "from scripts.core import double\nfrom scripts.other import triple\n",
    "scripts/core.py": "def double(x):\n    return x + 2\n",  # the fault: x + x
    "scripts/other.py": "def triple(x):\n    return 3 * x\n",
    "tests/test_package.py": "import scripts\n\n\ndef test_double():\n"
                             "    assert scripts.double(3) == 6\n\n\ndef test_triple():\n"
                             "    assert scripts.triple(2) == 6\n",
    # Not broken: skipped here, or failing as expected. Neither is a goal (a repair
    # waiting for a skipped test to pass never came).
    "tests/test_core_legacy.py": "import pytest\nfrom scripts import core\n\n\n"
                                 "@pytest.mark.skip(reason='for Python 2')\ndef test_old():\n"
                                 "    assert core.double(1) == 0\n\n\n"
                                 "@pytest.mark.xfail(reason='known', strict=True)\n"
                                 "def test_known():\n    assert core.double(1) == 5\n",
}


def _recorded(root: Path, files: dict[str, str]) -> Sandbox:
    """A repository of `files` with its baseline recorded."""
    box = Sandbox(root)
    root.mkdir()
    box.git("init", "-q", "-b", "main")
    box.commit("a package", files)
    done = box.evolve("baseline", "record", "--reruns", "0")
    assert done.returncode == 0, done.stderr
    return box


def test_a_failing_test_that_imports_only_the_package_points_at_the_module_it_ran(
    tmp_path: Path,
):
    """`import scripts` names no module, yet the map the baseline recorded says which
    lines the failing test ran: the goal is the module with the fault, tried first, and
    its goal is the broken test only, not one skipped or xfailed."""
    box = _recorded(tmp_path / "repo", PACKAGE)
    ctx = open_context(GitRepo(box.path))
    by_target, _ = failing_by_target(ctx, ["scripts/__init__.py", "scripts/core.py",
                                            "scripts/other.py"])  # fmt: skip
    assert next(iter(by_target)) == "scripts/core.py"
    assert by_target["scripts/core.py"] == {"tests/test_package.py::test_double": "failed"}
    assert "scripts/other.py" not in by_target
    done = box.evolve("cycle", "--max", "1", "--proposer", "mutate", "--json")
    [iteration] = json.loads(done.stdout)["iterations"]
    assert iteration["goal"]["target"] == "scripts/core.py"
    assert iteration["verdict"] == "accepted", done.stdout  # repaired where the fault is


HELPED = {
    "pytest.ini": SAMPLE_PYTEST_INI,
    "scripts/__init__.py": "from scripts.core import double, triple\n",
    "scripts/util.py": "def checked(x):\n    return x\n",
    "scripts/core.py": "from scripts.util import checked\n\n\ndef double(x):\n"
                       "    return checked(x) + 2\n\n\n"  # the fault: * 2
                       "def triple(x):\n    return 3 * x\n",
    "tests/test_package.py": "import scripts\n\n\ndef test_double():\n"
                             "    assert scripts.double(3) == 6\n"
                             "    assert scripts.double(5) == 10\n\n\ndef test_triple():\n"
                             "    assert scripts.triple(2) == 6\n",
}


def test_a_search_with_nothing_left_to_try_goes_on_to_the_next_suspect(tmp_path: Path):
    """The helper only the failing test runs is the most suspicious file, and no edit of
    it repairs anything: the one proposal's budget goes on to the file at fault."""
    box = _recorded(tmp_path / "repo", HELPED)
    done = box.evolve("cycle", "--max", "1", "--proposer", "mutate", "--json")
    [iteration] = json.loads(done.stdout)["iterations"]
    assert iteration["goal"]["target"] == "scripts/util.py"
    search = iteration["proposal"]["search"]
    assert [(t["target"], t["stopped"]) for t in search["targets"]] == [
        ("scripts/util.py", "exhausted"), ("scripts/core.py", "repaired")]
    assert search["evaluated"] == sum(t["evaluated"] for t in search["targets"])
    assert iteration["verdict"] == "accepted", done.stdout
    assert "checked(x) * 2" in box.git("show", "main:scripts/core.py")


@pytest.mark.parametrize(
    "files",
    [
        {"pyproject.toml": '[project]\nname = "x"\n\n[tool.ratchet]\nobjectives = ["be quick"]\n'},
        {"ratchet.toml": 'objectives = ["be quick"]\n'},
        {"deploy/agent.toml": '[evolution]\nobjectives = ["be quick"]\n'},
    ],
    ids=["pyproject", "ratchet.toml", "agent.toml"],
)
def test_objectives_are_read_from_wherever_main_keeps_the_policy(
    tmp_path: Path, files: dict[str, str]
) -> None:
    box = make_sandbox(tmp_path / "repo", record=False)
    box.commit("the policy", files)
    ctx = open_context(GitRepo(box.path))
    [goal] = _objective_goals(ctx, ["scripts/calc.py", "scripts/test_x.py"], 0)
    assert (goal.source, goal.target, goal.text) == ("objective", "scripts/calc.py", "be quick")
