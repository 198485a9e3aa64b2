# Generated from SPEC.md by the Ratchet factory 0.1.0. Do not edit: change SPEC.md and run `factory build`.
"""Seam tests generated from SPEC.md: the guards the spec promises hold in this build."""

import tomllib
from pathlib import Path

import pytest

from agent.config import ModelConfig, load_runtime
from agent.ledger import Ledger
from agent.llm import LLMClient, LLMRefused
from agent.redact import Redactor
from agent.tick import Runtime, run_tick

HERE = Path(__file__).resolve().parent
CONFIG_TEXT = (HERE / "agent.toml").read_text(encoding="utf-8")
CONFIG = tomllib.loads(CONFIG_TEXT)
CADENCE_S = 1800
# A priced cloud model: the guards must stop it before any request is sent.
SEAM_MODEL = ModelConfig(
    model="openai/seam-test",
    api_base="http://127.0.0.1:9/v1",
    input_usd_per_mtok=1.0,
    output_usd_per_mtok=1.0,
)


def test_the_build_matches_the_spec_cadence():
    assert CONFIG["schedule"]["cadence_s"] == CADENCE_S


@pytest.mark.parametrize("task", CONFIG["tasks"], ids=lambda task: task["name"])
def test_every_task_has_a_timeout_under_the_cadence(task):
    assert 0 < task["timeout_s"] < CADENCE_S


TASK_NAMES = ['disk-space', 'git-health', 'ledger-backup', 'runs-rotation', 'safety-net', 'evolve-cycle', 'baseline-report']


def test_the_runtime_reads_the_tasks_in_dependency_order():
    config = load_runtime(HERE.parent, CONFIG_TEXT)
    assert sorted(t.name for t in config.tasks) == sorted(TASK_NAMES)
    seen = set()
    for task in config.tasks:
        assert set(task.depends_on) <= seen, task.name
        seen.add(task.name)
    assert config.max_silence_s == 5400
    assert config.max_failed_ticks == 3


def test_every_script_a_task_runs_is_in_the_repository():
    for task in load_runtime(HERE.parent, CONFIG_TEXT).tasks:
        for word in task.argv[:2]:
            if word.startswith("scripts/"):
                assert (HERE.parent / word).is_file(), f"{task.name}: {word} is missing"


def test_a_tick_under_the_kill_flag_starts_no_task(tmp_path, monkeypatch):
    monkeypatch.delenv("AGENT_KILL_FLAG", raising=False)
    runtime = Runtime.open(load_runtime(tmp_path, CONFIG_TEXT))
    try:
        runtime.config.kill_flag_path.parent.mkdir(parents=True, exist_ok=True)
        runtime.config.kill_flag_path.write_text("stop")
        result = run_tick(runtime, "seam", lock=runtime.lock)
        assert (result.status, result.exit_code) == ("refused-kill", 0)
        assert runtime.ledger.task_runs() == []
        assert runtime.ledger.ticks()[0]["status"] == "refused-kill"
    finally:
        runtime.close()


def _client(tmp_path, monkeypatch):
    monkeypatch.setenv("AGENT_KILL_FLAG", str(tmp_path / "KILL"))
    monkeypatch.delenv("SPEND_CAP_USD", raising=False)
    config = load_runtime(tmp_path, CONFIG_TEXT)
    ledger = Ledger(tmp_path / "ledger.sqlite")
    return config, ledger, LLMClient(config, ledger, Redactor({}), models=(SEAM_MODEL,))


def test_the_cap_halts_before_work(tmp_path, monkeypatch):
    config, ledger, client = _client(tmp_path, monkeypatch)
    assert config.cap_usd == 2.0
    spent = ledger.reserve("earlier", "seam", config.cap_usd, config.cap_usd)
    ledger.settle(spent, outcome="ok", cost_usd=config.cap_usd)
    with pytest.raises(LLMRefused) as refused:
        client.complete([{"role": "user", "content": "work"}], purpose="seam")
    assert refused.value.status == "capped"
    assert [row["outcome"] for row in ledger.calls()] == ["ok", "refused-cap"]


def test_the_kill_flag_refuses(tmp_path, monkeypatch):
    config, ledger, client = _client(tmp_path, monkeypatch)
    config.kill_flag_path.write_text("stop")
    with pytest.raises(LLMRefused) as refused:
        client.complete([{"role": "user", "content": "work"}], purpose="seam")
    assert refused.value.status == "killed"
    assert [row["outcome"] for row in ledger.calls()] == ["refused-kill"]
