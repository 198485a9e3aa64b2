"""Run each installed coding agent once, headless and offline, against a scripted model.

    python3 .ci/agents/smoke.py [VENV]        # VENV as given to .ci/agents/install (.venv)

For each agent a tiny project is laid in a temporary folder (scripts/calc.py adds where it
should multiply), the agent is started there with stdin at /dev/null, an empty HOME, a
private TMPDIR and a minimal PATH, its model being `openai/primary` on a ScriptedLLM
(tests/llm_server.py) on 127.0.0.1, and the script says whether the file was fixed, how
many model requests the run made and what the agent wrote outside the project. The argv
and environment below are the ones Ratchet's proposers use; .ci/agents/README.md says why
each is there. Exit status 0 when every agent made its edit.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests"))
from llm_server import ScriptedLLM, Step  # noqa: E402

MODEL = "primary"
GOAL = "Fix multiply in scripts/calc.py: it must return a * b.\n"
BUGGY = "def multiply(a, b):\n    # seeded bug: should multiply\n    return a + b\n"
FIXED = BUGGY.replace("a + b", "a * b")
TEST = (
    "from scripts.calc import multiply\n\n\ndef test_multiply():\n    assert multiply(3, 4) == 12\n"
)
# The price of the scripted model, so that each agent can count its cost with no price list
# from the network (aider reads it with --model-metadata-file, mini from
# LITELLM_MODEL_REGISTRY_PATH): $1 and $2 per million tokens in and out.
METADATA = {
    f"openai/{MODEL}": {
        "max_input_tokens": 128000,
        "max_output_tokens": 8192,
        "max_tokens": 8192,
        "input_cost_per_token": 1e-06,
        "output_cost_per_token": 2e-06,
        "litellm_provider": "openai",
        "mode": "chat",
    }
}

# aider's "diff" edit format: one SEARCH/REPLACE block, after the file's name as aider shows
# it. Without git aider's root is the folder of the files named on its command line
# (scripts/ here), so it shows "calc.py"; a path from the project's root matches too.
AIDER_REPLY = """calc.py
```python
<<<<<<< SEARCH
    return a + b
=======
    return a * b
>>>>>>> REPLACE
```
"""
# mini-swe-agent 2.x, text-based: exactly one ```mswea_bash_command block per reply, run
# by /bin/sh in mini's current folder (the project); a command whose output's first line is
# COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT (exit status 0) ends the run.
MINI_REPLIES = [
    "Fix the operator.\n\n```mswea_bash_command\n"
    "sed -i 's/return a + b/return a * b/' scripts/calc.py\n```\n",
    "Done.\n\n```mswea_bash_command\necho COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT\n```\n",
]


def aider(bin_dir: Path, run: Path, url: str) -> tuple[list[str], dict[str, str]]:
    argv = [
        str(bin_dir / "aider"),
        "--model", f"openai/{MODEL}",
        "--openai-api-base", url,
        "--model-metadata-file", str(run / "model-metadata.json"),
        "--edit-format", "diff",
        "--no-git", "--no-auto-commits", "--no-dirty-commits",
        "--no-check-update", "--analytics-disable", "--no-show-release-notes",
        "--no-show-model-warnings",
        "--no-auto-lint", "--no-auto-test",
        "--no-stream", "--yes-always", "--no-pretty", "--no-fancy-input",
        "--no-suggest-shell-commands", "--no-detect-urls",
        "--map-tokens", "0",
        "--chat-history-file", str(run / "aider.chat.history.md"),
        "--input-history-file", str(run / "aider.input.history"),
        "--env-file", str(run / "no.env"),
        "--message-file", str(run / "goal.txt"),
        "scripts/calc.py",
    ]  # fmt: skip
    return argv, {}


def mini(bin_dir: Path, run: Path, url: str) -> tuple[list[str], dict[str, str]]:
    argv = [
        str(bin_dir / "mini"),
        "--model", f"openai/{MODEL}",
        "--model-class", "litellm_textbased",
        "--config", "mini_textbased.yaml",
        "--config", f"model.model_kwargs.api_base={url}",
        "--yolo", "--exit-immediately",
        "--cost-limit", "1",
        "--output", str(run / "mini.traj.json"),
        "--task", (run / "goal.txt").read_text(),
    ]  # fmt: skip
    env = {
        "MSWEA_CONFIGURED": "true",  # else a first-run setup wizard prompts on stdin
        "MSWEA_SILENT_STARTUP": "1",
        "MSWEA_GLOBAL_CONFIG_DIR": str(run / "mini-config"),
        "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1",  # mini's own retries: none
        "LITELLM_MODEL_REGISTRY_PATH": str(run / "model-metadata.json"),
    }
    return argv, env


AGENTS = {
    "aider": (aider, [AIDER_REPLY]),
    "mini": (mini, MINI_REPLIES),
}


def smoke(name: str, venv: Path) -> bool:
    command, replies = AGENTS[name]
    bin_dir = venv / "agents" / name / "bin"
    server = ScriptedLLM()
    server.start()
    server.add(MODEL, *(Step(content=reply) for reply in replies))
    with tempfile.TemporaryDirectory(prefix=f"ratchet-smoke-{name}-") as tmp:
        base = Path(tmp)
        project, run, home, tmpdir = (base / d for d in ("project", "run", "home", "tmp"))
        for d in (project / "scripts", project / "tests", run, home, tmpdir):
            d.mkdir(parents=True)
        (project / "scripts" / "calc.py").write_text(BUGGY)
        (project / "tests" / "test_calc.py").write_text(TEST)
        (run / "goal.txt").write_text(GOAL)
        (run / "no.env").write_text("")
        (run / "model-metadata.json").write_text(json.dumps(METADATA))
        argv, extra = command(bin_dir, run, server.url)
        env = {
            "PATH": f"{bin_dir}:/usr/bin:/bin",
            "HOME": str(home),
            "TMPDIR": str(tmpdir),
            "OPENAI_API_KEY": "sk-ratchet-smoke",
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
            "NO_COLOR": "1",
            "TERM": "dumb",
            **extra,
        }
        start = time.monotonic()
        done = subprocess.run(
            argv, cwd=project, env=env, stdin=subprocess.DEVNULL,
            capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        seconds = time.monotonic() - start
        server.stop()
        edited = (project / "scripts" / "calc.py").read_text() == FIXED
        kept = {project / "scripts" / "calc.py", project / "tests" / "test_calc.py"}
        written = sorted(
            str(p.relative_to(base))
            for d in (home, tmpdir, project)
            for p in d.rglob("*")
            if p.is_file() and p not in kept
        )
        print(
            f"{name}: {'edited' if edited else 'NOT edited'}, exit {done.returncode}, "
            f"{len(server.received)} model request(s), {seconds:.1f} s; "
            f"wrote outside run/: {', '.join(written) or 'nothing'}"
        )
        if not edited:
            print(done.stdout[-3000:], done.stderr[-3000:], sep="\n", file=sys.stderr)
        return edited


def main() -> int:
    venv = ROOT / (sys.argv[1] if len(sys.argv) > 1 else ".venv")
    results = [smoke(name, venv) for name in AGENTS]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main())
