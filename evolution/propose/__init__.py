"""`evolve propose`: one proposal, on its own branch, with the trailers the trail needs.

Proposers implement one small interface (`base.Proposer`) and sit in a registry, listed
by name and loaded only when used:
- `llm` asks the model chain for SEARCH/REPLACE blocks (`propose/llm.py`);
- `mutate` repairs a target against its failing baseline tests offline (genetic
  improvement, `propose/mutate.py` over `evolution/mutate/`);
- `patch` takes a unified diff or a SEARCH/REPLACE file from any tool or person;
- `agent:NAME` runs a coding agent (aider, mini-swe-agent, Codex CLI, Claude Code,
  Gemini CLI, or any command) in a sandboxed scratch tree, its model calls through a
  proxy that holds the spend cap (`propose/agents/`).
`auto` is a fallback chain: the model chain (from the caller's models, else the
configured ones), then `mutate`, which takes over when no model answers.

This entry point owns what is common to all of them: the checks of the request, the
kill flag, the commit with its trailers on a branch `evolve/<UTC timestamp>-<slug>`
made from main by plumbing (the working tree, index and stash are never touched), and
the status. Secrets are redacted from the prompt and the commit message; the gate
judges the branch later.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from agent.llm import LLMRefused, LLMUnavailable
from evolution.gitrepo import GitRepo, slug
from evolution.mutate.search import SearchLimits
from evolution.propose.agents.adapters import NAMES as AGENT_PROPOSERS
from evolution.propose.base import Change, Failed, NoChange, Proposer, Request, Spend
from evolution.propose.context import Context, check_paths, normalise, open_context
from evolution.propose.edits import MalformedReply
from evolution.trail.write import proposal_message

REGISTRY = {
    "llm": "evolution.propose.llm:LLMProposer",
    "mutate": "evolution.propose.mutate:MutateProposer",
    "patch": "evolution.propose.patch:PatchProposer",
    **{name: "evolution.propose.agents:AgentProposer" for name in AGENT_PROPOSERS},
}
PROPOSERS = ("auto", *REGISTRY)


@dataclass
class ProposalResult:
    id: str
    status: str  # created | no-change | malformed | failed | capped | killed | unavailable
    proposer: str
    branch: str = ""
    commit: str = ""
    model: str = ""
    cost_usd: float = 0.0
    tokens: int = 0
    changed: list[str] = field(default_factory=list)
    message: str = ""
    search: dict[str, Any] | None = None  # what `mutate` tried, when it ran

    @property
    def exit_code(self) -> int:
        return {"created": 0, "unavailable": 3}.get(self.status, 1)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "exit_code": self.exit_code}


def load(name: str, **options: Any) -> Proposer:
    module, _, cls = REGISTRY[name].partition(":")
    if name in AGENT_PROPOSERS:
        options["proposer"] = name  # one class, the adapter table says which tool
    return getattr(importlib.import_module(module), cls)(**options)  # type: ignore[no-any-return]


def chain(name: str, ctx: Context, models: list[str] | None) -> list[Proposer]:
    """The proposers to try, in order. `auto`: the model chain when there is one (the
    caller's models, else the configured ones), then mutate."""
    if name == "auto":
        if models or ctx.config.models:
            return [load("llm", models=models), load("mutate")]
        return [load("mutate")]
    return [load(name, models=models) if name == "llm" else load(name)]


def new_id(goal: str, now: datetime | None = None) -> str:
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{slug(goal, limit=40)}"


def _check(proposer: str, targets: list[str], goal: str, patch: Path | None) -> None:
    if not goal.strip():
        raise UsageError("the goal must say what the change is for")
    if proposer not in PROPOSERS:
        raise UsageError(f"unknown proposer {proposer!r}: choose one of {', '.join(PROPOSERS)}")
    if proposer == "patch" and patch is None:
        raise UsageError("the patch proposer needs a patch file")
    if proposer != "patch" and not targets:
        raise UsageError("name at least one target file")


def propose(
    repo: GitRepo,
    *,
    targets: list[str],
    goal: str,
    proposer: str = "llm",
    patch: Path | None = None,
    models: list[str] | None = None,
    limits: SearchLimits | None = None,
    tried: set[str] | None = None,
    unsandboxed: bool = False,
    then: list[str] | None = None,
    on_progress: Callable[[str, int, float], None] | None = None,
) -> ProposalResult:
    if proposer == "auto" and patch is not None:
        proposer = "patch"  # a patch in hand is the change to propose
    _check(proposer, targets, goal, patch)
    ctx = open_context(repo)
    targets = sorted({normalise(t) for t in targets})
    later = [t for t in dict.fromkeys(normalise(t) for t in then or []) if t not in targets]
    check_paths(targets + later, ctx.policy)
    result = ProposalResult(id=new_id(goal), status="no-change", proposer=proposer)
    request = Request(
        targets, goal, patch, models, limits, tried, unsandboxed, later, result.id, on_progress
    )
    kill_flag = ctx.config.kill_flag_path
    if kill_flag.exists():
        result.status, result.message = "killed", f"kill flag present ({kill_flag}): refusing"
        return result
    spend = Spend()
    change = _run_chain(chain(proposer, ctx, models), ctx, request, spend, result)
    if change is not None:
        result.branch, result.commit = _commit(ctx, change, result, goal, spend)
        result.status, result.changed = "created", sorted(change.files)
    result.model, result.cost_usd, result.tokens = (
        spend.model,
        round(spend.cost_usd, 6),
        spend.tokens,
    )
    result.message = ctx.redact(result.message)
    return result


def _run_chain(
    proposers: list[Proposer], ctx: Context, request: Request, spend: Spend,
    result: ProposalResult,
) -> Change | None:  # fmt: skip
    """The first change a proposer makes, falling back to the next when no model answers;
    otherwise None with the status and message set on `result`."""
    for index, proposer in enumerate(proposers):
        result.proposer = proposer.name
        try:
            change = proposer.propose(ctx, request, spend)
        except LLMUnavailable as unavailable:
            if index + 1 < len(proposers):
                continue  # no model answered: the unconscious layer still works
            result.status, result.message = "unavailable", str(unavailable)
        except LLMRefused as refused:
            result.status, result.message = refused.status, str(refused)
        except NoChange as none:
            result.status, result.message, result.search = "no-change", none.message, none.search
        except MalformedReply as malformed:
            result.status, result.message = "malformed", malformed.message
        except Failed as failed:
            result.status, result.message = "failed", str(failed)
        else:
            result.search = change.search
            return change
        return None
    return None


def _commit(
    ctx: Context, change: Change, result: ProposalResult, goal: str, spend: Spend
) -> tuple[str, str]:
    message = proposal_message(
        goal=goal,
        proposer=result.proposer,
        model=spend.model,
        files=sorted(change.files),
        details=change.details,
        proposal=result.id,
        cost_usd=spend.cost_usd,
        tokens=spend.tokens,
        prompt_sha256=change.fingerprint,
    )
    branch = f"evolve/{result.id}"
    commit = ctx.repo.commit_files(ctx.main, change.files, ctx.redact(message), branch)
    return branch, commit


__all__ = [
    "PROPOSERS",
    "Context",
    "ProposalResult",
    "chain",
    "new_id",
    "open_context",
    "propose",
]
