"""The fork server: runs mutate's candidates inside the run's sandbox, one fork each.

A new interpreter per candidate costs more than the tests of a seeded bug (starting
Python, importing pytest and its plugins, hypothesis's import at the end of every
session). So the gate starts this script once per search, through the same launcher
and with the same confinement as any test run (`evolution.run.forkserver` is its gate
end). It imports pytest and its plugins once, by running an empty pytest session in a
folder of the gate's (read-only here) with the gate's flags: the tree is not on its
path, its conftest files and tests are never read, nothing it reads can be written by a
candidate, and the probe is never loaded here (the probe reads its key at import, so it
must be imported fresh by each candidate). Before it says it is ready, and again before
every fork, it checks that no module it holds came from a folder a candidate can write.

Then, for each request on the control socket (a socketpair it inherited), it forks one
child that runs `python -m pytest ...` (or `python -m coverage run ... -m pytest ...`
for localisation) in-process, through runpy as the interpreter would, with the probe
and the same flags as `run_tests`, on the candidate's tree. Each request carries its own
descriptors (the frames pipe and the key pipe of a fresh channel, and an output file),
so every candidate reports over its own authenticated channel. A request with the output
file alone runs a command without the probe: `coverage json`, which reads the data the
localisation run wrote inside the sandbox rather than in the gate.

Between candidates nothing survives:
- the child is a copy of the server, which never imported tree code: module state,
  `sys.modules`, `sys.path` and the environment die with it;
- the child closes the control socket before anything else runs, and every descriptor
  it was not given;
- each child gets network, IPC and UTS namespaces of its own (inside a user namespace
  of its own, capabilities dropped, where the sandbox itself is one), so a socket in
  TIME_WAIT, a System V object, a POSIX message queue or a host name does not carry
  over; where they cannot be made, the run's System V objects are removed instead;
- after it ends, every process it left is killed: in the sandbox's PID namespace all
  but this server and its ancestors; without one, all of this server's descendants (it
  is a child subreaper, so an orphan that called setsid is still its descendant);
- the sandbox's private /dev/shm is emptied (the gate empties tmp/ and out/);
- what a process of the same user can change of this server without ptrace (its nice
  value, CPU affinity, scheduling policy, I/O priority, resource limits: a later
  candidate would inherit them, and run slower, or hit a limit) is put back, or the
  server is spent.

Nothing a candidate runs can reach this server: the server is not dumpable, and each
child enters a Landlock domain nested in the sandbox's before anything else, so it
cannot ptrace the server or PID 1 in any mode (memory, environment, descriptors) and,
with Landlock ABI 6, cannot signal them either. Where the kernel has no signal scoping a
candidate can still kill the server: the gate then counts the candidate as unusable,
and the next one gets a new server.

Standard library only until the warm-up session imports pytest; `_ratchet_enter` is the
sandbox launcher, copied beside this script by the gate: each candidate is isolated with
the launcher's own public helpers (its namespaces, capabilities, Landlock domain), never
a copy of them.

Why about 510 lines, over the project's 400: the gate copies this script alone into the
run's probe folder and starts it there, and the gate's tests import it as a module of
the package, where no sibling copy exists; the clean-up between candidates (the sweep,
/dev/shm, System V objects, the server's own state) is a section of it, not a module.
"""

import contextlib
import ctypes
import errno
import json
import os
import resource
import runpy
import select
import shutil
import signal
import socket
import sys
import threading
import time

MAX_MESSAGE = 1 << 22
SWEEP_LIMIT_S = 10.0  # a fork bomb that outlives this many seconds of killing: give up
_PR_SET_CHILD_SUBREAPER = 36
_CAP_LAST = 63  # every capability number a kernel may know (unknown ones fail, harmlessly)
_IPC_RMID = 0
_IOPRIO = {"x86_64": (252, 251), "aarch64": (31, 30)}  # ioprio_get, ioprio_set
_IOPRIO_WHO_PROCESS = 1
_LIMITS = sorted(
    (name, getattr(resource, name)) for name in dir(resource) if name.startswith("RLIMIT_")
)
_SYSV = {"shm": "shmctl", "sem": "semctl", "msg": "msgctl"}  # /proc/sysvipc file: remover
_LIBC = ctypes.CDLL(None, use_errno=True)


def _send(control, **message):
    control.send(json.dumps(message).encode())


def _stat(pid):
    """(ppid, state) of a process, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat[stat.rfind(")") + 2 :].split()
    return int(fields[1]), fields[0]


def _processes():
    """{pid: (ppid, state)} for every process /proc shows."""
    table = {}
    for name in os.listdir("/proc"):
        if name.isdigit() and (found := _stat(int(name))) is not None:
            table[int(name)] = found
    return table


def _ancestors(pid, table=None):
    """`pid` and its ancestors, from `table` or read afresh."""
    chain = set()
    while pid > 0 and pid not in chain:
        found = table.get(pid) if table is not None else _stat(pid)
        if found is None:
            break
        chain.add(pid)
        pid = found[0]
    return chain


def _descendants(table, root):
    children = {}
    for pid, (ppid, _state) in table.items():
        children.setdefault(ppid, []).append(pid)
    found, stack = [], list(children.get(root, []))
    while stack:
        pid = stack.pop()
        found.append(pid)
        stack.extend(children.get(pid, []))
    return found


def _kill(pid, descends_from):
    """SIGKILL `pid` through a pidfd. With `descends_from`, only if it still descends from
    that process once the pidfd pins it (outside a PID namespace a pid can be reused by a
    process that is not ours between reading /proc and the signal)."""
    try:
        pidfd = os.pidfd_open(pid)
    except OSError:
        return False
    try:
        if descends_from is not None and descends_from not in _ancestors(pid):
            return False
        signal.pidfd_send_signal(pidfd, signal.SIGKILL)
        return True
    except OSError:
        return False
    finally:
        os.close(pidfd)


def _reap():
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def sweep(whole_namespace):
    """Kill what the last candidate left; return how many processes that was.

    In the sandbox's own PID namespace that is every process but this server and its
    ancestors; without one, every descendant of this server. Rounds repeat until none
    is left (a process may fork while the last round kills), bounded in time."""
    me = os.getpid()
    killed = set()
    deadline = time.monotonic() + SWEEP_LIMIT_S
    while True:
        _reap()
        table = _processes()
        if whole_namespace:
            spared = _ancestors(me, table)
            candidates = [pid for pid in table if pid not in spared]
        else:
            candidates = _descendants(table, me)
        alive = [pid for pid in candidates if table[pid][1] not in ("Z", "X")]
        if not alive and not any(table[pid][0] == me for pid in candidates):
            return len(killed)
        if time.monotonic() > deadline:
            raise RuntimeError(f"{len(alive)} process(es) the candidate left survived killing")
        for pid in alive:
            if _kill(pid, None if whole_namespace else me):
                killed.add(pid)
        time.sleep(0.0005)


def scrub(folders, keep):
    """Empty private scratch folders, sparing the paths that lead to a kept one."""
    for folder in folders:
        for entry in os.scandir(folder):
            if any(k == entry.path or k.startswith(entry.path + "/") for k in keep):
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)


def remove_sysv_objects():
    """Remove every System V shared memory segment, semaphore set and message queue of
    this IPC namespace (the sandbox's own: all of them are the run's), for servers whose
    candidates cannot get IPC namespaces of their own. They outlive their creator."""
    left = 0
    for kind, remover in _SYSV.items():
        try:
            with open(f"/proc/sysvipc/{kind}", encoding="utf-8") as handle:
                rows = handle.read().splitlines()[1:]
        except OSError:
            continue
        for row in rows:
            ident = int(row.split()[1])
            if getattr(_LIBC, remover)(ident, *([0] if kind == "sem" else []), _IPC_RMID, None):
                left += ctypes.get_errno() not in (errno.EINVAL, errno.EIDRM)
    if left:
        raise RuntimeError(f"{left} System V IPC object(s) the candidate left could not be removed")


def process_state():
    """What of this server's own state a process of the same user can change from
    outside, without ptrace (setpriority, sched_setaffinity, sched_setscheduler,
    ioprio_set, prlimit), and every later candidate would inherit: its nice value, CPU
    affinity, scheduling policy, I/O priority and resource limits."""
    ioprio = _IOPRIO.get(os.uname().machine)
    return {
        "nice": os.getpriority(os.PRIO_PROCESS, 0),
        "affinity": sorted(os.sched_getaffinity(0)),
        "scheduler": [os.sched_getscheduler(0), os.sched_getparam(0).sched_priority],
        "ioprio": _LIBC.syscall(ioprio[0], _IOPRIO_WHO_PROCESS, 0) if ioprio else None,
        "limits": {name: list(resource.getrlimit(number)) for name, number in _LIMITS},
    }


def restore_process_state(state):
    """Put back what a candidate changed of `state` (see `process_state`); raise when
    it cannot be (a lowered hard limit, or a raised nice value, without the capability
    to undo it): this server is then spent."""
    if process_state() == state:
        return
    ioprio = _IOPRIO.get(os.uname().machine)
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, 0, state["nice"])
    with contextlib.suppress(OSError):
        os.sched_setaffinity(0, state["affinity"])
    with contextlib.suppress(OSError):
        policy, priority = state["scheduler"]
        os.sched_setscheduler(0, policy, os.sched_param(priority))
    for name, number in _LIMITS:
        with contextlib.suppress(OSError, ValueError):
            resource.setrlimit(number, tuple(state["limits"][name]))
    if ioprio:
        _LIBC.syscall(ioprio[1], _IOPRIO_WHO_PROCESS, 0, state["ioprio"])
    changed = [key for key, value in process_state().items() if value != state[key]]
    if changed:
        raise RuntimeError(f"a candidate changed the server's {', '.join(changed)} for good")


def foreign_modules(writable):
    """Modules this process holds from a folder a candidate can write (the tree, the
    run's tmp/ and out/, the policy's shared folders): none, or the server is spent."""
    roots = tuple(root.rstrip("/") + "/" for root in writable)
    found = []
    for name, module in list(sys.modules.items()):
        where = getattr(module, "__file__", None)
        if isinstance(where, str) and os.path.realpath(where).startswith(roots):
            found.append(name)
    return found


def _enter():
    """The sandbox launcher's module, for its public namespace and Landlock helpers: the
    gate copies it beside this script, and imports of it wait until the server runs
    (the gate's own tests import this module where there is no copy)."""
    import _ratchet_enter

    return _ratchet_enter


def _fresh_namespaces(network):
    """Network (loopback only, up, unless the policy says host), IPC and UTS
    namespaces of the candidate's own, made as the launcher makes the sandbox's. Root in
    the sandbox makes them directly; a sandbox that is itself a user namespace has no
    capabilities left after exec, so the candidate first makes a user namespace of its
    own, mapping only its own ids, and drops every capability that gave it once the
    namespaces are made."""
    enter = _enter()
    made = enter.new_namespaces(_LIBC, enter.namespace_flags(network, mounts=False))
    if network == "loopback":
        enter.loopback_up()
    if made == "user-namespace":
        _drop_every_capability()


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]  # fmt: skip


def _drop_every_capability():
    """No capability at all, as the suite has after exec in a user-namespace sandbox."""
    _enter().drop_capabilities(_LIBC, range(_CAP_LAST + 1))
    header = _CapHeader(0x20080522, 0)  # _LINUX_CAPABILITY_VERSION_3: two data words
    data = (_CapData * 2)()
    if _LIBC.capset(ctypes.byref(header), data) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"capset: {os.strerror(code)}")


def _isolate(network, abi):
    """What a child does first: its own Landlock domain (out of reach of the server),
    then namespaces of its own."""
    if abi:
        _enter().nest(abi)
    if network:
        _fresh_namespaces(network)


def _can(*setup):
    """Whether a child of this server can run `_isolate(*setup)` (a throwaway child
    tries it, so that a host that refuses part of it falls back before any candidate)."""
    child = os.fork()
    if child == 0:
        try:
            _isolate(*setup)
            os._exit(0)
        except BaseException:
            os._exit(1)
    return os.waitstatus_to_exitcode(os.waitpid(child, 0)[1]) == 0


def _exit_status(code):
    """What the interpreter would exit with after `raise SystemExit(code)`."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    print(code, file=sys.stderr)
    return 1


def _run_module(module):
    """`python -m MODULE` in this process (pytest, or coverage running pytest): the
    module's __main__ as __main__, then the interpreter's own exit steps (threads
    joined, atexit handlers run, streams flushed)."""
    try:
        runpy.run_module(module, run_name="__main__", alter_sys=True)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc.code)
    except BaseException:
        import traceback

        traceback.print_exc()
        status = 1
    try:
        import atexit

        threading._shutdown()
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        pass
    return status


def _candidate(request, fds, base_path, setup):
    """The child: become the candidate's `python -m pytest` process (or, with no
    channel, the command that reads the coverage data it wrote). Never returns."""
    *channel, output = fds  # the frames and key pipes of the candidate's channel, if any
    try:
        _isolate(*setup)
    except OSError as exc:
        os.write(output, f"ratchet fork server: could not isolate the candidate: {exc}\n".encode())
        os._exit(_enter().SETUP_FAILED)
    _enter().die_with_parent(_LIBC)
    os.setpgid(0, 0)
    os.dup2(output, 1)
    os.dup2(output, 2)
    os.close(output)
    low = 3
    for fd in sorted(channel):  # every other descriptor closes
        os.closerange(low, fd)
        low = fd + 1
    os.closerange(low, max(os.sysconf("SC_OPEN_MAX"), 1 << 16))
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    if channel:
        os.environ["RATCHET_CHANNEL"] = ",".join(map(str, channel))
    extra = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    sys.path[:] = [os.getcwd(), *extra, *base_path]
    option, module, *arguments = request["argv"]  # what follows the interpreter: -m ...
    if option != "-m":
        os._exit(2)
    sys.argv = [module, *arguments]
    os._exit(_run_module(module))


def _serve(control, request, fds, base_path, setup, state):
    """Run one candidate in a child; its exit status, and what it left, cleaned up."""
    sys.stdout.flush()
    sys.stderr.flush()
    child = os.fork()
    if child == 0:
        try:
            control.close()  # first: nothing the candidate runs may reach the gate's socket
            _candidate(request, fds, base_path, setup)
        finally:
            os._exit(70)
    for fd in fds:
        os.close(fd)
    _send(control, kind="started", pid=child)
    pidfd = os.pidfd_open(child)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(control, select.POLLIN)
    stopped = False
    while not any(fd == pidfd for fd, _event in poller.poll()):
        if not control.recv(MAX_MESSAGE):  # the gate is gone
            os.kill(child, signal.SIGKILL)
            sweep(request["pid_namespace"])
            sys.exit(0)
        os.kill(child, signal.SIGKILL)  # the gate's wall limit: stop the candidate
        stopped = True
        poller.unregister(control)
    os.close(pidfd)
    status = os.waitstatus_to_exitcode(os.waitpid(child, 0)[1])
    swept = sweep(request["pid_namespace"])
    scrub(request["scrub"], request["keep"])
    if request["remove_sysv"]:  # the sandbox's IPC namespace, shared by the candidates
        remove_sysv_objects()
    restore_process_state(state)
    return {"kind": "done", "status": status, "swept": swept, "stopped": stopped}


def _warm_up(arguments):
    """Import pytest and every plugin a session loads (and what they import on the way,
    hypothesis's at the session's end) by running one session on an empty folder."""
    import gc
    import inspect

    import pytest

    code = pytest.main(arguments)
    # Work every candidate would redo on the server's modules, done once: inspect's map
    # from files to modules (filled on a failing test's first traceback), and the
    # collector's scans of objects that live as long as the server (pytest's own
    # collections at the end of a session traverse every tracked object).
    inspect.getmodule(_warm_up.__code__)
    gc.collect()
    gc.freeze()
    return int(code)


def _ready(settings):
    """Warm up and check this server can isolate its candidates: (network, Landlock ABI)
    for `_isolate`, or an exception saying why it cannot serve."""
    code = _warm_up(settings["warm"])
    if code not in (0, 5):
        raise RuntimeError(f"the warm-up pytest session exited {code}")
    if found := foreign_modules(settings["writable"]):
        raise RuntimeError(f"the warm-up imported {found[0]} from a folder candidates write")
    if threading.active_count() != 1:  # a fork copies only the thread that forks
        raise RuntimeError(f"the warm-up left {threading.active_count() - 1} thread(s) running")
    abi = _enter().landlock_abi() if settings["sandboxed"] else 0
    if abi and not _can("", abi):
        raise RuntimeError("a candidate cannot enter a Landlock domain of its own")
    network = settings["network"]
    return (network if network and _can(network, abi) else ""), abi


def main(argv):
    control = socket.socket(fileno=int(argv[1]))
    settings = json.loads(argv[2])
    _enter().undumpable()
    _LIBC.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    base_path = list(sys.path[1:])  # without this script's folder
    try:
        setup = _ready(settings)
    except BaseException as exc:
        _send(control, kind="failed", error=f"{type(exc).__name__}: {exc}")
        return 1
    state = process_state()
    _send(control, kind="ready", pid=os.getpid(), namespaces=bool(setup[0]), landlock=setup[1])
    while True:
        data, fds, _flags, _address = socket.recv_fds(control, MAX_MESSAGE, 3)
        if not data:
            return 0
        request = json.loads(data)
        if len(fds) not in (1, 3):  # output, after the channel's frames and key pipes
            for fd in fds:
                os.close(fd)
            _send(control, kind="dirty", error=f"a request came with {len(fds)} descriptors")
            return 1
        try:
            if found := foreign_modules(settings["writable"]):
                raise RuntimeError(f"the server holds {found[0]}, from a folder candidates write")
            reply = _serve(control, request, fds, base_path, setup, state)
        except Exception as exc:  # could not clean up: this sandbox is spent
            _send(control, kind="dirty", error=f"{type(exc).__name__}: {exc}")
            return 1
        _send(control, **reply)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
