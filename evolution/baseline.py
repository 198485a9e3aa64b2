"""The stored baseline: each test's outcome on main, and the tests quarantined as flaky.

By default it lives in the repository (`baseline/baseline.json`) so that it moves with
main and is read from main's commit. The file is written one test per line, sorted, so
that its diffs read well and concurrent updates rarely conflict.

Where the policy says `baseline = "ref"`, it lives outside the tree instead, for many
runners to share: in the notes ref `refs/notes/ratchet`, one baseline per commit, keyed
by the commit it describes (the notes layout, so `git notes --ref=ratchet show C` reads
one). A commit's baseline is then its nearest first-parent ancestor's (itself included)
that has one. The policy at a commit says where that commit's baseline is. Writing the
store, by compare-and-swap, is evolution.gate.shared's.

A quarantine entry is the evidence that a test is flaky: when it was seen (`seen`), on
which commit and tree (`commit`, `tree`), the outcomes of its first run and re-runs
(`outcomes`, with the counts `passed` of `runs` re-runs) and the first line of its
failure, and until when it excuses anything (`expires`). An entry written before
entries carried an expiry (no `expires`) expires its policy's quarantine length after
it was seen; one that says neither when it was seen nor when it expires excuses nothing.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from agent.errors import EnvironmentFailure, UsageError
from evolution.policy import load_policy

if TYPE_CHECKING:
    from evolution.gitrepo import GitRepo

BASELINE_PATH = "baseline/baseline.json"
STORE_REF = "refs/notes/ratchet"  # the shared store, when the policy says "ref"
FILE, REF = "file", "ref"  # the policy's `baseline` modes
SCHEMA = 1
PASSED = "passed"
OUTCOMES = frozenset({"passed", "failed", "error", "skipped", "xfailed", "xpassed", "rerun"})
BROKEN = frozenset({"failed", "error"})
QUARANTINE_DAYS = 30  # how long a quarantine entry excuses failures, by default


def _instant(value: object) -> datetime | None:
    """An ISO 8601 timestamp with its offset, as the gate writes them; None otherwise."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def expiry(evidence: dict[str, Any], days: int = QUARANTINE_DAYS) -> datetime | None:
    """When a quarantine entry stops excusing failures: its `expires`, else (an entry
    written before entries carried one) `days` after it was `seen`; None when it says
    neither, and then it excuses nothing."""
    stated = _instant(evidence.get("expires"))
    if stated is not None:
        return stated
    seen = _instant(evidence.get("seen"))
    return seen + timedelta(days=days) if seen is not None else None


def quarantined(evidence: dict[str, Any], when: str, days: int = QUARANTINE_DAYS) -> dict[str, Any]:
    """`evidence` as a new quarantine entry made at `when`: it expires `days` later."""
    start = _instant(when) or _instant(evidence.get("seen"))
    if start is None:
        raise ValueError(f"a quarantine entry needs a timestamp, not {when!r}")
    return {**evidence, "expires": (start + timedelta(days=days)).isoformat(timespec="seconds")}


@dataclass
class Baseline:
    commit: str
    tree: str
    recorded_at: str
    tests: dict[str, str]
    flaky: dict[str, dict[str, Any]] = field(default_factory=dict)

    def passing(self) -> set[str]:
        """The ratchet: every one of these must exist and pass in any accepted tree."""
        return {nodeid for nodeid, outcome in self.tests.items() if outcome == PASSED}

    def broken(self) -> dict[str, str]:
        """The tests a proposal is asked to make pass. Not every test that does not pass:
        a skipped or xfailed one is not broken (more-itertools skips a test written for
        Python 3.8 on newer ones), and a repair that waited for it to pass never came."""
        return {nodeid: outcome for nodeid, outcome in sorted(self.tests.items())
                if outcome in BROKEN}

    def excuses(self, nodeid: str, now: str, days: int = QUARANTINE_DAYS) -> bool:
        """Whether `nodeid` is quarantined at `now`: it has an entry, and the entry has not
        expired (an entry whose expiry cannot be told has)."""
        evidence = self.flaky.get(nodeid)
        if evidence is None:
            return False
        ends, moment = expiry(evidence, days), _instant(now)
        return ends is not None and moment is not None and moment < ends

    def live_quarantine(self, now: str, days: int = QUARANTINE_DAYS) -> dict[str, dict[str, Any]]:
        """The quarantine entries that still excuse failures at `now`."""
        return {n: e for n, e in self.flaky.items() if self.excuses(n, now, days)}

    def only(self, nodeids: Iterable[str]) -> Baseline:
        """This baseline narrowed to some tests: what a run of only those is held to."""
        keep = set(nodeids)
        return Baseline(
            self.commit, self.tree, self.recorded_at,
            {n: o for n, o in self.tests.items() if n in keep},
            {n: e for n, e in self.flaky.items() if n in keep},
        )  # fmt: skip

    def counts(self) -> dict[str, int]:
        return dict(sorted(Counter(self.tests.values()).items()))

    def dumps(self) -> str:
        """Canonical text: same content, same bytes."""
        head = {
            "schema": SCHEMA,
            "commit": self.commit,
            "tree": self.tree,
            "recorded_at": self.recorded_at,
            "counts": self.counts(),
        }
        lines = ["{"]
        for key, value in head.items():
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, sort_keys=True)},")
        lines.append(_block("tests", self.tests) + ",")
        lines.append(_block("flaky", self.flaky))
        lines.append("}")
        return "\n".join(lines) + "\n"

    @classmethod
    def loads(cls, text: str, origin: str) -> Baseline:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise EnvironmentFailure(f"{origin}: baseline is not valid JSON ({exc})") from None
        if not isinstance(data, dict) or data.get("schema") != SCHEMA:
            raise EnvironmentFailure(
                f"{origin}: unsupported baseline schema {data.get('schema')!r}"
                if isinstance(data, dict)
                else f"{origin}: baseline must be a JSON object"
            )
        tests = data.get("tests")
        flaky = data.get("flaky", {})
        if not isinstance(tests, dict) or not isinstance(flaky, dict):
            raise EnvironmentFailure(f"{origin}: baseline needs 'tests' and 'flaky' objects")
        if not all(isinstance(evidence, dict) for evidence in flaky.values()):
            raise EnvironmentFailure(f"{origin}: each flaky entry must be an object of evidence")
        for nodeid, evidence in sorted(flaky.items()):
            if "expires" in evidence and _instant(evidence["expires"]) is None:
                raise EnvironmentFailure(
                    f"{origin}: the flaky entry of {nodeid} expires at "
                    f"{evidence['expires']!r}, not an ISO 8601 time with its offset"
                )
        unknown = sorted({str(v) for v in tests.values()} - OUTCOMES)
        if unknown:
            raise EnvironmentFailure(f"{origin}: unknown outcomes in baseline: {unknown}")
        return cls(
            commit=str(data.get("commit", "")),
            tree=str(data.get("tree", "")),
            recorded_at=str(data.get("recorded_at", "")),
            tests=dict(tests),
            flaky=dict(flaky),
        )


def _block(name: str, items: dict[str, Any]) -> str:
    if not items:
        return f"  {json.dumps(name)}: {{}}"
    body = ",\n".join(
        f"    {json.dumps(key)}: {json.dumps(items[key], sort_keys=True)}" for key in sorted(items)
    )
    return f"  {json.dumps(name)}: {{\n{body}\n  }}"


def mode_at(repo: GitRepo, commit: str) -> str:
    """Where `commit`'s baseline is kept: "file" or "ref", as the policy there says."""
    return load_policy(repo, commit).baseline


def read_baseline(
    repo: GitRepo, commit: str, mode: str | None = None
) -> tuple[Baseline, str] | None:
    """The baseline of `commit` and its blob id, or None when there is none: the file
    committed there, or (mode "ref") the shared store's nearest to it."""
    if (mode or mode_at(repo, commit)) == REF:
        return read_shared(repo, commit)
    blob = repo.blob_id(commit, BASELINE_PATH)
    raw = repo.read_file(commit, BASELINE_PATH)
    if blob is None or raw is None:
        return None
    text = raw.decode("utf-8", errors="replace")
    return Baseline.loads(text, f"{BASELINE_PATH}@{commit[:10]}"), blob


def require_baseline(
    repo: GitRepo, commit: str, mode: str | None = None
) -> tuple[Baseline, str]:
    mode = mode or mode_at(repo, commit)
    found = read_baseline(repo, commit, mode)
    if found is None:
        where = f"{STORE_REF} holds no baseline for it or its ancestors" if mode == REF \
            else f"it has no {BASELINE_PATH}"  # fmt: skip
        raise UsageError(
            f"main ({commit[:10]}): {where}",
            hint="record one first: evolve baseline record"
            + (" (or evolve baseline migrate --to ref)" if mode == REF else ""),
        )
    return found


def store_path(commit: str) -> str:
    """Where the store keeps `commit`'s baseline: the notes layout, one level of fan-out."""
    return f"{commit[:2]}/{commit[2:]}"


def store_entries(repo: GitRepo, store: str | None) -> dict[str, str]:
    """{commit: blob id} of every baseline in the store commit `store` (None: empty),
    whatever fan-out wrote it (`git notes` itself may)."""
    if store is None:
        return {}
    return {path.replace("/", ""): blob for path, blob in repo.blobs_in(store).items()}


def nearest_entry(repo: GitRepo, commit: str, store: str | None = None) -> tuple[str, str] | None:
    """(commit, blob id) of the store's baseline nearest to `commit`: its own, else its
    nearest first-parent ancestor's; `store` defaults to the store ref's commit."""
    entries = store_entries(repo, store or repo.resolve_commit(STORE_REF))
    if entries:
        for ancestor in repo.first_parents(commit):
            if ancestor in entries:
                return ancestor, entries[ancestor]
    return None


def read_shared(
    repo: GitRepo, commit: str, store: str | None = None
) -> tuple[Baseline, str] | None:
    """The shared store's baseline for `commit` (its nearest ancestor's) and its blob id."""
    found = nearest_entry(repo, commit, store)
    if found is None:
        return None
    key, blob = found
    raw = repo.read_blob(blob)
    origin = f"{STORE_REF}:{key[:10]}"
    if raw is None:
        raise EnvironmentFailure(f"{origin}: the baseline's blob {blob[:10]} is missing")
    baseline = Baseline.loads(raw.decode("utf-8", errors="replace"), origin)
    known = bool(baseline.commit) and repo.resolve_commit(baseline.commit) is not None
    if known and not repo.is_ancestor(baseline.commit, key):
        # A baseline describes its key or a commit before it (the merge a gate commit
        # sits on); one about another history was filed under the wrong commit. (A
        # shallow clone may lack the commit it names: nothing to compare with then.)
        raise EnvironmentFailure(
            f"{origin}: the baseline there describes {baseline.commit[:10]}, which is not "
            f"{key[:10]} nor an ancestor of it"
        )
    return baseline, blob
