"""The `agent:NAME` proposers: any coding agent as a proposer, sandboxed, capped, judged.

    agent → scratch tree → diff → branch → gate

A coding agent edits a working tree and says "done"; it keeps no per-test ratchet, and
its own sandbox protects the machine, not the verdict. Here it edits a scratch copy of
main inside Ratchet's sandbox (`session.py`), its every model call goes through the
loopback proxy that prices it in the shared ledger first (`proxy.py`), and what it left
in the tree (`scratch.py`) becomes one `Change`: the package's entry point commits it on
an `evolve/*` branch with the usual trailers, and the gate judges it like any other
proposal. The tools differ only in the adapter table (`adapters.py`).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from agent.config import AgentToolConfig
from agent.errors import EnvironmentFailure, UsageError
from agent.ledger import Ledger
from agent.llm import LLMClient, LLMRefused
from agent.redact import Redactor
from evolution.propose.agents import adapters, scratch, session
from evolution.propose.agents.adapters import Adapter
from evolution.propose.agents.direct import PURPOSE, DirectSpend
from evolution.propose.agents.proxy import ModelProxy, ProxyLog
from evolution.propose.base import Change, Failed, NoChange, Request, Spend
from evolution.propose.context import Context, failing_for
from evolution.run.folder import RunFolder
from evolution.sandbox.isolation import HOW_TO_ENABLE, Isolation, choose


class AgentProposer:
    def __init__(self, proposer: str) -> None:
        self.adapter = adapters.adapter_for(proposer)
        self.name = f"agent:{self.adapter.name}"

    def propose(self, ctx: Context, request: Request, spend: Spend) -> Change:
        tool = ctx.config.agents.tool(self.adapter.name)
        template = adapters.command_template(self.adapter, tool)
        program = _program(self.name, template[0], self.adapter, tool)
        direct = self._direct(tool)
        key = self._direct_key(tool) if direct else {}
        isolation = self._isolation(ctx, request)
        with contextlib.ExitStack() as stack:
            run = stack.enter_context(RunFolder(ctx.repo, ctx.main))
            before = scratch.snapshot(run.tree)
            goal = goal_text(ctx, request)
            socket = stack.enter_context(session.socket_path(run))
            proxy = ModelProxy(socket, lambda: _client(ctx), purpose=PURPOSE)
            launch = self._launch(ctx, run, request, tool, [program, *template[1:]],
                                  direct, key, proxy, goal)  # fmt: skip
            prepared = session.prepare(run, ctx.policy, isolation, launch)
            redact = _redactor(ctx, key, proxy.token)
            paid = DirectSpend(ctx, tool, self.name) if direct else None
            try:
                with proxy, paid or contextlib.nullcontext():
                    finished = session.run_agent(run, isolation, prepared, launch,
                                                 watch=self._watch(ctx, request, proxy),
                                                 redact=redact)  # fmt: skip
                    if paid is not None:
                        paid.settle(finished.output, self.adapter)
            except session.Stopped as stopped:
                raise LLMRefused(stopped.status, f"{self.name}: {stopped}") from None
            finally:  # a stopped run was paid for too
                _account(spend, proxy.log, paid)
            self._judge(finished, proxy, paid, launch.timeout_s)
            diff = scratch.diff_tree(ctx.repo, ctx.main, run.tree, before, self.adapter.droppings)
        return self._change(ctx, diff, template, finished, proxy, goal, redact)

    def _isolation(self, ctx: Context, request: Request) -> Isolation:
        """The sandbox, always: a coding agent acts on its own for minutes, with a shell;
        without the sandbox it would have the user's files, keys and network."""
        isolation = choose(ctx.policy, automated=True, unsandboxed=request.unsandboxed)
        if not isolation.sandboxed:
            raise EnvironmentFailure(
                f"{self.name} runs only inside Ratchet's sandbox, which this host cannot "
                f"give ({isolation.reason}); --unsandboxed does not apply to coding agents",
                hint=HOW_TO_ENABLE.split(", or accept")[0],
            )
        return isolation

    def _launch(
        self, ctx: Context, run: RunFolder, request: Request, tool: AgentToolConfig,
        template: list[str], direct: bool, key: dict[str, str], proxy: ModelProxy, goal: str,
    ) -> session.Launch:  # fmt: skip
        """The command line and environment, every placeholder filled in."""
        goal_file = run.tmp / "ratchet-goal.md"
        goal_file.write_text(goal, encoding="utf-8")
        placeholders = {
            "goal_file": str(goal_file), "goal": goal, "workdir": str(run.tree),
            "model": tool.model or _model_name(ctx), "home": str(run.home),
            "budget": f"{tool.budget_usd or 0:g}", **session.addresses(proxy.token, direct),
        }  # fmt: skip
        program = template[0]
        arguments = adapters.arguments(self.adapter, template[1:], placeholders,
                                       request.targets, direct=direct)  # fmt: skip
        env = session.agent_environment(run, self.adapter, placeholders, program, key)
        return session.Launch(
            command=[program, *arguments], env=env, direct=direct, socket=proxy.socket_path,
            timeout_s=tool.timeout_s or ctx.config.agents.timeout_s,
            transcript=ctx.config.runs / "agents" / f"{request.proposal}-{self.adapter.name}.log",
            home_files=self.adapter.home_files,
        )

    def _direct(self, tool: AgentToolConfig) -> bool:
        if self.adapter.api == "none" and not tool.direct:
            raise UsageError(
                f"{self.name} cannot be pointed at Ratchet's model proxy (it speaks "
                "its own API): run it direct on purpose, with [[agents.tools]] "
                f'name = "{self.adapter.name}", direct = true and budget_usd = N'
            )
        if tool.direct and not tool.budget_usd:
            raise UsageError(
                f"{self.name} runs direct (without the model proxy): its "
                "[[agents.tools]] entry must say what a run may spend (budget_usd, more "
                "than 0), which is reserved against the daily cap before it starts"
            )
        return tool.direct

    def _direct_key(self, tool: AgentToolConfig) -> dict[str, str]:
        """A direct run's own key, the one secret it is given, on purpose."""
        name = tool.api_key_env or self.adapter.direct_key_env
        if not name:
            return {}
        value = os.environ.get(name)
        if not value:
            raise UsageError(
                f"{self.name} runs direct and needs its key in ${name}, which is not set"
            )
        return {self.adapter.direct_key_env or name: value}

    def _watch(self, ctx: Context, request: Request, proxy: ModelProxy) -> Callable[[], None]:
        """Called while the agent runs: progress, then the kill flag and the proxy's
        refusals, either of which stops its whole group at once."""
        flag = ctx.config.kill_flag_path

        def watch() -> None:
            if request.on_progress is not None:
                request.on_progress(self.name, proxy.log.calls, proxy.log.cost_usd)
            if flag.exists():
                raise session.Stopped(
                    "killed", f"kill flag present ({flag}): the agent was stopped"
                )
            if proxy.log.refused is not None:
                raise session.Stopped(*proxy.log.refused)

        return watch

    def _judge(
        self, finished: session.Finished, proxy: ModelProxy, paid: DirectSpend | None,
        timeout: float,
    ) -> None:  # fmt: skip
        """A refusal decides first (the agent may have exited on the error it got);
        then the timeout, the exit status, and a direct tool's own verdict."""
        if proxy.log.refused is not None:
            status, message = proxy.log.refused
            raise LLMRefused(status, f"{self.name}: {message}")
        result = finished.result
        if result.timed_out:
            raise Failed(f"{self.name} ran out of time after {timeout:g} s: its process group "
                         f"was killed (transcript: {finished.transcript})")  # fmt: skip
        if result.returncode != 0:
            tail = " | ".join(finished.output.strip().splitlines()[-3:])[-400:]
            raise Failed(f"{self.name} exited with status {result.returncode}: "
                         f"{tail or 'no output'} (transcript: {finished.transcript})")  # fmt: skip
        if paid is not None and paid.usage is not None and not paid.usage.ok:
            raise Failed(f"{self.name} reported a failure: {paid.usage.message[:400]} "
                         f"(transcript: {finished.transcript})")  # fmt: skip

    def _change(
        self, ctx: Context, diff: scratch.TreeDiff, template: list[str],
        finished: session.Finished, proxy: ModelProxy, goal: str, redact: Callable[[str], str],
    ) -> Change:  # fmt: skip
        """The change, once it is within the limits and holds no secret: a direct run
        had its key, any run its proxy token, and a file is committed as it is."""
        secret = [rel for rel, text in diff.files.items() if text and redact(text) != text]
        if secret:
            raise Failed(f"{self.name} wrote a secret into {', '.join(sorted(secret))}: "
                         "refused, nothing is committed")  # fmt: skip
        limits = ctx.config.agents
        if diff.empty:
            raise NoChange(f"{self.name} finished without changing any file "
                           f"(transcript: {finished.transcript})")  # fmt: skip
        if len(diff.files) > limits.max_files:
            raise Failed(
                f"{self.name}'s change is too large: {len(diff.files)} files changed, over "
                f"the limit of {limits.max_files} ([agents.limits] max_files)"
            )
        lines, added = diff.size()
        if lines > limits.max_lines or added > limits.max_bytes:
            raise Failed(
                f"{self.name}'s change is too large: {lines} lines changed and {added} bytes "
                f"added, over the limits of {limits.max_lines} lines and {limits.max_bytes} "
                "bytes ([agents.limits] max_lines, max_bytes)"
            )
        fingerprint = hashlib.sha256(json.dumps([template, goal]).encode()).hexdigest()
        details = (
            f"Agent: {self.name}, {finished.result.duration_s:.1f} s, "
            f"{proxy.log.calls} model call(s) through the proxy; transcript "
            f"{_shown(ctx, finished.transcript)}"
        )
        return Change(diff.files, fingerprint, details)


def goal_text(ctx: Context, request: Request) -> str:
    """What the agent is asked: the goal, the files it may change, the failing tests
    that concern them, the gate's rules, and what the gate rejected before."""
    from evolution.propose.llm import _rejected_for, render

    failing, _sources = failing_for(ctx, request.targets)
    text = render("agent", goal=request.goal, targets=request.targets, failing=failing,
                  rejected=_rejected_for(ctx, request.targets))  # fmt: skip
    return ctx.redact(text)


def _program(name: str, program: str, adapter: Adapter, tool: AgentToolConfig) -> str:
    found = shutil.which(program)
    if found is None:
        where = "its [[agents.tools]] program" if tool.program else "PATH"
        raise EnvironmentFailure(
            f"{name} needs the {program!r} command, which is not on {where}",
            hint=f"install it ({adapter.install}), or name its path in deploy/agent.toml: "
            f'[[agents.tools]] name = "{adapter.name}", program = "/path/to/{Path(program).name}"',
        )
    return os.path.abspath(found)


def _model_name(ctx: Context) -> str:
    """What the agent is told its model is: the chain's first, without its provider
    (the proxy serves the whole chain whatever the agent asks for)."""
    if not ctx.config.models:
        return "ratchet"
    return ctx.config.models[0].model.split("/", 1)[-1]


def _client(ctx: Context) -> LLMClient:
    """A client with a ledger connection of its own: the proxy calls from its thread,
    and closes it after the call."""
    return LLMClient(ctx.config, Ledger(ctx.config.ledger), ctx.redact)


def _redactor(ctx: Context, passed: dict[str, str], token: str) -> Callable[[str], str]:
    """The deployment's secrets, a direct run's own key and this run's proxy token."""
    extra = Redactor({**passed, "proxy-token": token})
    return lambda text: extra(ctx.redact(text))


def _account(spend: Spend, log: ProxyLog, paid: DirectSpend | None) -> None:
    """What the run cost, into the proposal's trailers: the calls the proxy forwarded,
    and what a direct run was charged."""
    spend.cost_usd += log.cost_usd
    spend.tokens += log.tokens
    spend.model = log.model or spend.model
    if paid is not None:
        spend.cost_usd += paid.charged
        if paid.usage is not None:
            spend.tokens += paid.usage.prompt_tokens + paid.usage.completion_tokens
            spend.model = paid.usage.model or spend.model


def _shown(ctx: Context, path: Path) -> str:
    try:
        return str(path.relative_to(ctx.config.root))
    except ValueError:
        return str(path)
