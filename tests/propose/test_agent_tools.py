"""aider and mini-swe-agent as proposers, for real: the tools themselves, installed from
their own locks into virtual environments of their own (`.ci/agents/install`, run by the
README's test set-up and by CI), driven headless inside Ratchet's sandbox against the
loopback model server through the model proxy.

Missing tools fail these tests, they do not skip: the README's test command installs
them, and a suite that silently stopped running its agents would prove nothing.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import pytest
from coding_agent_setup import marker, processes_marked, propose, transcript
from llm_server import ScriptedLLM, Step
from proposal_setup import KEY_ENV, SECRET, configure, ledger_rows
from repo_setup import CALC, FIXED_CALC, Sandbox

pytestmark = pytest.mark.e2e

AGENTS = Path(sys.prefix) / "agents"
INSTALL = "run `.ci/agents/install` (the README's test command does) to install it"

# aider's "diff" edit format: the file's path, then one SEARCH/REPLACE block.
AIDER_FIX = """scripts/calc.py
```python
<<<<<<< SEARCH
    # seeded bug: should multiply
    return a + b
=======
    return a * b
>>>>>>> REPLACE
```
"""
AIDER_EDITS_TEST = """tests/test_calc.py
```python
<<<<<<< SEARCH
    assert mul(3, 4) == 12
=======
    assert mul(3, 4) == 7
>>>>>>> REPLACE
```
"""
AIDER_MISS = AIDER_FIX.replace("    # seeded bug: should multiply\n", "    # no such line\n")


def mini_step(command: str) -> Step:
    """mini-swe-agent 2.x, text-based: one ```mswea_bash_command block per reply."""
    return Step(f"THOUGHT: next.\n\n```mswea_bash_command\n{command}\n```\n")


MINI_SUBMIT = mini_step("echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT")
MINI_FIX = mini_step(
    r"sed -i '/seeded bug/{N;s/.*\n    return a + b/    return a * b/}' scripts/calc.py"
)
MINI_EDITS_TEST = mini_step("sed -i 's/== 12/== 7/' tests/test_calc.py")

SCRIPTS = {
    # aider asks again once it has added a file the reply edits that was not named
    "aider": {"fix": [Step(AIDER_FIX)], "edit-test": [Step(AIDER_EDITS_TEST)] * 2,
              "two-calls": [Step(AIDER_MISS, usage=(100, 2000)), Step(AIDER_FIX)]},
    "mini": {"fix": [MINI_FIX, MINI_SUBMIT], "edit-test": [MINI_EDITS_TEST, MINI_SUBMIT],
             "two-calls": [Step(MINI_FIX.content, usage=(100, 2000)), MINI_SUBMIT]},
}  # fmt: skip
TOOLS = sorted(SCRIPTS)


def program(name: str) -> Path:
    path = AGENTS / name / "bin" / name
    if not path.exists():
        pytest.fail(f"{name} is not installed at {path}: {INSTALL}")
    return path


def use_tool(box: Sandbox, server: ScriptedLLM, name: str, *, cap: float = 1.0,
             timeout: int = 120) -> None:  # fmt: skip
    configure(box, server, cap=cap, timeout=timeout)
    toml = (box.path / "deploy/agent.toml").read_text()
    toml += f'\n[agents.limits]\ntimeout_s = {timeout}\n\n[[agents.tools]]\nname = "{name}"\n'
    toml += f'program = "{program(name)}"\n'
    box.commit(f"propose with {name}", {"deploy/agent.toml": toml})


@pytest.mark.parametrize("name", TOOLS)
def test_an_honest_repair_is_committed_with_trailers_and_cost_and_accepted(
    sandbox: Sandbox, llm: ScriptedLLM, name: str
) -> None:
    use_tool(sandbox, llm, name)
    llm.add("primary", *SCRIPTS[name]["fix"])
    code, result = propose(sandbox, f"agent:{name}")
    assert code == 0, (result, transcript(sandbox))
    assert result["status"] == "created" and result["changed"] == ["scripts/calc.py"]
    assert sandbox.git("show", f"{result['branch']}:scripts/calc.py") == FIXED_CALC.rstrip("\n")
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", result["branch"])
    assert f"Evolve-Proposer: agent:{name}" in trailers
    assert "Evolve-Model: openai/primary" in trailers and "Evolve-Cost-USD: 0.000" in trailers
    calls = len(SCRIPTS[name]["fix"])
    assert result["cost_usd"] == pytest.approx(calls * (100e-6 + 50 * 2e-6))
    assert [r["outcome"] for r in ledger_rows(sandbox)] == ["ok"] * calls
    # the goal reached the model, with the failing test that concerns the target
    assert "make mul multiply" in llm.received[0].text
    assert "tests/test_calc.py::test_mul" in llm.received[0].text
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC  # the checkout untouched
    gate = sandbox.evolve("validate", result["branch"], "--json")
    assert gate.returncode == 0, gate.stdout


@pytest.mark.parametrize("name", TOOLS)
def test_an_agent_that_edits_a_test_is_refused_by_the_gate(
    sandbox: Sandbox, llm: ScriptedLLM, name: str
) -> None:
    use_tool(sandbox, llm, name)
    llm.add("primary", *SCRIPTS[name]["edit-test"])
    code, result = propose(sandbox, f"agent:{name}")
    assert code == 0 and result["changed"] == ["tests/test_calc.py"], (result, transcript(sandbox))
    gate = sandbox.evolve("validate", result["branch"], "--json")
    assert gate.returncode == 1 and "protected" in gate.stdout, gate.stdout
    assert sandbox.head() == sandbox.git("rev-parse", "main~0")


@pytest.mark.parametrize("name", TOOLS)
def test_with_a_cap_the_proxy_refuses_the_second_call_and_no_branch_is_made(
    sandbox: Sandbox, llm: ScriptedLLM, name: str
) -> None:
    # A call's worst case is its prompt (aider's: ~2,000 tokens at $1/M) plus 1,000 tokens
    # out at $2/M, ~$0.004; the first costs $0.0041, so the second cannot fit under $0.0065.
    use_tool(sandbox, llm, name, cap=0.0065)
    llm.add("primary", *SCRIPTS[name]["two-calls"])
    code, result = propose(sandbox, f"agent:{name}")
    assert code == 1 and result["status"] == "capped", (result, transcript(sandbox))
    assert result["branch"] == "" and not sandbox.git("branch", "--list", "evolve/*")
    said = (ledger_rows(sandbox), transcript(sandbox))  # what a failure here needs to be read
    assert result["cost_usd"] == pytest.approx(0.0041), said
    outcomes = [r["outcome"] for r in ledger_rows(sandbox)]
    assert outcomes[0] == "ok" and set(outcomes[1:]) == {"refused-cap"}, said
    assert len(llm.received) == 1, said


@pytest.mark.parametrize("name", TOOLS)
def test_the_kill_flag_stops_the_agent_mid_run(
    sandbox: Sandbox, llm: ScriptedLLM, name: str
) -> None:
    use_tool(sandbox, llm, name)
    llm.add("primary", Step(SCRIPTS[name]["fix"][0].content, delay_s=20))
    flag = sandbox.path / "runs" / "KILL"

    def kill_once_asked() -> None:
        for _ in range(1200):
            if llm.received:  # the agent is waiting on its model
                flag.parent.mkdir(exist_ok=True)
                flag.write_text("stop")
                return
            time.sleep(0.05)

    threading.Thread(target=kill_once_asked, daemon=True).start()
    started = time.monotonic()
    code, result = propose(sandbox, f"agent:{name}")
    assert code == 1 and result["status"] == "killed", (result, transcript(sandbox))
    assert time.monotonic() - started < 20  # stopped, not waited out
    assert result["branch"] == ""


@pytest.mark.parametrize("name", TOOLS)
def test_a_hung_agent_is_killed_at_its_timeout_with_its_whole_group(
    sandbox: Sandbox, llm: ScriptedLLM, name: str
) -> None:
    use_tool(sandbox, llm, name, timeout=8)
    if name == "mini":  # it runs a command that never ends
        llm.add("primary", mini_step("sleep 300"))
    else:  # it waits on a model that never answers in time
        llm.add("primary", Step(AIDER_FIX, delay_s=60))
    mark = marker()
    code, result = propose(sandbox, f"agent:{name}", env=mark)
    assert code == 1 and result["status"] == "failed", (result, transcript(sandbox))
    assert "ran out of time after 8 s" in result["message"]
    assert not processes_marked(mark)


def test_a_cycle_with_a_coding_agent_takes_its_goal_from_the_failing_test(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    use_tool(sandbox, llm, "aider")
    llm.add("primary", *SCRIPTS["aider"]["fix"])
    done = sandbox.evolve_in_process(
        "cycle", "--json", "--max", "2", "--proposer", "agent:aider", env={KEY_ENV: SECRET}
    )
    report = json.loads(done.stdout)
    assert done.returncode == 0, (report, transcript(sandbox))
    [iteration] = report["iterations"]  # then nothing is left to repair
    assert iteration["proposal"]["proposer"] == "agent:aider"
    assert iteration["verdict"] == "accepted" and report["stopped"] == "nothing-to-do"
    assert iteration["gate"]["passing_after"] == iteration["gate"]["passing_before"] + 1
    assert "test_mul" in llm.received[0].text  # the goal named the failing test
    assert sandbox.git("show", "main:scripts/calc.py") == FIXED_CALC.rstrip("\n")
