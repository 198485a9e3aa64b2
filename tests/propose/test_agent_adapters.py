"""The adapter table against the tools themselves: every flag it passes is in the tool's
help, the command lines it would run, and a direct run (a tool that cannot be pointed at
the proxy) reserved before it starts and settled from the tool's own report.

aider and mini-swe-agent are installed for the tests (`.ci/agents/install`), so their
help is read live. Codex CLI, Claude Code and Gemini CLI are not on PyPI: their help
texts and outputs were recorded from real runs (agent_samples/VERSIONS.txt), and a tool
found on PATH is checked live as well.
"""

from __future__ import annotations

import json
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from coding_agent_setup import transcript
from proposal_setup import KEY_ENV, SECRET, configure, ledger_rows
from repo_setup import Sandbox

from agent.config import AgentToolConfig
from agent.errors import UsageError
from evolution.propose.agents import adapters
from evolution.propose.agents.adapters import ADAPTERS

SAMPLES = Path(__file__).with_name("agent_samples")
RECORDED_HELP = {"codex": "codex-exec-help.txt", "claude": "claude-help.txt",
                 "gemini": "gemini-help.txt"}  # fmt: skip
INSTALLED = Path(sys.prefix) / "agents"
VALUES = {
    "goal_file": "/run/tmp/goal.md", "goal": "make mul multiply", "workdir": "/run/tree",
    "model": "gpt-x", "base_url": "http://127.0.0.1:@@P@@/v1",
    "origin": "http://127.0.0.1:@@P@@", "key": "ratchet-token", "home": "/run/home",
    "budget": "0.50",
}  # fmt: skip


def help_text(name: str) -> list[tuple[str, str]]:
    """The tool's help, from each place it can be read: the recorded text, the installed
    tool, the tool on PATH."""
    adapter = ADAPTERS[name]
    texts = []
    if name in RECORDED_HELP:
        texts.append(("recorded", (SAMPLES / RECORDED_HELP[name]).read_text()))
    quiet = {"PATH": "/usr/bin:/bin", "HOME": "/nonexistent", "NO_COLOR": "1", "TERM": "dumb"}
    for program in {str(INSTALLED / name / "bin" / name), shutil.which(adapter.program) or ""}:
        if program and Path(program).exists():
            done = subprocess.run([program, *adapter.help_args], capture_output=True, text=True,
                                  timeout=120, check=False, env=quiet)  # fmt: skip
            texts.append((program, done.stdout + done.stderr))
    return texts


@pytest.mark.parametrize("name", [n for n in ADAPTERS if n != "command"])
def test_every_flag_the_table_passes_is_in_the_tools_help(name: str) -> None:
    texts = help_text(name)
    if name in ("aider", "mini"):  # installed for the tests: read live, or fail
        assert any(where != "recorded" for where, _ in texts), f"{name}: run .ci/agents/install"
    assert texts
    adapter = ADAPTERS[name]
    for where, text in texts:
        missing = [f for f in adapter.flags if f not in text and f not in adapter.undocumented]
        assert missing == [], f"{name} ({where}) lists none of {missing}"


def render(name: str, *, direct: bool = False, **tool: object) -> list[str]:
    adapter = ADAPTERS[name]
    settings = AgentToolConfig(name, **tool)  # type: ignore[arg-type]
    template = adapters.command_template(adapter, settings)
    targets = ["scripts/a.py", "scripts/b.py"]
    return [template[0], *adapters.arguments(adapter, template[1:], VALUES, targets, direct=direct)]


def test_codex_runs_headless_in_the_scratch_tree_on_the_proxys_responses_endpoint() -> None:
    argv = render("codex")
    assert argv[:2] == ["codex", "exec"] and argv[-1] == "make mul multiply"
    assert argv[argv.index("--cd") + 1] == "/run/tree" and "--json" in argv
    settings = [argv[i + 1] for i, a in enumerate(argv) if a == "-c"]
    assert 'model_providers.ratchet.base_url="http://127.0.0.1:@@P@@/v1"' in settings
    assert "model_providers.ratchet.wire_api=responses" in settings
    assert "--dangerously-bypass-approvals-and-sandbox" in argv  # Ratchet's sandbox holds it


def test_claude_runs_headless_at_the_proxys_origin_without_prompts() -> None:
    argv = render("claude")
    assert argv[:3] == ["claude", "-p", "make mul multiply"]
    assert argv[argv.index("--permission-mode") + 1] == "bypassPermissions"
    env = {k: adapters.render(v, VALUES) for k, v in ADAPTERS["claude"].env.items()}
    assert env["ANTHROPIC_BASE_URL"] == "http://127.0.0.1:@@P@@"  # it adds /v1/messages
    assert env["ANTHROPIC_API_KEY"] == "ratchet-token" and env["IS_SANDBOX"] == "1"
    assert "--max-budget-usd" not in argv
    assert render("claude", direct=True)[-2:] == ["--max-budget-usd", "0.50"]


def test_targets_expand_to_one_argument_each_and_deployment_args_follow() -> None:
    argv = render("aider", program="/opt/aider/bin/aider", args=("--weak-model", "x"))
    assert argv[0] == "/opt/aider/bin/aider"
    assert argv[-4:] == ["scripts/a.py", "scripts/b.py", "--weak-model", "x"]
    assert argv[argv.index("--openai-api-base") + 1] == "http://127.0.0.1:@@P@@/v1"
    assert argv[argv.index("--chat-history-file") + 1] == "/run/home/aider.chat.history.md"


def test_a_placeholder_in_the_goal_stays_as_written() -> None:
    values = {**VALUES, "goal": "say {model} and {key} literally"}
    rendered = adapters.render_args(["--task", "{goal}", "{model}"], values, [])
    assert rendered == ["--task", "say {model} and {key} literally", "gpt-x"]


def test_a_command_template_is_required_and_must_split() -> None:
    with pytest.raises(UsageError, match="agent:command needs its command line"):
        adapters.command_template(ADAPTERS["command"], AgentToolConfig("command"))
    with pytest.raises(UsageError, match="does not split"):
        adapters.command_template(ADAPTERS["command"], AgentToolConfig("command", template="a 'b"))
    with pytest.raises(UsageError, match="unknown coding agent 'agent:cursor'"):
        adapters.adapter_for("agent:cursor")


def fake_tool(folder: Path, name: str, sample: str) -> Path:
    """A stand-in for a tool that is not installed here: it edits the target as the tool
    would and prints the tool's recorded report."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(
        f"#!{sys.executable}\nimport sys\n"
        f"try:\n    open({str(folder / 'ran')!r}, 'w').close()\nexcept OSError:\n    pass\n"
        "open('scripts/calc.py', 'a').write('# touched\\n')\n"
        f"sys.stdout.write({(SAMPLES / sample).read_text()!r})\n"
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def use(box: Sandbox, server, tool: str) -> None:  # type: ignore[no-untyped-def]
    configure(box, server)
    toml = (box.path / "deploy/agent.toml").read_text() + "\n" + tool
    box.commit("configure the agent", {"deploy/agent.toml": toml})


def propose(box: Sandbox, name: str, env: dict[str, str]) -> tuple[int, dict, str]:
    done = box.evolve_in_process(
        "propose", "--json", "--proposer", f"agent:{name}", "--target", "scripts/calc.py",
        "--goal", "make mul multiply", env={KEY_ENV: SECRET, **env},
    )
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else {}, done.stderr


@pytest.mark.e2e
def test_gemini_runs_only_when_told_to_run_direct_and_its_reported_spend_is_settled(
    sandbox: Sandbox, llm, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    program = fake_tool(tmp_path / "bin", "gemini", "gemini.json")
    use(sandbox, llm, f'[[agents.tools]]\nname = "gemini"\nprogram = "{program}"\n')
    code, _result, stderr = propose(sandbox, "gemini", {"GEMINI_API_KEY": "g-key-0123456789"})
    assert code == 2 and "cannot be pointed at Ratchet's model proxy" in stderr

    use(sandbox, llm, f'[[agents.tools]]\nname = "gemini"\nprogram = "{program}"\n'
                      'direct = true\nbudget_usd = 0.5\nmodel = "gemini-2.5-pro"\n')  # fmt: skip
    code, result, stderr = propose(sandbox, "gemini", {"GEMINI_API_KEY": "g-key-0123456789"})
    assert code == 0, (result, stderr)
    rows = ledger_rows(sandbox)
    assert [(r["purpose"], r["outcome"], r["estimate_usd"]) for r in rows] == [("agent", "ok", 0.5)]
    assert rows[0]["prompt_tokens"] == 6040 and rows[0]["completion_tokens"] == 60
    assert 0 < rows[0]["cost_usd"] < 0.5  # its tokens at the model's price, not the budget
    assert result["cost_usd"] == pytest.approx(rows[0]["cost_usd"])
    assert llm.received == []  # it never used the proxy's model


@pytest.mark.e2e
def test_a_direct_run_is_refused_before_it_starts_when_its_budget_does_not_fit(
    sandbox: Sandbox, llm, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    program = fake_tool(tmp_path / "bin", "claude", "claude.json")
    use(sandbox, llm, f'[[agents.tools]]\nname = "claude"\nprogram = "{program}"\n'
                      "direct = true\nbudget_usd = 5.0\n")  # fmt: skip
    code, result, _ = propose(sandbox, "claude", {"ANTHROPIC_API_KEY": "sk-ant-0123456789"})
    assert code == 1 and result["status"] == "capped" and result["branch"] == ""
    assert [r["outcome"] for r in ledger_rows(sandbox)] == ["refused-cap"]


@pytest.mark.e2e
def test_claudes_own_reported_cost_is_what_the_ledger_keeps(
    sandbox: Sandbox, llm, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    program = fake_tool(tmp_path / "bin", "claude", "claude.json")
    use(sandbox, llm, f'[[agents.tools]]\nname = "claude"\nprogram = "{program}"\n'
                      "direct = true\nbudget_usd = 0.25\n")  # fmt: skip
    code, result, stderr = propose(sandbox, "claude", {"ANTHROPIC_API_KEY": "sk-ant-0123456789"})
    assert code == 0, (result, stderr)
    assert [r["cost_usd"] for r in ledger_rows(sandbox)] == [pytest.approx(0.00852)]
    assert "sk-ant-0123456789" not in transcript(sandbox)


@pytest.mark.e2e
def test_a_failed_direct_run_is_charged_its_budget_and_makes_no_branch(
    sandbox: Sandbox, llm, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    """Gemini's error report carries no usage: what it spent is unknown, never zero."""
    program = fake_tool(tmp_path / "bin", "gemini", "gemini-error.json")
    use(sandbox, llm, f'[[agents.tools]]\nname = "gemini"\nprogram = "{program}"\n'
                      'direct = true\nbudget_usd = 0.5\n')  # fmt: skip
    code, result, _ = propose(sandbox, "gemini", {"GEMINI_API_KEY": "g-key-0123456789"})
    assert code == 1 and result["status"] == "failed" and "reported a failure" in result["message"]
    assert [r["cost_usd"] for r in ledger_rows(sandbox)] == [0.5]
    assert result["cost_usd"] == 0.5 and result["branch"] == ""


@pytest.mark.e2e
def test_a_direct_run_that_cannot_start_reserves_nothing(
    sandbox: Sandbox, llm  # type: ignore[no-untyped-def]
) -> None:
    program = fake_tool(sandbox.path.parent / "bin-beside", "claude", "claude.json")
    hidden = sandbox.path.parent / "claude"  # in the folder that holds the checkout
    hidden.write_bytes(program.read_bytes())
    hidden.chmod(0o755)
    use(sandbox, llm, f'[[agents.tools]]\nname = "claude"\nprogram = "{hidden}"\n'
                      "direct = true\nbudget_usd = 0.25\n")  # fmt: skip
    code, _result, stderr = propose(sandbox, "claude", {"ANTHROPIC_API_KEY": "sk-ant-0123456789"})
    assert code == 3 and "the sandbox cannot show" in stderr
    ledger = sandbox.path / "runs" / "ledger.sqlite"
    assert not ledger.exists() or ledger_rows(sandbox) == []


@pytest.mark.e2e
def test_a_coding_agent_never_runs_without_the_sandbox(
    sandbox: Sandbox, llm, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    program = fake_tool(tmp_path / "bin", "claude", "claude.json")
    use(sandbox, llm, f'[[agents.tools]]\nname = "claude"\nprogram = "{program}"\n')
    done = sandbox.evolve_in_process(
        "propose", "--unsandboxed", "--proposer", "agent:claude", "--target",
        "scripts/calc.py", "--goal", "anything", env={KEY_ENV: SECRET, "RATCHET_SANDBOX": "none"},
    )
    assert done.returncode == 3
    assert "runs only inside Ratchet's sandbox" in done.stderr.strip().splitlines()[0]
    assert not (tmp_path / "bin" / "ran").exists()
