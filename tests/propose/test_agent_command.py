"""`agent:command`: any program as a coding agent, through the template path.

The "agents" here are small Python scripts written by each test: the real sandbox, the
real model proxy (over the relay, inside the agent's own network namespace), the real
litellm client behind it and the loopback model server. Each script does what a coding
agent does: reads its goal, asks the model, edits the scratch tree, exits.
"""

from __future__ import annotations

import json
import tempfile
import threading
import time
from pathlib import Path

import pytest
from coding_agent_setup import (
    agent_script,
    marker,
    processes_marked,
    propose,
    transcript,
    use_agent,
)
from llm_server import ScriptedLLM, Step
from proposal_setup import KEY_ENV, SECRET, ledger_rows
from repo_setup import CALC, FIXED_CALC, Sandbox

pytestmark = pytest.mark.e2e

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


def test_the_agent_cannot_write_outside_its_scratch_tree_nor_reach_another_address(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    port = llm.url.split(":")[2].split("/")[0]
    script = agent_script(tmp_path / "agent", f'''
import socket
tried = {{}}
for target in [{str(sandbox.path / "scripts/calc.py")!r}, {str(outside / "planted")!r},
               os.path.expanduser("~root/.planted"), "/etc/planted"]:
    try:
        open(target, "w").write("planted")
        tried[target] = "written"
    except OSError as exc:
        tried[target] = type(exc).__name__
for address in [("127.0.0.1", {port}), ("10.255.255.1", 80), ("1.1.1.1", 443)]:
    try:
        socket.create_connection(address, timeout=3).close()
        tried[str(address)] = "connected"
    except OSError as exc:
        tried[str(address)] = type(exc).__name__
print("TRIED " + json.dumps(tried))
open("scripts/calc.py", "w").write(ask("now the fix"))
''')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC))
    code, result = propose(sandbox)
    assert code == 0, result
    said = transcript(sandbox)
    tried = json.loads(said.split("TRIED ", 1)[1].splitlines()[0])
    assert "written" not in tried.values() and "connected" not in tried.values(), tried
    assert not (outside / "planted").exists() and not Path("/etc/planted").exists()
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC
    # the model server saw the one call the proxy forwarded, nothing from the agent itself
    assert len(llm.received) == 1 and llm.received[0].bearer_token == SECRET


def test_at_the_cap_the_proxy_refuses_the_next_call_and_no_branch_is_made(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
first = ask("first")
open("scripts/calc.py", "w").write(first)
try:
    ask("second")
except Exception as exc:
    print("SECOND", exc, getattr(exc, "read", lambda: b"")().decode())
    sys.exit(1)
''')
    use_agent(sandbox, llm, script)
    # worst case of a call: ~0.002 (1000 tokens out at $2/M); the first one costs 0.0021
    configure_cap(sandbox, 0.003)
    llm.add("primary", Step(FIXED_CALC, usage=(100, 1000)), Step(FIXED_CALC))
    code, result = propose(sandbox)
    assert code == 1 and result["status"] == "capped", result
    assert result["branch"] == "" and not sandbox.git("branch", "--list", "evolve/*")
    assert result["cost_usd"] == pytest.approx(0.0021)
    outcomes = [(row["purpose"], row["outcome"]) for row in ledger_rows(sandbox)]
    # the first call paid; the second refused before any request, for each model of the chain
    assert outcomes == [("agent", "ok"), ("agent", "refused-cap"), ("agent", "refused-cap")]
    assert len(llm.received) == 1
    said = transcript(sandbox)
    assert "402" in said and "Ratchet refused the call" in said


def configure_cap(box: Sandbox, cap: float) -> None:
    toml = (box.path / "deploy/agent.toml").read_text()
    toml = toml.replace("daily_usd = 1.0", f"daily_usd = {cap}")
    box.commit("lower the cap", {"deploy/agent.toml": toml})


def test_the_kill_flag_stops_the_agent_mid_run(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
import time
open("scripts/calc.py", "w").write(ask("first"))
time.sleep(120)
''')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC))
    flag = sandbox.path / "runs" / "KILL"

    def kill_when_called() -> None:
        for _ in range(600):
            if llm.received:
                flag.parent.mkdir(exist_ok=True)
                flag.write_text("stop")
                return
            time.sleep(0.05)

    threading.Thread(target=kill_when_called, daemon=True).start()
    started = time.monotonic()
    code, result = propose(sandbox)
    assert code == 1 and result["status"] == "killed", result
    assert time.monotonic() - started < 60  # stopped, not waited out
    assert result["branch"] == ""


def test_a_hung_agent_is_killed_at_its_timeout_with_its_whole_group(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
import subprocess, time
child = subprocess.Popen(["sleep", "300"])
print("CHILD", child.pid, flush=True)
time.sleep(300)
''')
    use_agent(sandbox, llm, script)
    toml = (sandbox.path / "deploy/agent.toml").read_text()
    toml = toml.replace("timeout_s = 60", "timeout_s = 3")
    sandbox.commit("a short timeout", {"deploy/agent.toml": toml})
    mark = marker()
    code, result = propose(sandbox, env=mark)
    assert code == 1 and result["status"] == "failed", result
    assert "ran out of time after 3 s" in result["message"]
    said = transcript(sandbox)
    assert "CHILD" in said  # the grandchild started, and died with the group:
    assert not processes_marked(mark)


def test_an_agent_that_edits_a_test_is_refused_by_the_gate(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
ask("anything")
text = open("tests/test_calc.py").read().replace("== 12", "== 7")
open("tests/test_calc.py", "w").write(text)
''')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step("ok"))
    code, result = propose(sandbox)
    assert code == 0 and result["changed"] == ["tests/test_calc.py"], result
    gate = sandbox.evolve("validate", result["branch"], "--json")
    assert gate.returncode == 1, gate.stdout
    assert "tests/test_calc.py" in gate.stdout and "protected" in gate.stdout


def test_what_the_agent_printed_is_kept_with_its_key_redacted_and_its_commits_ignored(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    script = agent_script(tmp_path / "agent", '''
import subprocess
print("MY KEY IS", os.environ["OPENAI_API_KEY"])
open("scripts/calc.py", "w").write(ask("fix"))
subprocess.run(["git", "commit", "-qam", "the agent's own commit"], check=False)
subprocess.run(["git", "checkout", "-qb", "its-own-branch"], check=False)
os.makedirs("scripts/__pycache__", exist_ok=True)
open("scripts/__pycache__/calc.cpython-311.pyc", "wb").write(b"cache")
''')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC))
    code, result = propose(sandbox)
    assert code == 0, result
    assert result["changed"] == ["scripts/calc.py"]
    said = transcript(sandbox)
    assert "MY KEY IS «redacted:proxy-token»" in said
    assert "its-own-branch" not in sandbox.git("branch", "--all")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('print("giving up"); sys.exit(4)', "exited with status 4: giving up"),
        ("pass", "finished without changing any file"),
        ('os.symlink("/etc/passwd", "scripts/link.py")', "symbolic link at scripts/link.py"),
        ('os.mkfifo("scripts/pipe.py")', "scripts/pipe.py, which is not a regular file"),
        ("for i in range(12): open(f'scripts/m{i}.py', 'w').write('x = 1\\n')", "too large"),
    ],
    ids=["non-zero exit", "no change", "a symlink", "a pipe", "too many files"],
)
def test_a_failed_or_unusable_run_makes_no_branch(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path, body: str, expected: str
) -> None:
    use_agent(sandbox, llm, agent_script(tmp_path / "agent", body))
    code, result = propose(sandbox)
    assert code == 1 and result["status"] in ("failed", "no-change"), result
    assert expected in result["message"]
    assert not sandbox.git("branch", "--list", "evolve/*")


def test_a_missing_agent_command_is_a_clear_environment_error(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    use_agent(sandbox, llm, tmp_path / "no-such-agent")
    done = sandbox.evolve_in_process(
        "propose", "--proposer", "agent:command", "--target", "scripts/calc.py",
        "--goal", "anything", env={KEY_ENV: SECRET},
    )
    assert done.returncode == 3
    first = done.stderr.strip().splitlines()[0]
    assert "agent:command needs the" in first and "no-such-agent" in first
    assert "Traceback" not in done.stderr


def test_an_agent_the_sandbox_cannot_show_is_named_with_the_reason(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    """A program in the folder that holds the checkout would reveal the checkout: the
    sandbox does not grant that folder, and the error says so before anything runs."""
    script = agent_script(sandbox.path.parent, "pass")
    use_agent(sandbox, llm, script)
    done = sandbox.evolve_in_process(
        "propose", "--proposer", "agent:command", "--target", "scripts/calc.py",
        "--goal", "anything", env={KEY_ENV: SECRET},
    )
    assert done.returncode == 3, done.stderr
    assert f"the sandbox cannot show {script}" in done.stderr.strip().splitlines()[0]


def test_files_the_export_converts_are_not_taken_for_the_agents_change(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path
) -> None:
    """Line endings the repository's attributes ask for on checkout: the untouched file
    differs from its blob on disk, and still is no change."""
    sandbox.commit("notes with CRLF on checkout", {
        ".gitattributes": "*.txt text eol=crlf\n", "scripts/notes.txt": "one\ntwo\n",
    })  # fmt: skip
    script = agent_script(tmp_path / "agent", 'open("scripts/calc.py", "w").write(ask("fix"))')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC))
    code, result = propose(sandbox)
    assert code == 0 and result["changed"] == ["scripts/calc.py"], result


def test_a_long_temporary_folder_still_reaches_the_proxy(
    sandbox: Sandbox, llm: ScriptedLLM, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Unix socket's path holds 108 bytes; run folders under a long temporary folder
    (inside a gate's sandbox it is nested twice) pass that. The proxy's socket is
    named through a descriptor of its folder instead."""
    long = tmp_path / ("t" * 90)
    long.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(long))
    script = agent_script(tmp_path / "agent", 'open("scripts/calc.py", "w").write(ask("fix"))')
    use_agent(sandbox, llm, script)
    llm.add("primary", Step(FIXED_CALC))
    code, result = propose(sandbox)
    assert code == 0 and result["changed"] == ["scripts/calc.py"], result
