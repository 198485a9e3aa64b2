"""A $0 cap means "spend nothing", the same in agent tick, agent status, evolve propose and
evolve cycle; and a bad cap names where it came from (the variable, or SPEC.md:LINE).

Everything runs for real: the CLIs (as subprocesses, but for `evolve propose` at zero,
run in-process so that litellm loads once), the real SQLite ledger, the real litellm
client against the loopback model server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from llm_server import ScriptedLLM, Step
from proposal_setup import GOOD_REPLY, KEY_ENV, SECRET, ledger_rows
from repo_setup import Sandbox

from agent.config import ModelConfig, RuntimeConfig
from agent.ledger import Ledger
from agent.llm import LLMClient
from agent.redact import Redactor
from tests.agent_setup import run_agent, task, write_config

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

REPO = Path(__file__).resolve().parents[2]


def ticks(root: Path) -> list[dict]:
    with Ledger(root / "runs" / "ledger.sqlite") as ledger:
        return ledger.ticks()


@pytest.mark.parametrize("where", ["variable", "spec"])
def test_a_zero_cap_keeps_the_tasks_running(tmp_path: Path, where: str) -> None:
    write_config(tmp_path, [task("touch", "touch ran")], daily_usd=0 if where == "spec" else 5)
    env = {"SPEND_CAP_USD": "0"} if where == "variable" else None
    done = run_agent(tmp_path, "tick", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["status"] == "ok"
    assert (tmp_path / "ran").exists()
    status = json.loads(run_agent(tmp_path, "status", "--json", env=env).stdout)
    assert status["spend"]["cap_usd"] == 0 and status["cap_reached"] is False
    text = run_agent(tmp_path, "status", env=env).stdout
    assert "cap $0.00: spend nothing, priced calls are refused" in text


def test_a_zero_cap_after_spending_today_is_reached_and_halts(tmp_path: Path) -> None:
    write_config(tmp_path, [task("touch", "touch ran")], daily_usd=5)
    with Ledger(tmp_path / "runs" / "ledger.sqlite") as ledger:
        spent = ledger.reserve("openai/gpt-4o-mini", "earlier", 0.01, 5)
        ledger.settle(spent, outcome="ok", cost_usd=0.01)
    done = run_agent(tmp_path, "tick", env={"SPEND_CAP_USD": "0"})
    assert done.returncode == 1
    assert "spend cap reached — halting ($0.0100 of $0.00 today)" in done.stdout
    assert not (tmp_path / "ran").exists()
    status = json.loads(run_agent(tmp_path, "status", "--json", env={"SPEND_CAP_USD": "0"}).stdout)
    assert status["cap_reached"] is True


def test_at_zero_a_priced_call_is_refused_unsent_and_a_local_model_answers(
    tmp_path: Path, llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(KEY_ENV, SECRET)
    monkeypatch.delenv("AGENT_KILL_FLAG", raising=False)
    monkeypatch.setenv("SPEND_CAP_USD", "0")
    llm.add("primary", Step("never sent"))
    llm.add("local-model", Step("from the local model"))
    priced = ModelConfig(
        model="openai/primary", api_base=llm.url, api_key_env=KEY_ENV,
        input_usd_per_mtok=1.0, output_usd_per_mtok=2.0, timeout_s=5, max_tokens=100,
    )  # fmt: skip
    # lm_studio/ is a local provider (free) that speaks the OpenAI protocol, so the
    # loopback server can stand in for it; ollama's protocol differs.
    local = ModelConfig(model="lm_studio/local-model", api_base=llm.url, timeout_s=5)
    with Ledger(tmp_path / "ledger.sqlite") as ledger:
        config = RuntimeConfig(root=tmp_path, models=(priced, local), daily_usd=2.0)
        result = LLMClient(config, ledger, Redactor({})).complete(
            [{"role": "user", "content": "hello"}], purpose="unit"
        )
        assert result.model == "lm_studio/local-model" and result.cost_usd == 0
        assert [(r["model"], r["outcome"]) for r in ledger.calls()] == [
            ("openai/primary", "refused-cap"),
            ("lm_studio/local-model", "ok"),
        ]
        assert ledger.spent_today() == 0
    assert llm.requests_for("primary") == []


def test_evolve_propose_at_zero_uses_the_local_model(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    toml = (
        "[budget]\ndaily_usd = 0\n\n"
        f'[[llm.models]]\nmodel = "openai/primary"\napi_base = "{llm.url}"\n'
        f'api_key_env = "{KEY_ENV}"\ntimeout_s = 5\nmax_tokens = 1000\n'
        "input_usd_per_mtok = 1.0\noutput_usd_per_mtok = 2.0\n\n"
        f'[[llm.models]]\nmodel = "lm_studio/local"\napi_base = "{llm.url}"\ntimeout_s = 5\n'
    )
    sandbox.commit("a $0 cap and a local fallback", {"deploy/agent.toml": toml})
    llm.add("primary", Step(GOOD_REPLY))
    llm.add("local", Step(GOOD_REPLY))
    done = sandbox.evolve_in_process(  # litellm loads once (see run_evolve_in_process)
        "propose", "--json", "--target", "scripts/calc.py", "--goal", "fix mul",
        env={KEY_ENV: SECRET},
    )  # fmt: skip
    result = json.loads(done.stdout)
    assert done.returncode == 0, done.stderr
    assert (result["status"], result["model"], result["cost_usd"]) == (
        "created", "lm_studio/local", 0
    )
    assert llm.requests_for("primary") == []
    assert [(r["model"], r["outcome"]) for r in ledger_rows(sandbox)] == [
        ("openai/primary", "refused-cap"),
        ("lm_studio/local", "ok"),
    ]


def test_evolve_cycle_at_zero_is_not_stopped_by_the_cap(sandbox: Sandbox) -> None:
    done = sandbox.evolve("cycle", "--json", "--max", "1", env={"SPEND_CAP_USD": "0"},
                          timeout=300)
    report = json.loads(done.stdout)
    assert done.returncode == 0, report
    [iteration] = report["iterations"]
    assert (iteration["proposal"]["proposer"], iteration["verdict"]) == ("mutate", "accepted")
    assert report["stopped"] != "capped"


@pytest.mark.parametrize("value", ["-1", "nan"])
def test_a_bad_cap_variable_is_named_without_blaming_the_spec(tmp_path: Path, value: str) -> None:
    write_config(tmp_path, [task("touch", "touch ran")], daily_usd=5)
    done = run_agent(tmp_path, "tick", env={"SPEND_CAP_USD": value})
    assert done.returncode == 2
    assert "SPEND_CAP_USD" in done.stderr and repr(value) in done.stderr
    assert "the environment variable SPEND_CAP_USD" in done.stderr
    assert "SPEC.md" not in done.stderr.replace("use SPEC.md's cap", "")
    assert "Traceback" not in done.stderr and not (tmp_path / "ran").exists()
    payload = json.loads(run_agent(tmp_path, "status", "--json",
                                   env={"SPEND_CAP_USD": value}).stdout)
    assert payload["exit_code"] == 2 and "SPEND_CAP_USD" in payload["hint"]


def test_evolve_names_the_variable_too(sandbox: Sandbox) -> None:
    done = sandbox.evolve("cycle", "--json", "--max", "1", env={"SPEND_CAP_USD": "-0.5"})
    assert done.returncode == 2
    assert "SPEND_CAP_USD must be a number of dollars, 0 or more: '-0.5'" in done.stderr
    assert "Traceback" not in done.stderr


def factory_build(root: Path, spec: str) -> subprocess.CompletedProcess[str]:
    (root / "SPEC.md").write_text(spec)
    return subprocess.run(
        [sys.executable, "-m", "evolution.factory.cli", "build"], cwd=root,
        capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "NO_COLOR": "1"},
    )  # fmt: skip


def test_a_bad_generated_value_names_its_file_line_and_spec_line(tmp_path: Path) -> None:
    spec = (REPO / "SPEC.md").read_text()
    assert factory_build(tmp_path, spec).returncode == 0
    config = tmp_path / "deploy" / "agent.toml"
    text = config.read_text()
    config.write_text(text.replace("daily_usd = 2.0", "daily_usd = -2.0"))
    toml_line = text.splitlines().index("daily_usd = 2.0") + 1
    spec_line = spec.splitlines().index("daily_usd = 2.0") + 1
    done = run_agent(tmp_path, "tick")
    assert done.returncode == 2
    assert (
        f"deploy/agent.toml:{toml_line}: budget.daily_usd: must be a number of dollars, 0 or more"
        in done.stderr
    )
    assert f"budget.daily_usd comes from SPEC.md:{spec_line}" in done.stderr.replace("\n", " ")
    assert "Traceback" not in done.stderr


def test_the_factory_accepts_a_zero_cap_and_refuses_a_negative_one(tmp_path: Path) -> None:
    spec = (REPO / "SPEC.md").read_text()
    assert factory_build(tmp_path, spec.replace("daily_usd = 2.0", "daily_usd = 0")).returncode == 0
    assert "daily_usd = 0.0" in (tmp_path / "deploy" / "agent.toml").read_text()
    done = factory_build(tmp_path, spec.replace("daily_usd = 2.0", "daily_usd = -1"))
    line = spec.splitlines().index("daily_usd = 2.0") + 1
    assert done.returncode == 2
    assert f"SPEC.md:{line}: budget.daily_usd: " in done.stderr


def test_evolve_names_main_s_file_and_line(sandbox: Sandbox) -> None:
    sandbox.commit("a bad cap on main", {"deploy/agent.toml": "[budget]\ndaily_usd = -1\n"})
    done = sandbox.evolve("propose", "--target", "scripts/calc.py", "--goal", "fix mul")
    assert done.returncode == 2
    assert (
        "main:deploy/agent.toml:2: budget.daily_usd: must be a number of dollars, 0 or more"
        in done.stderr
    )
    assert "Traceback" not in done.stderr
