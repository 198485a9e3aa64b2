"""A direct run: a coding agent that cannot be pointed at the model proxy, run on purpose.

The cap must still refuse before the spend, agents included. A direct run has no call
to refuse one by one, so what it may spend (its `budget_usd`, which its own budget
switch is given where it has one) is reserved in the shared ledger before it starts,
and settled from what the tool reported afterwards: its cost in USD, else its tokens at
the model's known price, else the whole reservation (unknown spend is never zero).
"""

from __future__ import annotations

from agent.config import AgentToolConfig, ModelConfig
from agent.ledger import CapReached, Ledger
from agent.llm import LLMRefused, prices_for
from evolution.propose.agents import reports
from evolution.propose.agents.adapters import Adapter
from evolution.propose.agents.reports import Usage
from evolution.propose.context import Context

PURPOSE = "agent"


def read_report(parser: str | None, output: str) -> Usage | None:
    """What the tool said it spent, by its adapter's parser; None without one."""
    return getattr(reports, parser)(output) if parser else None


def cost_of(usage: Usage | None, model: str) -> float | None:
    """The run's cost: as reported, else priced from its tokens; None when unknown."""
    if usage is None:
        return None
    if usage.cost_usd is not None:
        return usage.cost_usd
    prices = prices_for(ModelConfig(model=usage.model or model)) if (usage.model or model) else None
    if prices is None:
        return None
    return (
        usage.prompt_tokens * prices.input_per_token
        + usage.completion_tokens * prices.output_per_token
    )


class DirectSpend:
    """What a direct run may spend, reserved in the ledger before it starts (the cap
    refuses before the call, agents included) and settled with what the tool reported:
    its cost, else its tokens at the model's price, else the whole reservation."""

    def __init__(self, ctx: Context, tool: AgentToolConfig, direct: bool, name: str) -> None:
        self.ctx, self.tool, self.direct, self.name = ctx, tool, direct, name

    def __enter__(self) -> DirectSpend:
        if not self.direct:
            return self
        self.ledger = Ledger(self.ctx.config.ledger)
        flag = self.ctx.config.kill_flag_path
        if flag.exists():
            self.ledger.close()
            raise LLMRefused("killed", f"kill flag present ({flag}): {self.name} is not started")
        try:
            self.reservation = self.ledger.reserve(
                self.name, PURPOSE, float(self.tool.budget_usd or 0), self.ctx.config.cap_usd
            )
        except CapReached as cap:
            self.ledger.close()
            raise LLMRefused("capped", f"{self.name} is not started: {cap}") from None
        self.settled = False
        return self

    def settle(self, output: str, adapter: Adapter) -> tuple[Usage | None, float]:
        """What the tool reported, and what the ledger charged for the run."""
        usage = read_report(adapter.report, output)
        cost = cost_of(usage, self.tool.model or "")
        charged = float(self.tool.budget_usd or 0) if cost is None else cost
        self.ledger.settle(
            self.reservation, outcome="ok" if usage is not None else "error-unreported",
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            cost_usd=charged,
        )  # fmt: skip
        self.settled = True
        return usage, charged

    def __exit__(self, *exc: object) -> None:
        if not self.direct:
            return
        if not self.settled:  # stopped, timed out: charged the whole reservation
            self.ledger.settle(self.reservation, outcome="error-stopped",
                               cost_usd=float(self.tool.budget_usd or 0))  # fmt: skip
        self.ledger.close()
