"""What a sandboxed test run may reach: the plan `enter.py` applies.

Landlock only grants; it cannot subtract a folder from a grant above it. So that the
user's checkout, the repository's git directory, the gate's run folders and the
credentials in the home folder are unreadable while the rest of the system stays
readable, the plan grants `/` minus those paths: at each level on the way down to a
forbidden path it grants every sibling instead of the parent. A symlink whose target
leads into (or above) a forbidden path is not granted.

Writable: the run's private temporary folder, its output folder (the JSON report,
coverage data), the tree paths the policy names, `/dev/shm` and the harmless devices.
Nothing else, anywhere.
"""

from __future__ import annotations

import json
import os
import site
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from evolution.sandbox.enter import GRANTED_ENV

Rule = tuple[str, str]  # (absolute path, "ro" | "rw" | "dev")

# Credentials a suite has no business reading: a failing test could print them into the
# verdict's failure text, and so into a git note.
HOME_SECRETS = (
    ".ssh", ".gnupg", ".aws", ".azure", ".kube", ".docker", ".netrc", ".git-credentials",
    ".pypirc", ".config/gcloud", ".config/gh", ".config/ratchet", ".local/share/keyrings",
)  # fmt: skip
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


def home_secrets(home: Path | None = None) -> list[Path]:
    base = home or Path(os.path.expanduser("~"))
    return [base / name for name in HOME_SECRETS]


def interpreter_paths() -> list[Path]:
    """Where the running interpreter and its packages live: readable even when they sit
    inside a forbidden folder (a `.venv` in the user's checkout)."""
    paths = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix,
             os.path.dirname(os.path.realpath(sys.executable))}  # fmt: skip
    paths.update(site.getsitepackages() if hasattr(site, "getsitepackages") else [])
    return sorted(Path(p) for p in paths if p)


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


def rules(confinement: Confinement) -> list[Rule]:
    """The Landlock rules of a run, in the order `enter.py` adds them."""
    forbidden = list(confinement.forbidden)
    planned: list[Rule] = [(str(p), "ro") for p in readable_roots(forbidden)]
    planned += [(str(p), "ro") for p in (*interpreter_paths(), *confinement.readable)]
    planned += [(str(confinement.tree), "ro"), (str(confinement.probe), "ro")]
    planned += [(str(confinement.tmp), "rw"), (str(confinement.out), "rw")]
    for rel in confinement.writable:
        target = (confinement.tree / rel).resolve()
        if target.is_relative_to(confinement.tree.resolve()):
            planned.append((str(target), "rw"))
    planned += [(path, "rw") for path in confinement.shared]
    planned += [(device, "dev") for device in DEVICES] + [("/dev/shm", "rw")]
    return planned


def kept(confinement: Confinement, run_folder: Path) -> list[str]:
    """What stays visible where the launcher covers the shared scratch folders (/tmp,
    /var/tmp, /dev/shm) with empty ones: the run's own folder, the tree (outside it
    when the folder is one process's part of a split run), and the shared paths."""
    tree = [] if confinement.tree.is_relative_to(run_folder) else [str(confinement.tree)]
    return [str(run_folder), *tree, *confinement.shared]
