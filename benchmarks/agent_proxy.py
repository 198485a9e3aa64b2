"""Benchmark: what running a coding agent through Ratchet costs, against running it bare.

Two figures, each a ratio measured side by side in the same round (medians of
`--repeat` rounds, interleaved, so a busy machine moves both sides alike):

- **Per model call**: `--calls` chat completions to the loopback model server
  (tests/llm_server.py) made by one client process. Bare: the OpenAI-compatible request
  straight to the server. Through Ratchet: the same request to the model proxy on its
  Unix socket, which checks the kill flag, reserves the worst case in the SQLite ledger,
  forwards through litellm and settles. The server answers at once, so the figure is
  the proxy's own overhead per call, in milliseconds.
- **Per run**: an "agent" (a Python script that makes one call and edits a file) run
  bare in a copy of the tree, against `evolve propose --proposer agent:command`: the run
  folder, the sandbox, the relay, the proxy, the diff and the commit. Beside it, the
  same one-call proposal by the `llm` proposer (no agent, no sandbox), so that what the
  agent path adds is told apart from what any `evolve propose` costs (an interpreter,
  litellm's import, the commit).

Usage: python benchmarks/agent_proxy.py [--calls 50] [--repeat 3] [--json]
No timing is asserted anywhere: this prints figures for docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE), str(HERE / "tests")]

from llm_server import ScriptedLLM, Step  # noqa: E402
from proposal_setup import GOOD_REPLY as LLM_REPLY  # noqa: E402
from proposal_setup import KEY_ENV, SECRET, configure  # noqa: E402
from repo_setup import FIXED_CALC, git_identity, make_sandbox  # noqa: E402

from agent.config import load_runtime  # noqa: E402
from agent.ledger import Ledger  # noqa: E402
from agent.llm import LLMClient  # noqa: E402
from agent.redact import Redactor  # noqa: E402
from evolution.propose.agents.proxy import ModelProxy  # noqa: E402

BODY = json.dumps({"model": "primary", "messages": [{"role": "user", "content": "hello"}]})
AGENT = """#!{python}
import json, os, sys, urllib.request
base = os.environ.get("OPENAI_BASE_URL", sys.argv[1] if len(sys.argv) > 1 else "")
request = urllib.request.Request(base + "/chat/completions", data={body!r}.encode(),
    headers={{"Authorization": "Bearer " + os.environ.get("OPENAI_API_KEY", "k"),
              "Content-Type": "application/json"}})
with urllib.request.urlopen(request, timeout=30) as answer:
    text = json.load(answer)["choices"][0]["message"]["content"]
open("scripts/calc.py", "w").write(text)
"""


class UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("proxy")
        self.path = path

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)


def post(connection: http.client.HTTPConnection, path: str, key: str) -> None:
    connection.request("POST", path, BODY, {"Authorization": f"Bearer {key}",
                                            "Content-Type": "application/json"})  # fmt: skip
    response = connection.getresponse()
    response.read()
    if response.status != 200:
        raise SystemExit(f"{path}: HTTP {response.status}")


def per_call(box_path: Path, server: ScriptedLLM, calls: int) -> tuple[float, float]:
    """Seconds for `calls` calls, bare and through the proxy."""
    server.add("primary", *[Step("ok")] * (2 * calls))
    port = int(server.url.split(":")[2].split("/")[0])
    bare = http.client.HTTPConnection("127.0.0.1", port)
    started = time.perf_counter()
    for _ in range(calls):
        post(bare, "/v1/chat/completions", SECRET)
    bare_s = time.perf_counter() - started
    config = load_runtime(box_path)
    with tempfile.TemporaryDirectory() as folder:
        def client() -> LLMClient:
            return LLMClient(config, Ledger(config.ledger), Redactor({}))

        proxy = ModelProxy(Path(folder, "model.sock"), client)
        with proxy:
            through = UnixConnection(str(proxy.socket_path))
            started = time.perf_counter()
            for _ in range(calls):
                post(through, "/v1/chat/completions", proxy.token)
            proxy_s = time.perf_counter() - started
    return bare_s, proxy_s


def propose(box_path: Path, proposer: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "evolution.cli", "propose", "--json", "--proposer", proposer,
         "--target", "scripts/calc.py", "--goal", "bench"],
        cwd=box_path, capture_output=True, text=True, check=False,
        env={**os.environ, KEY_ENV: SECRET, "NO_COLOR": "1"},
    )  # fmt: skip
    if done.returncode != 0:
        raise SystemExit(f"evolve propose --proposer {proposer} failed: {done.stdout}{done.stderr}")
    return time.perf_counter() - started


def per_run(box_path: Path, server: ScriptedLLM, agent: Path) -> tuple[float, float, float]:
    """Seconds for one agent run bare in a copy of the tree, through evolve propose, and
    for the same proposal by the llm proposer."""
    server.add("primary", Step(FIXED_CALC), Step(FIXED_CALC), Step(LLM_REPLY))
    with tempfile.TemporaryDirectory() as copy:
        shutil.copytree(box_path / "scripts", Path(copy, "scripts"))
        started = time.perf_counter()
        subprocess.run([str(agent), server.url], cwd=copy, check=True,
                       env={**os.environ, "OPENAI_API_KEY": SECRET})  # fmt: skip
        bare_s = time.perf_counter() - started
    return bare_s, propose(box_path, "agent:command"), propose(box_path, "llm")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    server = ScriptedLLM()
    server.start()
    rows: dict[str, list[tuple[float, ...]]] = {"call": [], "run": []}
    with tempfile.TemporaryDirectory() as tmp, git_identity():
        box = make_sandbox(Path(tmp, "repo"))
        configure(box, server, cap=100.0, timeout=30)
        agent = Path(tmp, "agent", "agent.py")  # beside the checkout, not above it
        agent.parent.mkdir()
        agent.write_text(AGENT.format(python=sys.executable, body=BODY))
        agent.chmod(0o755)
        toml = (box.path / "deploy/agent.toml").read_text()
        toml += f'\n[[agents.tools]]\nname = "command"\ntemplate = "{agent}"\n'
        box.commit("the benchmark's agent", {"deploy/agent.toml": toml})
        os.environ[KEY_ENV] = SECRET
        for _ in range(args.repeat):
            rows["call"].append(per_call(box.path, server, args.calls))
            rows["run"].append(per_run(box.path, server, agent))
            box.git("branch", "-D", *box.git("branch", "--list", "evolve/*",
                                             "--format=%(refname:short)").split())  # fmt: skip
    server.stop()
    call_bare = statistics.median(b for b, _ in rows["call"]) / args.calls
    call_proxy = statistics.median(p for _, p in rows["call"]) / args.calls
    run_bare = statistics.median(r[0] for r in rows["run"])
    run_ratchet = statistics.median(r[1] for r in rows["run"])
    run_llm = statistics.median(r[2] for r in rows["run"])
    figures = {
        "calls": args.calls, "repeat": args.repeat,
        "call_bare_ms": round(call_bare * 1000, 2), "call_proxy_ms": round(call_proxy * 1000, 2),
        "call_ratio": round(call_proxy / call_bare, 2),
        "run_bare_s": round(run_bare, 2), "run_ratchet_s": round(run_ratchet, 2),
        "run_ratio": round(run_ratchet / run_bare, 2), "run_llm_s": round(run_llm, 2),
        "agent_over_llm_s": round(run_ratchet - run_llm, 2),
    }  # fmt: skip
    if args.json:
        print(json.dumps(figures))
    else:
        print(f"per model call: bare {figures['call_bare_ms']} ms, through the proxy "
              f"{figures['call_proxy_ms']} ms ({figures['call_ratio']}x)")  # fmt: skip
        print(f"per agent run: bare {figures['run_bare_s']} s, through evolve propose "
              f"{figures['run_ratchet_s']} s ({figures['run_ratio']}x); the llm proposer's "
              f"one call {figures['run_llm_s']} s, so the agent path adds "
              f"{figures['agent_over_llm_s']} s")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
