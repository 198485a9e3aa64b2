"""MkDocs hook: the reference pages' generated parts, rendered from the code at build time.

Why at build time, not a committed file with a staleness test: the CLI reference and the
configuration tables are then a pure function of the code being documented, so there is
nothing to regenerate, nothing to forget, and no diff noise in commits that only change a
help string. The build itself is part of the suite (`tests/test_docs.py` runs
`mkdocs build --strict`), so a command, option or key that the generator cannot render,
or a configuration key without a written meaning, fails CI like any other test.

Two markers are replaced in a page's Markdown:

- `<!-- cli: MODULE:APP PROGRAM -->`: every command of that Typer app, walked through
  the click command tree of `typer.main.get_command(app)`: usage, help, arguments and
  options (names, type, default, help), exactly as `PROGRAM ... --help` has them.
- `<!-- config: TABLE -->`: the keys of one table of the one schema that the factory,
  the runtime and the gate read agent.toml and SPEC.md with (`agent/schema.py`, plus the
  factory's [hardening]), with their kinds and defaults read from it, and their meanings
  from `MEANINGS` below. A key of the schema without a meaning, or a meaning for a key
  the schema does not have, stops the build. Keys SPEC.md may not state (the factory or
  the gate supplies them) are marked as agent.toml-only.
"""

from __future__ import annotations

import html
import importlib
import re
from collections.abc import Mapping
from typing import Any

import typer
from mkdocs.exceptions import PluginError

CLI_MARKER = re.compile(r"<!-- cli: ([\w.]+):(\w+) ([\w-]+) -->")
CONFIG_MARKER = re.compile(r"<!-- config: ([\w.]+) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    markdown = CLI_MARKER.sub(lambda m: render_cli(m[1], m[2], m[3]), markdown)
    return CONFIG_MARKER.sub(lambda m: render_config(m[1]), markdown)


# -- the CLI ----------------------------------------------------------------------------


def command_tree(module: str, attribute: str, program: str) -> list[tuple[str, Any]]:
    """(`evolve baseline record`, its click command), every command of the app, depth
    first, in the order the app registers them. Shared with tests/test_docs.py."""
    app = getattr(importlib.import_module(module), attribute)
    root = typer.main.get_command(app)
    found: list[tuple[str, Any]] = []

    def walk(path: str, command: Any) -> None:
        found.append((path, command))
        if is_group(command):
            for name, sub in command.commands.items():
                walk(f"{path} {name}", sub)

    walk(program, root)
    return found


def is_group(command: Any) -> bool:
    """Duck-typed: Typer may use click or its own copy of it (`typer._click`)."""
    return isinstance(getattr(command, "commands", None), dict)


def _text(value: str) -> str:
    """Help text as Markdown paragraphs: escaped, so `<UTC timestamp>` stays text."""
    paragraphs = [" ".join(block.split()) for block in value.strip().split("\n\n")]
    return "\n\n".join(html.escape(block, quote=False) for block in paragraphs if block)


def _cell(value: str) -> str:
    return _text(value).replace("|", "\\|").replace("\n\n", "<br>")


def render_cli(module: str, attribute: str, program: str) -> str:
    out: list[str] = []
    for path, command in command_tree(module, attribute, program):
        depth = path.count(" ")
        if depth:
            out += [f"{'#' * min(depth + 1, 4)} `{path}`", ""]
        ctx = command.context_class(command, info_name=path)
        out += ["```text", command.get_usage(ctx), "```", ""]
        if command.help:
            out += [_text(command.help), ""]
        arguments = [p for p in command.params if p.param_type_name == "argument"]
        options = [p for p in command.params if p.param_type_name == "option"]
        if arguments:
            out += ["| argument | help |", "| --- | --- |"]
            for argument in arguments:
                text = getattr(argument, "help", None) or ""
                optional = "" if argument.required else " (optional)"
                out.append(f"| `{argument.human_readable_name}`{optional} | {_cell(text)} |")
            out.append("")
        if options:
            out += ["| option | type | default | help |", "| --- | --- | --- | --- |"]
            for option in options:
                names = " / ".join(f"`{name}`" for name in [*option.opts, *option.secondary_opts])
                kind = "flag" if option.is_flag else f"`{option.make_metavar(ctx)}`"
                describe = getattr(option.type, "_describe_range", None)
                if describe and not option.is_flag:
                    kind += f" `{describe()}`"
                default = option.default
                shown = (
                    ""
                    if default is None or (option.is_flag and default is False) or callable(default)
                    else f"`{default}`"
                )
                out.append(f"| {names} | {kind} | {shown} | {_cell(option.help or '')} |")
            out += ["", "`--help` shows this and exits.", ""]
        if is_group(command) and not depth:
            out += [
                "Commands: "
                + ", ".join(f"[`{name}`](#{program}-{name})" for name in command.commands),
                "",
            ]
    return "\n".join(out)


# -- configuration ----------------------------------------------------------------------


def _tables() -> tuple[Any, ...]:
    """SPEC.md's tables, as the one schema declares them (agent.toml's, plus the
    factory's [hardening])."""
    from evolution.factory.spec import SPEC_TABLES

    return SPEC_TABLES


POLICY_ONLY = " (agent.toml only)"


def _protected_default() -> tuple[str, ...]:
    from evolution.policy import DEFAULT_PROTECTED

    return DEFAULT_PROTECTED


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(item) for item in value) + "]"
    if isinstance(value, Mapping):
        return "{}" if not value else str(dict(value))
    return str(value)


def schema_keys() -> dict[str, dict[str, tuple[str, str]]]:
    """table -> key -> (type, default), from the one schema (agent/schema.py). A key
    SPEC.md may not state (the factory or the gate supplies it) is marked as
    agent.toml-only. Shared with tests/test_docs.py."""
    from agent.tomlschema import REQUIRED

    tables: dict[str, dict[str, tuple[str, str]]] = {}
    for table in _tables():
        keys: dict[str, tuple[str, str]] = {}
        for name, key in table.keys.items():
            if key.default is REQUIRED:
                default = "required"
            elif key.default is None:
                default = "none"
            else:
                default = _toml(key.default)
            if key.choices:
                kind = " or ".join(f'`"{choice}"`' for choice in key.choices)
            else:
                kind = key.kind.what
            keys[name] = (kind, default + (POLICY_ONLY if key.spec == "never" else ""))
        tables[".".join(table.path)] = keys
    return tables


def render_config(table: str) -> str:
    tables = schema_keys()
    if table not in tables:
        raise PluginError(f"docs: no table [{table}] in SPEC.md's schema: {sorted(tables)}")
    missing = [f"{t}.{k}" for t, keys in tables.items() for k in keys if (t, k) not in MEANINGS]
    unknown = [f"{t}.{k}" for t, k in MEANINGS if k not in tables.get(t, {})]
    if missing or unknown:
        raise PluginError(
            "docs/hooks/reference.py: configuration keys without a meaning: "
            f"{missing}; meanings of keys the schema does not have: {unknown}"
        )
    out = ["| key | type | default | meaning |", "| --- | --- | --- | --- |"]
    for key, (kind, default) in tables[table].items():
        if (table, key) == ("evolution", "protected"):
            default = "the list below"
        note = ""
        if default.endswith(POLICY_ONLY):
            default, note = (
                default.removesuffix(POLICY_ONLY),
                " (agent.toml only: SPEC.md may not state it, the factory or the gate supplies it)",
            )
        shown = default if default in ("required", "none", "the list below") else f"`{default}`"
        shown += note
        out.append(f"| `{key}` | {kind} | {shown} | {MEANINGS[table, key]} |")
    if table == "evolution":
        out += [
            "",
            "The default `protected` list: "
            + ", ".join(f"`{path}`" for path in _protected_default())
            + ".",
        ]
    return "\n".join(out)


MEANINGS: dict[tuple[str, str], str] = {
    ("system", "name"): "the deployment's name: the units are `<name>.service` and friends",
    ("system", "description"): "one line, written into the units",
    ("system", "root"): "where the deployment lives on the host; default `/opt/<name>`",
    ("system", "user"): "the unix user it runs as; default `<name>`",
    ("schedule", "every_s"): "the cadence in seconds (or give `cron`); every task's and "
    "model's timeout must fit under it",
    ("schedule", "cron"): "a cron expression instead of `every_s`; the cadence is its "
    "shortest interval",
    ("schedule", "cadence_s"): "seconds between `agent run`'s ticks (the factory writes it "
    "from `every_s` or `cron`)",
    ("ledger", "path"): "the shared SQLite ledger",
    ("tasks", "name"): "unique; names the task in the ledger, `depends_on` and the report",
    ("tasks", "command"): "split like a shell would (`shlex`) but run without one",
    ("tasks", "timeout_s"): "SIGTERM to the task's group, SIGKILL 2 s later; under the cadence",
    ("tasks", "required"): "a failed required task fails the tick; an optional one only "
    "degrades it",
    ("tasks", "depends_on"): "tasks that must be `ok` first (no cycle); a dependent of a task "
    "that is not `ok` is `blocked`",
    ("tasks", "evidence"): '`"exit"`, `"stdout"` or `"file:PATH"`: what proves the task '
    "did its work (exit 0 without it is `silent`, a failure)",
    ("tasks", "env"): "the variables the task may see (nothing else leaks in)",
    ("tasks", "every_s"): "a slower cadence of the task's own: on other ticks it is `not-due` "
    "(no row; its dependents go by its last run)",
    ("budget", "daily_usd"): "the daily spend cap in USD, 0 or more (0 spends nothing: only "
    "zero-cost models answer); `SPEND_CAP_USD` overrides; without it in agent.toml, no cap",
    ("kill", "flag"): "the kill flag, relative to the repository; `AGENT_KILL_FLAG` overrides",
    ("watchdog", "max_silence_s"): "the dead man's switch: an alert when no tick succeeded "
    "for this long (the runtime's default without it: 3 cadences); beyond the cadence",
    ("watchdog", "max_failed_ticks"): "an alert when the newest ticks are this many "
    "failures in a row",
    ("watchdog", "ping_url"): "a healthchecks.io-style http(s) URL to ping (`/start`, "
    "success, `/fail`, `/log`)",
    ("hardening", "memory_max"): "the units' `MemoryMax` (systemd's syntax)",
    ("hardening", "cpu_quota"): "the units' `CPUQuota`",
    ("hardening", "tasks_max"): "the units' `TasksMax`",
    ("hardening", "relax"): '`{ Setting = "why" }`: a sandboxing setting of the units '
    "turned off on purpose, with a reason of at least 10 characters",
    ("llm.models", "model"): "a litellm model name, e.g. `openai/gpt-4o-mini`, "
    "`ollama_chat/llama3`",
    ("llm.models", "timeout_s"): "per attempt (60 when agent.toml omits it)",
    ("llm.models", "max_tokens"): "per attempt (4096 when agent.toml omits it)",
    ("llm.models", "api_base"): "the endpoint",
    ("llm.models", "api_key_env"): "the variable that holds the key",
    ("llm.models", "input_usd_per_mtok"): "price; without the prices an unmapped cloud "
    "model is refused (default: litellm's bundled map)",
    ("llm.models", "output_usd_per_mtok"): "price, as above",
    ("agents.limits", "timeout_s"): "wall clock of one coding-agent run; then its whole "
    "process group is killed (status `failed`)",
    ("agents.limits", "max_files"): "a change touching more files is refused, not committed",
    ("agents.limits", "max_lines"): "a change of more lines (added plus removed) is refused",
    ("agents.limits", "max_bytes"): "a change adding more bytes is refused (a 3 MB line is "
    "one line)",
    ("agents.tools", "name"): "the adapter: `aider`, `mini`, `codex`, `claude`, `gemini` or "
    "`command`",
    ("agents.tools", "program"): "its executable, a name on PATH or an absolute path "
    "(default: the adapter's)",
    ("agents.tools", "args"): "arguments added after the adapter's own",
    ("agents.tools", "template"): "`agent:command` only: the whole command line, with "
    "placeholders ([Coding agents](../how-to/agents.md))",
    ("agents.tools", "model"): "the model name the agent is told (default: the chain's "
    "first, without its provider); the proxy serves the chain whatever it asks for",
    ("agents.tools", "timeout_s"): "instead of `[agents.limits] timeout_s`",
    ("agents.tools", "direct"): "run without the model proxy, on purpose (a tool that "
    "cannot take a base URL: Gemini CLI); its key is passed to it",
    ("agents.tools", "budget_usd"): "a direct run's budget: reserved against the daily cap "
    "before it starts, settled from the tool's report",
    ("agents.tools", "api_key_env"): "a direct run's key variable (default: the adapter's, "
    "e.g. `GEMINI_API_KEY`); redacted like the models' keys",
    ("evolution", "test_command"): "the suite; a leading `python` means the interpreter "
    "running `evolve` (it has the plugins the gate needs: pytest-json-report and "
    "pytest-timeout)",
    ("evolution", "evolvable"): "what automated proposals may change",
    ("evolution", "protected"): "what they may never change; `dir/` is a folder from the "
    "root, a bare name (`conftest.py`, `test_*.py`) matches in any folder, other globs "
    "match the whole path",
    ("evolution", "reruns"): "re-runs of a newly failing test",
    ("evolution", "flaky"): "what a flaky test does: quarantined with its evidence, or counted",
    ("evolution", "require_improvement"): "demand a newly passing test",
    ("evolution", "max_rejections"): "failed attempts in a row before `evolve cycle` stops",
    ("evolution", "objectives"): "goals for `evolve cycle` when nothing is failing (a model "
    "is needed)",
    ("evolution", "sandbox"): '`"required"`: no suite ever runs without the OS sandbox '
    "(see [the threat model](../explanation/threat-model.md))",
    ("evolution", "network"): "what a sandboxed suite may reach",
    ("evolution", "writable"): "tree paths a sandboxed suite may write (the tree is "
    "read-only otherwise)",
    ("evolution", "shared"): "absolute folders outside the tree a sandboxed suite may write, "
    "which outlive the run (each one weakens isolation: the next run can read what this "
    "one left)",
    ("evolution", "read_paths"): "absolute folders (or `~/…`, the gate's home) a sandboxed "
    "suite may read that it does not by default: a folder of a home, which is hidden "
    "otherwise; the well-known credential paths in them stay unreadable",
    ("evolution", "quarantine_days"): "how long a quarantine entry (a test found flaky) "
    "excuses failures; a whole number of days from 1",
    ("evolution", "allow"): "static-guard rules lifted on purpose",
    ("evolution", "test_timeout_s"): "seconds one test may take (pytest-timeout's signal "
    "method, so the report is still written)",
    ("evolution", "run_timeout_s"): "seconds the whole run may take, enforced on the suite's "
    "process group",
    ("evolution", "workers"): 'processes a full run is split over: a count, or `"auto"` '
    "(the cores); `1` for a suite whose files cannot run side by side",
    ("evolution", "staged"): "run the tests the coverage map ties to the change first; they "
    "may only reject",
    ("evolution", "behaviour"): "an automated proposal's calls replayed outside the harness: "
    '`"strict"` rejects a behaviour change no newly passing test asked for, `"report"` only '
    'reports it, `"off"` skips the replay (code that behaves differently under the tests '
    'is rejected under `"strict"` and `"report"` alike)',
    ("evolution", "revert_people"): "the safety net reverts a person's commit it found to "
    "cause a regression (by default it raises an incident naming the commit and the "
    "command that reverts it); automated proposals are reverted either way",
    ("evolution", "baseline"): 'where main\'s baseline lives: `"file"`, `baseline/baseline.json` '
    'on main; `"ref"`, the notes ref `refs/notes/ratchet` keyed by commit, shared by runners '
    "and advanced by compare-and-swap ([Share the baseline between runners]"
    "(../how-to/shared-baseline.md)); move between them with `evolve baseline migrate`",
}
