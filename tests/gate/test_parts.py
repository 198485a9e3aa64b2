"""Part files and their verification, without a run: what the digest and the HMAC catch,
what the structure check catches, and the split every runner computes alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.errors import InvalidRun
from evolution.baseline import Baseline
from evolution.gate.parts import Part, body_of, read_part, verify, write_part
from evolution.policy import Policy
from evolution.ratchet import compare, pool
from evolution.run.report import RunResult
from evolution.run.split import is_test_module, owner_of, plan_digest, plan_for

KEY = b"ci-secret"
EXPECTED = {"commit": "c" * 40, "tree": "t" * 40, "base": "b" * 40,
            "baseline": {"commit": "b" * 40, "blob": "f" * 40}, "policy": "p" * 16}  # fmt: skip


def _part(tmp_path: Path, index: int, count: int = 2, key: bytes | None = None,
          outcomes: dict[str, str] | None = None, **changes: object) -> Path:  # fmt: skip
    result = RunResult(outcomes=outcomes or {f"tests/test_{index}.py::test": "passed"},
                       owners={"tests/test_0.py": 0, "tests/test_1.py": 1})  # fmt: skip
    fields = {**EXPECTED, **{k: v for k, v in changes.items() if k != "ran"}}
    body = body_of(result, {}, **fields, split={"index": index, "count": count, "plan": "x"},
                   refused="", runner="r", sandbox="landlock", ran_at=str(changes))  # fmt: skip
    path = tmp_path / f"part-{index}-{len(list(tmp_path.iterdir()))}.json"
    write_part(path, body, key)
    return path


def _read(paths: list[Path], key: bytes | None = None) -> list[Part]:
    return [read_part(p, key) for p in paths]


def test_a_whole_set_verifies(tmp_path: Path) -> None:
    verify(_read([_part(tmp_path, 0), _part(tmp_path, 1)]), [], EXPECTED)


def test_an_edited_part_fails_its_digest(tmp_path: Path) -> None:
    path = _part(tmp_path, 0, outcomes={"tests/test_0.py::test": "failed"})
    path.write_text(path.read_text().replace('"failed"', '"passed"'))
    with pytest.raises(InvalidRun, match="digest does not match"):
        read_part(path, None)


def test_without_a_key_a_resealed_forgery_passes_the_digest_the_documented_limit(
    tmp_path: Path,
) -> None:
    path = _part(tmp_path, 0, outcomes={"tests/test_0.py::test": "failed"})
    body = json.loads(path.read_text())["body"]
    body["result"]["outcomes"]["tests/test_0.py::test"] = "passed"
    write_part(path, body, None)
    assert read_part(path, None).body["result"]["outcomes"] == {"tests/test_0.py::test": "passed"}
    # With the key, the same forgery is caught: the forger has no key.
    signed = _part(tmp_path, 0, key=KEY, outcomes={"tests/test_0.py::test": "failed"})
    body = json.loads(signed.read_text())["body"]
    body["result"]["outcomes"]["tests/test_0.py::test"] = "passed"
    write_part(signed, body, None)
    with pytest.raises(InvalidRun, match="no valid HMAC"):
        read_part(signed, KEY)
    write_part(signed, body, b"another key")
    with pytest.raises(InvalidRun, match="no valid HMAC"):
        read_part(signed, KEY)


def test_a_signed_part_needs_the_key_where_it_is_combined(tmp_path: Path) -> None:
    path = _part(tmp_path, 0, key=KEY)
    assert read_part(path, KEY).keyed
    with pytest.raises(InvalidRun, match="cannot be verified"):
        read_part(path, None)


@pytest.mark.parametrize(
    ("make", "said"),
    [
        (lambda t: [_part(t, 0)], "2 of 2 missing"),
        (lambda t: [_part(t, 0), _part(t, 1), _part(t, 1, ran="again")], "duplicated"),
        (lambda t: [_part(t, 0), _part(t, 1, tree="u" * 40)], "its tree is"),
        (lambda t: [_part(t, 0), _part(t, 1, policy="q" * 16)], "same policy options"),
        (lambda t: [_part(t, 0), _part(t, 1, count=3)], "split different ways"),
    ],
)
def test_an_incomplete_or_inconsistent_set_is_invalid(tmp_path: Path, make, said: str) -> None:
    with pytest.raises(InvalidRun, match=said):
        verify(_read(make(tmp_path)), [], EXPECTED)


def test_the_same_file_twice_is_named_so(tmp_path: Path) -> None:
    path = _part(tmp_path, 0)
    with pytest.raises(InvalidRun, match="the same file given twice"):
        verify(_read([path, path, _part(tmp_path, 1)]), [], EXPECTED)
    with pytest.raises(InvalidRun, match="its own retry"):
        verify(_read([path, _part(tmp_path, 1)]), _read([path]), EXPECTED)


def test_not_a_part_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    path.write_text('{"body": {"format": "junit"}}')
    with pytest.raises(InvalidRun, match="not a Ratchet part file"):
        read_part(path, None)
    with pytest.raises(InvalidRun, match="does not exist"):
        read_part(tmp_path / "absent.json", None)


def test_the_split_is_a_pure_function_of_the_files_and_the_baseline() -> None:
    files = ["a/test_x.py", "a/test_y.py", "b/z_test.py", "lib.py", "tests/conftest.py"]
    known = [f"a/test_x.py::t{i}" for i in range(5)] + ["a/test_y.py::t", "b/z_test.py::t"]
    plan = plan_for(files, known, 2)
    assert plan == plan_for(reversed(files), reversed(known), 2)  # the order does not matter
    assert set(plan) == {"a/test_x.py", "a/test_y.py", "b/z_test.py"}
    assert plan["a/test_x.py"] != plan["a/test_y.py"] == plan["b/z_test.py"]  # 5 vs 1 + 1
    assert plan_digest(plan, 2) != plan_digest(plan_for(files, known, 3), 3)
    # A file the plan does not name goes by its path's hash, as the probe decides.
    assert owner_of(plan, 2, "other/check_me.py::t") == owner_of(plan, 2, "other/check_me.py::u")
    assert not is_test_module("tests/conftest.py") and is_test_module("x/test_a.py")


def _baseline(**tests: str) -> Baseline:
    return Baseline("b", "t", "2026-01-01T00:00:00+00:00", tests={
        f"t.py::{name}": outcome for name, outcome in tests.items()})  # fmt: skip


def test_two_outcomes_on_one_tree_are_flaky_and_a_new_test_is_never_retried_into_a_pass() -> None:
    baseline = _baseline(old="passed", broken="passed", failing="failed")
    first = RunResult({"t.py::old": "failed", "t.py::broken": "failed", "t.py::failing": "passed",
                       "t.py::new": "passed", "t.py::steady": "passed"})  # fmt: skip
    retry = RunResult({"t.py::old": "passed", "t.py::broken": "failed", "t.py::failing": "failed",
                       "t.py::new": "failed", "t.py::steady": "passed"})  # fmt: skip
    result, evidence = pool(baseline, [(first, {}), (retry, {})], "t", "c", "now")
    assert result.outcomes == {"t.py::old": "failed", "t.py::broken": "failed",
                               "t.py::failing": "failed", "t.py::new": "failed",
                               "t.py::steady": "passed"}  # fmt: skip
    assert evidence["t.py::old"]["outcomes"] == ["failed", "passed"]
    assert (evidence["t.py::broken"]["passed"], evidence["t.py::broken"]["runs"]) == (0, 1)
    assert set(evidence) == {"t.py::old", "t.py::broken"}  # the others are never excused
    comparison = compare(baseline, result, Policy(), evidence, now="2026-01-02T00:00:00+00:00")
    assert list(comparison.flaky) == ["t.py::old"]
    assert [r.nodeid for r in comparison.regressions] == ["t.py::broken"]
    assert "t.py::new" not in comparison.newly_passing
    assert "t.py::failing" not in comparison.newly_passing
    strict = compare(baseline, result, Policy(flaky="strict"), evidence,
                     now="2026-01-02T00:00:00+00:00")  # fmt: skip
    assert [r.nodeid for r in strict.regressions] == ["t.py::broken", "t.py::old"]


def test_a_pass_first_and_a_failure_on_the_retry_is_flaky_too() -> None:
    baseline = _baseline(old="passed")
    first, retry = RunResult({"t.py::old": "passed"}), RunResult({"t.py::old": "error"})
    result, evidence = pool(baseline, [(first, {}), (retry, {})], "t", "c", "now")
    assert result.outcomes["t.py::old"] == "error"
    assert evidence["t.py::old"]["outcomes"] == ["passed", "error"]
    assert evidence["t.py::old"]["passed"] == 1
