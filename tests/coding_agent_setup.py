"""What the coding-agent tests share: agents written as small scripts, the proposal
that runs one, its transcript, and a way to find an agent's processes after its run.

Tests run side by side (xdist), so "no `sleep 300` is left" would see another test's
agent. Each run is given a variable of its own instead (the agent's environment keeps
what is not a secret), and its processes are found by it.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import uuid
from pathlib import Path

from llm_server import ScriptedLLM
from proposal_setup import KEY_ENV, SECRET, configure
from repo_setup import Sandbox

# What a script agent starts with: `call` posts to the proxy (its address and key in
# the variables the SDKs read), `ask` asks the model and returns its text.
ASK_MODEL = """
import json, os, sys, urllib.request
def call(body, path="/chat/completions", key=None):
    request = urllib.request.Request(
        os.environ["OPENAI_BASE_URL"] + path, data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer " + (key or os.environ["OPENAI_API_KEY"]),
                 "Content-Type": "application/json"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        return answer.status, answer.read()
def ask(prompt, **extra):
    body = {"model": "any", "messages": [{"role": "user", "content": prompt}], **extra}
    return json.loads(call(body)[1])["choices"][0]["message"]["content"]
"""


def agent_script(folder: Path, body: str) -> Path:
    """An executable Python script in `folder`, `body` after the ASK_MODEL helpers."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "agent.py"
    path.write_text(f"#!{sys.executable}\n{ASK_MODEL}\n{body}\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def use_agent(box: Sandbox, server: ScriptedLLM, script: Path, extra: str = "",
              timeout_s: int = 60) -> None:  # fmt: skip
    """Main's deploy/agent.toml: the model chain on `server`, and `script` as
    agent:command (`extra`: more [agents.limits] keys)."""
    configure(box, server)
    toml = (box.path / "deploy/agent.toml").read_text()
    toml += f"\n[agents.limits]\ntimeout_s = {timeout_s}\n{extra}\n"
    toml += '[[agents.tools]]\nname = "command"\n'
    toml += f'template = "{script} --goal {{goal_file}} --in {{workdir}} {{targets}}"\n'
    box.commit("use a command agent", {"deploy/agent.toml": toml})


def propose(
    box: Sandbox, proposer: str = "agent:command", env: dict[str, str] | None = None
) -> tuple[int, dict]:
    """`evolve propose --json` of scripts/calc.py by `proposer`: its exit code and result."""
    done = box.evolve_in_process(
        "propose", "--json", "--proposer", proposer, "--target", "scripts/calc.py",
        "--goal", "make mul multiply", env={KEY_ENV: SECRET, **(env or {})},
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {"err": done.stderr}


def transcript(box: Sandbox) -> str:
    """What the agents printed, as Ratchet kept it under runs/agents/."""
    logs = sorted((box.path / "runs/agents").glob("*.log"))
    return "\n".join(log.read_text(errors="replace") for log in logs)


def marker() -> dict[str, str]:
    """An environment entry that tells this run's processes from every other's."""
    return {"AGENT_TEST_MARK": uuid.uuid4().hex}


def processes_marked(mark: dict[str, str]) -> list[int]:
    """The processes still running with `mark` in their environment."""
    (name, value), = mark.items()
    needle = f"{name}={value}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if needle in environ:
            found.append(int(entry.name))
    return found
