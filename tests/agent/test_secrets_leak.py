"""No secret value reaches a trace, the ledger, a log, a note, a commit, a report or a prompt.

A secret is seeded in the vault and granted to three tasks of a real deployment (a git
repository with a recorded baseline): one prints it, one runs the gate on a candidate
whose failing test prints the environment, one asks the loopback model for a proposal
whose goal quotes it. Then every artifact and the whole git history are searched.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from llm_server import ScriptedLLM, Step
from proposal_setup import GOOD_REPLY
from repo_setup import CALC, SOURCE, Sandbox

from tests.agent_setup import AGENT, agent_env, toml_value

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

SECRET = "tok-Q9v7Wm2Lr5Xc8Zp1"
# Agent tasks get an allow-listed environment: the source is named on the command line.
EVOLVE = f"env PYTHONPATH={SOURCE} {sys.executable} -m evolution.cli"
# A candidate that breaks `add` (a regression, so the gate rejects it and writes a note
# quoting the failure), and whose failure message is the whole environment.
LEAKY_CALC = CALC.replace(
    "def add(a, b):\n    return a + b\n",
    "def add(a, b):\n    import os\n\n    print(os.environ.get('API_TOKEN'))\n"
    "    raise AssertionError(repr(dict(os.environ)))\n",
)


@pytest.fixture
def llm():
    server = ScriptedLLM()
    server.start()
    yield server
    server.stop()


def test_a_seeded_secret_is_found_nowhere(sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path):
    root = sandbox.path
    # A temporary folder of the deployment's own (the tasks inherit TMPDIR), so that the
    # search below covers all that its runs left there, and nothing another test's did.
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = agent_env({"AGENT_IDENTITY": str(tmp_path / "id" / "identity.txt"),
                     "TMPDIR": str(temp)})  # fmt: skip

    def agent(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([AGENT, *args, "--root", str(root)], input=stdin, env=env,
                              capture_output=True, text=True, timeout=300, check=False)

    # A candidate whose failing test prints the whole environment.
    sandbox.git("switch", "-q", "-c", "evolve/leaky", "main")
    sandbox.commit("add prints the environment", {"scripts/calc.py": LEAKY_CALC})
    sandbox.git("switch", "-q", "main")
    tasks = [
        {"name": "prints", "command": "sh -c 'echo token=$API_TOKEN; echo oops $API_TOKEN >&2;"
                                      " exit 3'", "timeout_s": 30, "evidence": "stdout",
         "required": False},
        {"name": "gate", "command": f"{EVOLVE} validate evolve/leaky --json",
         "timeout_s": 120, "evidence": "stdout", "required": False},
        {"name": "propose", "command": f"sh -c '{EVOLVE} propose --proposer llm --target "
                                       "scripts/calc.py --goal \"fix mul with $API_TOKEN\" --json'",
         "timeout_s": 120, "evidence": "stdout", "required": False},
    ]
    config = [
        "[[llm.models]]", 'model = "openai/primary"', f'api_base = "{llm.url}"',
        'api_key_env = "API_TOKEN"', "timeout_s = 10", "max_tokens = 500",
        "input_usd_per_mtok = 1.0", "output_usd_per_mtok = 2.0", "",
    ]
    for task in tasks:
        config += ["[[tasks]]", *(f"{k} = {toml_value(v)}" for k, v in task.items()), ""]
    sandbox.commit("deploy", {"deploy/agent.toml": "\n".join(config)})
    llm.add("primary", Step(GOOD_REPLY))

    assert agent("secrets", "init").returncode == 0
    done = agent("secrets", "set", "API_TOKEN", "--purpose", "the model and the gate",
                 "--tasks", "prints,gate,propose", stdin=SECRET)
    assert done.returncode == 0, done.stderr
    tick = agent("tick", "--json")
    result = json.loads(tick.stdout)
    statuses = {t["task"]: t["status"] for t in result["tasks"]}
    assert statuses == {"prints": "failed", "gate": "failed", "propose": "ok"}, tick.stdout
    assert "oops \\u00abredacted:API_TOKEN\\u00bb" in tick.stdout  # quoted, redacted

    # The model was asked, with the key, and the goal arrived redacted.
    [request] = llm.requests_for("primary")
    assert SECRET not in request.text and "«redacted:API_TOKEN»" in request.text
    assert request.bearer_token == SECRET  # only where it belongs

    leaks = []
    for path in root.rglob("*"):
        if path.is_file() and SECRET.encode() in path.read_bytes():
            leaks.append(str(path.relative_to(root)))
    for path in temp.rglob("*"):
        if path.is_file() and SECRET.encode() in path.read_bytes():
            leaks.append(str(path))
    history = sandbox.git("log", "--all", "-p", "--format=%H%n%B%n%N", "--notes=evolve")
    notes = sandbox.git("notes", "--ref=evolve", "list")
    assert notes, "the rejection left a note"
    assert leaks == [] and SECRET not in history and SECRET not in tick.stdout + tick.stderr
    # The vault and its access log say who had it.
    log = [json.loads(line) for line in
           (root / "runs" / "secrets-access.jsonl").read_text().splitlines()]
    assert {(e["who"], e["action"]) for e in log if e["secret"] == "API_TOKEN"} >= {
        ("task:prints", "get"), ("task:gate", "get"), ("task:propose", "get")
    }
    assert agent("secrets", "verify").returncode == 0


def test_a_broken_chain_halts_the_tick(sandbox: Sandbox, tmp_path: Path):
    root = sandbox.path
    env = agent_env({"AGENT_IDENTITY": str(tmp_path / "id" / "identity.txt")})
    (root / "deploy").mkdir(exist_ok=True)
    (root / "deploy" / "agent.toml").write_text(
        '[[tasks]]\nname = "touch"\ncommand = "touch ran"\ntimeout_s = 5\nevidence = "exit"\n'
    )

    def agent(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
        return subprocess.run([AGENT, *args, "--root", str(root)], input=stdin, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    assert agent("secrets", "init").returncode == 0
    done = agent("secrets", "set", "X_KEY", "--tasks", "touch", stdin="value-123456789")
    assert done.returncode == 0
    log = root / "runs" / "secrets-access.jsonl"
    lines = log.read_text().splitlines()
    log.write_text("\n".join(lines[1:]) + "\n")  # the first entry deleted
    done = agent("tick")
    assert done.returncode == 1
    assert "does not follow the entry before it" in done.stdout and "halting" in done.stdout
    assert not (root / "ran").exists()
