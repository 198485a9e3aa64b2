"""The `evolve` command line, one module per part of the engine: the gate's commands
(`evolution.cli.gate`), setting a repository up (`evolution.cli.setup`), CI's
(`evolution.cli.ci`), the loop's (`evolution.cli.loop`) and the audit trail's
(`evolution.cli.trail`), sharing the options and plumbing of `evolution.cli.common`.

Importing this package registers every command; nothing here imports the engine or
litellm (start-up stays cheap: `evolve --help`).
"""

from __future__ import annotations

from agent.console import run_app
from evolution.cli import ci, gate, loop, setup, trail  # noqa: F401  (each registers its commands)
from evolution.cli.common import app


def main() -> None:
    run_app(app, "evolve")
