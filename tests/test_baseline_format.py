"""The stored baseline file: canonical text, one test per line, strict loading."""

from __future__ import annotations

import json

import pytest

from agent.errors import EnvironmentFailure
from evolution.baseline import Baseline

TESTS = {
    "tests/test_b.py::test_two": "failed",
    "tests/test_a.py::test_one": "passed",
    "tests/test_a.py::test_param[x-1]": "skipped",
    "tests/test_c.py::Test::test_three": "xfailed",
    'tests/test_q.py::test_quote["a"]': "passed",
}
FLAKY = {
    "tests/test_a.py::test_one": {"runs": 3, "passed": 1, "first_failure": "boom", "tree": "t"},
}


def make(tests: dict[str, str], flaky: dict | None = None) -> Baseline:
    return Baseline(
        commit="a" * 40,
        tree="b" * 40,
        recorded_at="2024-05-01T12:00:00+00:00",
        tests=tests,
        flaky=flaky if flaky is not None else {},
    )


def _block_lines(text: str, name: str) -> list[str]:
    lines = text.splitlines()
    start = lines.index(f'  "{name}": {{')
    end = next(i for i in range(start, len(lines)) if lines[i] in ("  }", "  },"))
    return lines[start + 1 : end]


def test_one_test_per_line_sorted() -> None:
    text = make(TESTS, FLAKY).dumps()
    lines = _block_lines(text, "tests")
    assert len(lines) == len(TESTS)
    parsed = [json.loads("{" + line.strip().rstrip(",") + "}") for line in lines]
    assert [next(iter(item)) for item in parsed] == sorted(TESTS)
    for line, item in zip(lines, parsed, strict=True):
        ((nodeid, outcome),) = item.items()
        assert TESTS[nodeid] == outcome
        assert json.dumps(nodeid) in line
        assert json.dumps(outcome) in line


def test_top_level_keys_are_sorted_within_their_blocks() -> None:
    data = json.loads(make(TESTS, FLAKY).dumps())
    assert list(data) == ["schema", "commit", "tree", "recorded_at", "counts", "tests", "flaky"]
    assert list(data["tests"]) == sorted(TESTS)
    assert list(data["counts"]) == sorted(data["counts"])


def test_flaky_evidence_is_one_line_with_sorted_keys() -> None:
    text = make(TESTS, FLAKY).dumps()
    (line,) = _block_lines(text, "flaky")
    assert json.dumps("tests/test_a.py::test_one") in line
    evidence = line.split(": ", 1)[1].rstrip(",")
    assert evidence == json.dumps(FLAKY["tests/test_a.py::test_one"], sort_keys=True)


def test_equal_content_gives_identical_bytes_whatever_the_insertion_order() -> None:
    forward = make(dict(TESTS), dict(FLAKY)).dumps()
    backward = make(dict(reversed(list(TESTS.items()))), dict(FLAKY)).dumps()
    shuffled_evidence = {key: dict(reversed(list(value.items()))) for key, value in FLAKY.items()}
    assert forward.encode() == backward.encode()
    assert forward == make(dict(TESTS), shuffled_evidence).dumps()


def test_different_content_gives_different_text() -> None:
    changed = dict(TESTS, **{"tests/test_b.py::test_two": "passed"})
    assert make(TESTS).dumps() != make(changed).dumps()


def test_head_is_valid_json_with_counts() -> None:
    data = json.loads(make(TESTS, FLAKY).dumps())
    assert data["schema"] == 1
    assert data["counts"] == {"failed": 1, "passed": 2, "skipped": 1, "xfailed": 1}
    assert list(data["counts"]) == sorted(data["counts"])
    assert data["tests"] == TESTS
    assert data["flaky"] == FLAKY


def test_round_trip() -> None:
    original = make(TESTS, FLAKY)
    text = original.dumps()
    again = Baseline.loads(text, "origin")
    assert again == original
    assert again.dumps() == text


def test_ends_with_a_single_newline() -> None:
    text = make(TESTS).dumps()
    assert text.endswith("}\n")
    assert not text.endswith("\n\n")


def test_empty_tests_and_flaky_render_as_empty_objects() -> None:
    text = make({}, {}).dumps()
    assert '  "tests": {},' in text.splitlines()
    assert '  "flaky": {}' in text.splitlines()
    again = Baseline.loads(text, "origin")
    assert again.tests == {}
    assert again.flaky == {}


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("{not json", "not valid JSON"),
        ("", "not valid JSON"),
        ("[1, 2]", "JSON object"),
        ('{"schema": 2, "tests": {}, "flaky": {}}', "schema"),
        ('{"tests": {}, "flaky": {}}', "schema"),
        ('{"schema": 1, "tests": [], "flaky": {}}', "'tests' and 'flaky'"),
        ('{"schema": 1, "flaky": {}}', "'tests' and 'flaky'"),
        ('{"schema": 1, "tests": {}, "flaky": []}', "'tests' and 'flaky'"),
        ('{"schema": 1, "tests": {"t::a": "sort-of-passed"}}', "unknown outcomes"),
        ('{"schema": 1, "tests": {"t::a": null}}', "unknown outcomes"),
    ],
)
def test_loads_rejects_bad_files_as_environment_failures(text: str, needle: str) -> None:
    with pytest.raises(EnvironmentFailure) as caught:
        Baseline.loads(text, "baseline/baseline.json@abc")
    assert needle in caught.value.message
    assert caught.value.message.startswith("baseline/baseline.json@abc")
    # A clean, one-line message, not a chained traceback.
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or caught.value.__suppress_context__


def test_loads_rejects_flaky_evidence_that_is_not_an_object() -> None:
    text = '{"schema": 1, "tests": {"t::a": "passed"}, "flaky": {"t::a": 5}}'
    with pytest.raises(EnvironmentFailure):
        Baseline.loads(text, "baseline/baseline.json@abc")
