"""Join a coding agent's 127.0.0.1 port to the model proxy's Unix socket, then become the agent.

    python -I -S relay.py SOCKET PLACEHOLDER -- AGENT ARGV...

Started by the sandbox launcher, inside the agent's network namespace (where nothing but
a loopback interface exists), so that the model proxy is the one address the agent can
reach. It listens on a free port of 127.0.0.1, writes that port into the agent's
arguments and environment wherever PLACEHOLDER stands, forks a child that carries each
connection to SOCKET, and execs the agent: the agent keeps this process's id, so the
timeout, the kill flag and the group kill see the agent itself. The child dies with it
(PR_SET_PDEATHSIG) and is in its process group anyway.

Standard library only (and the launcher's copy beside it, `_ratchet_enter`), started
isolated: it runs inside the sandbox, where Ratchet's own packages may not be readable.
"""

import contextlib
import ctypes
import os
import resource
import signal
import socket
import sys
import threading

_PR_SET_PDEATHSIG = 1
FILE_LIMIT = 256 << 20  # bytes: no source file is larger, and the disk is the host's


def _pump(source, sink):
    try:
        while True:
            data = source.recv(65536)
            if not data:
                break
            sink.sendall(data)
    except OSError:
        pass
    finally:
        # This direction is done: say so to the other side, and let the answer still
        # come back (a client may half-close once it has sent its request).
        with contextlib.suppress(OSError):
            sink.shutdown(socket.SHUT_WR)


def _carry(client, path):
    try:
        upstream = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        upstream.connect(path)
    except OSError:
        client.close()
        return
    back = threading.Thread(target=_pump, args=(upstream, client), daemon=True)
    back.start()
    _pump(client, upstream)
    back.join()
    client.close()
    upstream.close()


def _serve(listener, path, parent):
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the agent is already gone
        os._exit(0)
    while True:
        client, _ = listener.accept()
        threading.Thread(target=_carry, args=(client, path), daemon=True).start()


def _confine():
    """What the agent gets besides the launcher's sandbox, set in this process just
    before it becomes the agent (the link to the proxy, already forked, keeps none of
    it): no Unix socket of its own (the launcher's `refuse_unix_sockets`, from the copy
    beside this script), no core dumps, and no file written past FILE_LIMIT."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import _ratchet_enter

    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_FSIZE, (FILE_LIMIT, FILE_LIMIT))
    _ratchet_enter.refuse_unix_sockets(ctypes.CDLL(None, use_errno=True))


def main(argv):
    if len(argv) < 4 or argv[2] != "--":
        sys.stderr.write("usage: relay.py SOCKET PLACEHOLDER -- AGENT ARGV...\n")
        return 2
    path, placeholder, command = argv[0], argv[1], argv[3:]
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(64)
    port = str(listener.getsockname()[1])
    parent = os.getpid()
    if os.fork() == 0:
        _serve(listener, path, parent)
        os._exit(0)
    listener.close()
    command = [arg.replace(placeholder, port) for arg in command]
    env = {key: value.replace(placeholder, port) for key, value in os.environ.items()}
    try:
        _confine()
    except OSError as exc:
        sys.stderr.write(f"relay: could not confine the agent, so it is not started: {exc}\n")
        return 126
    try:
        os.execvpe(command[0], command, env)
    except OSError as exc:
        sys.stderr.write(f"relay: could not start {command[0]!r}: {exc}\n")
        return 127


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
