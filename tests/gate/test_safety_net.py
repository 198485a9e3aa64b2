"""The post-merge safety net finds the cause before it reverts (invariant 19).

Every test drives a real repository and real sandboxed pytest runs through
`evolve validate --post-merge`: regressions that fail on the verified commit too are
environmental incidents, bisection names the commit that broke each test, only those
commits are reverted (each alone), and a person's commit raises an incident instead.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from repo_setup import BROKEN_ADD, CALC, CALC_TESTS, Sandbox

pytestmark = pytest.mark.e2e  # real gate runs: `pytest -m "not e2e"` skips them

ADD = "tests/test_calc.py::test_add"
SUB = "tests/test_calc.py::test_sub"
BROKEN_SUB = CALC.replace("def sub(a, b):\n    return a - b", "def sub(a, b):\n    return a + b")
BOTH_BROKEN = BROKEN_ADD.replace(
    "def sub(a, b):\n    return a - b", "def sub(a, b):\n    return a + b"
)


def proposal(box: Sandbox, name: str, files: dict[str, str]) -> str:
    """An automated proposal that reached main without the gate: committed straight to
    it, trailers and all (a person fast-forwarded main to it, say)."""
    message = f"evolve: {name}\n\nEvolve-Proposal: {name}\nEvolve-Proposer: test"
    return box.commit(message, files)


def post_merge(box: Sandbox) -> tuple[int, dict, str]:
    done = box.evolve("safety-net", "--json", timeout=300)
    try:
        report = json.loads(done.stdout)
    except ValueError:
        raise AssertionError(done.stdout + done.stderr) from None
    return done.returncode, report, done.stderr


def trailers(box: Sandbox, commit: str) -> str:
    return box.git("log", "-1", "--format=%(trailers:only,unfold)", commit)


def note(box: Sandbox, commit: str) -> str:
    return box.git("notes", "--ref=evolve", "show", commit)


def verified_with(box: Sandbox, **policy: object) -> str:
    """Commit a policy to main, as a person would, and let the safety net validate it:
    the policy it judges by is the verified commit's."""
    box.policy(**policy)
    code, report, stderr = post_merge(box)
    assert (code, report["status"]) == (0, "passing"), (report, stderr)
    return box.head()


def test_a_test_failing_on_the_verified_commit_too_is_an_incident_never_a_revert(
    sandbox: Sandbox, shared_dir: Path
) -> None:
    # A suite that reads reference data the host keeps outside the repository, in a
    # folder the policy shares with the sandbox. The baseline is recorded while it is
    # there; then the host loses it (a clean-up, a new machine).
    rates = shared_dir / "rates.json"
    rates.write_text('{"eur": 1.08, "gbp": 0.86}\n')
    test_rates = (
        "import json\n"
        "from pathlib import Path\n\n"
        f"RATES = Path({str(rates)!r})  # the host's copy, outside the repository\n\n\n"
        "def test_every_rate_is_positive():\n"
        "    assert all(rate > 0 for rate in json.loads(RATES.read_text()).values())\n"
    )
    sandbox.commit("test the exchange rates", {"tests/test_rates.py": test_rates})
    sandbox.policy(shared=[str(shared_dir)])
    recorded = sandbox.evolve("baseline", "record", "--reruns", "0")
    assert recorded.returncode == 0, recorded.stderr
    rates.unlink()
    # A harmless automated proposal: were the failure taken for its doing, it would go.
    harmless = proposal(sandbox, "add-notes", {"scripts/notes.py": "NOTE = 'kept'\n"})

    code, report, stderr = post_merge(sandbox)

    assert (code, report["status"]) == (1, "incident"), report
    assert report["reverted"] == [] and report["reverts"] == []
    assert sandbox.head() == harmless  # nothing reverted, nothing moved
    [incident] = report["incidents"]
    assert incident["kind"] == "environmental" and incident["culprit"] == ""
    assert incident["tests"] == ["tests/test_rates.py::test_every_rate_is_positive"]
    assert incident["command"] == "evolve baseline record --reset"
    assert "in question" in incident["detail"]  # the baseline's record of it
    assert "environmental" in stderr.splitlines()[-1]  # the line an agent task keeps
    recorded_note = note(sandbox, harmless)
    assert "Evolve-Verdict: incident" in recorded_note
    assert "Evolve-Incident: environmental - tests/test_rates.py::" in recorded_note
    assert sandbox.evolve("verify", "main").returncode == 1  # no verdict until a person acts

    rates.write_text('{"eur": 1.08}\n')  # the operator restores the host's data
    code, report, _ = post_merge(sandbox)
    assert (code, report["status"], report["incidents"]) == (0, "passing", [])


def test_bisection_reverts_only_the_culprit_among_three_proposals(sandbox: Sandbox) -> None:
    first = proposal(sandbox, "add-notes", {"scripts/notes.py": "NOTE = 1\n"})
    middle = proposal(sandbox, "speed-up-add", {"scripts/calc.py": BROKEN_ADD})
    last = proposal(sandbox, "add-units", {"scripts/units.py": "UNIT = 'm'\n"})

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"]) == (1, "reverted"), report
    assert report["reverted"] == [middle] and report["incidents"] == []
    [revert] = report["reverts"]
    assert revert["reverts"] == middle and revert["tests"] == [ADD]
    head = sandbox.head()
    assert head == revert["commit"] == report["revert_commit"]
    assert sandbox.git("rev-parse", f"{head}^") == last  # on top: history kept
    own = trailers(sandbox, head)
    assert f"Evolve-Reverts: {middle}" in own and f"Evolve-Regressed: {ADD}" in own
    assert sandbox.git("log", "-1", "--format=%s", head).startswith(f"evolve: revert {middle[:10]}")
    # the commits that broke nothing stay
    assert (sandbox.path / "scripts/notes.py").read_text() == "NOTE = 1\n"
    assert (sandbox.path / "scripts/units.py").read_text() == "UNIT = 'm'\n"
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC
    assert sandbox.git("merge-base", "--is-ancestor", first, head) == ""
    # the result was tested, passed, and is the next run's verified start
    assert report["still_failing"] == []
    assert "Evolve-Verdict: validated" in note(sandbox, head)
    code, report, _ = post_merge(sandbox)
    assert (code, report["status"]) == (0, "nothing-to-do")


def test_two_culprits_breaking_two_tests_are_each_reverted_alone(sandbox: Sandbox) -> None:
    breaks_add = proposal(sandbox, "speed-up-add", {"scripts/calc.py": BROKEN_ADD})
    harmless = proposal(sandbox, "add-notes", {"scripts/notes.py": "NOTE = 1\n"})
    breaks_sub = proposal(sandbox, "speed-up-sub", {"scripts/calc.py": BOTH_BROKEN})

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"]) == (1, "reverted"), report
    assert report["reverted"] == [breaks_sub, breaks_add]  # newest first
    assert [(r["reverts"], r["tests"]) for r in report["reverts"]] == [
        (breaks_sub, [SUB]),
        (breaks_add, [ADD]),
    ]
    second, first = sandbox.head(), sandbox.head("main^")
    assert f"Evolve-Reverts: {breaks_sub}\n" in trailers(sandbox, first) + "\n"
    assert f"Evolve-Regressed: {SUB}" in trailers(sandbox, first)
    assert f"Evolve-Reverts: {breaks_add}\n" in trailers(sandbox, second) + "\n"
    assert f"Evolve-Regressed: {ADD}" in trailers(sandbox, second)
    assert sandbox.head("main~2") == breaks_sub
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC
    assert (sandbox.path / "scripts/notes.py").exists()  # `harmless` stays
    assert harmless not in report["reverted"] and report["still_failing"] == []


def test_a_persons_breaking_commit_raises_an_incident_not_a_revert(sandbox: Sandbox) -> None:
    person = sandbox.commit("a person makes add faster", {"scripts/calc.py": BROKEN_ADD})

    code, report, stderr = post_merge(sandbox)

    assert (code, report["status"]) == (1, "incident"), report
    assert report["reverted"] == [] and sandbox.head() == person
    [incident] = report["incidents"]
    command = f"git revert --no-edit {person}"
    assert (incident["kind"], incident["culprit"], incident["tests"]) == (
        "person-commit", person, [ADD]
    )
    assert incident["command"] == command and incident["subject"] == "a person makes add faster"
    assert command in stderr.splitlines()[-1]  # what the agent's task detail shows
    recorded = note(sandbox, person)
    assert "Evolve-Verdict: incident" in recorded
    assert f"Evolve-Incident: person-commit {person} {ADD}" in recorded
    assert command in recorded
    logged = json.loads(sandbox.evolve("log", "--json", "--verdict", "incident").stdout)
    assert [e["commit"] for e in logged["entries"]] == [person]

    # Said plainly, and again on every run until a person acts.
    text = sandbox.evolve("safety-net")
    assert text.returncode == 1
    assert "INCIDENT" in text.stdout and command in text.stdout.replace("\n", "")
    assert sandbox.head() == person

    sandbox.git("revert", "--no-edit", person)  # the operator runs the command
    code, report, _ = post_merge(sandbox)
    assert (code, report["status"]) == (0, "passing")


def test_with_revert_people_a_persons_breaking_commit_is_reverted(sandbox: Sandbox) -> None:
    verified_with(sandbox, revert_people=True)
    person = sandbox.commit("a person makes add faster", {"scripts/calc.py": BROKEN_ADD})

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"]) == (1, "reverted"), report
    assert report["reverted"] == [person] and report["incidents"] == []
    assert (sandbox.path / "scripts/calc.py").read_text() == CALC


def test_a_person_deleting_a_test_on_purpose_raises_an_incident(sandbox: Sandbox) -> None:
    without_sub = CALC_TESTS.replace("\n\ndef test_sub():\n    assert sub(5, 3) == 2\n", "")
    assert "test_sub" not in without_sub
    deletion = sandbox.commit("sub is going away: drop its test",
                              {"tests/test_calc.py": without_sub})  # fmt: skip
    later = sandbox.commit("notes", {"NOTES.md": "sub goes next week\n"})

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"]) == (1, "incident"), report
    assert sandbox.head() == later  # neither commit reverted
    [incident] = report["incidents"]
    assert (incident["kind"], incident["culprit"], incident["tests"]) == (
        "person-commit", deletion, [SUB]
    )
    assert "evolve baseline record --reset" in incident["detail"]

    # Lowering the ratchet on purpose is the person's way to close it.
    reset = sandbox.evolve("baseline", "record", "--reset", "--reruns", "0")
    assert reset.returncode == 0, reset.stderr
    assert SUB not in sandbox.baseline()["tests"]
    code, report, _ = post_merge(sandbox)
    assert (code, report["status"]) == (0, "nothing-to-do")


def test_a_refused_proposal_is_reverted_alone_and_peoples_commits_stay(sandbox: Sandbox) -> None:
    # People may change tests; a proposal may not (protected paths).
    more = {"tests/test_more.py": "def test_more():\n    assert True\n"}
    person = sandbox.commit("a person adds a test", more)
    weakened = CALC_TESTS.replace("assert add(2, 3) == 5", "assert add(2, 3) is not None")
    refused = proposal(sandbox, "relax-add", {"tests/test_calc.py": weakened})

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"]) == (1, "reverted"), report
    assert report["reverted"] == [refused] and "protected" in report["refused"]
    assert report["incidents"] == [] and report["still_failing"] == []
    assert (sandbox.path / "tests/test_calc.py").read_text() == CALC_TESTS
    assert (sandbox.path / "tests/test_more.py").exists()
    assert sandbox.git("merge-base", "--is-ancestor", person, "main") == ""
    assert "Evolve-Verdict: validated" in note(sandbox, sandbox.head())


def test_a_culprit_whose_revert_conflicts_is_an_incident_and_main_stays(sandbox: Sandbox) -> None:
    culprit = proposal(sandbox, "speed-up-add", {"scripts/calc.py": BROKEN_ADD})
    # A later commit edits the very line the culprit broke: reverting the culprit alone
    # no longer applies, and reverting both would take the later work too.
    later = sandbox.commit("a person documents add", {
        "scripts/calc.py": BROKEN_ADD.replace("return a - b", "return a - b  # documented", 1)
    })  # fmt: skip

    code, report, _ = post_merge(sandbox)

    assert (code, report["status"], report["reverts"]) == (1, "incident", []), report
    assert sandbox.head() == later
    [incident] = report["incidents"]
    assert (incident["kind"], incident["culprit"], incident["tests"]) == (
        "revert-conflict", culprit, [ADD]
    )
    assert incident["command"] == f"git revert --no-edit {culprit}"
    assert "Evolve-Incident: revert-conflict" in note(sandbox, later)
