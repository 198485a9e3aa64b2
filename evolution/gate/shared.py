"""The shared baseline's one writer: `refs/notes/ratchet`, advanced by compare-and-swap.

Where the policy says `baseline = "ref"`, main's baseline is not a file in the tree but
an entry of the store (evolution.baseline reads it): a notes ref, one baseline per
commit. Git notes have no compare-and-swap of their own (`git notes add` moves the ref
to whatever it built, over a concurrent writer's note), so the store is written here by
plumbing instead: a new notes commit on top of the one read, then `git update-ref REF
NEW OLD`, which moves the ref only if it still points at OLD. On a remote the same
swap is `git push --force-with-lease=REF:OLD`, the remote's ref fetched first.

A writer that loses the race re-reads the store and applies its entry again, a bounded
number of times. Entries are keyed by commit, so two runners advancing at the same
moment both land, one after a retry: nothing is lost. Entries written locally and not
yet published are carried into the next published commit (as its second parent).

Who may write the ref is the trust boundary: see docs/how-to/shared-baseline.md.
"""

from __future__ import annotations

import json
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from agent.errors import EnvironmentFailure, Refused, UsageError
from evolution.baseline import STORE_REF, Baseline, read_shared, store_path
from evolution.gitrepo import GitRepo
from evolution.ratchet import lost

ATTEMPTS = 8  # compare-and-swaps tried before giving up (each after re-reading)
TRACKING = "refs/ratchet/remotes/{remote}"  # where a remote's store is fetched to

# Called with the store commit about to be swapped out (None: no store yet) and the
# store's baseline nearest to the commit being advanced in it; raises to refuse.
Guard = Callable[[Baseline | None], None]


@dataclass
class Advance:
    commit: str  # the commit whose baseline the store now holds
    store_before: str  # the store commit swapped out ("" for none)
    store_after: str
    attempts: int = 1  # 1: no race lost
    remote: str = ""  # where it was published as well
    unchanged: bool = False  # the store already held exactly this baseline there

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _tracking(remote: str) -> str:
    return TRACKING.format(remote=remote)


def advance_shared(
    repo: GitRepo,
    commit: str,
    baseline: Baseline,
    *,
    message: str = "",
    remote: str | None = None,
    guard: Guard | None = None,
    attempts: int = ATTEMPTS,
    before_swap: Callable[[int], None] | None = None,
) -> Advance:
    """Store `baseline` as `commit`'s in the shared store, by compare-and-swap, retried
    on a lost race after re-reading; with `remote`, published there by the same swap.
    `before_swap(attempt)` runs just before each swap (a test's interleaving hook)."""
    blob = repo.hash_blob(baseline.dumps().encode())
    message = message or f"evolve: baseline of {commit[:12]} ({len(baseline.passing())} passing)"
    for attempt in range(1, attempts + 1):
        local = repo.resolve_commit(STORE_REF)
        base = repo.fetch_ref(remote, STORE_REF, _tracking(remote)) if remote else local
        if guard is not None:
            found = read_shared(repo, commit, base) if base else None
            guard(found[0] if found else None)
        put, drop, parents = _changes(repo, commit, blob, base, local if remote else None)
        if not put:
            if _follow(repo, local, base):
                return Advance(commit, local or "", base or "", attempt, remote or "", True)
            continue
        tree = repo.edit_tree(repo.tree_of(base) if base else None, put, drop)
        new = repo.commit_tree(tree, parents, message)
        if before_swap is not None:
            before_swap(attempt)
        if remote and not repo.push_ref(remote, STORE_REF, new, base):
            _back_off(attempt)
            continue
        if repo.update_ref(STORE_REF, new, local, f"evolve: baseline of {commit[:12]}"):
            return Advance(commit, (base if remote else local) or "", new, attempt, remote or "")
        _back_off(attempt)  # published (with a remote) but the local ref moved: merge it in
    raise EnvironmentFailure(
        f"{STORE_REF} kept moving: {attempts} compare-and-swaps lost in a row; the baseline "
        f"of {commit[:12]} was not stored (run the same command again)"
    )


def _changes(
    repo: GitRepo, commit: str, blob: str, base: str | None, unpublished: str | None
) -> tuple[dict[str, str], list[str], list[str]]:
    """The edit of the store commit `base` that files `blob` under `commit` (paths to
    put, to drop) and the new commit's parents; with `unpublished` (the local store, when
    publishing to a remote), its entries the remote lacks are carried along."""
    held = {path.replace("/", ""): (path, sha) for path, sha in
            (repo.blobs_in(base).items() if base else ())}  # fmt: skip
    put: dict[str, str] = {}
    drop: list[str] = []
    parents = [base] if base else []
    if (
        unpublished
        and unpublished != base
        and (base is None or not repo.is_ancestor(unpublished, base))
    ):
        for path, sha in repo.blobs_in(unpublished).items():
            if path.replace("/", "") not in held:
                put[store_path(path.replace("/", ""))] = sha
        parents.append(unpublished)
    if held.get(commit, ("", ""))[1] != blob:
        put[store_path(commit)] = blob
        if commit in held and held[commit][0] != store_path(commit):
            drop.append(held[commit][0])  # the same commit under another fan-out
    return put, drop, parents


def _follow(repo: GitRepo, local: str | None, base: str | None) -> bool:
    """Bring the local store ref up to the remote's when it is behind; False when the
    local ref moved meanwhile (try again)."""
    if base is None or local == base:
        return True
    return repo.update_ref(STORE_REF, base, local, "evolve: follow the shared baseline")


def _back_off(attempt: int) -> None:
    """A short random pause, longer after each loss, so that racers spread out."""
    time.sleep(random.uniform(0, 0.02 * attempt))


def no_lowering(commit: str, baseline: Baseline) -> Guard:
    """A guard refusing to store a baseline that drops a test the store's nearest one
    has passing (the other runner's advance this one did not see, for one)."""

    def check(previous: Baseline | None) -> None:
        dropped = lost(previous, baseline)
        if dropped:
            shown = ", ".join(dropped[:10]) + (" …" if len(dropped) > 10 else "")
            raise Refused(
                f"the baseline of {commit[:12]} would lower the ratchet: {len(dropped)} "
                f"test(s) pass in the stored baseline it descends from but not in it: {shown}",
                hint="the merged commit broke them (a merge group tested before another "
                "landed?): fix them on main; the stored baseline still demands them",
            )

    return check


def advance_after_merge(
    repo: GitRepo,
    verdict: Mapping[str, Any],
    *,
    main: str | None = None,
    remote: str | None = None,
    before_swap: Callable[[int], None] | None = None,
) -> Advance:
    """Store the baseline an accepted check advanced, once the queue has merged exactly
    the tested commit: `verdict` is what `evolve check --json` printed (whole or
    combined): `verdict` ("accepted"), `commit`, `tree` and `advanced` (the base's
    baseline advanced by the check, as the file holds one)."""
    if verdict.get("verdict") != "accepted":
        shown = verdict.get("verdict")
        raise Refused(f"the verdict is {shown!r}, not accepted: nothing to advance")
    commit, tree = str(verdict.get("commit", "")), str(verdict.get("tree", ""))
    if not isinstance(verdict.get("advanced"), dict) or not commit or not tree:
        raise UsageError(
            "a verdict to advance from needs commit, tree and advanced",
            hint="give the JSON `evolve check --json` printed for the whole suite or --combine",
        )
    full = repo.resolve_commit(commit)
    if full is None:
        raise UsageError(f"no commit {commit[:12]} here", hint="fetch it first")
    baseline = Baseline.loads(json.dumps(verdict["advanced"]), f"the verdict of {commit[:12]}")
    main_ref, head = repo.resolve_main(main)
    if repo.tree_of(full) != tree or baseline.tree != tree:
        raise Refused(f"{commit[:12]} is not the tree the verdict tested ({tree[:12]})")
    if full not in repo.first_parents(head):
        raise Refused(
            f"{commit[:12]} is not on {main_ref.removeprefix('refs/heads/')}: advance only "
            "after the queue merged exactly the tested commit",
        )
    return advance_shared(repo, full, baseline, remote=remote,
                          guard=no_lowering(full, baseline), before_swap=before_swap)  # fmt: skip
