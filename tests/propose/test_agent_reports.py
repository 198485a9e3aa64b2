"""The coding-agent CLIs' own reports, read from output recorded from the real tools."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from evolution.propose.agents.reports import (
    MESSAGE_LIMIT,
    Usage,
    claude_json,
    codex_jsonl,
    gemini_json,
)

SAMPLES = Path(__file__).parent / "agent_samples"
DONE = "Created hello.txt containing a greeting."
Parser = Callable[[str], Usage | None]


def sample(name: str) -> str:
    return (SAMPLES / name).read_text(encoding="utf-8")


@pytest.mark.parametrize(
    ("parser", "name", "expected"),
    [
        (codex_jsonl, "codex-exec.jsonl", Usage(None, 4100, 100, "", True, DONE)),
        (codex_jsonl, "codex-exec-retried.jsonl", Usage(None, 4100, 100, "", True, DONE)),
        (
            codex_jsonl,
            "codex-exec-error.jsonl",
            Usage(
                None, 0, 0, "", False, "The model `gpt-fail-1` does not exist on this fake server."
            ),
        ),
        (claude_json, "claude.json", Usage(0.00852, 2440, 80, "claude-sonnet-4-5", True, DONE)),
        (
            claude_json,
            "claude-error.json",
            Usage(
                0.0,
                0,
                0,
                "",
                False,
                "API Error: 400 model: claude-fail-1 is not available on this fake server",
            ),
        ),
        (
            claude_json,
            "claude-max-turns.json",
            Usage(
                0.004229999999999999,
                1210,
                40,
                "claude-sonnet-4-5",
                False,
                "Reached maximum number of turns (1)",
            ),
        ),
        (gemini_json, "gemini.json", Usage(None, 6040, 60, "gemini-2.5-pro", True, DONE)),
        (
            gemini_json,
            "gemini-error.json",
            Usage(
                None,
                0,
                0,
                "",
                False,
                '{"error":{"code":400,"message":"models/gemini-fail-1 is not found on this fake'
                ' server.","status":"INVALID_ARGUMENT"}}',
            ),
        ),
    ],
)
def test_each_recorded_run_reads_as_the_tool_reported_it(
    parser: Parser, name: str, expected: Usage
) -> None:
    assert parser(sample(name)) == expected


def test_a_reconnect_error_event_is_no_verdict_on_the_run() -> None:
    """The retried run really printed a top-level error event, then finished its turn."""
    events = [json.loads(line) for line in sample("codex-exec-retried.jsonl").splitlines()]
    assert any(event["type"] == "error" for event in events)
    assert codex_jsonl(sample("codex-exec-retried.jsonl")).ok


PARSERS_AND_SAMPLES = [
    (codex_jsonl, "codex-exec.jsonl"),
    (claude_json, "claude.json"),
    (gemini_json, "gemini.json"),
]
ALL_SAMPLES = [
    "codex-exec.jsonl",
    "codex-exec-error.jsonl",
    "claude.json",
    "claude-error.json",
    "gemini.json",
    "gemini-error.json",
]


@pytest.mark.parametrize(("parser", "name"), PARSERS_AND_SAMPLES)
def test_lines_around_the_report_are_ignored(parser: Parser, name: str) -> None:
    noisy = "starting up...\n{not json\n" + sample(name) + "\nbye\n"
    assert parser(noisy) == parser(sample(name))


@pytest.mark.parametrize(("parser", "name"), PARSERS_AND_SAMPLES)
def test_a_report_cut_short_is_no_report(parser: Parser, name: str) -> None:
    text = sample(name).rstrip()
    assert parser(text[: len(text) - 20]) is None


def test_codex_events_before_the_cut_are_not_taken_for_a_report() -> None:
    lines = sample("codex-exec.jsonl").splitlines(keepends=True)
    assert codex_jsonl("".join(lines[:-1])) is None


@pytest.mark.parametrize("parser", [codex_jsonl, claude_json, gemini_json])
@pytest.mark.parametrize("output", ["", "\n", "garbage\n", "{}", "[1, 2]\n", '{"type": "x"}\n'])
def test_no_report_in_garbage(parser: Parser, output: str) -> None:
    assert parser(output) is None


@pytest.mark.parametrize(
    ("parser", "name"),
    [
        (parser, name)
        for parser, tool in [
            (codex_jsonl, "codex"),
            (claude_json, "claude"),
            (gemini_json, "gemini"),
        ]
        for name in ALL_SAMPLES
        if not name.startswith(tool)
    ],
)
def test_a_parser_finds_nothing_in_another_tools_output(parser: Parser, name: str) -> None:
    assert parser(sample(name)) is None


def test_a_long_message_is_clipped() -> None:
    report = json.loads(sample("claude.json"))
    report["result"] = "x" * (MESSAGE_LIMIT + 500)
    usage = claude_json(json.dumps(report))
    assert usage is not None
    assert usage.message == "x" * MESSAGE_LIMIT
