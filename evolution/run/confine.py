"""Start a command on a run's tree under the run's isolation: the one path every start
takes (a gate run, a re-run, a coverage or import check, the fork server).

Inside the sandbox a start is the sandbox launcher with the run's plan
(`evolution.sandbox.plan.launch_plan`, through `evolution.sandbox.isolation.
launcher_argv`) and a status pipe on which the launcher says what it applied. Whoever
starts it, a start is judged by the same rule (`start_error`): a launcher that could not
enter the sandbox, or a command that could not start inside it, is never a run. So
that a gate run and the fork server cannot drift apart, both build their start with
`Start`; `confined` is the gate's way to run one to its end, in its own process group.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from agent.errors import InvalidRun
from agent.procgroup import GroupResult, run_in_group
from evolution.policy import Policy
from evolution.run.folder import RunFolder
from evolution.sandbox.enter import SETUP_FAILED, parse_status, undumpable
from evolution.sandbox.isolation import Isolation, launcher_argv
from evolution.sandbox.plan import (
    START_HINT,
    Confinement,
    launch_plan,
    read_paths,
    start_failure,
)


def confinement(run: RunFolder, policy: Policy, command: Iterable[str] = ()) -> Confinement:
    """The boundaries of a start on `run` under `policy`, for the command whose first
    word is `command`'s (its interpreter is made reachable)."""
    return Confinement(
        tree=run.tree,
        tmp=run.tmp,
        out=run.out,
        probe=run.probe,
        forbidden=run.forbidden,
        writable=policy.writable,
        shared=policy.shared,
        network=policy.network,
        command=tuple(command)[:1],
        hidden=run.hidden,
        home=run.home,
        read_paths=read_paths(policy.read_paths),
    )


def sandboxed(
    argv: list[str],
    run: RunFolder,
    policy: Policy,
    status_fd: int,
    bounds: Confinement | None = None,
) -> list[str]:
    """`argv` wrapped in the launcher with this run's plan (`bounds`: boundaries other
    than `confinement`'s, a coding agent's). Every sandboxed start goes through here,
    so it is also where the gate makes itself unreadable to the suite."""
    undumpable()
    plan = launch_plan(bounds or confinement(run, policy, argv), run.path, status_fd)
    return launcher_argv(plan, argv)


def read_status(fd: int) -> dict[str, Any]:
    """What the launcher applied (a line before exec; another if the exec failed), read
    until every copy of the pipe is closed: at the command's exec, or its end."""
    data = b""
    while chunk := os.read(fd, 65536):
        data += chunk
    os.close(fd)
    return parse_status(data)


class Start:
    """`argv` as the run's isolation starts it: inside the launcher, with a status pipe,
    when it is sandboxed; as it is otherwise. Start `argv` passing `fds` on, then call
    `applied`. Made by `starting`, which closes what is left of the pipe."""

    def __init__(
        self,
        argv: list[str],
        run: RunFolder,
        policy: Policy,
        isolation: Isolation,
        bounds: Confinement | None = None,
    ):
        self._read, self._write = os.pipe() if isolation.sandboxed else (-1, -1)
        try:
            self.argv = (
                sandboxed(argv, run, policy, self._write, bounds) if self._write >= 0 else argv
            )
        except BaseException:
            self.close()
            raise

    @property
    def fds(self) -> list[int]:
        """The descriptors the started process must inherit (the launcher's status)."""
        return [self._write] if self._write >= 0 else []

    def applied(self) -> dict[str, Any]:
        """What the launcher applied ({} without a sandbox), once the process started:
        our end of the pipe closes first, so the read ends when the launcher's copies do
        (at the command's exec, or its end)."""
        self._write = _close(self._write)
        fd, self._read = self._read, -1
        return read_status(fd) if fd >= 0 else {}

    def close(self) -> None:
        self._write = _close(self._write)
        self._read = _close(self._read)


@contextmanager
def starting(
    argv: list[str],
    run: RunFolder,
    policy: Policy,
    isolation: Isolation,
    bounds: Confinement | None = None,
) -> Iterator[Start]:
    """A `Start` of `argv` on `run`, its status pipe closed on the way out, whatever
    happened: every start on a run's tree (`confined`, the fork server) is made here."""
    start = Start(argv, run, policy, isolation, bounds)
    try:
        yield start
    finally:
        start.close()


def start_error(applied: dict[str, Any], returncode: int | None = None) -> InvalidRun | None:
    """Why a start did not start its command, as the first thing to say (before any
    consequence: no probe, no report); None when it did. The launcher could not enter
    the sandbox (it said so and exited SETUP_FAILED; `returncode` None: the process is
    still running, as a fork server is), or the command could not start inside it."""
    if "error" in applied and returncode in (None, SETUP_FAILED):
        return InvalidRun(f"could not enter the sandbox: {applied['error']}")
    failure = start_failure(applied)
    return InvalidRun(failure, hint=START_HINT) if failure is not None else None


def confined(
    argv: list[str],
    run: RunFolder,
    policy: Policy,
    isolation: Isolation,
    *,
    env: dict[str, str],
    output: Path,
    timeout_s: float,
    pgid_file: Path | None = None,
    poll: Callable[[], None] | None = None,
    fds: Iterable[int] = (),
    on_start: Callable[[], None] | None = None,
    bounds: Confinement | None = None,
) -> tuple[GroupResult, dict[str, Any]]:
    """Run `argv` on the run's tree in its own group, inside the sandbox when the
    isolation says so: the outcome, and what the launcher applied."""
    with starting(argv, run, policy, isolation, bounds) as start:
        try:
            outcome = run_in_group(
                start.argv, cwd=run.tree, env=env, output=output, timeout_s=timeout_s,
                pgid_file=pgid_file, poll=poll, on_start=on_start,
                pass_fds=[*fds, *start.fds],
            )  # fmt: skip
        except OSError as exc:
            raise InvalidRun(f"could not start the test command {start.argv[0]!r}: {exc}") from None
        applied = start.applied()
    error = start_error(applied, outcome.returncode)
    if error is not None:
        raise error
    return outcome, applied


def _close(fd: int) -> int:
    """Close `fd` if it is open; -1, its new value."""
    if fd >= 0:
        os.close(fd)
    return -1
