"""The map from the tree's source files to the tests that ran them, kept for a staged
verdict (the format's one owner).

An accepted full run may record, for each test, the tree's files its code ran in (the
probe reports them over its channel: a sys.monitoring tool of its own on Python 3.12
and later, the C profiler before; file-level, since a change is a set of files, where
pytest-cov's `--cov-context=test` and testmon keep lines). The map then says,
for a candidate, which tests can see its change: those that ran a file it changes,
those in test files it changes, and every baseline test the map has never seen. The gate
runs those first; a confirmed regression there rejects at once (`evolution.gate.staged`).

The map is advice about speed, never about the verdict: a wrong, stale or missing map
can only mean a later rejection. It lives in the gate's state, which no test run can
write, and is refreshed by `baseline record` and by any full run that passes the
ratchet once it is `REFRESH_COMMITS` commits old: by file, as testmon updates its map by
line, only the tests a change since the last map can have moved are mapped again.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from agent.atomicio import atomic_write_text
from evolution.gitrepo import GitRepo
from evolution.run.launch import MapRequest

MAP_FILE = "testmap.json"
REFRESH_COMMITS = 20  # a full run that passes refreshes a map this old
MAX_COMMITS = 60  # a map older than this is not used
VERSION = 1


@dataclass
class CoverageMap:
    commit: str  # the commit whose run the map was taken from
    recorded_at: str
    tests: frozenset[str]  # every test that run had
    covers: dict[str, frozenset[str]] = field(default_factory=dict)  # file -> tests

    def to_json(self) -> dict[str, Any]:
        return {
            "version": VERSION,
            "commit": self.commit,
            "recorded_at": self.recorded_at,
            "tests": sorted(self.tests),
            "covers": {path: sorted(tests) for path, tests in sorted(self.covers.items())},
        }

    def first_tests(self, changed: list[str], protected: set[str]) -> list[str]:
        """Of the `protected` tests (those that can regress), the ones a change to
        `changed` can affect: they ran a changed file, sit in a changed test file, or
        the map has never seen them."""
        changed_set = set(changed)
        chosen = {t for path in changed for t in self.covers.get(path, ())}
        chosen |= {t for t in protected if t.split("::", 1)[0] in changed_set}
        chosen |= protected - self.tests
        return sorted(chosen & protected)


@dataclass(frozen=True)
class MapState:
    """What the gate knows about the map for one candidate, for its report."""

    found: CoverageMap | None
    age_commits: int | None  # None: no map, or one not from the candidate's history
    refresh: bool  # collect a new one on this run's full pass

    @property
    def usable(self) -> CoverageMap | None:
        ok = self.age_commits is not None and self.age_commits <= MAX_COMMITS
        return self.found if ok else None

    def describe(self) -> str:
        if self.found is None:
            return "no map"
        if self.age_commits is None:
            return "a map not from main's history"
        plural = "s" if self.age_commits != 1 else ""
        stale = ", too old to use" if self.usable is None else ""
        return f"map {self.age_commits} commit{plural} old{stale}"


def load(repo: GitRepo) -> CoverageMap | None:
    """The stored map, or None when there is none or it cannot be read (advisory)."""
    try:
        data = json.loads((repo.state_dir / MAP_FILE).read_text(encoding="utf-8"))
        if data.get("version") != VERSION:
            return None
        return CoverageMap(
            commit=str(data["commit"]),
            recorded_at=str(data["recorded_at"]),
            tests=frozenset(str(t) for t in data["tests"]),
            covers={str(p): frozenset(str(t) for t in ts) for p, ts in data["covers"].items()},
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def save(repo: GitRepo, test_map: CoverageMap) -> None:
    atomic_write_text(repo.state_dir_ready() / MAP_FILE, json.dumps(test_map.to_json()))


def state(repo: GitRepo, commit: str) -> MapState:
    """Whether the stored map can serve a candidate at `commit`, and whether this run
    should refresh it."""
    test_map = load(repo)
    if test_map is None or repo.resolve_commit(test_map.commit) is None:
        return MapState(None, None, refresh=True)
    if not repo.is_ancestor(test_map.commit, commit):
        return MapState(test_map, None, refresh=True)
    age = repo.count_commits(test_map.commit, commit)
    return MapState(test_map, age, refresh=age >= REFRESH_COMMITS)


@dataclass(frozen=True)
class Refresh:
    """A run that refreshes the map: what it asks the probe for, and the older map whose
    entries carry over for the tests it does not map."""

    request: MapRequest
    old: CoverageMap | None = None

    def updated(
        self, covers: dict[str, set[str]] | None, commit: str, tests: set[str], when: str
    ) -> CoverageMap | None:
        """The map after the run: each mapped test's files as the run saw them, each
        other test's as the older map holds them (only tests the run had); None when
        the probe sent no map and there is nothing to carry over."""
        if covers is None and not self.request.known:
            return None
        merged = {path: set(found) for path, found in (covers or {}).items()}
        kept = self.request.known & tests
        for path, found in (self.old.covers.items() if self.old and kept else ()):
            if found & kept:
                merged.setdefault(path, set()).update(found & kept)
        return from_run(merged, commit, tests, when)


def from_run(covers: dict[str, set[str]], commit: str, tests: set[str], when: str) -> CoverageMap:
    return CoverageMap(
        commit=commit,
        recorded_at=when,
        tests=frozenset(tests),
        covers={path: frozenset(found & tests) for path, found in covers.items() if found & tests},
    )


def refresh(repo: GitRepo, map_state: MapState, commit: str) -> Refresh:
    """How a run of `commit` refreshes the map: with a map from its history, only the
    tests a change since may have moved are mapped again (those the map does not know,
    those that ran a changed file or sit in a changed test file, those under a changed
    conftest.py); the others keep their entries, since they ran the same code. Without
    one (`map_state`: the stored map's, for `commit`), every test is mapped."""
    found = map_state.found
    if found is None or map_state.age_commits is None:
        return Refresh(MapRequest())
    changed = repo.paths_between(found.commit, commit)
    moved = set(found.first_tests(changed, set(found.tests)))
    for path in changed:
        if path == "conftest.py" or path.endswith("/conftest.py"):
            folder = path[: -len("conftest.py")]
            moved |= {t for t in found.tests if t.startswith(folder)}
    return Refresh(MapRequest(frozenset(found.tests - moved)), found)
