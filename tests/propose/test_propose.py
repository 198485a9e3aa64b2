"""`evolve propose` end to end: the real litellm client against a loopback server.

No part of litellm is mocked: the CLI reads its model chain from main's
deploy/agent.toml, and talks HTTP to ScriptedLLM on 127.0.0.1. One test runs it as a
subprocess; the others through the same app in the test's process, which imports litellm
once instead of once per test (seconds each).
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from llm_server import ScriptedLLM, Step
from proposal_setup import GOOD_REPLY, KEY_ENV, SECRET, configure, ledger_rows
from repo_setup import CALC, FIXED_CALC, Sandbox

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

NON_MATCHING = """scripts/calc.py
<<<<<<< SEARCH
def mul(x, y):
    return x + y
=======
def mul(x, y):
    return x * y
>>>>>>> REPLACE
"""


def propose(
    box: Sandbox, *args: str, env: dict[str, str] | None = None, in_process: bool = True
) -> tuple[subprocess.CompletedProcess[str], dict]:
    """`evolve propose --json ARGS`, in this process unless told (litellm loads once)."""
    run = box.evolve_in_process if in_process else box.evolve
    done = run("propose", "--json", *args, env={KEY_ENV: SECRET, **(env or {})})
    return done, json.loads(done.stdout) if done.stdout.strip() else {}


def evolve_branches(box: Sandbox) -> list[str]:
    return box.git("for-each-ref", "--format=%(refname:short)", "refs/heads/evolve/").split()


def test_success_creates_a_branch_with_trailers_and_the_gate_accepts_it(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    configure(sandbox, llm)
    llm.add("primary", Step(GOOD_REPLY, usage=(100, 50)))

    done, result = propose(
        sandbox, "--target", "scripts/calc.py", "--goal", "make mul multiply", in_process=False
    )  # the command's contract, as a real process

    assert done.returncode == 0, done.stderr
    assert result["status"] == "created" and result["model"] == "openai/primary"
    assert result["tokens"] == 150
    assert result["cost_usd"] == pytest.approx(100 * 1e-6 + 50 * 2e-6)
    assert result["branch"] == f"evolve/{result['id']}"
    assert result["id"].endswith("-make-mul-multiply")
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", result["branch"])
    assert f"Evolve-Proposal: {result['id']}" in trailers
    assert "Evolve-Proposer: llm" in trailers and "Evolve-Model: openai/primary" in trailers
    assert "Evolve-Goal: make mul multiply" in trailers
    assert "Evolve-Cost-USD: 0.000200" in trailers and "Evolve-Tokens: 150" in trailers
    sha = [t for t in trailers.splitlines() if t.startswith("Evolve-Prompt-SHA256: ")]
    assert len(sha) == 1 and len(sha[0].split(": ")[1]) == 64
    assert sandbox.git("show", f"{result['branch']}:scripts/calc.py") == FIXED_CALC.rstrip("\n")
    # the user's working tree is untouched
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC
    assert sandbox.git("status", "--porcelain", "--untracked-files=no") == ""
    # the prompt carried the context the model needs
    prompt = llm.received[0].text
    assert "make mul multiply" in prompt and "seeded bug" in prompt
    assert "tests/test_calc.py::test_mul" in prompt
    assert [row["outcome"] for row in ledger_rows(sandbox)] == ["ok"]
    # and the gate takes it from there
    gate = sandbox.evolve("validate", result["branch"], "--json")
    assert gate.returncode == 0, gate.stdout
    assert json.loads(gate.stdout)["newly_passing"] == ["tests/test_calc.py::test_mul"]


def test_fallback_after_503_names_the_model_that_answered(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    configure(sandbox, llm)
    llm.add("primary", Step(status=503), Step(status=503), Step(status=503))
    llm.add("fallback", Step(GOOD_REPLY))

    done, result = propose(sandbox, "--target", "scripts/calc.py", "--goal", "fix mul")

    assert done.returncode == 0, done.stderr
    assert result["model"] == "openai/fallback"
    assert len(llm.requests_for("primary")) == 3  # bounded retries, then move on
    assert len(llm.requests_for("fallback")) == 1
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", result["branch"])
    assert "Evolve-Model: openai/fallback" in trailers
    outcomes = [row["outcome"] for row in ledger_rows(sandbox)]
    assert outcomes == ["error-transient"] * 3 + ["ok"]


def test_timeout_is_retried_then_the_chain_moves_on(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm, timeout=1)
    llm.add("primary", *[Step(GOOD_REPLY, delay_s=3)] * 3)
    llm.add("fallback", Step(GOOD_REPLY))
    done, result = propose(sandbox, "--target", "scripts/calc.py", "--goal", "fix mul")
    assert done.returncode == 0, done.stderr
    assert result["model"] == "openai/fallback"


def test_malformed_reply_is_repaired_after_a_reflection(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    llm.add("primary", Step("You should multiply instead of adding."), Step(GOOD_REPLY))

    done, result = propose(sandbox, "--target", "scripts/calc.py", "--goal", "fix mul")

    assert done.returncode == 0, done.stderr
    assert result["status"] == "created"
    assert result["tokens"] == 300  # both calls are paid for and counted
    second = llm.received[1].messages
    assert second[-2] == {"role": "assistant", "content": "You should multiply instead of adding."}
    assert "no SEARCH/REPLACE block" in second[-1]["content"]


def test_reply_still_malformed_at_the_limit_gives_up(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    llm.add("primary", *[Step(NON_MATCHING)] * 4)

    done, result = propose(sandbox, "--target", "scripts/calc.py", "--goal", "fix mul")

    assert done.returncode == 1
    assert result["status"] == "malformed"
    assert "matches nothing" in result["message"]
    assert len(llm.received) == 4  # the first try and 3 reflections
    assert evolve_branches(sandbox) == []
    assert ledger_rows(sandbox)[-1]["outcome"] == "malformed"


def test_cap_reached_sends_no_request(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    llm.add("primary", Step(GOOD_REPLY))
    done, result = propose(
        sandbox, "--target", "scripts/calc.py", "--goal", "fix mul", env={"SPEND_CAP_USD": "0.0001"}
    )
    assert done.returncode == 1
    assert result["status"] == "capped"
    assert "spend cap reached" in result["message"]
    assert llm.received == []
    assert {row["outcome"] for row in ledger_rows(sandbox)} == {"refused-cap"}


def test_unknown_price_fails_closed(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm, prices=False)
    llm.add("primary", Step(GOOD_REPLY))
    done, result = propose(
        sandbox, "--proposer", "llm", "--target", "scripts/calc.py", "--goal", "fix mul"
    )
    assert done.returncode == 3
    assert result["status"] == "unavailable" and "no known price" in result["message"]
    assert llm.received == []


def test_protected_target_is_refused(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    done, _result = propose(sandbox, "--target", "tests/test_calc.py", "--goal", "cheat")
    assert done.returncode == 2
    assert "tests/test_calc.py is protected" in done.stderr
    done, _ = propose(sandbox, "--target", "README.md", "--goal", "edit docs")
    assert done.returncode == 2 and "not under the evolvable paths" in done.stderr
    assert llm.received == []


def test_kill_flag_refuses_before_any_call(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    llm.add("primary", Step(GOOD_REPLY))
    (sandbox.path / "runs").mkdir()
    (sandbox.path / "runs" / "KILL").write_text("stop")
    done, result = propose(sandbox, "--target", "scripts/calc.py", "--goal", "fix mul")
    assert done.returncode == 1 and result["status"] == "killed"
    assert llm.received == []
    assert evolve_branches(sandbox) == []


def test_a_planted_secret_appears_in_no_artifact(sandbox: Sandbox, llm: ScriptedLLM) -> None:
    configure(sandbox, llm)
    sandbox.commit(
        "a script that mentions the key",
        {"scripts/calc.py": CALC + f'\n\nKEY_HINT = "{SECRET}"\n'},
    )
    llm.add("primary", Step(GOOD_REPLY))

    done, _result = propose(
        sandbox, "--target", "scripts/calc.py", "--goal", f"fix mul, not {SECRET}"
    )

    assert done.returncode == 0, done.stderr
    assert SECRET not in done.stdout + done.stderr
    assert [r.bearer_token for r in llm.received] == [SECRET]
    assert SECRET not in llm.received[0].text  # the prompt
    assert f"«redacted:{KEY_ENV}»" in llm.received[0].text
    messages = sandbox.git("log", "--all", "--format=%B")
    assert SECRET not in messages and f"«redacted:{KEY_ENV}»" in messages
    assert SECRET.encode() not in (sandbox.path / "runs" / "ledger.sqlite").read_bytes()
    assert SECRET not in sandbox.git("notes", "--ref=evolve", "list", check=False)


def test_patch_proposer_takes_a_unified_diff_or_search_replace(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    sandbox.git("switch", "-q", "-c", "scratch")
    (sandbox.path / "scripts/calc.py").write_text(FIXED_CALC)
    diff = sandbox.git("diff") + "\n"
    sandbox.git("checkout", "-q", "--", ".")
    sandbox.git("switch", "-q", "main")
    patch = tmp_path / "fix.diff"
    patch.write_text(diff)

    done, result = propose(sandbox, "--patch", str(patch), "--goal", "fix mul from a diff")
    assert done.returncode == 0, done.stderr
    assert result["proposer"] == "patch" and result["changed"] == ["scripts/calc.py"]
    trailers = sandbox.git("log", "-1", "--format=%(trailers:only,unfold)", result["branch"])
    assert "Evolve-Proposer: patch" in trailers and "Evolve-Model: none" in trailers

    blocks = tmp_path / "fix.txt"
    blocks.write_text(GOOD_REPLY)
    done, result = propose(sandbox, "--patch", str(blocks), "--goal", "fix mul from blocks")
    assert done.returncode == 0, done.stderr
    assert sandbox.git("show", f"{result['branch']}:scripts/calc.py") == FIXED_CALC.rstrip("\n")

    evil = tmp_path / "evil.diff"
    evil.write_text(
        subprocess.run(
            ["git", "diff", "--no-index", "/dev/null", str(blocks)],
            capture_output=True,
            text=True,
            check=False,
        ).stdout.replace(str(blocks).lstrip("/"), "tests/test_new.py")
    )
    done, _ = propose(sandbox, "--patch", str(evil), "--goal", "sneak a test in")
    assert done.returncode == 2 and "tests/test_new.py is protected" in done.stderr

    junk = tmp_path / "junk.diff"
    junk.write_text("this is not a diff\n")
    done, result = propose(sandbox, "--patch", str(junk), "--goal", "nothing")
    assert done.returncode == 1 and result["status"] == "malformed"


def test_auto_asks_the_models_named_on_the_command_line_when_none_are_configured(
    sandbox: Sandbox, llm: ScriptedLLM
) -> None:
    """`auto` is a fallback chain over the proposers it was given: `--model M` makes the
    model chain, even with no [[llm.models]] in deploy/agent.toml. (Before, auto went
    straight to mutate and no request was made.) A local model costs nothing, so no
    price is needed; litellm finds its endpoint in LM_STUDIO_API_BASE."""
    llm.add("local-model", Step(GOOD_REPLY))

    done, result = propose(
        sandbox, "--model", "lm_studio/local-model", "--target", "scripts/calc.py",
        "--goal", "fix mul", env={"LM_STUDIO_API_BASE": llm.url},
    )  # fmt: skip

    assert done.returncode == 0, done.stdout + done.stderr
    assert [r.model for r in llm.received] == ["local-model"]
    assert (result["status"], result["proposer"]) == ("created", "llm")
    assert result["model"] == "lm_studio/local-model"
