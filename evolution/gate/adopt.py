"""`evolve init`: put an existing repository with a pytest suite under the ratchet.

In one step, each part skipped when it is done already (so a second run has nothing to
do, and a run that stopped half way is finished by the next):

1. a minimal policy where a Python project keeps its tools' settings, `[tool.ratchet]`
   in pyproject.toml (ratchet.toml without one), unless main holds a policy already;
   `runs/` ignored; the CI file asked for (`--ci`); all in one commit on main whose
   message says what it is. Nothing the gate reads may come from a working tree, so
   the commit is built from main's commit by plumbing and main moves by
   compare-and-swap, its checkout following as after a gate commit;
2. the baseline, recorded on that commit (`evolve baseline record`);
3. the hooks (`evolve hooks install`).

pyproject.toml is extended as text, never rewritten (tomllib only reads): the new table
is appended after the file's last byte, and the result is parsed again to prove every
other table reads as before. A dirty checkout is refused before anything is written: a
commit made under uncommitted changes would leave them looking like a revert of it.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import asdict, dataclass, field
from typing import Any

from agent.errors import Refused, UsageError
from evolution.baseline import read_baseline
from evolution.ci import NAMES, TARGETS, template
from evolution.gate import hooks
from evolution.gate.landing import land, main_checkout
from evolution.gate.record import record
from evolution.gitrepo import GitRepo
from evolution.policy import (
    PYPROJECT,
    RATCHET_TOML,
    Committed,
    Place,
    committed_policy,
    load_policy,
    parse_policy,
)
from evolution.run.launch import ProgressCallback

IGNORED = "runs/"  # the telemetry the gate and the agent write in the checkout
# Top-level folders and modules that are not the project's code.
NOT_CODE = ("test", "tests", "testing", "doc", "docs", "example", "examples", "benchmarks")
NOT_CODE_MODULES = ("setup.py", "conftest.py", "noxfile.py")


@dataclass
class Action:
    """One thing `evolve init` does: write a file, commit, record, install.

    status: "planned" (a dry run), "done" (by this run) or "already" (nothing to do)."""

    action: str  # append | write | commit | record | hooks; policy | ci (found on main)
    target: str  # a path, main's branch, or what is installed
    detail: str = ""  # the text written, the commit message, a summary
    status: str = "planned"


@dataclass
class InitReport:
    main: str
    main_before: str
    dry_run: bool
    policy: str  # where main holds the policy: `pyproject.toml [tool.ratchet]`
    actions: list[Action] = field(default_factory=list)
    main_after: str = ""
    commit: str = ""  # the commit of the policy and the files, when this run made one
    baseline: dict[str, Any] | None = None
    hooks: dict[str, Any] | None = None

    @property
    def changed(self) -> bool:
        return any(a.status == "done" for a in self.actions)

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "changed": self.changed}


def init(
    repo: GitRepo,
    *,
    main: str | None = None,
    ci: str | None = None,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
) -> InitReport:
    if ci is not None and ci not in TARGETS:
        raise UsageError(f"--ci takes {' or '.join(TARGETS)}, not {ci!r}")
    main_ref, head = repo.resolve_main(main)
    paths = repo.files_in(head)
    if not any(_is_test_file(path) for path in paths):
        raise UsageError(
            f"no pytest suite on {main_ref.removeprefix('refs/heads/')} ({head[:10]}): "
            "no test_*.py or *_test.py file is committed",
            hint="evolve init puts an existing suite under the ratchet: commit the tests first",
        )
    found = committed_policy(repo, head)
    if found is not None:
        load_policy(repo, head)  # a bad policy on main stops here, naming file and key
    writes, actions = _files(repo, head, paths, found, ci)
    report = InitReport(
        main=main_ref.removeprefix("refs/heads/"), main_before=head, dry_run=dry_run,
        policy=found.place.shown if found else _planned_place(writes).shown, actions=actions,
    )  # fmt: skip
    message = _message(actions) if writes else ""
    if writes:
        actions.append(Action("commit", report.main, message))
    record_needed = bool(writes) or read_baseline(repo, head) is None
    actions.append(Action("record", "baseline/baseline.json",
                          "" if record_needed else "recorded on main",
                          "planned" if record_needed else "already"))  # fmt: skip
    missing = hooks.pending(repo)
    actions.append(Action("hooks", ", ".join(missing or hooks.HOOKS),
                          "" if missing else "installed",
                          "planned" if missing else "already"))  # fmt: skip
    if writes or record_needed:
        _require_clean(repo, main_ref, head, writes)
    report.main_after = head
    if dry_run:
        return report
    if writes:
        report.commit = report.main_after = _commit(repo, main_ref, head, writes, message)
        for action in actions:
            if action.action in ("append", "write"):
                action.status = "done"
        _finish(actions, "commit", f"{report.commit[:10]} {message.splitlines()[0]}")
    if record_needed:
        recorded = record(repo, main=report.main, progress=progress)
        report.baseline, report.main_after = recorded.to_json(), recorded.commit
        _finish(actions, "record", f"{recorded.passing_after} passing at {recorded.commit[:10]}")
    if missing:
        report.hooks = hooks.install(repo)
        _finish(actions, "hooks", f"{report.hooks['mode']}: {report.hooks['path']}")
    return report


def _finish(actions: list[Action], kind: str, detail: str) -> None:
    for action in actions:
        if action.action == kind:
            action.status, action.detail = "done", detail


def _is_test_file(path: str) -> bool:
    name = path.rsplit("/", 1)[-1]
    return name.endswith(".py") and (name.startswith("test_") or name.endswith("_test.py"))


# -- what to write ------------------------------------------------------------------------


def _files(
    repo: GitRepo, head: str, paths: list[str], found: Committed | None, ci: str | None
) -> tuple[dict[str, bytes], list[Action]]:
    """The files to commit (path: new bytes) and the actions that say so."""
    writes: dict[str, bytes] = {}
    actions: list[Action] = []
    if found is None:
        pyproject = repo.read_file(head, PYPROJECT.path)
        table = policy_table(evolvable(paths))
        if pyproject is not None:
            writes[PYPROJECT.path] = append_table(pyproject, table)
            actions.append(Action("append", PYPROJECT.path, table))
        else:
            writes[RATCHET_TOML.path] = table.split("\n", 1)[1].encode()  # no header
            actions.append(Action("write", RATCHET_TOML.path, writes[RATCHET_TOML.path].decode()))
    else:
        actions.append(Action("policy", found.place.shown, "on main", "already"))
    ignore = repo.read_file(head, ".gitignore")
    if not _ignores_runs(ignore):
        writes[".gitignore"] = _append_line(ignore or b"", IGNORED)
        actions.append(Action("append" if ignore else "write", ".gitignore", IGNORED + "\n"))
    if ci is not None:
        target = TARGETS[ci]
        if repo.read_file(head, target) is None:
            writes[target] = template(ci).encode()
            actions.append(Action("write", target, template(ci)))
        else:
            actions.append(Action("ci", target, f"{NAMES[ci]}: on main", "already"))
    return writes, actions


def _planned_place(writes: dict[str, bytes]) -> Place:
    return PYPROJECT if PYPROJECT.path in writes else RATCHET_TOML


def evolvable(paths: list[str]) -> list[str] | None:
    """What automated proposals may change, guessed from main's files: `src/`, else the
    top-level packages and modules that are not tests, docs or set-up; None where
    nothing is found (the default stands)."""
    if any(path.startswith("src/") and path.endswith(".py") for path in paths):
        return ["src/"]
    packages = {
        path.split("/")[0] + "/"
        for path in paths
        if path.count("/") == 1 and path.endswith("/__init__.py")
        and not path.startswith(("test", ".")) and path.split("/")[0] not in NOT_CODE
    }  # fmt: skip
    modules = {
        path
        for path in paths
        if "/" not in path and path.endswith(".py")
        and not _is_test_file(path) and path not in NOT_CODE_MODULES
    }  # fmt: skip
    return sorted(packages | modules) or None


def policy_table(evolvable: list[str] | None) -> str:
    """The minimal `[tool.ratchet]`: the test command spelled out where a person will
    look for it, and the evolvable paths when a guess was possible."""
    lines = [
        "[tool.ratchet]",
        "# Ratchet's gate reads this policy from main's commit (written by `evolve init`).",
        "# Every key and its default: the manual's configuration reference.",
        'test_command = "python -m pytest"',
    ]
    if evolvable:
        lines.append(f"evolvable = {json.dumps(evolvable)}")
    return "\n".join(lines) + "\n"


def append_table(original: bytes, table: str) -> bytes:
    """`original` with `table` appended after its last byte, in its own line endings;
    refused when the result would not read as `original` plus the new table (a `tool`
    written as an inline table cannot take one)."""
    try:
        text = original.decode("utf-8")
        before = tomllib.loads(text)
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise UsageError(f"{PYPROJECT.path} on main does not read as TOML: {error}") from None
    newline = "\r\n" if "\r\n" in text else "\n"
    separator = "" if not text or text.endswith("\n") else newline
    added = separator + newline + table.replace("\n", newline)
    result = text + added
    try:
        after = tomllib.loads(result)
    except tomllib.TOMLDecodeError:
        after = None
    tool = dict((after or {}).get("tool", {}))
    tool.pop("ratchet", None)
    if after is None or {**after, "tool": tool} != {**before, "tool": before.get("tool", {})}:
        raise Refused(
            f"{PYPROJECT.path} cannot take a [tool.ratchet] table at its end (is `tool` "
            "written as an inline table?)",
            hint="add the table by hand, or write its keys in ratchet.toml:\n" + table,
        )
    parse_policy(result, PYPROJECT.path, PYPROJECT)  # what the gate will read, checked now
    return result.encode("utf-8")


def _ignores_runs(gitignore: bytes | None) -> bool:
    lines = (gitignore or b"").decode("utf-8", "replace").splitlines()
    return any(line.strip() in ("runs", "runs/", "/runs", "/runs/") for line in lines)


def _append_line(original: bytes, line: str) -> bytes:
    newline = b"\r\n" if b"\r\n" in original else b"\n"
    separator = b"" if not original or original.endswith(b"\n") else newline
    return original + separator + line.encode() + newline


def _message(actions: list[Action]) -> str:
    said = {
        ".gitignore": f"{IGNORED} ignored: the telemetry Ratchet writes in the checkout",
        PYPROJECT.path: "[tool.ratchet] appended: the gate's policy",
        RATCHET_TOML.path: "the gate's policy",
    } | {path: f"the {NAMES[ci]} check (`evolve check`)" for ci, path in TARGETS.items()}
    files = [a.target for a in actions if a.action in ("append", "write")]
    policy = PYPROJECT.path in files or RATCHET_TOML.path in files
    subject = "put main under the ratchet" if policy else "add " + ", ".join(files)
    return "\n".join([
        f"evolve init: {subject}",
        "",
        "Written by `evolve init`; the gate reads its policy from main's commit.",
        "",
        *(f"- {path}: {said[path]}" for path in files),
    ])  # fmt: skip


# -- writing ------------------------------------------------------------------------------


def _require_clean(repo: GitRepo, main_ref: str, head: str, writes: dict[str, bytes]) -> None:
    """Refuse uncommitted changes in this checkout or main's, and an untracked file in
    main's checkout where a file is about to be committed."""
    checkouts = {repo.toplevel, main_checkout(repo, main_ref)} - {None}
    for checkout in sorted(checkouts, key=str):
        if not repo.is_clean(checkout):
            raise Refused(
                f"{checkout} has uncommitted changes: evolve init commits to main and "
                "records the baseline, and does neither under changes it could mix with",
                hint="commit or stash them (git status lists them), then run evolve init again",
            )
    checkout = main_checkout(repo, main_ref)
    if checkout is None:
        return
    for path in sorted(writes):
        if (checkout / path).exists() and repo.read_file(head, path) is None:
            raise Refused(
                f"{checkout / path} exists but is not committed: evolve init would commit its own",
                hint="commit it (or move it away), then run evolve init again",
            )


def _commit(repo: GitRepo, main_ref: str, head: str, writes: dict[str, bytes],
            message: str) -> str:  # fmt: skip
    tree = repo.tree_of(head)
    for path, data in sorted(writes.items()):
        tree = repo.tree_with_file(tree, path, repo.hash_blob(data))
    commit = repo.commit_tree(tree, [head], message)
    landing = land(repo, main_ref, head, commit, "evolve init: the gate's policy")
    if not landing.moved:
        raise Refused(
            landing.refused
            or f"{main_ref.removeprefix('refs/heads/')} moved while evolve "
            "init was writing; nothing was committed",
            hint="run evolve init again",
        )
    return commit
