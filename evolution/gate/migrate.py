"""`evolve baseline migrate --to file|ref`: move main's baseline between the file in the
tree and the shared store, either way, in one commit on main.

The commit sets the policy's `baseline` key in the file main's policy is read from (or
removes it, going back to the default "file"; a policy file that held nothing else goes
with it) and removes or restores `baseline/baseline.json`, so that the policy and the
baseline's place change together. Going to the store, the baseline is stored under that
commit before main moves to it. The same baseline moves, byte for byte. Main moves by
compare-and-swap and never under a dirty checkout; run twice, the second does nothing.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from typing import Any

from agent.config import CONFIG_PATH
from agent.errors import Refused, UsageError
from agent.tomllines import KeyLines
from evolution.baseline import (
    BASELINE_PATH,
    FILE,
    REF,
    STORE_REF,
    read_baseline,
)
from evolution.gate.landing import land, refuse_dirty_main
from evolution.gate.lock import exclusive
from evolution.gate.shared import advance_shared
from evolution.gitrepo import GitRepo
from evolution.policy import load_policy
from evolution.trail.write import baseline_moved_message

KEY = "baseline"
# Where each file that can hold the policy keeps its keys (the table, () the top level).
POLICY_TABLES = {CONFIG_PATH: ("evolution",), "pyproject.toml": ("tool", "ratchet"),
                 "ratchet.toml": ()}  # fmt: skip
FACTORY_MANIFEST = "deploy/MANIFEST.json"


@dataclass
class Migration:
    to: str  # "file" or "ref"
    main_before: str
    main_after: str
    moved: bool  # False: the baseline was there already
    policy_file: str = ""  # the policy file changed ("" none)
    passing: int = 0
    store: str = ""  # the store commit holding it (to "ref")

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def migrate(repo: GitRepo, to: str, *, main: str | None = None, wait: bool = False) -> Migration:
    if to not in (FILE, REF):
        raise UsageError(f"--to takes {FILE} or {REF}, not {to!r}")
    with exclusive(repo, wait=wait):
        main_ref, head = repo.resolve_main(main)
        refuse_dirty_main(repo, main_ref, "the migration commits to main",
                          "commit or stash them, then run the same command again")  # fmt: skip
        policy = load_policy(repo, head)
        in_tree = repo.blob_id(head, BASELINE_PATH) is not None
        other = REF if policy.baseline == FILE else FILE
        found = read_baseline(repo, head, policy.baseline) or read_baseline(repo, head, other)
        if found is None:
            raise UsageError(f"main ({head[:10]}) has no baseline to move",
                             hint="record one first: evolve baseline record")  # fmt: skip
        baseline, blob = found
        passing = len(baseline.passing())
        if policy.baseline == to and in_tree == (to == FILE) and read_baseline(repo, head, to):
            return Migration(to, head, head, moved=False, passing=passing)
        path = policy.source.split("@", 1)[0] if "@" in policy.source else CONFIG_PATH
        put, drop = _policy_edit(repo, head, path, to) if policy.baseline != to else ({}, [])
        if to == REF:
            drop.append(BASELINE_PATH)
        else:
            put[BASELINE_PATH] = blob  # the very bytes stored
        tree = repo.edit_tree(repo.tree_of(head), put, drop)
        where = STORE_REF if to == REF else BASELINE_PATH
        message = baseline_moved_message(tree=baseline.tree, passing=passing,
                                         flaky=baseline.flaky, where=where)  # fmt: skip
        commit = repo.commit_tree(tree, [head], message)
        store = ""
        if to == REF:
            store = advance_shared(repo, commit, baseline, message=message).store_after
        landing = land(repo, main_ref, head, commit, f"evolve: baseline to {where}")
        if not landing.moved:
            raise Refused(landing.refused or "main moved during the migration; run it again")
        changed = path if path in put or path in drop else ""
        return Migration(to, head, commit, True, changed, passing, store)


def _policy_edit(repo: GitRepo, head: str, path: str, to: str) -> tuple[dict[str, str], list[str]]:
    """The tree edit that sets `baseline = "ref"` (or drops the key: "file" is the
    default) in the policy file `path`, every other byte kept."""
    table = POLICY_TABLES.get(path)
    if table is None:
        raise UsageError(f"the policy is read from {path}, which migrate does not know how to edit")
    if path.startswith("deploy/") and repo.read_file(head, FACTORY_MANIFEST) is not None:
        raise Refused(
            f"{path} is the factory's output, and a hand-edit there is drift",
            hint=f'set {KEY} = "{to}" in SPEC.md\'s [evolution], rebuild deploy/ and commit '
            "it, then run the same command again: it moves the baseline only",
        )
    raw = repo.read_file(head, path)
    text = raw.decode("utf-8") if raw is not None else ""
    edited = set_key(text, table, KEY, to if to != FILE else None)
    if not _holds_anything(edited):
        return {}, [path]
    return {path: repo.hash_blob(edited.encode("utf-8"))}, []


def set_key(text: str, table: tuple[str, ...], key: str, value: str | None) -> str:
    """`text` with `key` of `table` set to the string `value` (None: the key removed), by
    a line edit: every other line is kept as it was."""
    lines = text.splitlines(keepends=True)
    where = KeyLines().scan([line.rstrip("\n") for line in lines]).where
    line = f'{key} = "{value}"\n'
    at = where.get((*table, key))
    if at is not None and value is None and table and _alone(lines, where[table], at):
        # The key was all the table held (migrate wrote both): the header goes too,
        # with the blank line written before it.
        start = where[table] - 1
        start -= start > 0 and not lines[start - 1].strip() and start == len(lines) - 2
        del lines[start:at]
    elif at is not None:
        lines[at - 1 : at] = [line] if value is not None else []
    elif value is not None and not table:
        lines.insert(0, line)
    elif value is not None and table in where:
        lines.insert(where[table], line)  # just below the table's header
    elif value is not None:
        tail = "" if not text or text.endswith("\n") else "\n"
        gap = "\n" if text.strip() else ""
        lines.append(f"{tail}{gap}[{'.'.join(table)}]\n{line}")
    edited = "".join(lines)
    tomllib.loads(edited)  # a line edit that broke the file is a bug: fail loudly here
    return edited


def _alone(lines: list[str], header: int, key: int) -> bool:
    """Whether the line `key` (1-based) is the only content of the table whose header is
    on line `header`, up to the next header or the end."""
    after = [line.strip() for line in lines[key:]]
    body = [text for text in lines[header : key - 1] if text.strip()]
    rest = after[: next((i for i, text in enumerate(after) if text.startswith("[")), len(after))]
    return not body and not any(rest)


def _holds_anything(text: str) -> bool:
    """Whether a policy file says anything but empty table headers."""
    return any(line.strip() and not line.strip().startswith("[") for line in text.splitlines())
