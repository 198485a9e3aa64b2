"""pytest plugin the gate loads into every test run (by -p, from a private folder).

It does two jobs the JSON report cannot:
- progress: one line per finished test, so the gate can show a live display;
- import isolation: at the end it lists every module loaded from the user's main
  checkout instead of the candidate's worktree. An editable install or a stray
  PYTHONPATH would otherwise test main's code and give a false green.

It depends on nothing but the standard library and pytest's hook names.
"""

import json
import os
import sys

_progress = None


def _under(path, root):
    return bool(root) and (path == root or path.startswith(root.rstrip(os.sep) + os.sep))


def pytest_configure(config):
    global _progress
    target = os.environ.get("RATCHET_PROGRESS")
    if target:
        _progress = open(target, "a", buffering=1, encoding="utf-8")  # noqa: SIM115


def pytest_collection_finish(session):
    if _progress is not None:
        _progress.write(f"collected {len(session.items)}\n")


def pytest_collection_modifyitems(config, items):
    """Keep only the node ids the gate asked for (re-runs of suspected flaky tests)."""
    wanted_file = os.environ.get("RATCHET_SELECT")
    if not wanted_file:
        return
    with open(wanted_file, encoding="utf-8") as handle:
        wanted = {line.rstrip("\n") for line in handle if line.strip()}
    keep = [item for item in items if item.nodeid in wanted]
    drop = [item for item in items if item.nodeid not in wanted]
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def pytest_runtest_logreport(report):
    if _progress is None:
        return
    if report.when == "call" or (report.when == "setup" and report.outcome != "passed"):
        _progress.write(f"{report.outcome}\n")


def pytest_sessionfinish(session, exitstatus):
    target = os.environ.get("RATCHET_PROBE_OUT")
    if not target:
        return
    forbidden = (
        os.path.realpath(os.environ.get("RATCHET_FORBIDDEN_ROOT", ""))
        if os.environ.get("RATCHET_FORBIDDEN_ROOT")
        else ""
    )
    allowed = [
        os.path.realpath(p)
        for p in (
            os.environ.get("RATCHET_WORKTREE", ""),
            sys.prefix,
            sys.base_prefix,
            sys.exec_prefix,
            os.path.dirname(os.path.abspath(__file__)),
        )
        if p
    ]
    leaks = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not path:
            continue
        real = os.path.realpath(path)
        if _under(real, forbidden) and not any(_under(real, root) for root in allowed):
            leaks.append([name, real])
    record = {"pid": os.getpid(), "python": sys.executable, "leaks": sorted(leaks)}
    with open(target, "a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
