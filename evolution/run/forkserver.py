"""Evaluate mutate's candidates without a new interpreter per candidate: the gate's end of
the fork server (`evolution/probe/_ratchet_forkserver.py` is the server).

A search evaluates hundreds of candidates of one tree. With one `python -m pytest` per
candidate most of the time goes to starting Python and importing pytest, its plugins
and hypothesis (whose ~120 modules pytest rewrites for assertions on every import, with
no bytecode cache in the sandbox), again and again: about 1.2 s a candidate. The server
is started once, through the same sandbox launcher and confinement as `run_tests`,
imports all that once, and forks one child per candidate that runs the selected tests
in-process with the probe and the same flags (about 0.1-0.2 s a candidate).

What the gate trusts is unchanged: every candidate gets a fresh channel (a new key,
sent over a new pipe with the frames pipe, as descriptors over the control socket), its
canaries are planted afresh, and its result comes from `result_from_frames` with the
same cross-checks as any run (the JSON report, the canaries, collected == ran). Anything
else (the server dying, the wall limit, a clean-up that failed, a message that is not
the protocol's) makes the candidate unusable (InvalidRun), never a verdict.

A candidate must not be able to change the next one's verdict, nor reach the server or
the gate. Each child enters a Landlock domain of its own before anything runs (no ptrace
of the server, no signals to it from ABI 6) and, where the sandbox allows, network, IPC
and UTS namespaces of its own. Between candidates the gate empties the run's tmp/ and
out/ (before a server starts too, so that a new server never starts beside what a
candidate left); the server kills every process the candidate left, empties its private
/dev/shm and System V objects, and puts back its own scheduling state and limits (see
the server's docstring). A server that died or could not put itself back is replaced
for the next candidate. Where a fork server cannot serve (a test command other than
`python -m pytest`, no Linux pidfds, a server that does not start) every candidate runs
through `run_tests`, one process each, as before; `tests/mutate/test_mutate_forkserver.py`
holds both ways to the same outcomes and the same search.

Nothing here starts or judges a suite its own way: the server is started by
`evolution.run.confine.starting` (the launcher, the plan and the status a gate run
gets), and each candidate is prepared by `suite_start` and judged by `judged`, as
`run_tests` does; only the execution (a child of the server) is this module's.

Why about 440 lines, over the project's 400: this is one protocol's gate end (start a
server, send a request, wait for its end, retire a server that cannot go on), and each
step reads and replaces the same server; split, each half would reach into the other's.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from agent.errors import InvalidRun
from agent.procgroup import die_with_parent, group_is_ours, kill_group
from evolution.policy import Policy
from evolution.run.channel import Channel
from evolution.run.confine import start_error, starting
from evolution.run.environment import environment
from evolution.run.folder import PGID_FILE, RunFolder, remove_run_folder
from evolution.run.launch import (
    Ended,
    SuiteStart,
    coverage_report,
    judged,
    pytest_flags,
    run_tests,
    suite_start,
)
from evolution.run.report import RunResult
from evolution.sandbox.isolation import LAUNCHER, LAUNCHER_COPY, Isolation

PROBE_DIR = Path(__file__).resolve().parent.parent / "probe"
SERVER = "_ratchet_forkserver.py"
WARM_UP = "ratchet-warm-up"  # in probe/: a folder no candidate can write
START_TIMEOUT_S = 120.0  # importing pytest, its plugins and hypothesis on a loaded host
STOP_GRACE_S = 10.0  # after the wall limit: the server's time to kill and sweep
MAX_MESSAGE = 1 << 22


class ServerUnavailable(Exception):
    """The server could not start here: candidates go through `run_tests` instead."""


class _TooLong(Exception):
    """A request too long for one message: this one goes through `run_tests`."""


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _own_ipc(applied: dict[str, Any]) -> bool:
    """Whether the sandbox launcher gave the run an IPC namespace of its own."""
    return applied.get("namespaces") in ("root", "user-namespace")


def unsupported(policy: Policy) -> str:
    """Why a fork server cannot run this policy's candidates ('' when it can)."""
    if policy.argv()[1:3] != ["-m", "pytest"]:
        return f"the test command is not `python -m pytest` ({policy.test_command})"
    if not sys.platform.startswith("linux") or not hasattr(os, "pidfd_open"):
        return "a fork server needs Linux with pidfds"
    return ""


@dataclass
class _Server:
    process: subprocess.Popen[bytes]
    control: socket.socket
    applied: dict[str, Any]  # what the sandbox launcher applied
    namespaces: bool = False  # whether each candidate gets network, IPC, UTS of its own
    landlock: int = 0  # the ABI of each candidate's own Landlock domain (0: none)
    ready: bool = False  # it said it has imported pytest and is waiting for requests
    child: int = 0  # the running candidate's pid (its group id)

    def receive(self, timeout_s: float) -> dict[str, Any] | None:
        """The server's next message; None when it is gone (or broke the protocol);
        TimeoutError when it said nothing for `timeout_s`."""
        poller = select.poll()
        poller.register(self.control, select.POLLIN)
        if not poller.poll(max(timeout_s, 0.0) * 1000):
            raise TimeoutError
        try:
            data = self.control.recv(MAX_MESSAGE)
            message = json.loads(data) if data else None
        except (OSError, ValueError):
            return None
        return message if isinstance(message, dict) else None

    def stop(self) -> None:
        """End the server and its sandbox: EOF on its socket ends its loop; whatever is
        still there after a moment is killed with the launcher's group (in a PID
        namespace, the launcher's death takes the whole namespace)."""
        self.control.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=2.0)
        kill_group(self.process.pid, grace_s=0.5, reap=self.process.poll)
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()


@dataclass(frozen=True)
class _Options:
    """How one candidate's tests run, beside which ones (`run_tests`'s keywords)."""

    coverage_rc: Path | None = None
    by_file: bool = False
    stop_on: list[str] | None = None
    record: dict[str, Any] | None = None


@dataclass
class CandidateRuns:
    """Runs selected tests on `run.tree` for one candidate after another: through a fork
    server when it can, else through `run_tests`. Use it as a context manager."""

    policy: Policy
    run: RunFolder
    isolation: Isolation
    fork: bool = True  # False: one process per candidate (the reference a server matches)
    fallback: str = ""  # why candidates go through run_tests ('' while a server serves)
    started: int = 0  # servers started
    _server: _Server | None = field(default=None, repr=False)
    _modes: dict[Path, int] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.fallback = unsupported(self.policy) or ("" if self.fork else "asked for")
        self._modes = {folder: folder.stat().st_mode for folder in (self.run.tmp, self.run.out)}

    def __enter__(self) -> CandidateRuns:
        """Start the server now: its warm-up (about a second of imports) overlaps
        whatever the caller does before the first candidate."""
        if not self.fallback:
            self._clean()
            self._start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def how(self) -> str:
        """How candidates were evaluated, for the search's report."""
        if self.fallback:
            return f"one pytest process per candidate: {self.fallback}"
        where = "in the sandbox" if self.isolation.sandboxed else "without a sandbox"
        return f"fork server {where} ({self.started} started)"

    @contextlib.contextmanager
    def limited(self, policy: Policy | None) -> Iterator[None]:
        """Runs started inside take their time limits from `policy` (a candidate's,
        measured on the tests it runs); None keeps the server's own."""
        saved = self.policy
        self.policy = policy or saved
        try:
            yield
        finally:
            self.policy = saved

    def __call__(
        self,
        select: Iterable[str],
        *,
        coverage_rc: Path | None = None,
        by_file: bool = False,
        stop_on: Iterable[str] | None = None,
        record: dict[str, Any] | None = None,
    ) -> RunResult:
        """The result of `select` on the tree as it is now; InvalidRun when unusable.
        With `coverage_rc`, under coverage with each test's lines recorded under its node
        id (fault localisation), as `run_tests` does with `contexts`; with `by_file`,
        `stop_on` and `record`, as `run_tests` takes them (a recording in a process of
        its own: the server's probe records nothing)."""
        wanted = sorted(set(select))
        self._clean()
        server = None if record is not None else self._serving()
        options = _Options(coverage_rc, by_file, None if stop_on is None else sorted(stop_on),
                           record)  # fmt: skip
        if server is None:
            return self._one_process(wanted, options)
        return self._evaluate(server, wanted, options)

    def _one_process(self, select: list[str], options: _Options) -> RunResult:
        """One candidate through run_tests; while a server lives, the run folder's group
        file is the server's again afterwards (a later run ends it after a SIGKILL)."""
        try:
            return run_tests(self.policy, self.run, self.isolation, select=select,
                             coverage_rc=options.coverage_rc,
                             contexts=options.coverage_rc is not None,
                             by_file=options.by_file, stop_on=options.stop_on,
                             record=options.record)  # fmt: skip
        finally:
            if self._server is not None:
                (self.run.path / PGID_FILE).write_text(str(self._server.process.pid))

    def close(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
        (self.run.path / PGID_FILE).unlink(missing_ok=True)

    def _clean(self) -> None:
        """Empty tmp/ and out/, keeping the folders themselves: the sandbox's rules (and
        its bind mounts) hold on to those very directories."""
        for folder, mode in self._modes.items():
            os.chmod(folder, mode)  # a candidate may chmod its own folders
            for entry in os.scandir(folder):
                if entry.is_dir(follow_symlinks=False):
                    remove_run_folder(Path(entry.path))
                else:
                    os.unlink(entry.path)

    def _serving(self) -> _Server | None:
        """A ready server (started if there is none, or if the last one died between
        candidates: the OOM killer, say), or None when candidates go through run_tests."""
        if self._server is not None and self._server.process.poll() is not None:
            self._lose(self._server)
        self._start()
        server = self._server
        if server is not None and not server.ready:
            try:
                self._await_ready(server)
            except ServerUnavailable as exc:
                server.stop()
                self._server = None
                self.fallback = f"the fork server could not start: {exc}"
        return self._server

    def _start(self) -> None:
        """Spawn a server, unless candidates go through run_tests or one is running."""
        if not self.fallback and self._server is None:
            try:
                self._server = self._spawn()
            except ServerUnavailable as exc:
                self.fallback = f"the fork server could not start: {exc}"

    def _spawn(self) -> _Server:
        run, policy = self.run, self.policy
        shutil.copyfile(PROBE_DIR / SERVER, run.probe / SERVER)
        shutil.copyfile(LAUNCHER, run.probe / LAUNCHER_COPY)
        # An empty session in a folder of the gate's (its ini stops pytest's search for
        # configuration); the JSON report is not written.
        warm = run.probe / WARM_UP
        warm.mkdir(exist_ok=True)
        (warm / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
        writable = [run.tree, run.tmp, run.out, *map(Path, policy.shared), Path("/dev/shm")]
        settings = {
            "warm": [*pytest_flags(policy, "none"), str(warm)],
            "sandboxed": self.isolation.sandboxed,
            "network": policy.network if self.isolation.sandboxed else "",
            "writable": [os.path.realpath(path) for path in writable],
        }
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        ours.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, MAX_MESSAGE)  # the host caps it
        argv = [policy.argv()[0], str(run.probe / SERVER), str(theirs.fileno()),
                json.dumps(settings)]  # fmt: skip
        # The server never sees the tree on its path; each candidate gets the full one.
        env = {k: v for k, v in environment(run).items() if k != "PYTHONPATH"}
        with starting(argv, run, policy, self.isolation) as start:  # as a gate run starts
            try:
                with open(run.path / "forkserver.log", "wb") as log:
                    process = subprocess.Popen(
                        start.argv,
                        cwd=warm,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,
                        preexec_fn=die_with_parent,
                        pass_fds=(theirs.fileno(), *start.fds),
                    )
            except OSError as exc:
                ours.close()
                raise ServerUnavailable(f"{start.argv[0]}: {exc}") from None
            finally:
                theirs.close()
            (run.path / PGID_FILE).write_text(str(process.pid))
            server = _Server(process, ours, start.applied())
        error = start_error(server.applied)
        if error is not None:
            server.stop()
            raise ServerUnavailable(error.message)
        return server

    def _await_ready(self, server: _Server) -> None:
        try:
            hello = server.receive(START_TIMEOUT_S)
        except TimeoutError:
            hello = None
        if hello is None or hello.get("kind") != "ready":
            raise ServerUnavailable(
                (hello or {}).get("error")
                or f"it exited ({server.process.poll()}) before it was ready; see forkserver.log"
            )
        server.namespaces = bool(hello.get("namespaces"))
        server.landlock = int(hello.get("landlock") or 0)
        server.ready = True
        self.started += 1

    def coverage_report(self, rc: Path) -> dict[str, Any] | None:
        """coverage's JSON report, with contexts, of the data the last run wrote; None if
        there is none. Read inside the sandbox, as `testrun.coverage_report` does (the
        data was written by the code under test): by a child of the server, which has
        no channel to report on and whose tmp/ and out/ are the last run's."""
        server = self._server
        if server is None or not server.ready or server.process.poll() is not None:
            return coverage_report(self.policy, self.run, self.isolation, rc)

        def in_child(argv: list[str], env: dict[str, str], output: Path) -> int:
            try:
                return int(self._run(server, argv[1:], env, output)["status"])
            except _TooLong:
                raise InvalidRun("the request is too long for the fork server") from None

        return coverage_report(self.policy, self.run, self.isolation, rc, in_child)

    def _evaluate(self, server: _Server, select: list[str], options: _Options) -> RunResult:
        """One candidate as `run_tests` would run it (the same start, channel, checks and
        redaction), executed by a child of the server instead of a process of its own."""
        start = suite_start(self.policy, self.run, select=select,
                            coverage_rc=options.coverage_rc,
                            contexts=options.coverage_rc is not None, by_file=options.by_file,
                            stop_on=options.stop_on)  # fmt: skip

        def in_child(start: SuiteStart, channel: Channel, output: Path) -> Ended:
            began = time.monotonic()
            # The server serves `python -m pytest` only: what follows the interpreter.
            done = self._run(server, start.argv[1:], start.env, output, channel.child_fds,
                             on_sent=channel.started)  # fmt: skip
            return Ended(done["status"], time.monotonic() - began, server.applied)

        try:
            return judged(self.run, self.isolation, start, in_child)
        except _TooLong:
            return self._one_process(select, options)

    def _run(
        self,
        server: _Server,
        argv: list[str],
        env: dict[str, str],
        output: Path,
        fds: tuple[int, ...] = (),
        on_sent: Callable[[], None] | None = None,
    ) -> dict[str, Any]:
        """Have the server run `python ARGV...` in a child on the tree, with `env`, both
        streams to `output` and `fds` (a channel's) inherited; its 'done' message."""
        run = self.run
        request = {
            "argv": argv,
            "env": env,
            "cwd": str(run.tree),
            "pid_namespace": bool(server.applied.get("pid_namespace")),
            # Candidates without IPC namespaces of their own share the sandbox's: the
            # server removes what each one left there (never the host's).
            "remove_sysv": not server.namespaces and _own_ipc(server.applied),
            # The sandbox's own /dev/shm (the only scratch folder it may write), minus
            # what the launcher bound back into it (plan.kept: the run, shared paths).
            "scrub": ["/dev/shm"] if server.applied.get("scratch_private") else [],
            "keep": [str(run.path), *self.policy.shared],
        }
        message = json.dumps(request).encode()
        if len(message) > MAX_MESSAGE:  # more than the server reads at once
            raise _TooLong
        descriptor = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            socket.send_fds(server.control, [message], [*fds, descriptor])
        except OSError as exc:
            if exc.errno == errno.EMSGSIZE:  # more than the host lets one message carry
                raise _TooLong from None
            self._lose(server)
            raise InvalidRun(f"the fork server took no request: {exc}") from None
        finally:
            os.close(descriptor)
        if on_sent is not None:
            on_sent()
        return self._await(server, time.monotonic() + self.policy.run_timeout_s)

    def _await(self, server: _Server, deadline: float) -> dict[str, Any]:
        """The server's report that the candidate ended and was cleaned up after; or
        InvalidRun, replacing the server when it cannot go on."""
        while True:
            try:
                message = server.receive(deadline - time.monotonic())
            except TimeoutError:
                limit = f"the candidate exceeded its {self.policy.run_timeout_s:g} s limit"
                with contextlib.suppress(OSError):
                    server.control.send(b'{"kind": "stop"}')
                try:
                    message = server.receive(STOP_GRACE_S)
                except TimeoutError:
                    message = None
                if message is None or message.get("kind") != "done":
                    self._lose(server)
                    raise InvalidRun(f"{limit}; the fork server did not stop it") from None
                raise InvalidRun(f"{limit} and was stopped") from None
            kind = (message or {}).get("kind")
            if kind == "started" and isinstance(message, dict) and _is_int(message.get("pid")):
                server.child = message["pid"]
            elif kind == "done" and isinstance(message, dict) and _is_int(message.get("status")):
                return message
            else:
                self._lose(server)
                reason = (message or {}).get("error") or "it died (a candidate can kill it)"
                raise InvalidRun(f"the fork server was lost during the candidate: {reason}")

    def _lose(self, server: _Server) -> None:
        """Retire a server that cannot serve the next candidate. Outside a PID namespace
        the candidate's own group is ended too (a setsid grandchild of a candidate that
        killed the server is the one thing that can outlive it there)."""
        candidate = server.child
        server.stop()
        outside = not server.applied.get("pid_namespace")
        if candidate > 1 and outside and group_is_ours(candidate, self.run.path):
            kill_group(candidate, grace_s=0.5)
        self._server = None

