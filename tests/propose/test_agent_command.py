"""`agent:command`: any program as a coding agent, through the template path.

The "agents" here are small Python scripts written by each test: the real sandbox, the
real model proxy (over the relay, inside the agent's own network namespace), the real
litellm client behind it and the loopback model server. Each script does what a coding
agent does: reads its goal, asks the model, edits the scratch tree, exits.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from llm_server import ScriptedLLM, Step
from proposal_setup import KEY_ENV, SECRET, configure, ledger_rows
from repo_setup import CALC, FIXED_CALC, Sandbox

pytestmark = pytest.mark.e2e

ASK_MODEL = '''
import json, os, sys, urllib.request
def ask(prompt):
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + "/chat/completions",
        data=json.dumps({"model": "any", "messages": [{"role": "user", "content": prompt}]}).encode(),
        headers={"Authorization": "Bearer " + os.environ["OPENAI_API_KEY"],
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return json.load(answer)["choices"][0]["message"]["content"]
'''


def agent_script(folder: Path, body: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.py"
    path.write_text(f"#!{sys.executable}\n{ASK_MODEL}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def use_agent(box: Sandbox, server: ScriptedLLM, script: Path, extra: str = "") -> None:
    configure(box, server)
    toml = (box.path / "deploy/agent.toml").read_text()
    toml += f'\n[agents]\ntimeout_s = 60\n{extra}\n[[agents.tools]]\nname = "command"\n'
    toml += f'template = "{script} --goal {{goal_file}} --in {{workdir}} {{targets}}"\n'
    box.commit("use a command agent", {"deploy/agent.toml": toml})


def propose(box: Sandbox, *args: str) -> tuple[int, dict]:
    done = box.evolve_in_process(
        "propose", "--json", "--proposer", "agent:command", "--target", "scripts/calc.py",
        "--goal", "make mul multiply", *args, env={KEY_ENV: SECRET},
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"err": done.stderr}


def test_an_honest_agent_is_committed_with_trailers_and_accepted(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
goal = open(sys.argv[sys.argv.index("--goal") + 1]).read()
new = ask(goal)
open("scripts/calc.py", "w").write(new)
print("edited; goal was", len(goal), "chars")
''')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC, usage=(100, 50)))
    code, result = propose(sandbox)
    assert code == 0, result
    assert result["status"] == "created" and result["proposer"] == "agent:command"
    assert result["changed"] == ["scripts/calc.py"]
    assert result["cost_usd"] == pytest.approx(100 * 1e-6 + 50 * 2e-6)
    assert sandbox.git("show", f"{result['branch']}:scripts/calc.py") == FIXED_CALC.rstrip("\n")
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", result["branch"])
    assert "Evolve-Proposer: agent:command" in trailers
    assert [row["purpose"] for row in ledger_rows(sandbox)] == ["agent"]
    gate = sandbox.evolve("validate", result["branch"], "--json")
    assert gate.returncode == 0, gate.stdout
