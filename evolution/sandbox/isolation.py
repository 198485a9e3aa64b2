"""Which isolation a test run gets, and the rule for when none is available.

The code under test is untrusted: every run the gate starts goes through `enter.py`
(Landlock, namespaces, dropped capabilities) when the host has Landlock. Without it:
- a candidate carrying a proposal trailer, and mutate's evaluations, are refused
  (exit 3) unless the caller accepts the risk on purpose (`--unsandboxed`), which the
  verdict records;
- people's commits run with a warning in the report, unless the policy on main says
  `sandbox = "required"`, in which case nothing runs unsandboxed.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import EnvironmentFailure
from evolution.policy import Policy
from evolution.sandbox.enter import landlock_abi

# Set to "none" to run as a host without a sandbox would (tests of that path, or a host
# whose Landlock misbehaves). It can only take isolation away, never add trust: without
# a sandbox, proposals are refused unless --unsandboxed is given.
SANDBOX_ENV = "RATCHET_SANDBOX"
# The one launcher every sandboxed start runs (a gate run, a re-run, the fork server,
# `evolve doctor`): standard library only, started isolated (-I -S) so nothing of the
# candidate's tree or site can run before the confinement is in place.
LAUNCHER = Path(__file__).with_name("enter.py")
# The launcher's name where a process inside the sandbox imports its public helpers
# (the fork server, a coding agent's relay): a copy in the run's probe folder, because
# the package may sit in a checkout the sandbox cannot read.
LAUNCHER_COPY = "_ratchet_enter.py"


def launcher_argv(plan: dict[str, Any], argv: list[str]) -> list[str]:
    """`argv` started by the launcher under `plan`."""
    return isolated_argv(LAUNCHER, [json.dumps(plan), "--", *argv])


def isolated_argv(script: Path, args: list[str]) -> list[str]:
    """A standard-library script run by this interpreter isolated (-I -S): nothing of
    the tree, the environment or site can run before it (the launcher, a coding agent's
    relay)."""
    return [sys.executable, "-I", "-S", str(script), *args]


HOW_TO_ENABLE = (
    "enable Landlock (Linux 5.13 or newer booted with landlock in its lsm= list; "
    "`evolve doctor` shows what this host offers), or accept the risk for this run on "
    "purpose with --unsandboxed (the verdict records it)"
)


@dataclass(frozen=True)
class Isolation:
    sandboxed: bool
    network: str = "loopback"
    reason: str = ""  # without a sandbox: why, and whether the risk was accepted

    @property
    def launcher(self) -> Path:
        return LAUNCHER

    @property
    def cache_tag(self) -> str:
        """What of the isolation can change a verdict, for the verdict cache's key."""
        return f"landlock/{self.network}" if self.sandboxed else "none"

    def describe(self, applied: dict[str, object] | None = None) -> str:
        """One line for the trailers and notes: what the run actually got."""
        if not self.sandboxed:
            return f"none ({self.reason})"
        parts = ["landlock"]
        if applied:
            landlock = applied.get("landlock") or {}
            if isinstance(landlock, dict) and landlock.get("abi"):
                parts[0] = f"landlock abi {landlock['abi']}"
            parts.append(f"network {applied.get('network', 'host')}")
            if applied.get("run_hidden"):
                parts.append("/run hidden")
            if applied.get("pid_namespace"):
                parts.append("pid namespace")
            if applied.get("scratch_private"):
                parts.append("private /tmp")
            if applied.get("seccomp"):
                parts.append("seccomp")
        return ", ".join(parts)


def host_abi() -> int:
    if os.environ.get(SANDBOX_ENV, "").lower() == "none":
        return 0
    return landlock_abi() if sys.platform.startswith("linux") else 0


def choose(policy: Policy, *, automated: bool, unsandboxed: bool) -> Isolation:
    """The isolation for a run of `policy`'s suite, or EnvironmentFailure (exit 3)."""
    if host_abi() >= 1:
        return Isolation(sandboxed=True, network=policy.network)
    platform = (
        "this host has no Landlock"
        if sys.platform.startswith("linux")
        else (f"{sys.platform} has no sandbox Ratchet can use")
    )
    if policy.sandbox == "required":
        raise EnvironmentFailure(
            f"no OS sandbox is available ({platform}) and the policy on main requires one "
            '(sandbox = "required")',
            hint=HOW_TO_ENABLE.split(", or accept")[0],
        )
    if automated and not unsandboxed:
        raise EnvironmentFailure(
            f"refusing to run an automated proposal's tests without an OS sandbox ({platform})",
            hint=HOW_TO_ENABLE,
        )
    accepted = "accepted with --unsandboxed" if unsandboxed else "a person's commit"
    return Isolation(sandboxed=False, network="host", reason=f"{platform}; {accepted}")
