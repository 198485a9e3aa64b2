"""The world around the live run (benchmarks/live.py): the clone and its install, the
operator's and a person's commits, and what git and the ledger say happened.

Kept apart from the driver so that the suite can try each piece on a small repository
(tests/test_live.py) without an hour of ticks.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(HERE), str(HERE / "benchmarks")]

from faults import inject  # noqa: E402

from evolution.factory.cron import cron_for_every  # noqa: E402
from evolution.mutate.operators import mutations  # noqa: E402
from evolution.mutate.source import apply_edits  # noqa: E402
from evolution.trail import format as t  # noqa: E402

# The README's install command, as a user runs it in a fresh clone: Ratchet alone, then
# with the coding agents this repository's suite drives (the safety net runs that suite).
INSTALL_RATCHET = (
    "python3 -m venv .venv && .venv/bin/pip install -q uv==0.13.9 && .venv/bin/uv pip "
    "install -q --python .venv/bin/python -r requirements.lock -e ."
)
INSTALL = INSTALL_RATCHET + " && .ci/agents/install"
# Faults go where the suite covers them and a failing task does not stop the loop that
# would repair them: git_health.py gates the safety net, on which the cycle depends.
FAULT_FILES = ("scripts/disk_space.py", "scripts/rotate_runs.py", "scripts/ledger_backup.py")
# TSSB-3M kinds whose repair is one of mutate's operators (faults.py has all of them).
REPAIRABLE = (
    "Change Binary Operator",
    "Change Numeric Literal",
    "Change Boolean Literal",
    "Change Unary Operator",
)
SKIP_FUNCTIONS = frozenset({"main", "build_parser"})
OPERATOR = ("Operator", "operator@live.invalid")
PERSON = ("A. Person", "person@live.invalid")
AGENT_IDENTITY = ("ratchet-agent", "agent@live.invalid")
RESET = "evolve baseline record --reset"
REVERT_COMMAND = re.compile(r"git revert --no-edit (?:-m 1 )?[0-9a-f]{40}")
SHA = re.compile(r"\b[0-9a-f]{40}\b")


def identity_env(who: tuple[str, str]) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    name, email = who
    return {
        **env,
        "NO_COLOR": "1",
        "GIT_AUTHOR_NAME": name,
        "GIT_AUTHOR_EMAIL": email,
        "GIT_COMMITTER_NAME": name,
        "GIT_COMMITTER_EMAIL": email,
    }


def run(
    argv: list[str],
    cwd: Path,
    who: tuple[str, str] = OPERATOR,
    timeout: float | None = None,
    plugins: bool = True,
) -> subprocess.CompletedProcess[str]:
    env = identity_env(who)
    if not plugins:  # plain pytest on one file: nothing of the caller's pytest or Python set-up
        env = {k: v for k, v in env.items() if not k.startswith(("PYTEST_", "PYTHON"))}
        env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
        env["PYTHONDONTWRITEBYTECODE"] = "1"  # no .pyc to go stale between edits
    return subprocess.run(
        argv,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=timeout,
    )


def git(repo: Path, *args: str, who: tuple[str, str] = OPERATOR) -> str:
    done = run(["git", *args], repo, who)
    if done.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)}: {done.stderr.strip()[-400:]}")
    return done.stdout.strip()


def commit_all(repo: Path, message: str, who: tuple[str, str]) -> str:
    git(repo, "commit", "-q", "--no-verify", "-am", message, who=who)
    return git(repo, "rev-parse", "HEAD")


# The operator's settings -------------------------------------------------------------


LONG_TASKS = ("safety-net", "evolve-cycle")  # each runs the whole suite when it has work


def spec_cadence(spec: str, cadence_s: int) -> int:
    """The `[schedule] every_s` the operator can write: at least `cadence_s`, above every
    `timeout_s` in the spec (the factory's rule), and one cron can fire."""
    longest = max((int(v) for v in re.findall(r"^timeout_s\s*=\s*(\d+)", spec, re.M)), default=0)
    every = max(cadence_s, longest + 1)
    while cron_for_every(every) is None:
        every += 1
    return every


def _task_blocks(spec: str) -> tuple[list[str], dict[str, int]]:
    blocks = spec.split("[[tasks]]")
    names = {
        m.group(1): i
        for i, b in enumerate(blocks)
        if (m := re.search(r'^name\s*=\s*"([^"]+)"', b, re.M))
    }
    return blocks, names


def live_spec(
    spec: str,
    cadence_s: int,
    cycle_every_s: int,
    long_timeout_s: int | None = None,
    search_s: float | None = None,
) -> tuple[str, int]:
    """SPEC.md as the operator edits it for the live run, and its cadence: the evolve cycle
    offline (`--proposer mutate`) at its own `every_s`; on a slow host, a longer timeout
    for the tasks that run the whole suite, and a longer search for mutate
    (`--max-seconds`); the shortest cadence the factory then accepts
    (the watchdog's silence window kept at three cadences at least). Refuses a spec it
    does not recognise rather than running something else."""
    blocks, names = _task_blocks(spec)
    if "evolve-cycle" not in names or not all(name in names for name in LONG_TASKS):
        raise ValueError(f"SPEC.md has no task named {' or '.join(LONG_TASKS)}")
    for name in LONG_TASKS if long_timeout_s else ():
        i = names[name]
        blocks[i] = re.sub(
            r"^timeout_s\s*=\s*\d+", f"timeout_s = {long_timeout_s}", blocks[i], flags=re.M
        )
    block = blocks[names["evolve-cycle"]]
    extra = "" if "--proposer" in block else " --proposer mutate"
    extra += f" --max-seconds {search_s:g}" if search_s and "--max-seconds" not in block else ""
    if extra:
        block, n = re.subn(r"(evolve cycle[^\"\n]*?) --json", rf"\1{extra} --json", block)
        if n != 1:
            raise ValueError("the evolve-cycle task's command does not end in --json")
    if re.search(r"^every_s\s*=", block, re.M):
        block = re.sub(r"^every_s\s*=\s*\d+", f"every_s = {cycle_every_s}", block, flags=re.M)
    else:
        block = block.replace("\nevidence", f"\nevery_s = {cycle_every_s}\nevidence", 1)
    blocks[names["evolve-cycle"]] = block
    spec = "[[tasks]]".join(blocks)
    every = spec_cadence(spec, cadence_s)
    spec, found = re.subn(r"(\[schedule\]\s*\nevery_s\s*=\s*)\d+", rf"\g<1>{every}", spec)
    if found != 1:
        raise ValueError("SPEC.md has no [schedule] every_s")
    spec = re.sub(
        r"^(max_silence_s\s*=\s*)(\d+)",
        lambda m: f"{m.group(1)}{max(int(m.group(2)), 3 * every)}",
        spec,
        flags=re.M,
    )
    return spec, every


# Faults and a person's commits ------------------------------------------------------


@dataclass
class Fault:
    """One line changed in a script, and the tests that see it."""

    file: str
    line: int
    kind: str
    before: str
    after: str
    failing: list[str]
    operator: str = ""  # the mutate operator whose edit repairs it ("": none does)
    original: str = field(default="", repr=False)  # the file before the fault

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "original"}


def test_file_for(script: str) -> str:
    return f"tests/test_scripts_{Path(script).stem}.py"


def write_source(path: Path, text: str) -> None:
    """Write a module and drop its cached bytecode: Python trusts a .pyc whose recorded
    mtime (in whole seconds) and size match the source, so a same-size edit within the
    second of the last run (a `<` for a `>`) would otherwise run the old code."""
    path.write_text(text, encoding="utf-8")
    Path(importlib.util.cache_from_source(str(path))).unlink(missing_ok=True)


def plain_pytest(
    repo: Path, python: str, test_file: str, *extra: str
) -> subprocess.CompletedProcess[str]:
    """One test file in one process, with no plugin and none of the caller's pytest or
    Python settings (hypothesis alone costs 0.5 s a start)."""
    argv = [
        python, "-m", "pytest", "-q", "-rfE", "-o", "addopts=",
        # The repository on sys.path as its own config says, not by `python -m` putting
        # the working folder first (PYTHONSAFEPATH turns that off) nor by an ini file
        # found above it.
        f"--rootdir={repo}", "-o", "pythonpath=.",
        "-p", "no:cacheprovider", "-p", "no:randomly", test_file, *extra,
    ]  # fmt: skip
    return run(argv, repo, timeout=300, plugins=False)


def pytest_failures(
    repo: Path, python: str, test_file: str, collect_only: bool = False
) -> tuple[int, list[str]]:
    """(exit code, failed or erroring node ids) of one test file, in one process."""
    done = plain_pytest(repo, python, test_file, *(["--collect-only"] if collect_only else []))
    if done.returncode not in (0, 1, 2, 5):  # 3, 4: pytest itself, not the code, failed
        raise _failed(done, f"pytest could not run {test_file} in {repo}")
    found = [
        line.split(" ", 1)[1].split(" - ", 1)[0].strip()
        for line in done.stdout.splitlines()
        if line.startswith(("FAILED ", "ERROR "))
    ]
    return done.returncode, found


def require_passing(repo: Path, python: str, test_file: str) -> None:
    """A fault is seen only against a file whose tests pass untouched: otherwise say why
    (what pytest printed), rather than finding no fault and no reason."""
    done = plain_pytest(repo, python, test_file)
    if done.returncode != 0:
        raise _failed(done, f"{test_file} does not pass untouched in {repo}")


def _failed(done: subprocess.CompletedProcess[str], what: str) -> RuntimeError:
    """`what`, with pytest's exit code and the end of what it printed."""
    said = (done.stdout + done.stderr).strip()[-1500:]
    return RuntimeError(f"{what} (exit {done.returncode}): {said}")


def _lines(source: str) -> list[int]:
    """One-line statements inside functions worth faulting (no docstrings, not main)."""
    found = set()
    for function in ast.walk(ast.parse(source)):
        if not isinstance(function, ast.FunctionDef) or function.name in SKIP_FUNCTIONS:
            continue
        for node in ast.walk(function):
            if (
                isinstance(node, ast.stmt)
                and node is not function
                and node.lineno == node.end_lineno
                and not (isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant))
            ):
                found.add(node.lineno)
    return sorted(found)


def repair_operator(faulty: str, line: int, original: str) -> str:
    """The mutate operator whose edit on `line` turns `faulty` back into `original`, or ""
    (the repair is then outside mutate's search, however long it runs)."""
    for edit in mutations(faulty, {line}):
        if apply_edits(faulty, [edit]) == original:
            return edit.operator
    return ""


def seed_fault(
    repo: Path,
    python: str,
    rng: random.Random,
    files: list[str],
    kinds: tuple[str, ...] = REPAIRABLE,
    repairable: bool = True,
    tries: int = 40,
) -> Fault | None:
    """Write one fault into one of `files` that makes at least one test of its script's
    test file fail (and breaks no collection), and, when `repairable`, whose repair is
    one of mutate's own edits; the file is left faulty. None after `tries` test runs,
    once the untouched files are shown to pass (else RuntimeError, saying why)."""
    draws = [(f, line, k) for f in files for line in _lines((repo / f).read_text()) for k in kinds]
    rng.shuffle(draws)
    for file, line, kind in draws:
        path = repo / file
        original = path.read_text(encoding="utf-8")
        edit = inject(original, line, kind, rng)
        if edit is None:
            continue
        faulty = apply_edits(original, [edit])
        operator = repair_operator(faulty, line, original)
        if repairable and not operator:
            continue
        if tries == 0:
            break
        tries -= 1
        write_source(path, faulty)
        code, failing = pytest_failures(repo, python, test_file_for(file))
        if code == 1 and failing and all("::" in nodeid for nodeid in failing):
            before = original.splitlines()[line - 1].strip()
            after = faulty.splitlines()[line - 1].strip()
            return Fault(file, line, kind, before, after, failing, operator, original)
        write_source(path, original)
    for file in files:  # no fault seen: because nothing passed to begin with?
        require_passing(repo, python, test_file_for(file))
    return None


def delete_test(
    repo: Path, python: str, rng: random.Random, files: list[str], passing: set[str]
) -> tuple[str, str] | None:
    """Delete one baseline-passing test function from one of `files` (the file still
    collects): (file, node id), or None."""
    for file in rng.sample(files, len(files)):
        path = repo / file
        source = path.read_text(encoding="utf-8")
        tests = [
            n
            for n in ast.parse(source).body
            if isinstance(n, ast.FunctionDef)
            and n.name.startswith("test_")
            and f"{file}::{n.name}" in passing
        ]
        if not tests:
            continue
        node = rng.choice(tests)
        first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
        lines = source.splitlines(keepends=True)
        end = node.end_lineno or node.lineno
        while end < len(lines) and not lines[end].strip():
            end += 1  # the blank lines after it go too
        write_source(path, "".join(lines[: first - 1] + lines[end:]))
        if pytest_failures(repo, python, file, collect_only=True)[0] == 0:
            return file, f"{file}::{node.name}"
        write_source(path, source)
    return None


def person_change(
    repo: Path, python: str, rng: random.Random, kind: str, files: list[str], passing: set[str]
) -> tuple[str, str, list[str]] | None:
    """A person's change, written and not committed: a `break` of baseline-passing tests
    in one of the scripts `files`, or the deletion of a passing test of one of them.
    (commit message, what changed, the tests it takes from the baseline), or None."""
    if kind == "break":
        fault = seed_fault(repo, python, rng, files, repairable=False)
        if fault is None or not passing.intersection(fault.failing):
            if fault is not None:
                write_source(repo / fault.file, fault.original)
            return None
        return (
            f"{Path(fault.file).stem}: simplify",
            f"{fault.file}:{fault.line}: {fault.before} -> {fault.after}",
            [n for n in fault.failing if n in passing],
        )
    tests = [test_file_for(f) for f in FAULT_FILES if (repo / test_file_for(f)).exists()]
    deleted = delete_test(repo, python, rng, tests, passing)
    if deleted is None:
        return None
    name = deleted[1].split("::")[-1]
    return f"tests: drop {name}, covered elsewhere", deleted[1], [deleted[1]]


# What git says ------------------------------------------------------------------------


def baseline_tests(repo: Path, rev: str = "main") -> dict[str, str]:
    done = run(["git", "show", f"{rev}:baseline/baseline.json"], repo)
    return json.loads(done.stdout).get("tests", {}) if done.returncode == 0 else {}


def first_parents(repo: Path, since: str, rev: str = "main") -> list[tuple[str, int]]:
    """(sha, commit time) of main's first-parent commits after `since`, oldest first."""
    out = git(repo, "log", "--first-parent", "--reverse", "--format=%H %ct", f"{since}..{rev}")
    return [(sha, int(ct)) for sha, ct in (line.split() for line in out.splitlines())]


def verdict_of(repo: Path, sha: str) -> str:
    return t.last(t.parse(git(repo, "log", "-1", "--format=%B", sha)), t.VERDICT)


def repair_of(repo: Path, since: str, failing: list[str]) -> tuple[str, int] | None:
    """The first gate commit on main after `since` whose baseline has every test of
    `failing` passing: (sha, commit time), or None."""
    for sha, when in first_parents(repo, since):
        if verdict_of(repo, sha) == t.ACCEPTED:
            tests = baseline_tests(repo, sha)
            if all(tests.get(nodeid) == "passed" for nodeid in failing):
                return sha, when
    return None


def reverted_commits(entry: dict[str, Any]) -> list[str]:
    """The commits a `reverted` entry of `evolve log --json` names."""
    return " ".join(entry.get("trailers", {}).get(t.REVERTS, [])).split()


def incident_culprits(entry: dict[str, Any]) -> list[tuple[str, str]]:
    """(kind, culprit sha or "") of each incident an `incident` entry records; read with
    the format module's own reader where it has one, else every sha the note names."""
    key, reader = getattr(t, "INCIDENT_KEY", None), getattr(t, "incident_of", None)
    values = entry.get("trailers", {}).get(key, []) if key else []
    if values and reader is not None:
        return [tuple(reader(value)[:2]) for value in values]  # type: ignore[misc]
    return [("incident", sha) for sha in sorted(set(SHA.findall(entry.get("note", ""))))]


def named_command(entry: dict[str, Any], culprit: str) -> str:
    """The command an incident's note names to revert `culprit`, or the plain revert."""
    for command in REVERT_COMMAND.findall(entry.get("note", "")):
        if command.endswith(culprit):
            return command
    return f"git revert --no-edit {culprit}"


# A tick, as cron runs it ---------------------------------------------------------------


def agent_tick(bin_dir: Path, root: Path, timeout_s: float) -> tuple[dict[str, Any], int, str]:
    """`agent tick --json` in cron's environment, in a session of its own: (its report,
    exit code, stderr). Past `timeout_s` it is stopped (SIGTERM, then SIGKILL)."""
    env = {
        "PATH": "/usr/bin:/bin",
        "SHELL": "/bin/sh",
        "NO_COLOR": "1",
        "HOME": os.environ.get("HOME", "/"),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }
    env |= {"TMPDIR": os.environ["TMPDIR"]} if "TMPDIR" in os.environ else {}
    proc = subprocess.Popen(
        [str(bin_dir / "agent"), "tick", "--json"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=max(60.0, timeout_s))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            out, err = proc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, err = proc.communicate()
    try:
        return json.loads(out), proc.returncode, err
    except ValueError:
        return {"tick": None, "status": f"no report (exit {proc.returncode})"}, proc.returncode, err


# What the ledger says, and what is left running ---------------------------------------


def ledger_rows(ledger: Path, table: str, after_id: int = 0) -> list[dict[str, Any]]:
    if not ledger.exists():
        return []
    with contextlib.closing(sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(f"SELECT * FROM {table} WHERE id > ? ORDER BY id", (after_id,))
        return [dict(r) for r in rows]


def last_tick_id(ledger: Path) -> int:
    return max((r["id"] for r in ledger_rows(ledger, "ticks")), default=0)


def rows_lost(started: int, reported: dict[int, str], rows: list[dict[str, Any]]) -> int:
    """Ticks started without exactly one ledger row, or whose row says another outcome
    than the tick printed (a row still `running` after its tick ended counts too)."""
    ledger = {r["id"]: r["status"] for r in rows}
    different = sum(ledger.get(tick, status) != status for tick, status in reported.items())
    missing = sum(tick not in ledger for tick in reported)
    return abs(started - len(ledger)) + missing + different


def safety_status(stdout_tail: str) -> str:
    """The safety net's status from the tail of its --json report (the ledger's copy)."""
    found = re.findall(r'"status": "([a-z-]+)"', stdout_tail)
    return found[-1] if found else "?"


def leftovers(folder: Path) -> list[int]:
    """Processes working in `folder` or naming it on their command line."""
    found, mark = [], str(folder).encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        with contextlib.suppress(OSError):
            if (
                Path(os.readlink(entry / "cwd")).is_relative_to(folder)
                or mark in (entry / "cmdline").read_bytes()
            ):
                found.append(int(entry.name))
    return found


def end_processes(pids: list[int], grace_s: float = 2.0) -> None:
    """SIGTERM, then SIGKILL what is still there after `grace_s`."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        waited = time.monotonic() + grace_s
        while sig == signal.SIGTERM and time.monotonic() < waited:
            if not any(Path(f"/proc/{pid}/cwd").exists() for pid in pids):
                return
            time.sleep(0.1)
