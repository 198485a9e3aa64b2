"""The interface every proposer implements, and what it hands back.

A proposer turns a request (targets, a goal) into a change: the new content of some
files, a fingerprint of what produced it (the prompt's hash, or what the search tried),
a few lines for the commit body, and what it spent. Everything else (argument checks,
the kill flag, the commit with its trailers, the branch, the status) is the package's
entry point's job, the same for every proposer.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from agent.errors import Refused

if TYPE_CHECKING:
    from agent.llm import Completion
    from evolution.mutate.search import SearchLimits
    from evolution.propose.context import Context


@dataclass
class Spend:
    cost_usd: float = 0.0
    tokens: int = 0
    model: str = ""

    def add(self, completion: Completion) -> None:
        self.cost_usd += completion.cost_usd
        self.tokens += completion.tokens
        self.model = completion.model


@dataclass
class Request:
    targets: list[str]
    goal: str
    patch: Path | None = None
    models: list[str] | None = None  # the model chain to ask instead of the configured one
    limits: SearchLimits | None = None
    tried: set[str] | None = None  # mutants already judged in this cycle
    unsandboxed: bool = False
    # Further files, most suspicious first, that mutate searches with what is left of its
    # budget when the targets yield nothing (a model's prompt names the targets only).
    then: list[str] = field(default_factory=list)
    proposal: str = ""  # the proposal's id: names what a proposer keeps under runs/
    # Told, while a coding agent works, its name, its model calls so far and their cost.
    on_progress: Callable[[str, int, float], None] | None = None


@dataclass
class Change:
    files: dict[str, str | None]  # path -> new content; None: the file is removed
    fingerprint: str  # the prompt's SHA-256, or what stands in for one
    details: str = ""  # for the commit body
    search: dict[str, Any] | None = None  # what mutate tried


class Proposer(Protocol):
    name: str

    def propose(self, ctx: Context, request: Request, spend: Spend) -> Change:
        """The change, or an error: NoChange (nothing to propose), MalformedReply, Failed,
        or the model client's LLMRefused / LLMUnavailable. What it spends is added to `spend`
        as it goes, so a failed attempt is paid for too."""
        ...


class NoChange(Refused):
    """The proposer had nothing to propose, or found nothing within its limits."""

    def __init__(self, message: str, *, search: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.search = search


class Failed(Refused):
    """The proposer's tool failed: a coding agent that exited non-zero, ran out of time,
    or left a change too large or not made of files."""
