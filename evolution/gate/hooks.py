"""`evolve hooks install | uninstall`: put the gate's shims where git will run them.

A repository that ships its own `hooks/` folder holding the shims (this one does) gets
`core.hooksPath = hooks`, so the hooks are versioned with the code. Any other repository
gets copies in its hooks folder, and a hook of the user's own with the same name is
never overwritten: it is kept, and reported.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Any

from agent.atomicio import atomic_write_bytes
from evolution.gitrepo import GitRepo

HOOKS = ("pre-merge-commit", "post-merge", "pre-push")
MARKER = b"# ratchet-hook:"
_PREVIOUS = "ratchet.previousHooksPath"
_INSTALLED = "ratchet.hooksPathSet"


def shim(name: str) -> bytes:
    return (resources.files("evolution.gate") / "hookshims" / name).read_bytes()


def _is_ours(path: Path) -> bool:
    try:
        return MARKER in path.read_bytes()[:400]
    except OSError:
        return False


def _repo_hooks_folder(repo: GitRepo) -> Path | None:
    folder = repo.toplevel / "hooks"
    return folder if all(_is_ours(folder / name) for name in HOOKS) else None


def install(repo: GitRepo) -> dict[str, Any]:
    if _repo_hooks_folder(repo) is not None:
        current = repo.config_get("core.hooksPath")
        if current != "hooks":
            if current:
                repo.config_set(_PREVIOUS, current)
            repo.config_set("core.hooksPath", "hooks")
            repo.config_set(_INSTALLED, "true")
        return {"mode": "core.hooksPath", "path": "hooks", "installed": list(HOOKS), "kept": []}
    folder = repo.git_path("hooks")
    installed, kept = [], []
    for name in HOOKS:
        target = folder / name
        if target.exists() and not _is_ours(target):
            kept.append(name)
            continue
        atomic_write_bytes(target, shim(name), mode=0o755)
        installed.append(name)
    return {"mode": "copies", "path": str(folder), "installed": installed, "kept": kept}


def pending(repo: GitRepo) -> list[str]:
    """What `install` would change: the hooks it would write (missing, or an older copy of
    ours), or `core.hooksPath`; empty when they are installed. A hook of the user's own
    is not pending: install keeps it."""
    if _repo_hooks_folder(repo) is not None:
        return [] if repo.config_get("core.hooksPath") == "hooks" else ["core.hooksPath"]
    folder = repo.git_path("hooks")
    return [
        name
        for name in HOOKS
        if not (folder / name).exists()
        or (_is_ours(folder / name) and (folder / name).read_bytes() != shim(name))
    ]


def uninstall(repo: GitRepo) -> dict[str, Any]:
    removed: list[str] = []
    if repo.config_get(_INSTALLED) == "true":
        previous = repo.config_get(_PREVIOUS)
        if previous:
            repo.config_set("core.hooksPath", previous)
            repo.config_unset(_PREVIOUS)
        else:
            repo.config_unset("core.hooksPath")
        repo.config_unset(_INSTALLED)
        removed.append("core.hooksPath")
    folder = repo.git_path("hooks")
    if folder.resolve() != (repo.toplevel / "hooks").resolve():
        for name in HOOKS:
            target = folder / name
            if _is_ours(target):
                os.unlink(target)
                removed.append(name)
    return {"removed": removed}
