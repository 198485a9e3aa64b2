"""What Ratchet knows of each coding agent, as data: one table, one renderer.

An adapter says how to run a tool headless: its command line with placeholders, the
variables that point it at the model proxy, which of its own switches to set (no
approval prompts, no git of its own, no update checks or telemetry: the sandbox is
Ratchet's and the commit is Ratchet's), the files it leaves in the tree that are not
part of a change, how it reports what it spent when it cannot use the proxy, and how
to ask for its help text (a test checks every `--flag` of the table against the help
of each tool that is installed, and against the help texts recorded from the others).

Placeholders: `{goal_file}` (the goal, written to a file the agent can read), `{goal}`
(its text, for tools that take the prompt as an argument), `{workdir}` (the scratch
tree), `{targets}` (the target files: one argument each when it stands alone), `{model}`
(the model name the agent is told), `{base_url}` (the proxy's address, `/v1` included),
`{origin}` (the same without `/v1`), `{key}` (the proxy's token for this run),
`{home}` (the agent's private home, where its state goes) and `{budget}` (a direct run's
budget in USD).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from typing import Literal

from agent.config import AgentToolConfig
from agent.errors import UsageError

Api = Literal["openai", "responses", "anthropic", "none"]

# Variables no agent needs to ask the outside world about (an update, telemetry, a
# price table): set for every adapter, whatever the tool.
QUIET_ENV = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "DISABLE_TELEMETRY": "1",
    "DO_NOT_TRACK": "1",
    "NO_UPDATE_NOTIFIER": "1",
    "NO_COLOR": "1",
}
# The variables of the two dialects' SDKs: `agent:command` gets all of them, so that a
# script built on either SDK (or on litellm) finds the proxy without being told.
SDK_ENV = {
    "OPENAI_BASE_URL": "{base_url}",
    "OPENAI_API_BASE": "{base_url}",
    "OPENAI_API_KEY": "{key}",
    "ANTHROPIC_BASE_URL": "{origin}",
    "ANTHROPIC_API_KEY": "{key}",
}

# Gemini CLI reads its settings from its home: the API key as its way in (a base URL
# alone makes it pick an auth type it then rejects), and nothing sent home.
GEMINI_SETTINGS = {
    "security": {"auth": {"selectedType": "gemini-api-key"}},
    "privacy": {"usageStatisticsEnabled": False},
    "telemetry": {"enabled": False},
    "general": {"enableAutoUpdate": False, "enableAutoUpdateNotification": False},
}


@dataclass(frozen=True)
class Adapter:
    name: str
    program: str  # the executable's name on PATH
    args: tuple[str, ...]  # after the program, with placeholders
    api: Api  # the proxy dialect it speaks; "none": it can only run direct
    env: dict[str, str] = field(default_factory=dict)  # with placeholders
    help_args: tuple[str, ...] = ("--help",)
    # Files it writes in the tree for itself (fnmatch on the name): never part of a change.
    droppings: tuple[str, ...] = ()
    # Its own budget switch, for a direct run (with `{budget}`).
    budget_args: tuple[str, ...] = ()
    # The parser of its machine-readable output (evolution.propose.agents.reports), for
    # the cost of a direct run and the tool's own verdict.
    report: str | None = None
    install: str = ""
    # Variables a direct run passes from Ratchet's environment (its own API key).
    direct_key_env: str | None = None
    # Flags that work but its help does not list (checked by a recorded real run instead).
    undocumented: tuple[str, ...] = ()
    # Files written into its private home before it starts (its settings), by path.
    home_files: dict[str, str] = field(default_factory=dict)

    @property
    def flags(self) -> list[str]:
        """The long options the table passes: each must be in the tool's help."""
        return sorted({a.split("=", 1)[0] for a in (*self.args, *self.budget_args)
                       if a.startswith("--")})  # fmt: skip


ADAPTERS: dict[str, Adapter] = {
    adapter.name: adapter
    for adapter in (
        Adapter(
            name="aider",
            program="aider",
            args=(
                "--model", "openai/{model}", "--openai-api-base", "{base_url}",
                "--edit-format", "diff", "--message-file", "{goal_file}", "--yes-always",
                # the scratch tree's own repository makes it the root its paths are
                # relative to (without git, the targets' folder would be); it commits
                # nothing and leaves .gitignore alone
                "--no-auto-commits", "--no-dirty-commits", "--no-gitignore", "--no-auto-lint",
                "--no-auto-test", "--no-check-update", "--analytics-disable",
                "--no-show-release-notes", "--no-show-model-warnings", "--no-pretty",
                "--no-stream", "--no-fancy-input", "--no-suggest-shell-commands",
                "--no-detect-urls", "--map-tokens", "0",
                # its history in its private home, not in the tree; no .env from the tree
                "--chat-history-file", "{home}/aider.chat.history.md",
                "--input-history-file", "{home}/aider.input.history",
                "--env-file", "{home}/no.env",
                "{targets}",
            ),
            api="openai",
            env={"OPENAI_API_KEY": "{key}", "AIDER_CHECK_UPDATE": "false"},
            droppings=(".aider*",),
            install="in a virtual environment of its own: `python3 -m venv ~/.aider && "
            "~/.aider/bin/pip install aider-chat==0.86.2` (Ratchet's tests: "
            "`.ci/agents/install`)",
        ),
        Adapter(
            name="mini",
            program="mini",
            args=(
                "--model", "openai/{model}", "--model-class", "litellm_textbased",
                "--config", "mini_textbased.yaml",
                "--config", "model.model_kwargs.api_base={base_url}",
                "--yolo", "--exit-immediately", "--cost-limit", "0",
                "--output", "{home}/mini.traj.json", "--task", "{goal}",
            ),
            api="openai",
            env={
                "OPENAI_API_KEY": "{key}",
                "MSWEA_CONFIGURED": "true",  # else a first-run wizard asks on stdin
                "MSWEA_SILENT_STARTUP": "1",
                "MSWEA_GLOBAL_CONFIG_DIR": "{home}/mini-config",
                "MSWEA_COST_TRACKING": "ignore_errors",  # the proxy prices the calls
                "MSWEA_MODEL_RETRY_STOP_AFTER_ATTEMPT": "1",  # a refusal ends the run
            },
            install="in a virtual environment of its own: `python3 -m venv ~/.mini && "
            "~/.mini/bin/pip install mini-swe-agent==2.4.6` (Ratchet's tests: "
            "`.ci/agents/install`)",
        ),
        Adapter(
            name="codex",
            program="codex",
            args=(
                "exec", "--json", "--skip-git-repo-check", "--cd", "{workdir}",
                "--model", "{model}", "--dangerously-bypass-approvals-and-sandbox",
                "-c", "model_provider=ratchet",
                "-c", "model_providers.ratchet.name=ratchet",
                "-c", 'model_providers.ratchet.base_url="{base_url}"',
                "-c", "model_providers.ratchet.env_key=RATCHET_PROXY_KEY",
                "-c", "model_providers.ratchet.wire_api=responses",
                "-c", "check_for_update_on_startup=false",
                "-c", "analytics.enabled=false",
                "-c", "feedback.enabled=false",
                "-c", 'otel.exporter="none"',
                "{goal}",
            ),
            api="responses",  # 0.171.0 refuses wire_api=chat at start-up
            env={"RATCHET_PROXY_KEY": "{key}", "CODEX_HOME": "{home}/.codex"},
            home_files={".codex/config.toml": ""},  # CODEX_HOME must exist
            help_args=("exec", "--help"),
            report="codex_jsonl",
            install="`npm install -g @openai/codex@0.171.0`",
            direct_key_env="OPENAI_API_KEY",
        ),
        Adapter(
            name="claude",
            program="claude",
            args=(
                "-p", "{goal}", "--output-format", "json", "--model", "{model}",
                "--permission-mode", "bypassPermissions", "--max-turns", "40",
                "--no-session-persistence",
            ),
            api="anthropic",
            env={
                "ANTHROPIC_BASE_URL": "{origin}", "ANTHROPIC_API_KEY": "{key}",
                # bypassPermissions refuses to run as root outside a sandbox it is told of
                "IS_SANDBOX": "1",
                "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1", "DISABLE_AUTOUPDATER": "1",
                "DISABLE_ERROR_REPORTING": "1",
            },
            budget_args=("--max-budget-usd", "{budget}"),
            undocumented=("--max-turns",),  # agent_samples/claude-max-turns.json
            report="claude_json",
            install="`npm install -g @anthropic-ai/claude-code@2.1.197`",
            direct_key_env="ANTHROPIC_API_KEY",
        ),
        Adapter(
            name="gemini",
            program="gemini",
            args=("--prompt", "{goal}", "--output-format", "json", "--model", "{model}", "--yolo"),
            api="none",  # it speaks Google's own API, which the proxy does not
            env={"GEMINI_CLI_TRUST_WORKSPACE": "true", "GEMINI_TELEMETRY_ENABLED": "false"},
            home_files={".gemini/settings.json": json.dumps(GEMINI_SETTINGS)},
            report="gemini_json",
            install="`npm install -g @google/gemini-cli@0.61.0`",
            direct_key_env="GEMINI_API_KEY",
        ),
        Adapter(
            name="command",
            program="",  # the template's first word
            args=(),
            api="openai",
            env=dict(SDK_ENV),
            help_args=(),
            install="any command: give it as [[agents.tools]] template",
        ),
    )
}
NAMES = tuple(f"agent:{name}" for name in ADAPTERS)


def adapter_for(proposer: str) -> Adapter:
    name = proposer.removeprefix("agent:")
    if name not in ADAPTERS:
        known = ", ".join(NAMES)
        raise UsageError(f"unknown coding agent {proposer!r}: choose one of {known}")
    return ADAPTERS[name]


_PLACEHOLDER = re.compile(r"\{([a-z_]+)\}")


def render(template: str, values: dict[str, str]) -> str:
    """`template` with each known placeholder replaced, in one pass (a value that holds
    a placeholder's spelling is left as it is); unknown braces stay."""
    return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), template)


def render_args(args: tuple[str, ...] | list[str], values: dict[str, str],
                targets: list[str]) -> list[str]:  # fmt: skip
    """The command line: `{targets}` alone is one argument per target; elsewhere the
    targets joined by spaces. Placeholders are replaced in one pass over the template,
    so a goal that contains `{model}` stays as written."""
    rendered: list[str] = []
    for arg in args:
        if arg == "{targets}":
            rendered += targets
        else:
            rendered.append(render(arg, {**values, "targets": " ".join(targets)}))
    return rendered


def command_template(adapter: Adapter, tool: AgentToolConfig) -> list[str]:
    """The command line, placeholders still in: the adapter's with the deployment's
    extra arguments, or a command agent's own template."""
    if adapter.name == "command":
        if not tool.template:
            raise UsageError(
                "agent:command needs its command line: add [[agents.tools]] with "
                'name = "command" and template = "my-agent --task {goal_file}" to '
                "deploy/agent.toml (SPEC.md), placeholders as docs/how-to/agents.md lists"
            )
        return template_args(tool.template, "[[agents.tools]] command template")
    return [tool.program or adapter.program, *adapter.args, *tool.args]


def arguments(
    adapter: Adapter, template: list[str], values: dict[str, str], targets: list[str],
    *, direct: bool,
) -> list[str]:  # fmt: skip
    """The arguments after the program, rendered; a direct run's budget switch added."""
    rendered = render_args(template, values, targets)
    if direct and adapter.budget_args:
        rendered += render_args(adapter.budget_args, values, [])
    return rendered


def template_args(template: str, origin: str) -> list[str]:
    """An `agent:command` template as arguments (split like a shell, never run by one)."""
    try:
        args = shlex.split(template)
    except ValueError as bad:
        raise UsageError(f"{origin}: the agent command template does not split: {bad}") from None
    if not args:
        raise UsageError(f"{origin}: the agent command template is empty")
    return args
