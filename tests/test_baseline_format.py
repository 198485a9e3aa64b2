"""The stored baseline file: canonical text, one test per line, strict loading."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from agent.errors import EnvironmentFailure
from evolution.baseline import Baseline, expiry, quarantined

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


# --- quarantine entries: evidence and expiry ---------------------------------------------

# A baseline written before quarantine entries carried an expiry, a commit or outcomes.
OLD_ENTRY = json.dumps(
    {"first_failure": "boom", "passed": 1, "runs": 3, "seen": "2026-11-01T00:00:00+00:00",
     "tree": "t0"},
    sort_keys=True,
)  # fmt: skip
OLD_STYLE = """{
  "schema": 1,
  "commit": "c0",
  "tree": "t0",
  "recorded_at": "2026-11-01T00:00:00+00:00",
  "counts": {"passed": 2},
  "tests": {
    "t::a": "passed",
    "t::flaky": "passed"
  },
  "flaky": {
    "t::flaky": @ENTRY@
  }
}
""".replace("@ENTRY@", OLD_ENTRY)


def test_an_old_baseline_without_expiry_still_loads_and_its_entries_expire_from_seen() -> None:
    old = Baseline.loads(OLD_STYLE, "baseline/baseline.json@old")
    assert old.flaky["t::flaky"]["seen"] == "2026-11-01T00:00:00+00:00"
    assert expiry(old.flaky["t::flaky"], days=30) == datetime(2026, 12, 1, tzinfo=UTC)
    assert old.excuses("t::flaky", "2026-11-30T23:59:59+00:00", days=30)
    assert not old.excuses("t::flaky", "2026-12-01T00:00:00+00:00", days=30)
    assert old.excuses("t::flaky", "2026-12-01T00:00:00+00:00", days=31)
    assert not old.excuses("t::a", "2026-11-02T00:00:00+00:00")  # not quarantined at all
    assert old.dumps() == OLD_STYLE  # loaded and written back unchanged


def test_a_new_entry_carries_its_expiry_and_round_trips() -> None:
    evidence = {"first_failure": "boom", "tree": "t", "commit": "c", "passed": 1, "runs": 2,
                "seen": "2026-12-01T10:00:00+00:00",
                "outcomes": ["failed", "failed", "passed"]}  # fmt: skip
    entry = quarantined(evidence, "2026-12-01T10:00:05+00:00", days=14)
    assert entry == {**evidence, "expires": "2026-12-15T10:00:05+00:00"}
    baseline = make({"t::a": "passed"}, {"t::a": entry})
    again = Baseline.loads(baseline.dumps(), "origin")
    assert again.flaky == {"t::a": entry}
    assert again.live_quarantine("2026-12-15T10:00:04+00:00", days=1) == {"t::a": entry}
    assert again.live_quarantine("2026-12-15T10:00:05+00:00", days=1000) == {}


@pytest.mark.parametrize("evidence", [{}, {"seen": "yesterday"}, {"seen": "2026-12-01T00:00:00"}])
def test_an_entry_that_cannot_say_when_it_ends_excuses_nothing(evidence: dict) -> None:
    assert expiry(evidence) is None
    baseline = make({"t::a": "passed"}, {"t::a": evidence})
    assert not baseline.excuses("t::a", "2026-12-01T00:00:00+00:00")


@pytest.mark.parametrize("expires", ['"next week"', "5", '"2026-12-01T00:00:00"'])
def test_loads_rejects_an_expiry_that_is_not_a_time(expires: str) -> None:
    text = ('{"schema": 1, "tests": {"t::a": "passed"}, '
            f'"flaky": {{"t::a": {{"passed": 1, "expires": {expires}}}}}}}')  # fmt: skip
    with pytest.raises(EnvironmentFailure) as caught:
        Baseline.loads(text, "baseline/baseline.json@abc")
    assert "t::a expires at" in caught.value.message
