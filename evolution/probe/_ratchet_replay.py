"""Replay recorded calls outside the test harness: `python -I _ratchet_replay.py JOB TREE`.

The gate starts this in its sandbox, in a clean interpreter: no pytest, no probe, no
test environment variables, a plain command line, the tested tree first on the path
(and its src/, as in the test run).
For each call of the job it imports the function's module from TREE, calls it with the
recorded arguments (and, with `perturb`, unless the call says otherwise, with arguments
near them: each number, string and collection changed a little, the same way on every
tree) and sends the canonical form of each result over the gate's authenticated
channel, in order. The key is read, and its descriptor closed, before any code of the
tree is imported.

Standard library only.
"""

import base64
import importlib
import json
import os
import pickle
import signal
import sys
from pathlib import PurePath

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # -I leaves its folder out

import _ratchet_channel
from _ratchet_canon import canon, raised

CALL_TIMEOUT_S = 5


def _roots(tree):
    """The folders the test run put first on the path (`evolution.run.launch`): the tree,
    and its src/ folder when it has one (a src layout)."""
    src = os.path.join(tree, "src")
    return [tree, src] if os.path.isdir(src) else [tree]


def _module_names(tree, path):
    """The names the file at `path` is importable by from the roots, deepest first."""
    names = []
    for root in reversed(_roots(tree)):
        relative = os.path.relpath(path, root)
        if relative.startswith(os.pardir + os.sep):
            continue
        parts = relative[:-3].split(os.sep) if relative.endswith(".py") else [relative]
        if parts[-1] == "__init__":
            parts = parts[:-1]
        names.append(".".join(parts))
    return names


def _function(tree, path, qualname, recorded=""):
    """The function as the test run imported it: under the module name the recorded
    call ran under, when that name is one the file has (a name of another file is not
    followed), else the deepest root's."""
    names = _module_names(tree, path)
    module = importlib.import_module(recorded if recorded in names else names[0])
    target = module
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


def _near(value):
    """Values close to `value`, the same on every run: the inputs a special case of the
    tests' own would get wrong."""
    kind = type(value)
    if kind is bool:
        return [not value]
    if kind is int:
        return [value + 1, value - 1, -value, value * 2 + 3]
    if kind is float:
        return [value + 0.5, -value, value * 2]
    if kind is str:
        return [value + "x", value[:-1], value.upper() if value != value.upper() else value.lower()]
    if kind is bytes:
        return [value + b"x", value[:-1]]
    if kind in (list, tuple):
        items = list(value)
        out = [kind(items[:-1]), kind(reversed(items))]
        if items:
            out.append(kind([*items, items[0]]))
        return out
    return []


def perturbed(args, kwargs, limit=12):
    """(args, kwargs) variants with one argument changed at a time."""
    variants = []
    for index, value in enumerate(args):
        for other in _near(value):
            variants.append(((*args[:index], other, *args[index + 1:]), kwargs))
    for key, value in kwargs.items():
        for other in _near(value):
            variants.append((args, {**kwargs, key: other}))
    return variants[:limit]


def _names_files(value, depth=0):
    """Whether the arguments name a file or folder: what a test made there (its tmp_path)
    is gone or changed by the time of the replay, so the call cannot be replayed."""
    if depth > 6:
        return False
    if isinstance(value, PurePath):
        return True
    if isinstance(value, str):
        return value.startswith("/") and os.sep in value[1:]
    if isinstance(value, (list, tuple, set, frozenset)):
        return any(_names_files(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return any(_names_files(v, depth + 1) for v in value.values())
    return False


def _timeout(_signum, _frame):
    raise TimeoutError("the call did not return in time")


def _outcome(function, args, kwargs, timeout=CALL_TIMEOUT_S):
    signal.setitimer(signal.ITIMER_REAL, timeout)
    try:
        return canon(function(*args, **kwargs))
    except BaseException as exc:  # what the call raised is its outcome
        return raised(exc)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def main(argv):
    emit = _ratchet_channel.connect()
    job_path, tree = argv[1], argv[2]
    with open(job_path, encoding="utf-8") as handle:
        job = json.load(handle)
    sys.path[0:0] = _roots(tree)
    signal.signal(signal.SIGALRM, _timeout)
    for number, call in enumerate(job["calls"]):
        try:
            args, kwargs = pickle.loads(base64.b64decode(call["args"]))
        except BaseException:  # objects of a module that does not load here, say
            args = kwargs = None
        why = ("do not load" if args is None
               else "name files" if _names_files((args, kwargs)) else "")  # fmt: skip
        if why:
            if emit is not None:
                emit("replayed", number=number, results=[["unreplayable", why]])
            continue
        try:
            function = _function(tree, os.path.join(tree, call["file"]), call["qualname"],
                                 call.get("module", ""))  # fmt: skip
        except BaseException as exc:  # a function that is not there
            results = [["missing", raised(exc)]]
        else:
            timeout = float(job.get("timeout", CALL_TIMEOUT_S))
            results = [_outcome(function, args, kwargs, timeout)]
            if call.get("perturb", job.get("perturb")):  # a call may say it needs none
                results += [_outcome(function, a, k, timeout) for a, k in perturbed(args, kwargs)]
        if emit is not None:
            emit("replayed", number=number, results=results)
        else:
            print(json.dumps({"number": number, "results": results}))
    if emit is not None:
        emit("end", exitstatus=0)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
