"""The `llm` proposer: ask the model chain for SEARCH/REPLACE blocks.

The prompt is rendered from the package's Jinja2 templates (StrictUndefined) with the
target files, the goal, the baseline's failing tests that concern them (and their
source), the last rejected proposals for the same files with their regressions, and the
repository's CONVENTIONS.md or AGENTS.md. A reply that does not apply is sent back with
the precise problem, at most REFLECTIONS times (Aider's finding: never skip a block that
does not match silently).
"""

from __future__ import annotations

import hashlib
import json
from importlib import resources
from typing import Any

from agent.config import ModelConfig
from agent.ledger import Ledger
from agent.llm import LLMClient
from evolution.propose.base import Change, Request, Spend
from evolution.propose.context import Context, clip, failing_for
from evolution.propose.edits import MalformedReply, apply_blocks, parse_blocks
from evolution.trail import format as t
from evolution.trail.read import read_trail

REFLECTIONS = 3
CONVENTION_FILES = ("CONVENTIONS.md", "AGENTS.md")


def render(name: str, **values: Any) -> str:
    import jinja2

    source = (resources.files("evolution") / "prompts" / f"{name}.md.j2").read_text()
    env = jinja2.Environment(
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        autoescape=False,
    )
    return env.from_string(source).render(**values)


def _rejected_for(ctx: Context, targets: list[str], limit: int = 3) -> list[dict[str, str]]:
    items = []
    for entry in read_trail(ctx.repo, ctx.main_ref, verdict=t.REJECTED, limit=50):
        if not set(ctx.repo.changed_paths(entry.commit)) & set(targets):
            continue
        lines = [ln.strip() for ln in entry.note.splitlines() if "(passed ->" in ln]
        items.append(
            {
                "proposal": entry.proposal or entry.commit[:10],
                "goal": entry.goal or entry.subject,
                "regressions": "; ".join(lines[:5]) or "rejected",
            }
        )
        if len(items) == limit:
            break
    return items


def _conventions(ctx: Context) -> str:
    for name in CONVENTION_FILES:
        text = ctx.read(name)
        if text is not None:
            return clip(text)
    return ""


def prompt(ctx: Context, goal: str, files: dict[str, str | None]) -> list[dict[str, str]]:
    targets = sorted(files)
    failing, sources = failing_for(ctx, targets)
    user = render(
        "propose",
        goal=goal,
        conventions=_conventions(ctx),
        files=[(path, files[path]) for path in targets],
        failing=failing,
        failing_sources=sources,
        rejected=_rejected_for(ctx, targets),
    )
    return [
        {"role": "system", "content": render("system", targets=targets)},
        {"role": "user", "content": user},
    ]


class LLMProposer:
    name = "llm"

    def __init__(self, models: list[str] | None = None) -> None:
        self.models = models

    def chain(self, ctx: Context) -> tuple[ModelConfig, ...]:
        """The configured chain, or the models named by the caller (their configured
        settings where they have some)."""
        if not self.models:
            return ctx.config.models
        known = {m.model: m for m in ctx.config.models}
        return tuple(known.get(name, ModelConfig(model=name)) for name in self.models)

    def propose(self, ctx: Context, request: Request, spend: Spend) -> Change:
        files = {path: ctx.read(path) for path in request.targets}
        with Ledger(ctx.config.ledger) as ledger:
            client = LLMClient(ctx.config, ledger, ctx.redact, models=self.chain(ctx))
            try:
                changed, prompt_sha = self._ask(ctx, client, request.goal, files, spend)
            except MalformedReply as malformed:
                ledger.note(
                    spend.model or "-", "propose", "malformed", ctx.redact(str(malformed))[:500]
                )
                raise
        return Change(changed, prompt_sha)

    def _ask(
        self,
        ctx: Context,
        client: LLMClient,
        goal: str,
        files: dict[str, str | None],
        spend: Spend,
    ) -> tuple[dict[str, str], str]:
        """The changed files and the prompt hash, after at most REFLECTIONS reflections."""
        messages = prompt(ctx, goal, files)
        prompt_sha = hashlib.sha256(json.dumps(messages, sort_keys=True).encode()).hexdigest()
        problem = ""
        for attempt in range(REFLECTIONS + 1):
            completion = client.complete(messages, purpose="propose")
            spend.add(completion)
            try:
                return apply_blocks(files, parse_blocks(completion.text)), prompt_sha
            except MalformedReply as malformed:
                problem = str(malformed)
            if attempt == REFLECTIONS:
                break
            reflection = render(
                "reflect", problem=problem, attempt=attempt + 2, limit=REFLECTIONS + 1
            )
            messages = [
                *messages,
                {"role": "assistant", "content": completion.text},
                {"role": "user", "content": reflection},
            ]
        raise MalformedReply(f"no applicable change after {REFLECTIONS} reflections: {problem}")
