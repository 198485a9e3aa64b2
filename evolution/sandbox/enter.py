"""Enter the test run's sandbox, then exec the test command: the one process that does it.

The gate starts this file as a script (`python -I -S enter.py PLAN -- ARGV...`) in the
suite's new process group. It must not import anything but the standard library: it runs
before the suite, with the gate's own rights, and is the only code that ever holds them
in that process. In order, it:

1. unshares the network (only a loopback interface, brought up), UTS and IPC namespaces,
   and a mount namespace in which `/run` (systemd's, D-Bus's and docker's sockets) is
   covered by an empty tmpfs: as root directly, otherwise inside a new user namespace
   that maps only the caller's own uid and gid;
2. where mounts work, starts a PID namespace with its own /proc: the launcher stays
   outside and waits, a PID 1 inside starts the command and reaps orphans, and when it
   ends the kernel kills whatever the suite left (even what left its process group);
3. drops the capabilities a root suite could use to step outside any sandbox (loading a
   kernel module, ptrace, raw I/O, open_by_handle_at, BPF, ...);
4. sets no_new_privs and restricts itself with Landlock: the plan's paths get the rights
   it names (read-only, read-write, device), nothing else is reachable, and the suite can
   neither signal nor connect to an abstract socket of a process outside its domain;
5. reports what it applied on the status descriptor, closes it, and execs the command,
   with the paths it granted in RATCHET_SANDBOX_GRANTED: a gate run inside the suite
   (Ratchet's own tests run their gate) cannot list the folders this one did not grant
   whole, and plans its own, nested sandbox from these instead.

Each layer the host lacks is reported, not hidden; Landlock itself is not optional: when
it cannot be applied the launcher exits 121 before the command runs.

Shared: the gate imports it (`landlock_abi`, `parse_status`, `undumpable`) so that the
constants live in one place, and the fork server imports a copy of it, `_ratchet_enter`
beside the probe, to isolate each candidate the way this file isolates the run
(`new_namespaces`, `namespace_flags`, `loopback_up`, `drop_capabilities`, `nest`,
`die_with_parent`, `undumpable`). What either uses is public; the rest is this file's.

Why one file of about 700 lines, over the project's 400: it starts as a script under
`python -I -S`, where its own folder is not on `sys.path`, so it cannot import a sibling
without editing the path of a process that still holds the gate's rights; and the fork
server gets it as one copied file. Its parts (Landlock, namespaces and mounts, seccomp,
the PID namespace's init) are sections of this file, in the order `main` applies them.
"""

import contextlib
import ctypes
import errno
import fcntl
import json
import os
import signal
import socket
import struct
import sys

SETUP_FAILED = 121  # exit status when the sandbox could not be entered; the command never ran
GRANTED_ENV = "RATCHET_SANDBOX_GRANTED"  # the paths the command may read, as a JSON list

_SYS_LANDLOCK_CREATE_RULESET = 444  # the same number on every architecture (since 5.13)
_SYS_LANDLOCK_ADD_RULE = 445
_SYS_LANDLOCK_RESTRICT_SELF = 446
_CREATE_RULESET_VERSION = 1
_RULE_PATH_BENEATH = 1

# Filesystem rights, and the ABI version that introduced each.
EXECUTE, WRITE_FILE, READ_FILE, READ_DIR = 1 << 0, 1 << 1, 1 << 2, 1 << 3
REMOVE_DIR, REMOVE_FILE, MAKE_CHAR, MAKE_DIR = 1 << 4, 1 << 5, 1 << 6, 1 << 7
MAKE_REG, MAKE_SOCK, MAKE_FIFO, MAKE_BLOCK, MAKE_SYM = 1 << 8, 1 << 9, 1 << 10, 1 << 11, 1 << 12
REFER, TRUNCATE, IOCTL_DEV = 1 << 13, 1 << 14, 1 << 15
_FS_BY_ABI = {1: (1 << 13) - 1, 2: (1 << 14) - 1, 3: (1 << 15) - 1, 5: (1 << 16) - 1}
_SCOPE_ABSTRACT_UNIX_SOCKET, _SCOPE_SIGNAL = 1 << 0, 1 << 1
_FILE_RIGHTS = EXECUTE | WRITE_FILE | READ_FILE | TRUNCATE | IOCTL_DEV

READ = EXECUTE | READ_FILE | READ_DIR
KINDS = {
    "ro": READ,
    "rw": (1 << 16) - 1 & ~(MAKE_CHAR | MAKE_BLOCK),
    "dev": READ_FILE | WRITE_FILE | READ_DIR | IOCTL_DEV | TRUNCATE,
}

_PR_SET_NO_NEW_PRIVS = 38
_PR_CAPBSET_DROP = 24
_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL = 47, 4
# Capabilities a root suite could use to leave any sandbox or to harm the host beyond
# its files: CAP_DAC_READ_SEARCH (open_by_handle_at), LINUX_IMMUTABLE, SYS_MODULE,
# SYS_RAWIO, SYS_PTRACE, SYS_PACCT, SYS_BOOT, SYS_TIME, SYS_TTY_CONFIG, MKNOD,
# AUDIT_CONTROL, SETFCAP, MAC_OVERRIDE, MAC_ADMIN, SYSLOG, WAKE_ALARM, BLOCK_SUSPEND,
# AUDIT_READ, PERFMON, BPF, CHECKPOINT_RESTORE. CAP_SYS_ADMIN stays: a suite that itself
# runs this gate (Ratchet's own) needs it for the nested namespaces, and Landlock
# already refuses mount(2) inside the domain.
DROPPED_CAPS = (2, 9, 16, 17, 19, 20, 22, 25, 26, 27, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40)

# Namespace flags of unshare(2); public, with the helpers below that take them, because
# the fork server makes each candidate's namespaces with them (see "Shared").
CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC = 0x00020000, 0x04000000, 0x08000000
CLONE_NEWUSER, CLONE_NEWNET, CLONE_NEWPID = 0x10000000, 0x40000000, 0x20000000
_MS_BIND = 4096
_PR_SET_PDEATHSIG, _PR_SET_DUMPABLE = 1, 4
_MS_NOSUID, _MS_NODEV, _MS_NOEXEC, _MS_REC, _MS_PRIVATE = 2, 4, 8, 16384, 1 << 18
_SIOCGIFFLAGS, _SIOCSIFFLAGS, _IFF_UP = 0x8913, 0x8914, 0x1
_MNT_DETACH = 2


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _fail(call):
    code = ctypes.get_errno()
    return OSError(code, f"{call}: {os.strerror(code)}")


def landlock_abi():
    """The Landlock ABI version this kernel offers, 0 when it has none (or it is off)."""
    if not sys.platform.startswith("linux"):
        return 0
    try:
        libc = _libc()
    except OSError:
        return 0
    libc.syscall.restype = ctypes.c_long
    version = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, None, ctypes.c_size_t(0),
                           ctypes.c_uint32(_CREATE_RULESET_VERSION))
    return max(int(version), 0)


def handled_fs(abi):
    return _FS_BY_ABI[max(v for v in _FS_BY_ABI if v <= abi)] if abi else 0


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("handled_access_fs", ctypes.c_uint64), ("handled_access_net", ctypes.c_uint64),
                ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def restrict(rules, abi):
    """Apply Landlock: each (path, kind) in `rules` gets its rights; nothing else does.

    Paths that do not exist are skipped (a plan lists what a host usually has). Returns
    what the domain handles, for the status report.
    """
    libc = _libc()
    handled = handled_fs(abi)
    scoped = _scopes(abi)
    ruleset = _ruleset(libc, handled, scoped, abi)
    try:
        for path, kind in rules:
            try:
                fd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue
            try:
                access = KINDS[kind] & handled
                if not os.path.isdir(f"/proc/self/fd/{fd}"):
                    access &= _FILE_RIGHTS
                rule = _PathBeneathAttr(access, fd)
                if access and libc.syscall(_SYS_LANDLOCK_ADD_RULE, ctypes.c_int(ruleset),
                                           ctypes.c_int(_RULE_PATH_BENEATH), ctypes.byref(rule),
                                           ctypes.c_uint32(0)) < 0:
                    raise _fail(f"landlock_add_rule({path})")
            finally:
                os.close(fd)
        _restrict_self(libc, ruleset)
    finally:
        os.close(ruleset)
    return {"abi": abi, "signals": bool(scoped), "abstract_sockets": bool(scoped)}


def nest(abi):
    """Enter a Landlock domain nested in the current one that changes no file access:
    a fork server's candidate calls it first, so that it cannot ptrace the server or
    PID 1 of the sandbox, read or write their memory, or take their descriptors
    (Landlock lets a process ptrace only into its own domain or one nested in it) and,
    from ABI 6, can neither signal them nor connect to their abstract sockets. Whatever
    a candidate starts inherits its domain, and each candidate's domain is a sibling of
    the next one's, out of each other's reach too."""
    libc = _libc()
    scoped = _scopes(abi)
    # A ruleset must handle something. Before ABI 6 that is making block devices, which
    # no plan grants: nothing the candidate could do before is refused now.
    ruleset = _ruleset(libc, 0 if scoped else MAKE_BLOCK, scoped, abi)
    try:
        _restrict_self(libc, ruleset)
    finally:
        os.close(ruleset)
    return {"abi": abi, "signals": bool(scoped), "abstract_sockets": bool(scoped)}


def _scopes(abi):
    """What a domain keeps to itself: signals and abstract Unix sockets, from ABI 6."""
    return _SCOPE_ABSTRACT_UNIX_SOCKET | _SCOPE_SIGNAL if abi >= 6 else 0


def _ruleset(libc, handled, scoped, abi):
    libc.syscall.restype = ctypes.c_long
    attr = _RulesetAttr(handled, 0, scoped)
    size = ctypes.sizeof(_RulesetAttr) if abi >= 6 else 16 if abi >= 4 else 8
    ruleset = libc.syscall(_SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr),
                           ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        raise _fail("landlock_create_ruleset")
    return ruleset


def _restrict_self(libc, ruleset):
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.syscall(_SYS_LANDLOCK_RESTRICT_SELF, ctypes.c_int(ruleset), ctypes.c_uint32(0)) < 0:
        raise _fail("landlock_restrict_self")


def _write(path, text):
    fd = os.open(path, os.O_WRONLY)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def unshare(libc, flags):
    """unshare(2) with `flags` (the CLONE_NEW* constants); OSError when refused."""
    if libc.unshare(ctypes.c_int(flags)) != 0:
        raise _fail("unshare")


def namespace_flags(network, mounts=True):
    """The namespaces a sandboxed process gets: UTS and IPC, network when `network` is
    "loopback" (with "host" it keeps the host's), mount with `mounts` (the launcher's;
    a fork server's candidate stays in the sandbox's mount namespace)."""
    flags = CLONE_NEWUTS | CLONE_NEWIPC | (CLONE_NEWNS if mounts else 0)
    return flags | (CLONE_NEWNET if network == "loopback" else 0)


def new_namespaces(libc, flags):
    """Unshare `flags`: directly where this process may (root with CAP_SYS_ADMIN),
    otherwise inside a new user namespace that maps only its own uid and gid.

    Returns how they were made: "root", "user-namespace", or raises OSError. In a user
    namespace the process holds every capability over what it just made; a caller
    that keeps running code (a candidate, not the launcher, which drops them before it
    execs) drops them itself.
    """
    try:
        unshare(libc, flags)
        return "root"
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.EACCES):
            raise
    uid, gid = os.getuid(), os.getgid()
    unshare(libc, CLONE_NEWUSER | flags)
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{uid} {uid} 1")
    _write("/proc/self/gid_map", f"{gid} {gid} 1")
    return "user-namespace"


def loopback_up():
    """Bring up the loopback interface of a new network namespace (it starts down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        request = struct.pack("16sH22x", b"lo", 0)
        flags = struct.unpack("16sH22x", fcntl.ioctl(sock, _SIOCGIFFLAGS, request))[1]
        fcntl.ioctl(sock, _SIOCSIFFLAGS, struct.pack("16sH22x", b"lo", flags | _IFF_UP))


def _private_mounts(libc):
    """Stop mount events from leaving this (new) mount namespace."""
    if libc.mount(None, b"/", None, ctypes.c_ulong(_MS_REC | _MS_PRIVATE), None) != 0:
        raise _fail("mount(MS_PRIVATE)")


def _hide_run(libc):
    """Cover /run with an empty tmpfs: its sockets (systemd, D-Bus, docker, a user's
    session bus) would let a suite ask a service outside the sandbox to run code."""
    if os.path.isdir("/run"):
        _mount(libc, "tmpfs", "/run", "tmpfs", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC,
               "mode=755,size=1m")  # fmt: skip


_SCRATCH = ("/tmp", "/var/tmp", "/dev/shm")


def _under(path, root):
    return path == root or path.startswith(root.rstrip("/") + "/")


def _mount(libc, source, target, fstype, flags, data):
    encode = (lambda v: None if v is None else v.encode())  # noqa: E731
    if libc.mount(encode(source), encode(target), encode(fstype), ctypes.c_ulong(flags),
                  encode(data)) != 0:  # fmt: skip
        raise _fail(f"mount({target})")


def _outermost(keep):
    """The kept paths under a scratch folder that no other one holds, each with "rw" if it
    or anything it holds is kept writable: a path bound inside an earlier bind would be
    created in the host's folder, not the private one."""
    wanted = {}
    for entry in keep:
        path, mode = (entry, "rw") if isinstance(entry, str) else (entry[0], entry[1])
        path = os.path.normpath(path)
        inside = any(_under(path, folder) and path != folder for folder in _SCRATCH)
        if inside and os.path.isdir(path):
            wanted[path] = "rw" if "rw" in (mode, wanted.get(path)) else "ro"
    outer = {}
    for path in sorted(wanted, key=len):
        holder = next((o for o in outer if _under(path, o)), None)
        if holder is None:
            outer[path] = wanted[path]
        elif wanted[path] == "rw":
            outer[holder] = "rw"
    return outer


# statvfs flags that a read-only remount must repeat: a mount made outside a user
# namespace keeps them locked, and leaving one out fails the remount with EPERM.
_ST_TO_MS = ((1, 1), (2, 2), (4, 4), (8, 8), (1024, 1024), (2048, 2048), (4096, 1 << 21))
_MS_REMOUNT, _MS_RDONLY = 32, 1


def _read_only(libc, path):
    flags = _MS_BIND | _MS_REMOUNT | _MS_RDONLY
    current = os.statvfs(path).f_flag
    for st_flag, ms_flag in _ST_TO_MS:
        if current & st_flag:
            flags |= ms_flag
    _mount(libc, None, path, None, flags, None)


def _private_scratch(libc, keep, status):
    """An empty tmpfs over each shared scratch folder, with what the run needs bound back
    at its own path: its folders and the policy's shared paths as they are, the
    interpreter and its packages read-only. Nothing another process left there is
    reachable (a tmux server's or an ssh agent's socket would run commands outside the
    sandbox), and nothing this run leaves there is seen by the next one."""
    kept = []
    for path, mode in _outermost(keep).items():
        kept.append((os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC), path, mode))
    try:
        for folder in _SCRATCH:
            if os.path.isdir(folder) and not os.path.islink(folder):
                _mount(libc, "tmpfs", folder, "tmpfs", _MS_NOSUID | _MS_NODEV, "mode=1777")
        for fd, path, mode in kept:
            os.makedirs(path, exist_ok=True)
            _mount(libc, f"/proc/self/fd/{fd}", path, None, _MS_BIND | _MS_REC, None)
            if mode == "ro":
                try:
                    _read_only(libc, path)
                except OSError as exc:  # Landlock still grants it read-only
                    status.setdefault("kept_read_only_error", str(exc))
        status["kept"] = sorted(path for _fd, path, _mode in kept)
    finally:
        for fd, _path, _mode in kept:
            os.close(fd)


def _private_devpts(libc):
    """A devpts instance of the suite's own: no terminal of the host can be opened, so
    no keystroke can be pushed into one (TIOCSTI)."""
    _mount(libc, "devpts", "/dev/pts", "devpts", _MS_NOSUID | _MS_NOEXEC,
           "newinstance,ptmxmode=0666,mode=0620")  # fmt: skip
    _mount(libc, "/dev/pts/ptmx", "/dev/ptmx", None, _MS_BIND, None)


def _mount_proc(libc):
    """A /proc of the new PID namespace: the suite sees its own processes only, and
    /proc/PID means the same process as os.getpid() does."""
    _mount(libc, "proc", "/proc", "proc", _MS_NOSUID | _MS_NODEV | _MS_NOEXEC, None)


# Syscalls no test suite needs and a root one could use against the host or the gate:
# kernel modules and kexec, BPF and perf (kernel-side code, observation), fanotify (it
# hands out descriptors of files the gate opens), the keyrings, userfaultfd and io_uring
# (exploit primitives), reboot, swap, accounting, the kernel log, quotas, vhangup.
_BLOCKED = {
    0xC000003E: {  # x86_64
        "ioctl": 16, "numbers": (103, 153, 163, 167, 168, 169, 175, 176, 179, 212, 246, 248,
                                 249, 250, 298, 300, 304, 313, 320, 321, 323, 425, 426, 427)},
    0xC00000B7: {  # aarch64
        "ioctl": 29, "numbers": (58, 60, 89, 104, 105, 106, 116, 142, 217, 218, 219, 224,
                                 225, 241, 262, 265, 273, 280, 282, 294, 425, 426, 427)},
}  # fmt: skip
_TIOCSTI, _TIOCLINUX = 0x5412, 0x541C  # push input into a terminal; a console's ioctls
_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER = 22, 2
_RET_ALLOW, _RET_EPERM = 0x7FFF0000, 0x00050000 | errno.EPERM
_LD_W_ABS, _JEQ_K, _RET_K, _JGE_K = 0x20, 0x15, 0x06, 0x35


class _SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint16), ("jt", ctypes.c_uint8), ("jf", ctypes.c_uint8),
                ("k", ctypes.c_uint32)]  # fmt: skip


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_uint16), ("filter", ctypes.POINTER(_SockFilter))]


def _seccomp(libc):
    """A seccomp filter refusing (EPERM) the syscalls in _BLOCKED, and the TIOCSTI and
    TIOCLINUX ioctls; every other call is allowed. Returns its architecture's name, or
    raises OSError where the architecture is not one it knows."""
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(os.uname().machine)
    if arch is None:
        raise OSError(errno.ENOSYS, f"no syscall table for {os.uname().machine}")
    table = _BLOCKED[arch]
    numbers = table["numbers"]
    program = [
        (_LD_W_ABS, 0, 0, 4),  # the architecture the call was made with
        (_JEQ_K, 1, 0, arch),
        (_RET_K, 0, 0, _RET_EPERM),  # another ABI (x32 on x86_64, say): refused
        (_LD_W_ABS, 0, 0, 0),  # the syscall number
        (_JGE_K, 0, 1, 0x40000000),  # x32 numbers
        (_RET_K, 0, 0, _RET_EPERM),
    ]
    for number in numbers:
        program += [(_JEQ_K, 0, 1, number), (_RET_K, 0, 0, _RET_EPERM)]
    program += [
        (_JEQ_K, 0, 4, table["ioctl"]),
        (_LD_W_ABS, 0, 0, 24),  # ioctl's request (args[1], low half)
        (_JEQ_K, 1, 0, _TIOCSTI),
        (_JEQ_K, 0, 1, _TIOCLINUX),
        (_RET_K, 0, 0, _RET_EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    filters = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    prog = _SockFprog(len(program), filters)
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise _fail("prctl(PR_SET_SECCOMP)")
    return os.uname().machine


_SOCKET = {0xC000003E: 41, 0xC00000B7: 198}  # socket(2) on x86_64, aarch64
_AF_UNIX = 1


def refuse_unix_sockets(libc):
    """A seccomp filter refusing (EPERM) socket(AF_UNIX, ...) from here on. Landlock
    does not mediate connecting to a Unix socket by its path, and a network namespace
    does not hide them: a coding agent could otherwise reach any daemon listening on
    a path it can see (an ssh or gpg agent, a database, a container engine). Pairs
    (socketpair, for a process's own children) stay allowed. Its relay installs it
    just before becoming the agent, after forking its own link to the model proxy."""
    arch = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}.get(os.uname().machine)
    if arch is None:
        raise OSError(errno.ENOSYS, f"no syscall table for {os.uname().machine}")
    program = [
        (_LD_W_ABS, 0, 0, 4),  # the architecture (another is the launcher's to refuse)
        (_JEQ_K, 0, 5, arch),
        (_LD_W_ABS, 0, 0, 0),  # the syscall number
        (_JEQ_K, 0, 3, _SOCKET[arch]),
        (_LD_W_ABS, 0, 0, 16),  # socket's domain (args[0], low half)
        (_JEQ_K, 0, 1, _AF_UNIX),
        (_RET_K, 0, 0, _RET_EPERM),
        (_RET_K, 0, 0, _RET_ALLOW),
    ]
    filters = (_SockFilter * len(program))(*(_SockFilter(*op) for op in program))
    prog = _SockFprog(len(program), filters)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    if libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, ctypes.byref(prog), 0, 0) != 0:
        raise _fail("prctl(PR_SET_SECCOMP)")


def drop_capabilities(libc, caps=DROPPED_CAPS):
    """Drop `caps` from the bounding set (no exec can gain them back) and clear the
    ambient set; how many the kernel knew. The fork server drops every capability
    number this way before it clears its own sets."""
    dropped = 0
    for cap in caps:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) == 0:
            dropped += 1
    libc.prctl(_PR_CAP_AMBIENT, _PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0)
    return dropped


def _isolate(libc, plan, status):
    """The optional layers: namespaces and mounts. Returns whether mounts work here,
    which is what a PID namespace needs (its own /proc)."""
    network = plan.get("network", "loopback")
    try:
        status["namespaces"] = new_namespaces(libc, namespace_flags(network))
    except OSError as exc:
        status["namespace_error"] = str(exc)
        return False
    if network == "loopback":
        try:
            loopback_up()
            status["network"] = "loopback"
        except OSError as exc:
            status["network_error"] = str(exc)
    try:
        _private_mounts(libc)
    except OSError as exc:  # inside another sandbox, say: Landlock refuses mount(2)
        status["mount_error"] = str(exc)
        return False
    if network == "loopback":  # with network = "host", /run stays: DNS may live there
        try:
            _hide_run(libc)
            status["run_hidden"] = True
        except OSError as exc:
            status["run_error"] = str(exc)
    keep = plan.get("keep", [])
    for layer, apply in (("scratch_private", lambda: _private_scratch(libc, keep, status)),
                         ("devpts_private", lambda: _private_devpts(libc))):  # fmt: skip
        try:
            apply()
            status[layer] = True
        except OSError as exc:
            status[layer + "_error"] = str(exc)
    return True


def _confine(libc, plan, status):
    """Capabilities and Landlock, the last steps before the command: OSError when
    Landlock cannot be applied, the one layer that is not optional."""
    if os.geteuid() == 0 or status["namespaces"] == "user-namespace":
        status["caps_dropped"] = drop_capabilities(libc)
    if libc.prctl(_PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0:
        raise _fail("prctl(PR_SET_NO_NEW_PRIVS)")
    try:
        status["seccomp"] = _seccomp(libc)
    except OSError as exc:
        status["seccomp_error"] = str(exc)
    abi = landlock_abi()
    if abi < 1:
        raise OSError(errno.ENOSYS, "Landlock is not available in this kernel")
    status["landlock"] = restrict(plan["rules"], abi)
    os.environ[GRANTED_ENV] = json.dumps([path for path, kind in plan["rules"] if kind != "dev"])


def _exit_code(wait_status):
    code = os.waitstatus_to_exitcode(wait_status)
    return 128 - code if code < 0 else code


def _pass_on(child):
    """The launcher, outside the PID namespace, waits for its init and ends as it did:
    with its status, or by the signal that killed it."""
    _, wait_status = os.waitpid(child, 0)
    if os.WIFSIGNALED(wait_status):
        sig = os.WTERMSIG(wait_status)
        signal.signal(sig, signal.SIG_DFL)
        os.kill(os.getpid(), sig)
    return _exit_code(wait_status)


def _init(command, status_fd=None, outside=None):
    """PID 1 of the suite's namespace: start the command, reap every orphan, and end
    with the command's status. When PID 1 ends, the kernel kills every process left in
    the namespace, including those that left the process group (setsid).

    It outlives everything the suite starts (a fork server spares it as an ancestor), so
    the suite must not be able to use it: it is not dumpable (no ptrace, no
    /proc/1/mem), and it keeps none of the descriptors the command inherits (the
    report channel, a fork server's control socket), only the standard streams."""
    undumpable()  # inherited by the fork, reset by exec
    pid = os.fork()
    if pid == 0:
        _exec(command, status_fd, outside)
    os.closerange(3, os.sysconf("SC_OPEN_MAX"))
    while True:
        try:
            done, wait_status = os.waitpid(-1, 0)
        except ChildProcessError:
            os._exit(1)
        if done == pid:
            os._exit(_exit_code(wait_status))


def undumpable():
    """Make this process non-dumpable: its /proc entries (environ, memory, descriptors)
    open only to a holder of CAP_SYS_PTRACE, which the sandbox drops. The gate calls it
    before it starts a suite: where the suite has no PID namespace of its own (inside
    another sandbox, or a container whose /proc cannot be mounted) it shares /proc with
    the gate, and Landlock does not stop it reading /proc/GATE/environ (kernel 6.18,
    measured), where the keys the gate was started with live."""
    _libc().prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)


def die_with_parent(libc):
    """Be killed (SIGKILL) when the parent ends: PID 1 of the suite's namespace when
    the launcher outside it dies, a fork server's candidate when the server does."""
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _exec(command, status_fd=None, outside=None):
    """Exec the command; when that fails, say so on the status descriptor (kept open,
    close-on-exec, for this alone) as well as on stderr: the gate must report that the
    command could not start, and why, before any consequence of it. `outside` is where
    the command was found before the sandbox was entered: found there and not here, the
    sandbox hides it."""
    try:
        os.execvp(command[0], command)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        sys.stderr.write(f"ratchet sandbox: could not start {command[0]!r}: {reason}\n")
        if status_fd is not None:
            with contextlib.suppress(OSError):
                hidden = _hidden(outside) if outside else ""
                os.write(status_fd, json.dumps({"exec_error": {
                    "path": command[0], "reason": reason, "found_outside": outside or "",
                    "hidden": hidden,
                }}).encode() + b"\n")  # fmt: skip
    os._exit(127)


def _found(name):
    """Where exec would find `name` (execvp's search, without shutil: this file imports
    as little as it can, it starts every run)."""
    folders = [""] if "/" in name else os.environ.get("PATH", os.defpath).split(os.pathsep)
    for folder in folders:
        candidate = os.path.abspath(os.path.join(folder, name))
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def _hidden(path):
    """The outermost folder on the way to `path` that this process cannot see (or
    `path` itself): what to name when a command found outside cannot start inside."""
    folder = os.path.dirname(os.path.abspath(path))
    missing = ""
    while folder and folder != "/":
        if os.path.isdir(folder):
            break
        missing, folder = folder, os.path.dirname(folder)
    return missing or path


def _report(status_fd, status):
    """Write what was applied; keep the descriptor, close-on-exec, for an exec error."""
    if status_fd is not None:
        os.write(status_fd, json.dumps(status).encode() + b"\n")
        os.set_inheritable(status_fd, False)


def parse_status(data):
    """The launcher's status lines as one dict: what it applied, then, if the command
    could not start, `exec_error`. The gate's reader of the format `_report` writes."""
    status = {}
    for line in data.splitlines():
        try:
            item = json.loads(line)
        except ValueError:
            return {"error": "the sandbox launcher's status was garbled"}
        if isinstance(item, dict):
            status.update(item)
    return status


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: enter.py PLAN_JSON -- COMMAND [ARG...]\n")
        return 2
    plan = json.loads(argv[1])
    status_fd = plan.get("status_fd")
    command = argv[3:]
    outside = _found(command[0])
    libc = _libc()
    status = {"network": "host", "namespaces": "none", "run_hidden": False,
              "pid_namespace": False, "caps_dropped": 0}  # fmt: skip
    try:
        if _isolate(libc, plan, status) and _new_pid_namespace(libc, status):
            child = os.fork()
            if child:
                if status_fd is not None:
                    os.close(status_fd)  # the child reports
                return _pass_on(child)
            die_with_parent(libc)
            _mount_proc(libc)  # checked by _new_pid_namespace; an error here is fatal
        _confine(libc, plan, status)
    except OSError as exc:
        status = {"error": str(exc)}
    _report(status_fd, status)
    if "error" in status:
        sys.stderr.write(f"ratchet sandbox: could not enter the sandbox: {status['error']}\n")
        return SETUP_FAILED
    if os.getpid() == 1:
        _init(command, status_fd, outside)
    _exec(command, status_fd, outside)
    return 127  # not reached


def _new_pid_namespace(libc, status):
    """The next child starts a PID namespace (optional: False where it cannot).

    Without its own /proc a PID namespace would be worse than none (/proc/PID would
    name other processes than os.getpid() does), so a throwaway child first checks
    that a new namespace's /proc can be mounted here: a user namespace may not, where
    the host's /proc is partly covered (containers)."""
    probe = os.fork()
    if probe == 0:
        try:
            unshare(libc, CLONE_NEWPID)
            inner = os.fork()
            if inner == 0:
                os._exit(0 if _can_mount_proc(libc) else 1)
            os._exit(_exit_code(os.waitpid(inner, 0)[1]))
        except OSError:
            os._exit(1)
    if _exit_code(os.waitpid(probe, 0)[1]) != 0:
        status["pid_error"] = "a PID namespace's /proc cannot be mounted here"
        return False
    try:
        unshare(libc, CLONE_NEWPID)
    except OSError as exc:
        status["pid_error"] = str(exc)
        return False
    status["pid_namespace"] = True
    return True


def _can_mount_proc(libc):
    scratch = os.path.join(os.environ.get("TMPDIR") or "/tmp", f".ratchet-proc-{os.getpid()}")
    os.mkdir(scratch, 0o700)
    try:
        if libc.mount(b"proc", scratch.encode(), b"proc",
                      ctypes.c_ulong(_MS_NOSUID | _MS_NODEV | _MS_NOEXEC), None) != 0:
            return False
        libc.umount2(scratch.encode(), ctypes.c_int(_MNT_DETACH))
        return True
    finally:
        os.rmdir(scratch)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
