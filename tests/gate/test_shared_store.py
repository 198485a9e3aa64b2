"""The shared baseline store (refs/notes/ratchet) on real repositories, without test runs:
the nearest ancestor's baseline, compare-and-swap with retries on a lost race (one
runner's interleaving, then two processes against a bare origin), nothing lost, and the
refusals of an advance after a merge."""

from __future__ import annotations

import json
import multiprocessing
import subprocess
from pathlib import Path

import pytest
from repo_setup import Sandbox, make_sandbox

from agent.errors import Refused, UsageError
from evolution.baseline import STORE_REF, Baseline, read_shared, store_entries
from evolution.gate.migrate import migrate, set_key
from evolution.gate.shared import advance_after_merge, advance_shared
from evolution.gitrepo import GitRepo

WHEN = "2026-01-01T00:00:00+00:00"


def _baseline(box: Sandbox, commit: str, passing: list[str], failing: list[str] = ()) -> Baseline:
    tests = {**dict.fromkeys(passing, "passed"), **dict.fromkeys(failing, "failed")}
    return Baseline(commit, box.git("rev-parse", f"{commit}^{{tree}}"), WHEN, tests)


def _commits(box: Sandbox, count: int) -> list[str]:
    return [box.commit(f"c{i}", {f"f{i}.txt": str(i)}) for i in range(count)]


@pytest.fixture
def box(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path / "repo", record=False)


def test_a_commit_reads_its_nearest_first_parent_ancestor_s_baseline(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    first, second, third = _commits(box, 3)
    assert read_shared(repo, third) is None

    advance_shared(repo, first, _baseline(box, first, ["t::a"]))
    assert read_shared(repo, third)[0].passing() == {"t::a"}

    advance_shared(repo, third, _baseline(box, third, ["t::a", "t::b"]))
    assert read_shared(repo, third)[0].passing() == {"t::a", "t::b"}
    assert read_shared(repo, second)[0].commit == first  # not a later commit's
    # The notes layout: git's own tools read an entry.
    shown = box.git("notes", "--ref=ratchet", "show", third)
    assert Baseline.loads(shown, "note").passing() == {"t::a", "t::b"}
    # Each advance is a commit of the store on the last: its history is the audit trail.
    assert box.git("rev-list", "--count", STORE_REF) == "2"


def test_an_entry_git_notes_wrote_is_read_and_replaced_not_doubled(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    [commit] = _commits(box, 1)
    box.git("notes", "--ref=ratchet", "add", "-m", _baseline(box, commit, ["t::a"]).dumps(), commit)
    assert read_shared(repo, commit)[0].passing() == {"t::a"}

    advance_shared(repo, commit, _baseline(box, commit, ["t::a", "t::b"]))
    assert list(store_entries(repo, repo.resolve_commit(STORE_REF))) == [commit]
    assert read_shared(repo, commit)[0].passing() == {"t::a", "t::b"}


def test_advancing_the_same_baseline_again_changes_nothing(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    [commit] = _commits(box, 1)
    first = advance_shared(repo, commit, _baseline(box, commit, ["t::a"]))
    again = advance_shared(repo, commit, _baseline(box, commit, ["t::a"]))
    assert again.unchanged and again.store_after == first.store_after


def test_a_runner_that_loses_the_race_retries_and_both_baselines_land(box: Sandbox) -> None:
    """A deterministic interleaving: just before runner 1's compare-and-swap, runner 2
    advances the store. Runner 1's swap fails, it re-reads and applies its entry again."""
    repo = GitRepo(box.path)
    first, second = _commits(box, 2)
    swaps: list[int] = []

    def runner_two_goes_first(attempt: int) -> None:
        swaps.append(attempt)
        if attempt == 1:
            advance_shared(GitRepo(box.path), second, _baseline(box, second, ["t::b"]))

    done = advance_shared(repo, first, _baseline(box, first, ["t::a"]),
                          before_swap=runner_two_goes_first)  # fmt: skip

    assert swaps == [1, 2] and done.attempts == 2
    entries = store_entries(repo, repo.resolve_commit(STORE_REF))
    assert set(entries) == {first, second}  # nothing lost
    assert read_shared(repo, second)[0].passing() == {"t::b"}
    assert read_shared(repo, first)[0].passing() == {"t::a"}
    # The store's history holds both, one after the other (no overwrite).
    assert box.git("rev-list", "--count", STORE_REF) == "2"


def test_a_runner_that_always_loses_gives_up_and_writes_nothing(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    first, second = _commits(box, 2)
    others = iter(range(100))

    def someone_else_always_wins(attempt: int) -> None:
        advance_shared(GitRepo(box.path), second, _baseline(box, second, [f"t::{next(others)}"]))

    with pytest.raises(Exception, match="compare-and-swaps lost in a row"):
        advance_shared(repo, first, _baseline(box, first, ["t::a"]), attempts=3,
                       before_swap=someone_else_always_wins)  # fmt: skip
    assert first not in store_entries(repo, repo.resolve_commit(STORE_REF))


# -- two runners, two clones, one bare origin ------------------------------------------


def _clone(origin: Path, path: Path) -> Sandbox:
    subprocess.run(["git", "clone", "-q", str(origin), str(path)], check=True)
    return Sandbox(path)


@pytest.fixture
def fleet(tmp_path: Path, box: Sandbox) -> tuple[Path, Sandbox, Sandbox, list[str]]:
    """A bare origin with two merged commits on main, and two runners' clones of it."""
    commits = _commits(box, 2)
    origin = tmp_path / "origin.git"
    subprocess.run(["git", "clone", "-q", "--bare", str(box.path), str(origin)], check=True)
    return origin, _clone(origin, tmp_path / "one"), _clone(origin, tmp_path / "two"), commits


def _race(path: str, commit: str, passing: str, barrier: object, queue: object) -> None:
    """One runner: advance `commit` on origin, waiting for the other runner at the
    barrier just before the first compare-and-swap, so that both swap the same base."""
    repo = GitRepo(path)
    box = Sandbox(Path(path))

    def meet(attempt: int) -> None:
        if attempt == 1:
            barrier.wait(timeout=60)  # type: ignore[attr-defined]

    done = advance_shared(repo, commit, _baseline(box, commit, [passing]), remote="origin",
                          before_swap=meet)  # fmt: skip
    queue.put(done.attempts)  # type: ignore[attr-defined]


def test_two_runners_advancing_at_the_same_moment_both_land_on_origin(
    fleet: tuple[Path, Sandbox, Sandbox, list[str]],
) -> None:
    origin, one, two, (first, second) = fleet
    context = multiprocessing.get_context("fork")
    barrier, queue = context.Barrier(2), context.Queue()
    runners = [
        context.Process(target=_race, args=(str(one.path), first, "t::a", barrier, queue)),
        context.Process(target=_race, args=(str(two.path), second, "t::b", barrier, queue)),
    ]
    for runner in runners:
        runner.start()
    for runner in runners:
        runner.join(timeout=120)
    assert [runner.exitcode for runner in runners] == [0, 0]
    attempts = sorted(queue.get(timeout=5) for _ in runners)
    assert attempts[0] == 1 and attempts[1] >= 2  # one lost the swap and retried

    listing = subprocess.run(["git", "--git-dir", str(origin), "ls-tree", "-r", "--name-only",
                              STORE_REF], capture_output=True, text=True, check=True)  # fmt: skip
    assert {line.replace("/", "") for line in listing.stdout.split()} == {first, second}
    # The loser's local store follows origin's; the winner's is one behind until it fetches.
    both = {first: {"t::a"}, second: {"t::b"}}
    for runner in (one, two):
        repo = GitRepo(runner.path)
        advance_shared(repo, first, _baseline(runner, first, ["t::a"]), remote="origin")
        assert {c: read_shared(repo, c)[0].passing() for c in both} == both


def test_a_push_is_a_compare_and_swap_against_origin(
    fleet: tuple[Path, Sandbox, Sandbox, list[str]],
) -> None:
    origin, one, two, (first, second) = fleet
    repo_one, repo_two = GitRepo(one.path), GitRepo(two.path)
    advance_shared(repo_one, first, _baseline(one, first, ["t::a"]), remote="origin")
    published = repo_one.resolve_commit(STORE_REF)

    # Runner two never fetched: its swap against "no store yet" is refused by origin.
    local = advance_shared(repo_two, second, _baseline(two, second, ["t::b"]))
    assert not repo_two.push_ref("origin", STORE_REF, local.store_after, None)
    assert not repo_two.push_ref("origin", STORE_REF, local.store_after, "1" * 40)
    remote = subprocess.run(["git", "--git-dir", str(origin), "rev-parse", STORE_REF],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert remote == published  # unchanged by the refused swaps

    # Publishing from runner two carries its local entry along: nothing lost either way.
    advance_shared(repo_two, second, _baseline(two, second, ["t::b"]), remote="origin")
    assert set(store_entries(repo_two, repo_two.resolve_commit(STORE_REF))) == {first, second}
    remote = subprocess.run(["git", "--git-dir", str(origin), "rev-parse", STORE_REF],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert remote == repo_two.resolve_commit(STORE_REF)


# -- after the merge queue ------------------------------------------------------------


def _verdict(box: Sandbox, commit: str, passing: list[str], **change: object) -> dict:
    tree = box.git("rev-parse", f"{commit}^{{tree}}")
    baseline = json.loads(_baseline(box, commit, passing).dumps())
    return {"verdict": "accepted", "commit": commit, "tree": tree,
            "advanced": baseline, **change}  # fmt: skip


def test_an_advance_after_the_merge_stores_the_checked_baseline(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    first, second = _commits(box, 2)
    advance_after_merge(repo, _verdict(box, first, ["t::a"]))
    done = advance_after_merge(repo, _verdict(box, second, ["t::a", "t::b"]))
    assert done.commit == second and read_shared(repo, second)[0].passing() == {"t::a", "t::b"}


def test_an_advance_is_refused_unless_main_holds_exactly_the_tested_commit(box: Sandbox) -> None:
    repo = GitRepo(box.path)
    [merged] = _commits(box, 1)
    elsewhere = box.branch("elsewhere", {"x.txt": "x"})
    with pytest.raises(Refused, match="not on main"):
        advance_after_merge(repo, _verdict(box, elsewhere, ["t::a"]))
    with pytest.raises(Refused, match="not the tree the verdict tested"):
        advance_after_merge(repo, _verdict(box, merged, ["t::a"], tree="0" * 40))
    with pytest.raises(Refused, match="not accepted"):
        advance_after_merge(repo, _verdict(box, merged, ["t::a"], verdict="rejected"))
    with pytest.raises(UsageError):
        advance_after_merge(repo, {"verdict": "accepted"})
    assert repo.resolve_commit(STORE_REF) is None


def test_an_advance_that_would_lower_the_ratchet_is_refused(box: Sandbox) -> None:
    """Two merge groups checked against the same old baseline: the first to land adds
    t::b; the second's baseline, which fails t::b, may not overwrite that."""
    repo = GitRepo(box.path)
    first, second = _commits(box, 2)
    advance_after_merge(repo, _verdict(box, first, ["t::a", "t::b"]))
    with pytest.raises(Refused, match="would lower the ratchet: 1 test"):
        advance_after_merge(repo, _verdict(box, second, ["t::a"]))
    assert read_shared(repo, second)[0].commit == first


# -- the policy key, edited by a line ------------------------------------------------


@pytest.mark.parametrize(
    ("text", "table", "expected", "back"),
    [
        ("", ("evolution",), '[evolution]\nbaseline = "ref"\n', ""),
        ('[evolution]\nreruns = 2 # keep\n', ("evolution",),
         '[evolution]\nbaseline = "ref"\nreruns = 2 # keep\n', None),
        ('[evolution]\nbaseline = "file"\n[other]\nx = 1\n', ("evolution",),
         '[evolution]\nbaseline = "ref"\n[other]\nx = 1\n', "[other]\nx = 1\n"),
        ('[project]\nname = "p"\n', ("tool", "ratchet"),
         '[project]\nname = "p"\n\n[tool.ratchet]\nbaseline = "ref"\n', None),
        ('reruns = 1\n[x]\n', (), 'baseline = "ref"\nreruns = 1\n[x]\n', None),
    ],
)  # fmt: skip
def test_the_policy_key_is_set_by_a_line_edit(
    text: str, table: tuple, expected: str, back: str | None
) -> None:
    edited = set_key(text, table, "baseline", "ref")
    assert edited == expected
    # Back to "file", the default: the key goes, and a table that held only it.
    assert set_key(edited, table, "baseline", None) == (text if back is None else back)


def test_evolve_baseline_advance_publishes_a_verdict_s_baseline_to_origin(
    fleet: tuple[Path, Sandbox, Sandbox, list[str]], tmp_path: Path
) -> None:
    origin, one, _two, (_first, second) = fleet
    verdict = tmp_path / "verdict.json"
    verdict.write_text(json.dumps(_verdict(one, second, ["t::a"])))

    done = one.evolve("baseline", "advance", "--from", str(verdict), "--remote", "origin",
                      "--json")  # fmt: skip
    again = one.evolve("baseline", "advance", "--from", str(verdict), "--remote", "origin")

    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert (report["commit"], report["remote"], report["unchanged"]) == (second, "origin", False)
    remote = subprocess.run(["git", "--git-dir", str(origin), "rev-parse", STORE_REF],
                            capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    assert remote == report["store_after"]
    assert again.returncode == 0 and "nothing to do" in again.stdout

    verdict.write_text(json.dumps(_verdict(one, second, ["t::a"], verdict="rejected")))
    refused = one.evolve("baseline", "advance", "--from", str(verdict))
    assert refused.returncode == 1 and "not accepted" in refused.stderr + refused.stdout
    verdict.write_text("[]")
    assert one.evolve("baseline", "advance", "--from", str(verdict)).returncode == 2


def test_migrate_leaves_a_factory_s_policy_to_spec_md(box: Sandbox) -> None:
    """deploy/agent.toml rendered by the factory is not edited by hand (that is drift):
    migrate refuses until SPEC.md says the mode, then moves the baseline only."""
    head = box.head()
    text = Baseline(head, box.git("rev-parse", "HEAD^{tree}"), WHEN, {"t::a": "passed"}).dumps()
    box.commit("a factory deployment", {"deploy/MANIFEST.json": "{}\n",
                                        "deploy/agent.toml": "[evolution]\nreruns = 1\n",
                                        "baseline/baseline.json": text})  # fmt: skip
    repo = GitRepo(box.path)
    with pytest.raises(Refused, match="factory's output") as refused:
        migrate(repo, "ref")
    assert "SPEC.md" in refused.value.hint and repo.resolve_commit(STORE_REF) is None

    rebuilt = '[evolution]\nreruns = 1\nbaseline = "ref"\n'
    box.commit("SPEC.md says ref, rebuilt", {"deploy/agent.toml": rebuilt})
    moved = migrate(repo, "ref")
    assert moved.moved and moved.policy_file == ""
    assert read_shared(repo, box.head())[0].passing() == {"t::a"}
    assert box.git("show", "main:deploy/agent.toml").endswith('baseline = "ref"')
