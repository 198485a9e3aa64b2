"""One coding agent's run: a scratch tree, Ratchet's sandbox, the model proxy, the limits.

The agent works on a standalone copy of the target commit (a run folder's tree: a git
repository of that one commit, which points nowhere back at the user's), never the
user's checkout, inside the sandbox every test run gets: the user's checkout, the repository's
git directory, the gate's run folders and the homes are out of its world; it may write
the scratch tree and its own private home and temporary folder, nothing else; its
network is a namespace of its own whose one reachable address is the proxy's (through
`relay.py`), unless its configuration says `direct` on purpose. Its environment is the
suite's (no secret, nothing naming the checkout), plus the adapter's variables.

While it runs, the kill flag and the proxy's refusals are watched: either stops the
whole process group at once. So do the timeout and the end of the run (a grandchild the
agent left behind dies with its group). What it printed is kept under `runs/agents/`,
every known secret and the run's proxy token redacted.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import stat
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from agent.atomicio import atomic_write_text
from agent.errors import EnvironmentFailure, InvalidRun
from agent.procgroup import GroupResult
from evolution.policy import Policy
from evolution.propose.agents.adapters import QUIET_ENV, Adapter, render
from evolution.run.confine import confined, confinement
from evolution.run.environment import environment
from evolution.run.folder import PGID_FILE, RunFolder
from evolution.sandbox.isolation import LAUNCHER, LAUNCHER_COPY, Isolation, isolated_argv
from evolution.sandbox.plan import Confinement, hidden_program

PORT = "@@RATCHET_PROXY_PORT@@"  # the relay writes the proxy's port here
MARK_ENV = "RATCHET_AGENT_RUN"  # names one run's processes
RELAY = Path(__file__).with_name("relay.py")
TRANSCRIPT_LIMIT = 1 << 20  # bytes of an agent's output kept under runs/: its last


class Stopped(Exception):
    """The run was stopped from outside the agent: `status` is 'killed' or 'capped'."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Finished:
    result: GroupResult
    output: str  # what it printed, redacted
    transcript: Path


def addresses(token: str, direct: bool) -> dict[str, str]:
    """The proxy's address and key as the agent is told them (the port is the relay's
    to fill in); a direct run is told nothing of a proxy."""
    if direct:
        return {"base_url": "", "origin": "", "key": ""}
    origin = f"http://127.0.0.1:{PORT}"
    return {"base_url": f"{origin}/v1", "origin": origin, "key": token}


def agent_environment(
    run: RunFolder, adapter: Adapter, values: dict[str, str], program: str,
    passed: dict[str, str],
) -> dict[str, str]:  # fmt: skip
    """The suite's environment (no secret, a private home and tmp), minus the tree on
    the import path (the agent is a program, not the code under test), plus the
    adapter's variables and what a direct run passes on purpose."""
    env = environment(run)
    env.pop("PYTHONPATH", None)
    env["PATH"] = os.pathsep.join([os.path.dirname(program), env.get("PATH", "/usr/bin:/bin")])
    env[MARK_ENV] = uuid.uuid4().hex  # this run's processes, for `sweep`
    env.update(QUIET_ENV)
    env.update({key: render(value, values) for key, value in adapter.env.items()})
    env.update(passed)
    return env


@dataclass(frozen=True)
class Launch:
    """One agent run as the proposer decided it."""

    command: list[str]  # the program (an absolute path) and its arguments, rendered
    env: dict[str, str]
    direct: bool  # without the proxy: the host's network, no relay
    socket: Path  # the proxy's, which the relay joins
    timeout_s: float
    transcript: Path  # under runs/agents/
    home_files: dict[str, str]  # the tool's settings, written into its private home


@dataclass(frozen=True)
class Prepared:
    argv: list[str]  # what the launcher starts: the relay, then the agent
    policy: Policy
    bounds: Confinement


def prepare(run: RunFolder, policy: Policy, isolation: Isolation, launch: Launch) -> Prepared:
    """Everything a start needs, checked before anything is reserved or started: the
    tool's settings in its home, its boundaries, and a program the sandbox can show."""
    program = launch.command[0]
    for name, content in launch.home_files.items():
        target = run.home / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(content, encoding="utf-8")
    agent_policy = replace(
        policy, writable=(".",), shared=(), network="host" if launch.direct else "loopback"
    )
    bounds = confinement(run, agent_policy, [program])
    hidden = hidden_program(bounds) if isolation.sandboxed else None
    if hidden is not None:
        raise EnvironmentFailure(
            f"the sandbox cannot show {program}: its folder {hidden} holds (or lies in) "
            "the repository's checkout, its git directory or the gate's run folders",
            hint="install the agent's command in a folder of its own (its virtual "
            "environment, /usr/local/bin, /opt/...)",
        )
    argv = launch.command
    if not launch.direct:
        relay = run.probe / RELAY.name
        shutil.copyfile(RELAY, relay)
        shutil.copyfile(LAUNCHER, run.probe / LAUNCHER_COPY)
        argv = isolated_argv(relay, [str(launch.socket), PORT, "--", *argv])
    return Prepared(argv, agent_policy, bounds)


def run_agent(
    run: RunFolder,
    isolation: Isolation,
    prepared: Prepared,
    launch: Launch,
    *,
    watch: Callable[[], None],
    redact: Callable[[str], str],
) -> Finished:
    """Run the agent on the run's tree, confined, in a process group recorded for the
    next gate run to end if this process dies, until it exits, times out or `watch`
    raises Stopped; its output redacted into the transcript in every case."""
    output = private_folder(run) / "agent.log"
    try:
        result, _applied = confined(
            prepared.argv, run, prepared.policy, isolation, env=launch.env, output=output,
            timeout_s=launch.timeout_s, poll=watch, bounds=prepared.bounds,
            pgid_file=run.path / PGID_FILE, fds=_inherited(launch),
        )  # fmt: skip
    except InvalidRun as failed:
        raise EnvironmentFailure(
            f"could not start {launch.command[0]}: {failed.message}", hint=failed.hint
        ) from None
    finally:
        sweep(launch.env[MARK_ENV])
        text = _keep(output, launch.transcript, redact)
    return Finished(result, text, launch.transcript)


def sweep(mark: str) -> list[int]:
    """Kill what the run left that still carries its mark, and say which. The launcher's
    pid namespace ends everything the agent started when the run ends; where Ratchet
    itself runs in a sandbox that cannot nest one (a gate's, a hardened unit's), a
    process that left the agent's group (setsid) would outlive the run: this finds the
    ones that kept the environment they were started with."""
    needle = f"{MARK_ENV}={mark}".encode()
    killed = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        environ = os.path.join(entry.path, "environ")
        with contextlib.suppress(OSError), open(environ, "rb") as variables:
            if needle in variables.read().split(b"\0"):
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
    return killed


@contextlib.contextmanager
def socket_path(run: RunFolder) -> Iterator[Path]:
    """A path for the proxy's socket that fits a Unix socket's 108 bytes wherever the
    run folder lies (inside a gate's sandbox the temporary folder is nested twice): the
    private folder named through a descriptor of it, `/proc/self/fd/N/model.sock`. The
    agent's relay inherits the descriptor under the same number, so the same path
    reaches it there, whatever the sandbox shows of the folder itself."""
    fd = os.open(private_folder(run), os.O_PATH | os.O_DIRECTORY)
    try:
        yield Path(f"/proc/self/fd/{fd}/model.sock")
    finally:
        os.close(fd)


def private_folder(run: RunFolder) -> Path:
    """Where Ratchet keeps what it reads back from an agent's run (its output, the
    proxy's socket): in the run folder but outside every folder the agent may write,
    so that it cannot put a link or a pipe where Ratchet will read."""
    folder = run.path / "agent"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


def _inherited(launch: Launch) -> list[int]:
    """The descriptor the proxy's socket path goes through (`socket_path`), for the
    relay; none for a direct run, which has no relay."""
    if launch.direct or not str(launch.socket).startswith("/proc/self/fd/"):
        return []
    return [int(launch.socket.parts[4])]


def _keep(output: Path, transcript: Path, redact: Callable[[str], str]) -> str:
    """The end of what the agent printed (where a tool's report and its last words
    are), redacted, into the transcript. The cut falls on a line's start, so that no
    secret is kept in part where the redactor could not know it."""
    raw = b""
    with contextlib.suppress(OSError):
        # Never a link, never a pipe, even where nothing untrusted could have put one.
        fd = os.open(output, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            size = os.fstat(fd).st_size
            if stat.S_ISREG(os.fstat(fd).st_mode):
                handle.seek(max(0, size - TRANSCRIPT_LIMIT))
                raw = handle.read(TRANSCRIPT_LIMIT)
                if size > TRANSCRIPT_LIMIT:
                    raw = b"[... the start is cut]\n" + raw.partition(b"\n")[2]
    text = redact(raw.decode("utf-8", "replace"))
    transcript.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(transcript, text)
    return text
