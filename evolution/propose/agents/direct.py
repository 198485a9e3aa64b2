"""A direct run: a coding agent that cannot be pointed at the model proxy, run on purpose.

The cap must still refuse before the spend, agents included. A direct run has no call
to refuse one by one, so what it may spend (its `budget_usd`, which its own budget
switch is given where it has one) is reserved in the shared ledger before it starts,
and settled from what the tool reported afterwards: its cost in USD, else its tokens at
the model's known price, else the whole reservation (unknown spend is never zero).
"""

from __future__ import annotations

from agent.config import AgentToolConfig, ModelConfig
from agent.errors import EnvironmentFailure
from agent.ledger import CapReached, Ledger, Reservation
from agent.llm import LLMRefused, prices_for
from evolution.propose.agents import reports
from evolution.propose.agents.adapters import Adapter
from evolution.propose.agents.reports import Usage
from evolution.propose.context import Context

PURPOSE = "agent"  # the ledger's purpose for every agent call, proxied or direct


def read_report(parser: str | None, output: str) -> Usage | None:
    """What the tool said it spent, by its adapter's parser; None without one."""
    return getattr(reports, parser)(output) if parser else None


def cost_of(usage: Usage | None, model: str) -> float | None:
    """The run's cost: as reported, else priced from its tokens; None when unknown."""
    if usage is None:
        return None
    if usage.cost_usd is not None:
        return usage.cost_usd
    if usage.prompt_tokens + usage.completion_tokens == 0:
        return None  # a report without its usage (a failed run's): unknown, never zero
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
    its cost, else its tokens at the model's price, else the whole reservation. A run
    that could not start is charged nothing; one stopped or timed out, everything."""

    def __init__(self, ctx: Context, tool: AgentToolConfig, name: str) -> None:
        self.ctx, self.tool, self.name = ctx, tool, name
        self.budget = float(tool.budget_usd or 0)
        self.ledger = Ledger(ctx.config.ledger)
        self.reservation: Reservation | None = None
        self.usage: Usage | None = None
        self.charged = 0.0

    def __enter__(self) -> DirectSpend:
        flag = self.ctx.config.kill_flag_path
        try:
            if flag.exists():
                raise LLMRefused(
                    "killed", f"kill flag present ({flag}): {self.name} is not started"
                )
            self.reservation = self.ledger.reserve(
                self.name, PURPOSE, self.budget, self.ctx.config.cap_usd
            )
        except CapReached as cap:
            self.ledger.close()
            raise LLMRefused("capped", f"{self.name} is not started: {cap}") from None
        except BaseException:
            self.ledger.close()
            raise
        return self

    def settle(self, output: str, adapter: Adapter) -> None:
        """Charge what the tool reported."""
        self.usage = read_report(adapter.report, output)
        cost = cost_of(self.usage, self.tool.model or "")
        self._settle("ok" if cost is not None else "error-unreported",
                     self.budget if cost is None else cost)  # fmt: skip

    def _settle(self, outcome: str, cost: float) -> None:
        assert self.reservation is not None
        usage = self.usage
        self.ledger.settle(
            self.reservation, outcome=outcome, cost_usd=cost,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
        )  # fmt: skip
        self.charged, self.reservation = cost, None

    def __exit__(self, kind: type[BaseException] | None, *exc: object) -> None:
        try:
            if self.reservation is not None:
                started = kind is None or not issubclass(kind, EnvironmentFailure)
                self._settle("error-stopped" if started else "error-not-started",
                             self.budget if started else 0.0)  # fmt: skip
        finally:
            self.ledger.close()
