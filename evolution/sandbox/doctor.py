"""`evolve doctor`: what isolation this host gives a test run, shown by trying it.

It does not trust feature flags: it enters the same sandbox a gate run would, with the
same plan, around a small script started by this very interpreter (so a hidden
interpreter or package folder is named, not guessed) that tries what a hostile suite
would (read and write a forbidden folder, write the tested tree, list the user's real
home folder, signal a process outside, list its network interfaces, look at /run) and
reports what was stopped. An interpreter that lives in the home folder (pyenv, uv)
must still start and import its packages there.
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import UsageError
from evolution.sandbox.enter import SETUP_FAILED, parse_status
from evolution.sandbox.isolation import SANDBOX_ENV, host_abi, launcher_argv
from evolution.sandbox.plan import Confinement, hidden_homes, launch_plan, start_failure

_ATTEMPTS = r"""
import json, os, signal, socket, sys
forbidden, tree, tmp, parent, home, private = sys.argv[1:7]
try:
    import pytest  # the interpreter's own packages, found through site as a suite finds them
    packages = "importable"
except Exception as exc:
    packages = f"{type(exc).__name__}: {exc}"
def attempt(action):
    try:
        action()
        return "allowed"
    except OSError as exc:
        return "blocked"
results = {
    "read_forbidden": attempt(lambda: open(os.path.join(forbidden, "secret")).read()),
    "write_forbidden": attempt(lambda: open(os.path.join(forbidden, "new"), "w").close()),
    "write_tree": attempt(lambda: open(os.path.join(tree, "new"), "w").close()),
    "write_tmp": attempt(lambda: open(os.path.join(tmp, "new"), "w").close()),
    "read_home": attempt(lambda: os.listdir(home)) if os.path.isabs(home) else home,
    "write_private_home": attempt(lambda: open(os.path.join(private, "new"), "w").close()),
    "signal_outside": attempt(lambda: os.kill(int(parent), 0)),
    "interfaces": sorted(name for _, name in socket.if_nameindex()),
    "run_entries": len(os.listdir("/run")) if os.path.isdir("/run") else 0,
    "processes_visible": len([p for p in os.listdir("/proc") if p.isdigit()]),
    "packages": packages,
}
print(json.dumps(results))
"""


@dataclass
class Diagnosis:
    platform: str
    kernel: str
    landlock_abi: int
    override: str
    sandbox: str = "none"  # "landlock" once the live test confirms it
    checks: dict[str, Any] = field(default_factory=dict)
    applied: dict[str, Any] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        return 0 if self.sandbox == "landlock" and not self.problems else 1

    @property
    def proposals(self) -> str:
        if self.sandbox == "landlock":
            return "tested inside the sandbox"
        return "refused unless --unsandboxed is given (people's commits run with a warning)"

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "proposals": self.proposals, "exit_code": self.exit_code}


_EXPECTED = {
    "read_forbidden": "blocked",
    "write_forbidden": "blocked",
    "write_tree": "blocked",
    "write_tmp": "allowed",
    "read_home": "blocked",
    "write_private_home": "allowed",
}


def real_home() -> tuple[str, str]:
    """The user's home folder to try to list inside the sandbox, or why there is none to
    try: "absent" (HOME names no folder: nothing to hide), "not hidden" (a service
    account whose HOME is a system folder: a run hides none of it)."""
    home = os.path.realpath(os.path.expanduser("~"))
    if not os.path.isdir(home):
        return "", "absent"
    if home not in {str(p) for p in hidden_homes()}:
        return "", "not hidden"
    return home, ""


def diagnose(network: str = "loopback") -> Diagnosis:
    if network not in ("loopback", "host"):
        raise UsageError(f"unknown network setting {network!r}: choose loopback or host")
    diagnosis = Diagnosis(
        platform=sys.platform,
        kernel=platform.release(),
        landlock_abi=host_abi(),
        override=os.environ.get(SANDBOX_ENV, ""),
    )
    if diagnosis.landlock_abi < 1:
        diagnosis.problems.append(
            "no Landlock: automated proposals are refused unless --unsandboxed is given"
        )
        return diagnosis
    with tempfile.TemporaryDirectory(prefix="ratchet-doctor-") as scratch:
        root = Path(scratch)
        folders = {name: root / name
                   for name in ("forbidden", "tree", "tmp", "out", "probe", "home")}  # fmt: skip
        home, why = real_home()
        for folder in folders.values():
            folder.mkdir()
        (folders["forbidden"] / "secret").write_text("secret")
        confinement = Confinement(
            tree=folders["tree"], tmp=folders["tmp"], out=folders["out"],
            probe=folders["probe"], forbidden=(folders["forbidden"],), network=network,
            command=(sys.executable,), hidden=tuple(hidden_homes()), home=folders["home"],
        )  # fmt: skip
        status_read, status_write = os.pipe()
        plan = launch_plan(confinement, root, status_write)
        argv = launcher_argv(plan, [
            sys.executable, "-I", "-c", _ATTEMPTS, str(folders["forbidden"]),
            str(folders["tree"]), str(folders["tmp"]), str(os.getpid()), home or why,
            str(folders["home"]),
        ])  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, pass_fds=(status_write,),
                              timeout=60, check=False)  # fmt: skip
        os.close(status_write)
        with os.fdopen(status_read, "rb") as handle:
            raw = handle.read()
    diagnosis.applied = parse_status(raw)
    failure = start_failure(diagnosis.applied)
    if failure is not None:
        diagnosis.problems.append(
            failure.replace("the test command", f"this interpreter ({sys.executable})")
        )
        return diagnosis
    if done.returncode == SETUP_FAILED or done.returncode != 0:
        diagnosis.problems.append(
            f"the sandbox could not be entered: {diagnosis.applied.get('error') or done.stderr}"
        )
        return diagnosis
    diagnosis.checks = json.loads(done.stdout)
    for check, expected in _EXPECTED.items():
        if check == "read_home" and diagnosis.checks.get(check) in ("absent", "not hidden"):
            # Nothing to hide (HOME names no folder), or HOME is a system folder (a
            # service account's / or /var) that no run hides: shown, not the sandbox's
            # failure; the suite still gets a private home of its own.
            continue
        if diagnosis.checks.get(check) != expected:
            diagnosis.problems.append(f"{check}: {diagnosis.checks.get(check)}, not {expected}")
    if diagnosis.checks.get("packages") != "importable":
        diagnosis.problems.append(
            f"this interpreter's packages do not import inside the sandbox (pytest: "
            f"{diagnosis.checks.get('packages')}): a folder they live in is hidden"
        )
    diagnosis.sandbox = "landlock" if not diagnosis.problems else "none"
    if network == "loopback" and diagnosis.checks.get("interfaces") != ["lo"]:
        diagnosis.problems.append(
            "network: not isolated (no network namespace: needs root or unprivileged user "
            "namespaces)"
        )
    if diagnosis.checks.get("signal_outside") != "blocked":
        diagnosis.problems.append(
            "signals: the suite can signal processes outside (Landlock ABI 6 scopes them)"
        )
    return diagnosis
