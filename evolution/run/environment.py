"""The environment a test run's command gets: the gate's own, minus what the suite must
not see.

No secret (`agent.redact.scrubbed_environment`), nothing naming the checkout, the
repository or the gate's run folders (PATH keeps its other entries), no variable of the
caller's pytest session or of Ratchet's that would change what runs, no way back into
the user's session (a terminal multiplexer, an ssh agent, a desktop bus), its own tmp
and private, empty home, and the tree first on the import path. Every start on a run's
tree takes it from here: a gate run, a re-run, a coverage or import check, the fork
server and each of its candidates.
"""

from __future__ import annotations

import os
import site
from collections.abc import Iterable
from pathlib import Path

from agent.redact import scrubbed_environment
from evolution.run.folder import RunFolder

# Variables from the caller's own pytest session (or a user's shell) that would change
# what runs: the policy on main decides the test command, nothing else does.
_DROPPED_ENV_PREFIXES = ("PYTEST_", "RATCHET_")
# Variables that point at services of the user's session outside the sandbox (a
# terminal multiplexer, an ssh agent, a desktop bus, a display, the terminal itself):
# each is a way to ask something outside to act.
_SESSION_VARIABLES = frozenset({
    "TMUX", "TMUX_PANE", "TMUX_TMPDIR", "STY", "SSH_TTY", "SSH_AUTH_SOCK", "SSH_AGENT_PID",
    "SSH_CONNECTION", "SSH_CLIENT", "DBUS_SESSION_BUS_ADDRESS", "XDG_RUNTIME_DIR",
    "DISPLAY", "WAYLAND_DISPLAY", "XAUTHORITY", "GPG_AGENT_INFO", "KRB5CCNAME", "WINDOWID",
    "NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "INVOCATION_ID", "JOURNAL_STREAM",
})  # fmt: skip
# The XDG base folders, each in the run's private home (the cache in its tmp).
_XDG_FOLDERS = {
    "XDG_CONFIG_HOME": ".config",
    "XDG_DATA_HOME": ".local/share",
    "XDG_STATE_HOME": ".local/state",
}


def _names_forbidden(value: str, forbidden: Iterable[Path]) -> bool:
    return any(str(path) in value for path in forbidden)


def environment(run: RunFolder) -> dict[str, str]:
    """The suite's environment: no secret, nothing naming the checkout or the repository
    (PATH keeps its other entries), no way back into the user's session, its own tmp
    and private home, and the tree first on the import path."""
    env: dict[str, str] = {}
    for key, value in scrubbed_environment(os.environ).items():
        if key.startswith(_DROPPED_ENV_PREFIXES) or key in _SESSION_VARIABLES:
            continue
        if key == "PATH":
            entries = [p for p in value.split(os.pathsep) if not _names_forbidden(p, run.forbidden)]
            value = os.pathsep.join(entries)
        elif _names_forbidden(value, run.forbidden):
            continue
        env[key] = value
    paths = [str(run.probe), str(run.tree)]
    if (run.tree / "src").is_dir():
        paths.append(str(run.tree / "src"))
    if env.get("PYTHONPATH"):
        paths.append(env["PYTHONPATH"])
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["PWD"] = str(run.tree)
    for name in ("TMPDIR", "TEMP", "TMP"):
        env[name] = str(run.tmp)
    # The user's home is not the suite's: configuration (and the credentials in it) that
    # a tool finds through HOME or XDG is the run's own, empty, home's.
    env["HOME"] = str(run.home)
    for name, folder in _XDG_FOLDERS.items():
        env[name] = str(run.home / folder)
    env["XDG_CACHE_HOME"] = str(run.tmp / ".cache")
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages() or ""):
        # Packages installed with `pip install --user` stay importable (the sandbox
        # grants that folder): the user base is found through HOME otherwise.
        env.setdefault("PYTHONUSERBASE", site.getuserbase())
    env.setdefault("HYPOTHESIS_STORAGE_DIRECTORY", str(run.tmp / ".hypothesis"))
    return env
