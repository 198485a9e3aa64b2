"""What a sandboxed test run may reach: the plan `enter.py` applies.

Landlock only grants; it cannot subtract a folder from a grant above it. So that the
user's checkout, the repository's git directory, the gate's run folders and the home
folders are unreadable while the rest of the system stays readable, the plan grants `/`
minus those paths: at each level on the way down to a hidden path it grants every
sibling instead of the parent. A symlink whose target leads into (or above) a hidden
path is not granted.

Two kinds of hidden path. The forbidden ones (the checkouts, the git directory, the run
folders, the well-known credential files) are never readable, and code imported from one
makes the run invalid. The home folders (the user's, root's, everything under /home) are
simply not part of a run's world: the suite gets a private, empty home of its own
(`Confinement.home`), and what it needs from a real home is granted explicitly, path by
path (Landlock grants are per path, so they work inside a hidden folder): interpreters
and their packages (pyenv's, uv's, a venv in a checkout under ~/src), the folders their
`.pth` files name, and the policy's `read_paths`. A deny-list of credential files is
always one file behind; a home that is not there has nothing to read.

Readable wherever they live: the interpreters and their packages (`reachable`); where
the launcher gives the run a private /tmp, those under the host's are bound back into it
read-only at their own paths (`kept`), and nothing else of the host's /tmp is seen.

Writable: the run's private temporary folder and home, its output folder (the JSON
report, coverage data), the tree paths the policy names, `/dev/shm` and the harmless
devices. Nothing else, anywhere.
"""

from __future__ import annotations

import contextlib
import json
import os
import pwd
import shutil
import site
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from evolution.sandbox.enter import GRANTED_ENV

Rule = tuple[str, str]  # (absolute path, "ro" | "rw" | "dev")

# Credentials a suite has no business reading: a failing test could print them into the
# verdict's failure text, and so into a git note. The home folders they live in are
# hidden from the suite anyway (`hidden_homes`); these stay forbidden even where a policy
# makes a home readable on purpose (`read_paths`).
HOME_SECRETS = (
    ".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".git-credentials",
    ".pypirc", ".config/gcloud", ".config/gh", ".config/ratchet", ".local/share/keyrings",
)  # fmt: skip
# Where homes live on a Unix host: hidden from every run whoever its user is.
HOMES_ROOTS = ("/root", "/home")
# Folders a home may be set to that are the system, not a home (a daemon's HOME=/ or
# /var): never hidden, or the run could not start.
_SYSTEM_FOLDERS = frozenset({
    "/", "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/libx32", "/nix",
    "/opt", "/proc", "/run", "/sbin", "/snap", "/srv", "/sys", "/tmp", "/usr", "/var",
    "/var/tmp", "/var/lib",
})  # fmt: skip
DEVICES = ("/dev/null", "/dev/zero", "/dev/full", "/dev/random", "/dev/urandom",
           "/dev/tty", "/dev/ptmx", "/dev/pts")  # fmt: skip


@dataclass(frozen=True)
class Confinement:
    """One run's boundaries, in the gate's terms."""

    tree: Path  # the tested tree: read-only, apart from `writable`
    tmp: Path  # private temporary folder: read-write
    out: Path  # where the suite writes what the gate reads back (report, coverage)
    probe: Path  # the gate's plugin and canaries: read-only
    forbidden: tuple[Path, ...]  # neither readable nor writable
    writable: tuple[str, ...] = ()  # tree-relative paths the suite may write
    shared: tuple[str, ...] = ()  # absolute folders it may write, which outlive the run
    network: str = "loopback"  # or "host"
    readable: tuple[Path, ...] = field(default_factory=tuple)  # re-granted inside forbidden
    command: tuple[str, ...] = ()  # what the run starts: its interpreter is made reachable
    hidden: tuple[Path, ...] = ()  # not readable, but what the run needs inside is granted
    home: Path | None = None  # the run's private home: read-write
    read_paths: tuple[Path, ...] = ()  # readable on purpose (the policy's), minus forbidden


def home_secrets(home: Path | None = None) -> list[Path]:
    base = home or Path(os.path.expanduser("~"))
    return [base / name for name in HOME_SECRETS]


def hidden_homes() -> list[Path]:
    """The home folders a run does not see: this user's (as HOME says and as the
    password database says), root's, and every one under /home; never a system folder a
    service account's HOME may point at."""
    homes = {os.path.expanduser("~"), *HOMES_ROOTS}
    with contextlib.suppress(KeyError):  # a uid with no entry (a container's arbitrary user)
        homes.add(pwd.getpwuid(os.getuid()).pw_dir)
    found = set()
    for home in homes:
        if not home or not os.path.isabs(home):
            continue
        for path in (os.path.normpath(home), os.path.realpath(home)):
            if path not in _SYSTEM_FOLDERS:
                found.add(path)
    return sorted(Path(p) for p in found)


def read_paths(paths: Iterable[str]) -> tuple[Path, ...]:
    """The policy's `read_paths` as absolute paths (`~` is the gate's user's home)."""
    return tuple(Path(os.path.normpath(os.path.expanduser(p))) for p in paths)


def interpreter_paths(command: Sequence[str] = ()) -> list[Path]:
    """Where the interpreters of a run and their packages live: readable even inside a
    forbidden folder (a `.venv` in the user's checkout), and bound back into the private
    temporary folder when they live under it (a venv or a checkout under /tmp, tox's and
    CI's environments, uv-managed and pyenv Pythons anywhere).

    The gate's own interpreter is described by `sys` and its site-packages folders; the
    test command's program, when it is another interpreter in a virtual environment, by
    that environment and the Python it was made from."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(sys.executable), os.path.dirname(os.path.realpath(sys.executable))}
    paths.update(site_folders())
    paths.update(_environment_of(command))
    return sorted(Path(p) for p in paths if p and os.path.isabs(p))


def site_folders() -> list[str]:
    """The running interpreter's site-packages folders, the user's included if it has one."""
    sites = list(site.getsitepackages()) if hasattr(site, "getsitepackages") else []
    if site.ENABLE_USER_SITE and os.path.isdir(site.getusersitepackages() or ""):
        sites.append(site.getusersitepackages())
    return sites


def pth_folders(sites: Iterable[str]) -> set[str]:
    """The folders `.pth` files in `sites` put on the path (as `site` reads them: a line
    that is not a comment or an import is a folder, relative to its site folder), and
    those an editable install's finder maps its packages to (setuptools' `MAPPING`, read
    from the finder this interpreter already imported)."""
    folders: set[str] = set()
    for folder in sites:
        try:
            names = sorted(n for n in os.listdir(folder) if n.endswith(".pth"))
        except OSError:
            continue
        for name in names:
            try:
                lines = Path(folder, name).read_text(encoding="utf-8").splitlines()
            except (OSError, UnicodeDecodeError):
                continue
            for line in lines:
                line = line.strip()
                if line and not line.startswith(("#", "import ", "import\t")):
                    target = os.path.normpath(os.path.join(folder, line))
                    if os.path.isdir(target):
                        folders.add(target)
    for name, module in list(sys.modules.items()):
        mapping = getattr(module, "MAPPING", None) if name.startswith("__editable__") else None
        if isinstance(mapping, dict):
            for target in mapping.values():
                if isinstance(target, str) and os.path.exists(target):
                    folders.add(os.path.dirname(target) if os.path.isfile(target) else target)
    return folders


def _environment_of(command: Sequence[str]) -> set[str]:
    """The environment of the interpreter a test command names, when it names one that
    is not the gate's: the virtual environment it belongs to (its pyvenv.cfg beside its
    folder) and the Python that environment was made from (`home`). Its own folder is
    `command_folders`' business: it may be anywhere, the user's checkout included."""
    found = _found(command)
    if found is None:
        return set()
    config = Path(found).parent.parent / "pyvenv.cfg"
    try:
        lines = config.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return set()
    paths = {str(config.parent)}
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "home" and os.path.isabs(value.strip()):
            paths.add(str(Path(value.strip()).parent))
    return paths


def command_folders(command: Sequence[str]) -> set[str]:
    """The folder the test command's first word is found in, and the one it resolves to."""
    found = _found(command)
    if found is None:
        return set()
    return {os.path.dirname(found), os.path.dirname(os.path.realpath(found))}


def _found(command: Sequence[str]) -> str | None:
    """The test command's program, as exec finds it through PATH, when it is not the
    gate's own interpreter; never a path relative to the tree (the gate's working
    folder is the user's checkout, not the tree the command runs in)."""
    if not command or ("/" in command[0] and not os.path.isabs(command[0])):
        return None
    found = shutil.which(command[0])
    # Compared unresolved: two virtual environments' pythons resolve to the same file.
    if found is None or os.path.abspath(found) == os.path.abspath(sys.executable):
        return None
    return os.path.abspath(found)


def _related(path: str, forbidden: Sequence[str]) -> bool:
    """Whether granting `path` would grant a forbidden path (it is one, holds one, or
    lies inside one). Plain string prefixes: this runs for every entry of every folder
    on the way down, on every test run."""
    inside = path.rstrip("/") + "/"
    return any(
        path == f or f.startswith(inside) or path.startswith(f.rstrip("/") + "/")
        for f in forbidden
    )


def readable_roots(forbidden: Iterable[Path], tops: Iterable[Path] | None = None) -> list[Path]:
    """Paths whose grants together cover everything under `tops` except `forbidden`.

    `tops` defaults to `/`, or, inside a sandbox (Ratchet's own suite runs its gate),
    to what that sandbox granted: there a folder it did not grant whole cannot be
    listed, so the way down from `/` would stop at once and grant nothing."""
    hidden = sorted({os.path.realpath(p) for p in forbidden})
    roots: list[Path] = []

    def holds_hidden(folder: str) -> bool:
        inside = folder.rstrip("/") + "/"
        return any(f.startswith(inside) for f in hidden)

    def visit(path: str, real: str, is_dir: bool) -> None:
        if not _related(path, hidden) and not _related(real, hidden):
            roots.append(Path(path))
        elif path in hidden or real in hidden:
            return
        elif is_dir and holds_hidden(path):
            expand(path)
        # else: a symlink into or above a forbidden path: not granted

    def expand(folder: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError:
            return
        for entry in entries:
            real = os.path.realpath(entry.path) if entry.is_symlink() else entry.path
            visit(entry.path, real, entry.is_dir(follow_symlinks=False))

    for top in sorted({str(t) for t in (tops if tops is not None else outer_grants())}):
        visit(top, os.path.realpath(top), os.path.isdir(top) and not os.path.islink(top))
    return roots


def outer_grants() -> list[Path]:
    """What the sandbox this process runs in granted (its launcher says so in the
    environment), or `/` outside any. Only ever narrows: a grant is still subtracted
    the forbidden paths, whatever the variable says."""
    value = os.environ.get(GRANTED_ENV)
    try:
        granted = json.loads(value) if value else None
    except ValueError:
        granted = None
    if not isinstance(granted, list) or not all(isinstance(p, str) for p in granted):
        return [Path("/")]
    return [Path(p) for p in granted if os.path.isabs(p)]


def reachable(confinement: Confinement) -> list[Path]:
    """What the run must be able to read besides the tree and `/` minus the forbidden
    paths: its interpreters (granted even inside a forbidden folder: a `.venv` in the
    user's checkout), the folders `.pth` files add to their path (by a line, by an
    editable finder, or by code: what this interpreter's `sys.path` holds) and the test
    command's own folder unless that would reveal a forbidden path (an editable install of the
    user's checkout must not shadow the tested tree), and what the confinement re-grants
    on purpose."""
    forbidden = [os.path.realpath(p) for p in confinement.forbidden]
    on_path = {p for p in sys.path if p and os.path.isabs(p) and os.path.isdir(p)}
    added = [
        Path(folder)
        for folder in sorted(pth_folders(site_folders()) | on_path)
        if not _related(folder, forbidden) and not _related(os.path.realpath(folder), forbidden)
    ]
    added += [
        Path(folder)
        for folder in sorted(command_folders(confinement.command))
        if not _related(folder, forbidden)
    ]
    return [*interpreter_paths(confinement.command), *added, *confinement.readable]


def hidden_program(confinement: Confinement) -> str | None:
    """The folder of the confinement's command when the sandbox cannot show it (it holds
    or lies inside a forbidden path, and nothing granted covers it), else None: a
    program next to the user's checkout would otherwise fail with a bare 'not found'."""
    found = _found(confinement.command)
    if found is None:
        return None
    folder = os.path.dirname(os.path.realpath(found))
    forbidden = [os.path.realpath(p) for p in confinement.forbidden]
    if not _related(folder, forbidden):
        return None
    granted = [str(p) for p in reachable(confinement)]
    covered = any(folder == g or folder.startswith(g.rstrip("/") + "/") for g in granted)
    return None if covered else folder


def rules(confinement: Confinement, reach: Sequence[Path] | None = None) -> list[Rule]:
    """The Landlock rules of a run, in the order `enter.py` adds them (`reach`: what
    `reachable` says, when the caller has it already)."""
    forbidden = list(confinement.forbidden)
    planned: list[Rule] = [
        (str(p), "ro") for p in readable_roots([*forbidden, *confinement.hidden])
    ]
    if confinement.read_paths:
        planned += [(str(p), "ro") for p in readable_roots(forbidden, confinement.read_paths)]
    planned += [(str(p), "ro") for p in (reachable(confinement) if reach is None else reach)]
    planned += [(str(confinement.tree), "ro"), (str(confinement.probe), "ro")]
    planned += [(str(confinement.tmp), "rw"), (str(confinement.out), "rw")]
    if confinement.home is not None:
        planned.append((str(confinement.home), "rw"))
    for rel in confinement.writable:
        target = (confinement.tree / rel).resolve()
        if target.is_relative_to(confinement.tree.resolve()):
            planned.append((str(target), "rw"))
    planned += [(path, "rw") for path in confinement.shared]
    planned += [(device, "dev") for device in DEVICES] + [("/dev/shm", "rw")]
    return planned


def kept(
    confinement: Confinement, run_folder: Path, reach: Sequence[Path] | None = None
) -> list[Rule]:
    """What stays visible, at its own path, where the launcher covers the shared scratch
    folders (/tmp, /var/tmp, /dev/shm) with empty ones: the run's own folder, the tree
    (outside it when the folder is one process's part of a split run) and the shared
    paths as they are ("rw": Landlock alone decides what is writable there), and what the
    run must read ("ro": its interpreters, their packages, the policy's read paths),
    bound read-only. The
    launcher keeps only those that lie under a scratch folder; nothing else of it is
    seen."""
    tree = [] if confinement.tree.is_relative_to(run_folder) else [str(confinement.tree)]
    keep: list[Rule] = [(path, "rw") for path in (str(run_folder), *tree, *confinement.shared)]
    for path in [*(reachable(confinement) if reach is None else reach), *confinement.read_paths]:
        keep += [(str(path), "ro"), (os.path.realpath(path), "ro")]
    return list(dict.fromkeys(keep))


def launch_plan(
    confinement: Confinement, run_folder: Path, status_fd: int | None
) -> dict[str, object]:
    """The plan `enter.py` applies for a run: one builder for every sandboxed start (the
    gate's runs, the fork server, `evolve doctor`), so that none of them can see less or
    more than another."""
    reach = reachable(confinement)
    return {
        "rules": rules(confinement, reach),
        "keep": kept(confinement, run_folder, reach),
        "network": confinement.network,
        "status_fd": status_fd,
    }


def start_failure(applied: dict[str, Any]) -> str | None:
    """What stopped the command from starting inside the sandbox, as the first thing to
    say (before any consequence: no probe, no report); None when it started."""
    failed = applied.get("exec_error")
    if not isinstance(failed, dict):
        return None
    message = (
        f"the test command could not start inside the sandbox: "
        f"{failed.get('path')!r}: {failed.get('reason')}"
    )
    if failed.get("found_outside") and failed.get("hidden"):
        message += (
            f" (it is {failed['found_outside']} outside the sandbox, but "
            f"{failed['hidden']} is not visible inside it)"
        )
    return message


START_HINT = (
    "`evolve doctor` checks that this interpreter starts inside the sandbox and names "
    "what it cannot see; a test command's interpreter must be readable outside the "
    "repository's checkouts"
)
