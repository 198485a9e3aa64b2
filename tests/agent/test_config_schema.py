"""The one schema of deploy/agent.toml (agent/schema.py), and its three readers.

The factory (SPEC.md), the runtime (`agent`) and the gate (the policy) used to declare
the same keys three times, with defaults written twice and the task graph's cycle check
written twice. These tests hold the schema to its rules, and the three readers to the
schema: the same defaults, the same verdict and message for the same bad value, one
cycle check.
"""

from __future__ import annotations

import dataclasses
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from agent import schema
from agent.config import ConfigError, ModelConfig, RuntimeConfig, TaskConfig, parse_runtime
from agent.errors import UsageError
from agent.schema import EVOLUTION, MODELS, TASKS, task_order
from agent.tomlschema import Problem, read_tables
from evolution.factory.render import render
from evolution.factory.spec import SpecError, parse_spec_text
from evolution.policy import DEFAULT_PROTECTED, PYPROJECT, RATCHET_TOML, Policy, parse_policy

REPO = Path(__file__).resolve().parents[2]

# The least a SPEC.md must say: every key the factory requires, nothing else.
MINIMAL_SPEC = """# A system

```toml
[system]
name = "tiny"
description = "the smallest spec"

[schedule]
every_s = 600

[[tasks]]
name = "one"
command = "true"
timeout_s = 30
evidence = "exit"

[budget]
daily_usd = 1

[watchdog]
max_silence_s = 1800

[[llm.models]]
model = "ollama/x"
timeout_s = 60
max_tokens = 100
```
"""


def spec_with(toml: str) -> str:
    """MINIMAL_SPEC with one more ```toml block."""
    return MINIMAL_SPEC + f"\n```toml\n{toml}\n```\n"


def read_file(text: str) -> list[Problem]:
    """The problems the runtime's tables and the gate's table have, agent.toml mode."""
    tables = (*schema.RUNTIME_TABLES, EVOLUTION)
    return read_tables(tomllib.loads(text), tables)[1]


def messages(problems: list[Problem]) -> list[str]:
    return [f"{'.'.join(map(str, p.loc))}: {p.message}" for p in problems]


# --- valid files ----------------------------------------------------------------------


def test_this_repository_s_spec_and_its_rendered_file_are_valid() -> None:
    parse_spec_text((REPO / "SPEC.md").read_text(encoding="utf-8"))
    text = (REPO / "deploy" / "agent.toml").read_text(encoding="utf-8")
    values, problems = read_tables(tomllib.loads(text), schema.AGENT_TOML)
    assert problems == []
    assert values["tasks"] and values["evolution"]["flaky"] in ("quarantine", "strict")


def test_an_empty_file_is_all_defaults() -> None:
    values, problems = read_tables({}, schema.AGENT_TOML)
    assert problems == []
    assert values["tasks"] == [] and values["llm"]["models"] == []
    assert values["evolution"] == EVOLUTION.defaults()
    assert values["kill"] == {"flag": "runs/KILL"}


def test_values_are_converted_once_for_every_reader() -> None:
    values, problems = read_tables(
        tomllib.loads('[budget]\ndaily_usd = 3\n[evolution]\nevolvable = ["a/", "b/"]\n'),
        (schema.BUDGET, EVOLUTION),
    )
    assert problems == []
    assert values["budget"]["daily_usd"] == 3.0 and isinstance(values["budget"]["daily_usd"], float)
    assert values["evolution"]["evolvable"] == ("a/", "b/")


# --- each kind of bad value -----------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # the wrong type; a bool is never a number
        ("[[tasks]]\nname='a'\ncommand='x'\nevidence='exit'\ntimeout_s=true",
         "tasks.0.timeout_s: has the wrong type: expected a number of seconds"),
        ("[evolution]\nreruns = 2.5", "evolution.reruns: has the wrong type"),
        ('[evolution]\nprotected = ["a/", 1]', "evolution.protected.1: must hold only strings"),
        # a cap says what it takes whatever was wrong with it
        ('[budget]\ndaily_usd = "5"', "budget.daily_usd: must be a number of dollars, 0 or more"),
        # out of range: NaN and infinity are no numbers of seconds or dollars
        ("[watchdog]\nmax_silence_s = 0", "watchdog.max_silence_s: must be a positive number"),
        ("[watchdog]\nmax_silence_s = nan", "watchdog.max_silence_s: must be a positive number"),
        ("[budget]\ndaily_usd = inf", "budget.daily_usd: must be a number of dollars, 0 or more"),
        ("[budget]\ndaily_usd = -0.01", "budget.daily_usd: must be a number of dollars"),
        ("[evolution]\nquarantine_days = 0",
         "evolution.quarantine_days: must be a whole number from 1"),
        ("[evolution]\nreruns = -1", "evolution.reruns: must be a whole number from 0"),
        # not one of the choices
        ('[evolution]\nflaky = "often"', 'evolution.flaky: must be "quarantine" or "strict"'),
        ("[evolution]\nworkers = 0", 'evolution.workers: must be "auto" or a number of processes'),
        # not matching its pattern
        ('[watchdog]\nping_url = "hc-ping.com/x"', "watchdog.ping_url: must be an http:// or https://"),
        ("[[tasks]]\nname='a'\ncommand='x'\nevidence='exit'\ntimeout_s=1\nenv=['A-B']",
         "tasks.0.env.0: holds an invalid entry: 'A-B' is not a variable name"),
        # what a declaration cannot say
        ("[[tasks]]\nname='a'\ncommand='\"x'\nevidence='exit'\ntimeout_s=1",
         "tasks.0.command: cannot be split"),
        ("[[tasks]]\nname='a'\ncommand=' '\nevidence='exit'\ntimeout_s=1",
         "tasks.0.command: is empty"),
        ("[[tasks]]\nname='a'\ncommand='x'\nevidence='file:'\ntimeout_s=1",
         'tasks.0.evidence: must be "exit", "stdout" or "file:PATH"'),
        ('[evolution]\nread_paths = ["/"]', "evolution.read_paths: takes absolute folders"),
        ('[evolution]\nwritable = ["../up"]',
         "evolution.writable: takes paths inside the repository"),
        ('[evolution]\nshared = ["cache"]', "evolution.shared: takes absolute folders"),
        # missing, or of the wrong shape
        ("[[llm.models]]\ntimeout_s = 1", "llm.models.0: 'model' is required"),
        ("[[llm.models]]\nmodel = 'x'\ntemperature = 1", "llm.models.0.temperature: unknown key"),
        ("budget = 1", "budget: must be a table"),
        ("llm = 1", "llm: must be a table"),
        ("tasks = 1", "tasks: must be an array of tables"),
        ("tasks = [1]", "tasks.0: must be a table"),
    ],
)  # fmt: skip
def test_each_kind_of_bad_value_is_named_by_its_key(text: str, expected: str) -> None:
    found = messages(read_file(text))
    assert len(found) == 1, found
    assert found[0].startswith(expected), found


def test_agent_toml_tables_are_open_where_other_readers_share_them() -> None:
    """[evolution] holds the cycle's keys beside the gate's; [budget] may gain a key
    before the runtime reads it: only the runtime's array entries are closed."""
    assert read_file('[evolution]\nsomething_new = 1\n[budget]\nnote = "x"\n[extra]\na = 1') == []


def test_spec_mode_is_stricter_where_the_factory_needs_it() -> None:
    def spec_problems(text: str) -> list[str]:
        return messages(read_tables(tomllib.loads(text), schema.AGENT_TOML, spec=True)[1])

    minimal = MINIMAL_SPEC.split("```toml\n")[1].split("```")[0]
    assert spec_problems(minimal) == []
    # whole seconds: the units and cron lines take no fractions
    assert "tasks.0.timeout_s: has the wrong type: expected a whole number of seconds" in (
        spec_problems(minimal.replace("timeout_s = 30", "timeout_s = 30.5"))
    )
    assert read_file("[[tasks]]\nname='a'\ncommand='x'\nevidence='exit'\ntimeout_s=30.5") == []
    # names become unit and file names
    renamed = spec_problems(minimal.replace('name = "one"', 'name = "One_Task"'))
    assert renamed == ["tasks.0.name: must be lowercase letters, digits and '-', starting "
                       "with a letter, 41 at most"]  # fmt: skip
    # keys a person must state, which a hand-written agent.toml may leave to a default
    cut = spec_problems(minimal.replace("daily_usd = 1\n", "").replace("max_tokens = 100\n", ""))
    assert cut == ["budget: 'daily_usd' is required", "llm.models.0: 'max_tokens' is required"]
    # tables and keys the factory writes itself
    assert spec_problems(minimal + "\n[ledger]\npath = 'x'\n") == ["ledger: unknown key"]
    assert spec_problems(minimal.replace("every_s = 600", "every_s = 600\ncadence_s = 600")) == [
        "schedule.cadence_s: unknown key"
    ]
    assert spec_problems(minimal + "\n[surprise]\n") == ["surprise: unknown key"]
    assert spec_problems(minimal + "\n[llm]\ncolour = 1\n") == ["llm.colour: unknown key"]
    assert spec_problems(minimal.split("[[tasks]]")[0]) == [
        "tasks: at least one entry is required",
        "budget: required table is missing",
        "watchdog: required table is missing",
    ]


# --- one set of defaults --------------------------------------------------------------


def test_the_gate_s_defaults_are_the_schema_s() -> None:
    defaults = EVOLUTION.defaults()
    policy = dataclasses.asdict(Policy())
    for key, value in policy.items():
        if key == "source":
            continue
        expected = DEFAULT_PROTECTED if key == "protected" else defaults[key]
        assert value == expected, key
    assert set(defaults) - set(policy) == {"objectives"}  # the cycle's, not the gate's


def test_the_runtime_s_defaults_are_the_schema_s() -> None:
    config = RuntimeConfig(root=Path("/r"))
    assert config.kill_flag == Path(schema.KILL.defaults()["flag"])
    assert config.ledger_path == Path(schema.LEDGER.defaults()["path"])
    assert config.max_failed_ticks == schema.WATCHDOG.defaults()["max_failed_ticks"]
    assert config.cadence_s == schema.DEFAULT_CADENCE_S
    model = ModelConfig(model="x")
    assert (model.timeout_s, model.max_tokens) == (
        MODELS.defaults()["timeout_s"], MODELS.defaults()["max_tokens"]
    )  # fmt: skip
    assert TaskConfig("a", ("x",), 1.0, "exit").required is TASKS.defaults()["required"]


def test_factory_runtime_and_gate_agree_on_every_default() -> None:
    """A spec that states only what it must: what the factory fills in, renders, and the
    runtime and the gate read back, is the schema's one set of defaults."""
    spec = parse_spec_text(MINIMAL_SPEC)
    agent_toml = render(spec, MINIMAL_SPEC).files["agent.toml"].decode()

    gate = parse_policy(agent_toml, "deploy/agent.toml")
    assert gate == Policy() and gate.digest() == Policy().digest()
    runtime = parse_runtime(agent_toml, "deploy/agent.toml", Path("/r"))
    default = RuntimeConfig(root=Path("/r"))
    assert (runtime.kill_flag, runtime.ledger_path, runtime.max_failed_ticks) == (
        default.kill_flag, default.ledger_path, default.max_failed_ticks
    )  # fmt: skip
    [task] = runtime.tasks
    assert (task.required, task.depends_on, task.env, task.every_s) == (True, (), (), None)
    for key, value in EVOLUTION.defaults().items():
        if EVOLUTION.keys[key].spec != "never":
            assert getattr(spec.evolution, key) == value, key
    assert spec.kill.flag == default.kill_flag.as_posix()
    assert spec.watchdog.max_failed_ticks == default.max_failed_ticks


def test_a_spec_that_shares_the_baseline_renders_it_for_the_gate() -> None:
    """`baseline` is rendered only when it is not the default, so the reference build's
    bytes do not change; when a SPEC says "ref", the gate reads "ref"."""
    text = spec_with('[evolution]\nbaseline = "ref"')
    agent_toml = render(parse_spec_text(text), text).files["agent.toml"].decode()
    assert parse_policy(agent_toml, "deploy/agent.toml").baseline == "ref"
    plain = render(parse_spec_text(MINIMAL_SPEC), MINIMAL_SPEC).files["agent.toml"].decode()
    assert "baseline" not in plain


# --- one validation: the same bad value, the same verdict everywhere --------------------


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('[evolution]\nflaky = "often"', 'must be "quarantine" or "strict"'),
        ("[evolution]\nquarantine_days = 0", "must be a whole number from 1"),
        ('[evolution]\nread_paths = ["/"]', "takes absolute folders (or ~/...)"),
        ("[evolution]\nworkers = 0", 'must be "auto" or a number of processes from 1'),
    ],
)
def test_the_factory_and_the_gate_refuse_a_bad_policy_alike(toml: str, message: str) -> None:
    text = spec_with(toml)
    with pytest.raises(SpecError) as factory:
        parse_spec_text(text)
    line = text.splitlines().index(toml.splitlines()[-1]) + 1
    key = toml.splitlines()[-1].split(" = ")[0]
    [problem] = factory.value.problems
    assert problem.startswith(f"SPEC.md:{line}: evolution.{key}: {message}"), problem
    with pytest.raises(UsageError) as gate:
        parse_policy(toml, "deploy/agent.toml@abc")
    assert gate.value.message.startswith(f"deploy/agent.toml@abc:2: evolution.{key} {message}")
    # The same key in the places a Python project keeps it: the same rule, its own path.
    pyproject = '[project]\nname = "x"\n\n' + toml.replace("[evolution]", "[tool.ratchet]")
    with pytest.raises(UsageError) as gate:
        parse_policy(pyproject, "pyproject.toml@abc", PYPROJECT)
    assert gate.value.message.startswith(f"pyproject.toml@abc:5: tool.ratchet.{key} {message}")
    with pytest.raises(UsageError) as gate:
        parse_policy(toml.split("\n", 1)[1], "ratchet.toml@abc", RATCHET_TOML)
    assert gate.value.message.startswith(f"ratchet.toml@abc:1: {key} {message}")


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ("[budget]\ndaily_usd = -1", "budget.daily_usd: must be a number of dollars, 0 or more"),
        ('[watchdog]\nmax_silence_s = 1800\nping_url = "x"',
         "watchdog.ping_url: must be an http:// or https:// URL"),
    ],
)  # fmt: skip
def test_the_factory_and_the_runtime_refuse_a_bad_value_alike(toml: str, message: str) -> None:
    table = toml.split("\n", 1)[0]
    stated = next(t for t in ("[budget]\ndaily_usd = 1\n", "[watchdog]\nmax_silence_s = 1800\n")
                  if t.startswith(table))  # fmt: skip
    text = MINIMAL_SPEC.replace(stated, "") + f"\n```toml\n{toml}\n```\n"
    with pytest.raises(SpecError) as factory:
        parse_spec_text(text)
    assert [p.split(": ", 1)[1] for p in factory.value.problems] == [message]
    with pytest.raises(ConfigError) as runtime:
        parse_runtime(toml, "deploy/agent.toml", Path("/r"))
    line = toml.count("\n") + 1  # the bad key is the last line
    assert str(runtime.value) == f"deploy/agent.toml:{line}: {message}"


def test_command_line_overrides_are_held_to_the_same_rules() -> None:
    assert Policy().with_overrides(workers="4").workers == 4
    with pytest.raises(UsageError, match='--flaky must be "quarantine" or "strict"'):
        Policy().with_overrides(flaky="often")
    with pytest.raises(UsageError, match="--reruns must be a whole number from 0"):
        Policy().with_overrides(reruns=-1)


# --- one dependency-order check ---------------------------------------------------------


def tasks(**graph: list[str]) -> list[dict[str, Any]]:
    return [{"name": name, "depends_on": deps} for name, deps in graph.items()]


def test_the_order_follows_dependencies_and_else_the_declared_order() -> None:
    assert task_order(tasks(c=["b"], a=[], b=["a"], d=[])) == ((1, 2, 0, 3), [])
    assert task_order(tasks(x=[], y=[])) == ((0, 1), [])


def test_a_cycle_is_found_once_as_its_path() -> None:
    order, problems = task_order(tasks(a=["b"], b=["c"], c=["a"], d=["a"]))
    assert order == ()
    assert problems == [Problem(("tasks", 0, "depends_on"), "dependency cycle: a -> b -> c -> a")]
    order, problems = task_order(tasks(free=[], selfish=["selfish"]))
    assert problems == [Problem(("tasks", 1, "depends_on"), "dependency cycle: selfish -> selfish")]


def test_names_and_dependencies_are_checked_before_the_order() -> None:
    _, problems = task_order(tasks(a=["nobody"], b=[], **{"c": ["a"]}) + tasks(b=[]))
    assert problems == [
        Problem(("tasks", 3, "name"), "'b' is already the name of tasks[1]"),
        Problem(("tasks", 0, "depends_on", 0), "no task is named 'nobody'"),
    ]


def test_the_factory_and_the_runtime_report_a_cycle_alike() -> None:
    cyclic = (
        "[[tasks]]\nname = 'a'\ncommand = 'x'\ntimeout_s = 1\nevidence = 'exit'\n"
        "depends_on = ['b']\n\n"
        "[[tasks]]\nname = 'b'\ncommand = 'x'\ntimeout_s = 1\nevidence = 'exit'\n"
        "depends_on = ['a']\n"
    )
    with pytest.raises(ConfigError) as runtime:
        parse_runtime(cyclic, "deploy/agent.toml", Path("/r"))
    cycle = "tasks[0].depends_on: dependency cycle: a -> b -> a"
    assert str(runtime.value) == f"deploy/agent.toml:6: {cycle}"
    spec = MINIMAL_SPEC.replace("[[tasks]]", cyclic.replace("'a'", "'one'") + "\n[[tasks]]", 1)
    spec = spec.replace("name = 'b'", "name = 'two'").replace("['b']", "['two']")
    spec = spec.replace("['a']", "['one']").replace('name = "one"', 'name = "three"')
    with pytest.raises(SpecError) as factory:
        parse_spec_text(spec)
    [problem] = [p for p in factory.value.problems if "cycle" in p]
    assert problem.endswith("tasks[0].depends_on: dependency cycle: one -> two -> one")


# --- layering ---------------------------------------------------------------------------


def test_the_schema_loads_neither_the_evolution_layer_nor_pydantic() -> None:
    """agent/ is the lower layer, and the schema is standard library only."""
    code = (
        "import sys, agent.schema; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('evolution', 'pydantic')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=REPO, timeout=60)  # fmt: skip
    assert done.stdout.strip() == "[]"
